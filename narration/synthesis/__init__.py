"""Synthesis: every sentence of the cast book rendered offline by its voice's engine
(`engines/`), verified and cached by content, in clean processes or on a cluster
(a `RemoteRenderer`).
"""

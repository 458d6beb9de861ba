"""Segmenting: the readers' texts become chapters of segments (headings, narration, quote
blocks, list items) and sentences, every word kept and located in its seed; quotations
and who speaks them are found in `speakers/`.
"""

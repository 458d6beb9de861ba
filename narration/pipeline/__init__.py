"""The pipeline: what runs the stages. `build.py` takes a project through them phase by
phase (its chapters published as they finish, `streaming.py`); the project and its
checks, preview, clean and `narrate init`'s scaffold live here too.
"""

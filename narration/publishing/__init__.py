"""Publishing: the episodes become a podcast feed (`feed.py`), a show page (`page.py`), and
are served over HTTP with byte ranges (`serve.py`).
"""

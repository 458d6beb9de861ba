"""Segmenting: the readers' texts become chapters of segments (headings, narration, quote
blocks, list items) and sentences, every word kept and located in its seed; quotations
and who speaks them are found in `speakers/`.

The stage's parts, in the order a text goes through them: `cleaning` (the lines made fit
to read, the edition's wrapping removed), `blocks` (lines to blocks), `classify` (each
block's kind, by a table of rules), `chapters` (which headings are the book's chapters,
the contents list checked, a book with none cut by length), `front` (title page and
authors), `drafts` (items to segments' texts, via `spoken` and `sources`), `ids` (segment
and chapter ids) and `book` (all of it, for a file and for a book). What they use:
`inline` (Markdown's inline markup, words), `sentences` (a text cut into sentences and
utterances), `headings` (what a heading looks like), `coverage` (the proof that every word
is kept), `locate` and `offsets` (where each segment stands in its seed), `outline` (the
book's outline, as `narrate segments` shows it). Then `speakers/`: who says each quotation.
"""

from narration.segmenting.book import segment_book, segment_source, segment_text

__all__ = ["segment_book", "segment_source", "segment_text"]

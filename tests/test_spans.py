"""Every segment knows where its text stands in its seed file (Segment.span), and a place
inside a segment maps to the file (locate.position): offsets into the decoded file text
with its line endings as written and no byte-order mark, or into an EPUB or HTML
document's text content (its text nodes in document order)."""

from __future__ import annotations

import codecs
import itertools
import zipfile
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from narration.model import Book, Segment, TextSpan
from narration.segmenting import segment_text
from narration.segmenting.offsets import align, position

from .support import (
    assert_spans_hold_words,
    book_from,
    spoken_letters,
    start_epub,
)

BOOKS = Path("/work/books/txt")


def _segment(book: Book, starting: str) -> Segment:
    return next(s for ch in book.chapters for s in ch.segments if s.text.startswith(starting))


def _at(book: Book, span: TextSpan | None) -> str:
    assert span is not None
    return book.texts[span.file][span.start : span.end]


def _quotation(s: Segment, k: int = 0) -> tuple[int, int]:
    """The k-th dialogue span's text inside the segment, its quote marks left out."""
    sp = s.spans[k]
    return sp.start + 1, sp.end - 1


PLAIN = """The Yellow Room

It was a fine day. The children played in the garden
behind the house, and "Mother," said Anne, "may we go
to the river?"

II.

He wrote the letter at once -- then tore it up.
"""


def test_a_plain_text_seeds_segments_stand_where_their_words_are(tmp_path: Path) -> None:
    book = book_from(tmp_path, {"story.txt": PLAIN})
    assert book.texts == {"story.txt": PLAIN}
    assert_spans_hold_words(book)
    s = _segment(book, "It was a fine day")
    assert _at(book, s.span) == PLAIN[PLAIN.index("It was") : PLAIN.index("river?") + 7]
    assert (
        _at(book, _segment(book, "He wrote").span)
        == "He wrote the letter at once -- then tore it up."
    )
    # a quotation inside the segment: its words in the file, across the line break
    a, b = _quotation(s, 1)
    assert s.text[a:b] == "may we go to the river?"
    al = align(s.text, book.texts["story.txt"], s.span)  # type: ignore[arg-type]
    assert PLAIN[al.position(a) : al.position(b, end=True)] == "may we go\nto the river?"
    a, b = _quotation(s, 0)
    assert PLAIN[al.range(a, b).start : al.range(a, b).end] == "Mother,"


def test_spans_count_a_crlf_files_carriage_returns_and_not_its_bom(tmp_path: Path) -> None:
    text = PLAIN.replace("\n", "\r\n")
    book = book_from(tmp_path, {"story.txt": codecs.BOM_UTF8 + text.encode("utf-8")})
    assert book.texts["story.txt"] == text  # decoded, CRLF kept, no BOM
    assert_spans_hold_words(book)
    s = _segment(book, "He wrote")
    start = text.index("He wrote")
    assert s.span == TextSpan(
        "story.txt", start, start + len("He wrote the letter at once -- then tore it up.")
    )
    lf = book_from(tmp_path / "lf", {"story.txt": PLAIN})
    assert start - _segment(lf, "He wrote").span.start == PLAIN[:start].count("\n")  # type: ignore[union-attr]
    # the same segments, ids and all, whatever the line endings
    assert [c.segments for c in book.chapters] == [c.segments for c in lf.chapters]
    quoted = _segment(book, "It was")
    a, b = _quotation(quoted, 1)
    at = position(quoted.text, text, quoted.span, a)  # type: ignore[arg-type]
    end = position(quoted.text, text, quoted.span, b, end=True)  # type: ignore[arg-type]
    assert text[at:end] == "may we go\r\nto the river?"


MARKDOWN = """# The Plan

We _mis_managed it, viz. the whole affair &amp; its
cost. See [the notes](https://example.org/notes) for more, etc.

## Caf&eacute; Life

> "Bread _and_ roses," she said, "i.e. both."
> -- Rose Schneiderman, Speech (1912)

- first item, e.g. this one
- second item
"""


def test_a_markdown_seeds_spans_take_in_its_markup_abbreviations_and_references(
    tmp_path: Path,
) -> None:
    book = book_from(tmp_path, {"plan.md": MARKDOWN})
    assert_spans_hold_words(book, removed_inside=True)  # the link's address
    s = _segment(book, "We mismanaged it")
    assert s.text.startswith("We mismanaged it, namely, the whole affair & its cost.")
    assert _at(book, s.span) == MARKDOWN[MARKDOWN.index("We _mis") : MARKDOWN.index("etc.") + 4]
    assert _at(book, _segment(book, "Café Life").span) == "Caf&eacute; Life"
    assert _at(book, _segment(book, "first item").span) == "first item, e.g. this one"
    quote = _segment(book, '"Bread')
    assert _at(book, quote.span) == '"Bread _and_ roses," she said, "i.e. both."'
    a, b = _quotation(quote, 1)
    assert quote.text[a:b] == "that is, both."
    al = align(quote.text, book.texts["plan.md"], quote.span)  # type: ignore[arg-type]
    assert _at(book, al.range(a, b)) == "i.e. both."
    a, b = _quotation(quote, 0)
    assert _at(book, al.range(a, b)) == "Bread _and_ roses,"
    # a place inside a word with markup in it: the same letter in the file
    k = s.text.index("managed")
    assert MARKDOWN[position(s.text, MARKDOWN, s.span, k) :].startswith("managed")  # type: ignore[arg-type]


XHTML = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>{title}</title></head>
<body>
{body}
</body>
</html>
"""

CHAPTER = """<h1>The Dawn</h1>
<p>The workers gathered at the <em>gate</em> before the sun was up.<sup><a epub:type="noteref" href="#n1">1</a></sup></p>
<p>"We hold on," said Anna, "whatever the winter brings."<span epub:type="pagebreak" title="12">12</span></p>
<h2>At the Gate</h2>
<p>They spoke of bread &amp; fuel,
and of the long winter.</p>
<aside epub:type="footnote" id="n1"><p>A note the listener never hears.</p></aside>
"""

SECOND = """<h1>A Song</h1>
<p>They sang as they walked home along the river, etc.</p>
<blockquote><p>Arise, you workers, from your slumber,<br/>Arise, you prisoners of want.</p></blockquote>
"""


def _document_text(xhtml: str) -> str:
    """A document's text content, its text nodes in document order (the head's title
    among them), read by another parser."""
    return "".join(ElementTree.fromstring(xhtml.encode()).itertext())


def _epub(path: Path, docs: list[tuple[str, str, str]]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        start_epub(z, "OEBPS/content.opf")
        items = "".join(
            f'<item id="d{i}" href="{n}" media-type="application/xhtml+xml"/>'
            for i, (n, _, _) in enumerate(docs)
        )
        items += (
            '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
        )
        links = "".join(f'<li><a href="{n}">{t}</a></li>' for n, t, _ in docs)
        z.writestr(
            "OEBPS/nav.xhtml",
            XHTML.format(title="Contents", body=f'<nav epub:type="toc"><ol>{links}</ol></nav>'),
        )
        spine = "".join(f'<itemref idref="d{i}"/>' for i in range(len(docs)))
        z.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Dawn</dc:title>'
            "<dc:language>en</dc:language></metadata>"
            f"<manifest>{items}</manifest><spine>{spine}</spine></package>",
        )
        for name, title, body in docs:
            z.writestr(f"OEBPS/{name}", XHTML.format(title=title, body=body))


def test_an_epubs_spans_index_each_documents_text_nodes(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    docs = [("ch1.xhtml", "The Dawn", CHAPTER), ("ch2.xhtml", "A Song", SECOND)]
    _epub(seeds / "book.epub", docs)
    book = book_from(tmp_path, {})
    for name, title, body in docs:
        assert book.texts[f"book.epub/OEBPS/{name}"] == _document_text(
            XHTML.format(title=title, body=body)
        )
    assert_spans_hold_words(book)
    files = {s.span.file for ch in book.chapters for s in ch.segments if s.span}
    assert files == {"book.epub/OEBPS/ch1.xhtml", "book.epub/OEBPS/ch2.xhtml"}
    # the head's title is text content too, but no segment stands in it
    for ch in book.chapters:
        for seg in ch.segments:
            assert seg.span is not None
            title = next(t for n, t, _ in docs if seg.span.file.endswith(n))
            assert seg.span.start >= len(title)
    s = _segment(book, "The workers")
    assert _at(book, s.span) == "The workers gathered at the gate before the sun was up."
    assert (
        _at(book, _segment(book, "They spoke").span)
        == "They spoke of bread & fuel,\nand of the long winter."
    )
    assert _at(book, _segment(book, "At the Gate").span) == "At the Gate"
    said = _segment(book, '"We hold on')
    a, b = _quotation(said, 1)
    al = align(said.text, book.texts[said.span.file], said.span)  # type: ignore[arg-type,union-attr]
    assert _at(book, al.range(a, b)) == "whatever the winter brings."
    assert (
        _at(book, _segment(book, "They sang").span)
        == "They sang as they walked home along the river, etc."
    )
    poem = _segment(book, "Arise")
    assert (
        _at(book, poem.span)
        == "Arise, you workers, from your slumber,Arise, you prisoners of want."
    )


def test_an_html_seeds_spans_index_its_document_text(tmp_path: Path) -> None:
    page = XHTML.format(title="Dawn", body=CHAPTER + SECOND)
    book = book_from(tmp_path, {"dawn.xhtml": page})
    assert book.texts == {"dawn.xhtml": _document_text(page)}
    assert_spans_hold_words(book)
    assert (
        _at(book, _segment(book, "They sang").span)
        == "They sang as they walked home along the river, etc."
    )


def test_a_span_is_no_part_of_a_segments_equality(tmp_path: Path) -> None:
    book = book_from(tmp_path, {"story.txt": PLAIN})
    s = book.chapters[0].segments[0]
    assert replace(s, span=None) == s
    assert replace(s, span=TextSpan("other.txt", 1, 2)) == s


def test_a_mismatch_never_raises_it_gives_the_best_span() -> None:
    chapters, _ = segment_text("Alpha beta gamma delta.\n", "a.txt")
    s = chapters[0].segments[0]
    # a file text that is not the one segmented: the words it has, or no span at all
    from narration.segmenting.locate import Locator

    assert Locator("a.txt", "beta gamma", lines=True).span(s.text, 1) == TextSpan("a.txt", 0, 10)
    assert Locator("a.txt", "nothing alike here", lines=True).span(s.text, 1) is None
    assert Locator("a.txt", "", lines=False).span(s.text) is None
    assert position(s.text, "Alpha beta gamma delta.", s.span, 10_000) == s.span.end  # type: ignore[arg-type]
    assert position(s.text, "Alpha beta gamma delta.", s.span, -5) == s.span.start  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------
# Generated paragraphs

WORDS = st.sampled_from(
    [
        "the",
        "a",
        "river",
        "Anne",
        "mother",
        "went",
        "garden",
        "house",
        "café",
        "naïve",
        "I",
        "o'clock",
        "well-known",
        "Mr.",
        "viz.",
        "etc.",
        "i.e.",
        "1921",
        "words",
        "it_self",
    ]
)


@st.composite
def _paragraphs(draw: st.DrawFn) -> str:
    paragraphs = []
    for _ in range(draw(st.integers(1, 4))):
        out = []
        for _ in range(draw(st.integers(1, 30))):
            w = draw(WORDS)
            style = draw(st.integers(0, 9))
            if style == 0:
                w = f"_{w}_"
            elif style == 1:
                w = f'"{w},"'
            elif style == 2:
                w = f"{w}."
            elif style == 3:
                w = f"“{w}”"
            out.append(w)
            out.append(draw(st.sampled_from([" ", " ", "  ", "\n", " -- "])))
        paragraphs.append("It was " + "".join(out).strip() + ".")  # never a heading
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return "Some Title\n\n" + "\n\n".join(paragraphs).replace("\n", newline) + newline


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_paragraphs())
def test_every_generated_segments_span_holds_its_words(text: str) -> None:
    chapters, removed = segment_text(text, "gen.txt")
    book = Book(chapters=tuple(chapters), removed=tuple(removed), texts={"gen.txt": text})
    assert_spans_hold_words(book)
    for ch in book.chapters:
        for s in ch.segments:
            al = align(s.text, text, s.span)  # type: ignore[arg-type]
            for sp in s.spans:  # each quotation lands on its words
                inner = s.text[sp.start + 1 : sp.end - 1]
                found = al.range(sp.start + 1, sp.end - 1)
                assert spoken_letters(
                    text[found.start : found.end].replace("_", "")
                ) == spoken_letters(
                    inner.replace("namely", "viz")
                    .replace("et cetera", "etc")
                    .replace("that is", "i e")
                ), (inner, text[found.start : found.end])


# -------------------------------------------------------------------------------------------
# A real book


@pytest.mark.skipif(not (BOOKS / "1342-pride-and-prejudice.txt").exists(), reason="no books")
def test_every_segment_of_a_novel_stands_where_its_words_are(tmp_path: Path) -> None:
    data = (BOOKS / "1342-pride-and-prejudice.txt").read_bytes()
    book = book_from(tmp_path, {"pride.txt": data})
    assert data.startswith(codecs.BOM_UTF8) and b"\r\n" in data
    assert_spans_hold_words(book)
    segments = [s for ch in book.chapters for s in ch.segments]
    spans = [s.span for s in segments if s.span is not None]
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))  # in reading order
    text = book.texts["pride.txt"]
    for s in segments:  # each starts and ends where its text does
        assert s.span is not None
        assert text[s.span.start].lower() == s.text[0].lower(), s.text
        last = text[s.span.end - 1]
        assert last == s.text[-1] or (last, s.text[-1]) == ("-", "—"), s.text  # "--" read as —


def test_segments_json_gives_each_segments_span(tmp_path: Path) -> None:
    from narration.segmenting.outline import book_to_json

    text = PLAIN.replace("\n", "\r\n")
    book = book_from(tmp_path, {"story.txt": codecs.BOM_UTF8 + text.encode("utf-8")})
    out = book_to_json(book)
    entries = [e for ch in out["chapters"] for e in ch["segments"]]
    assert all(e["span"]["file"] == "story.txt" for e in entries)
    wrote = next(e for e in entries if e["text"].startswith("He wrote"))
    assert text[wrote["span"]["start"] : wrote["span"]["end"]].startswith("He wrote the letter")

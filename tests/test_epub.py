"""EPUB and HTML seeds: real EPUB files made here, read through the real readers."""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import feedparser
import mutagen
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from narration.cli import main
from narration.errors import InputError
from narration.reading import read_seed_file, seed_contents
from narration.segmenting import segment_book
from narration.segmenting.coverage import words, words_accounted

from .support import start_epub

REPO = Path(__file__).resolve().parent.parent

XHTML = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>{title}</title></head>
<body{body_attrs}>
{body}
</body>
</html>
"""

CHAPTER_ONE = """<h1>The Dawn</h1>
<p>The workers gathered at the gate before the sun was up.<sup><a epub:type="noteref" href="#n1">1</a></sup></p>
<p>They spoke of bread, of fuel and of the long winter.<span epub:type="pagebreak" title="12">12</span></p>
<blockquote>
<p>Dear comrade, the factory is cold but we hold on.</p>
<p>Write to us when you can.</p>
<cite>Anna Petrovna</cite>
</blockquote>
<aside epub:type="footnote" id="n1"><p>A note the listener never hears.</p></aside>
"""

CHAPTER_TWO = """<h1>A Song</h1>
<p>They sang as they walked home along the river.</p>
<div class="poem">
<p>Arise, you workers, from your slumber,<br/>
Arise, you prisoners of want.</p>
</div>
<p>Then the street fell quiet again.<img src="pic.png" alt="A street at night"/></p>
"""

COLOPHON = (
    """<section epub:type="colophon"><p>Set in Garamond by the Example Press.</p></section>"""
)


def make_epub(
    path: Path,
    *,
    version: int = 3,
    cover: bytes | None = None,
    cover_name: str = "cover.jpg",
    extra=(),
    language: str = "en",
) -> Path:
    """An EPUB with two chapters and a colophon; `extra` adds (name, bytes) entries; the
    cover, if any, is OEBPS/`cover_name` (its media type from its extension)."""
    docs = [
        ("ch1.xhtml", "Chapter One: The Dawn", CHAPTER_ONE, ""),
        ("ch2.xhtml", "Chapter Two: A Song", CHAPTER_TWO, ""),
        ("colophon.xhtml", "Colophon", COLOPHON, ""),
    ]
    with zipfile.ZipFile(path, "w") as z:
        start_epub(z, "OEBPS/content.opf")
        items = "".join(
            f'<item id="d{i}" href="{name}" media-type="application/xhtml+xml"/>'
            for i, (name, *_) in enumerate(docs)
        )
        spine = "".join(f'<itemref idref="d{i}"/>' for i in range(len(docs)))
        meta = ""
        if cover is not None:
            prop = ' properties="cover-image"' if version == 3 else ""
            kind = {"svg": "svg+xml", "png": "png"}.get(cover_name.rpartition(".")[2], "jpeg")
            items += f'<item id="cov" href="{cover_name}" media-type="image/{kind}"{prop}/>'
            meta = '<meta name="cover" content="cov"/>' if version == 2 else ""
            z.writestr(f"OEBPS/{cover_name}", cover)
        if version == 3:
            items += '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
            links = "".join(f'<li><a href="{n}">{t}</a></li>' for n, t, *_ in docs[:2])
            z.writestr(
                "OEBPS/nav.xhtml",
                XHTML.format(
                    title="Contents",
                    body_attrs="",
                    body=f'<nav epub:type="toc"><ol>{links}</ol></nav>',
                ),
            )
            toc = ""
        else:
            items += '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
            points = "".join(
                f'<navPoint id="p{i}"><navLabel><text>{t}</text></navLabel><content src="{n}"/></navPoint>'
                for i, (n, t, *_) in enumerate(docs[:2])
            )
            z.writestr(
                "OEBPS/toc.ncx",
                '<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
                f"<navMap>{points}</navMap></ncx>",
            )
            toc = ' toc="ncx"'
        z.writestr(
            "OEBPS/content.opf",
            f'<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="{version}.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
            "<dc:title>The Workers at Dawn</dc:title><dc:creator>Alexandra Kollontai</dc:creator>"
            f"<dc:language>{language}</dc:language>{meta}</metadata>"
            f"<manifest>{items}</manifest><spine{toc}>{spine}</spine></package>",
        )
        for name, title, body, attrs in docs:
            z.writestr(f"OEBPS/{name}", XHTML.format(title=title, body_attrs=attrs, body=body))
        for name, data in extra:
            z.writestr(name, data)
    return path


def seeds_with(tmp_path: Path, epub: Path) -> Path:
    seeds = tmp_path / "seeds"
    seeds.mkdir(exist_ok=True)
    epub.rename(seeds / epub.name)
    return seeds


@pytest.mark.parametrize("version", [3, 2])
def test_an_epub_reads_in_spine_order_with_structure_and_nothing_lost(
    tmp_path: Path, version: int
) -> None:
    seeds = seeds_with(tmp_path, make_epub(tmp_path / "book.epub", version=version))
    book = segment_book(seeds)
    # the navigation's titles, each saying its document's own heading, which is not read twice
    assert [c.title for c in book.chapters] == ["Chapter One: The Dawn", "Chapter Two: A Song"]
    one, two = book.chapters
    assert one.file == "book.epub/OEBPS/ch1.xhtml"
    quote = next(s for s in one.segments if s.kind == "quote")
    assert quote.text.startswith("Dear comrade, the factory is cold")
    assert quote.source is not None and quote.source.author == "Anna Petrovna"
    spoken = " ".join(s.text for c in book.chapters for s in c.segments)
    for unsaid in ("note the listener", "12", "Garamond", "street at night"):
        assert unsaid not in spoken
    assert "the sun was up." in spoken
    verse = [s.text for s in two.segments if "Arise" in s.text]
    assert verse == ["Arise, you workers, from your slumber,", "Arise, you prisoners of want."]
    reasons = Counter(r.reason for r in book.removed)
    assert reasons["footnote reference"] == 1 and reasons["page-break marker"] == 1
    assert reasons["colophon"] == 1 and reasons["image (its alt text is not read)"] == 1
    assert book.facts.title == "The Workers at Dawn"
    assert book.facts.author == "Alexandra Kollontai"
    # every word of every spine document's text is spoken, a title or source, or removed
    texts = seed_contents(seeds)
    assert sorted(texts) == [
        f"book.epub/OEBPS/{n}" for n in ("ch1.xhtml", "ch2.xhtml", "colophon.xhtml")
    ]
    coverage = words_accounted(book, texts)
    assert coverage.ok, str(coverage)
    assert sum(len(words(t)) for t in texts.values()) > 60


def test_letters_epigraphs_and_attributions_from_the_markup(tmp_path: Path) -> None:
    body = (
        "<h1>Letters</h1><p>She wrote at once.</p>"
        '<div epub:type="z3998:letter"><p>My dear friend, the strike holds.</p>'
        '<p class="signature">Alexandra</p></div>'
        "<blockquote><p>Bread and peace for all who work.</p></blockquote>"
        "<p>— Victor Serge, Memoirs of a Revolutionary (1951)</p>"
        "<p>“We will not go back,” she said, and the room fell silent.</p>"
    )
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "letters.xhtml").write_text(
        XHTML.format(title="Letters", body_attrs="", body=body), encoding="utf-8"
    )
    book = segment_book(seeds)
    quotes = [s for s in book.chapters[0].segments if s.kind == "quote"]
    assert [(q.text, q.source and q.source.author) for q in quotes] == [
        # a letter's signature is read where it stands, and names the letter's source
        ("My dear friend, the strike holds. Alexandra", "Alexandra"),
        ("Bread and peace for all who work.", "Victor Serge"),
    ]
    assert quotes[1].source.work == "Memoirs of a Revolutionary"
    said = book.chapters[0].segments[-1]
    assert [said.text[sp.start : sp.end] for sp in said.spans if sp.kind == "dialogue"] == [
        "“We will not go back,”"
    ]
    assert words_accounted(book, seed_contents(seeds)).ok


def test_an_html_seed_reads_like_an_epub_chapter(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "01-dawn.html").write_text(
        XHTML.format(title="Dawn", body_attrs="", body=CHAPTER_ONE), encoding="utf-8"
    )
    (seeds / "02-text.xhtml").write_text(
        XHTML.format(
            title="Text",
            body_attrs="",
            body="<p># Write &lt;em&gt; &amp; [b](c) as text</p><p>&gt; and this is no quote.</p>",
        ),
        encoding="utf-8",
    )
    book = segment_book(seeds)
    assert [c.title for c in book.chapters] == ["The Dawn", "Text"]
    assert any(s.kind == "quote" for s in book.chapters[0].segments)
    # the document's text is text: no character in it is taken for Markdown
    assert [s.text for s in book.chapters[1].segments] == [
        "# Write <em> & [b](c) as text",
        "> and this is no quote.",
    ]


HOSTILE = {
    "not a zip": (lambda p: p.write_bytes(b"this is not an archive"), "not a ZIP archive"),
    "no container": (
        lambda p: zipfile.ZipFile(p, "w").writestr("mimetype", "application/epub+zip"),
        "no META-INF/container.xml",
    ),
    "escaping entry": (
        lambda p: make_epub(p, extra=[("../../evil.txt", b"x")]),
        "escapes the archive",
    ),
    "absolute entry": (
        lambda p: make_epub(p, extra=[("/etc/evil.txt", b"x")]),
        "escapes the archive",
    ),
    "windows entry": (
        lambda p: make_epub(p, extra=[("C:\\evil.txt", b"x")]),
        "escapes the archive",
    ),
    "zip bomb": (
        lambda p: _rewrite(p, "OEBPS/ch1.xhtml", b"<p>a b</p>\n" * (9 * 2**20 // 11)),
        "unpacks to more than 8 MB",
    ),
    "damaged archive": (lambda p: _damage(p), "cannot be unpacked"),
    "drm": (
        lambda p: make_epub(
            p,
            extra=[
                (
                    "META-INF/encryption.xml",
                    '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                    'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
                    '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
                    "</enc:EncryptedData></encryption>",
                )
            ],
        ),
        "encrypted \\(DRM",
    ),
    "adobe drm": (
        lambda p: make_epub(p, extra=[("META-INF/rights.xml", "<rights/>")]),
        "locked \\(Adobe DRM",
    ),
    "no package": (
        lambda p: _rewrite(
            p,
            "META-INF/container.xml",
            b'<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/gone.opf"/></rootfiles></container>',
        ),
        "names no package",
    ),
    "spine names a missing file": (
        lambda p: _drop(p, "OEBPS/ch2.xhtml"),
        "the spine names OEBPS/ch2.xhtml, which is not in it",
    ),
    "entities": (
        lambda p: _entity_bomb(p),
        "entities",
    ),
}


def _rewrite(
    path: Path, name: str, data: bytes | None, compress_type: int = zipfile.ZIP_STORED
) -> None:
    """The EPUB made by make_epub with one entry replaced (None: left out)."""
    make_epub(path)
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    if data is None:
        del entries[name]
    else:
        entries[name] = data
    path.unlink()
    with zipfile.ZipFile(path, "w") as z:
        for n, d in entries.items():
            z.writestr(n, d, compress_type=compress_type if n == name else None)


def _damage(path: Path) -> None:
    """The EPUB with its first chapter deflated and bytes in its stream overwritten."""
    name = "OEBPS/ch1.xhtml"
    with zipfile.ZipFile(make_epub(path)) as z:
        chapter = z.read(name)
    _rewrite(path, name, chapter, zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 10 : start + 40] = b"\xff" * 30
    path.write_bytes(bytes(data))


def _drop(path: Path, name: str) -> None:
    _rewrite(path, name, None)


def _entity_bomb(path: Path) -> None:
    """The EPUB with ch1.xhtml holding a billion-laughs DTD."""
    _rewrite(
        path,
        "OEBPS/ch1.xhtml",
        b'<?xml version="1.0"?><!DOCTYPE html [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;">]>'
        b"<html><body><p>&b;</p></body></html>",
    )


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_epub_is_refused_with_one_line_and_output_untouched(
    make_project, case: str
) -> None:
    root = make_project()
    make, message = HOSTILE[case]
    make(root / "seeds" / "03-book.epub")
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    result = CliRunner().invoke(main, ["build", "-p", str(root), "-q"])
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert "03-book.epub" in line
    import re

    assert re.search(message, line), line
    assert not (root / "output").exists()
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    path = tmp_path / "bomb.epub"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("OEBPS/big.xhtml", b"\0" * (600 * 1024 * 1024))
    with pytest.raises(InputError, match="zip bomb"):
        read_seed_file(path)


def portrait_jpeg(width: int = 600, height: int = 900) -> bytes:
    from PIL import Image

    im = Image.new("RGB", (width, height), (200, 30, 30))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def epub_project(tmp_path: Path, **kwargs) -> Path:
    """A project whose only seed is an EPUB, cast by the repository's voices.yaml."""
    root = tmp_path / "book"
    (root / "seeds").mkdir(parents=True)
    shutil.copy(REPO / "voices.yaml", root / "voices.yaml")
    make_epub(root / "seeds" / "book.epub", **kwargs)
    return root


def test_segments_on_an_epub_shows_its_chapters_quotes_and_what_was_removed(
    tmp_path: Path,
) -> None:
    root = epub_project(tmp_path)
    result = CliRunner().invoke(main, ["segments", "-p", str(root)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "1. Chapter One: The Dawn" in out and "2. Chapter Two: A Song" in out
    assert "quote from Anna Petrovna: Dear comrade" in out
    for reason in ("footnote reference", "page-break marker", "colophon", "footnote (notes"):
        assert reason in out, out


def test_build_from_an_epub_uses_its_cover_title_and_author(tmp_path: Path) -> None:
    root = epub_project(tmp_path, cover=portrait_jpeg(), language="en-GB")
    result = CliRunner().invoke(main, ["build", "-p", str(root), "-q"])
    assert result.exit_code == 0, result.output
    out = root / "output"
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert feed.feed.title == "The Workers at Dawn"
    assert feed.feed.author == "Alexandra Kollontai"
    assert feed.feed.language == "en-GB"  # the book's, as podcast.yaml names none
    assert sorted(e.title for e in feed.entries) == ["Chapter One: The Dawn", "Chapter Two: A Song"]
    from PIL import Image

    with Image.open(out / "cover.jpg") as cover:
        assert cover.size == (1400, 1400)  # a square, the book's portrait cover centred on it
        assert cover.getpixel((700, 700))[0] > 150
    mp3s = sorted(out.glob("*.mp3"))
    assert len(mp3s) == 2
    tags = mutagen.File(mp3s[0])
    assert str(tags["TALB"]) == "The Workers at Dawn" and "APIC:" in "".join(tags.keys())


#: An SVG cover as Standard Ebooks make them: a painting embedded as a data: URI under the
#: title and author drawn as paths.
SVG_COVER = b"""<?xml version="1.0" encoding="utf-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
 version="1.1" viewBox="0 0 1400 2100">
<title>The cover for the Standard Ebooks edition of The Workers at Dawn</title>
<image height="2100" width="1400" x="0" y="0" xlink:href="data:image/png;base64,iVBORw0KGgo="/>
<rect class="title-box" height="400" width="1300" x="50" y="1600" fill="#000"/>
<path d="M 100 1700 L 200 1700 L 200 1800 Z" fill="#fff"/>
</svg>
"""


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("images/cover.svg", SVG_COVER, "the cover is SVG, which narrate cannot draw"),
        ("cover.jpg", portrait_jpeg()[:300], "the cover is not a readable image"),  # cut short
        (
            "cover.png",
            b"\x89PNG\r\n\x1a\n not a png after all",
            "the cover is not a readable image",
        ),
    ],
)
def test_an_epub_cover_narrate_cannot_draw_gives_a_generated_one_and_a_warning(
    tmp_path: Path, name: str, data: bytes, why: str
) -> None:
    """The book's cover is not the user's to fix: the build goes on with a generated cover
    (the one a book without a cover gets) and says, in one line naming it, why."""
    root = epub_project(tmp_path, cover=data, cover_name=name)
    result = CliRunner().invoke(main, ["build", "-p", str(root), "-q"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "book.epub" in line]
    assert warnings == [f"Warning: book.epub: OEBPS/{name}: {why}; using a generated cover"], (
        result.stderr
    )
    out = root / "output"
    assert not (out / "cover.jpg").exists()
    from narration.assembly.cover import generate_cover

    generated = generate_cover("The Workers at Dawn", "Alexandra Kollontai")
    assert (out / "cover.png").read_bytes() == generated
    tags = mutagen.File(sorted(out.glob("*.mp3"))[0])
    assert tags is not None and tags.tags.getall("APIC")[0].data == generated
    assert feedparser.parse((out / "feed.xml").read_bytes()).feed.image.href.endswith("/cover.png")


def test_the_users_portrait_cover_wins_over_the_books_centred_on_a_square(
    tmp_path: Path,
) -> None:
    """seeds/cover.jpg, a printed book's portrait, goes out centred on a square of its
    border's colour (no longer refused as not square), in place of the EPUB's own."""
    from PIL import Image

    root = epub_project(tmp_path, cover=portrait_jpeg())
    mine = Image.new("RGB", (1000, 1500), (20, 60, 120))
    mine.paste((240, 240, 240), (30, 30, 970, 1470))
    mine.save(root / "seeds" / "cover.jpg", quality=95)
    result = CliRunner().invoke(main, ["build", "-p", str(root), "-q"])
    assert result.exit_code == 0, result.output
    assert "book.epub" not in result.stderr  # its cover is not looked at
    with Image.open(root / "output" / "cover.jpg") as cover:
        assert cover.size == (1500, 1500)
        for x, y in ((5, 750), (245, 750), (1254, 750), (1494, 5)):  # the border's colour
            assert all(
                abs(a - b) < 12 for a, b in zip(cover.getpixel((x, y)), (20, 60, 120), strict=True)
            )
        for x, y in ((290, 750), (750, 60), (1210, 1440)):  # the picture, whole
            assert min(cover.getpixel((x, y))) > 225, (x, y)


NOVEL = Path(__file__).resolve().parent / "data" / "news-from-nowhere.txt"


def pack_as_epub(book, path: Path) -> Path:
    """A Book's chapters as an EPUB 3: a document per chapter, its title in the nav, its
    headings, paragraphs and quotes as XHTML marks them."""
    import html

    docs = []
    for n, ch in enumerate(book.chapters, 1):
        parts = [f"<h1>{html.escape(ch.title)}</h1>"]
        for s in ch.segments:
            text = html.escape(s.text)
            if s.kind == "heading":
                parts.append(f"<h2>{text}</h2>")
            elif s.kind == "quote":
                cite = f"<cite>{html.escape(s.source.label())}</cite>" if s.source else ""
                parts.append(f"<blockquote><p>{text}</p>{cite}</blockquote>")
            else:
                parts.append(f"<p>{text}</p>")
        docs.append((f"c{n:03d}.xhtml", ch.title, "\n".join(parts)))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr(
            "META-INF/container.xml",
            '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="book.opf"/></rootfiles></container>',
        )
        items = "".join(
            f'<item id="d{i}" href="{n}" media-type="application/xhtml+xml"/>'
            for i, (n, _, _) in enumerate(docs)
        )
        items += (
            '<item id="nav" href="nav.xhtml" properties="nav" media-type="application/xhtml+xml"/>'
        )
        spine = "".join(f'<itemref idref="d{i}"/>' for i in range(len(docs)))
        z.writestr(
            "book.opf",
            '<package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>News from Nowhere'
            "</dc:title><dc:creator>William Morris</dc:creator></metadata>"
            f"<manifest>{items}</manifest><spine>{spine}</spine></package>",
        )
        links = "".join(f'<li><a href="{n}">{html.escape(t)}</a></li>' for n, t, _ in docs)
        z.writestr(
            "nav.xhtml",
            XHTML.format(
                title="Contents", body_attrs="", body=f'<nav epub:type="toc"><ol>{links}</ol></nav>'
            ),
        )
        for n, t, body in docs:
            z.writestr(n, XHTML.format(title=html.escape(t), body_attrs="", body=body))
    return path


def test_the_novel_packed_as_an_epub_reads_as_its_text_does(tmp_path: Path) -> None:
    from narration.segmenting import segment_text

    text = NOVEL.read_text(encoding="utf-8")
    chapters, _ = segment_text(text, NOVEL.name)
    from narration.model import Book

    plain = Book(tuple(chapters), ())
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    pack_as_epub(plain, seeds / "news-from-nowhere.epub")
    book = segment_book(seeds)
    assert [c.title for c in book.chapters] == [c.title for c in plain.chapters]
    assert len(book.chapters) > 30
    for a, b in zip(plain.chapters, book.chapters, strict=True):
        said_a = Counter(w for s in a.segments for w in words(s.text))
        said_b = Counter(w for s in b.segments for w in words(s.text))
        assert said_a == said_b, (a.title, (said_a - said_b), (said_b - said_a))
        assert [s.kind for s in a.segments] == [s.kind for s in b.segments], a.title
    assert sum(len(words(s.text)) for c in book.chapters for s in c.segments) > 75_000
    coverage = words_accounted(book, seed_contents(seeds))
    assert coverage.ok, str(coverage)


def test_a_whole_book_in_one_document_is_cut_where_the_contents_say(tmp_path: Path) -> None:
    """As Project Gutenberg's EPUBs are: one XHTML file, the book's title an <h1>, each
    chapter an <h2> the table of contents links to by its id, sections below it."""
    body = (
        "<h1>News from Nowhere</h1><p>by William Morris</p>"
        '<h2 id="c1">Chapter I: Discussion and Bed</h2>'
        "<p>Up at the League, says a friend, there had been one night a brisk discussion.</p>"
        "<h3>A Section</h3><p>And it went on until the small hours of the morning.</p>"
        '<div id="c2"></div><h2>Chapter II: A Morning Bath</h2>'
        "<p>Well, I awoke, and found that I had kicked my bedclothes off.</p>"
    )
    path = tmp_path / "seeds" / "nowhere.epub"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr(
            "META-INF/container.xml",
            '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="book.opf"/></rootfiles></container>',
        )
        z.writestr(
            "book.opf",
            '<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata/>'
            '<manifest><item id="t" href="text.xhtml" media-type="application/xhtml+xml"/>'
            '<item id="nav" href="nav.xhtml" properties="nav" media-type="application/xhtml+xml"/>'
            '</manifest><spine><itemref idref="t"/></spine></package>',
        )
        z.writestr(
            "nav.xhtml",
            XHTML.format(
                title="Contents",
                body_attrs="",
                body='<nav epub:type="toc"><ol>'
                '<li><a href="text.xhtml#c1">Chapter I</a><ol><li><a href="text.xhtml#s">A'
                " Section</a></li></ol></li>"
                '<li><a href="text.xhtml#c2">Chapter II</a></li></ol></nav>',
            ),
        )
        z.writestr("text.xhtml", XHTML.format(title="News", body_attrs="", body=body))
    book = segment_book(path.parent)
    assert [c.title for c in book.chapters] == [
        "Chapter I: Discussion and Bed",
        "Chapter II: A Morning Bath",
    ]
    assert book.chapters[0].author == "William Morris"
    assert [s.kind for s in book.chapters[0].segments] == ["narration", "heading", "narration"]
    assert words_accounted(book, seed_contents(path.parent)).ok


WORDS = st.sampled_from(
    [
        *("the", "workers", "Bread", "1921", "said", "&amp;", "“Yes,”", "—", "a.", "B,"),
        *("&lt;em&gt;", "#1", "&gt; not", "[2]", "* * *", "-- x", "_us_", "&amp;amp;", "1."),
        *("Chapter", "IV"),
    ]
)
TEXT = st.lists(WORDS, min_size=1, max_size=8).map(" ".join)


@st.composite
def html_body(draw: st.DrawFn, depth: int = 0) -> str:
    """Random XHTML of the kinds books use, nested a little."""
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        t = draw(TEXT)
        kind = draw(
            st.sampled_from(
                [
                    "p",
                    "h1",
                    "h2",
                    "h3",
                    "quote",
                    "list",
                    "note",
                    "ref",
                    "page",
                    "img",
                    "poem",
                    "div",
                    "table",
                    "br",
                    "cite",
                    "colophon",
                    "span",
                ]
            )
        )
        if kind in ("div", "quote") and depth < 2:
            inner = draw(html_body(depth + 1))
            parts.append(
                f"<blockquote>{inner}</blockquote>" if kind == "quote" else f"<div>{inner}</div>"
            )
        elif kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{t}</{kind}>")
        elif kind == "list":
            parts.append(f"<ul><li>{t}</li><li>{draw(TEXT)}</li></ul>")
        elif kind == "note":
            parts.append(f'<aside epub:type="footnote"><p>{t}</p></aside>')
        elif kind == "ref":
            parts.append(f'<p>{t}<sup><a href="#n1">1</a></sup> {draw(TEXT)}</p>')
        elif kind == "page":
            parts.append(f'<p>{t}<span epub:type="pagebreak">12</span>{draw(TEXT)}</p>')
        elif kind == "img":
            parts.append(f'<p>{t} <img src="x.png" alt="{draw(TEXT)}"/></p>')
        elif kind == "poem":
            parts.append(f'<div class="poem"><p>{t}<br/>{draw(TEXT)}</p></div>')
        elif kind == "table":
            parts.append(f"<table><tr><td>{t}</td><td>{draw(TEXT)}</td></tr></table>")
        elif kind == "br":
            parts.append(f"<p>{t}<br/>{draw(TEXT)}</p>")
        elif kind == "cite":
            parts.append(f"<blockquote><p>{t}</p><cite>{draw(TEXT)}</cite></blockquote>")
        elif kind == "colophon":
            parts.append(f'<section epub:type="colophon"><p>{t}</p></section>')
        elif kind == "span":
            parts.append(f"<p>un<em>{t}</em>ed <b>{draw(TEXT)}</b></p>")
        else:
            parts.append(f"<p>{t}</p>")
        if draw(st.booleans()):
            parts.append("\n")
    return "".join(parts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(html_body())
def test_every_word_of_an_html_document_is_accounted_for(body: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        seeds = Path(tmp) / "seeds"
        seeds.mkdir()
        (seeds / "doc.xhtml").write_text(
            XHTML.format(title="Doc", body_attrs="", body=body), encoding="utf-8"
        )
        try:
            book = segment_book(seeds)
        except InputError as err:
            assert "nothing to read" in str(err)
            return
        coverage = words_accounted(book, seed_contents(seeds))
        assert coverage.ok, f"{coverage}\n{body}"


def build_epub(
    path: Path,
    docs: dict[str, str],
    spine: list[str],
    *,
    nav: str = "",
    ncx: str = "",
    linear_no: tuple[str, ...] = (),
) -> Path:
    """An EPUB from XHTML bodies by file name; `nav` (EPUB 3) or `ncx` (EPUB 2) its contents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr(
            "META-INF/container.xml",
            '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/book.opf"/></rootfiles></container>',
        )
        items = "".join(
            f'<item id="i{k}" href="{name}" media-type="application/xhtml+xml"/>'
            for k, name in enumerate(docs)
        )
        ids = {name: f"i{k}" for k, name in enumerate(docs)}
        toc = ""
        if nav:
            items += '<item id="nav" href="nav.xhtml" properties="nav" media-type="application/xhtml+xml"/>'
            z.writestr("OEBPS/nav.xhtml", XHTML.format(title="Contents", body_attrs="", body=nav))
        if ncx:
            items += '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
            z.writestr(
                "OEBPS/toc.ncx",
                '<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
                f"<navMap>{ncx}</navMap></ncx>",
            )
            toc = ' toc="ncx"'
        linear = {n: ' linear="no"' if n in linear_no else "" for n in spine}
        refs = "".join(f'<itemref idref="{ids[n]}"{linear[n]}/>' for n in spine)
        z.writestr(
            "OEBPS/book.opf",
            '<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata/>'
            f"<manifest>{items}</manifest><spine{toc}>{refs}</spine></package>",
        )
        for name, body in docs.items():
            z.writestr(f"OEBPS/{name}", XHTML.format(title=name, body_attrs="", body=body))
    return path


def point(label: str, src: str) -> str:
    return f'<navPoint><navLabel><text>{label}</text></navLabel><content src="{src}"/></navPoint>'


def test_a_calibre_style_epub_titles_notes_and_title_page(tmp_path: Path) -> None:
    """Calibre's shape: parts named part0000.xhtml, an NCX linking to heading ids, a title
    page not in the contents, notes in a document of their own with no epub:type."""
    docs = {
        "part0000.xhtml": "<p>THE GREAT ESCAPE</p><p>by Ann Author</p><p>ISBN 978-0-00-000000-0</p>",
        "part0001.xhtml": '<h1 id="toc_1">Chapter 1</h1><p>The morning was cold.'
        '<a href="part0003.xhtml#ftn1" id="ref1"><sup>1</sup></a> She walked on.</p>',
        "part0002.xhtml": '<h1 id="toc_2">Chapter 2</h1><p>At night the stars came out.'
        '<a href="part0003.xhtml#ftn2" id="ref2"><sup>2</sup></a></p>',
        "part0003.xhtml": '<p><a href="part0001.xhtml#ref1" id="ftn1"><sup>1</sup></a> About the cold.</p>'
        '<p><a href="part0002.xhtml#ref2" id="ftn2"><sup>2</sup></a> About the stars.</p>',
    }
    ncx = point("Chapter 1: Morning", "part0001.xhtml#toc_1") + point(
        "Chapter 2: Night", "part0002.xhtml#toc_2"
    )
    seeds = tmp_path / "seeds"
    build_epub(seeds / "book.epub", docs, list(docs), ncx=ncx)
    book = segment_book(seeds)
    assert [c.title for c in book.chapters] == ["Chapter 1: Morning", "Chapter 2: Night"]
    spoken = " ".join(s.text for c in book.chapters for s in c.segments)
    assert spoken == "The morning was cold. She walked on. At night the stars came out."
    reasons = Counter(r.reason for r in book.removed)
    assert reasons["footnote (notes are not read)"] == 2
    assert reasons["title page (before the contents' first entry)"] == 1
    assert words_accounted(book, seed_contents(seeds)).ok


def test_a_gutenberg_style_book_in_one_file(tmp_path: Path) -> None:
    """One document: the licence header, the title, a contents table, chapters as <h2> the
    nav links to, page numbers in <span class="pagenum">, verse, notes at the end."""
    body = (
        "<h1>THE BOOK</h1><p>BY ANN AUTHOR</p><h2>CONTENTS</h2>"
        '<table><tr><td><a href="#c1">I. THE START</a></td></tr>'
        '<tr><td><a href="#c2">II. THE END</a></td></tr></table>'
        '<div class="chapter"><h2><a id="c1"></a>CHAPTER I.<br/>THE START</h2>'
        '<p>It began on a Tuesday.<a id="r1"></a><a href="#f1" class="fnanchor">[1]</a>'
        ' Nobody noticed.<span class="pagenum"><a id="Page_2">[Pg 2]</a></span> Then everyone'
        ' did.</p><div class="poetry"><div class="stanza"><div class="verse">The rain it'
        ' raineth every day,</div><div class="verse">Upon the just and unjust fellow.</div>'
        '</div></div><div class="footnotes"><p><a id="f1"></a><a href="#r1">[1]</a> Tuesday'
        " was market day.</p></div></div>"
        '<div class="chapter"><h2><a id="c2"></a>CHAPTER II.<br/>THE END</h2>'
        "<p>And so it ended.</p></div>"
    )
    nav = (
        '<nav epub:type="toc"><ol><li><a href="book.xhtml#c1">Chapter I. The Start</a></li>'
        '<li><a href="book.xhtml#c2">Chapter II. The End</a></li></ol></nav>'
    )
    seeds = tmp_path / "seeds"
    build_epub(seeds / "book.epub", {"book.xhtml": body}, ["book.xhtml"], nav=nav)
    book = segment_book(seeds)
    assert [c.title for c in book.chapters] == ["Chapter I. The Start", "Chapter II. The End"]
    first = [s.text for s in book.chapters[0].segments]
    assert first == [
        "It began on a Tuesday. Nobody noticed. Then everyone did.",
        "The rain it raineth every day,",
        "Upon the just and unjust fellow.",
    ]
    reasons = Counter(r.reason for r in book.removed)
    assert reasons["table of contents"] >= 1 and reasons["page-break marker"] == 1
    assert book.chapters[0].author == "Ann Author"
    assert words_accounted(book, seed_contents(seeds)).ok


def test_markup_that_is_not_speech_says_nothing(tmp_path: Path) -> None:
    body = (
        '<h1>Odd</h1><h2><img src="x.png" alt=""/></h2><h2><a id="p1"></a></h2>'
        "<ul><li></li><li>A real item.</li></ul><p>- not a bullet, a dash.</p>"
        "<blockquote><p>Outer words.</p><blockquote><p>Inner words.</p><cite>Inner Author</cite>"
        "</blockquote><p>Outer again.</p><cite>Outer Author</cite></blockquote>"
        '<div class="letter"><p>My dear, come home.</p><p class="signature">Yours ever, Bob Smith</p></div>'
        "<p>An equation <math><mi>x</mi></math> and a drawing <svg><text>label</text></svg>.</p>"
    )
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "odd.xhtml").write_text(XHTML.format(title="Odd", body_attrs="", body=body))
    book = segment_book(seeds)
    said = [(s.kind, s.text, s.source and s.source.author) for s in book.chapters[0].segments]
    assert said == [
        ("list_item", "A real item.", None),
        ("narration", "- not a bullet, a dash.", None),
        ("quote", "Outer words.", None),
        ("quote", "Inner words.", "Inner Author"),
        ("quote", "Outer again.", "Outer Author"),
        ("quote", "My dear, come home. Yours ever, Bob Smith", "Bob Smith"),
        ("narration", "An equation and a drawing .", None),
    ]
    assert {"mathematics", "text in an SVG image"} <= {r.reason for r in book.removed}
    assert words_accounted(book, seed_contents(seeds)).ok


@pytest.mark.parametrize(
    ("data", "spoken"),
    [
        # XHTML is UTF-8 unless its XML declaration says otherwise: a <meta> never overrides it
        (
            b'<?xml version="1.0"?><html><head><meta charset="iso-8859-1"/></head>'
            b"<body><p>Caf\xc3\xa9 na\xc3\xafve.</p></body></html>",
            "Café naïve.",
        ),
        ("<html><body><p>Café naïve.</p></body></html>".encode("utf-16"), "Café naïve."),
        (
            b'<html><head><meta charset="windows-1252"></head><body><p>Caf\xe9.</p></body></html>',
            "Café.",
        ),
    ],
)
def test_html_encodings(tmp_path: Path, data: bytes, spoken: str) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "page.html").write_bytes(data)
    book = segment_book(seeds)
    assert book.chapters[0].segments[0].text == spoken


def test_a_document_too_large_for_a_book_is_refused_as_it_is_read(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    big = "<p>a b</p>\n" * (9 * 2**20 // 11)  # 9 MB, a few kB packed
    path = build_epub(seeds / "big.epub", {"ch.xhtml": big}, ["ch.xhtml"])
    with pytest.raises(InputError, match="unpacks to more than 8 MB"):
        read_seed_file(path)


def test_image_descriptions_are_read_when_voices_yaml_says_so(tmp_path: Path) -> None:
    import json

    root = epub_project(tmp_path)
    spoken = json.loads(CliRunner().invoke(main, ["segments", "-p", str(root), "--json"]).output)
    texts = [s["text"] for c in spoken["chapters"] for s in c["segments"]]
    assert not any("street at night" in t for t in texts)
    voices = root / "voices.yaml"
    voices.write_text(voices.read_text() + "\nreading:\n  image_descriptions: true\n")
    result = CliRunner().invoke(main, ["segments", "-p", str(root), "--json"])
    assert result.exit_code == 0, result.output
    book = json.loads(result.output)
    texts = [s["text"] for c in book["chapters"] for s in c["segments"]]
    assert "Then the street fell quiet again. A street at night" in texts
    assert not any(r["text"] == "A street at night" for r in book["removed"])
    voices.write_text(voices.read_text().replace("image_descriptions", "image_description"))
    result = CliRunner().invoke(main, ["segments", "-p", str(root)])
    assert result.exit_code != 0
    assert "unknown key 'image_description' (did you mean 'image_descriptions'?)" in result.output

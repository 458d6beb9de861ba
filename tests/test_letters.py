"""Letters read as printed: a Standard Ebooks letter's salutation, body, valediction,
signature and postscript in order, in the letter's voice, announced from its signature's
name; a signature never a heading or a chapter mark; a quote's source never a paragraph.
The fixtures are short excerpts of Stevenson's Strange Case of Dr Jekyll and Mr Hyde (1886)
and Shelley's Frankenstein (1818), marked up as Standard Ebooks and Project Gutenberg do.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import mutagen.mp3
import pytest
from click.testing import CliRunner
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

from narration.cli import main
from narration.model import Book, Segment
from narration.segmenting import segment_book

from .support import assert_every_word_once, book_from, start_epub

REPO = Path(__file__).resolve().parent.parent

XHTML = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" \
epub:prefix="z3998: http://www.daisy.org/z3998/2012/vocab/structure/, se: https://standardebooks.org/vocab/1.0">
<head><title>{title}</title></head>
<body epub:type="bodymatter z3998:fiction">
{body}
</body>
</html>
"""

#: The closing of Jekyll's letter to Lanyon as Standard Ebooks marks it: a <footer> holding
#: the valediction, the signature and the postscript.
SE_FOOTER = """<footer role="presentation">
<p epub:type="z3998:valediction">“Your friend,</p>
<p epub:type="z3998:signature">“<abbr epub:type="z3998:given-name">H. J.</abbr></p>
<p epub:type="z3998:postscript">“<abbr epub:type="z3998:initialism">P.S.</abbr>⁠—I had \
already sealed this up when a fresh terror struck upon my soul. It is possible that the \
post-office may fail me, and this letter not come into your hands until tomorrow morning. \
In that case, dear Lanyon, do my errand when it shall be most convenient for you in the \
course of the day; and once more expect my messenger at midnight.”</p>
</footer>"""

#: The same closing with the signature inside the valediction's line, as some SE books have it.
SE_INLINE_SIGNATURE = """<footer>
<p epub:type="z3998:valediction">“Your friend, <b epub:type="z3998:signature">H. J.</b></p>
<p epub:type="z3998:postscript">“P.S.—I had already sealed this up when a fresh terror \
struck upon my soul.”</p>
</footer>"""

#: The Standard Ebooks manual's sender with a signature inside it, and a postscript of two
#: paragraphs in a <div>.
SE_SENDER = """<footer>
<p epub:type="z3998:valediction">“Your friend,</p>
<p epub:type="z3998:sender"><span epub:type="z3998:signature">H. J.</span>, M.D.</p>
<div epub:type="z3998:postscript"><p>“P.S.—I had already sealed this up when a fresh terror \
struck upon my soul.</p><p>“Once more expect my messenger at midnight.”</p></div>
</footer>"""

#: Project Gutenberg's shape: a letter <div>, its closing right-aligned, a postscript after.
PG_CLOSING = """<p class="right">“Your friend,<br/>“H. J.</p>
<p>“P.S.—I had already sealed this up when a fresh terror struck upon my soul.”</p>"""


def lanyon(closing: str, letter: str = '<blockquote epub:type="z3998:letter">') -> str:
    """Dr. Lanyon's Narrative, shortened: Jekyll's letter, and Lanyon's own signature
    closing the chapter in a <footer> of its own."""
    end = "</blockquote>" if letter.startswith("<blockquote") else "</div>"
    return f"""<section id="chapter-9" epub:type="chapter">
<h2 epub:type="title">Dr. Lanyon’s Narrative</h2>
<p>On the ninth of January, now four days ago, I received by the evening delivery a \
registered envelope, addressed in the hand of my colleague and old school companion, Henry \
Jekyll. The contents increased my wonder; for this is how the letter ran:</p>
{letter}
<header><p epub:type="se:letter.dateline">“10th December, 18⁠—.</p></header>
<p>“<span epub:type="z3998:salutation">Dear Lanyon</span>⁠—You are one of my oldest \
friends; and although we may have differed at times on scientific questions, I cannot \
remember, at least on my side, any break in our affection.</p>
<p>“Serve me, my dear Lanyon, and save</p>
{closing}
{end}
<p>Upon the reading of this letter, I made sure my colleague was insane.</p>
<footer><p epub:type="z3998:signature">Hastie Lanyon</p></footer>
</section>"""


def se_epub(path: Path, chapter: str) -> Path:
    """A Standard Ebooks-shaped EPUB 3 (mimetype first and stored): a short first chapter
    and Dr. Lanyon's Narrative, titled by its nav."""
    docs = {
        "chapter-1.xhtml": (
            "Story of the Door",
            '<section id="chapter-1" epub:type="chapter"><h2 epub:type="title">Story of the '
            "Door</h2><p>Mr. Utterson the lawyer was a man of a rugged countenance that was "
            "never lighted by a smile.</p></section>",
        ),
        "chapter-9.xhtml": ("Dr. Lanyon’s Narrative", chapter),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        start_epub(z, "epub/content.opf")
        items = "".join(
            f'<item id="d{k}" href="text/{n}" media-type="application/xhtml+xml"/>'
            for k, n in enumerate(docs)
        )
        items += (
            '<item id="toc" href="toc.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
        )
        spine = "".join(f'<itemref idref="d{k}"/>' for k in range(len(docs)))
        z.writestr(
            "epub/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>The Strange Case '
            "of Dr. Jekyll and Mr. Hyde</dc:title><dc:creator>Robert Louis Stevenson"
            "</dc:creator><dc:language>en-GB</dc:language></metadata>"
            f"<manifest>{items}</manifest><spine>{spine}</spine></package>",
        )
        links = "".join(f'<li><a href="text/{n}">{t}</a></li>' for n, (t, _) in docs.items())
        z.writestr(
            "epub/toc.xhtml",
            XHTML.format(title="Contents", body=f'<nav epub:type="toc"><ol>{links}</ol></nav>'),
        )
        for n, (t, body) in docs.items():
            z.writestr(f"epub/text/{n}", XHTML.format(title=t, body=body))
    return path


def segments(book: Book, title: str) -> tuple[Segment, ...]:
    return next(c for c in book.chapters if c.title == title).segments


def in_order(text: str, *pieces: str) -> bool:
    """Each piece found in the text, after the one before it."""
    at = 0
    for piece in pieces:
        found = text.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


#: The closing and the name on one line.
PG_ONE_LINE = """<p class="right">“Your friend, H. J.</p>
<p>“P.S.—I had already sealed this up when a fresh terror struck upon my soul.”</p>"""


@pytest.mark.parametrize(
    ("closing", "letter"),
    [
        (SE_FOOTER, '<blockquote epub:type="z3998:letter">'),
        (SE_INLINE_SIGNATURE, '<blockquote epub:type="z3998:letter">'),
        (SE_SENDER, '<blockquote epub:type="z3998:letter">'),
        (PG_CLOSING, '<div class="letter">'),
        (PG_ONE_LINE, '<div class="letter">'),
    ],
    ids=[
        *("se-footer", "se-inline-signature", "se-sender"),
        *("gutenberg-right-aligned", "gutenberg-one-line-closing"),
    ],
)
def test_a_letter_reads_in_order_with_its_signature_as_a_short_source(
    tmp_path: Path, closing: str, letter: str
) -> None:
    seeds = tmp_path / "seeds"
    se_epub(seeds / "jekyll.epub", lanyon(closing, letter))
    book = segment_book(seeds)
    said = segments(book, "Dr. Lanyon’s Narrative")
    quotes = [s for s in said if s.kind == "quote"]
    assert len(quotes) == 1
    letter_text = quotes[0].text
    # printed order: dateline, salutation, body, valediction, signature, postscript
    assert in_order(
        letter_text, "10th December", "Dear Lanyon", "and save", "Your friend,", "H. J.", "P.S."
    ), letter_text
    assert quotes[0].source is not None and quotes[0].source.label() == "H. J."
    # the letter is the one quote, between the narration around it, and the chapter's own
    # signature closes its last paragraph: never a heading
    assert [s.kind for s in said] == ["narration", "quote", "narration"]
    assert said[-1].text.endswith("insane. Hastie Lanyon")
    assert_every_word_once(book, tmp_path / "seeds")


def test_a_quote_source_is_a_name_never_a_paragraph(tmp_path: Path) -> None:
    """A <footer> or <cite> of a paragraph's length is read with the quote, which is
    announced without a source; a short one is still its source."""
    long = (
        "Written in the year of the great frost, when the river froze from bank to bank and "
        "the fairs were held upon the ice"
    )
    body = (
        "<h1>Sources</h1><p>She read it out.</p>"
        f"<blockquote><p>We hold on.</p><footer>{long}</footer></blockquote>"
        "<p>And another.</p>"
        f"<blockquote><p>Bread and peace.</p><cite>{long}</cite></blockquote>"
        "<p>And a third.</p>"
        "<blockquote><p>All power to the soviets.</p><footer>— Anna Petrovna</footer></blockquote>"
    )
    book = book_from(tmp_path, {"sources.xhtml": XHTML.format(title="Sources", body=body)})
    quotes = [(s.text, s.source and s.source.label()) for s in book.chapters[0].segments]
    quotes = [q for q in quotes if q[0] not in ("She read it out.", "And another.", "And a third.")]
    assert quotes == [
        (f"We hold on. {long}", None),
        (f"Bread and peace. {long}", None),
        ("All power to the soviets.", "Anna Petrovna"),
    ]
    assert_every_word_once(book, tmp_path / "seeds")


def test_a_gutenberg_letter_reads_on_in_one_voice_and_its_initials_are_no_heading(
    tmp_path: Path,
) -> None:
    """Project Gutenberg's Frankenstein: a letter's salutation in <p class="letter">, its
    body in plain paragraphs, its signature right-aligned initials: the salutation is no
    quote of its own, the initials no section heading."""
    body = (
        "<h1>Frankenstein</h1><h3>Letter 3</h3>"
        '<p class="letter">&#8220;My dearest Sister,</p>'
        "<p>My swelling heart involuntarily pours itself out thus. But I must finish. "
        "Heaven bless my beloved sister!</p>"
        '<p class="right">R.W.</p>'
        "<h3>Letter 4</h3><p>So strange an accident has happened to us that I cannot forbear "
        "recording it.</p>"
    )
    page = XHTML.format(title="Frankenstein", body=body)
    book = book_from(tmp_path, {"frankenstein.html": page})
    said = [(s.kind, s.text) for c in book.chapters for s in c.segments]
    assert ("heading", "R.W.") not in said and all(k != "quote" for k, _ in said)
    texts = [t for _, t in said]
    assert "“My dearest Sister," in texts
    assert any(t.endswith("Heaven bless my beloved sister! R.W.") for t in texts), said
    assert_every_word_once(book, tmp_path / "seeds")


def test_an_espeak_build_reads_the_postscript_after_the_signature_and_marks_no_signature(
    tmp_path: Path,
) -> None:
    """The real engine: the episode's transcript has the P.S. after the signature, and
    neither the MP3's CHAP frames nor the M4B's chapters carry the P.S. or a signature
    other than the letter's source."""
    root = tmp_path / "book"
    se_epub(root / "seeds" / "jekyll.epub", lanyon(SE_FOOTER))
    shutil.copy(REPO / "voices.yaml", root / "voices.yaml")
    result = CliRunner().invoke(main, ["build", "-p", str(root), "-q", "--m4b"])
    assert result.exit_code == 0, result.output
    out = root / "output"
    report = json.loads((out / "build.json").read_text(encoding="utf-8"))
    mp3 = out / report["chapters"][1]["mp3"]
    vtt = mp3.with_suffix(".vtt").read_text(encoding="utf-8")
    # each cue's text: the lines after its timing line, in the order heard
    cues = " ".join(
        " ".join(block.split("\n")[2:]) for block in vtt.split("\n\n")[1:] if "-->" in block
    )
    assert in_order(cues, "From H. J.", "Your friend,", "H. J.", "P.S.", "Hastie Lanyon"), cues
    title = "Dr. Lanyon’s Narrative"
    chap = sorted(ID3(mp3).getall("CHAP"), key=lambda f: f.start_time)
    marks = [f.sub_frames["TIT2"].text[0] for f in chap]
    assert marks == [title, "H. J.", title]
    sidecar = json.loads(mp3.with_suffix(".chapters.json").read_text(encoding="utf-8"))
    assert [c["title"] for c in sidecar["chapters"]] == marks
    book = MP4(out / report["audiobook"]["file"])
    assert book.chapters is not None
    names = [c.title for c in book.chapters]
    assert "H. J." in names and title in names
    assert not any("P.S." in n or ("Lanyon" in n and n != title) for n in names), names
    assert mutagen.mp3.MP3(mp3).info.length > 5


def test_a_dash_line_of_a_paragraph_s_length_is_read_never_announced(tmp_path: Path) -> None:
    """Markdown: `— Name` below or inside a quote is its source; a dash-led line of more
    than a few words is text: read in the quote (inside it) or as a paragraph (below it)."""
    long = (
        "So the letter ended, and the men who had carried it across the frozen river sat "
        "down to rest by the fire."
    )
    letters = (
        "# Letters\n\n"
        f"> We hold on through the winter.\n> — {long}\n\n"
        f"> Bread and peace.\n\n— {long}\n\n"
        "> All power to the soviets.\n\n— Anna Petrovna, Letters (1921)\n"
    )
    book = book_from(tmp_path, {"letters.md": letters})
    said = [(s.kind, s.text, s.source and s.source.label()) for s in book.chapters[0].segments]
    assert said == [
        ("quote", f"We hold on through the winter. — {long}", None),
        ("quote", "Bread and peace.", None),
        ("narration", f"— {long}", None),
        ("quote", "All power to the soviets.", "Anna Petrovna, Letters (1921)"),
    ]
    assert_every_word_once(book, tmp_path / "seeds")

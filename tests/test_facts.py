"""Nothing invented, the book's facts used: the years in the tags and on the page, and an
EPUB's own description, title, subtitle and language where podcast.yaml is silent.

Real EPUBs made here, built through the command line with the real engine; the MP3s and the
M4B are read back with mutagen (ID3 frames as saved: ID3v2.3's TYER and TORY), the feed
with lxml and feedparser. The clock is moved with SOURCE_DATE_EPOCH, the reproducible-builds
convention narrate reads for the day of a project's first build.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import feedparser
import mutagen.id3
import podcastparser
import pytest
from click.testing import CliRunner
from lxml import etree
from mutagen.mp4 import MP4

from narration.cli import main
from narration.pipeline.checks import check_project, resolve_show
from narration.pipeline.project import open_project
from narration.reading import read_seed_file

from .support import REPO, start_epub

OPF_NS = "http://www.idpf.org/2007/opf"
ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
DESCRIPTION = (
    "&lt;p&gt;A London lawyer looks into the &lt;i&gt;strange&lt;/i&gt; case of his old "
    "friend &amp;amp; a violent stranger.&lt;/p&gt;&lt;p&gt;Told in letters&lt;br/&gt;and "
    "statements.&lt;/p&gt;"
)
#: DESCRIPTION as the listener should read it: markup gone, its two paragraphs kept apart.
DESCRIBED = (
    "A London lawyer looks into the strange case of his old friend & a violent stranger."
    "\n\nTold in letters and statements."
)
CHAPTERS = (
    ("Story of the Door", "Mr. Utterson the lawyer was a man of a rugged countenance."),
    ("Search for Mr. Hyde", "That evening Mr. Utterson came home to his bachelor house."),
)


def write_epub(path: Path, metadata: str, *, version: int = 3) -> Path:
    """A two-chapter EPUB whose OPF metadata holds `metadata` (dc: elements, meta)."""
    xhtml = (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
        "<head><title>{0}</title></head><body><h1>{0}</h1><p>{1}</p></body></html>"
    )
    with zipfile.ZipFile(path, "w") as z:
        start_epub(z, "OEBPS/content.opf")
        items = spine = links = ""
        for i, (title, text) in enumerate(CHAPTERS):
            z.writestr(f"OEBPS/c{i}.xhtml", xhtml.format(title, text))
            items += f'<item id="c{i}" href="c{i}.xhtml" media-type="application/xhtml+xml"/>'
            spine += f'<itemref idref="c{i}"/>'
            links += f'<li><a href="c{i}.xhtml">{title}</a></li>'
        items += (
            '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
        )
        z.writestr(
            "OEBPS/nav.xhtml",
            '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml" '
            'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head>'
            f'<body><nav epub:type="toc"><ol>{links}</ol></nav></body></html>',
        )
        z.writestr(
            "OEBPS/content.opf",
            f'<?xml version="1.0"?><package xmlns="{OPF_NS}" version="{version}.0">'
            f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="{OPF_NS}">'
            f"{metadata}</metadata><manifest>{items}</manifest><spine>{spine}</spine></package>",
        )
    return path


#: What Standard Ebooks' OPF says: a title, an author, a language, the ebook's own date
#: (never the work's) and a description with markup in it.
STANDARD = (
    "<dc:title>The Strange Case of Dr. Jekyll and Mr. Hyde</dc:title>"
    "<dc:creator>Robert Louis Stevenson</dc:creator><dc:language>en-GB</dc:language>"
    f"<dc:date>2019-01-17T03:46:04Z</dc:date><dc:description>{DESCRIPTION}</dc:description>"
)


def project(root: Path, metadata: str = STANDARD, podcast: str | None = None) -> Path:
    """A project whose only seed is an EPUB, cast by the repository's voices.yaml."""
    (root / "seeds").mkdir(parents=True)
    shutil.copy(REPO / "voices.yaml", root / "voices.yaml")
    write_epub(root / "seeds" / "book.epub", metadata)
    if podcast is not None:
        (root / "podcast.yaml").write_text(podcast, encoding="utf-8")
    return root


def epoch(year: int, month: int = 1, day: int = 1) -> str:
    return str(int(datetime(year, month, day, 12, tzinfo=timezone.utc).timestamp()))


def build(root: Path, monkeypatch: pytest.MonkeyPatch, clock: str, *args: str) -> str:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", clock)
    result = CliRunner().invoke(main, ["build", "-p", str(root), "-q", "--m4b", *args])
    assert result.exit_code == 0, result.output
    return result.output


def frames(root: Path) -> list[dict[str, str]]:
    """Each MP3's ID3 text frames as saved (translate=False: v2.3's TYER stays TYER)."""
    found = []
    for mp3 in sorted((root / "output").glob("*.mp3")):
        tags = mutagen.id3.ID3(mp3, translate=False)
        assert tags.version[:2] == (2, 3)
        found.append({k: str(v) for k, v in tags.items() if k[0] == "T"})
    return found


def m4b_tags(root: Path) -> dict:
    (book,) = (root / "output").glob("*.m4b")
    tags = MP4(book).tags
    assert tags is not None
    return dict(tags)


def products(root: Path) -> dict[str, str]:
    """Every file the build delivers, by sha256 (not its timings)."""
    out = root / "output"
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "build.json"
    }


def test_no_year_is_invented_and_the_recording_year_is_the_first_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No podcast.yaml, an EPUB stating no year of the work (only the ebook's dc:date): the
    MP3s carry the first build's year as TYER and no TORY, the M4B that year as its one
    ©day; later builds on other days give the same bytes; never 2000."""
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(tmp_path / "cache"))
    root = project(tmp_path / "book")
    build(root, monkeypatch, epoch(2026, 12, 1))
    tags = frames(root)
    assert len(tags) == 2
    for frame in tags:
        assert frame["TYER"] == "2026"
        assert "TORY" not in frame and "TDRC" not in frame  # the ebook's 2019 is not the work's
        assert "2000" not in frame.values() and "2019" not in frame.values()
    assert m4b_tags(root)["\xa9day"] == ["2026"]
    lock = json.loads((root / "narrate.lock").read_text())
    assert lock["first_build"] == "2026-12-01"
    page = (root / "output" / "index.html").read_text(encoding="utf-8")
    assert 'class="year"' not in page and "2019" not in page and "2000" not in page
    feed = (root / "output" / "feed.xml").read_text(encoding="utf-8")
    assert "2019" not in feed and "2000" not in feed and "copyright" not in feed.lower()

    made = products(root)
    build(root, monkeypatch, epoch(2031, 6, 30))  # the clock of a later build changes nothing
    assert products(root) == made
    assert json.loads((root / "narrate.lock").read_text())["first_build"] == "2026-12-01"

    # A lock of an older narrate (episodes, no first_build) takes the next build's day once.
    del lock["first_build"]
    (root / "narrate.lock").write_text(json.dumps(lock))
    build(root, monkeypatch, epoch(2031, 6, 30))
    assert json.loads((root / "narrate.lock").read_text())["first_build"] == "2031-06-30"
    assert {f["TYER"] for f in frames(root)} == {"2031"}
    made = products(root)
    build(root, monkeypatch, epoch(2035, 2, 2))
    assert products(root) == made


def test_the_works_year_comes_only_from_podcast_yaml_or_a_source_that_states_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An EPUB 2 stating its original publication (opf:event): TORY, the page and the M4B's
    ©day say 1886; podcast.yaml's `year:` wins over it; TYER stays the first build's."""
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(tmp_path / "cache"))
    stated = STANDARD + '<dc:date opf:event="original-publication">1886-01-05</dc:date>'
    root = project(tmp_path / "book", stated)
    build(root, monkeypatch, epoch(2026, 12, 1))
    for frame in frames(root):
        assert (frame["TYER"], frame["TORY"]) == ("2026", "1886")
    assert m4b_tags(root)["\xa9day"] == ["1886"]  # the work's year, where known
    page = (root / "output" / "index.html").read_text(encoding="utf-8")
    assert '<span class="year">(1886)</span>' in page

    (root / "podcast.yaml").write_text("year: 1885\n", encoding="utf-8")
    build(root, monkeypatch, epoch(2027, 3, 9))
    for frame in frames(root):
        assert (frame["TYER"], frame["TORY"]) == ("2026", "1885")
    assert m4b_tags(root)["\xa9day"] == ["1885"]
    assert "(1885)" in (root / "output" / "index.html").read_text(encoding="utf-8")


def test_an_epubs_description_describes_the_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its dc:description, markup dropped, in the feed's channel, the page and the M4B,
    where podcast.yaml gives none; and the feed's language is the book's."""
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(tmp_path / "cache"))
    root = project(tmp_path / "book")
    build(root, monkeypatch, epoch(2026, 12, 1))
    out = root / "output"
    channel = etree.parse(str(out / "feed.xml")).find("channel")
    assert channel is not None
    assert channel.findtext("description") == DESCRIBED
    assert channel.findtext("language") == "en-GB"
    parsed = feedparser.parse(str(out / "feed.xml"))
    assert not parsed.bozo and parsed.feed.title == "The Strange Case of Dr. Jekyll and Mr. Hyde"
    assert "read by narrate" not in (out / "feed.xml").read_text(encoding="utf-8")
    page = (out / "index.html").read_text(encoding="utf-8")
    assert (
        "<p>A London lawyer looks into the strange case of his old friend &amp; a violent "
        "stranger.</p>" in page
    )
    assert "<p>Told in letters and statements.</p>" in page
    assert m4b_tags(root)["ldes"] == [DESCRIBED]


def test_a_book_nobody_names_an_author_of_is_by_nobody_rather_than_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain-text seed naming no author, no podcast.yaml: no artist in the tags, no
    itunes:author, no byline on the page, and "Unknown" nowhere."""
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "notes"
    (root / "seeds").mkdir(parents=True)
    shutil.copy(REPO / "voices.yaml", root / "voices.yaml")
    (root / "seeds" / "notes.txt").write_text(
        "Some notes on the river.\n\nThe water was high that spring.\n", encoding="utf-8"
    )
    build(root, monkeypatch, epoch(2026, 12, 1))
    (frame,) = frames(root)
    assert "TPE1" not in frame and "TPE2" not in frame
    assert frame["TYER"] == "2026" and "TORY" not in frame
    tags = m4b_tags(root)
    assert "\xa9ART" not in tags and "aART" not in tags and tags["\xa9day"] == ["2026"]
    out = root / "output"
    feed = etree.parse(str(out / "feed.xml"))
    assert feed.find(f"channel/{{{ITUNES}}}author") is None
    assert feed.find(f"channel/item/{{{ITUNES}}}author") is None
    assert not feedparser.parse(str(out / "feed.xml")).bozo
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'class="author"' not in page
    for name in ("feed.xml", "index.html"):
        assert "Unknown" not in (out / name).read_text(encoding="utf-8")


def facts_of(tmp_path: Path, metadata: str, *, version: int = 3):
    path = write_epub(tmp_path / f"book{version}.epub", metadata, version=version)
    return read_seed_file(path).facts


def test_the_epub_reader_takes_what_the_opf_states_and_nothing_more(tmp_path: Path) -> None:
    facts = facts_of(tmp_path, STANDARD)
    assert facts.title == "The Strange Case of Dr. Jekyll and Mr. Hyde"
    assert facts.author == "Robert Louis Stevenson" and facts.language == "en-GB"
    assert facts.description == DESCRIBED
    assert facts.year is None and facts.subtitle is None  # dc:date is the ebook's
    refined = (
        '<dc:title id="t1">Kidnapped</dc:title><dc:title id="t2">Being Memoirs of the '
        'Adventures of David Balfour</dc:title><meta refines="#t1" property="title-type">'
        'main</meta><meta refines="#t2" property="title-type">subtitle</meta>'
        "<dc:description>  Plain text,\n  kept as it is: AT&amp;T &lt;3 </dc:description>"
    )
    facts = facts_of(tmp_path, refined)
    assert facts.title == "Kidnapped"
    assert facts.subtitle == "Being Memoirs of the Adventures of David Balfour"
    assert facts.description == "Plain text, kept as it is: AT&T <3"
    epub2 = '<dc:title>Kidnapped</dc:title><dc:date opf:event="original-publication">1886</dc:date>'
    assert facts_of(tmp_path, epub2, version=2).year == 1886
    assert facts_of(tmp_path, "<dc:title>Kidnapped</dc:title><dc:date>1886</dc:date>").year is None


def show_of(root: Path, recorded=None, warnings: list[str] | None = None):
    checked = check_project(open_project(root))
    return resolve_show(checked, recorded, (warnings if warnings is not None else []).append)


def test_the_show_falls_back_on_the_books_facts_and_says_when_one_is_unusable(
    tmp_path: Path,
) -> None:
    subtitled = (
        '<dc:title id="t1">Kidnapped</dc:title><dc:title id="t2">Being Memoirs of David '
        'Balfour</dc:title><meta refines="#t2" property="title-type">subtitle</meta>'
        "<dc:creator>Robert Louis Stevenson</dc:creator><dc:language>English</dc:language>"
    )
    warnings: list[str] = []
    show = show_of(project(tmp_path / "a", subtitled), warnings=warnings)
    assert show.title == "Kidnapped" and show.author == "Robert Louis Stevenson"
    assert show.description == "Kidnapped: Being Memoirs of David Balfour, read by narrate."
    assert show.year is None and show.recorded is None
    assert show.language == "en"  # "English" is not a code: the default, and a warning
    assert len(warnings) == 1 and "'English' is not a language code" in warnings[0]
    assert "podcast.yaml" in warnings[0]

    named = "title: Balfour\ndescription: Read aloud.\nlanguage: fr\nyear: 1886\n"
    show = show_of(project(tmp_path / "b", STANDARD, podcast=named))
    assert (show.title, show.description, show.language, show.year) == (
        "Balfour",
        "Read aloud.",
        "fr",
        1886,
    )
    show = show_of(project(tmp_path / "c", subtitled, podcast="title: Balfour\n"))
    assert show.description == "Balfour, read by narrate."  # the subtitle is the book's title's


def test_a_clock_that_is_not_a_count_of_seconds_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "book")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    result = CliRunner().invoke(main, ["build", "-p", str(root), "-q"])
    assert result.exit_code == 1
    said = [line for line in result.output.splitlines() if not line.startswith("Warning:")]
    assert said == ["Error: $SOURCE_DATE_EPOCH: 'yesterday' is not a count of seconds since 1970"]
    assert not (root / "output").exists() and not (root / "narrate.lock").exists()


def test_a_year_no_tag_can_hold_is_refused_naming_the_line(tmp_path: Path) -> None:
    root = project(tmp_path / "book", podcast="title: Jekyll\nyear: 18860\n")
    result = CliRunner().invoke(main, ["build", "-p", str(root), "-q"])
    assert result.exit_code == 2  # a configuration error
    said = [line for line in result.output.splitlines() if not line.startswith("Warning:")]
    assert said == [
        f"Error: {root / 'podcast.yaml'}:2: year: must be between 0 and 9999 (got 18860)"
    ]
    assert not (root / "output").exists()


def test_a_show_nobody_titles_warns_and_no_owner_is_made_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No title in podcast.yaml or the book: the build says which title it fell back on.
    podcast.yaml names an author and no owner: itunes:author is that author, and the feed
    has no itunes:owner (Apple lists it as recommended, not required) rather than the author
    as the show's contact."""
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "notes"
    (root / "seeds").mkdir(parents=True)
    shutil.copy(REPO / "voices.yaml", root / "voices.yaml")
    (root / "podcast.yaml").write_text("author: Jane Roe\n", encoding="utf-8")
    (root / "seeds" / "notes.txt").write_text(
        "Chapter I\n\nThe water was high that spring.\n", encoding="utf-8"
    )
    monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch(2026, 12, 1))
    result = CliRunner().invoke(main, ["build", "-p", str(root), "-q"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "no title" in line]
    assert warned == [
        "Warning: podcast.yaml: no title, and the book names none; the show is called "
        "'Chapter I' after its first chapter (set title: in podcast.yaml)"
    ]
    out = root / "output"
    feed = etree.parse(str(out / "feed.xml"))
    assert feed.findtext("channel/title") == "Chapter I"
    assert feed.findtext(f"channel/{{{ITUNES}}}author") == "Jane Roe"
    assert feed.find(f"channel/{{{ITUNES}}}owner") is None
    parsed = feedparser.parse(str(out / "feed.xml"))
    assert not parsed.bozo and "publisher_detail" not in parsed.feed
    with open(out / "feed.xml", "rb") as fh:
        podcast = podcastparser.parse("http://127.0.0.1:8000/feed.xml", fh)
    assert "itunes_owner" not in podcast and podcast["itunes_author"] == "Jane Roe"

    (root / "podcast.yaml").write_text(
        "title: Notes\nauthor: Jane Roe\nowner_name: Sam Poe\nowner_email: sam@example.org\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["build", "-p", str(root), "-q"])
    assert result.exit_code == 0 and "no title" not in result.output, result.output
    with open(out / "feed.xml", "rb") as fh:
        podcast = podcastparser.parse("http://127.0.0.1:8000/feed.xml", fh)
    assert podcast["itunes_owner"] == {"name": "Sam Poe", "email": "sam@example.org"}

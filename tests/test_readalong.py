"""The read-along book: real builds (espeak-ng) with --readalong, the EPUB read back with a
zip and an XML parser against the WebVTT transcripts (read by webvtt-py), validated by
W3C's EPUBCheck 5, rebuilt the ways users rebuild, and the show page's read-along view
driven in headless Chromium."""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from narration.cli import main

from .support import CHROMIUM, CHROMIUM_ARGS, epubcheck, start_epub, start_server, stop

REPO = Path(__file__).resolve().parent.parent
NOVEL = Path(__file__).resolve().parent / "data" / "news-from-nowhere.txt"
BOOK = "the-workers-opposition.epub"
NS = {
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
    "smil": "http://www.w3.org/ns/SMIL",
    "x": "http://www.w3.org/1999/xhtml",
    "epub": "http://www.idpf.org/2007/ops",
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
}


def build(root: Path, cache: Path, *args: str) -> dict:
    result = CliRunner().invoke(
        main, ["build", "-q", "-p", str(root), *args], env={"NARRATE_CACHE_DIR": str(cache)}
    )
    assert result.exit_code == 0, result.output
    return json.loads((root / "output" / "build.json").read_text(encoding="utf-8"))


def seeds_project(root: Path) -> Path:
    root.mkdir(parents=True)
    shutil.copytree(REPO / "seeds", root / "seeds")
    for name in ("voices.yaml", "podcast.yaml", "narrate.lock"):
        shutil.copy(REPO / name, root / name)
    return root


def ms(clock: str) -> int:
    """A clock value as the book or the transcript writes it ([h:]mm:ss.fff) in ms."""
    whole, _, frac = clock.partition(".")
    total = 0
    for part in whole.split(":"):
        total = total * 60 + int(part)
    return total * 1000 + int((frac + "000")[:3])


def text_of(el: ET.Element) -> str:
    return " ".join("".join(el.itertext()).split())


@dataclass(frozen=True)
class Checked:
    chapters: list[str]  # titles, in the navigation's order
    language: str
    cues: int
    zip: zipfile.ZipFile


def check_book(epub: Path, out: Path) -> Checked:
    """Everything the read-along book promises, read back: the zip's order and times, the
    package, and each chapter's overlay against its WebVTT transcript, cue for cue."""
    import webvtt

    z = zipfile.ZipFile(epub)
    infos = z.infolist()
    assert infos[0].filename == "mimetype" and infos[0].compress_type == zipfile.ZIP_STORED
    assert infos[0].extra == b"" and z.read("mimetype") == b"application/epub+zip"
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    container = ET.fromstring(z.read("META-INF/container.xml"))
    opf_path = container.find(".//c:rootfile", NS).get("full-path")  # type: ignore[union-attr]
    base = opf_path.rsplit("/", 1)[0] + "/"
    opf = ET.fromstring(z.read(opf_path))
    assert opf.get("version") == "3.0"
    meta = opf.find("opf:metadata", NS)
    assert meta is not None
    language = meta.findtext("dc:language", namespaces=NS)
    ident = meta.find("dc:identifier", NS)
    assert ident is not None and opf.get("unique-identifier") == ident.get("id")
    uuid.UUID(ident.text.removeprefix("urn:uuid:"))  # type: ignore[union-attr]
    props: dict[tuple[str, str | None], list[str]] = {}
    for m in meta.findall("opf:meta", NS):
        props.setdefault((m.get("property"), m.get("refines")), []).append(m.text or "")  # type: ignore[arg-type]
    active = props[("media:active-class", None)][0]
    assert f".{active}" in z.read(base + "style.css").decode()
    items = {i.get("id"): i for i in opf.findall("opf:manifest/opf:item", NS)}
    covers = [i for i in items.values() if "cover-image" in (i.get("properties") or "")]
    assert len(covers) == 1
    assert z.read(base + covers[0].get("href")) == next(out.glob("cover.*")).read_bytes()  # type: ignore[operator]
    nav_item = next(i for i in items.values() if i.get("properties") == "nav")
    nav = ET.fromstring(z.read(base + nav_item.get("href")))  # type: ignore[operator]
    toc = nav.find(".//x:nav[@epub:type='toc']", NS)
    assert toc is not None
    titles = [text_of(a) for a in toc.iter(f"{{{NS['x']}}}a")]

    total = 0
    count = 0
    narrated = [
        items[r.get("idref")]
        for r in opf.findall("opf:spine/opf:itemref", NS)
        if items[r.get("idref")].get("media-overlay")
    ]
    assert len(narrated) == len(titles)
    for doc_item, title in zip(narrated, titles, strict=True):
        doc_href = doc_item.get("href")
        doc = ET.fromstring(z.read(base + doc_href))  # type: ignore[operator]
        assert doc.get("{http://www.w3.org/XML/1998/namespace}lang") == language
        by_id = {el.get("id"): el for el in doc.iter() if el.get("id")}
        overlay = items[doc_item.get("media-overlay")]
        assert overlay.get("media-type") == "application/smil+xml"
        smil = ET.fromstring(z.read(base + overlay.get("href")))  # type: ignore[operator]
        assert smil.tag == f"{{{NS['smil']}}}smil" and smil.get("version") == "3.0"
        pars = smil.findall(".//smil:par", NS)
        audio_src = {p.find("smil:audio", NS).get("src") for p in pars}  # type: ignore[union-attr]
        assert len(audio_src) == 1
        mp3_name = audio_src.pop().rsplit("/", 1)[-1]  # type: ignore[union-attr]
        assert z.read(f"{base}audio/{mp3_name}") == (out / mp3_name).read_bytes()
        cues = webvtt.read(str(out / mp3_name.replace(".mp3", ".vtt"))).captions
        assert len(pars) == len(cues) > 0
        refs = Counter()
        spoken = 0
        for par, cue in zip(pars, cues, strict=True):
            text = par.find("smil:text", NS)
            audio = par.find("smil:audio", NS)
            assert text is not None and audio is not None
            page, frag = text.get("src").split("#")  # type: ignore[union-attr]
            assert page.rsplit("/", 1)[-1] == doc_href.rsplit("/", 1)[-1]  # type: ignore[union-attr]
            refs[frag] += 1
            begin, end = ms(audio.get("clipBegin")), ms(audio.get("clipEnd"))  # type: ignore[arg-type]
            assert abs(begin - ms(cue.start)) <= 1 and abs(end - ms(cue.end)) <= 1, cue.identifier
            spoken += end - begin
            el = by_id[frag]
            want = " ".join(html.unescape(cue.text).split())
            if el.tag == f"{{{NS['x']}}}h1" and cue.identifier.endswith(".announce.0"):
                assert text_of(el) == title  # the announcement points at its heading
            else:
                assert text_of(el) == want, (frag, text_of(el), want)
        assert set(refs.values()) == {1}, "a cue's element is the text of more than one <par>"
        assert props[("media:duration", f"#{overlay.get('id')}")] == [
            f"{spoken // 3_600_000}:{spoken // 60_000 % 60:02d}:{spoken // 1000 % 60:02d}."
            f"{spoken % 1000:03d}"
        ]
        total += spoken
        count += len(cues)
    assert ms(props[("media:duration", None)][0]) == total
    return Checked(titles, language or "", count, z)


# --------------------------------------------------------------------------- the seeds


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> tuple[Path, dict]:
    root = seeds_project(tmp_path_factory.mktemp("readalong") / "book")
    return root, build(root, cache, "--readalong")


@pytest.mark.slow
def test_every_cue_is_one_par_at_its_transcript_times_and_the_book_is_valid(
    seeds: tuple[Path, dict],
) -> None:
    root, report = seeds
    out = root / "output"
    book = check_book(out / BOOK, out)
    assert book.chapters == ["The Workers Opposition in Russia", "Workers' Opposition"]
    assert book.language == "en"
    assert report["readalong"]["file"] == BOOK
    assert (
        report["readalong"]["cues"]
        == book.cues
        == sum(
            len(re.findall(r"-->", (out / c["mp3"].replace(".mp3", ".vtt")).read_text()))
            for c in report["chapters"]
        )
    )
    opf = book.zip.read("EPUB/package.opf").decode()
    # the narrators are the voices heard; the identifier is the title and author's
    for label in ("Narrator", "Alexandra Kollontai", "Victor Serge"):
        assert f'<meta property="media:narrator">{label}</meta>' in opf
    first = re.search(r"urn:uuid:[0-9a-f-]+", opf).group(0)  # type: ignore[union-attr]
    # a quote block keeps its source, read before it, and its text
    chapter2 = book.zip.read("EPUB/text/02-workers-opposition.xhtml").decode()
    assert re.search(r'<p class="source"><span id="[^"]+">From Victor Serge, Memoirs', chapter2)
    assert chapter2.count("<blockquote>") == 3
    assert epubcheck(out / BOOK) == []
    # the page offers it, and `narrate serve` serves it as an EPUB
    page = (out / "index.html").read_text(encoding="utf-8")
    assert f'href="{BOOK}" download type="application/epub+zip"' in page
    proc, printed = start_server(out)
    try:
        url = re.search(r"http://\S+/", printed[0]).group(0)  # type: ignore[union-attr]
        import httpx

        got = httpx.get(url + BOOK)
        assert got.headers["content-type"] == "application/epub+zip"
        assert got.content == (out / BOOK).read_bytes()
    finally:
        stop(proc)
    assert first.startswith("urn:uuid:")


@pytest.mark.slow
def test_rebuilds_are_byte_identical_and_only_a_changed_chapter_rewrites_the_book(
    seeds: tuple[Path, dict], cache: Path, tmp_path: Path
) -> None:
    built, _ = seeds
    want = (built / "output" / BOOK).read_bytes()
    root = seeds_project(tmp_path / "again")
    (root / "output").mkdir()
    notes = root / "output" / "my-notes.epub"  # not narrate's: never removed
    notes.write_bytes(b"the user's own")
    report = build(root, cache, "--readalong")
    epub = root / "output" / BOOK
    assert epub.read_bytes() == want  # another folder, another build: the same bytes
    stamp = epub.stat().st_mtime_ns
    # nothing changed, or only where the show is published: the book is kept as it is
    report = build(root, cache, "--readalong", "--base-url", "https://example.org/elsewhere/")
    assert report["readalong"]["written"] is False and epub.stat().st_mtime_ns == stamp
    # podcast.yaml turns it on as the flag does
    podcast = root / "podcast.yaml"
    podcast.write_text(podcast.read_text() + "readalong: true\n")
    assert build(root, cache)["readalong"]["written"] is False
    # a sentence added to chapter 2: the book is written again, chapter 1 as it was
    seed = next((root / "seeds").glob("02-*"))
    seed.write_text(seed.read_text() + "\nThe opposition lost its vote in March 1921.\n")
    report = build(root, cache)
    assert report["readalong"]["written"] is True
    before, after = zipfile.ZipFile(built / "output" / BOOK), zipfile.ZipFile(epub)

    def digest(z: zipfile.ZipFile, name: str) -> str:
        return hashlib.sha256(z.read(name)).hexdigest()

    for name in before.namelist():
        same = digest(before, name) == digest(after, name)
        if "01-the-workers" in name or name.endswith((".css", "cover.xhtml", ".png")):
            assert same, name
        elif "02-workers" in name:
            assert not same, name
    assert epubcheck(epub) == []
    # turned off: the stale book is removed and the page no longer offers it
    podcast.write_text(podcast.read_text().replace("readalong: true", "readalong: false"))
    report = build(root, cache)
    assert "readalong" not in report and not epub.exists()
    assert ".epub" not in (root / "output" / "index.html").read_text(encoding="utf-8")
    assert notes.read_bytes() == b"the user's own"


def test_a_quote_whose_source_is_not_read_keeps_it_as_text(tmp_path: Path) -> None:
    """With the quote announcements off, a quote block's source stays in the book (with no
    audio to pair it with); announced, it is a cue of its own."""
    from narration.assembly.readalong import ReadChapter, chapter_text
    from narration.pipeline.checks import check_project
    from narration.pipeline.project import open_project

    root = seeds_project(tmp_path / "quiet")
    voices = root / "voices.yaml"
    text = voices.read_text()
    voices.write_text(text.replace('  quote: "From {author}, {work}, {year}."', "  quote: null"))
    cast = check_project(open_project(root)).cast
    chapter = ReadChapter(cast[1], "02-x", Path("x.mp3"), Path("x.vtt"), {})
    body = chapter_text(chapter).body
    sources = re.findall(r'<p class="source">(.*?)</p>\n<blockquote>', body)
    assert sources == [
        "Workers' Opposition, Statement of 27 February 1921 (1921)",
        "Alexandra Kollantai, The Workers' Opposition (1921)",
        "Victor Serge, Memoirs of a Revolutionary (1963)",
    ]


# --------------------------------------------------------------------------- an EPUB seed


def _xhtml(title: str, body: str, lang: str = "fr") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml" '
        f'xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="{lang}"><head><title>{title}'
        f"</title></head><body>{body}</body></html>"
    )


def epub_seed(path: Path) -> None:
    """A small French EPUB 3: its navigation names the chapters, in an order of its own."""
    chapters = [
        (
            "c2.xhtml",
            "Le départ",
            "<h2>Le départ</h2><p>Marie quitta la ville au matin.</p>"
            "<p>Elle marcha longtemps sous la pluie. Personne ne la suivit.</p>",
        ),
        (
            "c1.xhtml",
            "Le retour",
            "<h2>Le retour</h2><p>Trois ans plus tard, elle revint.</p>"
            "<blockquote><p>Rien n’avait changé, pensa-t-elle.</p></blockquote>",
        ),
    ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        start_epub(z, "OEBPS/content.opf")
        items = "".join(
            f'<item id="i{k}" href="{name}" media-type="application/xhtml+xml"/>'
            for k, (name, _, _) in enumerate(chapters)
        )
        spine = "".join(f'<itemref idref="i{k}"/>' for k in range(len(chapters)))
        z.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
            'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
            '<dc:identifier id="id">urn:uuid:0b6c7a52-5b1e-4a53-9c55-0d4b0ad4a1f1</dc:identifier>'
            "<dc:title>Le Voyage</dc:title><dc:creator>Jeanne Martin</dc:creator>"
            "<dc:language>fr</dc:language></metadata>"
            f'<manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
            f'properties="nav"/>{items}</manifest><spine>{spine}</spine></package>',
        )
        links = "".join(f'<li><a href="{n}">{t}</a></li>' for n, t, _ in chapters)
        z.writestr(
            "OEBPS/nav.xhtml",
            _xhtml("Table", f'<nav epub:type="toc"><ol>{links}</ol></nav>'),
        )
        for name, title, body in chapters:
            z.writestr(f"OEBPS/{name}", _xhtml(title, body))


@pytest.mark.slow
def test_a_book_from_an_epub_seed_keeps_its_chapters_order_and_language(
    tmp_path: Path, cache: Path
) -> None:
    root = tmp_path / "voyage"
    (root / "seeds").mkdir(parents=True)
    epub_seed(root / "seeds" / "voyage.epub")
    (root / "voices.yaml").write_text(
        "voices:\n  narrator:\n    label: Narratrice\n    voice: roa/fr\n    variant: f2\n"
        "default: narrator\n"
    )
    report = build(root, cache, "--readalong")
    out = root / "output"
    book = check_book(out / report["readalong"]["file"], out)
    assert book.chapters == ["Le départ", "Le retour"]
    assert book.language == "fr"
    text = book.zip.read(next(n for n in book.zip.namelist() if n.endswith("le-retour.xhtml")))
    assert "<blockquote><p><span" in text.decode()
    assert epubcheck(out / report["readalong"]["file"]) == []


# --------------------------------------------------------------------------- a novel


@pytest.mark.slow
def test_a_novels_chapters_with_their_characters_voices_read_along(
    tmp_path: Path, cache: Path
) -> None:
    """The shared novel's first chapters, its characters cast: a paragraph read in several
    voices is one paragraph of the book, its pieces each a cue; EPUBCheck finds nothing."""
    text = NOVEL.read_text(encoding="utf-8")
    cut = text.index("CHAPTER IV")
    root = tmp_path / "nowhere"
    (root / "seeds").mkdir(parents=True)
    (root / "seeds" / "news-from-nowhere.txt").write_text(text[:cut], encoding="utf-8")
    assert CliRunner().invoke(main, ["init", str(root)]).exit_code == 0
    report = build(root, cache, "--readalong")
    assert report["speakers"]["own_voices"] >= 1
    out = root / "output"
    epub = out / report["readalong"]["file"]
    book = check_book(epub, out)
    assert len(book.chapters) == len(report["chapters"]) >= 3
    assert book.cues == report["readalong"]["cues"]
    # a paragraph read in pieces (narration and a character's speech): one <p>
    mixed = 0
    for name in book.zip.namelist():
        if name.endswith(".xhtml") and "/text/" in name:
            for p in re.findall(r"<p>(.*?)</p>", book.zip.read(name).decode(), re.S):
                ids = re.findall(r'id="c-([^"]+)\.\d+"', p)
                segments = {i.split(".")[0] for i in ids}
                assert len(segments) == 1, p[:200]
                mixed += len(set(ids)) > 1 and any(re.search(r"\.\d+$", i) for i in ids)
    assert mixed > 0
    # the narrators are the voices.yaml voices heard, not the characters cast
    opf = book.zip.read("EPUB/package.opf").decode()
    narrators = re.findall(r'<meta property="media:narrator">([^<]*)</meta>', opf)
    labels = set(re.findall(r"label: (.+)", (root / "voices.yaml").read_text()))
    assert narrators and set(narrators) <= labels, (narrators, labels)
    assert epubcheck(epub) == []


# --------------------------------------------------------------------------- verse


@pytest.mark.slow
def test_verse_keeps_its_lines_and_wrapped_prose_does_not(tmp_path: Path, cache: Path) -> None:
    prose = (
        "The road ran down to the river through the fields, and the mist lay low\n"
        "over the water so that the far bank could hardly be seen from the ford,\n"
        "and the carters waited there for the morning to clear before they crossed.\n"
    )
    verse = (
        "The mist is on the river,\nThe carters wait the day;\nAnd who would cross the "
        "water\nMust wait as well as they.\n\nRoses are red,\nViolets are blue,\n"
        "Sugar is sweet--\nAnd so are you.\n\n"
        "Will you walk a little faster, said a whiting to a snail,\n"
        "There's a porpoise close behind us, and he's treading on my tail.\n"
        "See how eagerly the lobsters and the turtles all advance!\n"
    )
    root = tmp_path / "verse"
    (root / "seeds").mkdir(parents=True)
    (root / "seeds" / "01-the-ford.txt").write_text(f"THE FORD\n\n{prose}\n{verse}\n{prose}")
    assert CliRunner().invoke(main, ["init", str(root)]).exit_code == 0
    report = build(root, cache, "--readalong")
    out = root / "output"
    book = check_book(out / report["readalong"]["file"], out)
    doc = book.zip.read(next(n for n in book.zip.namelist() if "/text/" in n)).decode()
    paragraphs = re.findall(r"<p(?: class=\"verse\")?>(.*?)</p>", doc, re.S)
    assert [p.count("<br/>") for p in paragraphs] == [0, 3, 3, 2, 0]
    # a dash ends its line ("Sugar is sweet —"), and is no word of the next
    assert re.search(r"sweet —<br/>\n(<span[^>]*>)?And so", doc), doc
    assert 'class="verse"' in doc
    assert epubcheck(out / report["readalong"]["file"]) == []


# --------------------------------------------------------------------------- in Chromium


@pytest.mark.slow
def test_the_show_pages_read_along_view_follows_playback_and_seeks_on_a_click(
    seeds: tuple[Path, dict],
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no browser at {CHROMIUM}: this test drives Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    import webvtt

    root, report = seeds
    out = root / "output"
    chapter = report["chapters"][1]
    cues = webvtt.read(str(out / chapter["mp3"].replace(".mp3", ".vtt"))).captions
    section = f"#ep-{chapter['id']}"
    proc, printed = start_server(out)
    try:
        base = re.search(r"http://\S+/", printed[0]).group(0)  # type: ignore[union-attr]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                problems: list[str] = []
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto(base)
                page.locator(f"{section} summary").click()
                sentences = page.locator(f"{section} .readalong .cue")
                assert sentences.count() == len(cues)
                assert [t.strip() for t in sentences.all_inner_texts()] == [
                    " ".join(html.unescape(c.text).split()) for c in cues
                ]
                page.evaluate(f"document.querySelector('{section} audio').muted = true")
                # a click on the fourth sentence plays from its start, and it is lit
                sentences.nth(3).click()
                at = page.evaluate(f"document.querySelector('{section} audio').currentTime")
                assert ms(cues[3].start) / 1000 - 0.01 <= at < ms(cues[3].start) / 1000 + 0.5
                page.wait_for_function(
                    f"document.querySelectorAll('{section} .cue')[3].classList.contains('now')",
                    timeout=10_000,
                )
                # playing on, the light follows the reading to the next sentence, alone
                page.wait_for_function(
                    f"document.querySelectorAll('{section} .cue')[4].classList.contains('now')",
                    timeout=30_000,
                )
                assert page.locator(f"{section} .cue.now").count() == 1
                # far ahead, the view scrolls to follow the sentence being read
                last = len(cues) - 2
                page.evaluate(
                    f"document.querySelector('{section} audio').currentTime = "
                    f"{ms(cues[last].start) / 1000 + 0.2}"
                )
                page.wait_for_function(
                    f"document.querySelectorAll('{section} .cue')[{last}].classList.contains('now')",
                    timeout=10_000,
                )
                box = page.locator(f"{section} .cue.now").bounding_box()
                height = page.evaluate("window.innerHeight")
                assert box is not None and 0 <= box["y"] < height
                # closed, it plays on; opened, it shows the sentence being read at once
                page.locator(f"{section} summary").click()
                page.evaluate("window.scrollTo(0, 0)")
                mid = len(cues) // 2
                page.evaluate(
                    f"document.querySelector('{section} audio').currentTime = "
                    f"{ms(cues[mid].start) / 1000 + 0.2}"
                )
                page.wait_for_function(
                    f"document.querySelectorAll('{section} .cue')[{mid}].classList.contains('now')",
                    timeout=10_000,
                )
                page.locator(f"{section} summary").click()
                page.wait_for_function(
                    f"(() => {{ const r = document.querySelectorAll('{section} .cue')[{mid}]"
                    ".getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; })()",
                    timeout=5_000,
                )
                page.evaluate("document.querySelectorAll('audio').forEach(a => a.pause())")
                assert problems == []
            finally:
                browser.close()
    finally:
        stop(proc)

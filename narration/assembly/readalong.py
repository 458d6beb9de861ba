"""The read-along book: an EPUB 3 whose text is highlighted as the narration reads it.

Each chapter becomes an XHTML document holding its text as it is read (the chapter's
heading, headings, paragraphs, quote blocks with their sources, list items, verse lines),
every transcript cue in an element of its own id; a SMIL media overlay
(http://www.w3.org/ns/SMIL, version 3.0) pairs each of those elements with the chapter's
MP3 between the cue's times, read back from the WebVTT transcript the chapter was written
with, so the book and the episodes agree to the millisecond. The MP3s go into the book
as they are (a core media type). The package carries each overlay's duration and the
book's, the class a reader gives the element being read, and the narrators.

The zip is byte-identical from the same inputs: entries in a fixed order, a fixed time,
every entry stored (the audio is compressed already, and deflate's bytes differ between
zlib builds), `mimetype` first. The book is written again only when what it is made from
changed (a digest kept in the state folder, as the audiobook's).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from narration.assembly.sidecars import VttCue, cue_id, read_vtt
from narration.assembly.state import kept_book, save_book
from narration.assembly.timeline import discard
from narration.assembly.verse import verse_breaks
from narration.errors import OutputError
from narration.files import image_type, temp_path
from narration.fingerprint import WORD
from narration.layout import READALONG_STATE
from narration.model import CHARACTER_VOICE, CastChapter, CastSegment, Episode, ReadAlong, Show

#: Bump when a change here changes the EPUB's bytes.
EPUB_FORMAT = 1
#: The class a reading system gives the element being read (media:active-class).
ACTIVE_CLASS = "narrate-active"
#: Every entry's time in the zip (its earliest): builds do not depend on the clock.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: The namespace of the book's identifier: a UUID derived from the title and author.
_BOOK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/narrate/readalong")


@dataclass(frozen=True)
class ReadChapter:
    """One chapter as the read-along book takes it: what is read, and its published files."""

    cast: CastChapter
    stem: str  # the episode's file stem, NN-<chapter>
    mp3: Path
    vtt: Path
    #: the seed's text as written, by segment id, where its line breaks are verse lines
    verse: dict[str, tuple[int, ...]]


def book_identifier(show: Show) -> str:
    """urn:uuid from the show's title and author: the same book keeps it across builds, a
    new base_url or a new date; another title or author is another book."""
    name = f"{show.title}\n{show.author or ''}"
    return f"urn:uuid:{uuid.uuid5(_BOOK_NAMESPACE, name)}"


# --------------------------------------------------------------------------- text


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: str) -> str:
    """Text for XML content or a double-quoted attribute."""
    text = _NOT_XML.sub("", text)
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _xml_id(ident: str, taken: set[str]) -> str:
    """An XML id (an NCName, unique in its document) for a transcript cue's identifier."""
    base = "c-" + re.sub(r"[^A-Za-z0-9._-]", "-", ident)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


@dataclass(frozen=True)
class _Text:
    """A chapter's XHTML body and, in reading order, the element id of each cue."""

    body: str
    ids: dict[str, str]  # cue identifier -> element id


def _inline(
    parts: Sequence[CastSegment], ids: dict[str, str], taken: set[str], breaks: tuple[int, ...]
) -> str:
    """Parts' lines as one text, each line in a span of its own id; a line break (verse)
    before the first word after each count of words in `breaks` (words as fingerprints
    count them: a dash or a quote mark alone is none, and stays on its line)."""
    out: list[str] = []
    words = 0
    pending = False  # a line ended: break before the next word

    def separator(token: str) -> str:
        nonlocal pending
        if pending and WORD.search(token):
            pending = False
            return "<br/>\n"
        return " "

    for part in parts:
        for j, line in enumerate(part.lines):
            ident = cue_id(part, j)
            xid = ids[ident] = _xml_id(ident, taken)
            inner: list[str] = []
            for n, token in enumerate(line.text.split()):
                if n:
                    inner.append(separator(token))
                elif out:
                    out.append(separator(token))
                inner.append(_x(token))
                counted = len(WORD.findall(token))
                if counted:
                    words += counted
                    pending = pending or words in breaks
            out.append(f'<span id="{xid}">{"".join(inner)}</span>')
    return "".join(out)


def chapter_text(chapter: ReadChapter) -> _Text:
    """The chapter's body: its heading (the announcement's cue points at it), then each
    segment as the listener hears it, the pieces a segment was read in joined again."""
    cast = chapter.cast
    ch = cast.chapter
    ids: dict[str, str] = {}
    taken: set[str] = set()
    body: list[str] = []
    parts = list(cast.parts)
    announce = f"{ch.id}.announce"
    heading = [p for p in parts if p.id == announce]
    if heading and len(heading[0].lines) == 1:
        part = heading[0]
        ident = cue_id(part, 0)
        xid = ids[ident] = _xml_id(ident, taken)
        body.append(f'<h1 id="{xid}">{_x(ch.title)}</h1>')
    elif heading:  # an announcement read in several cues: its words are the heading
        body.append(f"<h1>{_inline(heading, ids, taken, ())}</h1>")
    else:
        body.append(f"<h1>{_x(ch.title)}</h1>")
    if ch.author:
        body.append(f'<p class="byline">{_x(ch.author)}</p>')
    rest = [p for p in parts if p.id != announce]
    announced = {p.id for p in rest if p.segment is None}
    k = 0
    while k < len(rest):
        part = rest[k]
        segment = part.segment
        if segment is None:  # a quote's source, announced before it
            body.append(f'<p class="source">{_inline([part], ids, taken, ())}</p>')
            k += 1
            continue
        group = [part]
        while k + len(group) < len(rest):
            nxt = rest[k + len(group)]
            if nxt.segment is None or nxt.segment.id != segment.id:
                break
            group.append(nxt)
        breaks = chapter.verse.get(segment.id, ())
        inner = _inline(group, ids, taken, breaks)
        if part.kind == "heading":
            body.append(f"<h2>{inner}</h2>")
        elif part.kind == "quote":
            label = part.source.label() if part.source is not None else ""
            if label and f"{segment.id}.announce" not in announced:  # its source, not read
                body.append(f'<p class="source">{_x(label)}</p>')
            body.append(f"<blockquote><p>{inner}</p></blockquote>")
        elif part.kind == "list_item":
            if body[-1] == "</ul>":
                body.pop()
            else:
                body.append('<ul class="items">')
            body += [f"<li>{inner}</li>", "</ul>"]
        else:
            body.append(f'<p class="verse">{inner}</p>' if breaks else f"<p>{inner}</p>")
        k += len(group)
    return _Text("\n".join(body), ids)


def _xhtml(title: str, language: str, body: str, *, css: str = "../style.css") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"
 xml:lang="{_x(language)}" lang="{_x(language)}">
<head>
<meta charset="UTF-8"/>
<title>{_x(title)}</title>
<link rel="stylesheet" type="text/css" href="{css}"/>
</head>
<body>
{body}
</body>
</html>
"""


def _chapter_xhtml(chapter: ReadChapter, text: _Text, language: str) -> str:
    body = f'<section epub:type="chapter">\n{text.body}\n</section>'
    return _xhtml(chapter.cast.chapter.title, language, body)


# --------------------------------------------------------------------------- overlays


def clock(ms: int) -> str:
    """A SMIL clock value, h:mm:ss.fff."""
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, rest = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{rest:03d}"


def _overlay(chapter: ReadChapter, cues: Sequence[VttCue], text: _Text) -> str:
    """The chapter's media overlay: a <par> per cue, in the transcript's order."""
    page = f"../text/{chapter.stem}.xhtml"
    audio = f"../audio/{chapter.mp3.name}"
    pars = []
    for n, cue in enumerate(cues, 1):
        pars.append(
            f'<par id="p{n}"><text src="{page}#{text.ids[cue.ident or ""]}"/>'
            f'<audio src="{audio}" clipBegin="{clock(cue.start_ms)}" '
            f'clipEnd="{clock(cue.end_ms)}"/></par>'
        )
    joined = "\n".join(pars)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<smil xmlns="http://www.w3.org/ns/SMIL" xmlns:epub="http://www.idpf.org/2007/ops" version="3.0">
<body>
<seq id="seq1" epub:textref="{page}" epub:type="chapter">
{joined}
</seq>
</body>
</smil>
"""


def _cues(chapter: ReadChapter, text: _Text) -> list[VttCue]:
    """The chapter's transcript cues, each checked to be one of the chapter's lines, and
    every line to have its cue: the book and the episode must tell the same text."""
    cues = read_vtt(chapter.vtt)
    seen = [c.ident for c in cues]
    if seen != list(text.ids) or any(c.end_ms < c.start_ms for c in cues):
        raise OutputError(
            f"{chapter.vtt}: the transcript does not match the chapter's text; "
            "build again to write it anew"
        )
    return cues


# --------------------------------------------------------------------------- package


_CSS = f"""body {{ font-family: serif; line-height: 1.5; margin: 0 4%; }}
h1 {{ font-size: 1.6em; margin: 1.5em 0 0.3em; line-height: 1.2; }}
h2 {{ font-size: 1.25em; margin: 1.4em 0 0.4em; }}
p {{ margin: 0 0 0.8em; }}
.byline, .source {{ font-style: italic; }}
.source {{ margin: 1.2em 2em 0.3em; }}
blockquote {{ margin: 0.5em 2em 1em; }}
ul.items {{ list-style: none; padding-left: 1em; }}
.cover {{ text-align: center; margin: 0; }}
.cover img {{ max-width: 100%; max-height: 95vh; }}
.{ACTIVE_CLASS} {{ background-color: #ffe98a; color: #000; }}
"""


def _container() -> str:
    return """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
<rootfiles>
<rootfile full-path="EPUB/package.opf" media-type="application/oebps-package+xml"/>
</rootfiles>
</container>
"""


def _nav(chapters: Sequence[ReadChapter], show: Show) -> str:
    items = "\n".join(
        f'<li><a href="text/{c.stem}.xhtml">{_x(c.cast.chapter.title)}</a></li>' for c in chapters
    )
    body = f"""<nav epub:type="toc" id="toc">
<h1>Contents</h1>
<ol>
{items}
</ol>
</nav>
<nav epub:type="landmarks" id="landmarks" hidden="hidden">
<ol>
<li><a epub:type="cover" href="cover.xhtml">Cover</a></li>
<li><a epub:type="bodymatter" href="text/{chapters[0].stem}.xhtml">Start of the book</a></li>
</ol>
</nav>"""
    return _xhtml(show.title, show.language, body, css="style.css")


def _cover_page(show: Show, image: str) -> str:
    body = (
        f'<section epub:type="cover"><p class="cover"><img src="{image}" '
        f'alt="Cover of {_x(show.title)}"/></p></section>'
    )
    return _xhtml(show.title, show.language, body, css="style.css")


def _opf(
    chapters: Sequence[ReadChapter],
    durations: Sequence[int],
    *,
    show: Show,
    narrators: Sequence[str],
    cover: str,
    cover_kind: str,
    modified: date,
) -> str:
    lang = _x(show.language)
    meta = [
        f'<dc:identifier id="book-id">{book_identifier(show)}</dc:identifier>',
        f"<dc:title>{_x(show.title)}</dc:title>",
        f"<dc:language>{lang}</dc:language>",
    ]
    if show.author:
        meta.append(f'<dc:creator id="author">{_x(show.author)}</dc:creator>')
    if show.description:
        meta.append(f"<dc:description>{_x(show.description)}</dc:description>")
    meta.append(f'<meta property="dcterms:modified">{modified.isoformat()}T00:00:00Z</meta>')
    for c, ms in zip(chapters, durations, strict=True):
        meta.append(f'<meta property="media:duration" refines="#o-{c.stem}">{clock(ms)}</meta>')
    meta.append(f'<meta property="media:duration">{clock(sum(durations))}</meta>')
    meta += [f'<meta property="media:narrator">{_x(n)}</meta>' for n in narrators]
    meta.append(f'<meta property="media:active-class">{ACTIVE_CLASS}</meta>')
    meta += [
        '<meta property="schema:accessMode">textual</meta>',
        '<meta property="schema:accessMode">auditory</meta>',
        '<meta property="schema:accessModeSufficient">textual</meta>',
        '<meta property="schema:accessModeSufficient">auditory</meta>',
        '<meta property="schema:accessibilityFeature">synchronizedAudioText</meta>',
        '<meta property="schema:accessibilityFeature">tableOfContents</meta>',
        '<meta property="schema:accessibilityFeature">readingOrder</meta>',
        '<meta property="schema:accessibilityHazard">none</meta>',
        '<meta property="schema:accessibilitySummary">The full text, synchronised with its '
        "narration: each sentence is highlighted as it is read.</meta>",
    ]
    items = [
        '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>',
        '<item id="style" href="style.css" media-type="text/css"/>',
        '<item id="cover-page" href="cover.xhtml" media-type="application/xhtml+xml"/>',
        f'<item id="cover" href="{cover}" media-type="{cover_kind}" properties="cover-image"/>',
    ]
    spine = ['<itemref idref="cover-page"/>']
    for c in chapters:
        items += [
            f'<item id="t-{c.stem}" href="text/{c.stem}.xhtml" '
            f'media-type="application/xhtml+xml" media-overlay="o-{c.stem}"/>',
            f'<item id="o-{c.stem}" href="overlays/{c.stem}.smil" '
            'media-type="application/smil+xml"/>',
            f'<item id="a-{c.stem}" href="audio/{c.mp3.name}" media-type="audio/mpeg"/>',
        ]
        spine.append(f'<itemref idref="t-{c.stem}"/>')
    nl = "\n"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="book-id"
 xml:lang="{lang}">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
{nl.join(meta)}
</metadata>
<manifest>
{nl.join(items)}
</manifest>
<spine>
{nl.join(spine)}
</spine>
</package>
"""


# --------------------------------------------------------------------------- the book


@dataclass(frozen=True)
class _Entry:
    """One file of the zip: its text, or the file whose bytes it holds."""

    name: str
    data: bytes | None = None
    path: Path | None = None


def _entries(
    chapters: Sequence[ReadChapter], *, show: Show, modified: date
) -> tuple[list[_Entry], int, int]:
    """The book's files in their order, its number of cues and its milliseconds of speech."""
    cover = f"images/cover{show.cover.suffix.lower()}"
    texts: list[_Entry] = []
    media: list[_Entry] = []
    durations: list[int] = []
    count = 0
    narrators: dict[str, None] = {}
    for chapter in chapters:
        text = chapter_text(chapter)
        cues = _cues(chapter, text)
        count += len(cues)
        durations.append(sum(c.end_ms - c.start_ms for c in cues))
        for voice in chapter.cast.voices:
            if not voice.name.startswith(CHARACTER_VOICE):  # a character is no narrator
                narrators.setdefault(voice.label)
        language = show.language
        texts.append(
            _Entry(
                f"EPUB/text/{chapter.stem}.xhtml", _chapter_xhtml(chapter, text, language).encode()
            )
        )
        texts.append(
            _Entry(f"EPUB/overlays/{chapter.stem}.smil", _overlay(chapter, cues, text).encode())
        )
        media.append(_Entry(f"EPUB/audio/{chapter.mp3.name}", path=chapter.mp3))
    opf = _opf(
        chapters,
        durations,
        show=show,
        narrators=list(narrators),
        cover=cover,
        cover_kind=image_type(show.cover.read_bytes()),
        modified=modified,
    )
    head = [
        _Entry("mimetype", b"application/epub+zip"),
        _Entry("META-INF/container.xml", _container().encode()),
        _Entry("EPUB/package.opf", opf.encode()),
        _Entry("EPUB/nav.xhtml", _nav(chapters, show).encode()),
        _Entry("EPUB/style.css", _CSS.encode()),
        _Entry("EPUB/cover.xhtml", _cover_page(show, cover).encode()),
        _Entry(f"EPUB/{cover}", path=show.cover),
    ]
    return head + texts + media, count, sum(durations)


def _digest(entries: Sequence[_Entry]) -> str:
    """What the book is made from: its texts, and its files by name, size and time (as a
    chapter's state knows its MP3: unchanged inputs leave them untouched)."""
    h = hashlib.sha256(f"readalong {EPUB_FORMAT}\n".encode())
    for e in entries:
        if e.data is not None:
            h.update(f"{e.name} {hashlib.sha256(e.data).hexdigest()}\n".encode())
        else:
            assert e.path is not None
            st = e.path.stat()
            h.update(f"{e.name} {e.path.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _info(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3  # Unix, on every machine
    info.external_attr = 0o100644 << 16
    info.file_size = size
    return info


def _write_zip(tmp: Path, entries: Sequence[_Entry]) -> None:
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for e in entries:
            if e.data is not None:
                zf.writestr(_info(e.name, len(e.data)), e.data)
                continue
            assert e.path is not None
            size = e.path.stat().st_size
            big = size >= zipfile.ZIP64_LIMIT
            with (
                open(e.path, "rb") as src,
                zf.open(_info(e.name, size), "w", force_zip64=big) as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)


def _kept(state_dir: Path, path: Path, digest: str) -> ReadAlong | None:
    """The book an earlier build made from the same inputs, if it is untouched."""
    state = kept_book(state_dir / READALONG_STATE, path, digest)
    try:
        if state is None:
            return None
        return ReadAlong(
            path,
            path.stat().st_size,
            int(state["chapters"]),
            int(state["cues"]),
            float(state["seconds"]),
            written=False,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_readalong(
    chapters: Sequence[ReadChapter],
    *,
    show: Show,
    modified: date,
    path: Path,
    state_dir: Path,
) -> ReadAlong:
    """Write the read-along EPUB at `path` (beside it, then renamed into place), or keep the
    one an earlier build made from the same inputs. `modified` is the package's
    dcterms:modified: a day the inputs fix (the project's first build's), not the clock."""
    if not chapters:
        raise OutputError(f"{path}: the book has no chapters")
    entries, cues, speech_ms = _entries(chapters, show=show, modified=modified)
    digest = _digest(entries)
    kept = _kept(state_dir, path, digest)
    if kept is not None:
        return kept
    tmp = temp_path(path)
    try:
        try:
            _write_zip(tmp, entries)
            tmp.replace(path)
        except OSError as exc:
            raise OutputError(f"{path}: {exc.strerror or exc}") from None
    finally:
        discard(tmp)
    st = path.stat()
    book = ReadAlong(path, st.st_size, len(chapters), cues, round(speech_ms / 1000, 3))
    facts = {"chapters": book.chapters, "cues": book.cues, "seconds": book.seconds}
    save_book(state_dir / READALONG_STATE, path, digest, facts)
    return book


# --------------------------------------------------------------------------- from the build


def assemble_readalong(
    chapters: Sequence[CastChapter],
    episodes: Sequence[Episode],
    *,
    texts: Mapping[str, str],
    show: Show,
    modified: date,
    path: Path,
    state_dir: Path,
) -> ReadAlong:
    """The read-along book of the chapters as published: each cast chapter with its
    episode's MP3 and WebVTT transcript in output/. `texts` are the seeds' texts
    (Book.texts), where verse keeps its lines."""
    widths: dict[str, int] = {}
    read = [
        ReadChapter(cast, ep.mp3.stem, ep.mp3, ep.vtt, verse_breaks(cast, texts, widths))
        for cast, ep in zip(chapters, episodes, strict=True)
    ]
    return write_readalong(read, show=show, modified=modified, path=path, state_dir=state_dir)

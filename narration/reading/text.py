"""Plain text and Markdown seeds: bytes decoded strictly, never guessed.

A BOM wins, then an encoding the file declares (a Project Gutenberg header, an Emacs
line), else UTF-8; a file that is not text at all (a PDF, an image, binary data) is refused
with what it is, and a byte that is not valid in the encoding is refused with its offset.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from narration.errors import InputError
from narration.reading.base import BookFacts, SourceText

TEXT_SUFFIXES = (".txt", ".md")
BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)

#: Files people drop into seeds/ by mistake, recognised by their first bytes (the HTML
#: reader refuses them too).
NOT_TEXT: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (EPUB, DOCX or ODT are ZIP files)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"{\\rtf", "an RTF document"),
    (b"\xd0\xcf\x11\xe0", "a Microsoft Office document"),
    (b"ID3", "an MP3 file"),
    (b"RIFF", "a RIFF (WAV) file"),
    (b"\x7fELF", "a program"),
)

_DECLARED = re.compile(rb"^[ \t]*Character set encoding:[ \t]*([^\r\n]*)", re.I | re.M)
_EMACS_CODING = re.compile(rb"-\*-.*?coding[:=][ \t]*([-\w.]+)")
_ENCODING_ALIASES = {
    "iso-646-us": "ascii",
    "iso646-us": "ascii",
    "us-ascii": "ascii",
    "iso latin-1": "latin-1",
    "iso latin 1": "latin-1",
    "unicode utf-8": "utf-8",
}


def read_seed(path: Path) -> str:
    """The text of one seed file, decoded strictly (never a silent replacement character)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the file: {exc.strerror or exc}") from None
    return decode_seed(data, path)


def decode_seed(data: bytes, path: Path | str) -> str:
    """Decode a seed's bytes: BOM first, then a declared encoding, else strict UTF-8."""
    for bom, codec, name in BOMS:
        if data.startswith(bom):
            return _decode(data, codec, name, path)
    for magic, what in NOT_TEXT:
        if data.startswith(magic):
            raise InputError(
                path, f"this is {what}, not a text file: save it as plain text (.txt) or .md"
            )
    declared = _declared_encoding(data, path)
    nul = data.find(b"\x00")
    if nul >= 0 and (declared is None or not declared[0].startswith("utf-16")):
        raise InputError(
            path,
            f"binary data (a NUL byte at byte offset {nul}), not text; if it is UTF-16, "
            "save it with a byte-order mark or as UTF-8",
            _line_at(data, nul),
        )
    if declared is not None:
        codec, name = declared
        # ASCII is a subset of UTF-8: a file that declares ASCII but has UTF-8 quotes is fine.
        return _decode(data, "utf-8" if codec == "ascii" else codec, name, path)
    return _decode(data, "utf-8", "UTF-8", path)


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _declared_encoding(data: bytes, path: Path | str) -> tuple[str, str] | None:
    """(codec, name as declared) from a Project Gutenberg or Emacs header, if the file has one."""
    head = data[:16384]
    m = _DECLARED.search(head) or _EMACS_CODING.search(head[:400])
    if not m:
        return None
    value = m.group(1).decode("latin-1").strip()
    candidates = [value, value.split(" ")[0] if value else "", *re.findall(r"\(([^)]*)\)", value)]
    for cand in candidates:
        cand = cand.strip().rstrip(".").strip()
        if not cand:
            continue
        name = _ENCODING_ALIASES.get(cand.lower(), cand)
        try:
            return codecs.lookup(name).name, value
        except LookupError:
            continue
    raise InputError(
        path,
        f"declares the encoding '{value}', which Python does not know; "
        "convert the file to UTF-8 or fix the declaration",
        _line_at(data, m.start(1)),
    )


def _decode(data: bytes, codec: str, name: str, path: Path | str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        bad = data[exc.start] if exc.start < len(data) else 0
        raise InputError(
            path,
            f"not valid {name} at byte offset {exc.start} (byte 0x{bad:02X}); save the file "
            "as UTF-8, or declare its encoding in a line such as "
            "'Character set encoding: ISO-8859-1'",
            _line_at(data, exc.start),
        ) from None


def read_text(path: Path) -> list[SourceText]:
    """A .txt or .md seed (or one with no extension, read as plain text)."""
    return [
        SourceText(
            file=path.name,
            text=read_seed(path),
            markdown=path.suffix.lower() == ".md",
            where=path,
            references=path.suffix.lower() == ".md",
        )
    ]


_PG_START = re.compile(r"^\s*\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG", re.I | re.M)
_HEADER_FIELD = re.compile(r"^(?P<key>[A-Z][A-Za-z ]{1,30}):[ \t]*(?P<value>.*)$")
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")


def gutenberg_facts(text: str) -> BookFacts:
    """What a Project Gutenberg header says of the book: `Title:` (its first line the title,
    continuation lines the subtitle), `Author:`, `Language:` as its ISO 639 code, and the
    year of an `Original publication:` line. Nothing from a file without the header's START
    line: a text of the user's own that opens with "Title:" is read, not taken as facts."""
    start = _PG_START.search(text[:200_000])
    if start is None:
        return BookFacts()
    fields: dict[str, list[str]] = {}
    key: str | None = None
    for line in text[: start.start()].splitlines():
        m = _HEADER_FIELD.match(line)
        if m:
            key = m.group("key").strip().lower()
            fields.setdefault(key, []).append(m.group("value").strip())
        elif key is not None and line.strip() and line[:1].isspace():
            fields[key].append(line.strip())  # a continuation line, indented
        else:
            key = None
    title = [t for t in fields.get("title", []) if t]
    if not title:  # a header whose line ends were lost: "...gutenberg.orgTitle: The Book"
        lost = re.search(r"Title:[ \t]*([^\r\n]+)", text[: start.start()])
        title = [lost.group(1).strip()] if lost else []
    author = [a for a in fields.get("author", []) if a]
    year = None
    for origin in fields.get("original publication", []):
        found = _YEAR.findall(origin)
        year = int(found[-1]) if found else year
    return BookFacts(
        title=title[0] if title else None,
        subtitle=" ".join(title[1:]) or None,
        author=", ".join(author) or None,
        language=language_code(fields.get("language", [""])[0]),
        year=year,
    )


def language_code(name: str) -> str | None:
    """'English' -> 'en', 'German' -> 'de'; a language with no two-letter code gets its
    three-letter one ('Middle English' -> 'enm'); None for a name no standard knows."""
    from iso639 import Lang
    from iso639.exceptions import InvalidLanguageValue

    first = re.split(r"[,;/]| and ", name)[0].strip()
    if not first:
        return None
    try:
        lang = Lang(first.title() if first.islower() or first.isupper() else first)
    except InvalidLanguageValue:
        return None
    return lang.pt1 or lang.pt3

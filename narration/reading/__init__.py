"""Readers: one per input format, each turning a seed file into the texts the segmenter
reads (`Reading`). Adding a format means adding a reader here.

| suffix | reader |
|---|---|
| .txt, none | text.py: plain text (Project Gutenberg's layout understood) |
| .md | text.py: Markdown |
| .epub | epub.py: EPUB 2 and 3, in spine order, chapter titles from the navigation |
| .html, .xhtml, .htm | html.py: one HTML document |

A file in seeds/ that no reader takes (a PDF, a DOCX, a folder, a broken link) is reported
by `unreadable`, never skipped without a word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from narration.errors import InputError
from narration.layout import SEED_COVERS
from narration.reading.base import BookFacts, Reading, ReadOptions, Signed, SourceText
from narration.reading.text import TEXT_SUFFIXES, gutenberg_facts, read_seed, read_text


def _read_epub(path: Path, options: ReadOptions) -> Reading:
    from narration.reading.epub import read_epub

    return read_epub(path, options)


def _read_html(path: Path, options: ReadOptions) -> Reading:
    from narration.reading.html import read_html

    return read_html(path, options)


def _read_text(path: Path, _options: ReadOptions) -> Reading:
    texts = tuple(read_text(path))
    facts = gutenberg_facts(texts[0].text)
    if facts.title:  # what text before the first heading is titled, if no line titles it
        texts = tuple(replace(st, title=facts.title) for st in texts)
    return Reading(texts, facts)


READERS: dict[str, Callable[[Path, ReadOptions], Reading]] = {
    ".txt": _read_text,
    ".md": _read_text,
    ".epub": _read_epub,
    ".html": _read_html,
    ".xhtml": _read_html,
    ".htm": _read_html,
}
SEED_SUFFIXES = tuple(READERS)

#: What counts as a file extension: "notes.docx", "cover.jpg" and "01.txt~" have one;
#: "Chapter 3. The End" and "README" have none and are read as plain text.
_EXTENSION = re.compile(r"\.\S{1,10}")

#: Formats people drop into seeds/ that narrate does not read, and what to do instead.
_KNOWN = {
    ".pdf": "a PDF",
    ".docx": "a Word document",
    ".doc": "a Word document",
    ".odt": "an OpenDocument text",
    ".rtf": "an RTF document",
    ".mobi": "a Kindle book (MOBI)",
    ".azw": "a Kindle book (AZW)",
    ".azw3": "a Kindle book (AZW3)",
    ".kfx": "a Kindle book (KFX)",
    ".fb2": "a FictionBook",
    ".djvu": "a DjVu document",
}


def _ignored(name: str) -> bool:
    """Hidden files and editors' backups ("ch1~", "#ch1#", macOS's "Icon\\r"): never texts."""
    if name.startswith((".", "#", "~")) or name.endswith(("~", "#")):
        return True
    return any(unicodedata.category(c) == "Cc" for c in name)


def is_seed_name(name: str) -> bool:
    """A seed: a suffix a reader takes, or a name with no extension; never a hidden or backup
    file. A text saved without an extension would otherwise be left out without a word."""
    if _ignored(name):
        return False
    suffix = Path(name).suffix
    return suffix.lower() in SEED_SUFFIXES or not _EXTENSION.fullmatch(suffix)


def seed_files(seeds_dir: Path) -> list[Path]:
    """The seed files of a book in listening order (see is_seed_name), by name."""
    if not seeds_dir.is_dir():
        raise InputError(seeds_dir, "no seeds directory: put the texts to read in it")
    files = sorted(
        (p for p in seeds_dir.iterdir() if is_seed_name(p.name) and p.is_file()),
        key=lambda p: p.name,
    )
    if not files:
        raise InputError(
            seeds_dir, "no seed files: add *.txt, *.md, *.epub or *.html texts to read"
        )
    return files


def unreadable(seeds_dir: Path) -> list[tuple[Path, str]]:
    """What in seeds/ narrate will not read, each with why: said, never silently skipped.
    Hidden files, backups and the cover image are not listed."""
    if not seeds_dir.is_dir():
        return []
    readable = ", ".join(SEED_SUFFIXES)
    out = []
    for path in sorted(seeds_dir.iterdir(), key=lambda p: p.name):
        name = path.name
        if _ignored(name) or name.lower() in SEED_COVERS:
            continue
        if path.is_symlink() and not path.exists():
            out.append((path, "a broken link: its target does not exist; it is not read"))
        elif path.is_dir():
            out.append((path, "a folder: narrate reads only the files directly in seeds/"))
        elif not path.is_file():
            out.append((path, "not a regular file; it is not read"))
        elif not is_seed_name(name):
            suffix = Path(name).suffix.lower()
            what = _KNOWN.get(suffix, f"a {suffix} file")
            out.append((path, f"{what}: narrate cannot read it ({readable} only); it is not read"))
    return out


def seed_stem(name: str) -> str:
    """The file name without a reader's suffix: "Chapter 3. The End" keeps its whole name."""
    path = Path(name)
    return path.stem if path.suffix.lower() in SEED_SUFFIXES else path.name


def seed_contents(seeds_dir: Path, options: ReadOptions | None = None) -> dict[str, str]:
    """Every seed's text by the name its chapters carry (an EPUB: each spine document's
    text content): the words `coverage.words_accounted` must find in the Book."""
    out: dict[str, str] = {}
    for path in seed_files(seeds_dir):
        out.update(read_seed_file(path, options).contents())
    return out


def read_seed_file(path: Path, options: ReadOptions | None = None) -> Reading:
    """Read one seed file with the reader for its suffix (no suffix: plain text)."""
    reader = READERS.get(path.suffix.lower(), READERS[".txt"])
    return reader(path, options or ReadOptions())


__all__ = [
    "READERS",
    "SEED_SUFFIXES",
    "TEXT_SUFFIXES",
    "BookFacts",
    "ReadOptions",
    "Reading",
    "Signed",
    "SourceText",
    "is_seed_name",
    "read_seed",
    "read_seed_file",
    "seed_contents",
    "seed_files",
    "seed_stem",
    "unreadable",
]

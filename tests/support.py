"""Helpers shared by test modules (never imported from a sibling test module)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from narration.coverage import words_accounted
from narration.model import Book
from narration.readers import seed_contents
from narration.segment import segment_book


def book_from(tmp: Path, files: dict[str, str | bytes]) -> Book:
    """The Book a seeds/ folder of these files makes, read as `narrate build` reads it."""
    seeds = tmp / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (seeds / name).write_bytes(data)
    return segment_book(seeds)


def assert_every_word_once(book: Book, seeds: Path) -> None:
    """The proof that no word is lost: every word of every seed once in the Book."""
    coverage = words_accounted(book, seed_contents(seeds))
    assert coverage.ok, str(coverage)


def start_epub(z: zipfile.ZipFile, opf: str) -> None:
    """An EPUB's first entries: `mimetype` first and stored, then the container naming the
    package document at `opf`."""
    z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
    z.writestr(
        "META-INF/container.xml",
        '<?xml version="1.0"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        f'<rootfile full-path="{opf}" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>",
    )

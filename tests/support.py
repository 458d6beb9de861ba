"""Helpers shared by test modules (never imported from a sibling test module)."""

from __future__ import annotations

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

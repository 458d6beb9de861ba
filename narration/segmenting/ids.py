"""Stable ids: a segment's from its chapter and its own words (an edit elsewhere changes
none), a chapter's from its title, made unique within a book."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import replace

from narration.model import (
    Chapter,
)
from narration.segmenting.inline import (
    WHITESPACE,
)


def _normalised(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub('["“”„«»]', '"', text)
    text = re.sub("[‘’‚']", "'", text)
    return WHITESPACE.sub(" ", text).strip()


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=4).hexdigest()


def segment_ids(chapter_id: str, texts: list[str]) -> list[str]:
    """Ids from the chapter and each segment's own words, so an edit elsewhere changes none;
    a repeated paragraph gets -2, -3 in order."""
    seen: Counter[str] = Counter()
    out = []
    for text in texts:
        base = f"{chapter_id}-{_short_hash(_normalised(text))}"
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def slug(title: str) -> str:
    """A stable ASCII slug: 'Chapter I: Discussion and Bed' -> 'chapter-i-discussion-and-bed'."""
    ascii_ = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")
    if len(s) > 60:
        s = s[:60].rsplit("-", 1)[0] or s[:60]
    return s or f"chapter-{_short_hash(_normalised(title))}"


def unique_id(base: str, used: set[str], hint: str = "") -> str:
    """`base`, else base-hint, else base-2, base-3…: an id not in `used` (and now in it)."""
    candidate = base
    if candidate in used and hint:
        candidate = f"{base}-{hint}"
    n = 2
    stem = candidate
    while candidate in used:
        candidate = f"{stem}-{n}"
        n += 1
    used.add(candidate)
    return candidate


def rename_chapter(ch: Chapter, chapter_id: str) -> Chapter:
    segments = tuple(replace(s, id=chapter_id + s.id[len(ch.id) :]) for s in ch.segments)
    return replace(ch, id=chapter_id, segments=segments)

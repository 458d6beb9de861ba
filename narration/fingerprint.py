"""A chapter's fingerprint: what it says, in a few hundred bytes, to tell an edited or
retitled chapter from a new one.

narrate.lock keeps each episode's fingerprint beside its guid. When a build finds chapters
it has no guid for while others it had are gone, each new chapter takes the guid and date of
the gone one whose text it shares most (a retitled or edited chapter), and only a chapter
that shares little with every gone one is a new episode, even when one was removed and one
added in the same build.

The fingerprint is a bottom-k sketch (Broder's MinHash with one hash): the SKETCH smallest
64-bit hashes of the text's word three-grams. Two sketches estimate the Jaccard similarity
of the two texts' three-grams; a typo fix keeps it near 1, an unrelated chapter near 0.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

SKETCH = 48
SHINGLE = 3
#: Above this estimated similarity, two chapters are the same episode.
SAME_EPISODE = 0.5

WORD = re.compile(r"[^\W_]+")
_CUE_TIMING = re.compile(r"^\d[\d:.]* --> ")
_TAG = re.compile(r"<[^>]*>")


def sketch(words: Sequence[str]) -> tuple[str, ...]:
    """The fingerprint of a text given as its words (case is ignored)."""
    words = [w.casefold() for w in words]
    grams = {" ".join(words[i : i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))}
    hashes = sorted(
        {hashlib.blake2b(g.encode("utf-8"), digest_size=8).hexdigest() for g in grams if g}
    )
    return tuple(hashes[:SKETCH])


def similarity(a: Iterable[str], b: Iterable[str]) -> float:
    """Estimated Jaccard similarity of the texts behind two sketches (0 when either is empty)."""
    a, b = set(a), set(b)
    if not a or not b:
        return 0.0
    union = sorted(a | b)[:SKETCH]
    return sum(1 for h in union if h in a and h in b) / len(union)


def transcript_words(vtt: Path) -> list[str]:
    """The words of a WebVTT transcript's cues (what the chapter says, as spoken)."""
    try:
        lines = vtt.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    words: list[str] = []
    for line in lines:
        if not line or line == "WEBVTT" or _CUE_TIMING.match(line):
            continue
        text = _TAG.sub(" ", line).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        words += WORD.findall(text)
    return words


def match(
    new: Sequence[tuple[str, tuple[str, ...]]], gone: Sequence[tuple[str, tuple[str, ...]]]
) -> dict[str, str]:
    """new id -> gone id, for each new chapter that is a gone one edited or retitled: the most
    similar pairs first, each side used once, only above SAME_EPISODE."""
    pairs = sorted(
        (
            (similarity(ns, gs), i, j)
            for i, (_, ns) in enumerate(new)
            for j, (_, gs) in enumerate(gone)
        ),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    taken_new: set[int] = set()
    taken_gone: set[int] = set()
    found: dict[str, str] = {}
    for score, i, j in pairs:
        if score < SAME_EPISODE:
            break
        if i in taken_new or j in taken_gone:
            continue
        taken_new.add(i)
        taken_gone.add(j)
        found[new[i][0]] = gone[j][0]
    return found

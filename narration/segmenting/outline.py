"""The Book shown: `narrate segments` (an outline of chapters, headings, quotes with their
sources, counts and what was removed) and its --json form.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

from narration.model import SEGMENT_KINDS, Book, Removed, Segment, Source, TextSpan
from narration.segmenting.inline import WHITESPACE, WORD


def _source_json(source: Source | None) -> dict[str, str | None] | None:
    if source is None:
        return None
    return {"author": source.author, "work": source.work, "year": source.year}


def book_to_json(book: Book) -> dict[str, Any]:
    """The `narrate segments --json` shape other tools rely on (extra keys only added)."""
    return {
        "chapters": [
            {
                "id": ch.id,
                "title": ch.title,
                "author": ch.author,
                "file": ch.file,
                "number": ch.number,
                "line": ch.line,
                "found_by": ch.found_by,
                "segments": [
                    {
                        "id": s.id,
                        "kind": s.kind,
                        "text": s.text,
                        "source": _source_json(s.source),
                        "line": s.line,
                        "sentences": list(s.sentences),
                        "spans": [
                            {"start": sp.start, "end": sp.end, "kind": sp.kind} for sp in s.spans
                        ],
                        "span": span_json(s.span),
                    }
                    for s in ch.segments
                ],
            }
            for ch in book.chapters
        ],
        "removed": [
            {"file": r.file, "text": r.text, "reason": r.reason, "line": r.line}
            for r in book.removed
        ],
        "notices": [{"file": n.file, "line": n.line, "message": n.message} for n in book.notices],
    }


def span_json(span: TextSpan | None) -> dict[str, Any] | None:
    """Where a segment stands in its seed file, as the JSON outputs give it."""
    return None if span is None else {"file": span.file, "start": span.start, "end": span.end}


def _count_words(text: str) -> int:
    return len(WORD.findall(text))


def _printable(text: str) -> str:
    """Control and invisible characters shown as U+XXXX, so the outline stays readable."""
    return "".join(
        f"U+{ord(c):04X}" if unicodedata.category(c) in ("Cc", "Cs", "Cf") or c == "\ufffd" else c
        for c in text
    )


def _excerpt(text: str, width: int) -> str:
    text = _printable(WHITESPACE.sub(" ", text).strip())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _counts(segments: Iterable[Segment]) -> tuple[Counter[str], int]:
    kinds: Counter[str] = Counter()
    n_words = 0
    for s in segments:
        kinds[s.kind] += 1
        n_words += _count_words(s.text)
    return kinds, n_words


def _kinds_line(kinds: Counter[str], n_words: int) -> str:
    parts = [f"{kinds[k]} {k}" for k in SEGMENT_KINDS if kinds[k]]
    return f"{_n(sum(kinds.values()), 'segment')} ({', '.join(parts)}), {_n(n_words, 'word')}"


def _n(n: int, noun: str) -> str:
    """'1 word', '2,431 words'."""
    return f"{n:,} {noun if n == 1 else noun + 's'}"


def outline(book: Book) -> str:
    """A readable outline: chapters, headings, quote blocks with sources, counts, removals."""
    out: list[str] = []
    total: Counter[str] = Counter()
    total_words = 0
    for ch in book.chapters:
        by = f" — {ch.author}" if ch.author else ""
        found = f", found by {ch.found_by.replace('-', ' ')}"
        out.append(f"{ch.number}. {ch.title}{by}  [{ch.file}]  ({ch.id}{found})")
        for s in ch.segments:
            if s.kind == "heading":
                out.append(f"     § {s.text}")
            elif s.kind == "quote":
                label = s.source.label() if s.source else "unattributed"
                out.append(f"     ❝ quote from {label}: {_excerpt(s.text, 60)}")
        kinds, n_words = _counts(ch.segments)
        total.update(kinds)
        total_words += n_words
        out.append(f"     {_kinds_line(kinds, n_words)}")
        out.append("")
    files = len({ch.file.split("/")[0] for ch in book.chapters})  # an EPUB is one file
    counts = _kinds_line(total, total_words)
    chapters = f"{len(book.chapters)} chapter{'s' if len(book.chapters) != 1 else ''}"
    sources = f"{files} file{'s' if files != 1 else ''}"
    out.append(f"Total: {chapters} from {sources}, {counts}")
    if book.removed:
        removed_words = sum(_count_words(r.text) for r in book.removed)
        out.append("")
        out.append(f"Not spoken: {_n(len(book.removed), 'piece')}, {_n(removed_words, 'word')}")
        by_reason: dict[str, list[Removed]] = {}
        for r in book.removed:
            by_reason.setdefault(r.reason, []).append(r)
        for reason, pieces in by_reason.items():
            n_words = sum(_count_words(p.text) for p in pieces)
            out.append(f"  {reason}: {len(pieces)} ({_n(n_words, 'word')})")
            for p in pieces[:5]:
                out.append(f"     {p.file}:{p.line}  {_excerpt(p.text, 70)}")
            if len(pieces) > 5:
                out.append(f"     … and {len(pieces) - 5} more")
    return "\n".join(out)

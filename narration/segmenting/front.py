"""What comes before a book's first chapter: its title page (the title and author kept,
the rest listed), or the title, author and opening text of a file that starts with prose;
and a chapter's own 'by NAME' line."""

from __future__ import annotations

import re

from narration.reading import seed_stem
from narration.segmenting.blocks import Item, Raw, Segmenting, item_lines
from narration.segmenting.chapters import is_prose
from narration.segmenting.drafts import ChapterDraft
from narration.segmenting.headings import (
    display,
)
from narration.segmenting.inline import (
    WORD,
)
from narration.segmenting.sources import BY, name_like
from narration.segmenting.spoken import spoken


def _author_from(lines: list[tuple[int, str]]) -> tuple[str, int, int] | None:
    """(author, index of the first line used, index of the name line) from a 'by' line."""
    for k, (_, t) in enumerate(lines):
        m = BY.match(t)
        if not m:
            continue
        name = (m.group("name") or "").rstrip(",.;").strip()
        if name and name_like(name):
            return name, k, k
        if not name and k + 1 < len(lines):
            nxt = lines[k + 1][1].strip().rstrip(",;").strip()
            if name_like(nxt):
                return nxt, k, k + 1
    return None


def _take_author(lines: list[tuple[int, str]], f: Segmenting, reason: str) -> str | None:
    """Find a 'BY NAME' line: the name becomes the author, the rest is removed."""
    found = _author_from(lines)
    if found is None:
        f.remove_lines(lines, reason)
        return None
    name, k, j = found
    no, t = lines[k]
    f.remove_lines(lines[:k], reason)
    if j == k:
        m = re.match(r"^(\s*by\s*)", t, re.I)
        assert m is not None
        f.remove(no, m.group(1).strip(), "'by' before the author's name")
        tail = t[m.end() :].strip()
        rest_of_line = tail[len(name) :] if tail.startswith(name) else ""
    else:
        f.remove(no, t.strip(), "'by' before the author's name")
        tail = lines[j][1].strip()
        rest_of_line = tail[tail.find(name) + len(name) :] if name in tail else ""
    if WORD.search(rest_of_line):
        f.remove(lines[j][0], rest_of_line.strip(), reason)
    f.remove_lines(lines[j + 1 :], reason)
    f.author_lines.setdefault(display(name), lines[j][0])
    return display(name)


def read_front(
    items: list[Item], f: Segmenting, has_chapters: bool
) -> tuple[str | None, list[tuple[int, str]], str | None, list[Item] | None]:
    """Resolve the items before the first chapter: (title, the lines it was read from,
    author, items of an opening chapter or None when the front is only a title page)."""
    if has_chapters and not any(
        it.kind in ("para", "list", "quote") and is_prose(it.block) for it in items
    ):
        # a title page: the book's title, publication details; only the author is kept
        page: list[tuple[int, str]] = []
        for it in items:
            if it.kind == "removed":
                f.remove_lines(item_lines(it), it.reason)
            else:
                page.extend(item_lines(it))
        author = _take_author(page, f, "title page") if page else None
        return None, [], author, None
    title: str | None = None
    title_lines: list[tuple[int, str]] = []
    author: str | None = None
    body: list[Item] = []
    shorts: list[int] = []
    for k, it in enumerate(items):
        if it.kind == "removed":
            continue
        if it.kind != "short":
            break
        shorts.append(k)
    used: set[int] = set()
    for k in shorts[:3]:
        single = items[k].block.single or ""
        if author is None and (BY.match(single) and _author_from(items[k].block.lines)):
            author = _take_author(items[k].block.lines, f, "author line")
            used.add(k)
    # a 'by' line whose name could not be read ("By Kollontai & Serge") still says where
    # the author is: the other line is not taken for the author, nor the 'by' line for the title
    by_lines = {k for k in shorts[:2] if BY.match(items[k].block.single or "")}
    candidates = [k for k in shorts[:2] if k not in used and k not in by_lines]
    if author is None and len(shorts) >= 2 and not by_lines:
        names = [k for k in shorts[:2] if name_like(items[k].block.single or "")]
        if len(names) == 1:
            k = names[0]
            author = display((items[k].block.single or "").rstrip(","))
            f.author_lines.setdefault(author, items[k].line)
            used.add(k)
            candidates = [c for c in candidates if c != k]
    if candidates:
        k = candidates[0]
        title = display(spoken(Raw.of(items[k].block.lines), f).rstrip(".")) or None
        if title:
            title_lines = items[k].block.lines
            used.add(k)
    body = [it for k, it in enumerate(items) if k not in used]
    return title, title_lines, author, body


def chapter_byline(ch: ChapterDraft) -> tuple[Item, str] | None:
    """A 'by NAME' line opening a chapter: taken out of the chapter's items, with the name."""
    first = next((it for it in ch.items if it.kind != "removed"), None)
    if first is None or first.kind not in ("short", "para") or len(first.block.lines) > 2:
        return None
    lines = first.block.lines
    found = _author_from(lines)
    if found is None or found[1] != 0 or found[2] != len(lines) - 1:
        return None
    ch.items.remove(first)
    return first, display(found[0])


def chapter_author(
    ch: ChapterDraft, byline: tuple[Item, str] | None, f: Segmenting, seen: set[str]
) -> str | None:
    """The author a chapter's byline names. The checker counts each author once per file,
    so a byline repeating an author already named is listed as removed."""
    if byline is None:
        return None
    item, name = byline
    if not ch.drafts:
        f.remove_lines(item.block.lines, "author line of a chapter with no text")
        return None
    if name in seen:
        f.remove_lines(item.block.lines, "author line (the same author as above)")
        return name
    seen.add(name)
    return _take_author(item.block.lines, f, "author line")


def title_from_file(file: str) -> str:
    """'02-the-workers-opposition-overview.txt' -> 'The Workers Opposition Overview'."""
    stem = seed_stem(file)
    stem = re.sub(r"^\d+[\s._-]*", "", stem) or stem
    words_ = [w for w in re.split(r"[\s._-]+", stem) if w]
    return " ".join(w[:1].upper() + w[1:] for w in words_) or stem

"""Chapters found and cut: which of the headings the classifier saw are the book's
chapters (a run of numerals counting up, the headings a contents list names, capitals
lines that recur), the contents list itself removed and checked against the headings, and
a book with no chapters at all cut by length."""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, replace

from narration.model import (
    Chapter,
    Notice,
)
from narration.segmenting.blocks import Block, Item, Segmenting, item_lines
from narration.segmenting.headings import (
    ILLUSTRATIONS,
    chapter_heading,
    display,
    entry_number,
    heading_key,
    named_heading,
    title_like,
)
from narration.segmenting.inline import (
    WHITESPACE,
    WORD,
)
from narration.segmenting.sources import BY


def found_by_rule(item: Item) -> str:
    """Which rule found a chapter heading (model.FOUND_BY)."""
    if item.found_by != "numbered-heading":
        return item.found_by
    h = item.heading
    if h is None:  # a Markdown or underlined heading
        numbered = entry_number(item.title) is not None or re.search(r"\d", item.title)
        return "numbered-heading" if numbered else "named-heading"
    return "named-heading" if h.rule == "special" else "numbered-heading"


def _demote(items: list[Item], k: int) -> None:
    """A heading the book does not confirm as a chapter: a section heading (with its title
    line, if it took one, a heading of its own)."""
    item = items[k]
    extra = [Item("short", e) for e in item.extra]
    if len(item.block.lines) == 2:  # a numeral and its title in one block
        first, second = item.block.lines
        items[k : k + 1] = [
            Item("short", Block([first], item.block.gap)),
            Item("short", Block([second], 0)),
        ]
        return
    items[k : k + 1] = [
        Item("short" if title_like(item.block.text) or item.heading else "para", item.block),
        *extra,
    ]


def find_chapters(items: list[Item], f: Segmenting) -> None:
    """Which of the classified items are the book's chapters: numerals confirmed by their
    count, tables of contents removed, headings the contents name (or that recur) taken,
    and the contents checked against the headings found."""
    confirm_numerals(items)
    entries = mark_contents(items)
    named_chapters(items, entries, f)
    check_contents(items, entries, f)


def confirm_numerals(items: list[Item]) -> None:
    """Numerals alone ("IV.", "4)") are a book's chapters when they count up from one (again
    from one after a part heading) and the book has no chapter headings with a unit word;
    otherwise they number sections, and are read as headings."""
    units = any(
        it.kind == "chapter"
        and it.heading is not None
        and it.heading.rule == "unit"
        and it.heading.level == "chapter"
        for it in items
    )
    expected = 1
    keep: set[int] = set()
    run: list[int] = []
    after_part = False  # numbering may go on across parts, or start again at one
    run_in_part = False  # the run being read started again after a part heading
    for k, it in enumerate(items):
        h = it.heading
        if it.kind != "chapter" or h is None:
            continue
        if h.level == "part":
            after_part = True
            continue
        if h.rule != "numeral":
            continue
        if h.number == expected and not (after_part and h.number == 1 and run):
            run.append(k)
            expected += 1
        elif h.number == 1 and (after_part or not run):
            keep.update(run if len(run) >= 2 or (run_in_part and keep) else ())
            run, expected, run_in_part = [k], 2, after_part
        after_part = False
    # a part's run of one chapter is a run when the parts before it had theirs
    keep.update(run if len(run) >= 2 or (run_in_part and keep) else ())
    # beside headings with a unit word, a titled numeral that goes on with their numbering
    # is a chapter too ("ADVENTURE VI. ..." then "VII. THE ADVENTURE OF ...")
    last: int | None = None
    going_on: set[int] = set()
    for k, it in enumerate(items):
        h = it.heading
        if it.kind != "chapter" or h is None or h.level != "chapter":
            continue
        titled = bool(it.extra) or len(it.block.lines) == 2 or "." in h.title
        if h.rule == "numeral" and titled and last is not None and h.number == last + 1:
            going_on.add(k)
        if h.rule == "unit" or k in going_on:
            last = h.number
    for k in range(len(items) - 1, -1, -1):
        it = items[k]
        h = it.heading
        if it.kind != "chapter" or h is None or h.rule != "numeral":
            continue
        titled = bool(it.extra) or len(it.block.lines) == 2 or "." in h.title
        if k in going_on:
            continue
        if units or not (k in keep or (titled and h.title.split(".")[0].isalpha())):
            _demote(items, k)


def is_prose(b: Block) -> bool:
    """A paragraph of running text (mostly lower-case words), not a title page line."""
    ws = re.findall(r"[^\W\d_]+", b.text)
    if len(ws) < 12:
        return False
    lower = sum(1 for w in ws if w[0].islower())
    return lower * 2 >= len(ws)


def is_part(item: Item) -> bool:
    return item.heading is not None and item.heading.level == "part"


def mark_contents(items: list[Item]) -> list[tuple[int, str]]:
    """Tables of contents and lists of illustrations: removed; the contents' entries (line,
    text) returned, to find and check the headings they name. A chapter heading is real
    when text follows it (a part's, when a real chapter does); runs of headings with nothing
    between them, and what follows a CONTENTS line, are the table. The table ends at a real
    chapter, at prose, or where its first entries come round again as the text's headings."""
    n = len(items)
    real = _real_headings(items)

    def next_kind(i: int) -> str | None:
        return next((items[j].kind for j in range(i + 1, n) if items[j].kind != "removed"), None)

    entries: list[tuple[int, str]] = []
    keys: set[str] = set()
    numbers: set[int] = set()  # the chapter numbers listed: the text's come round again
    listing: str | None = None  # the reason the items being read are removed for
    for i, it in enumerate(items):
        if it.kind == "contents":
            listing = "table of contents"
            it.kind, it.reason = "removed", listing
            continue
        if it.kind == "short" and it.block.single and ILLUSTRATIONS.match(it.block.single):
            listing = "list of illustrations"
            it.kind, it.reason = "removed", listing
            continue
        if listing == "table of contents" and it.reason == "table of contents":
            entries.extend(item_lines(it))  # a block of entries, removed when classified
            numbers.update(_listed_numbers(it))
            keys.update(heading_key(line) for _, line in item_lines(it))
            continue
        if listing is not None:
            key = heading_key(it.block.text) if it.kind in ("short", "chapter") else ""
            h = it.heading if it.kind == "chapter" else None
            again = h is not None and h.level == "chapter" and h.number in numbers
            # a numbered contents ends where its numbers come round again; one without
            # numbers (or a heading without one) where running text follows a heading
            ends = again or (
                (not numbers or h is None or h.number is None) and _prose_follows(items, i)
            )
            if (
                (it.kind == "chapter" and real[i] and ends)
                or (it.kind == "para" and is_prose(it.block))
                or (
                    listing == "table of contents"
                    and key in keys - {""}
                    and (h is None or h.number is None)  # two chapters may share a title
                )
            ):
                listing = None
            elif it.kind != "removed":
                if listing == "table of contents":
                    numbers.update(_listed_numbers(it))
                    for line in item_lines(it):
                        key = heading_key(line[1])
                        if key or entry_number(line[1]) is not None:
                            entries.append(line)
                            keys.add(key)
                it.kind, it.reason = "removed", listing
                continue
        if it.kind == "chapter" and not real[i]:
            if it.reason == "" and next_kind(i) is not None:
                entries.extend(item_lines(it))
            it.kind = "removed"
            it.reason = (
                "chapter heading with no text after it"
                if next_kind(i) is None
                else "table of contents"
            )
    return entries


def _real_headings(items: list[Item]) -> list[bool]:
    """Which items are real chapter headings: text follows them (a part's, a real
    chapter), where a contents list's entries are followed by more entries."""
    real = [False] * len(items)
    follows: str | None = None  # the kind of the next item that is not removed
    follows_real = False
    for i in range(len(items) - 1, -1, -1):
        it = items[i]
        if it.kind == "removed":
            continue
        if it.kind == "chapter":
            real[i] = follows not in ("chapter", None) or (
                is_part(it) and follows == "chapter" and follows_real
            )
            follows_real = real[i]
        follows = it.kind
    return real


def _listed_numbers(item: Item) -> set[int]:
    """The chapter numbers a contents item lists ("CHAPTER 12. ...", "12. ...")."""
    out = set()
    for _, line in item_lines(item):
        heading = chapter_heading(line.strip())
        number = entry_number(line)
        if number is not None and (heading is None or heading.level == "chapter"):
            out.add(number)
    return out


def _prose_follows(items: list[Item], i: int) -> bool:
    """Running text follows item i, as it follows a chapter heading and never a contents
    entry (whose lines may read as a list, or a heading, of their own)."""
    after = [it for it in items[i + 1 : i + 6] if it.kind != "removed"][:2]
    if (
        len(after) == 2
        and after[0].kind in ("short", "para")
        and len(after[0].block.lines) <= 2
        and not is_prose(after[0].block)
    ):
        after = after[1:]  # a line under the heading: "(Kept in shorthand.)"
    nxt = after[0] if after else None
    return nxt is not None and (nxt.kind == "quote" or (nxt.kind == "para" and is_prose(nxt.block)))


@dataclass(frozen=True)
class _Entry:
    """A contents entry or a heading, as the two are compared: its title's words and its
    number."""

    text: str
    line: int
    key: str
    number: int | None

    def names(self, other: _Entry) -> bool:
        if self.key and other.key:
            if self.key == other.key:
                return True
            short, long_ = sorted((self.key, other.key), key=len)
            return len(short.split()) >= 2 and long_.endswith(" " + short)
        return self.number is not None and self.number == other.number


def _headings_found(items: list[Item]) -> list[_Entry]:
    """The chapter headings found in the text, as the contents' entries are compared."""
    return [
        _Entry(it.title, it.line, heading_key(it.title), it.heading.number if it.heading else None)
        for it in items
        if it.kind == "chapter"
    ]


def _entries(lines: list[tuple[int, str]]) -> list[_Entry]:
    """The contents' entries, an entry's wrapped lines joined ("CHAPTER I" / "Jonathan
    Harker's Journal ... 1", or a long title run on to the next line)."""
    out: list[_Entry] = []
    numbered = sum(entry_number(t) is not None for _, t in lines) * 2 >= len(lines)
    for line, text in lines:
        if numbered and out and entry_number(text) is None and out[-1].line + 1 == line:
            joined = f"{out[-1].text} {text.strip()}"
            out[-1] = _Entry(joined, line, heading_key(joined), out[-1].number)
            continue
        out.append(_Entry(text.strip(), line, heading_key(text), entry_number(text)))
    return [e for e in out if e.key or e.number is not None]


#: Named headings are taken for chapters only where they recur and the chapters they make
#: are of a book's length, not a letter's salutation or a list of caps lines.
MIN_NAMED = 2
MIN_NAMED_WORDS = 500


def named_chapters(items: list[Item], entries: list[tuple[int, str]], f: Segmenting) -> None:
    """Chapters named without a number: the short lines the book's contents list names
    ("STORY OF THE DOOR", "Etymology"), else, in a book with no chapter headings at all,
    lines in capitals set off by blank lines before running text, where they recur."""
    found = _headings_found(items)
    # the entries no heading answers: a numbered chapter's entry titles that chapter
    listed = [e for e in _entries(entries) if e.key and not any(e.names(h) for h in found)]
    matched = False
    after = entries[0][0] if entries else 0
    if listed:
        for it in items:
            single = it.block.single
            if it.line <= after:
                continue  # a title page's lines are not the chapters its contents name
            if it.kind != "short" or not single or chapter_heading(single) is not None:
                continue
            here = _Entry(single, it.line, heading_key(single), None)
            entry = next((e for e in listed if e.names(here)), None)
            if entry is not None and here.key:
                listed.remove(entry)  # each entry names one heading
                it.kind, it.title, it.found_by = "chapter", display(single.rstrip(".")), "contents"
                matched = True
    if matched or any(it.kind == "chapter" and not is_part(it) for it in items):
        return
    candidates: list[int] = []
    for k, it in enumerate(items):
        single = it.block.single
        if it.kind != "short" or not single or not named_heading(single) or BY.match(single):
            continue
        indent = len(it.block.lines[0][1]) - len(it.block.lines[0][1].lstrip())
        if it.block.gap < 2 and indent < 4:
            continue
        nxt = next((x for x in items[k + 1 :] if x.kind != "removed"), None)
        if (
            nxt is not None
            and nxt.kind in ("para", "quote", "list")
            and not BY.match(nxt.block.lines[0][1])  # a title and its byline
        ):
            candidates.append(k)
    if len(candidates) < MIN_NAMED:
        return
    body = sum(
        len(WORD.findall(it.block.text)) for it in items[candidates[0] :] if it.kind == "para"
    )
    if body < MIN_NAMED_WORDS * len(candidates):
        return
    for k in candidates:
        it = items[k]
        single = it.block.single or ""
        it.kind, it.title, it.found_by = "chapter", display(single.rstrip(".")), "named-heading"


def check_contents(items: list[Item], entries: list[tuple[int, str]], f: Segmenting) -> None:
    """Where the contents list and the headings found in the text disagree, the headings
    win, and the user hears which entries differ."""
    listed = _entries(entries)
    if not listed:
        return
    found = _headings_found(items)
    missing = [e.text for e in listed if not any(e.names(h) for h in found)]
    extra = [h.text for h in found if not any(e.names(h) for e in listed)]
    if not missing and not extra:
        return

    def some(texts: list[str]) -> str:
        shown = ", ".join(f"'{WHITESPACE.sub(' ', t)}'" for t in texts[:6])
        return shown + (f" and {len(texts) - 6} more" if len(texts) > 6 else "")

    parts = [
        f"the contents list names {len(listed)} entries and the text has {len(found)} "
        "headings; the text's are used"
    ]
    if missing:
        parts.append(f"not found in the text: {some(missing)}")
    if extra:
        parts.append(f"not in the contents: {some(extra)}")
    f.notices.append(Notice(f.name, listed[0].line, "; ".join(parts)))


MAX_PART_WORDS = 9000


def length_cut(ch: Chapter, f: Segmenting) -> list[Chapter]:
    """A book with no structure at all, cut into parts of at most about MAX_PART_WORDS
    words, each as long as the others: at a scene break near the even cut if there is one,
    else between paragraphs. Never one multi-hour episode."""
    counts = [len(WORD.findall(s.text)) for s in ch.segments]
    total = sum(counts)
    if total <= MAX_PART_WORDS or len(ch.segments) < 2:
        return [ch]  # one paragraph is never cut inside
    n = -(-total // MAX_PART_WORDS)
    target = total / n
    breaks = sorted(r.line for r in f.removed if r.reason == "separator")
    ends = list(itertools.accumulate(counts))  # words up to the end of each segment
    cuts: list[int] = []  # a part ends after these segments
    done = 0
    for p in range(1, n):
        ideal = p * target
        room = [
            k
            for k in range(len(ch.segments) - 1)
            if (not cuts or k > cuts[-1])
            and abs(ends[k] - ideal) <= target / 4
            and ends[k] - done <= MAX_PART_WORDS
        ]
        scene = [
            k
            for k in room
            if bisect.bisect_left(breaks, ch.segments[k].line)
            < bisect.bisect_left(breaks, ch.segments[k + 1].line)
        ]
        pool = (
            scene or room or [min(range(len(ch.segments) - 1), key=lambda k: abs(ends[k] - ideal))]
        )
        k = min(pool, key=lambda k: abs(ends[k] - ideal))
        if cuts and k <= cuts[-1]:
            continue
        cuts.append(k)
        done = ends[k]
    parts: list[Chapter] = []
    start = 0
    for p, end in enumerate([*cuts, len(ch.segments) - 1], 1):
        title = f"{ch.title}, part {p}"
        chapter_id = f"{ch.id}-part-{p}"
        segments = tuple(
            replace(s, id=chapter_id + s.id[len(ch.id) :]) for s in ch.segments[start : end + 1]
        )
        parts.append(
            replace(
                ch,
                id=chapter_id,
                number=ch.number + p - 1,
                title=title,
                segments=segments,
                line=0,
                found_by="length-cut",
            )
        )
        start = end + 1
    if ch.line > 0:  # the title line names every part: its words are listed once, here
        f.remove(ch.line, ch.title, "title (each part is named after it)")
    return parts


#: The longest run of characters without a space that prose contains. The longest words in

"""The segmenter: the texts the readers give (narration/reading/: plain text, Markdown, and
EPUB and HTML rendered as Markdown) in, a Book of chapters and segments out, nothing lost.
This module runs the stage's parts over a file and a book: its lines cleaned
(cleaning.py), cut into blocks (blocks.py), each block's kind found (classify.py), the
chapters among them (chapters.py), the title page (front.py), each item's segments
(drafts.py), and the segments' ids (ids.py). Characters and inline markup are inline.py's,
sentences sentences.py's, the proof that no word is lost coverage.py's, and the outline
outline.py's.

Every later stage trusts this one for structure (chapters, headings, quote blocks, dialogue
spans) and for the text as it is to be spoken. Listeners complain most about chapters split
wrongly, words silently missing and licence text read aloud, so the rules are explicit:

* a file is one chapter unless it has chapter headings (``CHAPTER I: TITLE``, ``Chapter 12``,
  ``CHAPTER IV.`` or a roman numeral followed by a title line, ``PREFACE``, ``INTRODUCTION``;
  in Markdown ``#``);
* what is not spoken (Gutenberg header and licence, web boilerplate, separators, transcriber
  notes, illustration and footnote markers, tables of contents, title pages, control
  characters) is listed in ``Book.removed`` with its reason;
* every word of every input is accounted for exactly once, which
  :func:`coverage.words_accounted` checks: in a spoken segment, a chapter title or author,
  a quote's source, or the removed list.

Everything here is pure and linear in the size of the input: the same seeds always give the
same Book, byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from narration.errors import InputError
from narration.model import (
    Book,
    BookFacts,
    Chapter,
    Notice,
    Removed,
    Segment,
)
from narration.reading import ReadOptions, SourceText, read_seed_file, seed_files, seed_stem
from narration.segmenting.blocks import (
    Item,
    Segmenting,
    drop_page_numbers,
    item_lines,
    split_blocks,
)
from narration.segmenting.chapters import find_chapters, found_by_rule, is_part, length_cut
from narration.segmenting.classify import classify
from narration.segmenting.cleaning import (
    clean_lines,
    strip_front_matter,
    strip_gutenberg,
    strip_script_lines,
)
from narration.segmenting.coverage import words
from narration.segmenting.drafts import ChapterDraft, Draft, chapter_drafts
from narration.segmenting.front import chapter_author, chapter_byline, read_front, title_from_file
from narration.segmenting.ids import rename_chapter, segment_ids, slug, unique_id
from narration.segmenting.inline import (
    decode_entities,
    restore,
)
from narration.segmenting.locate import Locator
from narration.segmenting.sentences import (
    dialogue_spans,
    split_sentences,
)
from narration.segmenting.sources import signed_sources


def segment_book(seeds_dir: Path, options: ReadOptions | None = None) -> Book:
    """Segment every seed file of a book, in file-name order, into one Book."""
    chapters: list[Chapter] = []
    removed: list[Removed] = []
    notices: list[Notice] = []
    facts: dict[str, Any] = {}
    used: set[str] = set()
    texts: dict[str, str] = {}
    for path in seed_files(seeds_dir):
        reading = read_seed_file(path, options)
        if not facts and any(v is not None for v in vars(reading.facts).values()):
            facts = vars(reading.facts)  # the first book that says: all from one, never mixed
        removed.extend(reading.removed)
        before = len(chapters)
        for st in reading.texts:
            texts[st.file] = located_text(st)
            file_chapters, file_removed = segment_source(st, len(chapters) + 1, notices)
            for ch in file_chapters:
                chapter_id = unique_id(ch.id, used, slug(seed_stem(ch.file)))
                chapters.append(ch if chapter_id == ch.id else rename_chapter(ch, chapter_id))
            removed.extend(file_removed)
        if len(chapters) == before:
            raise InputError(path, "nothing to read: every part of the file was removed")
        if not any(c.isalpha() for ch in chapters[before:] for s in ch.segments for c in s.text):
            raise InputError(
                path, "nothing to read: no words, only punctuation, symbols or numbers"
            )
    return Book(
        chapters=tuple(chapters),
        removed=tuple(removed),
        facts=BookFacts(**facts),
        notices=tuple(notices),
        texts=texts,
    )


def located_text(st: SourceText) -> str:
    """The text a SourceText's segments' spans index (model.TextSpan): a text seed's decoded
    text (no byte-order mark), an EPUB or HTML document's text nodes."""
    if st.document is not None:
        return st.document
    if st.content is not None:
        return st.content
    return st.text[1:] if st.text.startswith("\ufeff") else st.text


def segment_source(
    st: SourceText, number_from: int = 1, notices: list[Notice] | None = None
) -> tuple[list[Chapter], list[Removed]]:
    """Segment one text a reader gave; a document of a book may give no chapter at all (a
    page with only an image), a seed file of its own may not. What the user should hear
    about how it was read is added to `notices`."""
    whole = st.file == st.where.name
    if not whole and not st.text.strip():
        return [], list(st.removed)
    chapters, removed, said = _segment(
        st.text,
        st.file,
        number_from,
        st.where if whole else f"{st.where}: {st.file.split('/', 1)[-1]}",
        markdown=st.markdown,
        references=st.references,
        title=st.title,
        empty_ok=not whole,
        locator=Locator(st.file, located_text(st), lines=st.content is None, start=st.body_at),
    )
    if notices is not None:
        notices.extend(said)
    if not whole:  # a document of an EPUB: a chapter its navigation makes
        chapters = [replace(ch, found_by="epub-nav") for ch in chapters]
    titled = dict(st.titles)
    for k, ch in enumerate(chapters):
        label = titled.get(ch.line)
        if label is not None and label != ch.title and set(words(ch.title)) <= set(words(label)):
            # the contents' title says the heading's words ("The Dawn" in "Chapter One: The
            # Dawn"): it is the chapter's title, announced once, and the heading is listed
            removed.append(
                Removed(st.file, ch.line, ch.title, "chapter heading (the contents' title says it)")
            )
            chapters[k] = replace(ch, title=label, line=0)
    if st.signed:
        chapters = [signed_sources(ch, st.signed) for ch in chapters]
    return chapters, sorted([*st.removed, *removed], key=lambda r: r.line)


def segment_text(text: str, file: str, number_from: int = 1) -> tuple[list[Chapter], list[Removed]]:
    """Segment one decoded seed text; `file` names it in the chapters and in errors."""
    located = text[1:] if text.startswith("\ufeff") else text
    chapters, removed, _ = _segment(
        text, file, number_from, file, locator=Locator(file, located, lines=True)
    )
    return chapters, removed


def _segment(
    text: str,
    file: str,
    number_from: int,
    where: Path | str,
    *,
    markdown: bool | None = None,
    references: bool | None = None,
    title: str | None = None,
    empty_ok: bool = False,
    locator: Locator | None = None,
) -> tuple[list[Chapter], list[Removed], list[Notice]]:
    if not text.strip():
        raise InputError(where, "the file is empty: nothing to read")
    f = Segmenting(file, markdown)
    items = _items(text, f, file.lower().endswith(".md") if references is None else references)
    author, drafts = _chapter_drafts(items, f, title or title_from_file(file))
    chapters = _chapters(drafts, f, number_from, locator)
    if author and chapters and all(c.author != restore(author) for c in chapters):
        # every chapter names its own author: the title page's is listed, not lost
        line = f.author_lines.get(author, 0)
        f.remove(line, author, "author on the title page (each chapter names its own)")
    if len(chapters) == 1 and chapters[0].found_by == "file" and not empty_ok:
        chapters = length_cut(chapters[0], f)
    _check_prose(chapters, where)
    removed = sorted((replace(r, text=restore(r.text)) for r in f.removed), key=lambda r: r.line)
    if not chapters and not empty_ok:
        reasons = sorted({r.reason for r in removed})
        raise InputError(
            where,
            "nothing to read: every part of the file was removed"
            + (f" ({', '.join(reasons)})" if reasons else ""),
        )
    return chapters, removed, f.notices


def _items(text: str, f: Segmenting, references: bool) -> list[Item]:
    """The file's blocks, classified, its chapters found."""
    lines = clean_lines(text, f)
    if references:  # character references decoded after cleaning, as source_text does
        lines = [(no, decode_entities(t)) for no, t in lines]
    lines = strip_gutenberg(lines, f)
    if f.markdown:
        lines = strip_front_matter(lines, f)
        lines = strip_script_lines(lines, f)
    blocks = split_blocks(lines)
    if not f.markdown:
        blocks = drop_page_numbers(blocks, f)
    items = classify(blocks, f)
    find_chapters(items, f)
    return items


def _chapter_drafts(
    items: list[Item], f: Segmenting, default_title: str
) -> tuple[str | None, list[ChapterDraft]]:
    """The book's author (from its title page) and its chapters' drafts: an opening chapter
    of the text before the first heading, then one per chapter heading; a part heading with
    chapters under it prefixes their titles."""
    starts = [k for k, it in enumerate(items) if it.kind == "chapter"]
    front_items = items[: starts[0]] if starts else items
    title, title_lines, author, opening = read_front(front_items, f, bool(starts))
    drafts: list[ChapterDraft] = []
    if opening is not None:
        drafts.append(ChapterDraft(title or default_title, title_lines, opening, found_by="file"))
    part: tuple[str, int] | None = None  # the part (book, volume) the chapters are in
    for n, k in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(items)
        heading = item_lines(items[k])
        body = items[k + 1 : end]
        if is_part(items[k]) and all(it.kind == "removed" for it in body) and end < len(items):
            # a part heading with chapters under it: their titles' prefix, not an episode
            for it in body:
                f.remove_lines(item_lines(it), it.reason)
            part = (items[k].title, heading[0][0])
            continue
        if is_part(items[k]):
            part = None
        drafts.append(
            ChapterDraft(
                items[k].title,
                heading,
                body,
                title_removed=items[k].title_removed,
                found_by=found_by_rule(items[k]),
                part=part,
            )
        )
    seen_authors = {author} if author else set()
    for ch in drafts:
        byline = chapter_byline(ch)
        chapter_drafts(ch, f)
        ch.author = chapter_author(ch, byline, f, seen_authors) or author
    return author, drafts


def _chapters(
    drafts: list[ChapterDraft], f: Segmenting, number_from: int, locator: Locator | None
) -> list[Chapter]:
    """The chapters with text, numbered from `number_from`; a heading with none is listed."""
    chapters: list[Chapter] = []
    used: set[str] = set()
    for ch in drafts:
        if not ch.drafts:
            f.remove_lines(ch.heading, "chapter heading with no text after it")
            continue
        f.removed.extend(ch.title_removed)
        shown = f"{ch.part[0]} — {ch.title}" if ch.part else ch.title
        chapter_id = unique_id(slug(shown), used, "")
        chapters.append(
            Chapter(
                id=chapter_id,
                number=number_from + len(chapters),
                title=restore(shown),
                author=ch.author and restore(ch.author),
                found_by=ch.found_by,
                part=ch.part and restore(ch.part[0]),
                part_line=ch.part[1] if ch.part else 0,
                file=f.name,
                segments=_segments(chapter_id, ch.drafts, locator),
                line=ch.heading[0][0] if ch.heading else 0,
            )
        )
    return chapters


#: The longest part a book with no chapters is cut into: an hour at 150 words a minute,

MAX_WORD = 250
_LONG_RUN = re.compile(rf"\S{{{MAX_WORD + 1},}}")


def _check_prose(chapters: list[Chapter], where: Path | str) -> None:
    """InputError at the first run of more than MAX_WORD characters without a space: such a
    line is not prose (base64, minified code, a binary read as text), and read aloud letter
    by letter it would make hours of noise."""
    for chapter in chapters:
        for segment in chapter.segments:
            found = _LONG_RUN.search(segment.text)
            if found is not None:
                run = found.group(0)
                raise InputError(
                    where,
                    f"{len(run):,} characters without a space ({run[:24]}...): this is not "
                    f"prose to read aloud (no word in a book is over {MAX_WORD}); is it "
                    "encoded, minified or binary? Remove it, or break it into words",
                    line=segment.line or None,
                )


def _segments(
    chapter_id: str, drafts: list[Draft], locator: Locator | None = None
) -> tuple[Segment, ...]:
    drafts = [_restored(d) for d in drafts]
    ids = segment_ids(chapter_id, [d.text for d in drafts])
    out = []
    for sid, d in zip(ids, drafts, strict=True):
        out.append(
            Segment(
                id=sid,
                kind=d.kind,
                text=d.text,
                sentences=split_sentences(d.text),
                source=d.source,
                spans=dialogue_spans(d.text) if d.kind != "heading" else (),
                line=d.line,
                span=locator.span(d.text, d.line) if locator is not None else None,
            )
        )
    return tuple(out)


def _restored(d: Draft) -> Draft:
    src = d.source
    if src is not None:
        src = replace(
            src,
            author=src.author and restore(src.author),
            work=src.work and restore(src.work),
            year=src.year and restore(src.year),
        )
    return replace(d, text=restore(d.text), source=src)

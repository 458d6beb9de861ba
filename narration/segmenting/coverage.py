"""Never a word lost: every word of every input is accounted for exactly once in the
Book (a spoken segment, a chapter title or author read from the text, a quote's source, or
the removed list), and any word dropped or duplicated shows, by file.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass

from narration.model import Book
from narration.segmenting.inline import (
    INVISIBLE,
    MARKERS,
    TERMINAL_REASON,
    WORD,
    expand_abbreviations,
    source_text,
)


def words(text: str) -> list[str]:
    """The words of a text for accounting: alphanumeric runs after NFKC, case folding and
    reading abbreviations as words (so 'i.e.' and 'that is' are the same two words).

    Quotes, dashes, markup characters and punctuation are not words, so dropping `=bold=`
    markers or reading `--` as a dash changes nothing here; underscores are dropped before
    counting, as the spoken text drops them ("_mis_managed" is "mismanaged"), and so are
    backticks; abbreviations are expanded only when written compactly ("i.e."), so no
    removed marker or markup can make one appear in the spoken text alone; a hyphenated
    compound is two words whether or not a line break fell inside it.
    """
    text = unicodedata.normalize("NFKC", text)
    text = MARKERS.sub("", INVISIBLE.sub("", text))
    text = expand_abbreviations(text).casefold()
    return WORD.findall(text)


@dataclass(frozen=True)
class Coverage:
    """Per file: words of the input not accounted for, and words accounted too often."""

    missing: dict[str, Counter[str]]
    extra: dict[str, Counter[str]]

    @property
    def ok(self) -> bool:
        return not any(self.missing.values()) and not any(self.extra.values())

    def __str__(self) -> str:
        if self.ok:
            return "every word accounted for exactly once"
        lines = []
        for label, table in (("missing", self.missing), ("extra", self.extra)):
            for file, counter in sorted(table.items()):
                if counter:
                    common = ", ".join(f"{w}×{n}" for w, n in counter.most_common(12))
                    lines.append(f"{file}: {sum(counter.values())} {label}: {common}")
        return "\n".join(lines)


def accounted_words(book: Book) -> dict[str, Counter[str]]:
    """Per file, the words the Book accounts for: spoken segments, titles read from the text
    (Chapter.line > 0), each distinct author once per file, sources read from an attribution
    line (Source.line > 0, once per line), and the removed pieces."""
    out: dict[str, Counter[str]] = {}
    authors: dict[str, set[str]] = {}
    sources: set[tuple[str, int]] = set()  # an excerpt of several paragraphs shares one source
    for ch in book.chapters:
        counter = out.setdefault(ch.file, Counter())
        title = ch.title
        if ch.part:
            title = title[len(ch.part) :]  # the prefix: accounted once, at its own line
            if (ch.file, -ch.part_line) not in sources:
                sources.add((ch.file, -ch.part_line))
                counter.update(words(ch.part))
        if ch.line > 0:
            counter.update(words(title))
        if ch.author and ch.author not in authors.setdefault(ch.file, set()):
            authors[ch.file].add(ch.author)
            counter.update(words(ch.author))
        for s in ch.segments:
            counter.update(words(s.text))
            if (
                s.source is not None
                and s.source.line > 0
                and (ch.file, s.source.line) not in sources
            ):
                sources.add((ch.file, s.source.line))
                for part in (s.source.author, s.source.work, s.source.year):
                    if part:
                        counter.update(words(part))
    for r in book.removed:
        if r.reason != TERMINAL_REASON:  # taken out of the source before counting too
            out.setdefault(r.file, Counter()).update(words(r.text))
    return out


def words_accounted(book: Book, texts: dict[str, str]) -> Coverage:
    """Prove that every word of every input text (file name -> decoded text) is accounted
    for exactly once in the Book; any word dropped or duplicated shows in the result."""
    accounted = accounted_words(book)
    missing: dict[str, Counter[str]] = {}
    extra: dict[str, Counter[str]] = {}
    for file in sorted(set(texts) | set(accounted)):
        want = Counter(words(source_text(texts.get(file, ""), file)))
        got = accounted.get(file, Counter())
        missing[file] = want - got
        extra[file] = got - want
    return Coverage(missing=missing, extra=extra)

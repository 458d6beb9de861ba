"""The segmenter: the texts the readers give (narration/reading/: plain text, Markdown, and
EPUB and HTML rendered as Markdown) in, a Book of chapters and segments out, nothing lost.
Characters and inline markup are inline.py's, sentences sentences.py's, the proof that no
word is lost coverage.py's, and the outline outline.py's; this module classifies lines
into blocks and blocks into chapters and segments.

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

import bisect
import hashlib
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
    SegmentKind,
    Source,
)
from narration.reading import ReadOptions, Signed, SourceText, read_seed_file, seed_files, seed_stem
from narration.segmenting.coverage import words
from narration.segmenting.headings import (
    CONTENTS,
    ILLUSTRATIONS,
    PAGE_NUMBER,
    Heading,
    all_caps,
    chapter_heading,
    display,
    entry_number,
    heading_key,
    named_heading,
    title_like,
    unit_line,
)
from narration.segmenting.inline import (
    HTML_BREAKS,
    HTML_TAG,
    INVISIBLE,
    NEWLINES,
    RESERVED,
    SPACES,
    SUSPECT,
    TAG_GAP,
    TERMINAL,
    TERMINAL_REASON,
    WHITESPACE,
    WORD,
    close_tag_gaps,
    decode_entities,
    join_lines,
    restore,
    spoken_text,
)
from narration.segmenting.locate import Locator
from narration.segmenting.sentences import (
    QUOTE_CHARS,
    dialogue_spans,
    sentence_bounds,
    split_sentences,
    wordset,
)


def _wordlist(words: str) -> list[str]:
    return words.split()


# --------------------------------------------------------------------------------------------
# Public entry points


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
                chapter_id = unique_id(ch.id, used, _slug(seed_stem(ch.file)))
                chapters.append(ch if chapter_id == ch.id else _rename_chapter(ch, chapter_id))
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
        chapters = [_signed_sources(ch, st.signed) for ch in chapters]
    return chapters, sorted([*st.removed, *removed], key=lambda r: r.line)


def _signed_sources(ch: Chapter, signed: tuple[Signed, ...]) -> Chapter:
    """A letter's first quote segment gets the name it is signed with as its source (line
    0: the signature is read in the letter, its words counted there, not twice)."""
    segments = list(ch.segments)
    for letter in signed:
        for k, s in enumerate(segments):
            if s.kind == "quote" and letter.first <= s.line <= letter.last:
                if s.source is None:
                    segments[k] = replace(s, source=Source(author=spoken_text(letter.name)))
                break
    return replace(ch, segments=tuple(segments))


def segment_text(text: str, file: str, number_from: int = 1) -> tuple[list[Chapter], list[Removed]]:
    """Segment one decoded seed text; `file` names it in the chapters and in errors."""
    located = text[1:] if text.startswith("\ufeff") else text
    chapters, removed, _ = _segment(
        text, file, number_from, file, locator=Locator(file, located, lines=True)
    )
    return chapters, removed


# --------------------------------------------------------------------------------------------
# Text as spoken


# --------------------------------------------------------------------------------------------
# Sentences and utterances


# --------------------------------------------------------------------------------------------
# Raw text with line numbers


@dataclass
class _Raw:
    """A piece of the seed file's text with the line number of every character."""

    text: str
    starts: list[int]  # offsets where a line begins
    nos: list[int]  # its 1-based line number

    @classmethod
    def of(cls, lines: list[tuple[int, str]]) -> _Raw:
        starts, nos, pos = [], [], 0
        for no, t in lines:
            starts.append(pos)
            nos.append(no)
            pos += len(t) + 1
        return cls("\n".join(t for _, t in lines), starts, nos)

    def line(self, offset: int) -> int:
        if not self.nos:
            return 0
        return self.nos[max(0, bisect.bisect_right(self.starts, offset) - 1)]

    def slice(self, a: int, b: int) -> _Raw:
        i = max(0, bisect.bisect_right(self.starts, a) - 1)
        starts = [0] + [s - a for s in self.starts[i + 1 :] if s < b]
        return _Raw(self.text[a:b], starts, self.nos[i : i + len(starts)])


@dataclass
class _Block:
    """A run of non-blank lines (a paragraph, a heading, a list item)."""

    lines: list[tuple[int, str]]
    gap: int = 1  # blank lines before it: books set chapter headings off with several

    @property
    def line(self) -> int:
        return self.lines[0][0]

    @property
    def text(self) -> str:
        return "\n".join(t for _, t in self.lines)

    @property
    def single(self) -> str | None:
        return self.lines[0][1].strip() if len(self.lines) == 1 else None


# --------------------------------------------------------------------------------------------
# Recognisers


_PG_START = re.compile(
    r"^\s*\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG|^\s*\*END\*\s*THE SMALL PRINT", re.I
)
_PG_END = re.compile(
    r"^\s*\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG|^\s*End of (?:the |this )?Project "
    r"Gutenberg",
    re.I,
)
_SEPARATOR = re.compile(r"^\s*(?:[*\-=_~#•·+]\s*){3,}$")
_WEB = re.compile(
    r"^(?:top of (?:the )?page|back to (?:the )?top|return to (?:the )?top|go to top"
    r"|last (?:updated|modified|revised)\b.*|page last (?:updated|modified)\b.*"
    r"|print (?:this )?page|share this(?: page| article)?|share on \w+"
    r"|skip to (?:main )?content|click here\b.*|copyright\s*(?:©|\(c\))?.*\d{4}.*"
    r"|©.*\d{4}.*|all rights reserved|privacy policy|terms of (?:use|service)"
    r"|cookie (?:policy|settings)|subscribe to (?:our|the) newsletter|follow us on \w+"
    r"|(?:«|<<)?\s*previous\s*[|·•]\s*next\s*(?:»|>>)?|site ?map|main page"
    r"|(?:home|index)(?:\s*[|»>·•/]\s*[\w '’-]+)+)\W*$",
    re.I,
)
_TRANSCRIBER = re.compile(
    r"^\[?\s*(?:(?:original\s+)?transcriber['’]?s?\s+notes?\b|transcribed\s+(?:from|by)\b|produced\s+by\b"
    r"|e-?text\s+(?:prepared|produced)\s+by\b|this\s+e-?(?:text|book)\s+was\s+"
    r"(?:prepared|produced|created)\b|scanned\s+(?:and\s+proofed\s+)?by\b"
    r"|html\s+version\s+by\b|proofread\s+by\b)",
    re.I,
)
#: A bracketed note of the edition's, not the book's ("[Editor's Note: ... ebook #43 ...]").
_EDITION_NOTE = re.compile(r"^\[\s*(?:editor|publisher)['’]?s?\s+notes?\b", re.I)
_ILLUSTRATION_BLOCK = re.compile(r"^\s*\[\s*Illustration\b", re.I)
_FOOTNOTE_BLOCK = re.compile(r"^\s*(?:\{\d{1,3}\}|\[\d{1,3}\]|\[\s*Footnote\b)", re.I)
_FOOTNOTES_HEADING = re.compile(
    r"^\s*(?:FOOT-?NOTES|Foot-?notes|END-?NOTES|End-?notes|NOTES)\s*:?\s*$"
)
_ATTRIBUTION = re.compile(
    r"^\s*\((?P<n>\d{1,3})\)\s+(?P<author>[^\W\d_][^,()]{1,80}?),\s+(?P<work>[^()]{2,200}?)"
    r"\s*\((?P<year>\d{4})\)\s*\.?\s*$"
)
_MD_HEADING = re.compile(r"^\s{0,3}(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(?:=+|-+)\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:(?P<num>\d{1,3}[.)])|(?P<bullet>[-*+•]))\s+\S")
_QUOTE_LINE = re.compile(r"^\s{0,3}>")
_SOURCE_LINE = re.compile(r"^\s*(?:--|—|–|―)\s*(?P<rest>\S.*)$")
#: A quote's source is a name or a title, a few words: a longer `— ...` line is text.
_SOURCE_WORDS = 12
_FENCE = re.compile(r"^\s{0,3}(?:```|~~~)")

_NOT_NAME = wordset(
    "the a an of and in on to for with what who how why is are was this that from by "
    "chapter part book page top last updated"
)
_NAME_PARTICLES = wordset("de da di del della der van von le la du bin ibn ten ter")
_BY = re.compile(r"^\s*by(?:\s+(?P<name>.*?))?\s*$", re.I)
_DOC_NOUNS = (
    "statement|declaration|letter|manifesto|resolution|appeal|leaflet|proclamation|telegram"
    "|programme|program|platform|petition|memorandum|circular|open letter|decree|order"
)
_DOCUMENT_INTRO = re.compile(
    r"^(?P<subject>.*?)\s*\b(?:also\s+|then\s+|later\s+|subsequently\s+|jointly\s+)?"
    r"(?:published|issued|wrote|sent|signed|adopted|released|distributed|circulated|"
    r"drew up|put out|produced)\b.*?\b(?P<noun>" + _DOC_NOUNS + r")\b(?P<after>.*)$",
    re.I | re.S,
)
_GROUP_SUBJECT = re.compile(
    r"^(?:the|this|that|its|their)\s+(?:group|party|faction|organi[sz]ation|movement|"
    r"opposition|committee|union|congress|council|conference|leadership|members)$|^(?:it|they)$",
    re.I,
)
_MONTHS = _wordlist(
    "january february march april may june july august september october november december"
)
_DATE = re.compile(
    r"(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>" + "|".join(_MONTHS) + r"),?\s+"
    r"(?P<year>\d{4})|(?P<month2>" + "|".join(_MONTHS) + r")\s+(?P<day2>\d{1,2})(?:st|nd|rd|th)?"
    r",?\s+(?P<year2>\d{4})|(?P<year3>\d{4})",
    re.I,
)


def _name_like(s: str) -> bool:
    """'A. Kolontay', 'WILLIAM MORRIS', 'Victor Serge': a person's name and nothing else."""
    toks = s.strip().rstrip(",").split()
    if not 2 <= len(toks) <= 5:
        return False
    initials = 0
    for t in toks:
        bare = t.strip(".")
        if re.fullmatch(r"(?:[^\W\d_]\.)+", t) and t[0].isupper():
            initials += 1
            continue
        if bare.lower() in _NOT_NAME:
            return False
        if t.lower() in _NAME_PARTICLES:
            continue
        if not (
            bare and bare[0].isupper() and re.fullmatch(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*'?", bare)
        ):
            return False
        if t.endswith(".") and t.lower() not in ("jr.", "sr."):
            return False
    return initials < len(toks)


# --------------------------------------------------------------------------------------------
# Items: what each block of the file is


@dataclass
class _Item:
    kind: str  # removed, chapter, short, para, list, quote, heading, attribution, contents
    block: _Block
    reason: str = ""
    title: str = ""
    title_line: int = 0
    source: Source | None = None
    extra: list[_Block] = field(default_factory=list)  # a chapter's consumed title line
    # what reading a chapter's title removed (inline markup): listed only if the chapter is
    # kept, for a heading removed whole is listed whole
    title_removed: list[Removed] = field(default_factory=list)
    heading: Heading | None = None  # a chapter heading as recognised, before the book confirms it
    found_by: str = "numbered-heading"  # a chapter's: see model.FOUND_BY

    @property
    def line(self) -> int:
        return self.block.line


def _item_lines(item: _Item) -> list[tuple[int, str]]:
    """All the lines an item stands for, with a chapter heading's consumed title line."""
    lines = list(item.block.lines)
    for extra in item.extra:
        lines.extend(extra.lines)
    return lines


class _File:
    """One seed file being segmented: its name, the removed pieces, whether it is Markdown."""

    def __init__(self, name: str, markdown: bool | None = None) -> None:
        self.name = name
        self.markdown = name.lower().endswith(".md") if markdown is None else markdown
        self.removed: list[Removed] = []
        self.author_lines: dict[str, int] = {}  # an author read from the text: its line
        self.notices: list[Notice] = []  # what the user should hear of how the file was read

    def remove(self, line: int, text: str, reason: str) -> None:
        text = text.strip("\n")
        if text:
            self.removed.append(Removed(file=self.name, line=line, text=text, reason=reason))

    def remove_lines(self, lines: list[tuple[int, str]], reason: str) -> None:
        while lines and not lines[0][1].strip():
            lines = lines[1:]
        if lines:
            self.remove(lines[0][0], "\n".join(t for _, t in lines).rstrip(), reason)


def _clean_lines(text: str, f: _File) -> list[tuple[int, str]]:
    """Lines with control characters removed (and reported) and odd spaces made plain."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = NEWLINES.sub("\n", text)
    out: list[tuple[int, str]] = []
    for no, line in enumerate(text.split("\n"), 1):
        if not line.isascii():
            line = INVISIBLE.sub("", line)
        if "\x1b" in line or "\x9b" in line:  # a terminal log's colours: not text
            escapes = TERMINAL.findall(line)
            if escapes:
                line = TERMINAL.sub("", line)
                f.remove(no, "".join(escapes), TERMINAL_REASON)
        if SUSPECT.search(line):
            bad: dict[str, list[str]] = {}
            chars = []
            for ch in line:
                cat = unicodedata.category(ch)
                reserved = ch in RESERVED or "\uf700" <= ch <= "\uf77f"
                if ch == "\t" or not (cat in ("Cc", "Cs") or ch == "\ufffd" or reserved):
                    chars.append(ch)
                    continue
                reason = (
                    "replacement character: a character was already lost before this file was saved"
                    if ch == "\ufffd"
                    else "private-use character that narrate reserves"
                    if reserved
                    else "lone surrogate (not a character)"
                    if cat == "Cs"
                    else "control character"
                )
                bad.setdefault(reason, []).append("\ufffd" if cat == "Cs" else ch)
                chars.append(" ")
            line = "".join(chars)
            for reason, found in bad.items():
                f.remove(no, "".join(found), reason)
        if "\t" in line or not line.isascii():
            line = SPACES.sub(" ", line)
        out.append((no, line.rstrip()))
    return out


def _strip_gutenberg(lines: list[tuple[int, str]], f: _File) -> list[tuple[int, str]]:
    """Project Gutenberg's header, footer and licence, removed whole."""
    start = next((i for i, (_, t) in enumerate(lines[:2000]) if _PG_START.match(t)), None)
    end_from = start + 1 if start is not None else 0
    end = next((i for i in range(end_from, len(lines)) if _PG_END.match(lines[i][1])), None)
    if end is not None and start is None and end < len(lines) // 2:
        end = None  # a mention near the top is not the footer
    if end is not None:
        f.remove_lines(lines[end:], "Project Gutenberg footer and licence")
        lines = lines[:end]
    if start is not None:
        f.remove_lines(lines[: start + 1], "Project Gutenberg header")
        lines = lines[start + 1 :]
    return lines


def _strip_front_matter(lines: list[tuple[int, str]], f: _File) -> list[tuple[int, str]]:
    """A Markdown file's YAML metadata block (between `---` lines at the top): not read."""
    if not lines or lines[0][1].strip() != "---":
        return lines
    for k in range(1, min(len(lines), 80)):
        t = lines[k][1]
        if t.strip() in ("---", "..."):
            f.remove_lines(lines[: k + 1], "metadata block (front matter)")
            return lines[k + 1 :]
        if t.strip() and not re.match(r"^(?:[\w-]+\s*:|\s+\S|-\s)", t):
            return lines  # not YAML: a separator line and text
    return lines


_SCRIPT_LINE = re.compile(r"^\s*<(script|style)\b[^>]{0,1000}>", re.I)


def _strip_script_lines(lines: list[tuple[int, str]], f: _File) -> list[tuple[int, str]]:
    """A Markdown file's <script> or <style> element that runs over several lines (blank
    ones too, which would cut it into paragraphs): its lines removed whole, listed."""
    out: list[tuple[int, str]] = []
    k = 0
    while k < len(lines):
        m = _SCRIPT_LINE.match(lines[k][1])
        closing = f"</{m.group(1).lower()}" if m else ""
        if m and closing not in lines[k][1].lower():
            end = next(
                (j for j in range(k + 1, len(lines)) if closing in lines[j][1].lower()), None
            )
            if end is not None and lines[end][1].lower().rstrip().endswith(">"):
                f.remove_lines(lines[k : end + 1], "script or style (not text)")
                k = end + 1
                continue
        out.append(lines[k])
        k += 1
    return out


def _blocks(lines: list[tuple[int, str]]) -> list[_Block]:
    """Paragraph blocks, with list items, attribution lines, Markdown headings and quote
    runs split out even when no blank line separates them."""
    blocks: list[_Block] = []
    cur: list[tuple[int, str]] = []
    fence = False
    last = 0  # the line number of the last non-blank line
    gap = 0
    for no, t in lines:
        if _FENCE.match(t):
            fence = not fence
            if not cur:
                gap = no - last - 1
            cur.append((no, t))
            last = no
            if not fence:
                blocks.append(_Block(cur, gap))
                cur = []
            continue
        if fence:
            cur.append((no, t))
            last = no
            continue
        if not t.strip():
            if cur:
                blocks.append(_Block(cur, gap))
                cur = []
            continue
        if not cur:
            gap = no - last - 1
        cur.append((no, t))
        last = no
    if cur:
        blocks.append(_Block(cur, gap))
    out: list[_Block] = []
    for b in blocks:
        if _FENCE.match(b.lines[0][1]):
            out.append(b)
            continue
        out.extend(_split_block(b))
    return out


def _split_block(b: _Block) -> list[_Block]:
    listy = _LIST_ITEM.match(b.lines[0][1]) is not None
    pieces: list[list[tuple[int, str]]] = [[]]
    prev_quote = None
    for no, t in b.lines:
        is_quote = _QUOTE_LINE.match(t) is not None
        alone = (
            _ATTRIBUTION.match(t)
            or _MD_HEADING.match(t)
            or (_SEPARATOR.match(t) and not (_SETEXT.match(t) and len(pieces[-1]) == 1))
            or (prev_quote and not is_quote and _SOURCE_LINE.match(t))  # `-- Author` below
        )
        starts = (
            alone
            or (listy and _LIST_ITEM.match(t))
            or (prev_quote is not None and is_quote and not prev_quote)
        )
        if starts and pieces[-1]:
            pieces.append([])
        pieces[-1].append((no, t))
        if alone:
            pieces.append([])
        prev_quote = is_quote
    return [_Block(p, b.gap if k == 0 else 0) for k, p in enumerate(pieces) if p]


_SENTENCE_OPEN = re.compile(r"[.!?:;…\"”’')\]_*—-]$")


def _mid_sentence(blocks: list[_Block], k: int) -> bool:
    """Block k falls inside a sentence: the block before ends without a stop and the block
    after goes on in lower case ("the calls" / "3)" / "of business")."""
    if k == 0 or k + 1 >= len(blocks):
        return False
    before = blocks[k - 1].lines[-1][1].rstrip()
    after = blocks[k + 1].lines[0][1].lstrip()
    return bool(before) and not _SENTENCE_OPEN.search(before) and after[:1].islower()


def _page_numbers(blocks: list[_Block], f: _File) -> list[_Block]:
    """Page numbers a scanned book kept on lines of their own: a run of numbers in one style
    ("12)", "[12]", "xii") of which one at least falls in the middle of a sentence. They are
    removed, and a paragraph a page break cut in two is joined again."""
    styles: dict[str, list[int]] = {}
    for k, b in enumerate(blocks):
        if b.single and PAGE_NUMBER.match(b.single):
            style = re.sub(r"\d+", "9", re.sub(r"^[ivxlcdm]+", "r", b.single.strip().lower()))
            styles.setdefault(style, []).append(k)
    pages: set[int] = set()
    for ks in styles.values():
        if len(ks) >= 2 and any(_mid_sentence(blocks, k) for k in ks):
            pages.update(ks)
    if not pages:
        return blocks
    out: list[_Block] = []
    join = False
    for k, b in enumerate(blocks):
        if k in pages:
            f.remove(b.line, b.text, "page number")
            join = join or _mid_sentence(blocks, k)
            continue
        if join and out:
            out[-1] = _Block(out[-1].lines + b.lines, out[-1].gap)
        else:
            out.append(b)
        join = False
    return out


def _bracketed(blocks: list[_Block], i: int) -> int:
    """Index of the block that closes a bracket opened at block i (for multi-block notes)."""
    depth = 0
    for j in range(i, min(len(blocks), i + 40)):
        text = blocks[j].text
        depth += text.count("[") - text.count("]")
        if depth <= 0:
            return j
    return i


def _classify(blocks: list[_Block], f: _File) -> list[_Item]:
    items: list[_Item] = []
    i = 0
    footnotes = False
    while i < len(blocks):
        b = blocks[i]
        first = b.lines[0][1].strip()
        single = b.single
        heading = _heading_of(single, b, f) if single else None
        if heading is None and len(b.lines) == 2:
            two = _heading_of(b.lines[0][1], b, f)
            if two and two.wants_title and title_like(b.lines[1][1]) and _may_title(b.lines[1][1]):
                sep = ". " if two.rule == "numeral" else ": "
                title = f"{two.title}{sep}{display(b.lines[1][1].strip().rstrip('.'))}"
                items.append(_Item("chapter", b, title=title, heading=two))
                footnotes = False
                i += 1
                continue
        if footnotes and not heading and not (f.markdown and _MD_HEADING.match(first)):
            items.append(_Item("removed", b, reason="footnotes"))
            i += 1
            continue
        if _FENCE.match(first):
            items.append(_Item("removed", b, reason="code block"))
        elif all(_SEPARATOR.match(t) for _, t in b.lines):
            items.append(_Item("removed", b, reason="separator"))
        elif (
            len(b.lines) == 2
            and _SETEXT.match(b.lines[1][1])
            and len(b.lines[1][1].strip()) >= 3
            and (f.markdown or title_like(first))
        ):
            level = 1 if b.lines[1][1].strip().startswith("=") else 2
            kind = "chapter" if level == 1 else "heading"
            items.append(_Item(kind, b, title=display(b.lines[0][1])))
            footnotes = False
        elif first.startswith("<!--"):
            j = i
            while j + 1 < len(blocks) and "-->" not in blocks[j].text:
                j += 1
            for k in range(i, j + 1):
                items.append(_Item("removed", blocks[k], reason="comment"))
            i = j
        elif _ILLUSTRATION_BLOCK.match(first) or (
            first.startswith("[") and (_TRANSCRIBER.match(first) or _EDITION_NOTE.match(first))
        ):
            j = _bracketed(blocks, i)
            reason = (
                "illustration marker" if _ILLUSTRATION_BLOCK.match(first) else "transcriber's note"
            )
            for k in range(i, j + 1):
                items.append(_Item("removed", blocks[k], reason=reason))
            i = j
        elif _TRANSCRIBER.match(first) and len(b.lines) <= 8:
            items.append(_Item("removed", b, reason="transcriber's note"))
            if single and single.endswith(":"):  # "Transcriber's Notes:" and the notes under it
                while (
                    i + 1 < len(blocks)
                    and blocks[i + 1].gap < 6
                    and not title_like(blocks[i + 1].text)
                    and not _heading_of(blocks[i + 1].lines[0][1], blocks[i + 1], f)
                    and len(items) < 10_000
                ):
                    i += 1
                    items.append(_Item("removed", blocks[i], reason="transcriber's note"))
        elif (
            len(b.lines) <= 2
            and len(b.text) <= 150
            and _WEB.match(WHITESPACE.sub(" ", b.text).strip())
        ):
            items.append(_Item("removed", b, reason="web page boilerplate"))
        elif single and _FOOTNOTES_HEADING.match(single):
            items.append(_Item("removed", b, reason="footnotes"))
            footnotes = True
        elif _FOOTNOTE_BLOCK.match(first):
            j = _bracketed(blocks, i) if first.startswith("[") else i
            for k in range(i, j + 1):
                items.append(_Item("removed", blocks[k], reason="footnote"))
            i = j
        elif single and CONTENTS.match(single):
            items.append(_Item("contents", b))
        elif heading is not None:
            item = _Item("chapter", b, title=heading.title, heading=heading)
            nxt = blocks[i + 1].single if i + 1 < len(blocks) else None
            if (
                heading.wants_title
                and nxt
                and title_like(nxt)
                and _may_title(nxt)
                and not _WEB.match(nxt)
                and not _BY.match(nxt)
            ):
                sep = ". " if heading.rule == "numeral" else ": "
                item.title = f"{heading.title}{sep}{display(nxt.rstrip('.'))}"
                item.extra.append(blocks[i + 1])
                i += 1
            items.append(item)
            footnotes = False
        elif f.markdown and _MD_HEADING.match(first) and len(b.lines) == 1:
            m = _MD_HEADING.match(first)
            assert m is not None
            kind = "chapter" if len(m.group("hashes")) == 1 else "heading"
            before = len(f.removed)
            title = display(_spoken(_Raw.of([(b.line, m.group("text"))]), f))
            pieces = f.removed[before:]
            del f.removed[before:]  # a section heading's are listed with its segment
            if title:
                items.append(_Item(kind, b, title=title, title_removed=pieces))
            else:  # "#" alone, or only markup: the whole line is removed, once
                items.append(_Item("removed", b, reason="empty heading"))
            footnotes = False
        elif single and _ATTRIBUTION.match(single):
            items.append(_Item("attribution", b))
        elif _QUOTE_LINE.match(first):
            items.append(_Item("quote", b))
        elif single and _SOURCE_LINE.match(single) and items and items[-1].kind == "quote":
            items.append(_Item("quote", b))  # the `-- Author, Work (Year)` line below a quote
        elif _LIST_ITEM.match(first):
            items.append(_Item("list", b))
        elif len(b.lines) >= 2 and _toc_block(b):
            items.append(_Item("removed", b, reason="table of contents"))
        elif single and title_like(single):
            items.append(_Item("short", b))
        else:
            items.append(_Item("para", b))
        i += 1
    _merge_quote_sources(items)
    _confirm_numerals(items)
    entries = _mark_contents(items)
    _named_chapters(items, entries, f)
    _check_contents(items, entries, f)
    return items


def _may_title(line: str) -> bool:
    """A line that may be the title of the chapter heading above it: not a heading of its
    own, unless a named section ("I" / "Introduction")."""
    heading = chapter_heading(line)
    return heading is None or heading.rule == "special"


def _heading_of(line: str, b: _Block, f: _File) -> Heading | None:
    """The chapter heading a line of this block reads as. A numeral is one only in plain text
    (Markdown numbers its lists so), and a numeral with a title on its line only when the
    title is in capitals or the line is set off by blank lines ("I. A SCANDAL IN BOHEMIA")."""
    heading = chapter_heading(line)
    if heading is None or heading.rule != "numeral":
        return heading
    if f.markdown:
        return None
    if not heading.wants_title and not (all_caps(line) or b.gap >= 2):
        return None
    return heading


def _demote(items: list[_Item], k: int) -> None:
    """A heading the book does not confirm as a chapter: a section heading (with its title
    line, if it took one, a heading of its own)."""
    item = items[k]
    extra = [_Item("short", e) for e in item.extra]
    if len(item.block.lines) == 2:  # a numeral and its title in one block
        first, second = item.block.lines
        items[k : k + 1] = [
            _Item("short", _Block([first], item.block.gap)),
            _Item("short", _Block([second], 0)),
        ]
        return
    items[k : k + 1] = [
        _Item("short" if title_like(item.block.text) or item.heading else "para", item.block),
        *extra,
    ]


def _confirm_numerals(items: list[_Item]) -> None:
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


def _toc_block(b: _Block) -> bool:
    """A block of chapter-heading lines (or lines with page numbers): a table of contents."""
    lines = [t.strip() for _, t in b.lines]
    hits = [
        t
        for t in lines
        if chapter_heading(t) is not None
        or re.search(r"(?:\.{3,}|\s{2,}|\t)\s*(?:\d{1,4}|[ivxlc]+)$", t)
        or unit_line(t)
    ]
    # a contents list names each chapter once: "I." twice is a paragraph's wrapped lines
    names = {re.sub(r"[\W_]+$", "", t).casefold() for t in hits}
    return len(names) >= 2 and len(hits) * 2 >= len(lines)


def _merge_quote_sources(items: list[_Item]) -> None:
    """Fold a `-- Author, Work (Year)` line into the blockquote above it; a longer line
    that begins with a dash is a paragraph of its own, never a source."""
    out: list[_Item] = []
    for item in items:
        if (
            item.kind == "quote"
            and out
            and out[-1].kind == "quote"
            and not _QUOTE_LINE.match(item.block.lines[0][1])
        ):
            if _is_source_line(item.block.lines[0][1]):
                out[-1].extra.append(item.block)
                continue
            item.kind = "para"
        out.append(item)
    items[:] = out


def _is_source_line(line: str) -> bool:
    """A `— Name` line of a few words, not a paragraph that begins with a dash."""
    m = _SOURCE_LINE.match(line)
    return m is not None and len(m.group("rest").split()) <= _SOURCE_WORDS


def _is_prose(b: _Block) -> bool:
    """A paragraph of running text (mostly lower-case words), not a title page line."""
    ws = re.findall(r"[^\W\d_]+", b.text)
    if len(ws) < 12:
        return False
    lower = sum(1 for w in ws if w[0].islower())
    return lower * 2 >= len(ws)


def _is_part(item: _Item) -> bool:
    return item.heading is not None and item.heading.level == "part"


def _mark_contents(items: list[_Item]) -> list[tuple[int, str]]:
    """Tables of contents and lists of illustrations: removed; the contents' entries (line,
    text) returned, to find and check the headings they name. A chapter heading is real
    when text follows it (a part's, when a real chapter does); runs of headings with nothing
    between them, and what follows a CONTENTS line, are the table. The table ends at a real
    chapter, at prose, or where its first entries come round again as the text's headings."""
    n = len(items)
    real = [False] * n
    follows: str | None = None  # the kind of the next item that is not removed
    follows_real = False
    for i in range(n - 1, -1, -1):
        it = items[i]
        if it.kind == "removed":
            continue
        if it.kind == "chapter":
            real[i] = follows not in ("chapter", None) or (
                _is_part(it) and follows == "chapter" and follows_real
            )
            follows_real = real[i]
        follows = it.kind

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
            entries.extend(_item_lines(it))  # a block of entries, removed when classified
            numbers.update(_listed_numbers(it))
            keys.update(heading_key(line) for _, line in _item_lines(it))
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
                or (it.kind == "para" and _is_prose(it.block))
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
                    for line in _item_lines(it):
                        key = heading_key(line[1])
                        if key or entry_number(line[1]) is not None:
                            entries.append(line)
                            keys.add(key)
                it.kind, it.reason = "removed", listing
                continue
        if it.kind == "chapter" and not real[i]:
            if it.reason == "" and next_kind(i) is not None:
                entries.extend(_item_lines(it))
            it.kind = "removed"
            it.reason = (
                "chapter heading with no text after it"
                if next_kind(i) is None
                else "table of contents"
            )
    return entries


def _listed_numbers(item: _Item) -> set[int]:
    """The chapter numbers a contents item lists ("CHAPTER 12. ...", "12. ...")."""
    out = set()
    for _, line in _item_lines(item):
        heading = chapter_heading(line.strip())
        number = entry_number(line)
        if number is not None and (heading is None or heading.level == "chapter"):
            out.add(number)
    return out


def _prose_follows(items: list[_Item], i: int) -> bool:
    """Running text follows item i, as it follows a chapter heading and never a contents
    entry (whose lines may read as a list, or a heading, of their own)."""
    after = [it for it in items[i + 1 : i + 6] if it.kind != "removed"][:2]
    if (
        len(after) == 2
        and after[0].kind in ("short", "para")
        and len(after[0].block.lines) <= 2
        and not _is_prose(after[0].block)
    ):
        after = after[1:]  # a line under the heading: "(Kept in shorthand.)"
    nxt = after[0] if after else None
    return nxt is not None and (
        nxt.kind == "quote" or (nxt.kind == "para" and _is_prose(nxt.block))
    )


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


def _headings_found(items: list[_Item]) -> list[_Entry]:
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


def _named_chapters(items: list[_Item], entries: list[tuple[int, str]], f: _File) -> None:
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
    if matched or any(it.kind == "chapter" and not _is_part(it) for it in items):
        return
    candidates: list[int] = []
    for k, it in enumerate(items):
        single = it.block.single
        if it.kind != "short" or not single or not named_heading(single) or _BY.match(single):
            continue
        indent = len(it.block.lines[0][1]) - len(it.block.lines[0][1].lstrip())
        if it.block.gap < 2 and indent < 4:
            continue
        nxt = next((x for x in items[k + 1 :] if x.kind != "removed"), None)
        if (
            nxt is not None
            and nxt.kind in ("para", "quote", "list")
            and not _BY.match(nxt.block.lines[0][1])  # a title and its byline
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


def _check_contents(items: list[_Item], entries: list[tuple[int, str]], f: _File) -> None:
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


# --------------------------------------------------------------------------------------------
# Segments


@dataclass
class _Draft:
    kind: SegmentKind
    text: str
    line: int
    source: Source | None = None


@dataclass
class _ChapterDraft:
    title: str
    heading: list[tuple[int, str]]  # the lines the title was read from; [] for a file name
    items: list[_Item]
    author: str | None = None
    drafts: list[_Draft] = field(default_factory=list)
    title_removed: list[Removed] = field(default_factory=list)
    found_by: str = "numbered-heading"
    part: tuple[str, int] | None = None  # the part's title and line, its title's prefix


def _found_by(item: _Item) -> str:
    """Which rule found a chapter heading (model.FOUND_BY)."""
    if item.found_by != "numbered-heading":
        return item.found_by
    h = item.heading
    if h is None:  # a Markdown or underlined heading
        numbered = entry_number(item.title) is not None or re.search(r"\d", item.title)
        return "numbered-heading" if numbered else "named-heading"
    return "named-heading" if h.rule == "special" else "numbered-heading"


_INLINE = re.compile(
    r"(?P<illustration>\[\s*Illustration\b[^\]]{0,2000}\])"
    r"|(?P<note>\[\s*(?:Transcriber|Editor|TN)['’]?s?\s*[Nn]ote[^\]]{0,2000}\])"
    r"|(?P<footnote>\[\s*Footnote\b[^\]]{0,2000}\])"
    r"|(?P<marker>\{\d{1,3}\}|\[\d{1,3}\])"
    r"|(?P<image>!\[[^\]\n]{0,500}\]\([^)\s]{1,500}(?:\s+\"[^\"\n]{0,200}\")?\))"
    r"|(?P<link>\[(?P<label>[^\]\n]{1,500})\]\((?P<url>[^)\s]{1,500}(?:\s+\"[^\"\n]{0,200}\")?)\))"
    r"|(?P<comment><!--.{0,2000}?-->)"
    r"|(?P<autolink><(?:https?|ftp|mailto):[^\s<>]{1,500}>)"
    rf"|(?P<html>{HTML_TAG.pattern})",
    re.I | re.S,
)
_INLINE_REASONS = {
    "illustration": "illustration marker",
    "note": "transcriber's note",
    "footnote": "footnote",
    "marker": "footnote marker",
    "image": "image",
    "comment": "comment",
    "autolink": "link target (a web address)",
}
_MARKDOWN_ONLY = frozenset({"image", "link", "comment", "autolink", "html"})
_SCRIPT_OPEN = re.compile(r"<(script|style)\b[^>\n]{0,1000}>", re.I)


def _cut_scripts(raw: _Raw, text: str, f: _File) -> str:
    """<script> and <style> elements removed whole (listed), blanked to the same length so
    every later offset still finds its line. One search per kind for its closing tag: an
    element never closed is left to the tag rule, and the scan stays linear."""
    lower = text.lower()
    out, pos, unclosed = [], 0, set()
    for m in _SCRIPT_OPEN.finditer(text):
        name = m.group(1).lower()
        if m.start() < pos or name in unclosed:
            continue
        end = lower.find(f"</{name}", m.end())
        close = text.find(">", end) if end >= 0 else -1
        if close < 0:
            unclosed.add(name)
            continue
        f.remove(raw.line(m.start()), text[m.start() : close + 1], "script or style (not text)")
        out.append(text[pos : m.start()])
        out.append(re.sub(r"[^\n]", " ", text[m.start() : close + 1]))
        pos = close + 1
    return "".join(out) + text[pos:] if out else text


_INLINE_HINT = re.compile(r"[\[{<]")


def _spoken(raw: _Raw, f: _File) -> str:
    """A block's raw text as spoken: inline markers removed (reported), lines joined."""
    text = raw.text
    if f.markdown and "<" in text:
        text = _cut_scripts(raw, text, f)
    if _INLINE_HINT.search(text):

        def repl(m: re.Match[str]) -> str:
            kind = m.lastgroup
            assert kind is not None
            if kind in _MARKDOWN_ONLY and not f.markdown:
                return m.group(0)
            if kind == "link":
                f.remove(raw.line(m.start("url")), m.group("url"), "link target (a web address)")
                return m.group("label")
            if kind == "html":
                tag = m.group("tag").lower()
                f.remove(raw.line(m.start()), m.group(0), "image" if tag == "img" else "HTML tag")
                return " " if tag in HTML_BREAKS else TAG_GAP
            f.remove(raw.line(m.start()), m.group(0), _INLINE_REASONS[kind])
            return " "

        text = _INLINE.sub(repl, text)
        if TAG_GAP in text:
            text = close_tag_gaps(text)
    return spoken_text(join_lines(text.split("\n")))


def _lines_raw(lines: list[tuple[int, str]], strip: Callable[[str], str] | None = None) -> _Raw:
    return _Raw.of([(no, strip(t) if strip else t) for no, t in lines])


def _strip_quote_marker(t: str) -> str:
    return re.sub(r"^\s{0,3}>+ ?", "", t)


def _strip_bullet(t: str) -> str:
    return re.sub(r"^(\s*)[-*+•](\s+)", r"\1\2", t)


def _parse_source(rest: str, line: int) -> Source:
    """'Author, Work (Year)' -> Source; whatever the text names is kept, nothing invented."""
    rest = rest.strip()
    year = None
    m = re.search(r"\(([^()]*)\)\s*\.?$", rest)
    if m and m.group(1).strip():
        year = m.group(1).strip()
        rest = rest[: m.start()].strip()
    author, _, work = rest.partition(",")
    return Source(author=author.strip() or None, work=work.strip() or None, year=year, line=line)


def _document_split(raw: _Raw) -> tuple[_Raw, _Raw, str, str] | None:
    """A long quotation introduced as a document ('... published a statement on 27th
    February, 1921: "..."'): (intro, quotation, intro sentence, quotation text)."""
    m = re.search(r":[ \t\n]*([\"“])(?P<body>[^\"“”]{80,})[\"”][ \t\n]*$", raw.text)
    if not m:
        return None
    body = m.group("body")
    if len(WORD.findall(body)) < 25 or len(sentence_bounds(WHITESPACE.sub(" ", body))) < 2:
        return None
    intro_text = raw.text[: m.start() + 1]
    sentences = sentence_bounds(WHITESPACE.sub(" ", intro_text))
    last = sentences[-1] if sentences else ""
    if QUOTE_CHARS.search(last) or not _DOCUMENT_INTRO.match(last):
        return None
    return raw.slice(0, m.start() + 1), raw.slice(m.start("body"), m.end("body")), last, body


def _document_source(intro: str, chapter_title: str) -> Source:
    """Who issued the document, what it is, and when, from the sentence introducing it."""
    m = _DOCUMENT_INTRO.match(intro)
    assert m is not None
    subject = re.sub(r"[,;]\s*$", "", m.group("subject").strip())
    subject = re.sub(r"^(?:in \d{4},?\s+|on [^,]+,\s+|then,?\s+)", "", subject, flags=re.I)
    if _GROUP_SUBJECT.match(subject):
        author: str | None = chapter_title  # "the group": the subject of the article
    elif _name_like(subject) or re.fullmatch(r"[A-Z][\w'’\-]+", subject):
        author = subject
    else:
        author = None
    noun = m.group("noun").lower()
    work = noun[:1].upper() + noun[1:]
    year = None
    d = _DATE.search(m.group("after")) or _DATE.search(intro)
    if d:
        if d.group("year") or d.group("year2"):
            day = d.group("day") or d.group("day2")
            month = (d.group("month") or d.group("month2")).capitalize()
            year = d.group("year") or d.group("year2")
            work = f"{work} of {int(day)} {month} {year}"
        else:
            year = d.group("year3")
            work = f"{work} of {year}"
    return Source(author=author, work=work, year=year, line=0)


def _item_drafts(item: _Item, f: _File, chapter_title: str, source: Source | None) -> list[_Draft]:
    """The segments one item gives: a paragraph, a list item, a quote, a heading."""
    lines = item.block.lines
    if item.kind in ("short", "heading"):
        text = _spoken(_Raw.of(lines), f) if item.kind == "short" else ""
        if item.kind == "heading":
            m = _MD_HEADING.match(lines[0][1])
            raw_title = m.group("text") if m and len(lines) == 1 else lines[0][1]
            text = _spoken(_Raw.of([(lines[0][0], raw_title)]), f)
            for no, t in lines[1:]:
                if not _SETEXT.match(t):
                    text = f"{text} {_spoken(_Raw.of([(no, t)]), f)}"
        shown = display(text)
        return [_Draft("heading", shown, item.line)] if shown else []
    if item.kind == "list":
        text = _spoken(_lines_raw(lines, _strip_bullet), f)
        kind: SegmentKind = "quote" if source else "list_item"
        return [_Draft(kind, text, item.line, source)] if text else []
    if item.kind == "quote":
        body = list(lines)
        src: Source | None = None
        for extra in item.extra:
            body.extend(extra.lines)
        stripped = [(no, _strip_quote_marker(t)) for no, t in body]
        while stripped and not stripped[-1][1].strip():
            stripped.pop()
        has_text = any(t.strip() for _, t in stripped[:-1])
        source_line = None
        if has_text and _is_source_line(stripped[-1][1]):
            source_line = stripped.pop()
            sm = _SOURCE_LINE.match(source_line[1])
            assert sm is not None
            src = _parse_source(spoken_text(sm.group("rest")), source_line[0])
        text = _spoken(_Raw.of(stripped), f)
        if not text and source_line is not None:  # its only words were markers: listed
            f.remove(source_line[0], source_line[1], "source of a quote with nothing to read")
        return [_Draft("quote", text, item.line, src)] if text else []
    # a paragraph
    raw = _Raw.of(lines)
    if source is not None:
        text = _spoken(raw, f)
        return [_Draft("quote", text, item.line, source)] if text else []
    split = _document_split(raw)
    if split is not None:
        intro_raw, body_raw, intro, _ = split
        out: list[_Draft] = []
        intro_text = _spoken(intro_raw, f)
        if intro_text:
            out.append(_Draft("narration", intro_text, item.line))
        body_text = _spoken(body_raw, f)
        if body_text:
            out.append(
                _Draft("quote", body_text, body_raw.nos[0], _document_source(intro, chapter_title))
            )
        return out
    text = _spoken(raw, f)
    return [_Draft("narration", text, item.line)] if text else []


def _chapter_drafts(ch: _ChapterDraft, f: _File) -> None:
    """Turn a chapter's items into segment drafts, applying attribution lines to the
    excerpts that follow them (until a heading, a separator or the next attribution)."""
    source: Source | None = None
    pending: _Item | None = None  # the attribution line in force, until an excerpt uses it

    def drop_source() -> None:
        nonlocal source, pending
        if pending is not None:
            f.remove_lines(pending.block.lines, "attribution line with no excerpt after it")
        source, pending = None, None

    for item in ch.items:
        if item.kind == "removed":
            f.remove_lines(_item_lines(item), item.reason)
            if item.reason == "separator":
                drop_source()
            continue
        if item.kind == "attribution":
            drop_source()
            m = _ATTRIBUTION.match(item.block.single or "")
            assert m is not None
            source = Source(
                author=spoken_text(m.group("author")),
                work=spoken_text(m.group("work")),
                year=m.group("year"),
                line=item.line,
            )
            pending = item
            continue
        if item.kind in ("short", "heading", "chapter", "quote"):
            drop_source()
        drafts = _item_drafts(item, f, ch.title, source)
        if pending is not None and any(d.source is source for d in drafts):
            m = _ATTRIBUTION.match(pending.block.single or "")
            assert m is not None
            f.remove(
                pending.line, f"({m.group('n')})", "note number of a source's attribution line"
            )
            pending = None
        ch.drafts.extend(drafts)
    drop_source()


# --------------------------------------------------------------------------------------------
# Front matter: title, author, title page


def _author_from(lines: list[tuple[int, str]]) -> tuple[str, int, int] | None:
    """(author, index of the first line used, index of the name line) from a 'by' line."""
    for k, (_, t) in enumerate(lines):
        m = _BY.match(t)
        if not m:
            continue
        name = (m.group("name") or "").rstrip(",.;").strip()
        if name and _name_like(name):
            return name, k, k
        if not name and k + 1 < len(lines):
            nxt = lines[k + 1][1].strip().rstrip(",;").strip()
            if _name_like(nxt):
                return nxt, k, k + 1
    return None


def _take_author(lines: list[tuple[int, str]], f: _File, reason: str) -> str | None:
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


def _front(
    items: list[_Item], f: _File, has_chapters: bool
) -> tuple[str | None, list[tuple[int, str]], str | None, list[_Item] | None]:
    """Resolve the items before the first chapter: (title, the lines it was read from,
    author, items of an opening chapter or None when the front is only a title page)."""
    if has_chapters and not any(
        it.kind in ("para", "list", "quote") and _is_prose(it.block) for it in items
    ):
        # a title page: the book's title, publication details; only the author is kept
        page: list[tuple[int, str]] = []
        for it in items:
            if it.kind == "removed":
                f.remove_lines(_item_lines(it), it.reason)
            else:
                page.extend(_item_lines(it))
        author = _take_author(page, f, "title page") if page else None
        return None, [], author, None
    title: str | None = None
    title_lines: list[tuple[int, str]] = []
    author: str | None = None
    body: list[_Item] = []
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
        if author is None and (_BY.match(single) and _author_from(items[k].block.lines)):
            author = _take_author(items[k].block.lines, f, "author line")
            used.add(k)
    # a 'by' line whose name could not be read ("By Kollontai & Serge") still says where
    # the author is: the other line is not taken for the author, nor the 'by' line for the title
    by_lines = {k for k in shorts[:2] if _BY.match(items[k].block.single or "")}
    candidates = [k for k in shorts[:2] if k not in used and k not in by_lines]
    if author is None and len(shorts) >= 2 and not by_lines:
        names = [k for k in shorts[:2] if _name_like(items[k].block.single or "")]
        if len(names) == 1:
            k = names[0]
            author = display((items[k].block.single or "").rstrip(","))
            f.author_lines.setdefault(author, items[k].line)
            used.add(k)
            candidates = [c for c in candidates if c != k]
    if candidates:
        k = candidates[0]
        title = display(_spoken(_Raw.of(items[k].block.lines), f).rstrip(".")) or None
        if title:
            title_lines = items[k].block.lines
            used.add(k)
    body = [it for k, it in enumerate(items) if k not in used]
    return title, title_lines, author, body


def _chapter_byline(ch: _ChapterDraft) -> tuple[_Item, str] | None:
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


def _chapter_author(
    ch: _ChapterDraft, byline: tuple[_Item, str] | None, f: _File, seen: set[str]
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


def _title_from_file(file: str) -> str:
    """'02-the-workers-opposition-overview.txt' -> 'The Workers Opposition Overview'."""
    stem = seed_stem(file)
    stem = re.sub(r"^\d+[\s._-]*", "", stem) or stem
    words_ = [w for w in re.split(r"[\s._-]+", stem) if w]
    return " ".join(w[:1].upper() + w[1:] for w in words_) or stem


# --------------------------------------------------------------------------------------------
# Assembly


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
    f = _File(file, markdown)
    default_title = title
    lines = _clean_lines(text, f)
    if file.lower().endswith(".md") if references is None else references:
        # character references decoded after cleaning, as source_text does
        lines = [(no, decode_entities(t)) for no, t in lines]
    lines = _strip_gutenberg(lines, f)
    if f.markdown:
        lines = _strip_front_matter(lines, f)
        lines = _strip_script_lines(lines, f)
    blocks = _blocks(lines)
    if not f.markdown:
        blocks = _page_numbers(blocks, f)
    items = _classify(blocks, f)

    starts = [k for k, it in enumerate(items) if it.kind == "chapter"]
    front_items = items[: starts[0]] if starts else items
    title, title_lines, author, opening = _front(front_items, f, bool(starts))
    drafts: list[_ChapterDraft] = []
    if opening is not None:
        drafts.append(
            _ChapterDraft(
                title or default_title or _title_from_file(file),
                title_lines,
                opening,
                found_by="file",
            )
        )
    part: tuple[str, int] | None = None  # the part (book, volume) the chapters are in
    for n, k in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(items)
        heading = _item_lines(items[k])
        body = items[k + 1 : end]
        if _is_part(items[k]) and all(it.kind == "removed" for it in body) and end < len(items):
            # a part heading with chapters under it: their titles' prefix, not an episode
            for it in body:
                f.remove_lines(_item_lines(it), it.reason)
            part = (items[k].title, heading[0][0])
            continue
        if _is_part(items[k]):
            part = None
        drafts.append(
            _ChapterDraft(
                items[k].title,
                heading,
                body,
                title_removed=items[k].title_removed,
                found_by=_found_by(items[k]),
                part=part,
            )
        )
    seen_authors = {author} if author else set()
    for ch in drafts:
        byline = _chapter_byline(ch)
        _chapter_drafts(ch, f)
        ch.author = _chapter_author(ch, byline, f, seen_authors) or author
    chapters: list[Chapter] = []
    used: set[str] = set()
    for ch in drafts:
        if not ch.drafts:
            f.remove_lines(ch.heading, "chapter heading with no text after it")
            continue
        f.removed.extend(ch.title_removed)
        shown = f"{ch.part[0]} — {ch.title}" if ch.part else ch.title
        chapter_id = unique_id(_slug(shown), used, "")
        chapters.append(
            Chapter(
                id=chapter_id,
                number=number_from + len(chapters),
                title=restore(shown),
                author=ch.author and restore(ch.author),
                found_by=ch.found_by,
                part=ch.part and restore(ch.part[0]),
                part_line=ch.part[1] if ch.part else 0,
                file=file,
                segments=_segments(chapter_id, ch.drafts, locator),
                line=ch.heading[0][0] if ch.heading else 0,
            )
        )
    if author and chapters and all(c.author != restore(author) for c in chapters):
        # every chapter names its own author: the title page's is listed, not lost
        line = f.author_lines.get(author, 0)
        f.remove(line, author, "author on the title page (each chapter names its own)")
    if len(chapters) == 1 and chapters[0].found_by == "file" and not empty_ok:
        chapters = _length_cut(chapters[0], f)
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


#: The longest part a book with no chapters is cut into: an hour at 150 words a minute,
#: LibriVox's limit for a section. Counted in words, never from a voice's rate, so the
#: parts (and their ids) stay where they are when a voice changes.
MAX_PART_WORDS = 9000


def _length_cut(ch: Chapter, f: _File) -> list[Chapter]:
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
#: print (a chemical name, Aristophanes' 171-letter dish) and long URLs stay under it; the
#: seeds' longest word is 23 characters, the novel's 43 (a URL).
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
    chapter_id: str, drafts: list[_Draft], locator: Locator | None = None
) -> tuple[Segment, ...]:
    drafts = [_restored(d) for d in drafts]
    ids = _segment_ids(chapter_id, [d.text for d in drafts])
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


def _restored(d: _Draft) -> _Draft:
    src = d.source
    if src is not None:
        src = replace(
            src,
            author=src.author and restore(src.author),
            work=src.work and restore(src.work),
            year=src.year and restore(src.year),
        )
    return replace(d, text=restore(d.text), source=src)


def _normalised(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub('["“”„«»]', '"', text)
    text = re.sub("[‘’‚']", "'", text)
    return WHITESPACE.sub(" ", text).strip()


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=4).hexdigest()


def _segment_ids(chapter_id: str, texts: list[str]) -> list[str]:
    """Ids from the chapter and each segment's own words, so an edit elsewhere changes none;
    a repeated paragraph gets -2, -3 in order."""
    seen: Counter[str] = Counter()
    out = []
    for text in texts:
        base = f"{chapter_id}-{_short_hash(_normalised(text))}"
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def _slug(title: str) -> str:
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


def _rename_chapter(ch: Chapter, chapter_id: str) -> Chapter:
    segments = tuple(replace(s, id=chapter_id + s.id[len(ch.id) :]) for s in ch.segments)
    return replace(ch, id=chapter_id, segments=segments)


# --------------------------------------------------------------------------------------------
# Inspecting it


# --------------------------------------------------------------------------------------------
# Never a word lost

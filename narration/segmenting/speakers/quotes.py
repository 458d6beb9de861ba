"""Quotations: which quoted stretches of a chapter are speech (or quoted thought), and how
they hang together.

A quotation is one speaker's turn: the pieces of `"…," said he, "…"` are one quotation,
and so is a speech that runs over paragraphs (a paragraph that ends with the quotation
still open, the next opening again). Scare quotes, titles and quoted words inside
narration ("work", "debased Romanesque") are not quotations. Double quotes (straight,
curly, guillemets) and single quotes (‘…’, or straight in a book that uses them for
speech) are both understood; in either style the other marks are quotes inside a
quotation and stay inside it. An apostrophe ("don't", "the Smiths' house", "'tis") is
never a quote mark.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from narration.model import Chapter, QuotePiece, Segment
from narration.segmenting.inline import WORD
from narration.segmenting.sentences import wordset

#: Opening and closing marks of each style. Straight marks are either, by context.
_DOUBLE_OPEN = "“„«"
_DOUBLE_CLOSE = "”»"
_SINGLE_OPEN = "‘‹"
_SINGLE_CLOSE = "’›"
#: What may stand before an opening mark: nothing, a space or an opening bracket or dash.
_BEFORE_OPEN = set(" \t\n([{—–-\u2014/“‘\"'«‹")
#: Elisions that start with an apostrophe: never an opening single quote.
_ELISIONS = re.compile(
    r"(?i:tis|twas|twere|twill|twould|em|im|er|ere|bout|cause|cos|n|d|s|ll|ve|re|m|t|"
    r"til|till|un|uns|ud|ow|ome|ouse|alf|e|is|ad|ave|appen|ere's|owever|nuff|nother|"
    r"spose|sposin|gainst|mongst|midst|neath|prentice|tother|o|twixt)\b"
)


@dataclass(frozen=True)
class Found:
    """A quoted stretch of one segment's text, quote marks excluded."""

    start: int
    end: int
    #: the quotation was still open at the end of the segment
    open_end: bool = False
    #: it continues a quotation left open at the end of the previous segment
    continues: bool = False


def quote_style(texts: Sequence[str]) -> str:
    """'double' or 'single': which marks a book uses for speech, by counting the opening
    marks each style has at the start of a word (straight single quotes count only where
    they cannot be an elision)."""
    double = single = 0
    for text in texts:
        double += text.count("“") + text.count("„") + text.count("«")
        single += text.count("‘")
        for m in re.finditer("[\"']", text):
            i = m.start()
            if (i == 0 or text[i - 1] in _BEFORE_OPEN) and i + 1 < len(text):
                nxt = text[i + 1]
                if not (nxt.isalnum() or nxt in "_—–-"):
                    continue
                if m.group(0) == '"':
                    double += 1
                elif not _ELISIONS.match(text, i + 1):
                    single += 1
    return "single" if single > 2 * double else "double"


_DOUBLE_MARKS = re.compile(f'[{_DOUBLE_OPEN}{_DOUBLE_CLOSE}"]')
_SINGLE_MARKS = re.compile(f"[{_SINGLE_OPEN}{_SINGLE_CLOSE}']")


def _marks(text: str, style: str) -> Iterator[tuple[int, str]]:
    """Each quote mark of the style with its role: ('open' | 'close' | 'either')."""
    n = len(text)
    if style == "double":
        for m in _DOUBLE_MARKS.finditer(text):
            c = m.group(0)
            yield m.start(), "open" if c in _DOUBLE_OPEN else "close" if c != '"' else "either"
        return
    for m in _SINGLE_MARKS.finditer(text):
        i, c = m.start(), m.group(0)
        if c in _SINGLE_OPEN:
            yield i, "open"
            continue
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < n else " "
        if before.isalnum() and after.isalnum():
            continue  # don't, o'clock
        if before in _BEFORE_OPEN and after in "'’" and text[i + 2 : i + 3].isalnum():
            yield i, "open"  # ''Tis a fine house,'
            continue
        if before in _BEFORE_OPEN and after.isalnum():
            if c == "'" and not _ELISIONS.match(text, i + 1):
                yield i, "open"
            continue  # 'tis, ’em
        if before.isspace():
            continue
        if before in "sS" and after == " " and text[i + 2 : i + 3].islower():
            continue  # the Smiths’ house
        yield i, "close"


def find_quoted(text: str, style: str, open_before: bool) -> list[Found]:
    """The quoted stretches of one segment's text (marks excluded), in order."""
    out: list[Found] = []
    start: int | None = None
    continues = False
    marks = list(_marks(text, style))
    if open_before and marks and marks[0][0] == _first_char(text):
        # the previous paragraph left a quotation open and this one opens again
        start, continues = marks[0][0] + 1, True
        marks = marks[1:]
    nested = False
    for n, (i, role) in enumerate(marks):
        if role == "either":
            before = text[i - 1] if i else " "
            after = text[i + 1] if i + 1 < len(text) else " "
            if start is None:
                role = "open" if (before in _BEFORE_OPEN or not after.isspace()) else "close"
            else:
                role = "close" if (not before.isspace() or after.isspace()) else "open"
                if nested and role == "close":
                    nested = False  # the inner quotation closed; the outer goes on
                    continue
                if role == "open" and len(marks) - n - 1 >= 2:
                    # a quotation inside a quotation in the same marks ("fed on undisguised
                    # "charity" as it was called"): it closes, then the outer does
                    nested = True
                    continue
        if role == "open":
            if start is not None and _has_words(text, start, i):
                # an unclosed quotation: the new one starts here
                out.append(Found(start, _trim_end(text, start, i), False, continues))
                continues = False
            start = i + 1
        elif start is not None:
            if _has_words(text, start, i):
                out.append(Found(start, i, False, continues))
            start, continues = None, False
    if start is not None and _has_words(text, start, len(text)):
        out.append(Found(start, _trim_end(text, start, len(text)), True, continues))
    return out


def _first_char(text: str) -> int:
    i = 0
    while i < len(text) and (text[i].isspace() or text[i] in "—–-(["):
        i += 1
    return i


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _has_words(text: str, a: int, b: int) -> bool:
    return WORD.search(text, a, b) is not None


#: Verbs of speech and thought, as attributions use them ("said he", "Emma replied").
SPEECH_VERBS = wordset(
    """said says say saying answered answers answering replied replies replying asked asks
    asking cried cries crying exclaimed exclaims exclaiming returned returns rejoined
    rejoins observed observes remarked remarks continued continues continuing added adds
    adding whispered whispers whispering shouted shouts shouting murmured murmurs
    murmuring muttered mutters muttering repeated repeats began begins called calls
    inquired inquires enquired enquires retorted retorts resumed resumes went thought
    thinks thinking interrupted interrupts pursued urged pleaded protested declared
    declares explained explains demanded demands responded responds suggested suggests
    insisted insists admitted admits agreed agrees groaned sighed sighs laughed laughs
    smiled smiles screamed yelled roared growled grumbled stammered faltered sobbed
    wailed gasped breathed hissed snapped snarled drawled blurted ventured persisted
    objected confessed concluded announced acknowledged assented interposed exploded
    called echoed mused reflected told tells corrected warned shrieked squeaked panted
    chuckled giggled grunted moaned cautioned commented conceded remonstrated
    expostulated ejaculated vociferated articulated stuttered lisped simpered sneered
    scoffed observed answered rejoined replied cried returned addressed answer reply cry
    exclaim ask whisper observe remark begin continue repeat return call shout murmur mutter
    add inquire enquire retort resume interrupt declare explain demand respond suggest
    insist admit agree sigh laugh scream protest"""
)


@dataclass(frozen=True)
class Stretch:
    """A piece of a quotation as the chapter is read: its paragraph's index in the chapter's
    list, and where it stands in that paragraph's segment (quote marks excluded)."""

    paragraph: int
    segment: str
    start: int
    end: int

    @property
    def piece(self) -> QuotePiece:
        return QuotePiece(self.segment, self.start, self.end)


@dataclass(frozen=True)
class Paragraph:
    """A narration segment and the quotations found in it (segment-relative pieces)."""

    segment: Segment
    found: tuple[Found, ...]
    #: narration ending with a colon, comma or dash after its last quotation: it introduces
    #: a quotation opening the next paragraph ("Emma said,")
    introduces: bool = False


def chapter_paragraphs(chapter: Chapter, style: str) -> list[Paragraph]:
    """Every narration segment of a chapter with its quoted stretches, quotations left
    open at a paragraph's end carried into the next."""
    out: list[Paragraph] = []
    open_before = False
    for seg in chapter.segments:
        if seg.kind not in ("narration", "quote", "list_item"):
            open_before = False
            continue
        found = find_quoted(seg.text, style, open_before) if seg.kind != "list_item" else []
        tail = seg.text[found[-1].end + 1 :] if found else seg.text
        introduces = seg.kind == "narration" and _INTRODUCES.search(tail) is not None
        out.append(Paragraph(seg, tuple(found), introduces))
        open_before = bool(found) and found[-1].open_end
    return out


_INTRODUCES = re.compile(r"[,:—–-]\s*$")
_SHORT = 4


def is_speech(text: str, f: Found, before: str, after: str) -> bool:
    """Speech or quoted thought, not a scare quote, a title or a quoted word: by where the
    quotation stands (opening its paragraph, beside a verb of speech) and what it holds
    (a sentence, a question, an exclamation)."""
    if f.continues or not before.strip(" \t—–-(“‘\"'"):
        return True
    inner = text[f.start : f.end]
    words = WORD.findall(inner) if len(inner) < 200 else inner.split()
    tail = inner.rstrip()
    ends = tail[-1:] in ".,!?;:—–-…"
    # a verb of speech right beside the marks: "Emma said, “…”", "“…,” said Emma"
    # (not "as Holmes had remarked, the initials “H. B.” were scrawled")
    lead = before.rstrip()
    before_words = WORD.findall(lead[-30:])
    after_words = WORD.findall(after[:40])
    near_verb = (
        (
            lead.endswith((",", ":", "—", "–", "-"))
            and any(w.lower() in SPEECH_VERBS for w in before_words[-4:])
        )
        or (before_words[-1:] and before_words[-1].lower() in SPEECH_VERBS)
        or any(w.lower() in SPEECH_VERBS for w in after_words[:4])
    )
    if before.rstrip().endswith((":", ",")) and len(words) >= 2 and near_verb:
        return True
    if near_verb and (ends or len(words) > _SHORT):
        return True
    if tail[-1:] in "!?" and len(words) >= 2:
        return True
    if ends and len(words) > _SHORT:
        return True
    return len(words) >= 10


def quotation_pieces(
    paragraphs: Sequence[Paragraph], two_speakers: Callable[[str], bool] = lambda _: False
) -> list[list[Stretch]]:
    """Quotations as lists of (paragraph index, piece), speech only: the pieces of one
    paragraph joined by an attribution or a short narration are one quotation, and a
    quotation carried over a paragraph break is one."""
    quotations: list[list[Stretch]] = []
    for k, para in enumerate(paragraphs):
        text = para.segment.text
        prev_end = 0
        current: list[Stretch] | None = None
        for n, f in enumerate(para.found):
            nxt = para.found[n + 1].start if n + 1 < len(para.found) else len(text)
            before = text[prev_end : max(prev_end, f.start - 1)]
            after = text[f.end + 1 : nxt]
            # a sentence quoted after speech and its attribution goes on with that speech:
            # '"Go home," said Anna. "It is late."'
            goes_on = (
                current is not None
                and _joins(before)
                and text[f.start : f.end].rstrip()[-1:] in ".!?…"
            )
            if not goes_on and not is_speech(text, f, before, after):
                prev_end = f.end + 1
                continue
            piece = Stretch(k, para.segment.id, f.start, f.end)
            if f.continues and quotations and quotations[-1][-1].paragraph == k - 1:
                quotations[-1].append(piece)
                current = quotations[-1]
            elif current is not None and _joins(before) and not two_speakers(before):
                current.append(piece)
            else:
                current = [piece]
                quotations.append(current)
            prev_end = f.end + 1
    return quotations


def _joins(between: str) -> bool:
    """Whether the narration between two quoted stretches of a paragraph leaves them one
    turn: an attribution ("said he,") or a short aside, never a second speaker named."""
    return len(WORD.findall(between)) <= 25

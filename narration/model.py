"""The values passed from one pipeline stage to the next.

Every stage takes and returns these frozen dataclasses, so no stage can change what an
earlier one decided, and each stage can be tested on its own by building them by hand.
The stages and what each takes and gives are mapped once, in the README ("Inside: the
pipeline"): reading gives texts, segmenting a Book (and Speakers), casting CastChapters,
synthesis Clips (grouped as ChapterClips), assembly Episodes (an Audiobook, a ReadAlong),
publishing the feed and the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from narration import DEFAULT_ENGINE

SegmentKind = Literal["narration", "heading", "quote", "list_item"]
#: How a chapter was found (`narrate segments --json`'s `found_by`): from the book's own
#: contents list, a numbered heading ("CHAPTER IV", "STAVE ONE", "4)"), a named heading
#: without a number ("STORY OF THE DOOR"), an EPUB's navigation, the seed file itself (a
#: file that is one chapter), or a cut of a book with no structure into parts.
FOUND_BY = ("contents", "numbered-heading", "named-heading", "epub-nav", "file", "length-cut")
SEGMENT_KINDS: tuple[str, ...] = ("narration", "heading", "quote", "list_item")

#: Longest utterance sent to the engine in one piece. pyttsx3's espeak driver silently
#: writes no file for the first utterance of a new engine when it is longer than about
#: 250 characters; the segmenter splits longer sentences at clause boundaries.
MAX_UTTERANCE = 240


@dataclass(frozen=True)
class Source:
    """Who a quote block is from, as far as the text names it."""

    author: str | None = None
    work: str | None = None
    year: str | None = None
    #: 1-based line of the attribution the source was read from (its words are accounted
    #: there); 0 when inferred from the narration around the quote. Not part of equality.
    line: int = field(default=0, compare=False)

    def label(self) -> str:
        """'Victor Serge, Memoirs of a Revolutionary (1963)', leaving out what is unknown."""
        head = ", ".join(p for p in (self.author, self.work) if p)
        if self.year:
            return f"{head} ({self.year})" if head else self.year
        return head


@dataclass(frozen=True)
class Span:
    """A stretch of a segment's text, by character offsets: a quotation inside a sentence."""

    start: int
    end: int
    kind: Literal["dialogue"] = "dialogue"


@dataclass(frozen=True)
class TextSpan:
    """Where a stretch of text stands in a seed file: Python string indices into the
    decoded file text (line endings as written, CRLF two characters; no byte-order mark),
    or, for an EPUB or HTML document (`file` "book.epub/OEBPS/ch1.xhtml"), into the text of
    its body's text nodes in document order. `Book.texts[file]` is that text."""

    file: str  # as Chapter.file names it
    start: int
    end: int  # exclusive


@dataclass(frozen=True)
class Segment:
    """One paragraph-sized piece of a chapter, with its text as it is to be spoken."""

    id: str  # stable: derived from the chapter and the segment's own words, not its position
    kind: SegmentKind
    text: str  # as spoken: lines joined, markup dropped, never empty
    sentences: tuple[str, ...]  # text split for synthesis, each at most MAX_UTTERANCE chars
    source: Source | None = None  # quote blocks only
    spans: tuple[Span, ...] = ()  # dialogue and other inline quotations
    line: int = 0  # 1-based line of the seed file where the segment starts
    #: where its words stand in the file (None: no text of the file stands for it, an
    #: image's description); not part of equality, so ids and everything after are unchanged
    span: TextSpan | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Chapter:
    id: str  # stable slug, unique in the book
    number: int  # 1-based, in listening order
    title: str
    author: str | None
    file: str  # seed file name, relative to seeds/
    segments: tuple[Segment, ...]
    #: 1-based line of the heading or title line the title was read from; 0 when the title
    #: comes from the file name (the segmenter's word accounting needs to tell them apart).
    line: int = 0
    #: the rule that found the chapter, so a user can see why a book split as it did: one of
    #: FOUND_BY
    found_by: str = "file"
    #: the part, book or volume the chapter is in, as its title's prefix ("Part One — ..."),
    #: and the line of its heading (its words are accounted once, there)
    part: str | None = None
    part_line: int = 0


@dataclass(frozen=True)
class Removed:
    """A piece of an input file that is not spoken, and why."""

    file: str
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class Notice:
    """Something the user should hear about how a file was read (a contents list that
    disagrees with the headings found), said by `segments` and `build`."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.message}"
            if self.line
            else f"{self.file}: {self.message}"
        )


@dataclass(frozen=True)
class Book:
    chapters: tuple[Chapter, ...]
    removed: tuple[Removed, ...]
    facts: BookFacts = field(default_factory=lambda: BookFacts())
    notices: tuple[Notice, ...] = ()
    #: each file's text that segments' spans index (TextSpan), by the name chapters give it
    texts: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class BookFacts:
    """What the seeds say about the book (an EPUB's metadata), used where podcast.yaml is
    silent."""

    title: str | None = None
    #: continuation lines of a Gutenberg header's `Title:`, or an EPUB's subtitle
    subtitle: str | None = None
    author: str | None = None
    language: str | None = None  # ISO 639 code
    #: what the book says of itself (an EPUB's dc:description), for the show's description
    description: str | None = None
    #: the work's original year, only where a source states it (never an ebook's own date)
    year: int | None = None
    #: the cover image's bytes, and where it is ("book.epub: OEBPS/cover.jpg", for errors)
    cover: tuple[bytes, str] | None = field(default=None, repr=False)


Gender = Literal["female", "male", "unknown"]


@dataclass(frozen=True)
class QuotePiece:
    """One stretch of a quotation inside a segment's text, quote marks excluded."""

    segment: str  # the segment's id
    start: int  # offsets into Segment.text
    end: int


@dataclass(frozen=True)
class Quotation:
    """One turn of speech (or quoted thought): its pieces, in order, possibly over several
    paragraphs, and who speaks it, with the evidence (None: narrate abstained)."""

    id: str  # "<chapter id>.q<n>", in reading order
    chapter: str
    pieces: tuple[QuotePiece, ...]
    speaker: str | None  # a Character's id
    attribution: str | None  # "explicit: said Holmes", "turn-taking", ...


@dataclass(frozen=True)
class Character:
    """A person the book names (or its first-person narrator), found in the text itself."""

    id: str  # a stable slug of the name: "mr-woodhouse", "narrator"
    name: str
    aliases: tuple[str, ...]  # every name the book calls it by, the name among them
    gender: Gender
    gender_evidence: str | None  # "title", "pronouns (12 of 13)", None when unknown
    quotations: int  # quotations attributed to it
    words: int  # their words
    narrator: bool = False


@dataclass(frozen=True)
class Speakers:
    """Who speaks in a book: its characters and its quotations, in reading order."""

    characters: tuple[Character, ...] = ()
    quotations: tuple[Quotation, ...] = ()

    def in_segment(self, segment_id: str) -> tuple[tuple[Quotation, QuotePiece], ...]:
        """The quotation pieces inside one segment, in order."""
        return self._index().get(segment_id, ())

    def _index(self) -> dict[str, tuple[tuple[Quotation, QuotePiece], ...]]:
        cached = self.__dict__.get("_by_segment")
        if cached is None:
            out: dict[str, list[tuple[Quotation, QuotePiece]]] = {}
            for q in self.quotations:
                for piece in q.pieces:
                    out.setdefault(piece.segment, []).append((q, piece))
            cached = {k: tuple(v) for k, v in out.items()}
            object.__setattr__(self, "_by_segment", cached)
        return cached


@dataclass(frozen=True)
class CastableVoice:
    """A voice an engine offers for casting characters automatically: a plain speaking voice
    of a known gender (no robots, whispers or novelty variants), as the engine is given it."""

    engine: str  # "pyttsx3", "kokoro"
    engine_voice: str  # "gmw/en-gb-scotland+m3", "bf_emma"
    gender: Literal["female", "male"]
    accent: str | None  # "Scottish", "American", ... as `narrate voices` shows it
    description: str  # how `narrate characters` shows it: "Scottish, variant m3 (male)"
    #: how far down the engine's list of distinct voices: 0 the most distinct (espeak-ng's
    #: numbered variants, Kokoro's best grades); the cast takes lower tiers first
    tier: int = 0


#: The name of a voice the cast gave a character of its own accord (`character:<id>`), as
#: no voices.yaml voice can be named.
CHARACTER_VOICE = "character:"


@dataclass(frozen=True)
class Voice:
    """A named voice from voices.yaml, with everything the engine needs to render it."""

    name: str  # key in voices.yaml, e.g. "serge"
    label: str  # who the listener hears, for transcripts: "Victor Serge"
    #: the engine's voice: an espeak-ng id with optional variant ("gmw/en-us+f3"), a Kokoro
    #: voice ("am_michael") or a Kokoro blend, weights as written ("bf_emma*0.7+bf_isabella*0.3")
    engine_voice: str
    rate: int  # words per minute (espeak-ng; Kokoro's pace follows `speed`)
    pitch: int  # 0-100 (espeak-ng only)
    volume: float  # 0-1
    engine: str = DEFAULT_ENGINE  # which engine renders it: "pyttsx3" or "kokoro"
    speed: float = 1.0  # Kokoro's speed factor, 0.5-2 (espeak-ng uses `rate`)

    def settings(self) -> str:
        """What shapes its sound, as error messages show it."""
        if self.engine == "pyttsx3":
            return f"{self.engine_voice}, {self.rate} wpm, pitch {self.pitch}, volume {self.volume}"
        return f"{self.engine} {self.engine_voice}, speed {self.speed}, volume {self.volume}"


@dataclass(frozen=True)
class Line:
    """One utterance: what the transcript shows and what the engine is given.

    A lexicon entry that gives a Kokoro voice phonemes puts them in `spoken` between
    PHONEMES_OPEN and PHONEMES_CLOSE (private-use characters no text contains; the
    segmenter removes them from seeds), so the engine reads them as phonemes, not letters.
    """

    text: str  # as shown in the transcript
    spoken: str  # as sent to the engine, after the lexicon


PHONEMES_OPEN = "\ue000"
PHONEMES_CLOSE = "\ue001"


@dataclass(frozen=True)
class Within:
    """Where a part of a segment stands in the segment's text (a dialogue rule's piece)."""

    start: int
    end: int


@dataclass(frozen=True)
class CastSegment:
    """A segment, or an announcement, with the voice that reads it."""

    id: str  # the segment's id; announcements use "<segment id>.announce"
    kind: str  # a SegmentKind, or "announcement"
    voice: Voice
    rule: str  # which rule chose the voice, e.g. "rules[2]" or "default"
    lines: tuple[Line, ...]
    source: Source | None = None
    segment: Segment | None = None  # None for announcements
    #: the stretch of `segment.text` this part reads, when it is a piece of it (a
    #: dialogue rule's split); None: the whole segment
    within: Within | None = None


@dataclass(frozen=True)
class CastChapter:
    chapter: Chapter
    parts: tuple[CastSegment, ...]

    @property
    def voices(self) -> tuple[Voice, ...]:
        """The voices heard in this chapter, in order of first appearance."""
        seen: dict[str, Voice] = {}
        for part in self.parts:
            seen.setdefault(part.voice.name, part.voice)
        return tuple(seen.values())


@dataclass(frozen=True)
class Clip:
    """A verified WAV of one Line in one Voice (mono, 16-bit)."""

    key: str  # content address: text, voice settings, engine and its versions
    path: Path
    frames: int
    sample_rate: int
    rendered: bool  # True if this build synthesised it, False if it came from the cache
    #: sha256 of the WAV's bytes as verified, checked again where assembly reads them
    digest: str | None = field(default=None, compare=False)

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class ChapterClips:
    """A cast chapter and its verified clips, grouped as its parts and lines are
    (`clips[i][j]` reads `cast.parts[i].lines[j]`): what synthesis hands assembly. `clips`
    is None for a chapter whose clips are still to come (assembly takes them as they
    arrive)."""

    cast: CastChapter
    clips: tuple[tuple[Clip, ...], ...] | None

    @classmethod
    def grouped(cls, cast: CastChapter, flat: Iterable[Clip]) -> ChapterClips:
        """The chapter's clips, given in book order, grouped by part."""
        it = iter(flat)
        return cls(cast, tuple(tuple(next(it) for _ in part.lines) for part in cast.parts))


@dataclass(frozen=True)
class Episode:
    """One chapter as published: the MP3 and its sidecar files in output/."""

    number: int
    chapter_id: str
    title: str
    author: str | None
    mp3: Path
    vtt: Path
    chapters_json: Path
    seconds: float  # audio length
    size: int  # bytes of the MP3
    voices: tuple[str, ...]  # voice labels heard
    description: str  # first lines and sources, plain text


@dataclass(frozen=True)
class Audiobook:
    """The whole book as one M4B in output/, beside the episodes."""

    path: Path
    seconds: float
    size: int  # bytes
    marks: tuple[tuple[float, str], ...]  # chapter starts (seconds) and titles
    written: bool = True  # False: an earlier build's was current and kept


@dataclass(frozen=True)
class ReadAlong:
    """The read-along book in output/: an EPUB 3 whose text is highlighted as the
    chapters' audio, inside it, reads it (media overlays)."""

    path: Path
    size: int  # bytes
    chapters: int
    cues: int  # sentences (or clauses) paired with their audio
    seconds: float  # of speech the overlays play, summed
    written: bool = True  # False: an earlier build's was current and kept


@dataclass(frozen=True)
class Show:
    """The book as a whole, resolved from podcast.yaml and the seeds; used for tags and feed."""

    title: str
    #: podcast.yaml's, else the book's, else a chapter's; None when nobody names one (the
    #: tags, the feed and the page then name no author rather than "Unknown")
    author: str | None
    description: str
    language: str  # ISO 639-1, e.g. "en"
    cover: Path  # the cover image written into output/ (JPEG or PNG, square, >= 1400 px)
    #: the work's original year (MP3 TORY, the show page): podcast.yaml's `year:`, else the
    #: year the book states (BookFacts.year); None when nobody gave one, never guessed
    year: int | None = None
    #: the year it was recorded (MP3 TYER): that of the project's first build, which
    #: narrate.lock keeps (never a later build's clock: builds are deterministic)
    recorded: int | None = None

    @property
    def day(self) -> int | None:
        """The one year an M4B carries (©day): the work's where known, else the recording's."""
        return self.year if self.year is not None else self.recorded

"""The shape of voices.yaml and podcast.yaml: pydantic models that forbid unknown keys,
with each setting's default and bounds."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from narration.model import DEFAULT_ENGINE, Voice


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: The voice of the default engine (model.DEFAULT_ENGINE) a voice uses when it names none.
DEFAULT_VOICE = "gmw/en-us"


#: A lexicon entry: a respelling for every engine, or one per engine (`{kokoro: /kəˈlɒntaɪ/,
#: pyttsx3: Kolontai}`), where a value between slashes gives an engine phonemes.
LexiconValue = str | dict[str, str]


class VoiceConfig(_Strict):
    """One named voice: its engine, the engine's voice and that engine's settings.

    espeak-ng (pyttsx3, the default): `voice` an id, `variant`, `rate`, `pitch`. Kokoro:
    `voice` an id or a blend (`{bf_emma: 0.7, bf_isabella: 0.3}`), `speed`. Both: `volume`.
    """

    engine: str = DEFAULT_ENGINE
    voice: str | dict[str, float] | None = None
    variant: str | None = None  # e.g. "f3" or "+f3"; appended to the id as "+f3"
    label: str | None = None  # who the listener hears, in transcripts; defaults to the name
    rate: int = Field(default=175, ge=80, le=450)
    pitch: int = Field(default=50, ge=0, le=100)
    speed: float = Field(default=1.0, ge=0.5, le=2.0)
    volume: float = Field(default=1.0, ge=0.0, le=1.0)
    lexicon: dict[str, LexiconValue] = Field(default_factory=dict)

    @property
    def engine_voice(self) -> str:
        """The id the engine is given: "gmw/en-us+f3", "am_michael", or a blend with its
        weights as written, "bf_emma*0.7+bf_isabella*0.3"."""
        if isinstance(self.voice, dict):
            return "+".join(f"{vid}*{weight!r}" for vid, weight in self.voice.items())
        voice = self.voice or DEFAULT_VOICE
        if not self.variant:
            return voice
        return f"{voice}+{self.variant.lstrip('+')}"

    def as_voice(self, name: str) -> Voice:
        """The voice casting hands on, named as voices.yaml names it."""
        return Voice(
            name=name,
            label=self.label or name,
            engine_voice=self.engine_voice,
            rate=self.rate,
            pitch=self.pitch,
            volume=self.volume,
            engine=self.engine,
            speed=self.speed,
        )


class SettingsCheck(Protocol):
    """What knows an engine's voice settings: the engine itself (synthesis's `Engine`)."""

    def setting_problems(self, voice: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(setting, message) for each setting a voice of voices.yaml (as written) gives
        that its engine does not take."""
        ...


@dataclass(frozen=True)
class EngineCatalog:
    """What voices.yaml is checked against for one engine, as the engine gives it (the build
    passes each engine's in: synthesis's `EngineSet.catalog`)."""

    voices: frozenset[str] | None = None  # voice ids; None: not checked
    variants: frozenset[str] | None = None  # espeak-ng variants; None: not checked
    #: the engine, which checks its voices' settings; None: they are not checked
    settings: SettingsCheck | None = None
    ignore_case: bool = True  # whether voice ids match in any case
    default_voice: bool = True  # whether a voice may leave out `voice` (the engine's default)
    blends: bool = False  # whether a voice may be a weighted blend of voices
    phonemes: bool = False  # whether a lexicon entry may give phonemes (/.../)
    unavailable: str | None = None  # why it cannot be used here (not installed, unknown)

    def setting_problems(self, voice: Mapping[str, Any]) -> list[tuple[str, str]]:
        """What its engine says is wrong with a voice's settings (nothing when unknown)."""
        return self.settings.setting_problems(voice) if self.settings is not None else []


Catalog = Callable[[str], EngineCatalog]


class RuleConfig(_Strict):
    """Match a segment; the first rule that matches gives its voice.

    Text matchers (author, work) are case-insensitive substrings, or regular expressions when
    written between slashes: `/serge|kibalchich/`. `file` is a glob on the seed file name.
    """

    voice: str
    name: str | None = None
    file: str | None = None
    chapter: str | None = None
    kind: Literal["narration", "heading", "quote", "list_item", "dialogue"] | None = None
    author: str | None = None
    work: str | None = None
    id: str | None = None
    announce: bool = True  # read the quote's source before it


class CharactersConfig(_Strict):
    """`characters:` in voices.yaml: voices for the characters narrate finds speaking
    (`narrate characters` lists them). A character is named by any of its names or
    aliases, or its id, in any case.

    The voice of a quotation: the one its speaker is pinned to under `voices`; else, for
    the first-person narrator, the voice of the narration around it; else, with `auto`, one
    of the engine's voices of the speaker's gender, its own when the speaker has at least
    `min_quotations` quotations, else one of `pool` voices per gender that minor characters
    share; else (speaker unknown, gender unknown, or no voice of that gender) the voice of a
    matching `kind: dialogue` rule, or the narration's.
    """

    #: give the characters found voices of their own from the engine's voices
    auto: bool = False
    #: whose voices `auto` picks from; default: the engine of the default voice
    engine: str | None = None
    #: quotations a character needs for a voice of its own; fewer share the pool
    min_quotations: int = Field(default=3, ge=1, le=100_000)
    #: voices per gender the minor characters share
    pool: int = Field(default=2, ge=1, le=20)
    #: a character (any of its names) and the voice (under `voices:`) that reads it
    voices: dict[str, str] = Field(default_factory=dict)
    #: names narrate took for different people that are one: each list becomes one
    #: character (called by the name the book uses most)
    merge: list[list[str]] = Field(default_factory=list)
    #: names narrate merged into another character that are a person of their own
    split: list[str] = Field(default_factory=list)
    #: a character's gender where narrate found none, or a wrong one: female or male
    genders: dict[str, Literal["female", "male"]] = Field(default_factory=dict)
    #: who speaks one quotation (every piece of it): a part id (or a segment id, for every
    #: quotation in it) as `narrate cast` prints it, and a character's name; `narrator`
    #: for the narration's voice, `unknown` for nobody in particular
    speakers: dict[str, str] = Field(default_factory=dict)


class AnnounceConfig(_Strict):
    """Templates the narrator reads. Fields: {number} {title} {author} {work} {year}."""

    voice: str | None = None  # who announces; defaults to the default voice
    chapter: str | None = "Chapter {number}. {title}. By {author}."
    quote: str | None = "From {author}, {work}, {year}."


class PausesConfig(_Strict):
    """Silences in milliseconds."""

    sentence: int = Field(default=350, ge=0, le=10_000)
    paragraph: int = Field(default=800, ge=0, le=10_000)
    heading: int = Field(default=1200, ge=0, le=10_000)  # before and after a heading
    quote: int = Field(default=1000, ge=0, le=10_000)  # before and after a quote block
    head: int = Field(default=750, ge=0, le=10_000)  # room tone at the start of a chapter
    tail: int = Field(default=3000, ge=0, le=30_000)  # room tone at the end of a chapter


class ReadingConfig(_Strict):
    """How seeds are read: `reading:` in voices.yaml."""

    #: an image's alt text (EPUB and HTML seeds) read where the image stands
    image_descriptions: bool = False


class AudioConfig(_Strict):
    bitrate: Literal[32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] = 64
    #: LUFS integrated, per chapter. narrate's chapters are mono, and a mono file plays on
    #: two speakers 3 LU louder than it measures: AES TD1004's -19 for mono is its -16 for
    #: stereo, as loud as other shows.
    loudness: float = Field(default=-19.0, ge=-40.0, le=-5.0)
    true_peak: float = Field(default=-1.0, ge=-12.0, le=0.0)  # dBTP ceiling


class VoicesConfig(_Strict):
    voices: dict[str, VoiceConfig]
    default: str
    rules: list[RuleConfig] = Field(default_factory=list)
    characters: CharactersConfig = Field(default_factory=CharactersConfig)
    lexicon: dict[str, LexiconValue] = Field(default_factory=dict)
    announce: AnnounceConfig = Field(default_factory=AnnounceConfig)
    pauses: PausesConfig = Field(default_factory=PausesConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    reading: ReadingConfig = Field(default_factory=ReadingConfig)

    @field_validator("voices")
    @classmethod
    def _at_least_one(cls, v: dict[str, VoiceConfig]) -> dict[str, VoiceConfig]:
        if not v:
            raise ValueError("define at least one voice")
        return v

    @property
    def engines(self) -> list[str]:
        """The engines this cast uses, in order of first use: its voices', and the one the
        automatic cast of characters picks from."""
        named = [vc.engine for vc in self.voices.values()]
        if self.characters.auto and self.characters.engine:
            named.append(self.characters.engine)
        return list(dict.fromkeys(named))

    def lexicon_for(self, name: str) -> dict[str, str]:
        """Voice `name`'s lexicon: the shared entries, then its own, for its engine.

        An entry given per engine applies to the voices of the engines it names; a value
        between slashes is phonemes, marked for the engine as model.Line describes.
        """
        voice = self.voices[name]
        return _for_engine({**self.lexicon, **voice.lexicon}, voice.engine)

    def shared_lexicon(self, engine: str) -> dict[str, str]:
        """The shared lexicon for a voice of `engine` voices.yaml does not name (a
        character's, from the automatic cast)."""
        return _for_engine(self.lexicon, engine)


def _for_engine(entries: dict[str, LexiconValue], engine: str) -> dict[str, str]:
    from narration.model import PHONEMES_CLOSE, PHONEMES_OPEN

    out: dict[str, str] = {}
    for word, value in entries.items():
        if isinstance(value, dict):
            if engine not in value:
                continue
            value = value[engine]
            if is_phonemes(value):
                value = f"{PHONEMES_OPEN}{value.strip()[1:-1].strip()}{PHONEMES_CLOSE}"
        out[word] = value
    return out


def is_phonemes(value: str) -> bool:
    value = value.strip()
    return len(value) >= 3 and value.startswith("/") and value.endswith("/")


class PodcastConfig(_Strict):
    """The show, from podcast.yaml. Every field has a default so a bare project builds."""

    title: str | None = None  # defaults to the first chapter's title
    author: str | None = None  # defaults to the first chapter's author
    description: str | None = None
    language: str = "en"
    owner_name: str | None = None
    owner_email: str | None = None
    category: str = "Arts"
    subcategory: str | None = "Books"
    explicit: bool = False
    base_url: str | None = None
    cover: str | None = None  # path relative to the project; default seeds/cover.jpg|png
    link: str | None = None
    #: the work's original year (TORY, page); else the book's, if stated. ID3 and MP4 hold
    #: four digits
    year: int | None = Field(default=None, ge=0, le=9999)
    locked: bool = True
    published: datetime.date | None = None  # first episodes' pubDate; default the first build's
    m4b: bool = False  # also write the whole book as one M4B audiobook (or build --m4b)
    #: also write the read-along book: an EPUB 3 whose text is highlighted as it is read
    #: (or build --readalong)
    readalong: bool = False
    scheduler: str | None = None  # a Dask scheduler (tcp://host:8786) to render clips on

    @field_validator("scheduler")
    @classmethod
    def _scheduler_address(cls, v: str | None) -> str | None:
        if v is not None and not SCHEDULER_ADDRESS.fullmatch(v.strip()):
            raise ValueError(f"'{v}' is not a Dask scheduler address like tcp://host:8786")
        return v.strip() if v else None


#: What a Dask scheduler's address looks like: [protocol://]host:port.
SCHEDULER_ADDRESS = re.compile(
    r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9a-fA-F:]+\]|[\w.-]+):\d{1,5}/?"
)


def regex_of(pattern: str) -> re.Pattern[str] | None:
    """A `/.../` matcher as a compiled case-insensitive regex; None for a plain substring."""
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        return re.compile(pattern[1:-1], re.IGNORECASE)
    return None


def text_matches(pattern: str, value: str | None) -> bool:
    """Case-insensitive substring, or a regular expression between slashes."""
    if value is None:
        return False
    regex = regex_of(pattern)
    if regex is not None:
        return regex.search(value) is not None
    return pattern.casefold() in value.casefold()


TEMPLATE_FIELDS = ("number", "title", "author", "work", "year")

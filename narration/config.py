"""Typed configuration: voices.yaml (who reads what, pauses, audio) and podcast.yaml (the show).

Both files are validated in full before any work starts. Every problem is collected and
reported at once, each with its file, line and a plain message (`ConfigError`), so a user
fixes them all in one pass. Unknown keys are errors, with the closest valid key suggested.
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError, Problem, closest
from .invocation import narrate
from .layout import VOICES_FILE
from .model import CHARACTER_VOICE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: The engine a voice uses when it names none, and its voice when it names none.
DEFAULT_ENGINE = "pyttsx3"
DEFAULT_VOICE = "gmw/en-us"
#: Voice settings that only some engines have (each engine's catalog says which it takes),
#: and those of espeak-ng's voices, which an engine that does not say takes.
ENGINE_SETTINGS = ("variant", "rate", "pitch", "speed")
ESPEAK_SETTINGS = frozenset({"variant", "rate", "pitch"})

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


@dataclass(frozen=True)
class EngineCatalog:
    """What voices.yaml is checked against for one engine (the build asks the engines)."""

    voices: frozenset[str] | None = None  # voice ids; None: not checked
    variants: frozenset[str] | None = None  # espeak-ng variants; None: not checked
    #: which of ENGINE_SETTINGS its voices take
    settings: frozenset[str] = ESPEAK_SETTINGS
    ignore_case: bool = True  # whether voice ids match in any case
    default_voice: bool = True  # whether a voice may leave out `voice` (the engine's default)
    blends: bool = False  # whether a voice may be a weighted blend of voices
    phonemes: bool = False  # whether a lexicon entry may give phonemes (/.../)
    unavailable: str | None = None  # why it cannot be used here (not installed, unknown)


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
    from .model import PHONEMES_CLOSE, PHONEMES_OPEN

    out: dict[str, str] = {}
    for word, value in entries.items():
        if isinstance(value, dict):
            if engine not in value:
                continue
            value = value[engine]
            if _is_phonemes(value):
                value = f"{PHONEMES_OPEN}{value.strip()[1:-1].strip()}{PHONEMES_CLOSE}"
        out[word] = value
    return out


def _is_phonemes(value: str) -> bool:
    value = value.strip()
    return len(value) >= 3 and value.startswith("/") and value.endswith("/")


def engines_named(path: Path) -> list[str]:
    """The engines a voices file names, read quickly and leniently (the build uses this to
    start engines before the checks; the checks then report what is wrong with the file)."""
    try:
        data, _ = _load_yaml(path)
    except (OSError, ConfigError):
        return []
    voices = data.get("voices") if isinstance(data, dict) else None
    found = [
        v.get("engine", DEFAULT_ENGINE) if isinstance(v, dict) else DEFAULT_ENGINE
        for v in (voices.values() if isinstance(voices, dict) else ())
    ]
    characters = data.get("characters") if isinstance(data, dict) else None
    if isinstance(characters, dict) and characters.get("auto") is True and "engine" in characters:
        found.append(characters["engine"])
    return [e for e in dict.fromkeys(found) if isinstance(e, str)]


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


def line_index_of(path: Path) -> dict[tuple[str | int, ...], int]:
    """A YAML file's key paths and their lines ({} when it cannot be read): for messages."""
    try:
        return _line_index(path.read_text(encoding="utf-8-sig")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError):
        return {}


def _line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each path in a YAML document (keys and list indexes) to its 1-based line.

    Walked without recursion and each node once: an alias is not followed again, so a
    document whose aliases nest (or contain themselves) cannot make this slow or crash.
    """
    index: dict[tuple[str | int, ...], int] = {}
    try:
        root = yaml.compose(text)
    except (yaml.YAMLError, RecursionError):
        return index
    if root is None:
        return index
    index[()] = root.start_mark.line + 1
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
                index[(*path, k)] = key.start_mark.line + 1
                stack.append((value, (*path, k)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index[(*path, i)] = item.start_mark.line + 1
                stack.append((item, (*path, i)))
    return index


#: A configuration is small and flat; deeper nesting or more values than this (YAML aliases
#: can multiply a few lines into billions of values, or contain themselves) is refused.
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 200_000


def _check_shape(root: yaml.Node, path: Path) -> None:
    """ConfigError if the document, aliases expanded, nests too deep or holds too much."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        line = node.start_mark.line + 1
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(
                [
                    Problem(
                        path,
                        line,
                        f"nested more than {MAX_YAML_DEPTH} levels deep "
                        "(or a YAML alias that contains itself)",
                    )
                ]
            )
        if count > MAX_YAML_VALUES:
            raise ConfigError(
                [
                    Problem(
                        path,
                        line,
                        f"too large: more than {MAX_YAML_VALUES:,} values once its YAML "
                        "aliases are expanded",
                    )
                ]
            )
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but date-shaped values stay text (PyYAML's timestamp resolver
    raises on `2026-13-45` before any check could name the line; pydantic parses the real
    dates), and a key given twice in one mapping is noted, not silently overwritten."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.duplicates: list[tuple[str, int, int]] = []  # key, first line, repeated line

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                self.duplicates.append((key, seen[key], line))
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def _duplicate_problems(path: Path, duplicates: list[tuple[str, int, int]]) -> list[Problem]:
    return [
        Problem(path, line, f"'{key}' is given twice, on lines {first} and {line}; keep one")
        for key, first, line in sorted(duplicates, key=lambda d: d[2])
    ]


def _load_yaml(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """The document and the line of each key; ConfigError for syntax, shape, or a key given
    twice (every such key at once)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
        ) from None
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_shape(node, path)  # before building it: aliases can expand without end
            data = loader.construct_document(node) if node is not None else None
            duplicates = loader.duplicates
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(path, line, f"YAML syntax error: {what}")]) from None
    except RecursionError:
        raise ConfigError(
            [Problem(path, None, f"nested more than {MAX_YAML_DEPTH} levels deep")]
        ) from None
    if duplicates:
        raise ConfigError(_duplicate_problems(path, duplicates))
    return data, _line_index(text)


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The valid keys of the model found at `loc` (for 'did you mean' suggestions)."""
    current: Any = model
    skip_key = False  # inside a dict of models, the next string is a user's key
    for part in loc:
        if isinstance(part, int):
            continue
        if skip_key:
            skip_key = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        skip_key = getattr(annotation, "__origin__", None) is dict
        nxt = None
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nxt = candidate
        current = nxt
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


_BOUND_MESSAGES = {
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
}


def _bounds(model: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[Any, Any] | None:
    """The (ge, le) bounds declared for the field at `loc`, if any."""
    current: Any = model
    field = None
    skip_key = False
    for part in loc:
        if isinstance(part, int):
            continue
        if skip_key:
            skip_key = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        skip_key = getattr(annotation, "__origin__", None) is dict
        current = next(
            (
                c
                for c in (annotation, *getattr(annotation, "__args__", ()))
                if isinstance(c, type) and issubclass(c, BaseModel)
            ),
            None,
        )
    if field is None:
        return None
    ge = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
    le = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    return (ge, le) if ge is not None and le is not None else None


def _validation_problems(
    path: Path,
    model: type[BaseModel],
    exc: ValidationError,
    lines: dict[tuple[str | int, ...], int],
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = None
        for i in range(len(loc), -1, -1):
            if loc[:i] in lines:
                line = lines[loc[:i]]
                break
        where = _where(loc)
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            hint = closest(key, _fields_at(model, loc[:-1]))
            msg = f"unknown key '{key}'" + (f" (did you mean '{hint}'?)" if hint else "")
            if loc[:1] == ("rules",) and key in ("speaker", "character", "characters"):
                msg += (
                    "; a rule matches segments, not speakers: give a character its voice "
                    f"under characters: voices: (`{narrate()} characters` lists them)"
                )
            where = _where(loc[:-1])
        elif err["type"] == "missing":
            msg = "is required"
        elif err["type"] in _BOUND_MESSAGES and (bounds := _bounds(model, loc)):
            msg = f"must be between {bounds[0]} and {bounds[1]} (got {err['input']!r})"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and not isinstance(err["input"], dict | list):
                msg += f" (got {err['input']!r})"
        problems.append(Problem(path, line, f"{where}: {msg}" if where else msg))
    return problems


def _where(loc: tuple[str | int, ...]) -> str:
    """A location as users write it: rules[1].kind, voices.serge.rate."""
    text = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    return text


def _regex_of(pattern: str) -> re.Pattern[str] | None:
    """A `/.../` matcher as a compiled case-insensitive regex; None for a plain substring."""
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        return re.compile(pattern[1:-1], re.IGNORECASE)
    return None


def text_matches(pattern: str, value: str | None) -> bool:
    """Case-insensitive substring, or a regular expression between slashes."""
    if value is None:
        return False
    regex = _regex_of(pattern)
    if regex is not None:
        return regex.search(value) is not None
    return pattern.casefold() in value.casefold()


TEMPLATE_FIELDS = ("number", "title", "author", "work", "year")


def _template_problem(template: str) -> str | None:
    """What is wrong with an announcement template, or None.

    Only plain fields are filled in (cast.render_template): a format spec, a conversion or
    an attribute would be read aloud as written, or worse, run (`{number:>999999999}` makes
    a gigabyte, `{title.upper}` says a memory address), so they are refused here.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return str(exc)
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS:
            return f"unknown field {{{name}}}"
        if spec or conversion:
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            return f"{{{written}}}: write the field alone, as {{{name}}}"
    return None


def _semantic_problems(
    path: Path,
    data: dict[str, Any],
    lines: dict[tuple[str | int, ...], int],
    catalog: Catalog,
) -> list[Problem]:
    """Checks across fields, run on the raw mapping so they report even when the schema fails."""
    problems: list[Problem] = []
    voices = data.get("voices") if isinstance(data.get("voices"), dict) else {}
    names = [str(n) for n in voices]

    def check_ref(name: Any, loc: tuple[str | int, ...]) -> None:
        if not isinstance(name, str) or name in voices:
            return
        hint = closest(name, names)
        msg = f"{_where(loc)}: voice '{name}' is not defined under 'voices'"
        msg += f" (did you mean '{hint}'?)" if hint else f" (defined: {', '.join(names) or 'none'})"
        problems.append(Problem(path, lines.get(loc), msg))

    check_ref(data.get("default"), ("default",))
    announce = data.get("announce") if isinstance(data.get("announce"), dict) else {}
    check_ref(announce.get("voice"), ("announce", "voice"))
    rules = data.get("rules") if isinstance(data.get("rules"), list) else []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        check_ref(rule.get("voice"), ("rules", i, "voice"))
        if rule.get("kind") == "dialogue":
            # a dialogue rule matches quotations inside narration, which have no source:
            # an author there would be ignored and the rule take all the dialogue
            problems += [
                Problem(
                    path,
                    lines.get(("rules", i, key)),
                    f"rules[{i}].{key}: a kind: dialogue rule matches no {key}; it gives "
                    "one voice to all the dialogue it matches (by file, chapter or id). "
                    f"{key} matches a quote block's source (kind: quote); "
                    f"`{narrate()} characters` lists who speaks the dialogue",
                )
                for key in ("author", "work")
                if key in rule
            ]
        for key in ("author", "work"):
            pattern = rule.get(key)
            if not isinstance(pattern, str):
                continue
            try:
                _regex_of(pattern)
            except re.error as exc:
                problems.append(
                    Problem(
                        path,
                        lines.get(("rules", i, key)),
                        f"rules[{i}].{key}: regular expression {pattern} does not compile: {exc}",
                    )
                )
    characters = data.get("characters") if isinstance(data.get("characters"), dict) else {}
    pinned = characters.get("voices") if isinstance(characters.get("voices"), dict) else {}
    for who, voice_name in pinned.items():
        check_ref(voice_name, ("characters", "voices", who))
    engine = characters.get("engine")
    if isinstance(engine, str) and (why := catalog(engine).unavailable):
        problems.append(
            Problem(path, lines.get(("characters", "engine")), f"characters.engine: {why}")
        )
    merge = characters.get("merge") if isinstance(characters.get("merge"), list) else []
    for i, names in enumerate(merge):
        if isinstance(names, list) and len(names) < 2:
            problems.append(
                Problem(
                    path,
                    lines.get(("characters", "merge", i)),
                    f"characters.merge[{i}]: list two names or more, the names of one "
                    "character: [Long John, Silver]",
                )
            )
    for key in ("chapter", "quote"):
        tmpl = announce.get(key)
        if not isinstance(tmpl, str):
            continue
        why = _template_problem(tmpl)
        if why:
            problems.append(
                Problem(
                    path,
                    lines.get(("announce", key)),
                    f"announce.{key}: bad template ({why}); "
                    "use {number} {title} {author} {work} {year}",
                )
            )
    for name, voice in voices.items():
        if str(name).startswith(CHARACTER_VOICE):
            problems.append(
                Problem(
                    path,
                    lines.get(("voices", name)),
                    f"voices.{name}: {CHARACTER_VOICE}<name> names the voices narrate gives "
                    "characters of its own accord; name this one otherwise",
                )
            )
        if isinstance(voice, dict):
            problems += _voice_problems(path, lines, str(name), voice, catalog)
    for loc, lexicon in _lexicons(data, voices):
        problems += _lexicon_problems(path, lines, loc, lexicon, catalog)
    return problems


def load_voices(
    path: Path,
    engine_voice_ids: Iterable[str] | None = None,
    engine_variants: Iterable[str] | None = None,
    catalog: Catalog | None = None,
) -> VoicesConfig:
    """Load and validate voices.yaml; raise ConfigError listing every problem found.

    With a `catalog` of each engine's voices (or the default engine's voice ids and
    variants), unknown voices are reported too, with the closest ids the engine has, and so
    are engines that are not installed.
    """
    if catalog is None:
        catalog = _plain_catalog(engine_voice_ids, engine_variants)
    if not path.is_file():
        hint = f" (run `{narrate()} init` to create one)" if path.name == VOICES_FILE else ""
        raise ConfigError([Problem(path, None, f"not found{hint}")])
    data, lines = _load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem(path, 1, "expected a mapping with 'voices', 'default', 'rules'")]
        )
    problems: list[Problem] = []
    config = None
    try:
        config = VoicesConfig.model_validate(data)
    except ValidationError as exc:
        problems += _validation_problems(path, VoicesConfig, exc, lines)
    problems += _semantic_problems(path, data, lines, catalog)
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise ConfigError(problems)
    assert config is not None
    return config


def _plain_catalog(ids: Iterable[str] | None, variants: Iterable[str] | None) -> Catalog:
    """A catalog that knows the default engine's voices (when given) and nothing else."""
    plain = EngineCatalog(
        voices=frozenset(ids) if ids is not None else None,
        variants=frozenset(variants) if variants is not None else None,
    )

    def catalog(engine: str) -> EngineCatalog:
        if engine == DEFAULT_ENGINE:
            return plain
        return EngineCatalog(settings=frozenset(ENGINE_SETTINGS), blends=True, phonemes=True)

    return catalog


def _close(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word.lower(), sorted(choices), n=3, cutoff=0.5)
    return f" (close: {', '.join(close)})" if close else ""


def _voice_problems(
    path: Path,
    lines: dict[tuple[str | int, ...], int],
    name: str,
    voice: dict[str, Any],
    catalog: Catalog,
) -> list[Problem]:
    """One voice's engine, its voice id or blend, and settings its engine does not have."""
    problems: list[Problem] = []
    loc = ("voices", name)

    def problem(key: str, message: str) -> None:
        line = lines.get((*loc, key)) or lines.get(loc)
        problems.append(Problem(path, line, f"voices.{name}.{key}: {message}"))

    engine = voice.get("engine", DEFAULT_ENGINE)
    if not isinstance(engine, str):
        return problems  # the schema says so
    info = catalog(engine)
    if info.unavailable:
        problem("engine", info.unavailable)
        return problems
    for key in ENGINE_SETTINGS:
        if key in voice and key not in info.settings:
            hint = "; set speed (0.5-2)" if key == "rate" and "speed" in info.settings else ""
            hint = (
                "; set rate (words a minute)"
                if key == "speed" and "rate" in info.settings
                else hint
            )
            problem(key, f"{engine} voices have no {key}{hint}")
    vid = voice.get("voice")
    if vid is None and not info.default_voice:
        problem("voice", f"name a {engine} voice (see `{narrate()} voices --engine {engine}`)")
        return problems
    if isinstance(vid, dict):
        if not info.blends:
            problem("voice", f"{engine} voices cannot be blended; name one voice")
            return problems
        if not vid:
            problem("voice", "a blend needs at least one voice")
        parts = list(vid.items())
        for part, weight in parts:
            number = isinstance(weight, int | float) and not isinstance(weight, bool)
            if number and not (math.isfinite(weight) and weight > 0):
                problem("voice", f"blend weight of '{part}' must be above 0 (got {weight!r})")
    elif isinstance(vid, str):
        parts = [(vid, 1.0)]
    else:
        return problems
    fold = str.lower if info.ignore_case else str
    known = {fold(v) for v in info.voices} if info.voices is not None else None
    for part, _ in parts:
        if not isinstance(part, str):
            continue
        if known is not None and fold(part) not in known:
            hint = _close(part, known) or f" (see `{narrate()} voices --engine {engine}`)"
            who = "the engine" if engine == DEFAULT_ENGINE else engine
            problem("voice", f"{who} has no voice '{part}'{hint}")
    variant = voice.get("variant")
    variants = {v.lower() for v in info.variants} if info.variants is not None else None
    if (
        "variant" in info.settings
        and variants is not None
        and isinstance(variant, str)
        and variant.lstrip("+").lower() not in variants
    ):
        problem(
            "variant",
            f"the engine has no variant '{variant}'{_close(variant.lstrip('+'), variants)}",
        )
    return problems


def _lexicons(
    data: dict[str, Any], voices: dict[str, Any]
) -> Iterable[tuple[tuple[str, ...], tuple[dict[str, Any], str | None]]]:
    """Each lexicon with its location and the engine of the voice it belongs to (None for the
    shared one)."""
    if isinstance(data.get("lexicon"), dict):
        yield ("lexicon",), (data["lexicon"], None)
    for name, voice in voices.items():
        if isinstance(voice, dict) and isinstance(voice.get("lexicon"), dict):
            engine = voice.get("engine", DEFAULT_ENGINE)
            yield ("voices", str(name), "lexicon"), (voice["lexicon"], str(engine))


def _lexicon_problems(
    path: Path,
    lines: dict[tuple[str | int, ...], int],
    loc: tuple[str, ...],
    lexicon: tuple[dict[str, Any], str | None],
    catalog: Catalog,
) -> list[Problem]:
    """Per-engine entries name engines, and give phonemes only to engines that take them."""
    entries, own_engine = lexicon
    problems: list[Problem] = []
    for word, value in entries.items():
        if isinstance(value, str):
            if _is_phonemes(value):
                where = ".".join((*loc, str(word)))
                problems.append(
                    Problem(
                        path,
                        lines.get((*loc, word)),
                        f"{where}: phonemes (/.../) are given per engine, as "
                        f"{{kokoro: {value.strip()}}}; a plain value is a respelling",
                    )
                )
            continue
        if not isinstance(value, dict):
            continue
        for engine, replacement in value.items():
            where = ".".join((*loc, str(word), str(engine)))
            line = lines.get((*loc, word, engine)) or lines.get((*loc, word))
            info = catalog(str(engine))
            if info.unavailable:
                if info.unavailable.startswith("unknown engine"):
                    problems.append(Problem(path, line, f"{where}: {info.unavailable}"))
                continue  # not installed: the voices that use it say so
            elif own_engine is not None and engine != own_engine:
                problems.append(
                    Problem(
                        path, line, f"{where}: this voice is read by {own_engine}, not {engine}"
                    )
                )
            elif isinstance(replacement, str) and _is_phonemes(replacement) and not info.phonemes:
                problems.append(
                    Problem(
                        path,
                        line,
                        f"{where}: {engine} takes a respelling, not phonemes (/.../)",
                    )
                )
    return problems


def load_podcast(path: Path) -> PodcastConfig:
    """Load podcast.yaml; a missing file gives the defaults."""
    if not path.is_file():
        return PodcastConfig()
    data, lines = _load_yaml(path)
    if data is None:
        return PodcastConfig()
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem(path, 1, "expected a mapping of show settings (title, author, ...)")]
        )
    try:
        podcast = PodcastConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_validation_problems(path, PodcastConfig, exc, lines)) from None
    from .directories import check_podcast

    problems = check_podcast(podcast, path, lines)
    if problems:
        raise ConfigError(problems)
    return podcast

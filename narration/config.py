"""Typed configuration: voices.yaml (who reads what, pauses, audio) and podcast.yaml (the show).

Both files are validated in full before any work starts. Every problem is collected and
reported at once, each with its file, line and a plain message (`ConfigError`), so a user
fixes them all in one pass. Unknown keys are errors, with the closest valid key suggested.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError, Problem

VOICES_FILE = "voices.yaml"
PODCAST_FILE = "podcast.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VoiceConfig(_Strict):
    """One named voice. `voice` is the engine's id, `variant` an optional espeak-ng variant."""

    voice: str = "gmw/en-us"
    variant: str | None = None  # e.g. "f3" or "+f3"; appended to the id as "+f3"
    label: str | None = None  # who the listener hears, in transcripts; defaults to the name
    rate: int = Field(default=175, ge=80, le=450)
    pitch: int = Field(default=50, ge=0, le=100)
    volume: float = Field(default=1.0, ge=0.0, le=1.0)
    lexicon: dict[str, str] = Field(default_factory=dict)

    @property
    def engine_voice(self) -> str:
        if not self.variant:
            return self.voice
        return f"{self.voice}+{self.variant.lstrip('+')}"


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


class AudioConfig(_Strict):
    bitrate: Literal[32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] = 64
    loudness: float = Field(default=-16.0, ge=-40.0, le=-5.0)  # LUFS integrated, per chapter
    true_peak: float = Field(default=-1.0, ge=-12.0, le=0.0)  # dBTP ceiling


class VoicesConfig(_Strict):
    voices: dict[str, VoiceConfig]
    default: str
    rules: list[RuleConfig] = Field(default_factory=list)
    lexicon: dict[str, str] = Field(default_factory=dict)
    announce: AnnounceConfig = Field(default_factory=AnnounceConfig)
    pauses: PausesConfig = Field(default_factory=PausesConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)

    @field_validator("voices")
    @classmethod
    def _at_least_one(cls, v: dict[str, VoiceConfig]) -> dict[str, VoiceConfig]:
        if not v:
            raise ValueError("define at least one voice")
        return v


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
    year: int | None = None  # for tags; defaults to the first publication year
    locked: bool = True


def _line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each path in a YAML document (keys and list indexes) to its 1-based line."""
    index: dict[tuple[str | int, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
                index[(*path, k)] = key.start_mark.line + 1
                walk(value, (*path, k))
                index[(*path, k)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return index


def _load_yaml(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(path, line, f"YAML syntax error: {what}")]) from None
    return data, _line_index(text)


def _closest(word: str, choices: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The valid keys of the model found at `loc` (for 'did you mean' suggestions)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        nxt = None
        for candidate in (annotation, *args):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nxt = candidate
        current = nxt
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _validation_problems(
    path: Path, model: type[BaseModel], exc: ValidationError, lines: dict[tuple[str | int, ...], int]
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = None
        for i in range(len(loc), -1, -1):
            if loc[:i] in lines:
                line = lines[loc[:i]]
                break
        where = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            hint = _closest(key, _fields_at(model, loc[:-1]))
            msg = f"unknown key '{key}'" + (f" (did you mean '{hint}'?)" if hint else "")
            where = ".".join(str(p) for p in loc[:-1]) or "(top level)"
        elif err["type"] == "missing":
            msg = "is required"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and not isinstance(err["input"], dict | list):
                msg += f" (got {err['input']!r})"
        problems.append(Problem(path, line, f"{where}: {msg}"))
    return problems


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


def load_voices(path: Path, engine_voice_ids: Iterable[str] | None = None) -> VoicesConfig:
    """Load and validate voices.yaml; raise ConfigError listing every problem found."""
    if not path.is_file():
        raise ConfigError([Problem(path, None, "not found (run `narrate init` to create one)")])
    data, lines = _load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([Problem(path, 1, "expected a mapping with 'voices', 'default', 'rules'")])
    try:
        config = VoicesConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_validation_problems(path, VoicesConfig, exc, lines)) from None

    problems: list[Problem] = []
    names = list(config.voices)

    def check_voice_ref(name: str, loc: tuple[str | int, ...]) -> None:
        if name not in config.voices:
            hint = _closest(name, names)
            msg = f"{'.'.join(map(str, loc))}: voice '{name}' is not defined under 'voices'"
            msg += f" (did you mean '{hint}'?)" if hint else f" (defined: {', '.join(names)})"
            problems.append(Problem(path, lines.get(loc), msg))

    check_voice_ref(config.default, ("default",))
    if config.announce.voice:
        check_voice_ref(config.announce.voice, ("announce", "voice"))
    for i, rule in enumerate(config.rules):
        check_voice_ref(rule.voice, ("rules", i, "voice"))
        for key in ("author", "work"):
            pattern = getattr(rule, key)
            if pattern is None:
                continue
            try:
                _regex_of(pattern)
            except re.error as exc:
                problems.append(
                    Problem(path, lines.get(("rules", i, key)),
                            f"rules[{i}].{key}: regular expression {pattern} does not compile: {exc}")
                )
    for tmpl_key in ("chapter", "quote"):
        tmpl = getattr(config.announce, tmpl_key)
        if tmpl is None:
            continue
        try:
            tmpl.format(number=1, title="t", author="a", work="w", year="y")
        except (KeyError, IndexError, ValueError) as exc:
            problems.append(
                Problem(path, lines.get(("announce", tmpl_key)),
                        f"announce.{tmpl_key}: bad template ({exc!s}); "
                        "use {number} {title} {author} {work} {year}")
            )
    if engine_voice_ids is not None:
        known = {v.lower() for v in engine_voice_ids}
        for name, voice in config.voices.items():
            if voice.voice.lower() not in known:
                close = difflib.get_close_matches(voice.voice.lower(), sorted(known), n=3, cutoff=0.5)
                msg = f"voices.{name}.voice: the engine has no voice '{voice.voice}'"
                msg += f" (close: {', '.join(close)})" if close else " (see `narrate voices`)"
                problems.append(Problem(path, lines.get(("voices", name, "voice")), msg))
    if problems:
        raise ConfigError(problems)
    return config


def load_podcast(path: Path) -> PodcastConfig:
    """Load podcast.yaml; a missing file gives the defaults."""
    if not path.is_file():
        return PodcastConfig()
    data, lines = _load_yaml(path)
    if data is None:
        return PodcastConfig()
    if not isinstance(data, dict):
        raise ConfigError([Problem(path, 1, "expected a mapping of show settings (title, author, ...)")])
    try:
        return PodcastConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_validation_problems(path, PodcastConfig, exc, lines)) from None

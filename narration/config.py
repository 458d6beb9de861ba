"""Typed configuration: voices.yaml (who reads what, pauses, audio) and podcast.yaml (the show).

Both files are validated in full before any work starts. Every problem is collected and
reported at once, each with its file, line and a plain message (`ConfigError`), so a user
fixes them all in one pass. Unknown keys are errors, with the closest valid key suggested.
"""

from __future__ import annotations

import datetime
import difflib
import re
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError, Problem


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
    published: datetime.date | None = None  # first episodes' pubDate; default 2000-01-01


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


def _load_yaml(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
        ) from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_shape(node, path)  # before building it: aliases can expand without end
            data = loader.construct_document(node) if node is not None else None
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
    return data, _line_index(text)


def _closest(word: str, choices: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return match[0] if match else None


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
            hint = _closest(key, _fields_at(model, loc[:-1]))
            msg = f"unknown key '{key}'" + (f" (did you mean '{hint}'?)" if hint else "")
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
    engine_voice_ids: Iterable[str] | None,
    engine_variants: Iterable[str] | None,
) -> list[Problem]:
    """Checks across fields, run on the raw mapping so they report even when the schema fails."""
    problems: list[Problem] = []
    voices = data.get("voices") if isinstance(data.get("voices"), dict) else {}
    names = [str(n) for n in voices]

    def check_ref(name: Any, loc: tuple[str | int, ...]) -> None:
        if not isinstance(name, str) or name in voices:
            return
        hint = _closest(name, names)
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
    known = {v.lower() for v in engine_voice_ids} if engine_voice_ids is not None else None
    variants = {v.lower() for v in engine_variants} if engine_variants is not None else None
    for name, voice in voices.items():
        if not isinstance(voice, dict):
            continue
        vid = voice.get("voice")
        if known is not None and isinstance(vid, str) and vid.lower() not in known:
            close = difflib.get_close_matches(vid.lower(), sorted(known), n=3, cutoff=0.5)
            msg = f"voices.{name}.voice: the engine has no voice '{vid}'"
            msg += f" (close: {', '.join(close)})" if close else " (see `narrate voices`)"
            problems.append(Problem(path, lines.get(("voices", name, "voice")), msg))
        variant = voice.get("variant")
        if (
            variants is not None
            and isinstance(variant, str)
            and variant.lstrip("+").lower() not in variants
        ):
            close = difflib.get_close_matches(
                variant.lstrip("+").lower(), sorted(variants), n=3, cutoff=0.5
            )
            msg = f"voices.{name}.variant: the engine has no variant '{variant}'"
            msg += f" (close: {', '.join(close)})" if close else ""
            problems.append(Problem(path, lines.get(("voices", name, "variant")), msg))
    return problems


def load_voices(
    path: Path,
    engine_voice_ids: Iterable[str] | None = None,
    engine_variants: Iterable[str] | None = None,
) -> VoicesConfig:
    """Load and validate voices.yaml; raise ConfigError listing every problem found.

    With the engine's voice ids (and variants), unknown voices are reported too, with the
    closest ids the engine has.
    """
    if not path.is_file():
        raise ConfigError([Problem(path, None, "not found (run `narrate init` to create one)")])
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
    problems += _semantic_problems(path, data, lines, engine_voice_ids, engine_variants)
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise ConfigError(problems)
    assert config is not None
    return config


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
        return PodcastConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_validation_problems(path, PodcastConfig, exc, lines)) from None

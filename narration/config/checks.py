"""What a schema cannot say about voices.yaml: templates, each voice's engine, voice id and
settings, lexicons; every problem found with its line."""

from __future__ import annotations

import difflib
import math
import re
import string
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from narration.config.schema import (
    DEFAULT_ENGINE,
    TEMPLATE_FIELDS,
    Catalog,
    EngineCatalog,
    is_phonemes,
    regex_of,
)
from narration.config.source import location_of
from narration.errors import Problem, closest
from narration.invocation import narrate
from narration.model import CHARACTER_VOICE


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


Lines = dict[tuple[str | int, ...], int]


def semantic_problems(
    path: Path, data: dict[str, Any], lines: Lines, catalog: Catalog
) -> list[Problem]:
    """Checks across fields, run on the raw mapping so they report even when the schema fails."""
    voices = _mapping(data.get("voices"))
    names = [str(n) for n in voices]

    def ref(name: Any, loc: tuple[str | int, ...]) -> list[Problem]:
        """A voice named where voices.yaml does not define it."""
        if not isinstance(name, str) or name in voices:
            return []
        hint = closest(name, names)
        msg = f"{location_of(loc)}: voice '{name}' is not defined under 'voices'"
        msg += f" (did you mean '{hint}'?)" if hint else f" (defined: {', '.join(names) or 'none'})"
        return [Problem(path, lines.get(loc), msg)]

    announce = _mapping(data.get("announce"))
    problems = ref(data.get("default"), ("default",))
    problems += ref(announce.get("voice"), ("announce", "voice"))
    rules = data.get("rules") if isinstance(data.get("rules"), list) else []
    for i, rule in enumerate(rules):
        if isinstance(rule, dict):
            problems += ref(rule.get("voice"), ("rules", i, "voice"))
            problems += _rule_problems(path, lines, i, rule)
    characters = _mapping(data.get("characters"))
    for who, voice_name in _mapping(characters.get("voices")).items():
        problems += ref(voice_name, ("characters", "voices", who))
    problems += _characters_problems(path, lines, characters, catalog)
    problems += _announce_problems(path, lines, announce)
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


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _rule_problems(path: Path, lines: Lines, i: int, rule: dict[str, Any]) -> list[Problem]:
    """A rule's author and work: meaningless on a dialogue rule, and must compile."""
    problems = []
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
            regex_of(pattern)
        except re.error as exc:
            problems.append(
                Problem(
                    path,
                    lines.get(("rules", i, key)),
                    f"rules[{i}].{key}: regular expression {pattern} does not compile: {exc}",
                )
            )
    return problems


def _characters_problems(
    path: Path, lines: Lines, characters: dict[str, Any], catalog: Catalog
) -> list[Problem]:
    """The characters' engine must be installed; each merge names two names or more."""
    problems = []
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
    return problems


def _announce_problems(path: Path, lines: Lines, announce: dict[str, Any]) -> list[Problem]:
    """The announcements' templates fill plain fields only."""
    problems = []
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
    return problems


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
    for key, message in info.setting_problems(voice):  # the engine knows its settings
        problem(key, message)
    parts = _voice_parts(voice.get("voice"), engine, info, problem)
    if parts is None:
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
        variants is not None
        and isinstance(variant, str)
        and variant.lstrip("+").lower() not in variants
    ):
        problem(
            "variant",
            f"the engine has no variant '{variant}'{_close(variant.lstrip('+'), variants)}",
        )
    return problems


def _voice_parts(
    vid: Any, engine: str, info: EngineCatalog, problem: Callable[[str, str], None]
) -> list[tuple[Any, Any]] | None:
    """The voices a voice's `voice` names (one, or a blend's with their weights), what is
    wrong with them as a blend told to `problem`; None when there is nothing more to check."""
    if vid is None and not info.default_voice:
        problem("voice", f"name a {engine} voice (see `{narrate()} voices --engine {engine}`)")
        return None
    if isinstance(vid, str):
        return [(vid, 1.0)]
    if not isinstance(vid, dict):
        return None
    if not info.blends:
        problem("voice", f"{engine} voices cannot be blended; name one voice")
        return None
    if not vid:
        problem("voice", "a blend needs at least one voice")
    for part, weight in vid.items():
        number = isinstance(weight, int | float) and not isinstance(weight, bool)
        if number and not (math.isfinite(weight) and weight > 0):
            problem("voice", f"blend weight of '{part}' must be above 0 (got {weight!r})")
    return list(vid.items())


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
            if is_phonemes(value):
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
            elif isinstance(replacement, str) and is_phonemes(replacement) and not info.phonemes:
                problems.append(
                    Problem(
                        path,
                        line,
                        f"{where}: {engine} takes a respelling, not phonemes (/.../)",
                    )
                )
    return problems

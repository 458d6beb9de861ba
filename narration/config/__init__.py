"""Typed configuration: voices.yaml (who reads what, pauses, audio) and podcast.yaml (the show).

Both files are validated in full before any work starts. Every problem is collected and
reported at once, each with its file, line and a plain message (`ConfigError`), so a user
fixes them all in one pass. Unknown keys are errors, with the closest valid key suggested.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from narration.config.checks import semantic_problems
from narration.config.schema import (
    DEFAULT_ENGINE,
    AnnounceConfig,
    AudioConfig,
    Catalog,
    CharactersConfig,
    EngineCatalog,
    PausesConfig,
    PodcastConfig,
    ReadingConfig,
    RuleConfig,
    VoiceConfig,
    VoicesConfig,
    text_matches,
)
from narration.config.source import line_index_of, load_yaml, validation_problems
from narration.errors import ConfigError, Problem
from narration.invocation import narrate
from narration.layout import VOICES_FILE

__all__ = [
    "DEFAULT_ENGINE",
    "AnnounceConfig",
    "AudioConfig",
    "Catalog",
    "CharactersConfig",
    "EngineCatalog",
    "PausesConfig",
    "PodcastConfig",
    "ReadingConfig",
    "RuleConfig",
    "VoiceConfig",
    "VoicesConfig",
    "engines_named",
    "line_index_of",
    "load_podcast",
    "load_voices",
    "text_matches",
]


def engines_named(path: Path) -> list[str]:
    """The engines a voices file names, read quickly and leniently (the build uses this to
    start engines before the checks; the checks then report what is wrong with the file)."""
    try:
        data, _ = load_yaml(path)
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


def load_voices(path: Path, *, catalog: Catalog) -> VoicesConfig:
    """Load and validate voices.yaml; raise ConfigError listing every problem found.

    `catalog` gives, for each engine, what its voices are checked against (the engines
    give it: synthesis's `EngineSet.catalog`, or `settings_catalog` where their voice lists
    are not wanted): unknown voices are reported with the closest ids the engine has,
    settings the engine does not take with what to set instead, and engines that are not
    installed with how to get them.
    """
    if not path.is_file():
        hint = f" (run `{narrate()} init` to create one)" if path.name == VOICES_FILE else ""
        raise ConfigError([Problem(path, None, f"not found{hint}")])
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem(path, 1, "expected a mapping with 'voices', 'default', 'rules'")]
        )
    problems: list[Problem] = []
    config = None
    try:
        config = VoicesConfig.model_validate(data)
    except ValidationError as exc:
        problems += validation_problems(path, VoicesConfig, exc, lines)
    problems += semantic_problems(path, data, lines, catalog)
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise ConfigError(problems)
    assert config is not None
    return config


def load_podcast(path: Path) -> PodcastConfig:
    """Load podcast.yaml; a missing file gives the defaults."""
    if not path.is_file():
        return PodcastConfig()
    data, lines = load_yaml(path)
    if data is None:
        return PodcastConfig()
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem(path, 1, "expected a mapping of show settings (title, author, ...)")]
        )
    try:
        podcast = PodcastConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(path, PodcastConfig, exc, lines)) from None
    from narration.config.directories import check_podcast

    problems = check_podcast(podcast, path, lines)
    if problems:
        raise ConfigError(problems)
    return podcast

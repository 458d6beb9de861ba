"""Where a book project keeps its files, and the read-only steps every command shares.

A project directory holds `seeds/`, `voices.yaml`, `podcast.yaml` (optional),
`narrate.lock` (episode guids and dates, committed like a lock file), `output/` (the
show, as published) and `.narrate/` (the build's cache, state, previews and lock).
Loading a project validates everything and writes nothing, so a command that refuses
leaves `output/` exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from narration.errors import OutputError, Problem
from narration.layout import (
    LOCK_FILE,
    OUTPUT_DIR,
    PODCAST_FILE,
    SEEDS_DIR,
    VOICES_FILE,
    cache_dir,
    lock_path,
    previews_dir,
    state_dir,
    work_dir,
)

if TYPE_CHECKING:  # the configuration's pydantic models load only when a command reads it
    from narration.config import Catalog, PodcastConfig, VoicesConfig
    from narration.model import Book

DEFAULT_BASE_URL = "http://127.0.0.1:8000/"


@dataclass(frozen=True)
class Project:
    root: Path
    #: Another cast file in place of voices.yaml (`--voices voices.kokoro.yaml`).
    cast_file: Path | None = None

    @property
    def seeds(self) -> Path:
        return self.root / SEEDS_DIR

    @property
    def voices_file(self) -> Path:
        return self.cast_file or self.root / VOICES_FILE

    @property
    def podcast_file(self) -> Path:
        return self.root / PODCAST_FILE

    @property
    def output(self) -> Path:
        return self.root / OUTPUT_DIR

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def work(self) -> Path:
        """.narrate/: what a build keeps for itself (never published)."""
        return work_dir(self.root)

    @property
    def state(self) -> Path:
        return state_dir(self.root)

    @property
    def previews(self) -> Path:
        return previews_dir(self.root)

    @property
    def build_lock(self) -> Path:
        return lock_path(self.root)

    @property
    def cache(self) -> Path:
        """Rendered clips: .narrate/cache/clips, or $NARRATE_CACHE_DIR."""
        return cache_dir(self.root)

    def display(self, path: Path) -> str:
        """A path as the user should see it: relative to the project when inside it."""
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)


def find_project(start: Path) -> Path:
    """The nearest folder from `start` up that holds voices.yaml or seeds/ (so a command run
    inside seeds/ or output/ finds its project); `start` itself when none does."""
    for folder in (start, *start.parents):
        if (folder / VOICES_FILE).is_file() or (folder / SEEDS_DIR).is_dir():
            return folder
    return start


def open_project(root: Path, voices: Path | None = None) -> Project:
    """The project in `root`; `voices` names its cast file when it is not voices.yaml: a
    file in the project (`voices.kokoro.yaml`), or else a path from the working directory."""
    root = Path(root)
    if not root.is_dir():
        raise OutputError(f"{root}: project directory not found")
    cast_file = None
    if voices is not None:
        inside = root / voices
        cast_file = (inside if inside.is_file() else Path(voices)).resolve()
    project = Project(root.resolve(), cast_file)
    out = project.output
    # output/ must be a real directory inside the project, never a link elsewhere
    if out.is_symlink() or (out.exists() and not out.resolve().is_relative_to(project.root)):
        raise OutputError(f"{out}: output path escapes the project; refusing to write there")
    return project


def load_config(
    project: Project,
    catalog: Catalog | None = None,
) -> tuple[VoicesConfig, PodcastConfig]:
    """Both configuration files, validated together: all their problems in one error.

    Voices are checked against `catalog` (each engine's voices: `EngineSet.catalog`), else
    against each engine's settings alone (`settings_catalog`)."""
    from narration.config import load_podcast, load_voices
    from narration.errors import ConfigError
    from narration.synthesis.engines import settings_catalog

    problems: list[Problem] = []
    voices = podcast = None
    if catalog is None:
        catalog = settings_catalog()
    try:
        voices = load_voices(project.voices_file, catalog=catalog)
    except ConfigError as exc:
        problems += exc.problems
    try:
        podcast = load_podcast(project.podcast_file)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    assert voices is not None and podcast is not None
    return voices, podcast


def load_book(
    project: Project,
    warn: Callable[[str], None] | None = None,
    voices: VoicesConfig | None = None,
) -> Book:
    """The seeds segmented, read as `voices` says (its `reading:`; by default as the
    project's voices.yaml says, when it has one); `warn` hears of each file in seeds/ that
    no reader takes, and of what the segmenter noticed (Book.notices)."""
    from narration.reading import ReadOptions, unreadable
    from narration.segmenting import segment_book

    if warn is not None:
        for path, why in unreadable(project.seeds):
            warn(f"{project.display(path.parent)}/{path.name}: {why}")  # a link as named
    if voices is None and project.voices_file.is_file():
        from narration.config import load_voices
        from narration.synthesis.engines import settings_catalog

        voices = load_voices(project.voices_file, catalog=settings_catalog())
    reading = voices.reading if voices is not None else None
    options = ReadOptions(image_descriptions=bool(reading and reading.image_descriptions))
    book = segment_book(project.seeds, options)
    if warn is not None:
        for notice in book.notices:  # a contents list that disagrees with the headings
            warn(f"{project.display(project.seeds)}/{notice}")
    return book

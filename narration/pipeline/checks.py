"""The project's checks: everything that can refuse a build (configuration, seeds, casting,
the show, the cover, the base URL) is worked out here, before anything is written."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from narration.errors import InputError
from narration.layout import (
    OUTPUT_COVERS,
    SEEDS_DIR,
)
from narration.model import (
    Book,
    BookFacts,
    CastChapter,
    Show,
    Speakers,
)
from narration.pipeline.project import DEFAULT_BASE_URL, Project, load_book, load_config
from narration.pipeline.report import BuildReport, Stages

# The stages' modules are imported where they are used (see build.py).
if TYPE_CHECKING:
    from narration.casting.characters import Role
    from narration.cluster import Cluster
    from narration.config import PodcastConfig, VoicesConfig
    from narration.synthesis.engines import Engine
    from narration.synthesis.workers import WorkerPool


Say = Callable[[str], None]


def quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class Checked:
    """A project that passed every check: ready to build, nothing written yet."""

    project: Project
    voices: VoicesConfig
    podcast: PodcastConfig
    book: Book
    cast: list[CastChapter]
    engines: dict[str, Engine]  # the engines the cast uses, by name
    #: who speaks each quotation, with voices.yaml's corrections; found on every check
    speakers: Speakers
    #: each character's voice and why, by character id
    roles: Mapping[str, Role]


def _untimed(_name: str) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


def check_project(
    project: Project,
    warn: Say = quiet,
    stage: Callable[[str], AbstractContextManager[None]] = _untimed,
) -> Checked:
    """Validate configuration and seeds, segment, find who speaks and cast. Writes nothing.
    `stage` times the finding of speakers (the build reports it as its own stage)."""
    from narration.casting import cast_book, unused_rules
    from narration.casting.characters import (
        auto_engine,
        cast_characters,
        character_problems,
        with_speakers_set,
    )
    from narration.config import line_index_of
    from narration.segmenting.speakers import find_speakers
    from narration.synthesis.engines import EngineSet

    engines = EngineSet()
    voices, podcast = load_config(project, catalog=engines.catalog)
    book = load_book(project, warn, voices)
    lines = line_index_of(project.voices_file)
    chars = voices.characters
    with stage("speakers"):
        speakers = find_speakers(book, chars.merge, chars.split)
    speakers = with_speakers_set(book, speakers, voices)
    for problem in unused_rules(book, voices, project.voices_file, lines, speakers):
        warn(str(problem))
    palette = (
        engines.castable(auto_engine(voices), book_language(podcast, book.facts))
        if chars.auto
        else ()
    )
    for problem in character_problems(book, speakers, voices, project.voices_file, lines, palette):
        warn(str(problem))
    roles = cast_characters(speakers, voices, palette)
    cast = cast_book(book, voices, speakers, roles)
    return Checked(project, voices, podcast, book, cast, engines.used(voices), speakers, roles)


def book_language(podcast: PodcastConfig, facts: BookFacts) -> str:
    """The book's language as podcast.yaml gives it, else as the seeds say, else English."""
    if "language" in podcast.model_fields_set or not facts.language:
        return podcast.language
    found = facts.language.strip()
    return found if _LANGUAGE_CODE.fullmatch(found) else podcast.language


def resolve_show(checked: Checked, recorded: date | None = None, warn: Say = quiet) -> Show:
    """The book as a whole: podcast.yaml, falling back on what the seeds say of themselves
    (BookFacts: an EPUB's OPF, a Gutenberg header), else on the first chapter's title (with a
    warning) and a chapter's author. `recorded` is the day of the project's first build
    (narrate.lock's), the recording year. Nothing is made up: a year nobody gave stays None."""
    podcast, book = checked.podcast, checked.book
    first, facts = book.chapters[0], book.facts
    title = podcast.title or facts.title or first.title
    if not (podcast.title or facts.title):
        warn(
            f"{checked.project.podcast_file.name}: no title, and the book names none; the show "
            f"is called '{first.title}' after its first chapter (set title: in "
            f"{checked.project.podcast_file.name})"
        )
    author = (
        podcast.author or facts.author or next((c.author for c in book.chapters if c.author), None)
    )
    description = podcast.description or facts.description or _read_by(title, facts)
    language = book_language(podcast, facts)
    if (
        "language" not in podcast.model_fields_set
        and facts.language
        and language != facts.language.strip()
    ):
        warn(
            f"{SEEDS_DIR}: the book's language '{facts.language}' is not a language code "
            f"like en or en-GB; the feed says '{language}' (set language: in "
            f"{checked.project.podcast_file.name})"
        )
    return Show(
        title=title,
        author=author,
        description=description,
        language=language,
        cover=Path(OUTPUT_COVERS[0]),  # the name until the build writes the cover
        year=podcast.year if podcast.year is not None else facts.year,
        recorded=recorded.year if recorded is not None else None,
    )


#: A language tag as feeds and players take it: an ISO 639 code, optionally a region.
_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


def _read_by(title: str, facts: BookFacts) -> str:
    """The description when neither podcast.yaml nor the book gives one: the title (with
    the book's subtitle, when the title is the book's own) and who reads it."""
    if facts.subtitle and title == facts.title:
        title = f"{title}: {facts.subtitle}"
    return f"{title}, read by narrate."


def resolve_base_url(podcast: PodcastConfig, override: str | None) -> tuple[str, bool]:
    """The URL output/ is published at, ending in '/'; and whether the user configured it."""
    url = override or podcast.base_url
    configured = url is not None
    url = url or DEFAULT_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        where = "--base-url" if override else "podcast.yaml: base_url"
        raise InputError(where, f"'{url}' is not an http(s) URL like https://example.org/book/")
    return (url if url.endswith("/") else url + "/"), configured


def prepared_cover(
    project: Project, podcast: PodcastConfig, book: Book, warn: Say
) -> tuple[bytes, str] | None:
    """The user's cover (podcast.yaml's, else seeds/cover.*, else the EPUB's), prepared now
    so a bad one refuses the build before writing; an EPUB's that narrate cannot draw is
    left for a generated one, with a warning (the book is not the user's to fix)."""
    if podcast.cover is not None:
        path = (project.root / podcast.cover).resolve()
        if not path.is_file():
            raise InputError(project.podcast_file, f"cover: {podcast.cover} not found")
    else:
        path = None  # seeds/cover.jpg or .png, if there is one
    from narration.assembly.cover import book_cover, user_cover

    found = user_cover(project.seeds, explicit=path)
    if found is None and book.facts.cover is not None:
        data, where = book.facts.cover
        found = book_cover(data, where, warn)
    return found


@dataclass(frozen=True, kw_only=True)
class BuildRun:
    """One build past its checks: what it builds, and how it reports and runs."""

    checked: Checked
    show: Show
    recorded: date  # the project's first build's day: narrate.lock's, else today
    cover: tuple[bytes, str] | None  # the user's cover (bytes, suffix), or None to draw one
    base_url: str
    base_url_configured: bool  # given by podcast.yaml or --base-url
    report: BuildReport
    stage: Stages
    jobs: int | None
    workers: list[WorkerPool]  # started before the checks; closed after synthesis
    cluster: Cluster | None  # renders the clips instead of `workers`
    m4b: bool  # also the audiobook
    readalong: bool  # also the read-along EPUB
    quiet: bool
    warn: Say
    idle: bool = False  # as _Started.unchanged

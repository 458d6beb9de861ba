"""The build: every stage in order, from seeds/ to a published podcast in output/.

Everything that can refuse (configuration, seeds, casting, cover, base URL) is checked
before anything is written, so a refused build leaves output/ exactly as it was. Then, under
the project's lock (.narrate/lock): synthesis (cached in .narrate/cache), assembly (skipped
for unchanged chapters, as .narrate/state says), the feed, the show page and
output/build.json. Every file is written beside its final name and
renamed into place, so an interrupted build never leaves a truncated file that looks done.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from narration.errors import InputError, NarrateError, OutputError
from narration.files import write_atomic
from narration.invocation import narrate
from narration.layout import (
    FEED_FILE,
    OUTPUT_COVERS,
    OUTPUT_DIR,
    PIECES_DIR,
    REPORT_FILE,
    SCHEDULER_ENV,
    SEEDS_DIR,
    audiobook_file,
    is_audiobook_file,
    is_chapter_file,
    is_readalong_file,
    readalong_file,
)
from narration.model import (
    Book,
    BookFacts,
    CastChapter,
    CastSegment,
    Clip,
    Episode,
    Show,
    Speakers,
    Voice,
)
from narration.pipeline.project import DEFAULT_BASE_URL, Project, load_book, load_config
from narration.processes import fork_server

# The stages' modules (pydantic models, feedgen, numpy) are imported where they are used:
# a build starts its synthesis workers before paying for those imports.
if TYPE_CHECKING:
    from narration.casting.characters import Role
    from narration.cluster import Cluster
    from narration.config import PodcastConfig, VoicesConfig
    from narration.synthesis.engines import Engine
    from narration.synthesis.workers import WorkerPool

Say = Callable[[str], None]


def _quiet(_message: str) -> None:
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
    warn: Say = _quiet,
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


def resolve_show(checked: Checked, recorded: date | None = None, warn: Say = _quiet) -> Show:
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


@dataclass
class BuildReport:
    """What a build did, as written to output/build.json."""

    engines: list[dict[str, str]] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    chapters: list[dict[str, Any]] = field(default_factory=list)
    audiobook: dict[str, Any] | None = None
    readalong: dict[str, Any] | None = None  # the read-along EPUB
    cluster: dict[str, Any] | None = None  # the Dask cluster synthesis ran on
    #: characters found, quotations and how many have a speaker (`narrate characters`)
    speakers: dict[str, int] | None = None
    #: the encoded pieces kept for the next build: {"files": n, "bytes": size}
    pieces_kept: dict[str, int] | None = None
    base_url: str = ""
    output: Path = Path(OUTPUT_DIR)

    def to_json(self) -> dict[str, Any]:
        totals = {
            "chapters": len(self.chapters),
            "segments": sum(c["segments"] for c in self.chapters),
            "clips": sum(c["clips"] for c in self.chapters),
            "rendered": sum(c["rendered"] for c in self.chapters),
            "cached": sum(c["cached"] for c in self.chapters),
            "encoded": sum(1 for c in self.chapters if c["encoded"]),
            "pieces": sum(c["pieces"] for c in self.chapters),
            "pieces_encoded": sum(c["pieces_encoded"] for c in self.chapters),
            "seconds": round(sum(c["seconds"] for c in self.chapters), 3),
        }
        return {
            "engines": self.engines,
            "stages": {k: round(v, 3) for k, v in self.stages.items()},
            "totals": totals,
            **({"pieces_kept": self.pieces_kept} if self.pieces_kept is not None else {}),
            "base_url": self.base_url,
            "chapters": self.chapters,
            **({"audiobook": self.audiobook} if self.audiobook else {}),
            **({"readalong": self.readalong} if self.readalong else {}),
            **({"cluster": self.cluster} if self.cluster else {}),
            **({"speakers": self.speakers} if self.speakers is not None else {}),
        }

    def summary(self) -> str:
        t = self.to_json()["totals"]
        minutes = t["seconds"] / 60
        took = sum(self.stages.values())
        from narration.progress import count

        return (
            f"Built {count(t['chapters'], 'chapter')}, {minutes:.1f} min of audio, in "
            f"{took:.1f} s: {count(t['rendered'], 'clip')} rendered"
            + (
                f" on {count(self.cluster['workers'], 'worker')} at {self.cluster['scheduler']}"
                if self.cluster
                else ""
            )
            + f", {t['cached']} from cache, "
            f"{count(t['encoded'], 'chapter')} encoded{self._pieces_note()}. "
            f"Feed: {self.output / FEED_FILE}"
            + (f"; audiobook: {self.output / self.audiobook['file']}" if self.audiobook else "")
            + (f"; read-along: {self.output / self.readalong['file']}" if self.readalong else "")
            + self._speakers_line()
        )

    def _pieces_note(self) -> str:
        """' (12 of 140 pieces)' when the chapters encoded reused some of their pieces."""
        made = [c for c in self.chapters if c["encoded"]]
        pieces = sum(c["pieces"] for c in made)
        encoded = sum(c["pieces_encoded"] for c in made)
        return f" ({encoded} of {pieces} pieces)" if encoded < pieces else ""

    def _speakers_line(self) -> str:
        """'Speakers: 12 characters, 340 of 500 quotations attributed', when the book has
        characters (not a pamphlet's few quoted words)."""
        s = self.speakers
        if not s or not s["characters"]:
            return ""
        from narration.progress import count

        voiced = (
            f", {s['own_voices']} in voices of their own, {s['pool_voices']} in a shared pool"
            if s.get("own_voices") or s.get("pool_voices")
            else ""
        )
        return (
            f"\nSpeakers: {count(s['characters'], 'character')}, {s['attributed']} of "
            f"{count(s['quotations'], 'quotation')} attributed{voiced} ({narrate()} characters)."
        )


class _Stages:
    """Each stage's seconds; a stage timed inside another is not counted in it too."""

    def __init__(self, report: BuildReport) -> None:
        self.report = report
        self._inner: list[float] = []  # per open stage, the seconds of stages inside it

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            took = time.perf_counter() - start
            inner = self._inner.pop()
            if self._inner:
                self._inner[-1] += took
            self.report.stages[name] = self.report.stages.get(name, 0.0) + took - inner


def _os_error(exc: OSError) -> OutputError:
    name = exc.filename or "output"
    return OutputError(f"{name}: {exc.strerror or exc}")


def build_project(
    project: Project,
    *,
    jobs: int | None = None,
    base_url: str | None = None,
    m4b: bool | None = None,
    readalong: bool | None = None,
    scheduler: str | None = None,
    cluster: Cluster | None = None,
    quiet: bool = False,
    say: Say = _quiet,
    warn: Say = _quiet,
) -> BuildReport:
    """Build the project into its output/. `m4b` (default: podcast.yaml's) also writes
    the whole book as one audiobook, `readalong` (the same) as an EPUB 3 whose text is
    highlighted as it is read. Clips are rendered on `cluster` if given (the caller
    closes it), else on the Dask scheduler at `scheduler` (default: podcast.yaml's, then
    $DASK_SCHEDULER_ADDRESS), else on this machine."""
    report = BuildReport(output=project.output)
    stage = _Stages(report)
    # Started first, so that their start-up (Kokoro: loading its model) runs beside the
    # checks; they touch nothing until they are given clips, and are killed unused if the
    # build refuses or has nothing to render. When nothing changed since the last build they
    # would only compete with the checks: synthesis then starts its own, should it find
    # clips missing after all.
    with contextlib.ExitStack() as stack:
        given = scheduler or os.environ.get(SCHEDULER_ENV)
        remote = cluster is not None or bool(given)
        unchanged = _unchanged_since_last_build(project)
        workers = [] if remote or unchanged else _early_workers(project, jobs)
        for pool in workers:
            stack.enter_context(pool)
        if not unchanged and jobs != 1:  # and the server assembly's processes start from
            fork_server()
        # A cluster is connected to, and its workers load the engines, beside the checks.
        connecting = None
        if cluster is None and given:
            connecting = _connect_early(given.strip(), scheduler, project, stack)
        elif cluster is not None:
            _load_early(cluster, project)
        with stage("check"):
            checked = check_project(project, warn, stage)
            report.speakers = _speakers_report(checked.speakers, checked.roles)
            report.engines = [
                {"name": e.name, "version": e.version} for e in checked.engines.values()
            ]
            url, configured = resolve_base_url(checked.podcast, base_url)
            report.base_url = url
            from narration.publishing.feed import first_build_day, load_lock

            # a broken narrate.lock refuses before output/ is touched
            recorded = first_build_day(load_lock(project.lock_file))
            show = resolve_show(checked, recorded, warn)
            cover = _user_cover(project, checked.podcast, checked.book, warn)
            address = scheduler or checked.podcast.scheduler or os.environ.get(SCHEDULER_ENV)
            if cluster is None and address:
                from narration.cluster import Cluster

                source, unset = _scheduler_source(scheduler, checked.podcast, project)
                early = connecting is not None and given is not None
                if early and given.strip() == address.strip():  # type: ignore[union-attr]
                    cluster = stack.enter_context(connecting.result())  # type: ignore[union-attr]
                else:  # podcast.yaml names another than $DASK_SCHEDULER_ADDRESS: it wins
                    cluster = stack.enter_context(
                        Cluster.connect(address.strip(), given=source, unset=unset)
                    )
            if cluster is not None:
                for pool in workers:  # podcast.yaml names a scheduler: these are not needed
                    pool.close()
                workers = []
                cluster.prepare(dict(checked.engines), warn)
        audiobook = checked.podcast.m4b if m4b is None else m4b
        ebook = checked.podcast.readalong if readalong is None else readalong
        run = _Run(
            checked,
            show,
            recorded,
            cover,
            url,
            report,
            stage,
            jobs,
            workers,
            cluster,
            audiobook,
            ebook,
            quiet,
            warn,
            unchanged,
        )
        from narration.pipeline.workspace import build_lock

        try:
            with build_lock(project.root, "build again"):
                project.output.mkdir(parents=True, exist_ok=True)
                _build_locked(run)
        except OSError as exc:
            raise _os_error(exc) from None
    if configured and not checked.podcast.owner_email:
        warn(
            f"{project.podcast_file.name}: no owner_email; Apple Podcasts and other directories "
            "ask for the owner's email (itunes:owner) to verify the show"
        )
    if not configured:
        say(
            f"No base URL configured: the feed points at {url} (`{narrate()} serve`). "
            "Set base_url in podcast.yaml or pass --base-url to publish elsewhere."
        )
    return report


def _speakers_report(speakers: Speakers, roles: Mapping[str, Role]) -> dict[str, int]:
    from narration.segmenting.speakers.review import attributed

    return {
        "characters": len(speakers.characters),
        "quotations": len(speakers.quotations),
        "attributed": attributed(speakers),
        # characters read in voices of their own (automatic or pinned), and in a shared pool
        "own_voices": sum(1 for r in roles.values() if r.how in ("automatic", "pinned")),
        "pool_voices": sum(1 for r in roles.values() if r.how == "shared pool"),
    }


def _scheduler_source(
    flag: str | None, podcast: PodcastConfig | None, project: Project
) -> tuple[str, str]:
    """Where the scheduler's address came from, and how a user stops using it."""
    if flag:
        return "--scheduler", "build without --scheduler"
    if podcast is not None and podcast.scheduler:
        name = project.podcast_file.name
        return f"{name}: scheduler", f"remove scheduler from {name}"
    return f"${SCHEDULER_ENV}", f"unset {SCHEDULER_ENV}"


def _connect_early(
    address: str, flag: str | None, project: Project, stack: contextlib.ExitStack
) -> Future[Cluster]:
    """Connect to the scheduler in a thread while the checks run; the build takes the
    outcome (a cluster, or the one-line error) before it writes anything."""
    from narration.cluster import Cluster

    def connect() -> Cluster:
        given, unset = _scheduler_source(flag, None, project)
        found = Cluster.connect(address, given=given, unset=unset)
        _load_early(found, project)
        return found

    started: list[Future[Cluster]] = []

    def close() -> None:  # a build refused by its checks closes the connection too
        for future in started:
            if future.exception() is None:
                future.result().close()

    stack.callback(close)  # after the thread below has finished (the stack unwinds LIFO)
    pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
    started.append(pool.submit(connect))
    return started[0]


def _load_early(cluster: Cluster, project: Project) -> None:
    """Start loading the engines voices.yaml names on the cluster's workers."""
    from narration.config import engines_named

    with contextlib.suppress(Exception):  # unreadable: the checks say why
        cluster.start_loading(list(engines_named(project.voices_file)))


def _early_workers(project: Project, jobs: int | None) -> list[WorkerPool]:
    """Synthesis workers for each engine the voices file names and this machine has."""
    from narration.config import engines_named
    from narration.errors import SynthesisError
    from narration.synthesis import ClipCache
    from narration.synthesis.engines import get_engine
    from narration.synthesis.workers import WorkerPool

    pools: list[WorkerPool] = []
    try:
        for name in engines_named(project.voices_file):
            try:
                engine = get_engine(name)
            except SynthesisError:  # unknown or not installed: the checks will say so
                continue
            with contextlib.suppress(OSError):  # cannot start now: synthesis tries again
                pools.append(WorkerPool(engine, ClipCache(project.cache), jobs))
    except BaseException:
        for pool in pools:
            pool.close()
        raise
    return pools


def _unchanged_since_last_build(project: Project) -> bool:
    """Whether output/build.json, the last file a build writes, is newer than every input
    (seeds, voices.yaml, podcast.yaml, narrate.lock): then the build most likely renders
    nothing. Only a guess about where to spend start-up time, never about what to build."""
    try:
        built = (project.output / REPORT_FILE).stat().st_mtime_ns
        inputs = [project.voices_file, project.podcast_file, project.lock_file]
        inputs += [p for p in project.seeds.rglob("*") if p.is_file()]
        return all(not p.exists() or p.stat().st_mtime_ns < built for p in inputs)
    except OSError:
        return False


def _user_cover(
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


@dataclass(frozen=True)
class _Run:
    """One build past its checks: what it builds, and how it reports and runs."""

    checked: Checked
    show: Show
    recorded: date  # the project's first build's day: narrate.lock's, else today
    cover: tuple[bytes, str] | None  # the user's cover (bytes, suffix), or None to draw one
    base_url: str
    report: BuildReport
    stage: _Stages
    jobs: int | None
    workers: list[WorkerPool]  # started before the checks; closed after synthesis
    cluster: Cluster | None  # renders the clips instead of `workers`
    m4b: bool  # also the audiobook
    readalong: bool  # also the read-along EPUB
    quiet: bool
    warn: Say
    #: the inputs look unchanged since the last build: most likely nothing to render or
    #: encode, so nothing is loaded ahead for it (a guess about start-up time only)
    idle: bool = False


def _build_locked(run: _Run) -> None:
    from narration.assembly.cover import generate_cover, write_cover
    from narration.progress import ProgressReporter, count, format_duration
    from narration.synthesis import ClipCache, synthesize

    checked, report, stage, show = run.checked, run.report, run.stage, run.show
    project, cast = checked.project, checked.cast
    out = project.output
    from narration.pipeline.workspace import adopt_legacy

    moved = adopt_legacy(project.root)
    if moved:
        run.warn(
            f"moved {', '.join(moved)}: output/ holds only the show now (git-ignore .narrate/)"
        )
    _remove_leftovers([out, project.state, project.state / PIECES_DIR], project.lock_file)

    from narration.assembly import AssembledEpisode, assemble_audiobook, assemble_book
    from narration.assembly.pieces import PieceStore
    from narration.assembly.state import pieces_dir
    from narration.errors import ClipDamaged
    from narration.fingerprint import sketch
    from narration.pipeline.streaming import ChapterStream, Publisher, previous_episodes
    from narration.publishing.feed import LockEntry, write_feed
    from narration.publishing.page import write_page
    from narration.synthesis import ClipJob

    requests = [
        ClipJob(line, part.voice, part.id, k)
        for k, cc in enumerate(cast)
        for part in cc.parts
        for line in part.lines
    ]
    # the lock as the whole book gives it, worked out before any episode is published
    from narration.assembly.sidecars import transcript_words

    entries = [
        LockEntry(cc.chapter.id, k + 1, sketch(transcript_words(cc))) for k, cc in enumerate(cast)
    ]
    previous = previous_episodes(out, project.state)  # before assembly forgets them
    books_before = _book_files(project.state)  # before this build records its own

    def publish(episodes: list[Episode], *, book: Any = None, ebook: Any = None) -> None:
        write_feed(
            episodes,
            show=show,
            podcast=checked.podcast,
            out_dir=out,
            base_url=run.base_url,
            lock_path=project.lock_file,
            today=run.recorded,  # the day the tags were given, should the lock have none
            chapters=entries,
        )
        write_page(episodes, show=show, out_dir=out, audiobook=book, readalong=ebook)

    publisher = Publisher(cast, dict(previous), publish)
    offload = run.cluster.encoder() if run.cluster is not None else None
    progress = ProgressReporter(
        quiet=run.quiet,
        label=f"synthesis on {run.cluster.size()} workers" if run.cluster else "synthesis",
    )
    chapters = ProgressReporter(
        quiet=run.quiet, label="assembly", unit="chapters", made="encoded", kept="unchanged"
    )
    counts = {"done": 0, "kept": 0}
    synthesised = threading.Event()

    def finished(index: int, episode: AssembledEpisode) -> None:
        """A chapter's episode is finished (in assembly's thread): published at once."""
        publisher.done(index, episode, changed=episode.encoded)
        counts["done"] += 1
        counts["kept"] += not episode.encoded
        if synthesised.is_set():
            chapters(counts["done"], counts["kept"], len(cast))
        elif episode.encoded:
            progress.note(
                f"ready: {project.display(episode.mp3)} "
                f"(chapter {episode.number} of {len(cast)}, {format_duration(episode.seconds)})"
            )

    def assemble(chapter_list: Sequence[Any], **kwargs: Any) -> list[AssembledEpisode]:
        return assemble_book(
            chapter_list,
            pauses=checked.voices.pauses,
            audio=checked.voices.audio,
            out_dir=out,
            state_dir=project.state,
            jobs=run.jobs,
            m4b=run.m4b,
            offload=offload,
            **kwargs,
        )

    streams: list[ChapterStream] = []  # stopped, whatever ends the build early
    try:
        with ThreadPoolExecutor(max_workers=1) as background:
            # Without a cover of the user's (the checks looked), one is drawn in a thread while
            # the workers render (this process only waits on them); either is written when the
            # first chapter's clips are ready, so a build refused before that writes nothing.
            drawn = None
            if run.cover is None:
                drawn = background.submit(generate_cover, show.title, show.author or "")
            if not run.idle:
                background.submit(_preload_assembly)

            def start() -> Show:
                nonlocal show
                with stage("cover"):
                    data, ext = run.cover if drawn is None else (drawn.result(), ".png")
                    show = Show(**{**show.__dict__, "cover": write_cover(out, data, ext)})
                return show

            stream = ChapterStream(cast, start, assemble, finished)
            streams.append(stream)
            cache = ClipCache(project.cache)
            try:
                with stage("synthesis"):
                    try:
                        flat = synthesize(
                            requests,
                            engine=checked.engines,
                            cache=cache,
                            jobs=run.jobs,
                            progress=progress,
                            workers=run.workers,
                            cluster=run.cluster,
                            on_group=stream.arrived,
                        )
                    finally:
                        progress.close()
                        for pool in run.workers:
                            pool.close()  # idle from now on: their memory is the encoders'
                    stream.close()
                    synthesised.set()
                    chapters(counts["done"], counts["kept"], len(cast))
            except BaseException:
                stream.stop()
                chapters.close()
                raise
        if run.cluster is not None:
            report.cluster = {
                "scheduler": run.cluster.address,
                "workers": run.cluster.size(),
                "refused": dict(run.cluster.refused),
            }
        if cache.damaged:
            n = len(cache.damaged)
            run.warn(
                f"{project.display(project.cache)}: {count(n, 'cached clip')} "
                f"{'was' if n == 1 else 'were'} damaged on disk (bytes changed since "
                f"{'it was' if n == 1 else 'they were'} made, or failing a render's "
                f"checks) and {'was' if n == 1 else 'were'} rendered again"
            )
        grouped = _grouped(cast, flat)

        with stage("assembly"):
            try:
                try:
                    try:
                        episodes = stream.result()
                    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM, SIGHUP: it stops
                        stream.stop()
                        raise
                except ClipDamaged:
                    # a clip's bytes changed while its size, time and inode did not (bit rot):
                    # every such clip is found, rendered again, and the book assembled again
                    damaged = [c for c in {c.key: c for c in flat}.values() if not cache.intact(c)]
                    for clip in damaged:
                        cache.discard(clip.key)
                    run.warn(
                        f"{project.display(project.cache)}: {count(len(damaged), 'cached clip')} "
                        "had changed on disk without a trace in its size or time (bit rot?) and "
                        f"{'was' if len(damaged) == 1 else 'were'} rendered again"
                    )
                    flat = synthesize(
                        requests,
                        engine=checked.engines,
                        cache=cache,
                        jobs=run.jobs,
                        cluster=run.cluster,
                    )
                    grouped = _grouped(cast, flat)
                    counts.update(done=0, kept=0)
                    index = {cc.chapter.id: k for k, cc in enumerate(cast)}
                    episodes = assemble(
                        grouped, show=show, progress=lambda ep: finished(index[ep.chapter_id], ep)
                    )
            finally:
                chapters.close()
            if offload is not None and report.cluster is not None:
                report.cluster["pieces"] = offload.sent
            files, size = PieceStore(pieces_dir(project.state)).size()
            report.pieces_kept = {"files": files, "bytes": size}
    except BaseException:  # Ctrl-C, a signal, a failure: assembly stops and cleans up
        for running in streams:
            running.stop()
        raise

    book = None
    if run.m4b:
        with stage("audiobook"):
            book = assemble_audiobook(
                episodes,
                show=show,
                bitrate=checked.voices.audio.bitrate,
                path=audiobook_file(out, show.title),
                state_dir=project.state,
            )
        report.audiobook = {
            "file": book.path.name,
            "seconds": book.seconds,
            "size": book.size,
            "chapters": len(book.marks),
            "written": book.written,
        }

    ebook = None
    if run.readalong:
        from narration.assembly import assemble_readalong

        with stage("read-along"):
            ebook = assemble_readalong(
                [(cc, ep.mp3, ep.vtt) for (cc, _), ep in zip(grouped, episodes, strict=True)],
                texts=checked.book.texts,
                show=show,
                modified=run.recorded,
                path=readalong_file(out, show.title),
                state_dir=project.state,
            )
        report.readalong = {
            "file": ebook.path.name,
            "size": ebook.size,
            "chapters": ebook.chapters,
            "cues": ebook.cues,
            "speech_seconds": ebook.seconds,
            "written": ebook.written,
        }

    with stage("feed"):
        publish(episodes, book=book, ebook=ebook)
        # Only now that the feed and page no longer name them: a build killed before this
        # point leaves a feed whose every file is still there.
        kept = [b.path for b in (book, ebook) if b is not None]
        _remove_stale(out, episodes, kept, books_before)

    for (cc, clips), ep in zip(grouped, episodes, strict=True):
        flat_clips = [c for part in clips for c in part]
        report.chapters.append(
            {
                "id": cc.chapter.id,
                "file": cc.chapter.file,
                "mp3": ep.mp3.name,
                "segments": len(cc.chapter.segments),
                "clips": len(flat_clips),
                "rendered": sum(1 for c in flat_clips if c.rendered),
                "cached": sum(1 for c in flat_clips if not c.rendered),
                "encoded": ep.encoded,
                # the pieces its MP3 is joined from, and of those, encoded by this build
                "pieces": ep.pieces,
                "pieces_encoded": ep.pieces_encoded,
                "seconds": round(ep.seconds, 3),
                "voices": list(ep.voices),
                # measured when it was encoded (kept chapters: by the build that encoded them)
                "loudness_lufs": _rounded(ep.loudness),
                "true_peak_dbtp": _rounded(ep.true_peak),
                "voice_loudness_lufs": {k: _rounded(v) for k, v in ep.voice_loudness.items()},
            }
        )
    data = json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
    write_atomic(out / REPORT_FILE, data.encode("utf-8"))


def _grouped(
    cast: list[CastChapter], flat: list[Clip]
) -> list[tuple[CastChapter, list[list[Clip]]]]:
    """The clips in book order, grouped by chapter and segment as assembly takes them."""
    it = iter(flat)
    return [(cc, [[next(it) for _ in part.lines] for part in cc.parts]) for cc in cast]


def _preload_assembly() -> None:
    """Assembly's modules and native libraries, loaded while the workers render, so they
    are off the path to the first chapter's assembly; and the server that assembly's
    processes are forked from, started with them loaded (each process inherits them).
    Nobody reads its outcome: if a library cannot load, assembly's own import of it fails
    with the error."""
    from narration import assembly  # noqa: F401 - loading it is the point
    from narration.assembly.audio import preload

    preload()
    fork_server()


def _remove_leftovers(folders: list[Path], lock_file: Path) -> None:
    """Temporary files of a build that was killed (.NAME.tmpPID beside each final name, a
    chapter's timeline and pieces in the state): under the lock no other build is writing
    them, and left alone they would be published, or fill the disk."""
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(".*.tmp*"):
                if path.is_file() and _TEMP_FILE.fullmatch(path.name):
                    path.unlink(missing_ok=True)
    for path in lock_file.parent.glob(f".{lock_file.name}.tmp*"):
        path.unlink(missing_ok=True)


_TEMP_FILE = re.compile(r"\..+\.tmp\d*")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _book_files(state: Path) -> set[str]:
    """The audiobook and read-along files earlier builds wrote, as the state records them
    (a file of that kind narrate did not write is the user's, and stays)."""
    from narration.layout import BOOK_STATES

    names = set()
    for name in BOOK_STATES:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            names.add(str(json.loads((state / name).read_text(encoding="utf-8"))["file"]))
    return names


def _remove_stale(out: Path, episodes: list[Episode], books: list[Path], made: set[str]) -> None:
    """Chapter files a previous build made for chapters that no longer exist, and an
    audiobook or read-along book an earlier build made (`made`) that this one did not (the
    book's title changed, or it is off)."""
    keep = {p.name for ep in episodes for p in (ep.mp3, ep.vtt, ep.chapters_json)}
    keep.update(p.name for p in books)
    for path in out.iterdir():
        name = path.name
        book = name in made and (is_audiobook_file(name) or is_readalong_file(name))
        ours = is_chapter_file(name) or book
        if ours and path.is_file() and name not in keep:
            path.unlink()


def preview_clip(
    project: Project,
    *,
    segment_id: str | None,
    text: str | None,
    voice_name: str | None,
    out: Path | None,
) -> Path:
    """Render one segment, or some text in a named voice, for auditioning."""
    from narration.assembly import audio
    from narration.casting import Lexicon
    from narration.pipeline.playback import PreviewPiece, preview_pieces
    from narration.segmenting.sentences import split_sentences
    from narration.synthesis.engines import EngineSet

    if out is not None and not out.parent.is_dir():
        raise OutputError(f"{out.parent}: no such folder for the preview (--out {out})")
    engines = EngineSet()
    checked_voices, _ = load_config(project, catalog=engines.catalog)
    if voice_name is not None:
        if text is None:
            text, segment_id = segment_id, None
        if not text:
            raise InputError(
                "preview", f'give the text to read: {narrate()} preview --voice NAME "text"'
            )
        if voice_name in checked_voices.voices:
            voice = checked_voices.voices[voice_name].as_voice(voice_name)
            lexicon = checked_voices.lexicon_for(voice_name)
        else:
            voice = _character_voice(project, voice_name, checked_voices)
            lexicon = (
                checked_voices.lexicon_for(voice.name)
                if voice.name in checked_voices.voices
                else checked_voices.shared_lexicon(voice.engine)
            )
        said = [(Lexicon(lexicon).apply(" ".join(split_sentences(text))), voice)]
        name = f"preview-{voice_name}"
        pause = 0
    else:
        if not segment_id:
            raise InputError(
                "preview", f'give a segment id (see `{narrate()} cast`) or --voice NAME "text"'
            )
        checked = check_project(project)
        parts = _segment_parts(checked.cast, segment_id)
        if not parts:
            raise InputError(
                SEEDS_DIR, f"no segment '{segment_id}' (see `{narrate()} cast` for ids)"
            )
        said = [(" ".join(line.spoken for line in part.lines), part.voice) for part in parts]
        name = f"preview-{segment_id}"
        engines = EngineSet(checked.engines)  # their models were checked with the project
        pause = checked.voices.pauses.sentence  # as a chapter joins a split segment's pieces
    pieces = [PreviewPiece(text, voice, engines.ready(voice.engine)) for text, voice in said]
    target = out or (project.previews / f"{_safe(name)}.wav")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return preview_pieces(
            pieces, target, join=functools.partial(audio.join_clips, pause_ms=pause)
        )
    except OSError as exc:
        raise _os_error(exc) from None


def _segment_parts(cast: Sequence[CastChapter], segment_id: str) -> list[CastSegment]:
    """The parts that read `segment_id`, in order: the part of that id (`narrate cast`'s
    `<id>.0`, an announcement), or every piece of a segment the cast split between voices
    (`narrate segments`' id, which no single part has)."""
    parts = [p for cc in cast for p in cc.parts]
    exact = [p for p in parts if p.id == segment_id]
    if exact:
        return exact
    return [p for p in parts if p.segment is not None and p.segment.id == segment_id]


def _character_voice(project: Project, who: str, voices: VoicesConfig) -> Voice:
    """The voice that reads a character (`preview --voice "Mrs. Grey"`), by any of its
    names; InputError listing the voices and characters when it names neither."""
    from narration.casting.characters import character_index, name_key

    checked = check_project(project)
    character = character_index(checked.speakers).get(name_key(who))
    role = checked.roles.get(character.id) if character else None
    if character is None or role is None:
        raise InputError(
            project.voices_file,
            f"no voice or character '{who}' (voices: {', '.join(voices.voices)}; "
            f"`{narrate()} characters` lists the characters)",
        )
    if role.voice is None:
        raise InputError(
            project.voices_file,
            f"{character.name} has no voice of their own ({role.why}); "
            f"`{narrate()} characters` says who reads them",
        )
    return role.voice


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:80]


def serve_project(project: Project, *, host: str, port: int, echo: Say) -> None:
    from narration.publishing.serve import serve

    out = project.output
    if not (out / FEED_FILE).is_file():
        raise OutputError(f"{out / FEED_FILE}: not built yet; run `{narrate()} build` first")
    podcast = load_config_podcast(project)
    serve(out, host=host, port=port, feed_base_url=podcast.base_url, echo=echo)


def load_config_podcast(project: Project) -> PodcastConfig:
    from narration.config import load_podcast

    return load_podcast(project.podcast_file)


def clean_project(project: Project, *, everything: bool) -> list[str]:
    """Empty the clip cache, or remove output/ and .narrate/ (never the seeds or the
    configuration); refused while a build runs on the project, whose files these are."""
    from narration.pipeline.workspace import adopt_legacy, build_lock
    from narration.progress import count as plural
    from narration.synthesis import ClipCache

    done = []
    work = project.work
    try:
        if everything and not work.exists() and not project.output.exists():
            return done
        with build_lock(project.root, "clean"):
            if everything:
                if project.output.exists():
                    shutil.rmtree(project.output)
                    done.append(f"removed {project.display(project.output)}")
                for path in sorted(work.iterdir()):  # all but the lock, held until the end
                    if path != project.build_lock:
                        _remove(path)
            else:
                adopt_legacy(project.root)  # an older narrate's cache is the one to empty
                count = ClipCache(project.cache).clear()
                done.append(
                    f"removed {plural(count, 'cached clip')} from {project.display(project.cache)}"
                )
        if everything:
            project.build_lock.unlink(missing_ok=True)
            work.rmdir()
            done.append(f"removed {project.display(work)}")
    except OSError as exc:
        raise _os_error(exc) from None
    return done


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


__all__ = ["BuildReport", "Checked", "NarrateError", "build_project", "check_project"]

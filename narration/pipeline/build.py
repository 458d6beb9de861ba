"""The build: every stage in order, from seeds/ to a published podcast in output/.

It reads as its phases. Started early: what takes long to start (synthesis workers, a
cluster's connection, assembly's modules), beside the checks. Checked: everything that can
refuse (configuration, seeds, casting, cover, base URL), before anything is written, so a
refused build leaves output/ exactly as it was. Then, under the project's lock
(.narrate/lock): synthesis (cached in .narrate/cache) and assembly (skipped for unchanged
chapters, as .narrate/state says) chapter by chapter, each episode published as it is
finished; the audiobook and the read-along book; the feed, the show page and
output/build.json. Every file is written beside its final name and renamed into place, so
an interrupted build never leaves a truncated file that looks done.
"""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from narration.errors import NarrateError, OutputError
from narration.files import write_atomic
from narration.invocation import narrate
from narration.layout import (
    PIECES_DIR,
    REPORT_FILE,
    SCHEDULER_ENV,
    audiobook_file,
    readalong_file,
)
from narration.model import Audiobook, ReadAlong, Show
from narration.pipeline.checks import (
    BuildRun,
    Checked,
    Say,
    check_project,
    prepared_cover,
    quiet,
    resolve_base_url,
    resolve_show,
)
from narration.pipeline.early import (
    connect_early,
    early_workers,
    load_early,
    scheduler_source,
    unchanged_since_last_build,
)
from narration.pipeline.leftovers import remove_leftovers, remove_stale
from narration.pipeline.project import Project
from narration.pipeline.report import BuildReport, Stages, chapter_entry, speakers_report
from narration.pipeline.streaming import Chapters, Grouped
from narration.processes import fork_server

# The stages' modules (pydantic models, feedgen, numpy) are imported where they are used:
# a build starts its synthesis workers before paying for those imports.
if TYPE_CHECKING:
    from narration.assembly import AssembledEpisode
    from narration.cluster import Cluster
    from narration.synthesis.workers import WorkerPool


@dataclass(frozen=True)
class BuildOptions:
    """What `narrate build` was asked: None takes podcast.yaml's (then the default)."""

    jobs: int | None = None  # processes for synthesis and assembly; None: one per core
    base_url: str | None = None
    m4b: bool | None = None  # also the whole book as one audiobook
    readalong: bool | None = None  # also an EPUB 3 whose text is lit as it is read
    scheduler: str | None = None  # a Dask scheduler's address
    quiet: bool = False  # no progress lines


@dataclass(frozen=True)
class _Started:
    """What a build started before its checks."""

    workers: list[WorkerPool]  # synthesis workers for the engines voices.yaml names
    #: the connection to --scheduler's (or $DASK_SCHEDULER_ADDRESS's) cluster, under way
    connecting: Future[Cluster] | None
    given: str | None  # its address, when `connecting`
    #: the inputs look unchanged since the last build: most likely nothing to render or
    #: encode, so nothing is loaded ahead for it (a guess about start-up time only)
    unchanged: bool


def build_project(
    project: Project,
    options: BuildOptions = BuildOptions(),
    *,
    cluster: Cluster | None = None,
    say: Say = quiet,
    warn: Say = quiet,
) -> BuildReport:
    """Build the project into its output/. Clips are rendered on `cluster` if given (the
    caller closes it), else on the Dask scheduler options name (else podcast.yaml's, then
    $DASK_SCHEDULER_ADDRESS's), else on this machine."""
    report = BuildReport(output=project.output)
    stage = Stages(report)
    with contextlib.ExitStack() as stack:
        started = _start_early(project, options, cluster, stack)
        with stage("check"):
            run = _check(project, options, started, cluster, report, stage, warn, stack)
        from narration.pipeline.workspace import build_lock

        try:
            with build_lock(project.root, "build again"):
                project.output.mkdir(parents=True, exist_ok=True)
                _build_locked(run)
        except OSError as exc:
            raise OutputError.from_os(exc) from None
    _advise(run, say, warn)
    return report


def _start_early(
    project: Project, options: BuildOptions, cluster: Cluster | None, stack: contextlib.ExitStack
) -> _Started:
    """Synthesis workers, started first so that their start-up (Kokoro: loading its model)
    runs beside the checks; they touch nothing until they are given clips, and are killed
    unused if the build refuses or has nothing to render. When nothing changed since the
    last build they would only compete with the checks: synthesis then starts its own,
    should it find clips missing after all. A cluster is connected to, and its workers load
    the engines, beside the checks too."""
    given = options.scheduler or os.environ.get(SCHEDULER_ENV)
    remote = cluster is not None or bool(given)
    unchanged = unchanged_since_last_build(project)
    workers = [] if remote or unchanged else early_workers(project, options.jobs)
    for pool in workers:
        stack.enter_context(pool)
    if not unchanged and options.jobs != 1:  # and the server assembly's processes start from
        fork_server()
    connecting = None
    if cluster is None and given:
        connecting = connect_early(given.strip(), options.scheduler, project, stack)
    elif cluster is not None:
        load_early(cluster, project)
    return _Started(workers, connecting, given.strip() if connecting else None, unchanged)


def _check(
    project: Project,
    options: BuildOptions,
    started: _Started,
    cluster: Cluster | None,
    report: BuildReport,
    stage: Stages,
    warn: Say,
    stack: contextlib.ExitStack,
) -> BuildRun:
    """Everything that can refuse the build, before anything is written."""
    checked = check_project(project, warn, stage)
    report.speakers = speakers_report(checked.speakers, checked.roles)
    report.engines = [{"name": e.name, "version": e.version} for e in checked.engines.values()]
    url, configured = resolve_base_url(checked.podcast, options.base_url)
    report.base_url = url
    from narration.publishing.feed import first_build_day, load_lock

    # a broken narrate.lock refuses before output/ is touched
    recorded = first_build_day(load_lock(project.lock_file))
    show = resolve_show(checked, recorded, warn)
    cover = prepared_cover(project, checked.podcast, checked.book, warn)
    if cluster is None:
        cluster = _cluster(project, options, checked, started, stack)
    workers = started.workers
    if cluster is not None:
        for pool in workers:  # podcast.yaml names a scheduler: these are not needed
            pool.close()
        workers = []
        cluster.prepare(dict(checked.engines), warn)
    return BuildRun(
        checked=checked,
        show=show,
        recorded=recorded,
        cover=cover,
        base_url=url,
        base_url_configured=configured,
        report=report,
        stage=stage,
        jobs=options.jobs,
        workers=workers,
        cluster=cluster,
        m4b=checked.podcast.m4b if options.m4b is None else options.m4b,
        readalong=checked.podcast.readalong if options.readalong is None else options.readalong,
        quiet=options.quiet,
        warn=warn,
        idle=started.unchanged,
    )


def _cluster(
    project: Project,
    options: BuildOptions,
    checked: Checked,
    started: _Started,
    stack: contextlib.ExitStack,
) -> Cluster | None:
    """The cluster the build renders on: the one connected to early, unless podcast.yaml
    names another than $DASK_SCHEDULER_ADDRESS (it wins); None to render here."""
    podcast = checked.podcast
    address = options.scheduler or podcast.scheduler or os.environ.get(SCHEDULER_ENV)
    if not address:
        return None
    from narration.cluster import Cluster

    source, unset = scheduler_source(options.scheduler, podcast, project)
    if started.connecting is not None and started.given == address.strip():
        return stack.enter_context(started.connecting.result())
    return stack.enter_context(Cluster.connect(address.strip(), given=source, unset=unset))


def _advise(run: BuildRun, say: Say, warn: Say) -> None:
    """What the user may want to set, once the build is done."""
    project, podcast = run.checked.project, run.checked.podcast
    if run.base_url_configured and not podcast.owner_email:
        warn(
            f"{project.podcast_file.name}: no owner_email; Apple Podcasts and other directories "
            "ask for the owner's email (itunes:owner) to verify the show"
        )
    if not run.base_url_configured:
        say(
            f"No base URL configured: the feed points at {run.base_url} (`{narrate()} serve`). "
            "Set base_url in podcast.yaml or pass --base-url to publish elsewhere."
        )


def _build_locked(run: BuildRun) -> None:
    """The build's work under the project's lock, phase by phase."""
    project = run.checked.project
    from narration.pipeline.workspace import adopt_legacy

    moved = adopt_legacy(project.root)
    if moved:
        run.warn(
            f"moved {', '.join(moved)}: output/ holds only the show now (git-ignore .narrate/)"
        )
    remove_leftovers([project.output, project.state, project.state / PIECES_DIR], project.lock_file)
    chapters = Chapters(run)
    grouped, episodes = chapters.build()
    book = _audiobook(run, chapters.show, episodes)
    ebook = _readalong(run, chapters.show, grouped, episodes)
    with run.stage("feed"):
        chapters.publish(episodes, book=book, ebook=ebook)
        # Only now that the feed and page no longer name them: a build killed before this
        # point leaves a feed whose every file is still there.
        kept = [b.path for b in (book, ebook) if b is not None]
        remove_stale(project.output, episodes, kept, chapters.books_before)
    for chapter, ep in zip(grouped, episodes, strict=True):
        run.report.chapters.append(chapter_entry(chapter, ep))
    data = json.dumps(run.report.to_json(), indent=2, ensure_ascii=False) + "\n"
    write_atomic(project.output / REPORT_FILE, data.encode("utf-8"))


def _audiobook(run: BuildRun, show: Show, episodes: list[AssembledEpisode]) -> Audiobook | None:
    """The whole book as one M4B, when asked."""
    if not run.m4b:
        return None
    from narration.assembly import assemble_audiobook

    project = run.checked.project
    with run.stage("audiobook"):
        book = assemble_audiobook(
            episodes,
            show=show,
            bitrate=run.checked.voices.audio.bitrate,
            path=audiobook_file(project.output, show.title),
            state_dir=project.state,
        )
    run.report.audiobook = {
        "file": book.path.name,
        "seconds": book.seconds,
        "size": book.size,
        "chapters": len(book.marks),
        "written": book.written,
    }
    return book


def _readalong(
    run: BuildRun, show: Show, grouped: Grouped, episodes: list[AssembledEpisode]
) -> ReadAlong | None:
    """The read-along EPUB, when asked."""
    if not run.readalong:
        return None
    from narration.assembly import assemble_readalong

    project = run.checked.project
    with run.stage("read-along"):
        ebook = assemble_readalong(
            [chapter.cast for chapter in grouped],
            episodes,
            texts=run.checked.book.texts,
            show=show,
            modified=run.recorded,
            path=readalong_file(project.output, show.title),
            state_dir=project.state,
        )
    run.report.readalong = {
        "file": ebook.path.name,
        "size": ebook.size,
        "chapters": ebook.chapters,
        "cues": ebook.cues,
        "speech_seconds": ebook.seconds,
        "written": ebook.written,
    }
    return ebook


__all__ = [
    "BuildOptions",
    "BuildReport",
    "Checked",
    "NarrateError",
    "build_project",
    "check_project",
]

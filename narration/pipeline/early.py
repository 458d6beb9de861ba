"""What a build starts before its checks, so their start-up runs beside them: synthesis
workers, a cluster's connection and its engines, assembly's modules. Each is only a
guess about where to spend start-up time, never about what to build."""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from narration.layout import (
    REPORT_FILE,
    SCHEDULER_ENV,
)
from narration.pipeline.project import Project
from narration.processes import fork_server

# The stages' modules are imported where they are used (see build.py).
if TYPE_CHECKING:
    from narration.cluster import Cluster
    from narration.config import PodcastConfig
    from narration.synthesis.workers import WorkerPool


def scheduler_source(
    flag: str | None, podcast: PodcastConfig | None, project: Project
) -> tuple[str, str]:
    """Where the scheduler's address came from, and how a user stops using it."""
    if flag:
        return "--scheduler", "build without --scheduler"
    if podcast is not None and podcast.scheduler:
        name = project.podcast_file.name
        return f"{name}: scheduler", f"remove scheduler from {name}"
    return f"${SCHEDULER_ENV}", f"unset {SCHEDULER_ENV}"


def connect_early(
    address: str, flag: str | None, project: Project, stack: contextlib.ExitStack
) -> Future[Cluster]:
    """Connect to the scheduler in a thread while the checks run; the build takes the
    outcome (a cluster, or the one-line error) before it writes anything."""
    from narration.cluster import Cluster

    def connect() -> Cluster:
        given, unset = scheduler_source(flag, None, project)
        found = Cluster.connect(address, given=given, unset=unset)
        load_early(found, project)
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


def load_early(cluster: Cluster, project: Project) -> None:
    """Start loading the engines voices.yaml names on the cluster's workers."""
    from narration.config import engines_named

    with contextlib.suppress(Exception):  # unreadable: the checks say why
        cluster.start_loading(list(engines_named(project.voices_file)))


def early_workers(project: Project, jobs: int | None) -> list[WorkerPool]:
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


def unchanged_since_last_build(project: Project) -> bool:
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


def preload_assembly() -> None:
    """Assembly's modules and native libraries, loaded while the workers render, so they
    are off the path to the first chapter's assembly; and the server that assembly's
    processes are forked from, started with them loaded (each process inherits them).
    Nobody reads its outcome: if a library cannot load, assembly's own import of it fails
    with the error."""
    from narration import assembly  # noqa: F401 - loading it is the point
    from narration.assembly.audio import preload

    preload()
    fork_server()

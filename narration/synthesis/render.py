"""`synthesize`: one verified WAV per Line, rendered in parallel, cached by content, never
twice.

What is not cached is rendered on worker processes (workers.py), one pool per engine (a
book may mix them), one worker per core, or on a cluster (remote.py). A clip is verified
(clips.py) before it enters the cache (cache.py); a bad one is rendered again, and after
`retries` more attempts the build stops with a SynthesisError naming the segment, the voice
and the text: a build never ships a silent gap.
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Protocol

from narration.errors import SynthesisError
from narration.model import Clip, Voice
from narration.processes import cores, keep_running
from narration.progress import Work
from narration.synthesis import workers as _workers  # its WorkerPool, looked up when used
from narration.synthesis.cache import ClipCache
from narration.synthesis.clips import check_clip, clip_key
from narration.synthesis.engines import Engine
from narration.synthesis.jobs import (
    ClipJob,
    Engines,
    Job,
    Todo,
    engine_for,
    failure,
    longest_first,
    normalize,
    retried,
)
from narration.synthesis.remote import RemoteRenderer, render_remote
from narration.synthesis.workers import (
    ClipTask,
    EngineFailed,
    Failed,
    RenderResult,
    Worker,
    WorkerPool,
    engine_failed,
)


class ProgressFn(Protocol):
    """progress(done, cached, total, work): unique clips, and the characters they hold."""

    def __call__(self, done: int, cached: int, total: int, work: Work, /) -> None: ...


def synthesize(
    jobs_in: Sequence[Job],
    *,
    engine: Engines,
    cache: ClipCache,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    retries: int = 3,
    on_retry: Callable[[str], None] | None = None,
    workers: WorkerPool | Sequence[WorkerPool] | None = None,
    cluster: RemoteRenderer | None = None,
    on_group: Callable[[int, list[Clip]], None] | None = None,
) -> list[Clip]:
    """One verified Clip per (Line, Voice[, segment id]), in order; renders only what's missing.

    `engine` renders every voice, or maps engine names to engines and each voice is rendered
    by its own (`Voice.engine`); the engines' workers render side by side.
    Identical lines (same key) are rendered once: the first occurrence carries
    `rendered=True`, the others `rendered=False`, so counting `rendered` counts renders.
    `jobs` worker processes per engine (default: one per core, never more than clips to
    render); `retries` re-renders after a failed attempt; `progress(done, cached, total,
    work)` counts unique clips and the characters they speak; `on_retry(message)` hears about
    clips that needed more than one attempt. `workers`, pools started earlier with the same
    cache, are used for their engines instead of new ones (and `jobs` and `retries` are
    theirs); the caller closes them.
    `cluster` renders the missing clips elsewhere (narration/cluster/: a Dask cluster);
    they come back here, are checked as a fresh render is, and cached.
    Jobs are rendered group by group (ClipJob.group: a chapter), the longest first within
    each; `on_group(group, clips)` hears of each group as soon as all its clips are there
    (in its jobs' order; called from this thread), so a caller can go on with a chapter
    while later ones render.
    """
    items = normalize(jobs_in)
    _refuse_silence(items)
    renderers = [engine_for(engine, job.voice) for job in items]
    keys = [
        clip_key(job.line.spoken, job.voice, eng) for job, eng in zip(items, renderers, strict=True)
    ]
    tally = _Tally(items, keys, progress, on_group)
    todo = tally.look_up(cache, renderers)
    tally.start()
    if todo and cluster is not None:
        render_remote(todo, cache, cluster, tally.finished, on_retry)
    elif todo:
        given = list(workers) if isinstance(workers, list | tuple) else [workers] if workers else []
        _render_all(todo, cache, jobs, retries, tally.finished, on_retry, given)
    return tally.result()


def _refuse_silence(items: Sequence[ClipJob]) -> None:
    """SynthesisError for a job whose clip would be a silent gap."""
    for job in items:
        if job.voice.volume <= 0:
            raise SynthesisError(
                f"segment {job.label}: voice '{job.voice.name}' has volume {job.voice.volume}: "
                "its clips would be silent gaps (set a volume above 0 in voices.yaml)"
            )
        if not job.line.spoken.strip():
            raise SynthesisError(
                f"segment {job.label}: nothing to say for {job.line.text!r} "
                f"(voice '{job.voice.name}'; did the lexicon remove every word?)"
            )


class _Tally:
    """The clips of one `synthesize` call as they come: each unique key's clip, the
    progress reported, and each group handed on (`on_group`) once all its clips are there."""

    def __init__(
        self,
        items: Sequence[ClipJob],
        keys: Sequence[str],
        progress: ProgressFn | None,
        on_group: Callable[[int, list[Clip]], None] | None,
    ) -> None:
        self.items, self.keys = items, keys
        self.progress, self.on_group = progress, on_group
        self.first: dict[str, int] = {}  # each key's first job
        for i, key in enumerate(keys):
            self.first.setdefault(key, i)
        self.clips: dict[str, Clip] = {}
        self.weight = {key: len(items[i].line.spoken) for key, i in self.first.items()}
        self.members: dict[int, list[int]] = {}  # each group's jobs
        for i, job in enumerate(items):
            self.members.setdefault(job.group, []).append(i)
        self.missing: dict[int, set[str]] = {}  # each group's clips still to come
        self.waiting: dict[str, list[int]] = {}  # the groups waiting on each clip
        self.cached = self.chars_cached = self.chars_done = 0

    def look_up(self, cache: ClipCache, renderers: Sequence[Engine]) -> Todo:
        """Take what the cache holds; the rest to render, by engine."""
        todo: dict[str, tuple[Engine, list[tuple[ClipTask, ClipJob]]]] = {}
        for n, (key, i) in enumerate(self.first.items()):
            eng, line, voice = renderers[i], self.items[i].line, self.items[i].voice
            hit = cache.get(key, functools.partial(_verify, eng, line.spoken, voice))
            if hit is not None:
                self.clips[key] = hit
            else:
                group = todo.setdefault(eng.name, (eng, []))[1]
                group.append((ClipTask(n, key, line.spoken, voice), self.items[i]))
        return todo

    def start(self) -> None:
        """Report what the cache held, and hand on the groups it holds whole."""
        self.cached = len(self.clips)
        self.chars_cached = self.chars_done = sum(self.weight[key] for key in self.clips)
        self._report()
        for g, indices in self.members.items():
            self.missing[g] = {self.keys[i] for i in indices if self.keys[i] not in self.clips}
            for key in self.missing[g]:
                self.waiting.setdefault(key, []).append(g)
        for g in sorted(self.members):
            if not self.missing[g]:
                self._ready(g)

    def finished(self, task: ClipTask, clip: Clip) -> None:
        """A clip rendered: reported, and the groups it completes handed on."""
        if task.key not in self.clips:
            self.chars_done += self.weight[task.key]
        self.clips[task.key] = clip
        self._report()
        for g in self.waiting.pop(task.key, ()):
            self.missing[g].discard(task.key)
            if not self.missing[g]:
                self._ready(g)

    def result(self) -> list[Clip]:
        """Every job's clip, in order."""
        return [self._clip(i) for i in range(len(self.items))]

    def _clip(self, i: int) -> Clip:
        clip = self.clips[self.keys[i]]
        return clip if self.first[self.keys[i]] == i else replace(clip, rendered=False)

    def _report(self) -> None:
        if self.progress:
            chars = sum(self.weight.values())
            work = Work(self.chars_done, self.chars_cached, chars)
            self.progress(len(self.clips), self.cached, len(self.first), work)

    def _ready(self, g: int) -> None:
        if self.on_group is not None:
            self.on_group(g, [self._clip(i) for i in self.members[g]])


def _verify(engine: Engine, spoken: str, voice: Voice, path: Path) -> None:
    """The check a fresh render passes, for a cached clip that has no digest yet."""
    check_clip(path, spoken, engine.words_per_minute(voice), engine.sample_rate)


def _render_all(
    todo: Todo,
    cache: ClipCache,
    jobs: int | None,
    retries: int,
    finished: Callable[[ClipTask, Clip], None],
    on_retry: Callable[[str], None] | None,
    given: Sequence[WorkerPool] = (),
) -> None:
    """Feed each engine's tasks to its workers, two in flight each (one rendering, one
    queued: a worker never waits for us), in `longest_first` order; stop at the first
    failed clip. Pools are taken from `given`, or started here (and stopped)."""
    cache.ensure()
    for pool in given:
        if Path(pool.cache_root) != Path(cache.root):
            raise ValueError(f"workers started for {pool.cache_root}, not for {cache.root}")
    pending: dict[str, deque[ClipTask]] = {}
    owner: dict[int, tuple[ClipTask, ClipJob]] = {}
    started: list[WorkerPool] = []
    workers: dict[Connection, tuple[Worker, str]] = {}  # by their results: and their engine
    try:
        for name, (engine, group) in todo.items():
            order = sorted(group, key=lambda p, e=engine: (*longest_first(e, *p), p[0].index))
            pending[name] = deque(task for task, _ in order)
            owner.update((task.index, (task, job)) for task, job in group)
            pool = next((p for p in given if p.engine_name == name), None)
            if pool is None:
                size = max(1, min(jobs or cores(), len(group)))
                pool = _workers.WorkerPool(engine, cache, size, retries)
                started.append(pool)
            pool.used = True
            workers.update((w.results, (w, name)) for w in pool.workers)

        def take(conn: Connection) -> ClipTask | None:
            queue = pending[workers[conn][1]]
            return queue.popleft() if queue else None

        def start(conn: Connection, task: ClipTask) -> None:
            with contextlib.suppress(BrokenPipeError):  # a dead worker: its recv says so
                workers[conn][0].tasks.send(task)

        def finish(conn: Connection, sent: ClipTask) -> None:
            worker, name = workers[conn]
            result = _receive(worker, name, owner[sent.index][1])
            task, job = owner[result.index]
            if isinstance(result, Failed):
                raise failure(job, result.attempts, result.problems)
            if result.problems and on_retry:
                on_retry(retried(job, result.attempts, result.problems))
            hit = cache.get(task.key, just_made=True)
            if hit is None:  # removed or broken between the worker's rename and now
                raise failure(job, result.attempts, ["clip vanished from the cache"])
            finished(task, replace(hit, rendered=True))

        keep_running(list(workers), take, start, _ready, finish, depth=2)
    finally:
        for pool in started:
            pool.close()


def _ready(busy: list[Connection]) -> list[Connection]:
    """The workers among `busy` that have sent a result (or died), once one has."""
    return [conn for conn in wait(busy) if isinstance(conn, Connection)]


def _receive(worker: Worker, engine: str, job: ClipJob) -> RenderResult:
    """What a worker says of the oldest clip it was sent (`job`'s); SynthesisError when it
    died, or its engine could not start."""
    try:
        message = worker.results.recv()
    except (EOFError, OSError):
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.proc.wait(timeout=1)
        why = f"synthesis worker died (exit code {worker.proc.returncode})"
        raise failure(job, 1, [why]) from None
    if isinstance(message, EngineFailed):
        raise engine_failed(engine, message.why)
    return message  # type: ignore[no-any-return]

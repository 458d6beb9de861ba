"""Clips rendered elsewhere (narration/cluster/: a Dask cluster), behind `RemoteRenderer`:
each comes back as a `RemoteClip`, is checked to be the bytes its worker verified, and is
cached here as a local worker's clip is."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from narration.errors import OutputError
from narration.model import Clip
from narration.synthesis.cache import ClipCache
from narration.synthesis.engines import Engine
from narration.synthesis.jobs import ClipJob, Todo, failure, longest_first, retried
from narration.synthesis.workers import ClipTask


@dataclass(frozen=True)
class RemoteClip:
    """A clip rendered elsewhere, as it comes back: the WAV's bytes and the sha256 its
    worker took of the clip it checked (both None when it failed), after `attempts`, the
    failed ones' `problems` in order."""

    task: ClipTask
    ok: bool
    wav: bytes | None
    digest: str | None
    attempts: int
    problems: tuple[str, ...]


@dataclass(frozen=True)
class RemoteTask:
    """A clip to render elsewhere: the engine (by name) and the task a local worker would
    be given."""

    engine: str
    task: ClipTask


class RemoteRenderer(Protocol):
    """Where clips can be rendered besides this machine's workers: `render` takes tasks
    and yields each one's RemoteClip as it finishes."""

    def render(self, tasks: Sequence[RemoteTask]) -> Iterator[RemoteClip]: ...


def render_remote(
    todo: Todo,
    cache: ClipCache,
    cluster: RemoteRenderer,
    finished: Callable[[ClipTask, Clip], None],
    on_retry: Callable[[str], None] | None,
) -> None:
    """The clips rendered by `cluster` (each checked by the worker's pool that rendered it,
    as a local worker checks its own), verified to be the bytes it checked and put in the
    cache; stop at the first that fails."""
    cache.ensure()
    owner: dict[int, tuple[Engine, ClipJob]] = {}
    tasks: list[RemoteTask] = []
    for name, (engine, group) in todo.items():
        for task, job in group:
            owner[task.index] = (engine, job)
            tasks.append(RemoteTask(name, task))
    # group by group, the longest first within each, as locally: the last to finish are short
    tasks.sort(key=lambda r: longest_first(owner[r.task.index][0], r.task, owner[r.task.index][1]))
    for result in cluster.render(tasks):
        task = result.task
        job = owner[task.index][1]
        if not result.ok or result.wav is None:
            raise failure(job, result.attempts, result.problems)
        clip = _cached(cache, task, job, result)
        if result.problems and on_retry:
            on_retry(retried(job, result.attempts, result.problems))
        finished(task, replace(clip, rendered=True))


def _cached(cache: ClipCache, task: ClipTask, job: ClipJob, result: RemoteClip) -> Clip:
    """The clip's bytes put in the cache, once they are found to be those its worker
    checked."""
    assert result.wav is not None
    tmp = cache.temp_path(task.key)
    try:
        try:
            tmp.write_bytes(result.wav)
        except OSError as exc:
            raise OutputError(f"{tmp}: cannot write to the clip cache ({exc.strerror})") from None
        if hashlib.sha256(result.wav).hexdigest() != result.digest:
            why = "the clip the cluster sent is not the one its worker checked"
            raise failure(job, result.attempts, [why])
        return cache.put(task.key, tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

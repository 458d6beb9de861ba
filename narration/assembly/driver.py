"""Where assembly's tasks run: this process, a pool of processes forked for the build (each
dying with it), or a cluster beside them (`Offload`); chapters arriving from synthesis
as their clips are ready (`Arrivals`)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from narration.assembly import audio as sig
from narration.assembly.chapter import ChapterWork, Task
from narration.assembly.levelling import Mix
from narration.assembly.mp3 import Encoded
from narration.assembly.state import (
    AssembledEpisode,
)
from narration.assembly.timeline import Piece
from narration.errors import OutputError
from narration.model import Clip
from narration.processes import fork_server


def _processes() -> tuple[Any, tuple[int, int]]:
    """The multiprocessing context to start assembly's processes with, and the arguments
    of their initializer: their parent's pid (0: the fork server's) and the build's.

    They are forked from the build when it runs no other thread (they inherit what it
    loaded), else from the fork server (`narration.processes`)."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork"), (os.getpid(), os.getpid())
    return fork_server(), (0, os.getpid())


def _pool_worker(parent: int, build: int) -> None:
    """A pool process dies with the build instead of waiting for work forever, holding its
    memory, when the build is killed: on Linux the kernel kills a forked one with its
    parent, and a fork server's child watches the build (the server lives while any of
    its children does). Ctrl-C and a closed terminal are the build's to handle (SIGTERM is
    not ignored: the executor ends a broken pool with it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sig.preload()
    if not parent:
        threading.Thread(target=_watch, args=(build,), daemon=True).start()
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own end is all there is
        return
    if os.getppid() != parent:  # the build died before prctl took effect
        os._exit(1)


def _watch(build: int) -> None:
    """End this process when the build is gone (it was killed: nobody will end us)."""
    while True:
        try:
            os.kill(build, 0)
        except ProcessLookupError:
            os._exit(1)
        except OSError:  # alive, another user's: cannot happen for our parent's pid
            pass
        time.sleep(0.25)


_PR_SET_PDEATHSIG = 1


class Offload(Protocol):
    """Somewhere else pieces can be encoded (narration/cluster/: a Dask cluster): `slots`
    pieces at once, each given back as the Encoded that `encode_piece` gives, its MP3 at
    `mix.piece_path(index)` here."""

    slots: int

    def encode_piece(self, mix: Mix, index: int, piece: Piece) -> Future[Encoded]: ...

    def cancel(self) -> None:
        """Stop what it still has to do (the build failed or was interrupted)."""


class Arrivals:
    """Chapters handed to assembly as their clips are ready, from another thread (the
    build's synthesis): `put` each (its index in the book and its clips, grouped as
    `assemble_book` takes them), then `close`, with the error that stopped the producer if
    one did (assembly raises it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[tuple[int, Sequence[Sequence[Clip]]]] = deque()
        self._signal: Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None

    def put(self, index: int, clips: Sequence[Sequence[Clip]]) -> None:
        with self._lock:
            self._items.append((index, clips))
            self._wake()

    def close(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._closed, self._error = True, error
            self._wake()

    def _wake(self) -> None:
        if self._signal is not None and not self._signal.done():
            self._signal.set_result(None)
        self._signal = None

    def take(self) -> list[tuple[int, Sequence[Sequence[Clip]]]]:
        """What has arrived since the last call (raising the producer's error, if any)."""
        with self._lock:
            if self._error is not None:
                raise self._error
            items = list(self._items)
            self._items.clear()
            return items

    def signal(self) -> Future[None]:
        """A future done when something arrives or the producer closes (at once if so)."""
        with self._lock:
            future: Future[None] = Future()
            if self._items or self._closed:
                future.set_result(None)
            else:
                self._signal = future
            return future

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._closed and not self._items


def drive(
    waiting: deque[ChapterWork],
    jobs: int,
    progress: Callable[[AssembledEpisode], None] | None,
    offload: Offload | None = None,
    arrive: Callable[[], list[ChapterWork]] | None = None,
    arrivals: Arrivals | None = None,
) -> list[ChapterWork]:
    """Drive the chapters' tasks to the end, in this process (jobs == 1) or on `jobs`
    processes, never more tasks in flight than processes; with `offload`, pieces are also
    encoded there, up to its slots. With `arrivals`, chapters keep coming (`arrive` turns
    what arrived into work) until it is closed. Returns every work it drove.

    Ready pieces of chapters already started go first, oldest chapter first, and a new
    chapter is planned only when no piece is waiting: the processes stay busy (a long
    chapter's pieces are spread over all of them) while at most a few chapters' timelines
    exist at once, whatever the book's length. `progress` hears of each chapter as soon as
    its files are written.
    """
    works = list(waiting)
    active: list[ChapterWork] = []
    ready: dict[int, deque[Task]] = {}

    def admit() -> None:
        if arrive is not None:
            new = arrive()
            waiting.extend(new)
            works.extend(new)

    def next_task() -> Task | None:
        for work in active:
            if ready[id(work)]:
                return ready[id(work)].popleft()
        if waiting:
            work = waiting.popleft()
            active.append(work)
            ready[id(work)] = deque(work.start())
            return ready[id(work)].popleft()
        return None

    heard: set[int] = set()

    def finish(task: Task, result: Any) -> None:
        work = task.work
        ready[id(work)].extend(task.then(result))
        # heard of as soon as its files are written (its AAC for the audiobook may follow),
        # so a build publishing as it goes lists it without waiting for that
        if work.made is not None and id(work) not in heard:
            heard.add(id(work))
            if progress:
                progress(work.made)
        if work.episode is not None:
            active.remove(work)

    def more_to_come() -> bool:
        return arrivals is not None and not arrivals.finished

    held: deque[Task] = deque()  # taken in order, waiting for a free slot
    remote: set[Future[Any]] = set()

    def submit(pool: ProcessPoolExecutor, inflight: dict[Future[Any], Task]) -> None:
        """Send tasks in order while a slot is free for the next one."""
        while (task := held.popleft() if held else next_task()) is not None:
            job = task.piece
            if offload is not None and job is not None and len(remote) < offload.slots:
                future = offload.encode_piece(job.mix, job.index, job.piece)
                remote.add(future)
            elif len(inflight) - len(remote) < jobs:
                future = pool.submit(task.run, task.arg)
            else:
                held.appendleft(task)
                return
            inflight[future] = task

    try:
        admit()
        if jobs <= 1 and offload is None:
            while True:
                task = next_task()
                if task is not None:
                    finish(task, task.run(task.arg))
                elif more_to_come():
                    assert arrivals is not None
                    arrivals.signal().result()
                else:
                    break
                admit()
            return works
        context, parent = _processes()
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_pool_worker, initargs=parent
        ) as pool:
            inflight: dict[Future[Any], Task] = {}
            try:
                while True:
                    submit(pool, inflight)
                    if not inflight and not more_to_come():
                        admit()  # the last arrivals, taken after the producer closed
                        if not waiting:
                            break
                        continue
                    watch: set[Future[Any]] = set(inflight)
                    if more_to_come():
                        assert arrivals is not None
                        watch.add(arrivals.signal())
                    done, _ = wait(watch, return_when=FIRST_COMPLETED)
                    for future in [f for f in inflight if f in done]:  # in order sent
                        task = inflight.pop(future)
                        remote.discard(future)
                        finish(task, future.result())
                    admit()
            except BrokenProcessPool:
                raise OutputError(
                    f"{task.work.mp3}: a process assembling it died "
                    "(out of memory?); build again with --jobs 1"
                ) from None
            finally:
                for future in inflight:
                    future.cancel()
                if offload is not None and inflight:
                    offload.cancel()
    finally:
        for work in works:
            work.cleanup()
    return works


def cores() -> int:
    """Cores this process may use (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1

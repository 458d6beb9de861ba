"""Where assembly's tasks run: this process, a pool of processes forked for the build (each
dying with it), or a cluster beside them (`Offload`); chapters arriving from synthesis
as their clips are ready (`Arrivals`)."""

from __future__ import annotations

import ctypes
import itertools
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
from narration.processes import fork_server, keep_running


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
    tasks = _Tasks(waiting, progress, arrive, arrivals)
    try:
        tasks.admit()
        if jobs <= 1 and offload is None:
            _here(tasks)
        else:
            _on_processes(tasks, jobs, offload)
    finally:
        for work in tasks.works:
            work.cleanup()
    return tasks.works


class _Tasks:
    """The chapters' tasks in the order they are to run, and what each result makes ready."""

    def __init__(
        self,
        waiting: deque[ChapterWork],
        progress: Callable[[AssembledEpisode], None] | None,
        arrive: Callable[[], list[ChapterWork]] | None,
        arrivals: Arrivals | None,
    ) -> None:
        self.waiting, self.progress, self.arrive, self.arrivals = (
            waiting,
            progress,
            arrive,
            arrivals,
        )
        self.works = list(waiting)
        self.active: list[ChapterWork] = []
        self.ready: dict[int, deque[Task]] = {}
        self.heard: set[int] = set()
        self.held: deque[Task] = deque()  # taken in order, waiting for a slot that takes it

    def admit(self) -> None:
        """Chapters whose clips have arrived, as work."""
        if self.arrive is not None:
            new = self.arrive()
            self.waiting.extend(new)
            self.works.extend(new)

    def take(self) -> Task | None:
        """The next task: one held back, else a ready one of the oldest chapter started,
        else the first of a new chapter's (its plan); None when none is ready now."""
        if self.held:
            return self.held.popleft()
        self.admit()  # after the results before it were finished, as their chapters want
        for work in self.active:
            if self.ready[id(work)]:
                return self.ready[id(work)].popleft()
        if self.waiting:
            work = self.waiting.popleft()
            self.active.append(work)
            self.ready[id(work)] = deque(work.start())
            return self.ready[id(work)].popleft()
        return None

    def finish(self, task: Task, result: Any) -> None:
        """A task's result: the tasks it makes ready; its chapter heard of as soon as its
        files are written (its AAC for the audiobook may follow), so a build publishing
        as it goes lists it without waiting for that."""
        work = task.work
        self.ready[id(work)].extend(task.then(result))
        if work.made is not None and id(work) not in self.heard:
            self.heard.add(id(work))
            if self.progress:
                self.progress(work.made)
        if work.episode is not None:
            self.active.remove(work)

    def coming(self) -> bool:
        """Whether more chapters may still arrive."""
        return self.arrivals is not None and not self.arrivals.finished

    def more(self) -> bool:
        """Nothing is running: wait for chapters to arrive, if more may; whether there is
        work again."""
        if self.coming():
            assert self.arrivals is not None
            self.arrivals.signal().result()
            self.admit()
            return True
        self.admit()  # the last arrivals, taken after the producer closed
        return bool(self.waiting)


def _here(tasks: _Tasks) -> None:
    """Every task in this process, one after the other."""
    results: dict[str, Any] = {}

    def start(slot: str, task: Task) -> None:
        results[slot] = task.run(task.arg)

    def ready(busy: list[str]) -> list[str]:
        return busy

    def finish(slot: str, task: Task) -> None:
        tasks.finish(task, results.pop(slot))

    keep_running(["here"], lambda _: tasks.take(), start, ready, finish, more=tasks.more)


def died(task: Task) -> OutputError:
    """A process of the pool died (the kernel killed it for memory, most likely)."""
    return OutputError(
        f"{task.work.mp3}: a process assembling it died (out of memory?); build again with --jobs 1"
    )


def _on_processes(tasks: _Tasks, jobs: int, offload: Offload | None) -> None:
    """Every task on `jobs` processes forked for the build; pieces also on `offload`'s
    slots, which are filled first. Results are taken in the order their tasks were sent."""
    remote = [("there", k) for k in range(offload.slots if offload is not None else 0)]
    slots = [*remote, *(("here", k) for k in range(jobs))]
    futures: dict[tuple[str, int], Future[Any]] = {}
    sent: dict[tuple[str, int], int] = {}  # the order tasks were sent in
    order = itertools.count()

    def take(slot: tuple[str, int]) -> Task | None:
        task = tasks.take()
        if task is not None and slot[0] == "there" and task.piece is None:
            tasks.held.appendleft(task)  # not a piece: for this machine's processes
            return None
        return task

    def start(slot: tuple[str, int], task: Task) -> None:
        job = task.piece
        if slot[0] == "there" and offload is not None and job is not None:
            futures[slot] = offload.encode_piece(job.mix, job.index, job.piece)
        else:
            try:
                futures[slot] = pool.submit(task.run, task.arg)
            except BrokenProcessPool:
                raise died(task) from None
        sent[slot] = next(order)

    def ready(busy: list[tuple[str, int]]) -> list[tuple[str, int]]:
        watch: set[Future[Any]] = {futures[slot] for slot in busy}
        if tasks.coming():
            assert tasks.arrivals is not None
            watch.add(tasks.arrivals.signal())
        wait(watch, return_when=FIRST_COMPLETED)
        done = sorted((slot for slot in busy if futures[slot].done()), key=sent.__getitem__)
        if not done:  # woken by arrivals, with no result to finish first: take them now
            tasks.admit()  # (else the signal stays set while every slot is busy: a spin)
        return done

    def finish(slot: tuple[str, int], task: Task) -> None:
        try:
            result = futures.pop(slot).result()
        except BrokenProcessPool:
            raise died(task) from None
        tasks.finish(task, result)

    context, parent = _processes()
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_pool_worker, initargs=parent
    ) as pool:
        try:
            keep_running(slots, take, start, ready, finish, more=tasks.more)
        finally:
            for future in futures.values():
                future.cancel()
            if offload is not None and futures:
                offload.cancel()

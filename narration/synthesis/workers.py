"""The synthesis workers: clean processes, each with an engine loaded and warmed, that
render, verify and cache one clip at a time.

espeak-ng keeps state from one utterance to the next, so each of its workers forks a child
per clip: every clip starts from the same state, and a build gives the same bytes whatever
the order, the number of workers, or what was rendered before. An engine that needs no fork
(Kokoro) renders in the worker itself, with the cores split between the workers as threads.
A bad clip is rendered again, up to the retries; what a worker says of each clip is a
`Rendered` or a `Failed` (pickled back through a pipe).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from narration.errors import OutputError, SynthesisError
from narration.model import Voice
from narration.processes import cores
from narration.synthesis.cache import ClipCache
from narration.synthesis.clips import ClipProblem, check_clip
from narration.synthesis.engines import Engine, Unrecoverable

CLIP_TIMEOUT = 120  # seconds one child may spend on one utterance before it is killed
WORKER_NICE = 5  # workers yield to the build's process (its checks) when cores are short


@dataclass(frozen=True)
class ClipTask:
    """One clip to render: its place among the build's unique clips, cache key, text, voice."""

    index: int  # position in the list of unique clips
    key: str
    text: str
    voice: Voice


@dataclass(frozen=True)
class Rendered:
    """A clip a worker rendered, verified and put in its cache: `frames` long, after
    `attempts` attempts, the failed ones' `problems` in order."""

    index: int  # the task's
    frames: int
    attempts: int
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failed:
    """A clip a worker gave up on after `attempts`, each one's problem in order."""

    index: int  # the task's
    attempts: int
    problems: tuple[str, ...] = ()


#: What a worker says of each clip it was given.
RenderResult = Rendered | Failed


@dataclass(frozen=True)
class EngineFailed:
    """What a worker says, instead of any clip, when its engine could not start."""

    why: str


_PERMANENT = 3  # child exit code: the voice does not exist, retrying cannot help


@functools.lru_cache(maxsize=1)
def _libc_fork() -> Callable[[], int] | None:
    """The C library's fork(), called with the GIL held (PyDLL); None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fork = ctypes.PyDLL(None, use_errno=True).fork
    except (OSError, AttributeError):
        return None
    fork.restype, fork.argtypes = ctypes.c_int, []
    return fork  # type: ignore[no-any-return]


def _fork() -> int:
    """fork() for a child that renders one clip and leaves with os._exit.

    os.fork() also readies the child to live on as a Python process (it re-initialises the
    interpreter's thread state and locks and runs every at-fork hook, such as reseeding
    `random`): in a child forked per clip that costs about 1 ms of CPU and 200 copied
    pages, as much as espeak-ng spends on a short sentence. None of it matters to a child
    that makes a few calls on the one thread it has and exits, so a worker with no other
    thread forks through the C library; with any other thread (an engine may start one),
    os.fork() it is. An error is raised as OSError, as os.fork() would.
    """
    fork = _libc_fork()
    try:
        alone = fork is not None and len(os.listdir("/proc/self/task")) == 1
    except OSError:
        alone = False
    if not alone or fork is None:
        return os.fork()
    pid = fork()
    if pid < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return pid


def _render_in_child(engine: Engine, text: str, voice: Voice, path: Path) -> tuple[int, str]:
    """Fork a child of this (warmed) process to render one clip; (exit code, message)."""
    read_end, write_end = os.pipe()
    try:
        pid = _fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # child: from here on, only os._exit
        code = 1
        try:
            os.close(read_end)
            signal.alarm(CLIP_TIMEOUT)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)  # the driver's "Audio saved to ..." and any C chatter
            os.dup2(write_end, 2)  # espeak-ng's complaints become the error message
            engine.render(text, voice, path)
            code = 0
        except Unrecoverable as exc:
            os.write(write_end, str(exc).encode("utf-8", "replace"))
            code = _PERMANENT
        except BaseException as exc:
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace"))
        finally:
            os._exit(code)
    os.close(write_end)
    message = b""
    with os.fdopen(read_end, "rb") as pipe:
        for chunk in iter(lambda: pipe.read(65536), b""):
            message = (message + chunk)[-4000:]
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), message.decode("utf-8", "replace").strip()


def _render_here(engine: Engine, text: str, voice: Voice, path: Path) -> tuple[int, str]:
    """Render one clip in this worker (an engine that needs no fork); (exit code, message)
    as _render_in_child gives them."""
    try:
        engine.render(text, voice, path)
    except Unrecoverable as exc:
        return _PERMANENT, str(exc)
    except Exception as exc:
        return 1, f"{type(exc).__name__}: {exc}"
    return 0, ""


def _describe_exit(code: int, message: str) -> str:
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        if -code == signal.SIGALRM:
            return f"the engine did not finish within {CLIP_TIMEOUT} s"
        return f"the engine crashed ({sig})"
    return message.splitlines()[-1] if message else f"the engine failed (exit code {code})"


def _render_task(engine: Engine, cache: ClipCache, task: ClipTask, retries: int) -> RenderResult:
    """Render, verify and cache one clip, with up to `retries` fresh attempts after the first."""
    problems: list[str] = []
    for attempt in range(1, retries + 2):
        tmp = cache.temp_path(task.key, attempt)
        try:
            render = _render_in_child if engine.fork_per_clip else _render_here
            code, message = render(engine, task.text, task.voice, tmp)
            if code == 0:
                try:
                    pace = engine.words_per_minute(task.voice)
                    check_clip(tmp, task.text, pace, engine.sample_rate)
                    clip = cache.put(task.key, tmp)
                    return Rendered(task.index, clip.frames, attempt, tuple(problems))
                except ClipProblem as exc:
                    problems.append(str(exc))
            else:
                problems.append(_describe_exit(code, message))
                if code == _PERMANENT:
                    break
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return Failed(task.index, attempt, tuple(problems))


def _worker_main(task_fd: int, result_fd: int) -> None:
    """A worker process: warm the engine once, then render each task (in a forked child when
    the engine asks for one).

    Started by WorkerPool as `python -c` with two pipe descriptors: tasks come in on one (first
    the caller's sys.path, then the engine, the cache folder, the retries and the engine's
    threads), results go out on the other. Its stdout is not the channel, so nothing an
    engine prints can corrupt it.
    """
    # A worker may fork per clip: keep an engine's numpy (FakeEngine) from starting threads.
    # (Kokoro's onnxruntime sets its own thread count.)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    # the parent handles Ctrl-C and a closed terminal, and stops us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A build starts us beside its own checks: they go first while both want a core.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(WORKER_NICE)
    tasks = Connection(task_fd, writable=False)
    results = Connection(result_fd, readable=False)
    try:
        # the caller's import path first, so an engine class defined in its script unpickles
        sys.path[:] = [*tasks.recv(), *(p for p in sys.path if p)]
        engine, cache_root, retries, threads = tasks.recv()
        engine.warm_up(threads)
    except BaseException as exc:
        why = str(exc) if isinstance(exc, SynthesisError) else f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            results.send(EngineFailed(why))
        return
    cache = ClipCache(Path(cache_root))
    while True:
        try:
            task = tasks.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            result = _render_task(engine, cache, task, retries)
        except (OutputError, OSError) as exc:  # e.g. the cache's disk is full
            result = Failed(task.index, 1, (str(exc),))
        try:
            results.send(result)
        except OSError:
            return


@dataclass
class Worker:
    """One worker process and the pipes to it."""

    proc: subprocess.Popen[bytes]
    tasks: Connection  # we send
    results: Connection  # we receive


class WorkerPool:
    """Synthesis worker processes of one engine, each with the engine loaded and warmed,
    started fresh so no engine state leaks in from the caller.

    Plain `python -c` subprocesses rather than multiprocessing's spawn, which would run the
    caller's main script again in each worker (a trap for unguarded scripts). Starting one
    takes about 0.2 s (an interpreter, this module, the engine's warm-up), so a build starts
    them before its checks and hands them to `synthesize`: their start-up overlaps the
    checks. They start with Ctrl-C ignored (the build handles it and stops them), so one
    pressed while they load prints no traceback of theirs. A context manager; a pool that
    was never given a clip is killed on the way out rather than waited for.

    An engine that renders in the worker itself (Kokoro) gets the cores split between the
    workers as its threads: two workers of one thread on two cores, or one of two with -j 1.
    """

    def __init__(
        self,
        engine: Engine,
        cache: ClipCache,
        size: int | None = None,
        retries: int = 3,
        *,
        threads: int | None = None,
    ) -> None:
        # the folder holding this narrate's `narration` package, so the workers import it
        package_parent = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        self.engine_name = engine.name
        self.engine_version = ""  # its engine's version, where a caller keeps it
        self.cache_root = cache.root
        self.used = False
        self.workers: list[Worker] = []
        self._lock = threading.Lock()
        self._free: deque[Worker] | None = None
        self._ready: threading.Semaphore | None = None
        count = max(1, size or cores())
        threads = max(1, threads or cores() // count)
        try:
            for _ in range(count):
                task_r, task_w = os.pipe()
                result_r, result_w = os.pipe()
                code = (
                    "import sys; from narration.synthesis.workers import _worker_main; "
                    "_worker_main(int(sys.argv[1]), int(sys.argv[2]))"
                )
                try:
                    with _sigint_ignored():
                        proc = subprocess.Popen(
                            [sys.executable, "-c", code, str(task_r), str(result_w)],
                            pass_fds=(task_r, result_w),
                            stdin=subprocess.DEVNULL,
                            env=env,
                        )
                finally:
                    os.close(task_r)
                    os.close(result_w)
                worker = Worker(
                    proc, Connection(task_w, readable=False), Connection(result_r, writable=False)
                )
                self.workers.append(worker)
                with contextlib.suppress(BrokenPipeError):  # died at start: seen at recv
                    worker.tasks.send([p for p in sys.path if p])
                    worker.tasks.send((engine, str(cache.root), max(0, retries), threads))
        except BaseException:
            self.close()
            raise

    def render_one(self, task: ClipTask) -> RenderResult:
        """Render one clip on a free worker and wait for it: for callers that are workers
        themselves (a Dask worker's threads, narration/cluster/), one task per thread.
        A Rendered clip is then in this pool's cache."""
        with self._lock:
            if self._free is None:
                self._free = deque(self.workers)
                self._ready = threading.Semaphore(len(self.workers))
        assert self._ready is not None
        with self._ready:
            with self._lock:
                worker = self._free.popleft()
            try:
                worker.tasks.send(task)
                message = worker.results.recv()
            except (EOFError, OSError):
                code = worker.proc.poll()
                return Failed(task.index, 1, (f"synthesis worker died (exit code {code})",))
            finally:
                with self._lock:
                    self._free.append(worker)
        if isinstance(message, EngineFailed):
            raise engine_failed(self.engine_name, message.why)
        return message  # type: ignore[no-any-return]

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers: each first finishes the clips it was sent (at most two, within
        5 s); a pool that was never sent one is killed at once."""
        for worker in self.workers:
            if not self.used:
                with contextlib.suppress(OSError):
                    worker.proc.kill()
            with contextlib.suppress(OSError, ValueError):
                worker.tasks.send(None)
            worker.tasks.close()
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            worker.results.close()
        self.workers = []


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while a worker is started (from the main thread; signal dispositions
    belong to it): the worker inherits that, so Ctrl-C cannot interrupt it mid-import."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def engine_failed(name: str, why: str) -> SynthesisError:
    """A worker's engine that could not start: no clip of it can be rendered."""
    return SynthesisError(f"engine '{name}' could not start: {why}")

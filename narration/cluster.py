"""Synthesis on a Dask cluster: `narrate build --scheduler tcp://HOST:8786`, or `--workers N`
for a LocalCluster on this machine.

A clip is a pure function of its text, voice, engine and model, so clips spread over a
cluster as Dask tasks. Each Dask worker loads the build's engines once, through a worker
plugin, into a narrate WorkerPool of its own: the same clean, warmed processes (and, for
espeak-ng, the same fork per clip) a local build renders in, so a clip rendered on any
worker has the bytes a local build gives it. The clip's WAV comes back to this process,
which checks it and puts it in the cache as a local build does; a rebuild sends only the
clips the cache does not hold.

Before a build sends anything, every worker says which engine versions it loaded. A worker
that lacks one of the build's engines, or has another version of it (another espeak-ng,
onnxruntime or model), is refused, named in a warning, and sent nothing: its clips would
be other bytes. A worker killed mid-build loses nothing: the scheduler runs its tasks on
another worker. Ctrl-C cancels the build's tasks on the cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engines import Engine, get_engine
from .errors import SynthesisError
from .synth import ClipCache, ClipTask, WorkerPool

#: The plugin's name on every worker; tasks find their engines under it.
PLUGIN = "narrate-engines"
#: How long connecting to a scheduler may take before the build says it is unreachable.
CONNECT_TIMEOUT = "10s"
#: How long a build waits for at least one worker to join.
WORKER_WAIT = 30.0


class ClusterError(SynthesisError):
    """The cluster cannot be used: unreachable, no worker, or no worker with the engines."""


def distributed_missing() -> str | None:
    """Why Dask distributed cannot be used here, or None."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return "Dask distributed is not installed: pip install -e '.[dask]'"
    return None


try:  # the plugin's base class, where the [dask] extra is installed
    from distributed.diagnostics.plugin import WorkerPlugin as _PluginBase
except ImportError:  # pragma: no cover - Cluster.connect says what to install
    _PluginBase = object  # type: ignore[assignment,misc]


class EnginePlugin(_PluginBase):  # type: ignore[misc,valid-type]
    """Loads the build's engines once on each worker, each in a narrate WorkerPool of the
    worker's thread count, with a clip cache in the worker's own directory (clips leave it
    as soon as they are sent back)."""

    name = PLUGIN

    def __init__(self, engines: Sequence[str], threads: int | None, retries: int) -> None:
        self.engines = list(engines)
        self.threads = threads
        self.retries = retries
        self.pools: dict[str, WorkerPool] = {}
        self.versions: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self.cache: ClipCache | None = None
        self.root: str | None = None

    def setup(self, worker: Any) -> None:
        self.root = tempfile.mkdtemp(prefix="narrate-clips-", dir=worker.local_directory)
        self.cache = ClipCache(Path(self.root))
        size = max(1, int(getattr(worker.state, "nthreads", 1) or 1))
        for name in self.engines:
            try:
                engine = get_engine(name)
                check = getattr(engine, "check_model", None)
                if callable(check):
                    check()
                pool = WorkerPool(engine, self.cache, size, self.retries, threads=self.threads)
            except Exception as exc:  # the engine is missing or broken here: say so
                self.problems[name] = str(exc).splitlines()[0] if str(exc) else repr(exc)
                continue
            self.pools[name] = pool
            self.versions[name] = engine.version
            pool.used = True

    def teardown(self, worker: Any) -> None:
        for pool in self.pools.values():
            pool.close()
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)


def _versions(dask_worker: Any) -> dict[str, Any]:
    """On a worker (Client.run hands it over): the versions of the engines its plugin
    loaded, and its problems."""
    plugin = dask_worker.plugins.get(PLUGIN)
    if plugin is None:
        return {"versions": {}, "problems": {"*": "the narrate plugin is not loaded"}}
    return {"versions": dict(plugin.versions), "problems": dict(plugin.problems)}


def _render(name: str, version: str, task: ClipTask) -> tuple[Any, ...]:
    """On a worker: render one clip; ("ok", wav bytes, attempts, problems) or
    ("failed", None, attempts, problems)."""
    from distributed import get_worker

    plugin: EnginePlugin = get_worker().plugins[PLUGIN]
    if plugin.versions.get(name) != version:  # the build checked; a restarted worker may differ
        raise SynthesisError(f"this worker has {name} {plugin.versions.get(name)}, not {version}")
    assert plugin.cache is not None
    message = plugin.pools[name].render_one(task)
    status, attempts, problems = message[0], message[-2], message[-1]
    if status != "ok":
        return ("failed", None, attempts, problems)
    wav = plugin.cache.path_for(task.key)
    try:
        data = wav.read_bytes()
    finally:
        plugin.cache.discard(task.key)
    return ("ok", data, attempts, problems)


@dataclass(frozen=True)
class RemoteResult:
    """A clip rendered on the cluster, as this process receives it."""

    task: ClipTask
    ok: bool
    wav: bytes | None
    attempts: int
    problems: list[str]


class Cluster:
    """A connection to a Dask scheduler (or a LocalCluster it started), with the build's
    engines loaded on its workers: what `synthesize` renders on when given one."""

    def __init__(self, client: Any, local: Any | None, address: str) -> None:
        self.client = client
        self.local = local
        self.address = address
        self.workers: list[str] = []
        self.refused: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.wanted: tuple[dict[str, Engine], Callable[[str], None], int] | None = None
        self.loaded: list[str] | None = None  # the engines the workers have, once loaded

    @classmethod
    def connect(cls, address: str | None = None, *, workers: int | None = None) -> Cluster:
        """Connect to the scheduler at `address`, or start a LocalCluster of `workers`
        processes on 127.0.0.1; ClusterError in one line when that cannot be done."""
        why = distributed_missing()
        if why:
            raise ClusterError(why)
        from distributed import Client, LocalCluster

        local = None
        try:
            if address is None:
                local = LocalCluster(
                    n_workers=max(1, workers or 1),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=50,
                )
                address = local.scheduler_address
                client = Client(local, timeout=CONNECT_TIMEOUT)
            else:
                client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            if local is not None:
                local.close()
            where = address or "a local cluster"
            raise ClusterError(
                f"{where}: no Dask scheduler could be reached ({_one_line(exc)}); start one "
                "with `dask scheduler`, or build without --scheduler"
            ) from None
        return cls(client, local, str(address))

    def prepare(
        self, engines: dict[str, Engine], warn: Callable[[str], None], retries: int = 3
    ) -> None:
        """The engines a build renders with: loaded on the workers when it first has clips
        to render (a build that has none loads nothing)."""
        self.wanted = (dict(engines), warn, retries)

    def _load(self) -> None:
        """Load the engines on every worker; keep the workers whose versions match ours."""
        assert self.wanted is not None, "prepare() first"
        engines, warn, retries = self.wanted
        if self.loaded == sorted(engines) and self.workers:
            return
        threads = None
        if self.local is not None:  # this machine's cores, shared by its workers
            count = max(1, len(self.local.workers))
            threads = max(1, (len(os.sched_getaffinity(0)) or 1) // count)
        self.versions = {name: e.version for name, e in engines.items()}
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise ClusterError(
                f"{self.address}: no worker joined within {WORKER_WAIT:.0f} s; start one with "
                f"`dask worker {self.address}`"
            ) from None
        self.client.register_plugin(EnginePlugin(list(engines), threads, retries), name=PLUGIN)
        self.loaded = sorted(engines)
        reported = self.client.run(_versions)
        self.workers, self.refused = usable_workers(self.versions, reported)
        for address, why in sorted(self.refused.items()):
            warn(f"worker {address}: refused, {why}; it is sent no clips")
        if not self.workers:
            raise ClusterError(
                f"{self.address}: no worker has the engines this build renders with "
                f"({', '.join(f'{n} {v}' for n, v in self.versions.items())}): "
                + "; ".join(f"{a}: {w}" for a, w in sorted(self.refused.items()))
            )

    def render(self, tasks: Sequence[tuple[str, ClipTask]]) -> Iterator[RemoteResult]:
        """Each (engine name, task) rendered on the cluster's usable workers, as they finish.
        Leaving early (an error, Ctrl-C) cancels what is left."""
        from distributed import as_completed

        self._load()
        futures = {}
        for name, task in tasks:
            future = self.client.submit(
                _render,
                name,
                self.versions[name],
                task,
                key=f"narrate-clip-{task.key}-{task.index}",
                workers=self.workers,
                pure=False,
            )
            futures[future] = task
        try:
            for future in as_completed(futures):
                task = futures[future]
                try:
                    status, data, attempts, problems = future.result()
                except Exception as exc:  # a task that failed on every worker it was given
                    raise SynthesisError(
                        f"clip {task.key[:12]}: the cluster could not render it ({_one_line(exc)})"
                    ) from None
                yield RemoteResult(task, status == "ok", data, attempts, list(problems))
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                with contextlib.suppress(Exception):
                    self.client.cancel(pending)

    def size(self) -> int:
        """Workers that render: those kept once the engines are loaded, else all connected."""
        if self.loaded is not None:
            return len(self.workers)
        try:
            return len(self.client.scheduler_info().get("workers", {}))
        except Exception:  # only a count for messages
            return 0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.local is not None:
            with contextlib.suppress(Exception):
                self.local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def usable_workers(
    versions: dict[str, str], reported: dict[str, dict[str, Any]]
) -> tuple[list[str], dict[str, str]]:
    """Which workers have every engine at the build's version: (their addresses, and
    {address: why} for the others)."""
    good, refused = [], {}
    for address, facts in sorted(reported.items()):
        have, problems = facts.get("versions", {}), facts.get("problems", {})
        for name, version in versions.items():
            if name not in have:
                why = problems.get(name) or problems.get("*") or "not installed"
                refused[address] = f"it has no {name} engine ({why})"
                break
            if have[name] != version:
                refused[address] = f"it has {name} {have[name]}, this build {version}"
                break
        else:
            good.append(address)
    return good, refused


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

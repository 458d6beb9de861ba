"""Synthesis and MP3 encoding on a Dask cluster: `narrate build --scheduler tcp://HOST:8786`,
or `--workers N` for a LocalCluster on this machine.

A clip is a pure function of its text, voice, engine and model, so clips spread over a
cluster as Dask tasks. Each Dask worker loads the build's engines once, through a worker
plugin, into a narrate WorkerPool of its own: the same clean, warmed processes (and, for
espeak-ng, the same fork per clip) a local build renders in, so a clip rendered on any
worker has the bytes a local build gives it. The clip's WAV comes back to this process,
which verifies it arrived as the worker checked it (its sha256) and puts it in the cache,
as a local build takes its workers' clips; a rebuild sends only the clips the cache does
not hold.

Chapters' pieces are encoded there too (LAME is most of assembly's work): each piece's
stretch of the timeline goes out, its MP3 stream and measurements come back, and the
chapter is checked and joined here as in a local build, beside this machine's processes.

Before a build sends anything, every worker says which engine versions it loaded, and
which versions of the MP3 encoding libraries it has. A worker
that lacks one of the build's engines, or has another version of it (another espeak-ng,
onnxruntime or model), is refused, named in a warning, and sent nothing: its clips would
be other bytes. A worker killed mid-build loses nothing: the scheduler runs its tasks on
another worker. Ctrl-C cancels the build's tasks on the cluster.

A backend, not a stage: it renders behind synthesis's `RemoteRenderer` (`Cluster.render`)
and encodes behind assembly's `Offload` (`PieceEncoder`); only the pipeline chooses it.
What runs on the workers is `worker.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from narration import __version__
from narration.assembly.levelling import Mix
from narration.assembly.mp3 import Encoded
from narration.assembly.state import FORMAT_VERSION
from narration.assembly.timeline import PIECE_CONTEXT, Piece
from narration.cluster.worker import (
    ASSEMBLY,
    EncodedPiece,
    EnginePlugin,
    WorkerFacts,
    _encode_piece,
    _has_plugin,
    _host,
    _render,
    _versions,
    assembly_version,
    resource,
)
from narration.errors import NarrateError, OutputError, SynthesisError
from narration.synthesis import RemoteClip
from narration.synthesis.engines import Engine
from narration.synthesis.remote import RemoteTask

#: The plugin's name on every worker begins so, followed by a digest of its engines' names
#: and narrate's version: builds that render with the same engines share it.
PLUGIN = "narrate-engines"
#: How long connecting to a scheduler may take before the build says it is unreachable.
CONNECT_TIMEOUT = "5s"
#: Set to "all" to send pieces to workers on this machine too (see PieceEncoder.slots).
PIECES_ENV = "NARRATE_CLUSTER_PIECES"
#: At most this many clips to a task (see Cluster.render).
BATCH = 8
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


def local_cluster(workers: int) -> Any:
    """A Dask LocalCluster on this machine: `workers` processes of one thread, listening on
    127.0.0.1 only (its HTTP server on a free port), quiet."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=50,
    )


class Cluster:
    """A connection to a Dask scheduler (or a LocalCluster it started), with the build's
    engines loaded on its workers: what `synthesize` renders on when given one."""

    def __init__(self, client: Any, local: Any | None, address: str) -> None:
        self.client = client
        self.local = local
        self.address = address
        self.workers: list[str] = []
        self.plugin = ""  # the plugin's name: one per set of engines (see start_loading)
        self.resource = ""  # the resource of this build's versions, once they are checked
        self.refused: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.wanted: tuple[dict[str, Engine], Callable[[str], None], int] | None = None
        self.loaded: list[str] | None = None  # the engines the workers have, once loaded
        self._loading: tuple[list[str], Future[dict[str, WorkerFacts]]] | None = None
        self.closed = False

    @classmethod
    def connect(
        cls,
        address: str | None = None,
        *,
        workers: int | None = None,
        given: str = "--scheduler",
        unset: str = "build without --scheduler",
    ) -> Cluster:
        """Connect to the scheduler at `address` (where it came from: `given`, and how not
        to use it: `unset`), or start a LocalCluster of `workers` processes on 127.0.0.1;
        ClusterError in one line when that cannot be done."""
        why = distributed_missing()
        if why:
            raise ClusterError(f"{given if address else '--workers'}: {why}")
        from distributed import Client

        local = None
        try:
            if address is None:
                local = local_cluster(max(1, workers or 1))
                address = local.scheduler_address
                client = Client(local, timeout=CONNECT_TIMEOUT)
            else:
                client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            if local is not None:
                local.close()
            if address is None:
                why = _one_line(exc)
                raise ClusterError(f"--workers: no local cluster started ({why})") from None
            raise ClusterError(
                f"{address}: no Dask scheduler could be reached ({_one_line(exc)}); start one "
                f"with `dask scheduler`, or {unset}"
            ) from None
        return cls(client, local, str(address))

    def start_loading(self, names: Sequence[str], retries: int = 3) -> None:
        """Load these engines on the workers in the background (a build starts it before
        its checks, as it starts its local workers): `prepare` and the first clip wait."""
        names = sorted(names)
        if self._loading is not None and self._loading[0] == names:
            return
        blob = json.dumps([names, __version__, FORMAT_VERSION]).encode()
        self.plugin = f"{PLUGIN}-{hashlib.sha256(blob).hexdigest()[:12]}"
        result: Future[dict[str, WorkerFacts]] = Future()
        self._loading = (names, result)

        def load() -> None:
            try:
                result.set_result(self._register(names, retries))
            except BaseException as exc:  # raised where the build waits for it
                result.set_exception(exc)

        threading.Thread(target=load, name="narrate-cluster-load", daemon=True).start()

    def _register(self, names: list[str], retries: int) -> dict[str, WorkerFacts]:
        """Register the plugin for `names` on every worker; what each reports."""
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise ClusterError(
                f"{self.address}: no worker joined within {WORKER_WAIT:.0f} s; start one with "
                f"`dask worker {self.address}`"
            ) from None
        # each host's cores are shared by the threads of all its workers (an engine that
        # renders in the worker, Kokoro, gets its share as its own threads)
        sharing: dict[str, int] = {}
        for info in self.client.scheduler_info().get("workers", {}).values():
            host = str(info.get("host", ""))
            sharing[host] = sharing.get(host, 0) + int(info.get("nthreads", 1) or 1)
        # Engines stay loaded on the workers for the next build that uses the same ones:
        # registered again, a plugin is set up again on every worker (and one that is
        # rendering for another build would lose its pools), so only where it is missing.
        loaded = self.client.run(_has_plugin, self.plugin)
        if not loaded or not all(loaded.values()):
            plugin = EnginePlugin(self.plugin, names, sharing, retries)
            self.client.register_plugin(plugin, name=self.plugin)
        return self.client.run(_versions, self.plugin)  # type: ignore[no-any-return]

    def prepare(
        self, engines: dict[str, Engine], warn: Callable[[str], None], retries: int = 3
    ) -> None:
        """The engines a build renders with (loaded on the workers unless `start_loading`
        already is loading them); the workers are checked against them before the first
        clip is sent."""
        self.wanted = (dict(engines), warn, retries)
        self.start_loading(list(engines), retries)

    def _load(self) -> None:
        """Wait for the engines to be loaded; keep the workers whose versions match ours."""
        assert self.wanted is not None and self._loading is not None, "prepare() first"
        engines, warn, _ = self.wanted
        if self.loaded == sorted(engines):
            return
        reported = self._loading[1].result()
        self.versions = {name: e.version for name, e in engines.items()}
        self.versions[ASSEMBLY] = assembly_version()
        self.loaded = sorted(engines)
        self.workers, self.refused = usable_workers(self.versions, reported)
        self.resource = resource(self.versions)
        for address, why in sorted(self.refused.items()):
            warn(f"worker {address}: refused, {why}; it is sent no clips")
        if not self.workers:
            raise ClusterError(
                f"{self.address}: no worker has the engines this build renders with "
                f"({', '.join(f'{n} {v}' for n, v in self.versions.items())}): "
                + "; ".join(f"{a}: {w}" for a, w in sorted(self.refused.items()))
            )

    def render(self, tasks: Sequence[RemoteTask]) -> Iterator[RemoteClip]:
        """Each task rendered on the cluster's usable workers, as they finish.
        Leaving early (an error, Ctrl-C) cancels what is left."""
        from distributed import as_completed

        self._load()
        # Clips go in small batches: a Dask task costs a few milliseconds, as much as an
        # espeak-ng clip, so one each would cost a third of their rendering. Batches stay
        # small enough (4 a worker thread at least) for the last ones to end together.
        size = max(1, min(BATCH, len(tasks) // (4 * max(1, self.threads()))))
        futures = {}
        for at in range(0, len(tasks), size):
            batch = list(tasks[at : at + size])
            future = self.client.submit(
                _render,
                self.plugin,
                {item.engine: self.versions[item.engine] for item in batch},
                batch,
                key=f"narrate-clips-{batch[0].task.key}-{batch[0].task.index}",
                resources={self.resource: 1},
                pure=False,
            )
            futures[future] = [item.task for item in batch]
        try:
            # results gathered in the background as tasks finish, not one round trip each
            for future, result in as_completed(futures, with_results=True, raise_errors=False):
                batch = futures[future]
                if future.status != "finished":  # failed on every worker it was given
                    exc = result[1] if isinstance(result, tuple) else result
                    raise SynthesisError(
                        f"clip {batch[0].key[:12]}: the cluster could not render it "
                        f"({_one_line(exc)})"
                    )
                yield from result
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                with contextlib.suppress(Exception):
                    self.client.cancel(pending)

    def encoder(self) -> PieceEncoder | None:
        """Where assembly can encode pieces: on the workers that render (loaded when the
        first piece is sent: a build with nothing to encode sends nothing). None for a
        LocalCluster the build started: its workers share this machine's cores with the
        build's own processes, which encode the pieces anyway."""
        return PieceEncoder(self) if self.local is None else None

    def threads(self, *, elsewhere: bool = False) -> int:
        """Threads of the usable workers: the tasks they run at once (with `elsewhere`,
        only those of workers on other machines than this one)."""
        self._load()
        counts = self.client.nthreads()
        here = _this_machine() if elsewhere else set()
        return sum(counts.get(w, 1) for w in self.workers if _host(w) not in here)

    def size(self) -> int:
        """Workers that render: those kept once the engines are loaded, else all connected."""
        if self.loaded is not None:
            return len(self.workers)
        try:
            return len(self.client.scheduler_info().get("workers", {}))
        except Exception:  # only a count for messages
            return 0

    def close(self) -> None:
        """Disconnect (the engines stay loaded on the workers, for the next build)."""
        if self.closed:
            return
        self.closed = True
        if self._loading is not None:
            with contextlib.suppress(Exception):
                self._loading[1].result(timeout=WORKER_WAIT)
        with contextlib.suppress(Exception):
            self.client.close()
        if self.local is not None:
            with contextlib.suppress(Exception):
                self.local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PieceEncoder:
    """Chapter pieces encoded to MP3 on the cluster (assemble_book's `offload`): each
    piece's stretch of the timeline goes out, its MP3 and measurements come back and are
    written where a local process would have put them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.futures: set[Any] = set()
        self.sent = 0  # pieces sent, for build.json
        self._slots: int | None = None

    @property
    def slots(self) -> int:
        """Pieces sent at once: one per thread of the workers on other machines. Workers on
        this one share its cores with the build's own processes, which encode pieces anyway
        (NARRATE_CLUSTER_PIECES=all sends pieces to them too: the tests use it)."""
        if self._slots is None:
            everywhere = os.environ.get(PIECES_ENV, "").strip().lower() == "all"
            hosts = {_host(w) for w in self.cluster.client.scheduler_info()["workers"]}
            if everywhere or hosts - _this_machine():  # else no need to load the engines
                self._slots = self.cluster.threads(elsewhere=not everywhere)
            else:
                self._slots = 0
        return self._slots

    def encode_piece(self, mix: Mix, index: int, piece: Piece) -> Future[Encoded]:
        import numpy as np

        from narration.assembly.audio import RATE, Limiter

        # what a local process reads: the context, and the limiter's margin beyond it
        margin = Limiter(RATE, mix.ceiling_db).margin
        lo = max(0, piece.start - PIECE_CONTEXT - margin)
        hi = min(mix.total, piece.end + PIECE_CONTEXT + margin)
        timeline = np.memmap(mix.timeline, dtype=np.int16, mode="r", shape=(mix.total,))
        samples = timeline[lo:hi].tobytes()
        del timeline
        remote = self.cluster.client.submit(
            _encode_piece,
            mix,
            index,
            piece,
            lo,
            samples,
            key=f"narrate-piece-{uuid.uuid4().hex}",
            resources={self.cluster.resource: 1},
            pure=False,
        )
        self.futures.add(remote)
        self.sent += 1
        out: Future[Encoded] = Future()

        def arrived(done: Any) -> None:
            self.futures.discard(done)
            if not out.set_running_or_notify_cancel():  # the build stopped waiting for it
                return
            try:
                came: EncodedPiece = done.result()
                path = mix.piece_path(index)
                path.write_bytes(came.mp3)
            except NarrateError as exc:  # the worker's own message, naming the MP3
                out.set_exception(exc)
            except OSError as exc:
                out.set_exception(OutputError(f"{mix.final}: {exc.strerror or exc}"))
            except BaseException as exc:  # lost with the scheduler, or killed on every try
                out.set_exception(
                    ClusterError(
                        f"{mix.final}: the cluster at {self.cluster.address} could not encode "
                        f"a piece of it ({_one_line(exc) or type(exc).__name__})"
                    )
                )
            else:
                out.set_result(replace(came.encoded, mp3=path))

        remote.add_done_callback(arrived)
        return out

    def cancel(self) -> None:
        with contextlib.suppress(Exception):
            self.cluster.client.cancel(list(self.futures))


def _this_machine() -> set[str]:
    """The addresses and names this machine goes by."""
    import socket

    names = {"127.0.0.1", "::1", "localhost", socket.gethostname(), socket.getfqdn()}
    with contextlib.suppress(ImportError, OSError):
        import psutil

        for addresses in psutil.net_if_addrs().values():
            names.update(a.address.split("%")[0] for a in addresses)
    return names


def usable_workers(
    versions: dict[str, str], reported: dict[str, WorkerFacts]
) -> tuple[list[str], dict[str, str]]:
    """Which workers have every engine at the build's version: (their addresses, and
    {address: why} for the others)."""
    good, refused = [], {}
    for address, facts in sorted(reported.items()):
        have, problems = facts.versions, facts.problems
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

"""What runs on a Dask worker for a build: the plugin that loads the build's engines into
a narrate WorkerPool of the worker's own, the versions it reports, and the tasks the build
sends (a batch of clips to render, a piece of a chapter to encode)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from narration import __version__
from narration.assembly.levelling import Mix
from narration.assembly.mp3 import Encoded, PieceJob, encode_piece
from narration.assembly.state import FORMAT_VERSION, versions
from narration.assembly.timeline import Piece
from narration.errors import OutputError, SynthesisError
from narration.processes import cores
from narration.synthesis import (
    ClipCache,
    ClipTask,
    Failed,
    RemoteClip,
    RenderResult,
    WorkerPool,
)
from narration.synthesis.engines import get_engine
from narration.synthesis.remote import RemoteTask

try:  # the plugin's base class, where the [dask] extra is installed
    from distributed.diagnostics.plugin import WorkerPlugin as _PluginBase
except ImportError:  # pragma: no cover - Cluster.connect says what to install
    _PluginBase = object  # type: ignore[assignment,misc]


class EnginePlugin(_PluginBase):  # type: ignore[misc,valid-type]
    """Loads the build's engines once on each worker, each in a narrate WorkerPool of the
    worker's thread count, with a clip cache in the worker's own directory (clips leave it
    as soon as they are sent back).

    A worker whose engines loaded gets a resource named after their versions (and the MP3
    encoding libraries'): the build's tasks ask for the resource of its own versions, so
    only workers that give the same bytes run them, including workers that join or are
    restarted later (the scheduler sets them up with the plugin too)."""

    def __init__(
        self, name: str, engines: Sequence[str], sharing: dict[str, int], retries: int
    ) -> None:
        self.name = name
        self.engines = list(engines)
        self.sharing = dict(sharing)  # host -> the threads of all its workers
        self.threads = 1
        self.retries = retries
        self.pools: dict[str, WorkerPool] = {}
        self.versions: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self.cache: ClipCache | None = None
        self.root: str | None = None
        self.size = 1

    async def setup(self, worker: Any) -> None:
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, self._load, worker)
        if not self.problems:
            await worker.set_resources(**{resource(self.versions): self.size})

    def _load(self, worker: Any) -> None:
        self.root = tempfile.mkdtemp(prefix="narrate-clips-", dir=worker.local_directory)
        self.cache = ClipCache(Path(self.root))
        self.size = max(1, int(getattr(worker.state, "nthreads", 1) or 1))
        share = max(self.size, self.sharing.get(_host(str(worker.address)), 0))
        self.threads = max(1, cores() // share)
        for name in self.engines:
            try:
                self.pools[name] = self._pool(name)
            except Exception as exc:  # the engine is missing or broken here: say so
                self.problems[name] = str(exc).splitlines()[0] if str(exc) else repr(exc)
                continue
            self.versions[name] = self.pools[name].engine_version
        self.versions[ASSEMBLY] = assembly_version()

    def _pool(self, name: str) -> WorkerPool:
        assert self.cache is not None
        engine = get_engine(name)
        engine.check_model()
        pool = WorkerPool(engine, self.cache, self.size, self.retries, threads=self.threads)
        pool.engine_version = engine.version
        pool.used = True
        return pool

    def render(self, name: str, task: ClipTask) -> RenderResult:
        """One clip on this worker's pool; a pool whose process died (the kernel's OOM
        killer, say) is started again once and the clip rendered on the new one."""
        result = self.pools[name].render_one(task)
        if isinstance(result, Failed) and any("worker died" in p for p in result.problems):
            self.pools[name].close()
            self.pools[name] = self._pool(name)
            result = self.pools[name].render_one(task)
        return result

    def teardown(self, worker: Any) -> None:
        for pool in self.pools.values():
            pool.close()
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)


def _has_plugin(name: str, dask_worker: Any) -> bool:
    """On a worker: whether the plugin `name` is set up there."""
    return name in dask_worker.plugins


@dataclass(frozen=True)
class WorkerFacts:
    """What a worker says it loaded: each engine's version (and the MP3 encoding
    libraries'), and why an engine could not load, by name ("*": the plugin itself)."""

    versions: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def _versions(name: str, dask_worker: Any) -> WorkerFacts:
    """On a worker (Client.run hands it over): the versions of the engines the plugin
    `name` loaded and of the MP3 encoding libraries, and its problems."""
    plugin = dask_worker.plugins.get(name)
    if plugin is None:
        return WorkerFacts(problems={"*": "the narrate plugin is not loaded"})
    return WorkerFacts(dict(plugin.versions), dict(plugin.problems))


@dataclass(frozen=True)
class EncodedPiece:
    """A piece encoded on a worker, as it comes back: its facts and its MP3's bytes."""

    encoded: Encoded  # its `mp3` path is this machine's to give
    mp3: bytes


def _encode_piece(mix: Mix, index: int, piece: Piece, lo: int, samples: bytes) -> EncodedPiece:
    """On a worker: encode one piece of a chapter from the stretch of its timeline it reads
    (its context included), as the build's own processes do.

    The stretch goes into a sparse file as long as the timeline, at its place, so the piece
    is encoded by the very code a local build runs."""
    try:
        with tempfile.TemporaryDirectory(prefix="narrate-piece-") as folder:
            timeline = Path(folder) / ".chapter.timeline.tmp0"
            with open(timeline, "wb") as fh:
                fh.truncate(2 * mix.total)
                fh.seek(2 * lo)
                fh.write(samples)
            encoded = encode_piece(PieceJob(replace(mix, timeline=timeline), index, piece))
            data = encoded.mp3.read_bytes()
    except OSError as exc:  # this worker's disk
        raise OutputError(f"{mix.final}: a worker could not encode a piece ({exc})") from None
    return EncodedPiece(replace(encoded, mp3=None), data)


def _render(
    plugin_name: str, versions: dict[str, str], batch: Sequence[RemoteTask]
) -> list[RemoteClip]:
    """On a worker: render a batch of tasks, each clip with its bytes and their sha256
    (none when it failed), with the engine at the build's version (`versions`). The clip
    was checked as every fresh render is, by the pool that rendered it."""
    from distributed import get_worker

    plugin: EnginePlugin = get_worker().plugins[plugin_name]
    assert plugin.cache is not None
    out: list[RemoteClip] = []
    for item in batch:
        name, task, version = item.engine, item.task, versions[item.engine]
        if plugin.versions.get(name) != version:  # its resource says it matches: a safety net
            have = plugin.versions.get(name)
            raise SynthesisError(f"this worker has {name} {have}, not {version}")
        result = plugin.render(name, task)
        if isinstance(result, Failed):
            out.append(RemoteClip(task, False, None, None, result.attempts, result.problems))
            continue
        wav = plugin.cache.path_for(task.key)
        try:
            data = wav.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            out.append(RemoteClip(task, True, data, digest, result.attempts, result.problems))
        finally:
            plugin.cache.discard(task.key)
    return out


#: The name the MP3 encoding libraries' versions go by among the engines'.
ASSEMBLY = "MP3 encoding"


def resource(versions: dict[str, str]) -> str:
    """The Dask resource a worker with these engine and library versions offers."""
    blob = json.dumps(sorted(versions.items())).encode()
    return f"narrate-{hashlib.sha256(blob).hexdigest()[:16]}"


def assembly_version() -> str:
    """What an MP3 piece's bytes depend on besides its samples: narrate's own assembly
    (its version and output format) and the encoding libraries."""
    libraries = ", ".join(f"{k} {v}" for k, v in sorted(versions().items()))
    return f"narrate {__version__} format {FORMAT_VERSION}; {libraries}"


def _host(address: str) -> str:
    """'tcp://10.0.0.5:40335' -> '10.0.0.5'."""
    return address.split("://")[-1].rsplit(":", 1)[0].strip("[]")

"""Synthesis on a real Dask cluster: a LocalCluster of two worker processes on 127.0.0.1,
the seeds read by the real espeak-ng engine on it, compared byte for byte with a local
build; a worker killed mid-build; an unreachable scheduler; workers with other engines.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from narration.cli import main

from .support import build, new_project, products, tree_digest

distributed = pytest.importorskip(
    "distributed", reason="the cluster tests need the dask extra: pip install -e '.[dask]'"
)

from narration import cluster  # noqa: E402


@pytest.fixture(scope="module")
def local_cluster() -> object:
    """Two worker processes of one thread, on 127.0.0.1 only."""
    with cluster.local_cluster(2) as lc:
        yield lc


@pytest.fixture(scope="module")
def reference(seeds_build: tuple[Path, dict]) -> dict[str, str]:
    """The seeds built locally, as today (the session's cold build, conftest's seeds_build):
    what every cluster build must give, byte for byte."""
    root, _ = seeds_build
    return {k: v[0] for k, v in products(root / "output").items()}


def _digests(root: Path) -> dict[str, str]:
    return {k: v[0] for k, v in products(root / "output").items()}


@pytest.mark.slow
def test_the_seeds_built_on_the_cluster_are_the_local_build_byte_for_byte(
    local_cluster: object,
    reference: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pieces go to workers on this machine too (by default only to other machines')
    monkeypatch.setenv("NARRATE_CLUSTER_PIECES", "all")
    root = new_project(tmp_path / "book")
    address = local_cluster.scheduler_address  # type: ignore[attr-defined]
    result = CliRunner().invoke(main, ["build", "-p", str(root), "--scheduler", address])
    assert result.exit_code == 0, result.output
    assert "2 workers" in result.output
    assert _digests(root) == reference
    report = json.loads((root / "output" / "build.json").read_text(encoding="utf-8"))
    assert report["cluster"]["workers"] == 2
    assert report["cluster"]["pieces"] > 0  # pieces encoded there, beside this machine
    # a rebuild sends nothing: every clip is in this machine's cache
    report = build(root, "--scheduler", address)
    assert report["totals"]["rendered"] == 0


@pytest.mark.slow
def test_a_worker_killed_mid_build_loses_nothing(
    local_cluster: object, reference: dict[str, str], tmp_path: Path
) -> None:
    """The worker rendering when the build is under way is SIGKILLed; the scheduler runs
    its clips elsewhere (the nanny starts a new worker) and the bytes are the same."""
    client = distributed.Client(local_cluster)
    try:
        pids = client.run(os.getpid)
        root = new_project(tmp_path / "book")
        address = local_cluster.scheduler_address  # type: ignore[attr-defined]
        killed: list[str] = []

        def kill_when_busy() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                for worker, keys in client.processing().items():
                    if any(str(k).startswith("narrate-clips-") for k in keys):
                        os.kill(pids[worker], signal.SIGKILL)
                        killed.append(worker)
                        return
                time.sleep(0.005)

        watcher = threading.Thread(target=kill_when_busy)
        watcher.start()
        report = build(root, "--scheduler", address)
        watcher.join()
        assert killed, "no worker was seen rendering"
        assert report["totals"]["rendered"] == 86
        assert _digests(root) == reference
        client.wait_for_workers(2, timeout=60)  # the nanny's new worker, for the next test
    finally:
        client.close()


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line_and_leaves_output_alone(tmp_path: Path) -> None:
    root = new_project(tmp_path / "book")
    build(root)
    before = tree_digest(root / "output")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    result = CliRunner().invoke(main, ["build", "-p", str(root), "--scheduler", address])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {address}: no Dask scheduler")
    assert tree_digest(root / "output") == before


def test_workers_without_the_engine_or_with_another_version_are_refused() -> None:
    versions = {"pyttsx3": "pyttsx3 2.99; espeak-ng 1.52"}
    reported = {
        "tcp://127.0.0.1:1": cluster.WorkerFacts(dict(versions), {}),
        "tcp://127.0.0.1:2": cluster.WorkerFacts({"pyttsx3": "pyttsx3 2.99; espeak-ng 1.51"}),
        "tcp://127.0.0.1:3": cluster.WorkerFacts({}, {"pyttsx3": "no libespeak-ng"}),
    }
    good, refused = cluster.usable_workers(versions, reported)
    assert good == ["tcp://127.0.0.1:1"]
    assert refused == {
        "tcp://127.0.0.1:2": "it has pyttsx3 pyttsx3 2.99; espeak-ng 1.51, "
        "this build pyttsx3 2.99; espeak-ng 1.52",
        "tcp://127.0.0.1:3": "it has no pyttsx3 engine (no libespeak-ng)",
    }


@pytest.mark.slow
def test_several_books_in_one_command_share_the_cluster_and_the_cache(
    local_cluster: object,
    reference: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one, two = new_project(tmp_path / "one"), new_project(tmp_path / "two")
    monkeypatch.setenv("NARRATE_CACHE_DIR", str(tmp_path / "clips"))
    address = local_cluster.scheduler_address  # type: ignore[attr-defined]
    args = ["build", "-p", str(one), "-p", str(two), "--scheduler", address]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("Built 2 chapters") == 2
    assert "86 clips rendered on 2 workers" in result.output  # the first book
    assert "0 clips rendered on 2 workers" in result.output  # the second: all from the cache
    assert _digests(one) == _digests(two) == reference


@pytest.mark.slow
def test_workers_starts_a_local_cluster_for_the_build(
    reference: dict[str, str], tmp_path: Path
) -> None:
    root = new_project(tmp_path / "book")
    result = CliRunner().invoke(main, ["build", "-p", str(root), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "86 clips rendered on 2 workers at tcp://127.0.0.1:" in result.output
    assert _digests(root) == reference


def _narrate_tasks(dask_scheduler: object) -> list[str]:
    return [str(k) for k in dask_scheduler.tasks if str(k).startswith("narrate-")]  # type: ignore[attr-defined]


@pytest.mark.slow
def test_ctrl_c_ends_the_build_in_one_line_and_its_tasks_on_the_cluster(
    local_cluster: object, tmp_path: Path
) -> None:
    root = new_project(tmp_path / "book")
    address = local_cluster.scheduler_address  # type: ignore[attr-defined]
    client = distributed.Client(local_cluster)
    narrate = Path(sys.executable).parent / "narrate"
    env = {**os.environ, "NARRATE_CACHE_DIR": str(tmp_path / "clips")}
    proc = subprocess.Popen(
        [str(narrate), "build", "-p", str(root), "--scheduler", address],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not client.run_on_scheduler(_narrate_tasks):
            time.sleep(0.01)
        assert client.run_on_scheduler(_narrate_tasks), "the build sent no task"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert "interrupted; the next build resumes from the cache" in err
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and client.run_on_scheduler(_narrate_tasks):
            time.sleep(0.05)
        assert client.run_on_scheduler(_narrate_tasks) == []
        assert not (root / "output" / "feed.xml").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()

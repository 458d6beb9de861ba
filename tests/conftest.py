"""Shared fixtures: book projects built in tmp_path from the repository's seeds, and the
session's real builds of them (helpers are in support.py: no test module imports another)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from .support import REPO, build, new_project, speak


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """A copy of the seeds' project (seeds/, voices.yaml, podcast.yaml) in tmp_path."""

    def make(name: str = "book", seeds: bool = True) -> Path:
        root = tmp_path / name
        root.mkdir()
        if seeds:
            shutil.copytree(REPO / "seeds", root / "seeds")
        shutil.copy(REPO / "voices.yaml", root / "voices.yaml")
        shutil.copy(REPO / "podcast.yaml", root / "podcast.yaml")
        return root

    return make


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """16-bit mono PCM at 22,050 Hz of each of support.SENTENCES, spoken by the real engine."""
    return speak(tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="session")
def seeds_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The seeds built cold (every clip rendered by espeak-ng into the project's own cache),
    once a session, and its build.json. Read-only by convention: a test that rebuilds or
    edits it works on a copy (support.copy_build), or points NARRATE_CACHE_DIR at its clips
    for a project of its own."""
    root = new_project(tmp_path_factory.mktemp("seeds") / "book")
    return root, build(root)


@pytest.fixture(scope="session")
def seeds_m4b_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The seeds built cold with the audiobook (--m4b), once a session: a build of its own,
    not seeds_build's made again with --m4b, since the tests compare the two ways. Read-only
    by convention, as seeds_build."""
    root = new_project(tmp_path_factory.mktemp("seeds-m4b") / "book")
    return root, build(root, "--m4b")

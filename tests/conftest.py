"""Shared fixtures: book projects built in tmp_path from the repository's seeds."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root with its sha256 and mtime: to prove a refused build wrote nothing."""
    if not root.exists():
        return {}
    return {
        str(
            p.relative_to(root)
        ): f"{hashlib.sha256(p.read_bytes()).hexdigest()}:{p.stat().st_mtime_ns}"
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


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

""".narrate/, what a build keeps for itself beside the show: the build lock that keeps every
other command off a running build, and the move of an older project's cache and state out
of output/ (where narrate kept them before) so that output/ is only the show.

The lock is .narrate/lock, held with filelock by the running build, its pid written in it;
`clean`, `init` over a project and a second build refuse while it is held, naming the pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from narration.errors import OutputError
from narration.layout import OUTPUT_DIR, legacy_folders, legacy_leftovers, lock_path


class BuildRunning(OutputError):
    """Another narrate build holds the project's lock."""

    def __init__(self, root: Path, doing: str) -> None:
        pid = _holder(lock_path(root))
        who = f"narrate build (pid {pid})" if pid else "narrate build"
        super().__init__(
            f"{root}: a {who} is running on this project; {doing} once it has finished"
        )


def _holder(lock: Path) -> int | None:
    """The pid the running build wrote in its lock, if it is readable."""
    try:
        text = lock.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() else None


@contextmanager
def build_lock(root: Path, doing: str) -> Iterator[None]:
    """Hold the project's lock for a build (or for what must not run beside one: `clean`);
    BuildRunning, saying what to do (`doing`), if another process holds it."""
    from filelock import FileLock, Timeout

    path = lock_path(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path.parent}: {exc.strerror or exc}") from None
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BuildRunning(root, doing) from None
    try:
        # the pid only names the build in messages
        with contextlib.suppress(OSError), open(path, "r+", encoding="ascii") as fh:
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
        yield
    finally:
        with contextlib.suppress(OSError), open(path, "r+", encoding="ascii") as fh:
            fh.truncate()
        lock.release()


def refuse_while_building(root: Path, doing: str) -> None:
    """BuildRunning if a build holds the project's lock now (a check, not a hold: for
    commands that only add files, such as `init`)."""
    if lock_path(root).is_file():
        with build_lock(root, doing):
            pass


def adopt_legacy(root: Path) -> list[str]:
    """Move what an older narrate kept in output/ (clip cache, state, previews) to its
    place in .narrate/ and remove its lock there; what was moved, for a message. Under the
    build lock. Renames, so nothing is copied or rendered again: the chapters' state and
    the clips' seals keep their files' sizes and times."""
    moved = []
    try:
        for place in legacy_folders(root):
            if place.old.is_dir() and not place.old.is_symlink():
                _merge(place.old, place.new)
                moved.append(f"{_shown(root, place.old)}/ to {_shown(root, place.new)}/")
        lock, cache = legacy_leftovers(root)
        lock.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # only if empty: anything else stays
            cache.rmdir()
    except OSError as exc:
        raise OutputError(f"{exc.filename or root / OUTPUT_DIR}: {exc.strerror or exc}") from None
    return moved


def _merge(old: Path, target: Path) -> None:
    """old/ into target/: renamed whole when target is not there, else file by file (what
    target already holds wins: the cache's keys name their content), then old/ removed."""
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(old, target)
            return
        except OSError:  # another file system ($NARRATE_CACHE_DIR): file by file
            target.mkdir(parents=True, exist_ok=True)
    for path in sorted(old.rglob("*")):
        if path.is_file() and not path.is_symlink():
            dest = target / path.relative_to(old)
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, dest)  # a rename, or a copy that keeps its times
    shutil.rmtree(old)


def _shown(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


__all__ = ["BuildRunning", "adopt_legacy", "build_lock", "refuse_while_building"]

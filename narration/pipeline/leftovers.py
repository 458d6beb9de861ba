"""What earlier builds left behind: a killed build's temporary files, and chapter files or
books that no chapter or setting asks for any more."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from narration.layout import (
    is_audiobook_file,
    is_chapter_file,
    is_readalong_file,
)
from narration.model import (
    Episode,
)


def remove_leftovers(folders: list[Path], lock_file: Path) -> None:
    """Temporary files of a build that was killed (.NAME.tmpPID beside each final name, a
    chapter's timeline and pieces in the state): under the lock no other build is writing
    them, and left alone they would be published, or fill the disk."""
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(".*.tmp*"):
                if path.is_file() and _TEMP_FILE.fullmatch(path.name):
                    path.unlink(missing_ok=True)
    for path in lock_file.parent.glob(f".{lock_file.name}.tmp*"):
        path.unlink(missing_ok=True)


_TEMP_FILE = re.compile(r"\..+\.tmp\d*")


def book_files(state: Path) -> set[str]:
    """The audiobook and read-along files earlier builds wrote, as the state records them
    (a file of that kind narrate did not write is the user's, and stays)."""
    from narration.layout import BOOK_STATES

    names = set()
    for name in BOOK_STATES:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            names.add(str(json.loads((state / name).read_text(encoding="utf-8"))["file"]))
    return names


def remove_stale(out: Path, episodes: list[Episode], books: list[Path], made: set[str]) -> None:
    """Chapter files a previous build made for chapters that no longer exist, and an
    audiobook or read-along book an earlier build made (`made`) that this one did not (the
    book's title changed, or it is off)."""
    keep = {p.name for ep in episodes for p in (ep.mp3, ep.vtt, ep.chapters_json)}
    keep.update(p.name for p in books)
    for path in out.iterdir():
        name = path.name
        book = name in made and (is_audiobook_file(name) or is_readalong_file(name))
        ours = is_chapter_file(name) or book
        if ours and path.is_file() and name not in keep:
            path.unlink()

"""The project's layout: the files a book project holds and the names of what a build
writes, in one place that every stage reads (so no stage imports another for a name).

    <project>/
      seeds/            the texts, read in file-name order
      voices.yaml       the cast
      podcast.yaml      the show (optional)
      narrate.lock      episode guids, dates and fingerprints: committed
      output/           the show, exactly what a static host serves (is_published)
        feed.xml  index.html  cover.jpg|png  build.json
        NN-<chapter>.mp3 .vtt .chapters.json
        <book>.m4b      the whole book as one audiobook (m4b: true, or --m4b)
        <book>.epub     the read-along book: text and narration in sync (readalong: true)
      .narrate/         what a build keeps for itself, git-ignored, never published
        lock            held by the running build (its pid inside)
        state/          each chapter's inputs, to skip unchanged ones (and, with the
                        audiobook on, each chapter's AAC: NN-<chapter>.aac); a chapter's
                        timeline and pieces while it is assembled (.NN-<chapter>.*.tmpPID)
          pieces/       the chapters' MP3s in pieces, by content: a rebuild encodes only
                        the pieces whose content changed (about the MP3s' size again)
        cache/clips/    rendered clips ($NARRATE_CACHE_DIR moves them)
        previews/       `narrate preview` clips

Files are written beside their final name (.NAME.tmpPID) and renamed into place; a killed
build's are removed by the next one. A project built by an older narrate kept its cache in
output/.cache/clips, its state in output/.state, its previews in output/previews and its
lock in output/.lock (LEGACY): a build moves them here.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

SEEDS_DIR = "seeds"
VOICES_FILE = "voices.yaml"
PODCAST_FILE = "podcast.yaml"
LOCK_FILE = "narrate.lock"
OUTPUT_DIR = "output"

FEED_FILE = "feed.xml"
PAGE_FILE = "index.html"
REPORT_FILE = "build.json"  # the last file a build writes
#: What a build keeps for itself, beside output/ (git-ignored), and its parts.
WORK_DIR = ".narrate"
PREVIEWS_DIR = "previews"
STATE_DIR = "state"
#: In STATE_DIR: each chapter's encoded pieces, reused by a rebuild where nothing changed.
PIECES_DIR = "pieces"
BUILD_LOCK = "lock"
CACHE_DIR = "cache/clips"
CACHE_ENV = "NARRATE_CACHE_DIR"
#: Dask's own variable for its scheduler: a build renders its clips there when it is set.
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
#: A cover in seeds/ (any letter case), and the names a build writes one under.
SEED_COVERS = ("cover.jpg", "cover.jpeg", "cover.png")
OUTPUT_COVERS = ("cover.jpg", "cover.png")

#: What a build writes for each chapter: NN-<slug> and one of these suffixes.
CHAPTER_SUFFIXES = (".mp3", ".vtt", ".chapters.json")
_CHAPTER_FILE = re.compile(r"\d{2,}-[a-z0-9-]+\.")


#: The audiobook: the whole book in one file, AAC in MP4 with chapters.
AUDIOBOOK_SUFFIX = ".m4b"
#: Beside a chapter's state: its audio encoded for the audiobook, joined into it unchanged.
CHAPTER_AAC_SUFFIX = ".aac"
#: The audiobook's own state in STATE_DIR: what it was made from.
AUDIOBOOK_STATE = "audiobook.json"
#: The read-along book: an EPUB 3 with media overlays, named as the audiobook is.
READALONG_SUFFIX = ".epub"
READALONG_STATE = "readalong.json"
#: The state folder's files that are the book's, not a chapter's.
BOOK_STATES = (AUDIOBOOK_STATE, READALONG_STATE)


def _slug(text: str, default: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-").lower() or default


def audiobook_file(out_dir: Path, title: str) -> Path:
    """output/<book-slug>.m4b, named after the show's title ("book.m4b" if it has no
    letters a file name can hold)."""
    return Path(out_dir) / f"{_slug(title, 'book')[:80].rstrip('-')}{AUDIOBOOK_SUFFIX}"


def is_audiobook_file(name: str) -> bool:
    """Whether `name` is one a build writes as the audiobook (any title's)."""
    return re.fullmatch(r"[a-z0-9-]+\.m4b", name) is not None


def readalong_file(out_dir: Path, title: str) -> Path:
    """output/<book-slug>.epub, named as the audiobook is."""
    return audiobook_file(out_dir, title).with_suffix(READALONG_SUFFIX)


def is_readalong_file(name: str) -> bool:
    """Whether `name` is one a build writes as the read-along book (any title's)."""
    return re.fullmatch(r"[a-z0-9-]+\.epub", name) is not None


def chapter_stem(number: int, total: int, chapter_id: str) -> str:
    """ASCII file stem `NN-<chapter id>`, numbered so files sort in book order."""
    width = max(2, len(str(total)))
    return f"{number:0{width}d}-{_slug(chapter_id, 'chapter')}"


def chapter_files(out_dir: Path, stem: str) -> tuple[Path, Path, Path]:
    """A chapter's MP3, WebVTT transcript and Podcasting 2.0 chapters file."""
    mp3, vtt, chapters = (Path(out_dir) / f"{stem}{suffix}" for suffix in CHAPTER_SUFFIXES)
    return mp3, vtt, chapters


def is_chapter_file(name: str) -> bool:
    """Whether `name` is one a build writes for a chapter (chapter_stem + a chapter suffix)."""
    return _CHAPTER_FILE.match(name) is not None and name.endswith(CHAPTER_SUFFIXES)


def work_dir(project_root: Path) -> Path:
    """<project>/.narrate: the cache, state, previews and lock, never published."""
    return Path(project_root) / WORK_DIR


def state_dir(project_root: Path) -> Path:
    """Each chapter's inputs and AAC, and a chapter's scratch files while it is assembled."""
    return work_dir(project_root) / STATE_DIR


def previews_dir(project_root: Path) -> Path:
    return work_dir(project_root) / PREVIEWS_DIR


def lock_path(project_root: Path) -> Path:
    """The file the running build holds locked (one build per project at a time)."""
    return work_dir(project_root) / BUILD_LOCK


def cache_dir(project_root: Path) -> Path:
    """Rendered clips: $NARRATE_CACHE_DIR if set (shared between projects), else
    <project>/.narrate/cache/clips."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return work_dir(project_root) / CACHE_DIR


@dataclass(frozen=True)
class Moved:
    """A folder an older narrate kept inside output/, and where it lives now."""

    old: Path
    new: Path


def legacy_folders(project_root: Path) -> list[Moved]:
    """Where an older narrate kept what now lives in .narrate/ (in output/): the clip
    cache, the state and the previews, for a build to move them."""
    out = Path(project_root) / OUTPUT_DIR
    return [
        Moved(out / ".cache" / "clips", cache_dir(project_root)),
        Moved(out / ".state", state_dir(project_root)),
        Moved(out / PREVIEWS_DIR, previews_dir(project_root)),
    ]


def legacy_leftovers(project_root: Path) -> tuple[Path, Path]:
    """An older narrate's build lock in output/, and the folder its cache was in (removed
    when empty once the clips have moved)."""
    out = Path(project_root) / OUTPUT_DIR
    return out / ".lock", out / ".cache"


def is_published(name: str) -> bool:
    """Whether `name` (a file directly in output/) is one a static host should serve: the
    feed, the page, the cover, build.json, a chapter's files, the audiobook or the
    read-along book. Nothing
    hidden, no folder: what a build keeps for itself is in .narrate/."""
    return (
        name in (FEED_FILE, PAGE_FILE, REPORT_FILE, *OUTPUT_COVERS)
        or is_chapter_file(name)
        or is_audiobook_file(name)
        or is_readalong_file(name)
    )

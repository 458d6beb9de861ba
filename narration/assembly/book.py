"""Driving assembly: each chapter planned, its pieces encoded wherever a process is free,
checked, and written; the book's chapters in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from narration.assembly import timeline
from narration.assembly.aac import aac_key
from narration.assembly.chapter import ChapterJob, ChapterWork
from narration.assembly.driver import Arrivals, Offload, drive
from narration.assembly.pieces import PieceStore
from narration.assembly.state import (
    AssembledEpisode,
    chapter_digest,
    cover_bytes,
    current,
    pieces_dir,
    prune_state,
)
from narration.config import AudioConfig, PausesConfig
from narration.errors import OutputError
from narration.layout import chapter_stem
from narration.model import CastChapter, ChapterClips, Clip, Show
from narration.processes import cores


def assemble_chapter(
    cast: CastChapter,
    clips: Sequence[Sequence[Clip]],
    *,
    number: int,
    total: int,
    show: Show,
    pauses: PausesConfig,
    audio: AudioConfig,
    out_dir: Path,
    state_dir: Path,
) -> AssembledEpisode:
    """One chapter's MP3, WebVTT transcript and JSON chapters in out_dir, in this process.

    clips[i][j] is the verified WAV of cast.parts[i].lines[j]. If out_dir already holds
    this chapter built from the same inputs (as state_dir remembers), nothing is encoded or
    written. The bytes are those `assemble_book` writes, whatever its number of processes.
    """
    (episode,) = assemble_book(
        [ChapterClips(cast, tuple(tuple(group) for group in clips))],
        show=show,
        pauses=pauses,
        audio=audio,
        out_dir=out_dir,
        state_dir=state_dir,
        jobs=1,
        numbering=(number, total),
    )
    return episode


def assemble_book(
    chapters: Sequence[ChapterClips],
    *,
    show: Show,
    pauses: PausesConfig,
    audio: AudioConfig,
    out_dir: Path,
    state_dir: Path,
    jobs: int | None = None,
    progress: Callable[[AssembledEpisode], None] | None = None,
    numbering: tuple[int, int] | None = None,
    m4b: bool = False,
    offload: Offload | None = None,
    arrivals: Arrivals | None = None,
) -> list[AssembledEpisode]:
    """Every chapter, in book order; unchanged chapters are kept, the others made on
    `jobs` processes (default: one per core).

    Chapters are cut at pauses into pieces (where the text chooses: `plan.cut_places`),
    encoded wherever a process is free and joined, so even a book of one long chapter keeps
    every core busy; the bytes do not depend on `jobs`. Pieces whose content an earlier
    build encoded are taken from the store (`pieces`) instead. A chapter's timeline
    (16-bit, 2.6 MB a minute) is held by the process planning it, then read from a file by
    its pieces: memory stays bounded whatever the book's length. `progress` hears of each
    chapter when it is done, kept ones first. `numbering` (number, total) places a single
    chapter in a longer book. What each chapter was made from is kept in `state_dir`
    (.narrate/state), and its timeline and pieces are written there while it is
    assembled. With `m4b`, each
    chapter's audio is also encoded to AAC for the audiobook (kept in `state_dir`, and
    only for chapters whose AAC is not already there). With `offload`, pieces
    are encoded there too (a Dask cluster), beside this machine's processes. With
    `arrivals`, a chapter given without clips (None) is assembled when they arrive there,
    while the others are: the build's synthesis hands each chapter over as it is ready.
    """
    book = _Book(chapters, show, pauses, audio, out_dir, state_dir, numbering, m4b, progress)
    if numbering is None:
        prune_state(state_dir, set(book.stems))
    given = [(k, c.clips) for k, c in enumerate(chapters) if c.clips is not None]
    todo = [(k, w) for k, clips in given if (w := book.admit(k, clips)) is not None]
    if not todo and arrivals is None:
        return book.episodes()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)  # the timelines are written there
    except OSError as exc:
        raise OutputError(f"{state_dir}: {exc.strerror or exc}") from None
    # longest first: its plan, the one step that cannot be shared, starts at once (chapters
    # arriving one by one are taken in their order)
    todo.sort(key=lambda t: (-t[1].seconds, t[0]))
    if arrivals is None:
        pieces = sum(timeline.expected_pieces(w.seconds) for _, w in todo)
        workers = max(1, min(jobs or cores(), pieces))
    else:
        workers = max(1, jobs or cores())

    def arrive() -> list[ChapterWork]:
        assert arrivals is not None
        return [
            w for k, clips in sorted(arrivals.take()) if (w := book.admit(k, clips)) is not None
        ]

    drive(
        deque(w for _, w in todo),
        workers,
        progress,
        offload,
        arrive if arrivals is not None else None,
        arrivals,
    )
    return book.episodes()


class _Book:
    """The book's chapters as assembly finds them: each kept as an earlier build made it,
    or admitted as work to do."""

    def __init__(
        self,
        chapters: Sequence[ChapterClips],
        show: Show,
        pauses: PausesConfig,
        audio: AudioConfig,
        out_dir: Path,
        state_dir: Path,
        numbering: tuple[int, int] | None,
        m4b: bool,
        progress: Callable[[AssembledEpisode], None] | None,
    ) -> None:
        self.chapters, self.show, self.pauses, self.audio = chapters, show, pauses, audio
        self.out_dir, self.state_dir, self.numbering = out_dir, state_dir, numbering
        self.m4b, self.progress = m4b, progress
        self.total = numbering[1] if numbering else len(chapters)
        self.cover = cover_bytes(show)
        self.results: list[AssembledEpisode | None] = [None] * len(chapters)
        self.stems = [
            chapter_stem(self.number(k), self.total, cast.chapter.id)
            for k, cast in enumerate(c.cast for c in chapters)
        ]
        self.made: dict[int, ChapterWork] = {}

    def number(self, k: int) -> int:
        return self.numbering[0] if self.numbering else k + 1

    def admit(self, k: int, clips: Sequence[Sequence[Clip]]) -> ChapterWork | None:
        """The chapter kept as an earlier build made it, or its work to do."""
        cast = self.chapters[k].cast
        digest = chapter_digest(
            cast,
            clips,
            number=self.number(k),
            total=self.total,
            show=self.show,
            pauses=self.pauses,
            audio_config=self.audio,
            cover=self.cover,
        )
        kept = current(self.out_dir, self.state_dir, self.stems[k], digest)
        if kept is not None and (not self.m4b or kept.aac_key == aac_key(digest)):
            self.results[k] = kept
            if self.progress:
                self.progress(kept)
            return None
        if kept is not None and not (kept.mix and kept.lead):  # made before these were kept
            kept = None
        job = ChapterJob(
            cast=cast,
            clips=clips,
            number=self.number(k),
            total=self.total,
            show=self.show,
            pauses=self.pauses,
            audio=self.audio,
            out_dir=self.out_dir,
            state_dir=self.state_dir,
            cover=self.cover,
            stem=self.stems[k],
            digest=digest,
            m4b=self.m4b,
            kept=kept,
        )
        self.made[k] = ChapterWork(job)
        return self.made[k]

    def episodes(self) -> list[AssembledEpisode]:
        """Every chapter's episode, in book order."""
        for k, work in self.made.items():
            self.results[k] = work.episode
        missing = [self.stems[k] for k, r in enumerate(self.results) if r is None]
        if missing:  # pragma: no cover - the producer closed without handing every chapter over
            raise OutputError(f"{self.out_dir / missing[0]}: its clips never arrived for assembly")
        episodes = [r for r in self.results if r is not None]
        return _pruned(episodes, self.state_dir, self.numbering)


def _pruned(
    episodes: list[AssembledEpisode], state_dir: Path, numbering: tuple[int, int] | None
) -> list[AssembledEpisode]:
    """The book's episodes, every kept piece none of them uses forgotten (after a whole
    book only: a single chapter does not know the others')."""
    if numbering is None:
        PieceStore(pieces_dir(state_dir)).prune({k for ep in episodes for k in ep.piece_keys})
    return episodes

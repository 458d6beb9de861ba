"""One chapter's work, step by step, driven from the building process: its plan, its pieces
found in the store or encoded, its loudness and peaks checked, its files written, its AAC
for the audiobook. Each step hands back the tasks it makes ready (`Task.then`)."""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from narration.assembly import audio as sig
from narration.assembly import timeline
from narration.assembly.aac import AacJob, aac_key, encode_chapter
from narration.assembly.levelling import LOUDNESS_TOLERANCE, Mix, quantized
from narration.assembly.mp3 import Encoded, PieceJob, Timing, encode_piece, write_tags
from narration.assembly.pieces import PieceStore, piece_key
from narration.assembly.plan import Plan, PlanJob, cut_places, plan_chapter
from narration.assembly.sidecars import chapters_json, description, vtt
from narration.assembly.state import (
    AssembledEpisode,
    MixLevels,
    aac_path,
    pieces_dir,
    replace_file,
    save_state,
)
from narration.assembly.timeline import discard, piece_path, scratch_path
from narration.config import AudioConfig, PausesConfig
from narration.errors import OutputError
from narration.files import temp_path
from narration.layout import chapter_files
from narration.model import CastChapter, Clip, Show


@dataclass(frozen=True)
class ChapterJob:
    """A chapter to assemble, with everything its work reads."""

    cast: CastChapter
    clips: Sequence[Sequence[Clip]]  # clips[i][j]: the WAV of cast.parts[i].lines[j]
    number: int
    total: int
    show: Show
    pauses: PausesConfig
    audio: AudioConfig
    out_dir: Path
    state_dir: Path
    cover: bytes  # as the tags carry it
    stem: str  # its files' name, NN-<chapter>
    digest: str  # of all its inputs, as the state keeps it
    m4b: bool  # its AAC for the audiobook too
    #: its MP3 as an earlier build made it, current: only its AAC is wanted
    kept: AssembledEpisode | None


@dataclass(frozen=True)
class Task:
    """One step of a chapter's work, run in any process; `then` takes its result (in the
    driving process) and gives the steps it makes ready."""

    work: ChapterWork
    run: Callable[[Any], Any]
    arg: Any
    then: Callable[[Any], list[Task]]

    @property
    def piece(self) -> PieceJob | None:
        """The piece it encodes, if it encodes one (a cluster may encode it instead)."""
        return self.arg if isinstance(self.arg, PieceJob) else None


class ChapterWork:
    """One chapter on its way through assembly, driven from the calling process.

    plan (layout, cuts, each voice's gain; timeline to a file) -> each piece found in the
    store by its key, or encoded by any process -> the chapter's loudness checked over all
    of them (if off, every piece again under a corrected chapter gain: rare) and each
    piece's decoded peak (one over the ceiling: that piece again, limited lower) -> the
    pieces joined and the files written. Every decision is taken on facts a piece's key
    stands for, so a rebuild that finds them in the store takes the same ones, and writes
    the same bytes, encoding only what changed. Each step hands back the tasks it makes
    ready.
    """

    def __init__(self, job: ChapterJob) -> None:
        self.job = job
        self.mp3, self.vtt, self.chapters_json = chapter_files(self.job.out_dir, self.job.stem)
        self.timeline = scratch_path(self.job.state_dir, self.job.stem)
        self.store = PieceStore(pieces_dir(self.job.state_dir))
        self.plan: Plan | None = None
        self.voice_db: dict[str, float] = {}
        self.chapter_db = 0.0
        self.headroom = 0.0
        self.ceilings: list[float] = []  # each piece's limiter ceiling
        self.attempts: list[int] = []  # lower ceilings each piece was given
        self.corrected = False  # the chapter's gain was corrected once
        self.encodes = 0  # pieces this build encoded
        self.encoded: dict[int, Encoded] = {}
        self.waiting = 0  # pieces being encoded
        self.filling = False  # encoding final pieces whose MP3 the store lacked
        self.used: set[str] = set()  # every piece key whose facts a decision read
        self.made: AssembledEpisode | None = self.job.kept  # written, its AAC perhaps to come
        self.episode: AssembledEpisode | None = None  # done

    @property
    def seconds(self) -> float:
        """How long its clips play, all told."""
        return sum(c.seconds for group in self.job.clips for c in group)

    def start(self) -> list[Task]:
        job = PlanJob(
            self.job.cast,
            self.job.clips,
            self.job.pauses,
            self.job.audio,
            self.timeline,
            self.mp3,
            cut_places(self.job.cast.parts, timeline.PARAGRAPH_CHARS, timeline.PIECE_CHARS),
            self.store.folder,
        )
        return [Task(self, plan_chapter, job, self._planned)]

    def _mix(self, k: int | None = None) -> Mix:
        """The mix piece k is encoded with (its own ceiling), or the chapter's."""
        assert self.plan is not None
        ceiling = self.ceilings[k] if k is not None else self.job.audio.true_peak - self.headroom
        return Mix(
            timeline=self.timeline,
            total=self.plan.total,
            regions=self.plan.regions,
            voice_db=self.voice_db,
            chapter_db=self.chapter_db,
            ceiling_db=ceiling,
            true_peak=self.job.audio.true_peak,
            bitrate=self.job.audio.bitrate,
            final=self.mp3,
        )

    def _key(self, k: int) -> str:
        assert self.plan is not None
        return piece_key(self._mix(k), self.plan.pieces[k], self.plan.contents[k])

    def _piece_task(self, k: int) -> Task:
        assert self.plan is not None
        return Task(
            self, encode_piece, PieceJob(self._mix(k), k, self.plan.pieces[k]), self._piece_done
        )

    def _encode(self, indices: Sequence[int]) -> list[Task]:
        """Pieces `indices` as they now are: from the store, or tasks to encode them."""
        tasks = []
        for k in indices:
            key = self._key(k)
            self.used.add(key)
            found = self.store.find(key, k)
            if found is not None:
                self.encoded[k] = found
            else:
                self.encoded.pop(k, None)
                tasks.append(self._piece_task(k))
        self.waiting = len(tasks)
        return tasks or self._check()

    def _reset(self) -> None:
        assert self.plan is not None
        count = len(self.plan.pieces)
        self.ceilings = [self.job.audio.true_peak - self.headroom] * count
        self.attempts = [0] * count

    def _planned(self, plan: Plan) -> list[Task]:
        """Laid out and levelled: its pieces from the store or to encode (only its AAC, if
        its MP3 is current)."""
        self.plan = plan
        if self.job.kept is not None:  # its MP3 is current: only its AAC is wanted
            levels = self.job.kept.mix
            assert levels is not None  # assemble_book keeps no episode without them
            self.voice_db = dict(levels.voice_db)
            self.chapter_db, self.headroom = levels.chapter_db, levels.headroom
            self.ceilings = list(levels.ceilings)
            return [self._aac_task()]
        self.voice_db, self.headroom = dict(plan.voice_db), plan.headroom
        for gain in plan.gains:
            self.used.add(gain.key)
            if gain.fresh:
                self.store.keep_gain(gain.key, gain.db)
        self._reset()
        return self._encode(range(len(plan.pieces)))

    def _aac_done(self, sha256: str) -> list[Task]:
        assert self.made is not None
        path = aac_path(self.job.state_dir, self.job.stem)
        self.made = replace(
            self.made, aac=path, aac_sha256=sha256, aac_key=aac_key(self.job.digest)
        )
        return self._finish()

    def _piece_done(self, result: Encoded) -> list[Task]:
        self.encodes += 1
        self.encoded[result.index] = self.store.keep(self._key(result.index), result)
        self.waiting -= 1
        if self.waiting:
            return []
        return self._write_when_playable() if self.filling else self._check()

    def _check(self) -> list[Task]:
        """All pieces are in: the chapter again if its loudness is off (as one encoder
        would), a piece again if its decoded peak is over the ceiling; else the files."""
        assert self.plan is not None
        count = len(self.plan.pieces)
        encoded = [self.encoded[k] for k in range(count)]
        loudness = sig.gated_loudness_of([e.hops for e in encoded], sig.HOP)
        off = self.job.audio.loudness - loudness
        if math.isfinite(off) and abs(off) > LOUDNESS_TOLERANCE and not self.corrected:
            self.corrected = True
            self._superseded(range(count))
            self.chapter_db = quantized(self.chapter_db + off)
            self._reset()
            return self._encode(range(count))
        over = [
            k
            for k, e in enumerate(encoded)
            if e.true_peak > self.job.audio.true_peak and self.attempts[k] < 3
        ]
        if over:
            self._superseded(over)
            for k in over:
                self.attempts[k] += 1
                self.ceilings[k] -= encoded[k].true_peak - self.job.audio.true_peak + 0.3
            return self._encode(over)
        return self._write_when_playable()

    def _superseded(self, indices: Sequence[int]) -> None:
        """Pieces encoded only to be measured: their facts stay, their MP3 goes."""
        for k in indices:
            self.store.drop_mp3(self._key(k))

    def _write_when_playable(self) -> list[Task]:
        """Write the files, once every piece's MP3 is in the store (one kept only as facts,
        or damaged, is encoded again first)."""
        assert self.plan is not None
        missing = [
            k for k in range(len(self.plan.pieces)) if not self.store.playable(self.encoded[k])
        ]
        if missing:
            self.filling = True
            self.waiting = len(missing)
            return [self._piece_task(k) for k in missing]
        self._write()
        return [self._aac_task()] if self.job.m4b else self._finish()

    def _aac_task(self) -> Task:
        """Its audio encoded for the audiobook: the mix of its MP3, every piece in a row."""
        assert self.plan is not None and self.made is not None
        job = AacJob(
            mix=self._mix(),
            pieces=self.plan.pieces,
            ceilings=tuple(self.ceilings),
            heard=self.made.heard,
            lead=self.made.lead,
            first=self.job.number == 1,
            bitrate=self.job.audio.bitrate,
            path=aac_path(self.job.state_dir, self.job.stem),
        )
        return Task(self, encode_chapter, job, self._aac_done)

    def _finish(self) -> list[Task]:
        assert self.made is not None
        save_state(self.job.state_dir, self.job.stem, self.job.digest, self.made)
        self.cleanup()
        self.episode = self.made
        return []

    def _write(self) -> None:
        """Join the pieces, tag, write the sidecars, rename into place, remember the inputs."""
        assert self.plan is not None
        plan = self.plan
        encoded = [self.encoded[k] for k in range(len(plan.pieces))]
        ratio = sig.OUT_RATE // sig.RATE
        shifts, frames = [], 0
        for piece, enc in zip(plan.pieces, encoded, strict=True):
            shifts.append(sig.SAMPLES_PER_FRAME * frames - ratio * piece.start)
            frames += enc.frames
        timing = Timing(tuple(p.start for p in plan.pieces), tuple(shifts))
        duration = timing.duration(plan.total)
        marks = [(0.0 if m.start == 0 else timing.seconds(m.start), m.title) for m in plan.markers]
        self._join(encoded, timing, duration, marks)
        for k in range(len(plan.pieces)):
            discard(piece_path(self.timeline, k))  # the timeline stays for the AAC
        self.made = self._episode(encoded, timing, duration, marks, frames)

    def _join(
        self,
        encoded: list[Encoded],
        timing: Timing,
        duration: float,
        marks: list[tuple[float, str]],
    ) -> None:
        """The MP3 (its pieces end to end, then tagged), transcript and chapters, each
        written beside its name and renamed into place."""
        assert self.plan is not None
        job = self.job
        tmp = temp_path(self.mp3)
        try:
            try:
                with open(tmp, "wb") as fh:
                    for enc in encoded:
                        with open(enc.mp3, "rb") as piece:
                            shutil.copyfileobj(piece, fh, 1 << 20)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise OutputError(f"{self.mp3}: {exc.strerror or exc}") from None
            write_tags(
                tmp,
                self.mp3,
                cast=job.cast,
                number=job.number,
                total=job.total,
                show=job.show,
                cover=job.cover,
                marks=marks,
                duration=duration,
            )
            cues = vtt(job.cast, self.plan.cues, timing, duration)
            replace_file(self.vtt, cues.encode("utf-8"))
            replace_file(self.chapters_json, chapters_json(marks).encode("utf-8"))
            try:
                os.replace(tmp, self.mp3)
            except OSError as exc:
                raise OutputError(f"{self.mp3}: {exc.strerror or exc}") from None
        finally:
            discard(tmp)

    def _episode(
        self,
        encoded: list[Encoded],
        timing: Timing,
        duration: float,
        marks: list[tuple[float, str]],
        frames: int,
    ) -> AssembledEpisode:
        """The episode just written, with what was measured of it."""
        assert self.plan is not None
        plan, cast = self.plan, self.job.cast
        # each voice's stretches heard back to back, from piece to piece
        heard = {
            name: sig.gated_loudness(
                np.concatenate(
                    [np.zeros(0), *(e.voices[name] for e in encoded if name in e.voices)]
                ),
                sig.HOP,
            )
            for name in self.voice_db
        }
        chapter = cast.chapter
        labels = {p.voice.name: p.voice.label for p in cast.parts}
        ratio = sig.OUT_RATE // sig.RATE
        return AssembledEpisode(
            number=self.job.number,
            chapter_id=chapter.id,
            title=chapter.title,
            author=chapter.author,
            mp3=self.mp3,
            vtt=self.vtt,
            chapters_json=self.chapters_json,
            seconds=round(duration, 3),
            size=self.mp3.stat().st_size,
            voices=tuple(v.label for v in cast.voices),
            description=description(cast),
            encoded=True,
            pieces=len(plan.pieces),
            pieces_encoded=self.encodes,
            piece_keys=tuple(sorted(self.used)),
            loudness=round(sig.gated_loudness_of([e.hops for e in encoded], sig.HOP), 2),
            true_peak=round(max(e.true_peak for e in encoded), 2),
            voice_gains={
                labels[n]: round(db + self.chapter_db, 2) for n, db in self.voice_db.items()
            },
            voice_loudness={labels[n]: round(v, 2) for n, v in heard.items() if math.isfinite(v)},
            # as players without gapless data play it: every frame, LAME's padding too
            heard=frames * sig.SAMPLES_PER_FRAME,
            lead=timing.heard(plan.total) - ratio * plan.total,
            marks=tuple((round(t, 3), title) for t, title in marks),
            mix=MixLevels(
                voice_db=dict(self.voice_db),
                chapter_db=self.chapter_db,
                headroom=self.headroom,
                ceilings=tuple(self.ceilings),
            ),
        )

    def cleanup(self) -> None:
        discard(self.timeline)
        for k in range(len(self.plan.pieces) if self.plan else 0):
            discard(piece_path(self.timeline, k))

"""Driving assembly: each chapter planned, its pieces encoded wherever a process is free,
checked, and written; the book's chapters in order."""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from narration.assembly import audio as sig
from narration.assembly import timeline
from narration.assembly.aac import AacJob, aac_key, encode_chapter
from narration.assembly.levelling import LOUDNESS_TOLERANCE, Mix, quantized
from narration.assembly.mp3 import Encoded, Timing, encode_piece, write_tags
from narration.assembly.pieces import PieceStore, piece_key
from narration.assembly.plan import Plan, PlanJob, cut_places, plan_chapter
from narration.assembly.sidecars import chapters_json, description, vtt
from narration.assembly.state import (
    AssembledEpisode,
    aac_path,
    chapter_digest,
    cover_bytes,
    current,
    pieces_dir,
    prune_state,
    replace_file,
    save_state,
)
from narration.assembly.timeline import Piece, discard, piece_path, scratch_path
from narration.config import AudioConfig, PausesConfig
from narration.errors import OutputError
from narration.files import temp_path
from narration.layout import chapter_files, chapter_stem
from narration.model import CastChapter, Clip, Show
from narration.processes import fork_server


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
        [(cast, clips)],
        show=show,
        pauses=pauses,
        audio=audio,
        out_dir=out_dir,
        state_dir=state_dir,
        jobs=1,
        numbering=(number, total),
    )
    return episode


@dataclass
class _Task:
    work: _Work
    run: Callable[[Any], Any]
    arg: Any


class _Work:
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

    def __init__(self, args: tuple[Any, ...]) -> None:
        (
            self.cast,
            self.clips,
            self.number,
            self.total,
            self.show,
            self.pauses,
            self.audio,
            self.out_dir,
            self.state_dir,
            self.cover,
            self.stem,
            self.digest,
            self.m4b,
            self.kept,
        ) = args
        self.mp3, self.vtt, self.chapters_json = chapter_files(self.out_dir, self.stem)
        self.timeline = scratch_path(self.state_dir, self.stem)
        self.store = PieceStore(pieces_dir(self.state_dir))
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
        self.made: AssembledEpisode | None = self.kept  # written, its AAC perhaps to come
        self.episode: AssembledEpisode | None = None  # done

    def start(self) -> list[_Task]:
        job = PlanJob(
            self.cast,
            self.clips,
            self.pauses,
            self.audio,
            self.timeline,
            self.mp3,
            cut_places(self.cast.parts, timeline.PARAGRAPH_CHARS, timeline.PIECE_CHARS),
            self.store.folder,
        )
        return [_Task(self, _run_plan, job)]

    def _mix(self, k: int | None = None) -> Mix:
        """The mix piece k is encoded with (its own ceiling), or the chapter's."""
        assert self.plan is not None
        ceiling = self.ceilings[k] if k is not None else self.audio.true_peak - self.headroom
        return Mix(
            timeline=self.timeline,
            total=self.plan.total,
            regions=self.plan.regions,
            voice_db=self.voice_db,
            chapter_db=self.chapter_db,
            ceiling_db=ceiling,
            true_peak=self.audio.true_peak,
            bitrate=self.audio.bitrate,
            final=self.mp3,
        )

    def _key(self, k: int) -> str:
        assert self.plan is not None
        return piece_key(self._mix(k), self.plan.pieces[k], self.plan.contents[k])

    def _piece_task(self, k: int) -> _Task:
        assert self.plan is not None
        return _Task(self, encode_piece, (self._mix(k), k, self.plan.pieces[k]))

    def _encode(self, indices: Sequence[int]) -> list[_Task]:
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
        self.ceilings = [self.audio.true_peak - self.headroom] * count
        self.attempts = [0] * count

    def done(self, task: _Task, result: Any) -> list[_Task]:
        if task.run is _run_plan:
            self.plan = result
            if self.kept is not None:  # its MP3 is current: only its AAC is wanted
                mix = self.kept.mix
                self.voice_db = dict(mix["voice_db"])
                self.chapter_db, self.headroom = mix["chapter_db"], mix["headroom"]
                self.ceilings = list(mix["ceilings"])
                return [self._aac_task()]
            self.voice_db, self.headroom = dict(result.voice_db), result.headroom
            for gain in result.gains:
                self.used.add(gain.key)
                if gain.fresh:
                    self.store.keep_gain(gain.key, gain.db)
            self._reset()
            return self._encode(range(len(result.pieces)))
        if task.run is encode_chapter:
            assert self.made is not None
            path = aac_path(self.state_dir, self.stem)
            self.made = replace(
                self.made, aac=path, aac_sha256=result, aac_key=aac_key(self.digest)
            )
            return self._finish()
        self.encodes += 1
        self.encoded[result.index] = self.store.keep(self._key(result.index), result)
        self.waiting -= 1
        if self.waiting:
            return []
        return self._write_when_playable() if self.filling else self._check()

    def _check(self) -> list[_Task]:
        """All pieces are in: the chapter again if its loudness is off (as one encoder
        would), a piece again if its decoded peak is over the ceiling; else the files."""
        assert self.plan is not None
        count = len(self.plan.pieces)
        encoded = [self.encoded[k] for k in range(count)]
        loudness = sig.gated_loudness_of([e.hops for e in encoded], sig.HOP)
        off = self.audio.loudness - loudness
        if math.isfinite(off) and abs(off) > LOUDNESS_TOLERANCE and not self.corrected:
            self.corrected = True
            self._superseded(range(count))
            self.chapter_db = quantized(self.chapter_db + off)
            self._reset()
            return self._encode(range(count))
        over = [
            k
            for k, e in enumerate(encoded)
            if e.true_peak > self.audio.true_peak and self.attempts[k] < 3
        ]
        if over:
            self._superseded(over)
            for k in over:
                self.attempts[k] += 1
                self.ceilings[k] -= encoded[k].true_peak - self.audio.true_peak + 0.3
            return self._encode(over)
        return self._write_when_playable()

    def _superseded(self, indices: Sequence[int]) -> None:
        """Pieces encoded only to be measured: their facts stay, their MP3 goes."""
        for k in indices:
            self.store.drop_mp3(self._key(k))

    def _write_when_playable(self) -> list[_Task]:
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
        return [self._aac_task()] if self.m4b else self._finish()

    def _aac_task(self) -> _Task:
        """Its audio encoded for the audiobook: the mix of its MP3, every piece in a row."""
        assert self.plan is not None and self.made is not None
        job = AacJob(
            mix=self._mix(),
            pieces=self.plan.pieces,
            ceilings=tuple(self.ceilings),
            heard=self.made.heard,
            lead=self.made.lead,
            first=self.number == 1,
            bitrate=self.audio.bitrate,
            path=aac_path(self.state_dir, self.stem),
        )
        return _Task(self, encode_chapter, job)

    def _finish(self) -> list[_Task]:
        assert self.made is not None
        save_state(self.state_dir, self.stem, self.digest, self.made)
        self.cleanup()
        self.episode = self.made
        return []

    def _write(self) -> None:
        """Join the pieces, tag, write the sidecars, rename into place, remember the inputs."""
        assert self.plan is not None
        plan, cast = self.plan, self.cast
        encoded = [self.encoded[k] for k in range(len(plan.pieces))]
        loudness = sig.gated_loudness_of([e.hops for e in encoded], sig.HOP)
        peak = max(e.true_peak for e in encoded)
        ratio = sig.OUT_RATE // sig.RATE
        shifts, frames = [], 0
        for piece, enc in zip(plan.pieces, encoded, strict=True):
            shifts.append(sig.SAMPLES_PER_FRAME * frames - ratio * piece.start)
            frames += enc.frames
        timing = Timing(tuple(p.start for p in plan.pieces), tuple(shifts))
        duration = timing.duration(plan.total)
        marks = [(0.0 if m.start == 0 else timing.seconds(m.start), m.title) for m in plan.markers]
        vtt_path, json_path = self.vtt, self.chapters_json
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
                cast=cast,
                number=self.number,
                total=self.total,
                show=self.show,
                cover=self.cover,
                marks=marks,
                duration=duration,
            )
            replace_file(vtt_path, vtt(cast, plan.cues, timing, duration).encode("utf-8"))
            replace_file(json_path, chapters_json(marks).encode("utf-8"))
            try:
                os.replace(tmp, self.mp3)
            except OSError as exc:
                raise OutputError(f"{self.mp3}: {exc.strerror or exc}") from None
        finally:
            discard(tmp)
        for k in range(len(plan.pieces)):
            discard(piece_path(self.timeline, k))  # the timeline stays for the AAC

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
        self.made = AssembledEpisode(
            number=self.number,
            chapter_id=chapter.id,
            title=chapter.title,
            author=chapter.author,
            mp3=self.mp3,
            vtt=vtt_path,
            chapters_json=json_path,
            seconds=round(duration, 3),
            size=self.mp3.stat().st_size,
            voices=tuple(v.label for v in cast.voices),
            description=description(cast),
            encoded=True,
            pieces=len(plan.pieces),
            pieces_encoded=self.encodes,
            piece_keys=tuple(sorted(self.used)),
            loudness=round(loudness, 2),
            true_peak=round(peak, 2),
            voice_gains={
                labels[n]: round(db + self.chapter_db, 2) for n, db in self.voice_db.items()
            },
            voice_loudness={labels[n]: round(v, 2) for n, v in heard.items() if math.isfinite(v)},
            # as players without gapless data play it: every frame, LAME's padding too
            heard=frames * sig.SAMPLES_PER_FRAME,
            lead=timing.heard(plan.total) - ratio * plan.total,
            marks=tuple((round(t, 3), title) for t, title in marks),
            mix={
                "voice_db": dict(self.voice_db),
                "chapter_db": self.chapter_db,
                "headroom": self.headroom,
                "ceilings": list(self.ceilings),
            },
        )

    def cleanup(self) -> None:
        discard(self.timeline)
        for k in range(len(self.plan.pieces) if self.plan else 0):
            discard(piece_path(self.timeline, k))


def _run_plan(job: PlanJob) -> Plan:
    return plan_chapter(job)


def _processes() -> tuple[Any, tuple[int, int]]:
    """The multiprocessing context to start assembly's processes with, and the arguments
    of their initializer: their parent's pid (0: the fork server's) and the build's.

    They are forked from the build when it runs no other thread (they inherit what it
    loaded), else from the fork server (`narration.processes`)."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork"), (os.getpid(), os.getpid())
    return fork_server(), (0, os.getpid())


def _pool_worker(parent: int, build: int) -> None:
    """A pool process dies with the build instead of waiting for work forever, holding its
    memory, when the build is killed: on Linux the kernel kills a forked one with its
    parent, and a fork server's child watches the build (the server lives while any of
    its children does). Ctrl-C and a closed terminal are the build's to handle (SIGTERM is
    not ignored: the executor ends a broken pool with it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sig.preload()
    if not parent:
        threading.Thread(target=_watch, args=(build,), daemon=True).start()
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own end is all there is
        return
    if os.getppid() != parent:  # the build died before prctl took effect
        os._exit(1)


def _watch(build: int) -> None:
    """End this process when the build is gone (it was killed: nobody will end us)."""
    while True:
        try:
            os.kill(build, 0)
        except ProcessLookupError:
            os._exit(1)
        except OSError:  # alive, another user's: cannot happen for our parent's pid
            pass
        time.sleep(0.25)


_PR_SET_PDEATHSIG = 1


class Offload(Protocol):
    """Somewhere else pieces can be encoded (narration/cluster/: a Dask cluster): `slots`
    pieces at once, each given back as the Encoded that `encode_piece` gives, its MP3 at
    `mix.piece_path(index)` here."""

    slots: int

    def encode_piece(self, mix: Mix, index: int, piece: Piece) -> Future[Encoded]: ...

    def cancel(self) -> None:
        """Stop what it still has to do (the build failed or was interrupted)."""


class Arrivals:
    """Chapters handed to assembly as their clips are ready, from another thread (the
    build's synthesis): `put` each (its index in the book and its clips, grouped as
    `assemble_book` takes them), then `close`, with the error that stopped the producer if
    one did (assembly raises it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[tuple[int, Sequence[Sequence[Clip]]]] = deque()
        self._signal: Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None

    def put(self, index: int, clips: Sequence[Sequence[Clip]]) -> None:
        with self._lock:
            self._items.append((index, clips))
            self._wake()

    def close(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._closed, self._error = True, error
            self._wake()

    def _wake(self) -> None:
        if self._signal is not None and not self._signal.done():
            self._signal.set_result(None)
        self._signal = None

    def take(self) -> list[tuple[int, Sequence[Sequence[Clip]]]]:
        """What has arrived since the last call (raising the producer's error, if any)."""
        with self._lock:
            if self._error is not None:
                raise self._error
            items = list(self._items)
            self._items.clear()
            return items

    def signal(self) -> Future[None]:
        """A future done when something arrives or the producer closes (at once if so)."""
        with self._lock:
            future: Future[None] = Future()
            if self._items or self._closed:
                future.set_result(None)
            else:
                self._signal = future
            return future

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._closed and not self._items


def _run(
    waiting: deque[_Work],
    jobs: int,
    progress: Callable[[AssembledEpisode], None] | None,
    offload: Offload | None = None,
    arrive: Callable[[], list[_Work]] | None = None,
    arrivals: Arrivals | None = None,
) -> list[_Work]:
    """Drive the chapters' tasks to the end, in this process (jobs == 1) or on `jobs`
    processes, never more tasks in flight than processes; with `offload`, pieces are also
    encoded there, up to its slots. With `arrivals`, chapters keep coming (`arrive` turns
    what arrived into work) until it is closed. Returns every work it drove.

    Ready pieces of chapters already started go first, oldest chapter first, and a new
    chapter is planned only when no piece is waiting: the processes stay busy (a long
    chapter's pieces are spread over all of them) while at most a few chapters' timelines
    exist at once, whatever the book's length. `progress` hears of each chapter as soon as
    its files are written.
    """
    works = list(waiting)
    active: list[_Work] = []
    ready: dict[int, deque[_Task]] = {}

    def admit() -> None:
        if arrive is not None:
            new = arrive()
            waiting.extend(new)
            works.extend(new)

    def next_task() -> _Task | None:
        for work in active:
            if ready[id(work)]:
                return ready[id(work)].popleft()
        if waiting:
            work = waiting.popleft()
            active.append(work)
            ready[id(work)] = deque(work.start())
            return ready[id(work)].popleft()
        return None

    heard: set[int] = set()

    def finish(task: _Task, result: Any) -> None:
        work = task.work
        ready[id(work)].extend(work.done(task, result))
        # heard of as soon as its files are written (its AAC for the audiobook may follow),
        # so a build publishing as it goes lists it without waiting for that
        if work.made is not None and id(work) not in heard:
            heard.add(id(work))
            if progress:
                progress(work.made)
        if work.episode is not None:
            active.remove(work)

    def more_to_come() -> bool:
        return arrivals is not None and not arrivals.finished

    held: deque[_Task] = deque()  # taken in order, waiting for a free slot
    remote: set[Future[Any]] = set()

    def submit(pool: ProcessPoolExecutor, inflight: dict[Future[Any], _Task]) -> None:
        """Send tasks in order while a slot is free for the next one."""
        while (task := held.popleft() if held else next_task()) is not None:
            offloaded = offload is not None and task.run is encode_piece
            if offloaded and len(remote) < offload.slots:  # type: ignore[union-attr]
                mix, index, piece = task.arg
                future = offload.encode_piece(mix, index, piece)  # type: ignore[union-attr]
                remote.add(future)
            elif len(inflight) - len(remote) < jobs:
                future = pool.submit(task.run, task.arg)
            else:
                held.appendleft(task)
                return
            inflight[future] = task

    try:
        admit()
        if jobs <= 1 and offload is None:
            while True:
                task = next_task()
                if task is not None:
                    finish(task, task.run(task.arg))
                elif more_to_come():
                    assert arrivals is not None
                    arrivals.signal().result()
                else:
                    break
                admit()
            return works
        context, parent = _processes()
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_pool_worker, initargs=parent
        ) as pool:
            inflight: dict[Future[Any], _Task] = {}
            try:
                while True:
                    submit(pool, inflight)
                    if not inflight and not more_to_come():
                        admit()  # the last arrivals, taken after the producer closed
                        if not waiting:
                            break
                        continue
                    watch: set[Future[Any]] = set(inflight)
                    if more_to_come():
                        assert arrivals is not None
                        watch.add(arrivals.signal())
                    done, _ = wait(watch, return_when=FIRST_COMPLETED)
                    for future in [f for f in inflight if f in done]:  # in order sent
                        task = inflight.pop(future)
                        remote.discard(future)
                        finish(task, future.result())
                    admit()
            except BrokenProcessPool:
                raise OutputError(
                    f"{task.work.mp3}: a process assembling it died "
                    "(out of memory?); build again with --jobs 1"
                ) from None
            finally:
                for future in inflight:
                    future.cancel()
                if offload is not None and inflight:
                    offload.cancel()
    finally:
        for work in works:
            work.cleanup()
    return works


def _cores() -> int:
    """Cores this process may use (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def assemble_book(
    chapters: Sequence[tuple[CastChapter, Sequence[Sequence[Clip]] | None]],
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
    audio_config = audio
    total = numbering[1] if numbering else len(chapters)
    cover = cover_bytes(show)
    results: list[AssembledEpisode | None] = [None] * len(chapters)
    stems = [
        chapter_stem(numbering[0] if numbering else k + 1, total, cast.chapter.id)
        for k, (cast, _) in enumerate(chapters)
    ]
    made: dict[int, _Work] = {}

    def admit(k: int, clips: Sequence[Sequence[Clip]]) -> _Work | None:
        """The chapter kept as an earlier build made it, or its work to do."""
        cast = chapters[k][0]
        number = numbering[0] if numbering else k + 1
        digest = chapter_digest(
            cast,
            clips,
            number=number,
            total=total,
            show=show,
            pauses=pauses,
            audio_config=audio_config,
            cover=cover,
        )
        kept = current(out_dir, state_dir, stems[k], digest)
        if kept is not None and (not m4b or kept.aac_key == aac_key(digest)):
            results[k] = kept
            if progress:
                progress(kept)
            return None
        if kept is not None and not (kept.mix and kept.lead):  # made before these were kept
            kept = None
        args = (cast, clips, number, total, show, pauses, audio_config, out_dir, state_dir, cover)
        made[k] = _Work((*args, stems[k], digest, m4b, kept))
        return made[k]

    if numbering is None:
        prune_state(state_dir, set(stems))
    given = [(k, clips) for k, (_, clips) in enumerate(chapters) if clips is not None]
    todo = [(k, w) for k, clips in given if (w := admit(k, clips)) is not None]
    if not todo and arrivals is None:
        return _pruned([r for r in results if r is not None], state_dir, numbering)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)  # the timelines are written there
    except OSError as exc:
        raise OutputError(f"{state_dir}: {exc.strerror or exc}") from None

    def seconds(w: _Work) -> float:
        return sum(c.seconds for group in w.clips for c in group)

    # longest first: its plan, the one step that cannot be shared, starts at once (chapters
    # arriving one by one are taken in their order)
    todo.sort(key=lambda t: (-seconds(t[1]), t[0]))
    if arrivals is None:
        pieces = sum(timeline.expected_pieces(seconds(w)) for _, w in todo)
        workers = max(1, min(jobs or _cores(), pieces))
    else:
        workers = max(1, jobs or _cores())

    def arrive() -> list[_Work]:
        assert arrivals is not None
        return [w for k, clips in sorted(arrivals.take()) if (w := admit(k, clips)) is not None]

    _run(
        deque(w for _, w in todo),
        workers,
        progress,
        offload,
        arrive if arrivals is not None else None,
        arrivals,
    )
    for k, work in made.items():
        results[k] = work.episode
    missing = [stems[k] for k, r in enumerate(results) if r is None]
    if missing:  # pragma: no cover - the producer closed without handing every chapter over
        raise OutputError(f"{out_dir / missing[0]}: its clips never arrived for assembly")
    return _pruned([r for r in results if r is not None], state_dir, numbering)


def _pruned(
    episodes: list[AssembledEpisode], state_dir: Path, numbering: tuple[int, int] | None
) -> list[AssembledEpisode]:
    """The book's episodes, every kept piece none of them uses forgotten (after a whole
    book only: a single chapter does not know the others')."""
    if numbering is None:
        PieceStore(pieces_dir(state_dir)).prune({k for ep in episodes for k in ep.piece_keys})
    return episodes

"""A build's middle, chapter by chapter: synthesis works through the book in order, and
each chapter is assembled, checked and published (its episode in feed.xml and on the page)
as soon as its clips are ready, while later chapters render.

Synthesis runs in the build's own thread (it hands each chapter over as `on_group`), and
assembly in a thread of its own driving its processes; the first chapter handed over
writes the cover and starts it. Each finished episode is published at once: the feed and
the page list the episodes finished so far, and, on a rebuild, the previous episode of each
chapter not reached yet (its files are still those it was published with). The lock is
worked out for the whole book before the first episode is published, from the chapters'
text, so each episode keeps the guid and date a build done in one piece gives it, and a
chapter the build has not reached is never taken for a removed one.

`Chapters` is that middle as the build runs it (synthesis, the cover, assembly, and the
bit-rot retry); `ChapterStream` is assembly's thread and `Publisher` the feed and page
written as episodes finish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from narration.assembly import Arrivals, AssembledEpisode
from narration.errors import OutputError
from narration.model import (
    Audiobook,
    CastChapter,
    ChapterClips,
    Clip,
    Episode,
    ReadAlong,
    Show,
)
from narration.pipeline.checks import BuildRun
from narration.pipeline.early import preload_assembly
from narration.pipeline.leftovers import book_files

if TYPE_CHECKING:
    from narration.assembly.book import Offload
    from narration.progress import ProgressReporter
    from narration.publishing.feed import LockEntry
    from narration.synthesis import ClipCache, ClipJob


@dataclass
class Publisher:
    """Writes the feed and the page for the episodes finished so far."""

    cast: Sequence[CastChapter]
    previous: dict[str, Episode]  # chapter id -> the episode published before this build
    write: Callable[[list[Episode]], None]  # feed and page for these episodes
    finished: dict[int, Episode] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def listed(self) -> list[Episode]:
        """Each chapter's new episode if it is finished, else its previous one, if any."""
        out: list[Episode] = []
        for k, cc in enumerate(self.cast):
            if k in self.finished:
                out.append(self.finished[k])
            elif (old := self.previous.get(cc.chapter.id)) is not None:
                out.append(old)
        return out

    def done(self, index: int, episode: Episode, *, changed: bool = True) -> None:
        """The chapter's episode is finished; published unless it is the one already
        listed (`changed` False: kept as the previous build made it)."""
        with self.lock:
            self.finished[index] = episode
            if changed:
                self.write(self.listed())


@dataclass
class ChapterStream:
    """Assembly in a thread of its own, fed by synthesis chapter by chapter."""

    cast: Sequence[CastChapter]
    #: the show with its cover written, called (once) when the first chapter is ready
    start: Callable[[], Show]
    #: assemble_book's arguments but the chapters, the show, `progress` and `arrivals`
    assemble: Callable[..., list[AssembledEpisode]]
    #: hears of each episode (its chapter's index) as it is finished, in assembly's thread
    finished: Callable[[int, AssembledEpisode], None]
    arrivals: Arrivals = field(default_factory=Arrivals)
    thread: threading.Thread | None = None
    show: Show | None = None
    episodes: list[AssembledEpisode] | None = None
    error: BaseException | None = None
    #: set when assembly's thread has ended, its scratch files removed (waited on instead
    #: of joining the thread: a join that Ctrl-C interrupted may not wait a second time)
    ended: threading.Event = field(default_factory=threading.Event)

    def arrived(self, index: int, clips: list[Clip]) -> None:
        """synthesize's on_group: the chapter's clips, grouped by part, go to assembly
        (started by the first); a failure of assembly's stops synthesis here."""
        if self.error is not None:
            raise self.error
        grouped = ChapterClips.grouped(self.cast[index], clips).clips
        assert grouped is not None
        if self.thread is None:
            self.show = self.start()
            self.thread = threading.Thread(target=self._run, name="assembly", daemon=True)
            self.thread.start()
        self.arrivals.put(index, grouped)

    def _run(self) -> None:
        index = {cc.chapter.id: k for k, cc in enumerate(self.cast)}

        def progress(episode: AssembledEpisode) -> None:
            self.finished(index[episode.chapter_id], episode)

        try:
            self.episodes = self.assemble(
                [ChapterClips(cc, None) for cc in self.cast],
                show=self.show,
                progress=progress,
                arrivals=self.arrivals,
            )
        except BaseException as exc:  # handed to the build's thread, which raises it
            self.error = exc
        finally:
            self.ended.set()

    def close(self, error: BaseException | None = None) -> None:
        """Synthesis is over (or failed with `error`, which stops assembly)."""
        self.arrivals.close(error)

    def result(self) -> list[AssembledEpisode]:
        """Every episode, once assembly has finished; its error, if it failed."""
        if self.thread is not None:
            self.ended.wait()
        if self.error is not None:
            raise self.error
        if self.episodes is None:  # pragma: no cover - synthesis hands every chapter over
            raise OutputError("assembly never started: no chapter's clips were handed over")
        return self.episodes

    def stop(self) -> None:
        """The build is failing or stopped: assembly stops after the tasks it is running,
        and removes its chapters' scratch files (taking an arrival raises)."""
        self.arrivals.close(_Stopped())
        if self.thread is not None:
            self.ended.wait(timeout=120)


class _Stopped(Exception):
    """Assembly stopped because the build failed elsewhere (never shown: the build raises
    its own error)."""


def previous_episodes(out_dir: Path, state_dir: Path) -> dict[str, Episode]:
    """The episodes an earlier build published whose files are still as it wrote them, by
    chapter id: listed until their chapters' new episodes are finished."""
    from narration.assembly.state import published

    return published(out_dir, state_dir)


#: A chapter and its clips, grouped by part, as assembly takes them.
Grouped = list[ChapterClips]


class Chapters:
    """Synthesis and assembly, chapter by chapter: each chapter is assembled as soon as its
    clips are rendered, and its episode published at once (the feed and the page)."""

    def __init__(self, run: BuildRun) -> None:
        from narration.assembly.sidecars import transcript_words
        from narration.fingerprint import sketch
        from narration.progress import ProgressReporter
        from narration.publishing.feed import LockEntry

        self.run = run
        self.project = run.checked.project
        self.cast = run.checked.cast
        self.show = run.show
        state, out = self.project.state, self.project.output
        # the lock as the whole book gives it, worked out before any episode is published
        self.entries: list[LockEntry] = [
            LockEntry(cc.chapter.id, k + 1, sketch(transcript_words(cc)))
            for k, cc in enumerate(self.cast)
        ]
        previous = previous_episodes(out, state)  # before assembly forgets them
        self.books_before = book_files(state)  # before this build records its own
        self.publisher = Publisher(self.cast, dict(previous), self.publish)
        self.offload: Offload | None = run.cluster.encoder() if run.cluster is not None else None
        label = f"synthesis on {run.cluster.size()} workers" if run.cluster else "synthesis"
        self.progress = ProgressReporter(quiet=run.quiet, label=label)
        self.chapters: ProgressReporter = ProgressReporter(
            quiet=run.quiet, label="assembly", unit="chapters", made="encoded", kept="unchanged"
        )
        self.done = 0
        self.kept = 0
        self.synthesised = threading.Event()
        self.drawn: Future[bytes] | None = None  # the cover drawn while the clips render

    def publish(
        self,
        episodes: list[Episode],
        *,
        book: Audiobook | None = None,
        ebook: ReadAlong | None = None,
    ) -> None:
        """The feed and the page, for these episodes."""
        from narration.publishing.feed import write_feed
        from narration.publishing.page import write_page

        run, out = self.run, self.project.output
        write_feed(
            episodes,
            show=self.show,
            podcast=run.checked.podcast,
            out_dir=out,
            base_url=run.base_url,
            lock_path=self.project.lock_file,
            today=run.recorded,  # the day the tags were given, should the lock have none
            chapters=self.entries,
        )
        write_page(episodes, show=self.show, out_dir=out, audiobook=book, readalong=ebook)

    def finished(self, index: int, episode: AssembledEpisode) -> None:
        """A chapter's episode is finished (in assembly's thread): published at once."""
        from narration.progress import format_duration

        self.publisher.done(index, episode, changed=episode.encoded)
        self.done += 1
        self.kept += not episode.encoded
        if self.synthesised.is_set():
            self.chapters(self.done, self.kept, len(self.cast))
        elif episode.encoded:
            self.progress.note(
                f"ready: {self.project.display(episode.mp3)} (chapter {episode.number} of "
                f"{len(self.cast)}, {format_duration(episode.seconds)})"
            )

    def assemble(self, chapter_list: Sequence[Any], **kwargs: Any) -> list[AssembledEpisode]:
        """assemble_book with this build's settings (ChapterStream gives the rest)."""
        from narration.assembly import assemble_book

        run = self.run
        return assemble_book(
            chapter_list,
            pauses=run.checked.voices.pauses,
            audio=run.checked.voices.audio,
            out_dir=self.project.output,
            state_dir=self.project.state,
            jobs=run.jobs,
            m4b=run.m4b,
            offload=self.offload,
            **kwargs,
        )

    def requests(self) -> list[ClipJob]:
        """Every line of the book, in order, as synthesis takes them."""
        from narration.synthesis import ClipJob

        return [
            ClipJob(line, part.voice, part.id, k)
            for k, cc in enumerate(self.cast)
            for part in cc.parts
            for line in part.lines
        ]

    def build(self) -> tuple[Grouped, list[AssembledEpisode]]:
        """Render every clip while the chapters finished so far are assembled; then the
        rest of assembly. Whatever ends the build early stops assembly and cleans up."""
        from narration.assembly.pieces import PieceStore
        from narration.assembly.state import pieces_dir
        from narration.synthesis import ClipCache

        run = self.run
        stream = ChapterStream(self.cast, self._start, self.assemble, self.finished)
        cache = ClipCache(self.project.cache)
        try:
            flat = self._synthesise(stream, cache)
            grouped = grouped_clips(self.cast, flat)
            with run.stage("assembly"):
                try:
                    grouped, episodes = self._assembled(stream, cache, grouped, flat)
                finally:
                    self.chapters.close()
                if self.offload is not None and run.report.cluster is not None:
                    run.report.cluster["pieces"] = self.offload.sent
                files, size = PieceStore(pieces_dir(self.project.state)).size()
                run.report.pieces_kept = {"files": files, "bytes": size}
        except BaseException:  # Ctrl-C, a signal, a failure: assembly stops and cleans up
            stream.stop()
            raise
        return grouped, episodes

    def _start(self) -> Show:
        """The first chapter is ready: the cover is written (the user's, or the one drawn
        meanwhile), and the show names it."""
        from narration.assembly.cover import write_cover

        with self.run.stage("cover"):
            data, ext = self.run.cover if self.drawn is None else (self.drawn.result(), ".png")
            self.show = Show(
                **{**self.show.__dict__, "cover": write_cover(self.project.output, data, ext)}
            )
        return self.show

    def _synthesise(self, stream: ChapterStream, cache: ClipCache) -> list[Clip]:
        """Every clip, handed to assembly chapter by chapter as it is rendered."""
        from narration.assembly.cover import generate_cover
        from narration.synthesis import synthesize

        run = self.run
        with ThreadPoolExecutor(max_workers=1) as background:
            # Without a cover of the user's (the checks looked), one is drawn in a thread while
            # the workers render (this process only waits on them); either is written when the
            # first chapter's clips are ready, so a build refused before that writes nothing.
            self.drawn = None
            if run.cover is None:
                self.drawn = background.submit(
                    generate_cover, self.show.title, self.show.author or ""
                )
            if not run.idle:
                background.submit(preload_assembly)
            try:
                with run.stage("synthesis"):
                    try:
                        flat = synthesize(
                            self.requests(),
                            engine=run.checked.engines,
                            cache=cache,
                            jobs=run.jobs,
                            progress=self.progress,
                            workers=run.workers,
                            cluster=run.cluster,
                            on_group=stream.arrived,
                        )
                    finally:
                        self.progress.close()
                        for pool in run.workers:
                            pool.close()  # idle from now on: their memory is the encoders'
                    stream.close()
                    self.synthesised.set()
                    self.chapters(self.done, self.kept, len(self.cast))
            except BaseException:
                stream.stop()
                self.chapters.close()
                raise
        self._report_synthesis(cache)
        return flat

    def _report_synthesis(self, cache: ClipCache) -> None:
        from narration.progress import count

        run = self.run
        if run.cluster is not None:
            run.report.cluster = {
                "scheduler": run.cluster.address,
                "workers": run.cluster.size(),
                "refused": dict(run.cluster.refused),
            }
        if cache.damaged:
            n = len(cache.damaged)
            run.warn(
                f"{self.project.display(self.project.cache)}: {count(n, 'cached clip')} "
                f"{'was' if n == 1 else 'were'} damaged on disk (bytes changed since "
                f"{'it was' if n == 1 else 'they were'} made, or failing a render's "
                f"checks) and {'was' if n == 1 else 'were'} rendered again"
            )

    def _assembled(
        self, stream: ChapterStream, cache: ClipCache, grouped: Grouped, flat: list[Clip]
    ) -> tuple[Grouped, list[AssembledEpisode]]:
        """Assembly's episodes, once it has finished them all. A clip whose bytes changed
        while its size, time and inode did not (bit rot) stops it: every such clip is found,
        rendered again, and the book assembled again."""
        from narration.errors import ClipDamaged
        from narration.progress import count
        from narration.synthesis import synthesize

        try:
            try:
                return grouped, stream.result()
            except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM, SIGHUP: it stops
                stream.stop()
                raise
        except ClipDamaged:
            pass
        run = self.run
        damaged = [c for c in {c.key: c for c in flat}.values() if not cache.intact(c)]
        for clip in damaged:
            cache.discard(clip.key)
        run.warn(
            f"{self.project.display(self.project.cache)}: {count(len(damaged), 'cached clip')} "
            "had changed on disk without a trace in its size or time (bit rot?) and "
            f"{'was' if len(damaged) == 1 else 'were'} rendered again"
        )
        flat = synthesize(
            self.requests(),
            engine=run.checked.engines,
            cache=cache,
            jobs=run.jobs,
            cluster=run.cluster,
        )
        grouped = grouped_clips(self.cast, flat)
        self.done = self.kept = 0
        index = {cc.chapter.id: k for k, cc in enumerate(self.cast)}
        episodes = self.assemble(
            grouped, show=self.show, progress=lambda ep: self.finished(index[ep.chapter_id], ep)
        )
        return grouped, episodes


def grouped_clips(cast: list[CastChapter], flat: list[Clip]) -> Grouped:
    """The clips in book order, grouped by chapter and segment as assembly takes them."""
    it = iter(flat)
    return [ChapterClips.grouped(cc, it) for cc in cast]


__all__ = [
    "ChapterStream",
    "Chapters",
    "Grouped",
    "Publisher",
    "grouped_clips",
    "previous_episodes",
]

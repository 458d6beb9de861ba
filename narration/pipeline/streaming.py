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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from narration.assembly import Arrivals, AssembledEpisode
from narration.errors import OutputError
from narration.model import CastChapter, Clip, Episode, Show


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
        cc = self.cast[index]
        it = iter(clips)
        grouped = [[next(it) for _ in part.lines] for part in cc.parts]
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
                [(cc, None) for cc in self.cast],
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


__all__ = ["ChapterStream", "Publisher", "previous_episodes"]

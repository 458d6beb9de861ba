"""What a build says it did: output/build.json and the summary line, with each stage's time."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from narration.invocation import narrate
from narration.layout import (
    FEED_FILE,
    OUTPUT_DIR,
)
from narration.model import ChapterClips, Speakers

# The stages' modules are imported where they are used (see build.py).
if TYPE_CHECKING:
    from narration.assembly import AssembledEpisode
    from narration.casting.characters import Role


@dataclass
class BuildReport:
    """What a build did, as written to output/build.json."""

    engines: list[dict[str, str]] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    chapters: list[dict[str, Any]] = field(default_factory=list)
    audiobook: dict[str, Any] | None = None
    readalong: dict[str, Any] | None = None  # the read-along EPUB
    cluster: dict[str, Any] | None = None  # the Dask cluster synthesis ran on
    #: characters found, quotations and how many have a speaker (`narrate characters`)
    speakers: dict[str, int] | None = None
    #: the encoded pieces kept for the next build: {"files": n, "bytes": size}
    pieces_kept: dict[str, int] | None = None
    base_url: str = ""
    output: Path = Path(OUTPUT_DIR)

    def to_json(self) -> dict[str, Any]:
        totals = {
            "chapters": len(self.chapters),
            "segments": sum(c["segments"] for c in self.chapters),
            "clips": sum(c["clips"] for c in self.chapters),
            "rendered": sum(c["rendered"] for c in self.chapters),
            "cached": sum(c["cached"] for c in self.chapters),
            "encoded": sum(1 for c in self.chapters if c["encoded"]),
            "pieces": sum(c["pieces"] for c in self.chapters),
            "pieces_encoded": sum(c["pieces_encoded"] for c in self.chapters),
            "seconds": round(sum(c["seconds"] for c in self.chapters), 3),
        }
        return {
            "engines": self.engines,
            "stages": {k: round(v, 3) for k, v in self.stages.items()},
            "totals": totals,
            **({"pieces_kept": self.pieces_kept} if self.pieces_kept is not None else {}),
            "base_url": self.base_url,
            "chapters": self.chapters,
            **({"audiobook": self.audiobook} if self.audiobook else {}),
            **({"readalong": self.readalong} if self.readalong else {}),
            **({"cluster": self.cluster} if self.cluster else {}),
            **({"speakers": self.speakers} if self.speakers is not None else {}),
        }

    def summary(self) -> str:
        t = self.to_json()["totals"]
        minutes = t["seconds"] / 60
        took = sum(self.stages.values())
        from narration.progress import count

        return (
            f"Built {count(t['chapters'], 'chapter')}, {minutes:.1f} min of audio, in "
            f"{took:.1f} s: {count(t['rendered'], 'clip')} rendered"
            + (
                f" on {count(self.cluster['workers'], 'worker')} at {self.cluster['scheduler']}"
                if self.cluster
                else ""
            )
            + f", {t['cached']} from cache, "
            f"{count(t['encoded'], 'chapter')} encoded{self._pieces_note()}. "
            f"Feed: {self.output / FEED_FILE}"
            + (f"; audiobook: {self.output / self.audiobook['file']}" if self.audiobook else "")
            + (f"; read-along: {self.output / self.readalong['file']}" if self.readalong else "")
            + self._speakers_line()
        )

    def _pieces_note(self) -> str:
        """' (12 of 140 pieces)' when the chapters encoded reused some of their pieces."""
        made = [c for c in self.chapters if c["encoded"]]
        pieces = sum(c["pieces"] for c in made)
        encoded = sum(c["pieces_encoded"] for c in made)
        return f" ({encoded} of {pieces} pieces)" if encoded < pieces else ""

    def _speakers_line(self) -> str:
        """'Speakers: 12 characters, 340 of 500 quotations attributed', when the book has
        characters (not a pamphlet's few quoted words)."""
        s = self.speakers
        if not s or not s["characters"]:
            return ""
        from narration.progress import count

        voiced = (
            f", {s['own_voices']} in voices of their own, {s['pool_voices']} in a shared pool"
            if s.get("own_voices") or s.get("pool_voices")
            else ""
        )
        return (
            f"\nSpeakers: {count(s['characters'], 'character')}, {s['attributed']} of "
            f"{count(s['quotations'], 'quotation')} attributed{voiced} ({narrate()} characters)."
        )


class Stages:
    """Each stage's seconds; a stage timed inside another is not counted in it too."""

    def __init__(self, report: BuildReport) -> None:
        self.report = report
        self._inner: list[float] = []  # per open stage, the seconds of stages inside it

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            took = time.perf_counter() - start
            inner = self._inner.pop()
            if self._inner:
                self._inner[-1] += took
            self.report.stages[name] = self.report.stages.get(name, 0.0) + took - inner


def speakers_report(speakers: Speakers, roles: Mapping[str, Role]) -> dict[str, int]:
    from narration.segmenting.speakers.review import attributed

    return {
        "characters": len(speakers.characters),
        "quotations": len(speakers.quotations),
        "attributed": attributed(speakers),
        # characters read in voices of their own (automatic or pinned), and in a shared pool
        "own_voices": sum(1 for r in roles.values() if r.how in ("automatic", "pinned")),
        "pool_voices": sum(1 for r in roles.values() if r.how == "shared pool"),
    }


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def chapter_entry(chapter: ChapterClips, ep: AssembledEpisode) -> dict[str, Any]:
    """A chapter as build.json lists it."""
    cc = chapter.cast
    flat_clips = [c for part in chapter.clips or () for c in part]
    return {
        "id": cc.chapter.id,
        "file": cc.chapter.file,
        "mp3": ep.mp3.name,
        "segments": len(cc.chapter.segments),
        "clips": len(flat_clips),
        "rendered": sum(1 for c in flat_clips if c.rendered),
        "cached": sum(1 for c in flat_clips if not c.rendered),
        "encoded": ep.encoded,
        # the pieces its MP3 is joined from, and of those, encoded by this build
        "pieces": ep.pieces,
        "pieces_encoded": ep.pieces_encoded,
        "seconds": round(ep.seconds, 3),
        "voices": list(ep.voices),
        # measured when it was encoded (kept chapters: by the build that encoded them)
        "loudness_lufs": rounded(ep.loudness),
        "true_peak_dbtp": rounded(ep.true_peak),
        "voice_loudness_lufs": {k: rounded(v) for k, v in ep.voice_loudness.items()},
    }

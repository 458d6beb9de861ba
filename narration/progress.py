"""Progress of long work on standard error: a live bar on a terminal, plain lines otherwise.

`ProgressReporter` is the `progress(done, cached, total, work)` callback that `synthesize`
takes. Its ETA divides the characters left by the characters rendered per second since the
first clip came back: clips vary from a two-word heading to a long paragraph, and the first
clip also carries the workers' start (Kokoro loads its model), so counting clips, or timing
from the start, misjudged a Kokoro build by minutes. On a terminal it redraws one line
(bar, clips rendered, from cache, remaining, ETA) at most ten times a second; in a log (CI,
a pipe) it prints a plain line every `interval` seconds and once at the end, so logs stay
short; with `quiet` it prints nothing. The clock is only used for the display, never for
anything written to the output.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Work:
    """The weight of the clips counted beside them: characters to speak in the clips done,
    in those that came from the cache, and in all."""

    done: int
    cached: int
    total: int


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 clip', '2 clips', '0 chapters': a number and its noun, agreeing."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def format_duration(seconds: float) -> str:
    """0:42, 12:05, 1:02:03."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressReporter:
    """Callable as progress(done, cached, total); `close()` ends the display.

    Counts clips by default; `unit`, `made` and `kept` name other work (chapters encoded or
    unchanged)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
        label: str = "synthesis",
        unit: str = "clips",
        made: str = "rendered",
        kept: str = "from cache",
        interval: float = 10.0,
        width: int = 24,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.label = label
        self.unit, self.made, self.kept = unit, made, kept
        self.interval = interval
        self.width = width
        self.clock = clock
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self._first: float | None = None  # the first call: something to show
        self._start: float | None = None  # when the first rendered clip came back
        self._start_rendered = 0  # the work it held, not timed
        self._work = Work(0, 0, 0)
        self._last_draw: float | None = None
        self._last_text = ""
        self._state = (0, 0, 0)
        self._finished = False
        self._lock = threading.Lock()  # a note comes from another thread than the counts

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, done: int, cached: int, total: int, work: Work | None = None) -> None:
        if self.quiet:
            return
        with self._lock:
            self._update(done, cached, total, work)

    def note(self, message: str) -> None:
        """A line of its own above the live one (a chapter ready while clips render); in a
        log, a line of its own."""
        if self.quiet:
            return
        with self._lock:
            if self.live and self._last_text:
                pad = " " * max(0, len(self._last_text) - len(message))
                self.stream.write(f"\r{message}{pad}\n")
                self._last_text = ""
                self._draw(self.clock())
            else:
                self.stream.write(message + "\n")
            self.stream.flush()

    def _update(self, done: int, cached: int, total: int, work: Work | None) -> None:
        now = self.clock()
        weight = work or Work(done, cached, total)  # without characters, each clip weighs one
        rendered = weight.done - weight.cached
        if self._first is None:
            self._first = now
        if self._start is None and rendered > 0:
            # timed from the first clip back: the workers' start is not a rate of speech
            self._start, self._start_rendered = now, rendered
        self._state = (done, cached, total)
        self._work = weight
        final = done >= total
        if self.live:
            if final or self._last_draw is None or now - self._last_draw >= 0.1:
                self._draw(now)
        elif not (final and self._finished) and (
            final or self._last_draw is None or now - self._last_draw >= self.interval
        ):
            self._line(now)
        if final:
            self._finished = True

    def eta(self, now: float) -> float | None:
        """Seconds left at the rate of speech rendered so far (characters, or clips when
        the caller gives no characters); None before there is one."""
        work = self._work
        rendered = work.done - work.cached - self._start_rendered
        if self._start is None or rendered <= 0 or now <= self._start:
            return None
        return (work.total - work.done) * (now - self._start) / rendered

    def text(self, now: float) -> str:
        done, cached, total = self._state
        left = total - done
        eta = self.eta(now)
        when = "ETA --" if eta is None else f"ETA {format_duration(eta)}"
        if left == 0:
            when = "done"
        return (
            f"{self.label}: {done}/{total} {self.unit} ({done - cached} {self.made}, "
            f"{cached} {self.kept}, {left} left, {when})"
        )

    def _draw(self, now: float) -> None:
        done, _, total = self._state
        filled = self.width if total == 0 else self.width * done // total
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"[{bar}] {self.text(now)}"
        pad = " " * max(0, len(self._last_text) - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._last_text, self._last_draw = text, now

    def _line(self, now: float) -> None:
        self.stream.write(self.text(now) + "\n")
        self.stream.flush()
        self._last_draw = now

    def close(self) -> None:
        """Finish the live line, or print the last state if no line showed it yet."""
        if self.quiet or self._first is None:
            return
        if self.live:
            if self._last_text:
                self.stream.write("\n")
                self.stream.flush()
                self._last_text = ""
        elif not self._finished:
            self._line(self.clock())
            self._finished = True

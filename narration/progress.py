"""Progress of long work on standard error: a live bar on a terminal, plain lines otherwise.

`ProgressReporter` is the `progress(done, cached, total)` callback that `synthesize` takes.
On a terminal it redraws one line (bar, clips rendered, from cache, remaining, ETA) at most
ten times a second; in a log (CI, a pipe) it prints a plain line every `interval` seconds and
once at the end, so logs stay short; with `quiet` it prints nothing. The clock is only used
for the display, never for anything written to the output.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


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
        self._start: float | None = None  # when the first clip began rendering
        self._start_rendered = 0
        self._last_draw: float | None = None
        self._last_text = ""
        self._state = (0, 0, 0)
        self._finished = False

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, done: int, cached: int, total: int) -> None:
        if self.quiet:
            return
        now = self.clock()
        rendered = done - cached
        if self._start is None:
            self._start, self._start_rendered = now, rendered
        self._state = (done, cached, total)
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
        """Seconds left at the rendering speed seen so far; None before there is one."""
        done, cached, total = self._state
        rendered = done - cached - self._start_rendered
        if self._start is None or rendered <= 0 or now <= self._start:
            return None
        return (total - done) * (now - self._start) / rendered

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
        if self.quiet or self._start is None:
            return
        if self.live:
            if self._last_text:
                self.stream.write("\n")
                self.stream.flush()
                self._last_text = ""
        elif not self._finished:
            self._line(self.clock())
            self._finished = True

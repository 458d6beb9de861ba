"""The library's own exceptions. The CLI turns each into one clear line and a non-zero exit.

Every error names the file it is about (and the line or segment where it applies), so a
user can act on it without reading a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def shown(path: Path | str) -> str:
    """A path as the user should see it: relative to the working directory when inside it."""
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.relative_to(Path.cwd()))
        except ValueError:
            return str(p)
    return str(p)


class NarrateError(Exception):
    """A problem the user can fix: bad input, bad configuration, a failed clip."""

    exit_code = 1


class InputError(NarrateError):
    """A seed file that cannot be read or segmented."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        where = f"{shown(path)}:{line}" if line else shown(path)
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{shown(self.path)}:{self.line}" if self.line else shown(self.path)
        return f"{where}: {self.message}"


class ConfigError(NarrateError):
    """voices.yaml or podcast.yaml is invalid; lists every problem at once."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        if len(problems) == 1:
            text = str(problems[0])
        else:
            text = f"{len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(text)


class SynthesisError(NarrateError):
    """A clip that could not be rendered and verified, even after retries."""


class ClipDamaged(SynthesisError):
    """A cached clip whose bytes are not those it was verified with (read for assembly)."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(f"{path}: the clip's bytes changed on disk since it was verified")
        self.path = Path(path)

    def __reduce__(self) -> tuple[type[ClipDamaged], tuple[Path]]:
        return (ClipDamaged, (self.path,))  # raised in assembly's processes, pickled back


class OutputError(NarrateError):
    """Output that could not be written (disk full, permissions, a path outside the project)."""

    @classmethod
    def from_os(cls, exc: OSError) -> OutputError:
        """The one-line error for a failed write: the file, and what the system said."""
        return cls(f"{exc.filename or 'output'}: {exc.strerror or exc}")


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` most likely misspells (letter case aside), for "did you mean"."""
    by_fold = {c.casefold(): c for c in choices}
    match = difflib.get_close_matches(word.casefold(), list(by_fold), n=1, cutoff=0.6)
    return by_fold[match[0]] if match else None

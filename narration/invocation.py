"""`narrate` as the user can type it, for the commands that messages tell them to run.

After `make build` the command is `.venv/bin/narrate`, not on PATH: a hint that says
`narrate build` would fail as printed. So a message names the program as it was run: the
bare name when the shell finds this very program on PATH, else its path.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import sys
from pathlib import Path

from narration.errors import shown

NAME = "narrate"


@functools.cache
def narrate() -> str:
    """The command to type for `narrate` here: 'narrate' or e.g. '.venv/bin/narrate'."""
    running = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if running is None or running.name != NAME:
        return NAME  # python -m narration.cli, the library, a test runner: the documented name
    on_path = shutil.which(NAME)
    if on_path and Path(on_path).resolve() == running.resolve():
        return NAME
    path = shown(running.absolute())
    if "/" not in path:
        path = f"./{path}"  # a bare name would be looked up on PATH, not here
    return shlex.quote(path)


def command(*words: str | Path) -> str:
    """A whole command line to type, each argument quoted for the shell where it needs it."""
    return " ".join([narrate(), *(shlex.quote(str(word)) for word in words)])

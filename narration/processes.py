"""The fork server assembly's processes start from while a build runs threads: a fresh
Python with no threads (forking the build itself could copy into a child a lock another
thread holds, which the child would then wait on forever), which loads assembly's modules
and native libraries once as it starts (`narration.assembly.preload`), so every process
forked from it has them. A module of its own, light to import: a build starts the server
first thing, beside its checks, so a rebuild with one piece to encode does not wait on it.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver
from multiprocessing.context import BaseContext

#: What the server imports before it forks any process: a module by name, never the
#: build's own script (which would run again, should it lack a __main__ guard).
PRELOAD = "narration.assembly.preload"


def fork_server() -> BaseContext:
    """The fork server's context, the server started (loading PRELOAD) if it is not yet."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([PRELOAD])
    forkserver.ensure_running()
    return context

"""What several stages do with processes, in one place: how many cores this process may use,
a loop that keeps N tasks running, and the fork server assembly's processes start from.

The fork server: while a build runs threads, assembly's processes start from a fresh Python
with no threads (forking the build itself could copy into a child a lock another thread
holds, which the child would then wait on forever), which loads assembly's modules and
native libraries once as it starts (`narration.assembly.preload`), so every process forked
from it has them. Light to import (multiprocessing is imported when the server is first
asked for): a build starts the server first thing, beside its checks, so a rebuild with one
piece to encode does not wait on it, and synthesis's workers import this module too.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

#: What the server imports before it forks any process: a module by name, never the
#: build's own script (which would run again, should it lack a __main__ guard).
PRELOAD = "narration.assembly.preload"

Slot = TypeVar("Slot", bound=Hashable)
Task = TypeVar("Task")


def fork_server() -> BaseContext:
    """The fork server's context, the server started (loading PRELOAD) if it is not yet."""
    import multiprocessing
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([PRELOAD])
    forkserver.ensure_running()
    return context


def cores() -> int:
    """Cores this process may use (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def keep_running(
    slots: Sequence[Slot],
    take: Callable[[Slot], Task | None],
    start: Callable[[Slot, Task], None],
    ready: Callable[[list[Slot]], Iterable[Slot]],
    finish: Callable[[Slot, Task], None],
    *,
    depth: int = 1,
    more: Callable[[], bool] | None = None,
) -> None:
    """Keep up to `depth` tasks running on each slot (a worker process, a pool's place)
    until there is nothing left to run: one loop for every stage that drives processes.

    `take(slot)` gives the next task for a slot, or None when it has none now;
    `start(slot, task)` sends it there. `ready(busy)` waits until some of the busy slots
    have a result and gives those slots; `finish(slot, task)` is called with each one's
    oldest task (a slot finishes its tasks in the order sent): it reads the result, and may
    raise to stop the loop (the caller's `finally` stops the processes). When no slot has
    a task running, `more()` (if given) may wait for more work: True to go on, False (or
    no `more`) to end. Slots are filled in their order, each up to `depth` before the next.
    """
    running: dict[Slot, deque[Task]] = {slot: deque() for slot in slots}

    def fill(slot: Slot) -> None:
        while len(running[slot]) < depth and (task := take(slot)) is not None:
            running[slot].append(task)
            start(slot, task)

    while True:
        for slot in running:
            fill(slot)
        busy = [slot for slot, tasks in running.items() if tasks]
        if not busy:
            if more is not None and more():
                continue
            return
        for slot in ready(busy):
            finish(slot, running[slot].popleft())
            fill(slot)

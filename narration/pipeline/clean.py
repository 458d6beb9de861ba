"""`narrate clean`: the clip cache emptied, or everything a build made removed; never the
seeds or the configuration."""

from __future__ import annotations

import shutil
from pathlib import Path

from narration.errors import OutputError
from narration.pipeline.project import Project


def clean_project(project: Project, *, everything: bool) -> list[str]:
    """Empty the clip cache, or remove output/ and .narrate/ (never the seeds or the
    configuration); refused while a build runs on the project, whose files these are."""
    from narration.pipeline.workspace import adopt_legacy, build_lock
    from narration.progress import count as plural
    from narration.synthesis import ClipCache

    done = []
    work = project.work
    try:
        if everything and not work.exists() and not project.output.exists():
            return done
        with build_lock(project.root, "clean"):
            if everything:
                if project.output.exists():
                    shutil.rmtree(project.output)
                    done.append(f"removed {project.display(project.output)}")
                for path in sorted(work.iterdir()):  # all but the lock, held until the end
                    if path != project.build_lock:
                        _remove(path)
            else:
                adopt_legacy(project.root)  # an older narrate's cache is the one to empty
                count = ClipCache(project.cache).clear()
                done.append(
                    f"removed {plural(count, 'cached clip')} from {project.display(project.cache)}"
                )
        if everything:
            project.build_lock.unlink(missing_ok=True)
            work.rmdir()
            done.append(f"removed {project.display(work)}")
    except OSError as exc:
        raise OutputError.from_os(exc) from None
    return done


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()

"""`narrate init`: a new book project with commented starter files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import OutputError

_FILES = {
    "voices.yaml": "voices.yaml",
    "podcast.yaml": "podcast.yaml",
    "seeds/01-example.md": "example.md",
}


def init_project(directory: Path) -> list[Path]:
    """Create DIRECTORY with seeds/, voices.yaml, podcast.yaml and .gitignore; never overwrite."""
    directory = Path(directory)
    existing = [directory / rel for rel in _FILES if (directory / rel).exists()]
    if existing:
        raise OutputError(f"{existing[0]}: already exists; narrate init never overwrites files")
    created = []
    templates = resources.files("narration") / "templates"
    try:
        (directory / "seeds").mkdir(parents=True, exist_ok=True)
        for rel, template in _FILES.items():
            target = directory / rel
            target.write_text(
                templates.joinpath(template).read_text(encoding="utf-8"), encoding="utf-8"
            )
            created.append(target)
        ignore = directory / ".gitignore"
        if not ignore.exists():
            ignore.write_text("output/\n", encoding="utf-8")
            created.append(ignore)
    except OSError as exc:
        raise OutputError(f"{exc.filename or directory}: {exc.strerror}") from None
    return created

"""`narrate init`: a new book project with commented starter files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from narration.errors import OutputError
from narration.layout import OUTPUT_DIR, PODCAST_FILE, SEEDS_DIR, VOICES_FILE, WORK_DIR

_FILES = {  # where each template goes in a new project
    VOICES_FILE: VOICES_FILE,  # templates/ names them as a project does
    PODCAST_FILE: PODCAST_FILE,
    f"{SEEDS_DIR}/01-example.md": "example.md",
}


def init_project(directory: Path) -> list[Path]:
    """Create DIRECTORY with seeds/, voices.yaml, podcast.yaml and .gitignore (and an example
    text, unless seeds/ holds texts already); never overwrite, and never beside a running
    build."""
    from narration.pipeline.workspace import refuse_while_building

    directory = Path(directory)
    refuse_while_building(directory, "run narrate init")
    files = dict(_FILES)
    seeds = directory / SEEDS_DIR
    if seeds.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in seeds.iterdir()):
        del files[f"{SEEDS_DIR}/01-example.md"]  # the user's texts are there: no example
    existing = [directory / rel for rel in files if (directory / rel).exists()]
    if existing:
        raise OutputError(f"{existing[0]}: already exists; narrate init never overwrites files")
    created = []
    templates = resources.files("narration") / "templates"
    try:
        (directory / SEEDS_DIR).mkdir(parents=True, exist_ok=True)
        for rel, template in files.items():
            target = directory / rel
            target.write_text(
                templates.joinpath(template).read_text(encoding="utf-8"), encoding="utf-8"
            )
            created.append(target)
        ignore = directory / ".gitignore"
        if not ignore.exists():
            # the show as built, and what the build keeps for itself (cache, state, lock)
            ignore.write_text(f"{OUTPUT_DIR}/\n{WORK_DIR}/\n", encoding="utf-8")
            created.append(ignore)
    except OSError as exc:
        raise OutputError(f"{exc.filename or directory}: {exc.strerror}") from None
    return created

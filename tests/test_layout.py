"""The package's shape: stages import only earlier ones, and the project's layout (the names
of its files and of what a build writes) is stated in narration/layout.py alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from narration import layout

PACKAGE = Path(__file__).resolve().parent.parent / "narration"

#: The pipeline in order. A stage may import the shared modules and earlier stages only.
STAGES = [
    "readers",
    "inline",
    "sentences",
    "coverage",
    "headings",
    "locate",
    "segment",
    "outline",
    "speakers",
    "cast",
    "engines",
    "synth",
    "audio",
    "assemble",
    "cluster",
    "feed",
    "page",
    "serve",
]
#: Modules every stage may use: they import no stage.
SHARED = {"layout", "errors", "model", "files", "progress", "config", "directories"}
SHARED |= {"fingerprint", "cover", "invocation", "processes"}
#: What runs the stages: nothing but the CLI imports these.
ORCHESTRATION = {"project", "build", "streaming", "scaffold", "cli", "workspace"}


def narration_imports(path: Path) -> set[str]:
    """The narration modules a file imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                parts = base + (node.module.split(".") if node.module else [])
                names = [".".join(parts)] if node.module else []
                names += [".".join([*parts, alias.name]) for alias in node.names]
            else:
                names = [node.module or ""]
            found |= {n for n in names if n.startswith("narration.")}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("narration.")}
    return {n.split(".")[1] for n in found}


def modules() -> dict[str, set[str]]:
    """Top-level module (or package) name -> the top-level modules it imports."""
    out: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        out.setdefault(top, set()).update(narration_imports(path) - {top})
    return out


def test_no_stage_imports_a_later_one_or_the_orchestration() -> None:
    graph = modules()
    wrong = []
    for name, imported in sorted(graph.items()):
        if name in ORCHESTRATION or name == "__init__":
            continue
        for other in sorted(imported):
            if other in ORCHESTRATION:
                wrong.append(f"{name} imports {other}")
            elif name in SHARED and other in STAGES:
                wrong.append(f"{name} (shared) imports the stage {other}")
            elif name in STAGES and other in STAGES and STAGES.index(other) > STAGES.index(name):
                wrong.append(f"{name} imports the later stage {other}")
    assert not wrong, wrong
    unknown = set(graph) - set(STAGES) - SHARED - ORCHESTRATION - {"__init__", "templates"}
    assert not unknown, f"place these modules in the pipeline: {sorted(unknown)}"


NAMES = [
    layout.SEEDS_DIR,
    layout.VOICES_FILE,
    layout.PODCAST_FILE,
    layout.LOCK_FILE,
    layout.FEED_FILE,
    layout.PAGE_FILE,
    layout.REPORT_FILE,
    layout.STATE_DIR,
    *layout.SEED_COVERS,
    ".chapters.json",
]


@pytest.mark.parametrize("name", NAMES)
def test_the_layout_names_each_file_in_one_place(name: str) -> None:
    """No module but layout.py spells a project or output file name in its code (docstrings
    and messages may mention them)."""
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "layout.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == name and id(node) not in docstrings:
                spelled.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not spelled, f"{name!r} spelled outside layout.py: {spelled}"


def test_a_project_finds_its_files_through_the_layout(tmp_path: Path) -> None:
    from narration.project import Project

    project = Project(tmp_path)
    assert project.seeds == tmp_path / layout.SEEDS_DIR
    assert project.voices_file == tmp_path / layout.VOICES_FILE
    assert project.lock_file == tmp_path / layout.LOCK_FILE
    assert project.output == tmp_path / layout.OUTPUT_DIR
    assert layout.chapter_files(project.output, "01-a") == (
        project.output / "01-a.mp3",
        project.output / "01-a.vtt",
        project.output / "01-a.chapters.json",
    )
    assert layout.is_chapter_file("01-a.chapters.json") and not layout.is_chapter_file("a.mp3")

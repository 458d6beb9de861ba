"""The package's shape: the folder list is the pipeline (one package per stage, in the
README's map), stages import only earlier ones, nothing imports in a cycle, and the project's
layout (the names of its files and of what a build writes) is stated in narration/layout.py
alone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from narration import layout

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "narration"

#: The pipeline in order, a package each. A stage may import the shared modules and
#: earlier stages only.
STAGES = ["reading", "segmenting", "casting", "synthesis", "assembly", "publishing"]
#: Where a stage's work may run elsewhere, behind the interface the stage offers
#: (synthesis's RemoteRenderer, assembly's Offload): a backend may import the stages it
#: serves, and only the pipeline chooses one.
BACKENDS = ["cluster"]
#: What runs the stages: the pipeline package, and the thin command on top of it.
ORCHESTRATION = ["pipeline", "cli"]
#: Modules every stage may use: they import no stage.
SHARED = {"layout", "errors", "model", "files", "progress", "config"}
SHARED |= {"fingerprint", "invocation", "processes"}
#: Not Python: the files `narrate init` copies.
DATA = {"templates"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _known(name: str) -> str:
    """The module a dotted name lives in (a name imported from a module, or the module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def narration_imports(path: Path) -> set[str]:
    """The narration modules a file imports, at the top, inside a function or for types."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                found.add(_known(full) if full in MODULES else _known(module))
        elif isinstance(node, ast.Import):
            found |= {_known(alias.name) for alias in node.names}
    return {f for f in found if f.startswith("narration") and f != name} - {"narration"}


GRAPH = {name: narration_imports(path) for name, path in MODULES.items()}


def top(name: str) -> str:
    return name.split(".")[1]


def test_every_module_has_its_place_in_the_pipeline() -> None:
    places = {*STAGES, *BACKENDS, *ORCHESTRATION, *SHARED}
    unknown = {top(m) for m in MODULES if m != "narration"} - places
    assert not unknown, f"place these in the pipeline: {sorted(unknown)}"
    for stage in [*STAGES, *BACKENDS, "pipeline"]:
        assert (PACKAGE / stage / "__init__.py").is_file(), f"{stage} is a package"
    missing = {*SHARED} - {top(m) for m in MODULES if m != "narration"}
    assert not missing, f"shared modules that no longer exist: {sorted(missing)}"


def test_no_stage_imports_a_later_one_or_what_runs_it() -> None:
    order = [*STAGES, *BACKENDS, *ORCHESTRATION]
    wrong = []
    for name, imported in sorted(GRAPH.items()):
        if name == "narration":
            continue
        here = top(name)
        for other in sorted({top(m) for m in imported}):
            if other == here:
                continue
            if here in SHARED and other not in SHARED:
                wrong.append(f"{name} (shared) imports {other}")
            elif here in order and other in order and order.index(other) > order.index(here):
                wrong.append(f"{name} imports the later {other}")
            elif here in STAGES and other in BACKENDS:
                wrong.append(f"the stage {name} imports the backend {other}")
    assert not wrong, wrong


def test_no_import_cycle() -> None:
    """Module by module, type-only and function-level imports included: a cycle would mean
    neither module can be read (or tested, or moved) without the other."""
    seen: dict[str, int] = {}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        seen[name] = 1
        for other in sorted(GRAPH.get(name, ())):
            if seen.get(other) == 1:
                cycles.append(" -> ".join([*path[path.index(other) :], other]))
            elif other not in seen:
                visit(other, [*path, other])
        seen[name] = 2

    for name in sorted(GRAPH):
        if name not in seen:
            visit(name, [name])
    assert not cycles, cycles


def readme_map() -> list[str]:
    """The packages named in the first column of the README's pipeline table, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Inside: the pipeline", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| [^|]+ \| `narration/(\w+)/`", section, flags=re.MULTILINE)


def test_the_readme_map_is_the_folder_list() -> None:
    """The README's pipeline section is the one map: its rows are the stage packages in
    order, then the backend and the pipeline that runs them."""
    assert readme_map() == [*STAGES, *BACKENDS, "pipeline"]


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
    from narration.pipeline.project import Project

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


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a test file imports, or may import (`from x import y` may import x.y),
    by its dotted name in tests/ (`tests.` dropped), with its line: relative imports of
    more than one level leave tests/ and are left out."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level <= 1:
            module = node.module or ""
            names = [module, *(f"{module}.{alias.name}".lstrip(".") for alias in node.names)]
        else:
            continue
        for name in names:
            absolute = isinstance(node, ast.Import) or node.level == 0
            found.append((node.lineno, name.removeprefix("tests.") if absolute else name))
    return found


def test_no_test_module_imports_another() -> None:
    """Test modules stand alone: what they share is in tests/support.py (helpers) or
    tests/conftest.py (fixtures, which pytest gives by name), never imported from a sibling
    test module or from conftest."""
    tests = Path(__file__).resolve().parent
    siblings = {p.stem for p in tests.glob("*.py")} - {"__init__", "support"}
    found = {
        f"{path.name}:{line} imports {name.split('.')[0]}"
        for path in sorted(tests.glob("*.py"))
        for line, name in imported_modules(path)
        if name.split(".")[0] in siblings
    }
    assert not found, sorted(found)

"""The documentation keeps up with the code (sqlite-utils' docs/test_docs.py is the model):
every command is in the README, every option somewhere in the docs, every key of
voices.yaml and podcast.yaml has exactly one entry in a key table, the YAML shown parses
into the real models, and every relative link lands on a file and heading that exist.

A key's entry is a row of a Markdown table headed `| key | default | what it does |`
whose first cell is the key's full path in backticks: `pauses.sentence`,
`voices.<name>.rate` (any voice), `rules[].kind` (any rule). Such tables live in
docs/configuration.md; the test reads README.md and every Markdown file under docs/.
"""

from __future__ import annotations

import re
import typing
from collections import Counter
from pathlib import Path

import click
import pytest
import yaml
from pydantic import BaseModel

from narration.cli import main
from narration.config import PodcastConfig, VoicesConfig

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").rglob("*.md"))
#: Every Markdown page whose links are checked.
PAGES = [README, *DOCS, ROOT / "benchmarks" / "README.md"]
KEY_TABLE_HEADER = re.compile(r"^\|\s*key\s*\|\s*default\s*\|\s*what it does\s*\|\s*$")
KEY_CELL = re.compile(r"^`([^`]+)`$")
FENCE = re.compile(r"^\s*(```|~~~)")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `# comment` in a shell block is no heading)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def model_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key a user can write in a file `model` reads, as a full path: a nested model's
    keys under `name.`, a dict of models' under `name.<name>.`, a list of models' under
    `name[].`."""
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += model_keys(annotation, f"{prefix}{name}.")
        elif origin is dict and _is_model(args[1]):
            keys += model_keys(args[1], f"{prefix}{name}.<name>.")
        elif origin is list and _is_model(args[0]):
            keys += model_keys(args[0], f"{prefix}{name}[].")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def documented_keys(pages: list[Path]) -> list[tuple[str, str, str]]:
    """(table section, key, description) for every row of every key table in `pages`; the
    section is the heading of the file the table sits under (voices.yaml or podcast.yaml)."""
    rows = []
    for page in pages:
        file_section, in_table = "", False
        for line in _prose_lines(page.read_text(encoding="utf-8")):
            heading = re.match(r"^##\s+(\S+)\s*$", line)
            if heading:
                file_section = heading.group(1)
            if KEY_TABLE_HEADER.match(line):
                in_table = True
                continue
            if not in_table:
                continue
            if not line.startswith("|"):
                in_table = False
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set(cells[0]) <= set("-: "):
                continue  # the |---| line
            key = KEY_CELL.match(cells[0])
            assert key, f"{page.name}: a key table's row names no `key`: {line}"
            rows.append((file_section, key.group(1), cells[-1]))
    return rows


VOICES_KEYS = model_keys(VoicesConfig)
PODCAST_KEYS = model_keys(PodcastConfig)
ROWS = documented_keys([README, *DOCS])


def test_the_models_give_the_keys_the_docs_promise() -> None:
    """The walk over the models finds nested keys (else the tests below prove little)."""
    for key in ("pauses.sentence", "audio.true_peak", "voices.<name>.speed", "rules[].kind"):
        assert key in VOICES_KEYS
    for key in ("auto", "engine", "min_quotations", "pool", "voices", "genders", "merge"):
        assert f"characters.{key}" in VOICES_KEYS
    assert "owner_email" in PODCAST_KEYS and "scheduler" in PODCAST_KEYS


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_is_in_the_readme(command: str) -> None:
    assert re.search(rf"\bnarrate {command}\b", README.read_text(encoding="utf-8")), (
        f"README.md never shows `narrate {command}`"
    )


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (name, opt)
        for name, cmd in sorted(main.commands.items())
        for param in cmd.params
        if isinstance(param, click.Option) and "--help" not in param.opts
        for opt in [*param.opts, *param.secondary_opts]
        if opt.startswith("--")
    ],
)
def test_every_option_is_documented(command: str, option: str) -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in [README, *DOCS])
    assert re.search(rf"{re.escape(option)}(?![\w-])", text), (
        f"narrate {command} {option} is in neither README.md nor docs/"
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [("voices.yaml", k) for k in VOICES_KEYS] + [("podcast.yaml", k) for k in PODCAST_KEYS],
)
def test_every_key_is_documented_once(section: str, key: str) -> None:
    found = [row for row in ROWS if row[:2] == (section, key)]
    assert len(found) == 1, (
        f"{section} key `{key}` has {len(found)} entries in the key tables of README.md and "
        f"docs/ (under '## {section}'); it needs exactly one"
    )
    assert found[0][2], f"{section} key `{key}` has an empty description"


def test_no_entry_for_a_key_that_does_not_exist() -> None:
    known = {("voices.yaml", k) for k in VOICES_KEYS} | {("podcast.yaml", k) for k in PODCAST_KEYS}
    stale = [row[:2] for row in ROWS if row[:2] not in known]
    assert not stale, f"key tables document keys the models do not have: {stale}"
    doubled = [k for k, n in Counter(row[:2] for row in ROWS).items() if n > 1]
    assert not doubled, f"keys documented more than once: {doubled}"


def _yaml_blocks(page: Path) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_yaml_shown_is_valid_configuration(page: Path) -> None:
    """A YAML example a reader copies parses and has only real keys of the right types
    (the checks that need the engines, such as voice ids, are the build's)."""
    for block in _yaml_blocks(page):
        data = yaml.safe_load(block)
        assert isinstance(data, dict), f"{page.name}: a YAML block is not a mapping:\n{block}"
        if set(data) <= set(PodcastConfig.model_fields):
            PodcastConfig.model_validate(data)
            continue
        voices = {"voices": {"x": {}}, "default": "x"}
        VoicesConfig.model_validate({**voices, **data})


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: Counter[str] = Counter()
    anchors = set()
    for line in _prose_lines(page.read_text(encoding="utf-8")):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = _slug(heading.group(1))
            anchors.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
    return anchors


def _links(page: Path) -> list[str]:
    text = "\n".join(_prose_lines(page.read_text(encoding="utf-8")))
    text = re.sub(r"`[^`\n]*`", "", text)  # [x](y) inside inline code is not a link
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in _links(page):
        if re.match(r"[a-z]+:", link):
            continue  # https:, mailto:
        target, _, fragment = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link} (no {path.relative_to(ROOT)})")
        elif fragment and path.suffix == ".md" and fragment not in _anchors(path):
            broken.append(f"{link} (no heading #{fragment} in {path.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def test_the_readme_links_every_page_of_docs() -> None:
    text = README.read_text(encoding="utf-8")
    unlinked = [p.name for p in DOCS if f"(docs/{p.relative_to(ROOT / 'docs')}" not in text]
    assert not unlinked, f"README.md links no docs/ page named {unlinked}"

"""voices.yaml and podcast.yaml read as YAML with each value's line, and pydantic's
complaints worded as problems at those lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from narration.errors import ConfigError, Problem, closest
from narration.invocation import narrate


def line_index_of(path: Path) -> dict[tuple[str | int, ...], int]:
    """A YAML file's key paths and their lines ({} when it cannot be read): for messages."""
    try:
        return line_index(path.read_text(encoding="utf-8-sig")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError):
        return {}


def line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each path in a YAML document (keys and list indexes) to its 1-based line.

    Walked without recursion and each node once: an alias is not followed again, so a
    document whose aliases nest (or contain themselves) cannot make this slow or crash.
    """
    index: dict[tuple[str | int, ...], int] = {}
    try:
        root = yaml.compose(text)
    except (yaml.YAMLError, RecursionError):
        return index
    if root is None:
        return index
    index[()] = root.start_mark.line + 1
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
                index[(*path, k)] = key.start_mark.line + 1
                stack.append((value, (*path, k)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index[(*path, i)] = item.start_mark.line + 1
                stack.append((item, (*path, i)))
    return index


#: A configuration is small and flat; deeper nesting or more values than this (YAML aliases
#: can multiply a few lines into billions of values, or contain themselves) is refused.
MAX_YAML_DEPTH = 64


MAX_YAML_VALUES = 200_000


def _check_shape(root: yaml.Node, path: Path) -> None:
    """ConfigError if the document, aliases expanded, nests too deep or holds too much."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        line = node.start_mark.line + 1
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(
                [
                    Problem(
                        path,
                        line,
                        f"nested more than {MAX_YAML_DEPTH} levels deep "
                        "(or a YAML alias that contains itself)",
                    )
                ]
            )
        if count > MAX_YAML_VALUES:
            raise ConfigError(
                [
                    Problem(
                        path,
                        line,
                        f"too large: more than {MAX_YAML_VALUES:,} values once its YAML "
                        "aliases are expanded",
                    )
                ]
            )
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


class LineLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but date-shaped values stay text (PyYAML's timestamp resolver
    raises on `2026-13-45` before any check could name the line; pydantic parses the real
    dates), and a key given twice in one mapping is noted, not silently overwritten."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.duplicates: list[tuple[str, int, int]] = []  # key, first line, repeated line

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                self.duplicates.append((key, seen[key], line))
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _duplicate_problems(path: Path, duplicates: list[tuple[str, int, int]]) -> list[Problem]:
    return [
        Problem(path, line, f"'{key}' is given twice, on lines {first} and {line}; keep one")
        for key, first, line in sorted(duplicates, key=lambda d: d[2])
    ]


LineLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def load_yaml(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """The document and the line of each key; ConfigError for syntax, shape, or a key given
    twice (every such key at once)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
        ) from None
    try:
        loader = LineLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_shape(node, path)  # before building it: aliases can expand without end
            data = loader.construct_document(node) if node is not None else None
            duplicates = loader.duplicates
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(path, line, f"YAML syntax error: {what}")]) from None
    except RecursionError:
        raise ConfigError(
            [Problem(path, None, f"nested more than {MAX_YAML_DEPTH} levels deep")]
        ) from None
    if duplicates:
        raise ConfigError(_duplicate_problems(path, duplicates))
    return data, line_index(text)


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The valid keys of the model found at `loc` (for 'did you mean' suggestions)."""
    current: Any = model
    skip_key = False  # inside a dict of models, the next string is a user's key
    for part in loc:
        if isinstance(part, int):
            continue
        if skip_key:
            skip_key = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        skip_key = getattr(annotation, "__origin__", None) is dict
        nxt = None
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nxt = candidate
        current = nxt
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


_BOUND_MESSAGES = {
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
}


def _bounds(model: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[Any, Any] | None:
    """The (ge, le) bounds declared for the field at `loc`, if any."""
    current: Any = model
    field = None
    skip_key = False
    for part in loc:
        if isinstance(part, int):
            continue
        if skip_key:
            skip_key = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        skip_key = getattr(annotation, "__origin__", None) is dict
        current = next(
            (
                c
                for c in (annotation, *getattr(annotation, "__args__", ()))
                if isinstance(c, type) and issubclass(c, BaseModel)
            ),
            None,
        )
    if field is None:
        return None
    ge = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
    le = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    return (ge, le) if ge is not None and le is not None else None


def validation_problems(
    path: Path,
    model: type[BaseModel],
    exc: ValidationError,
    lines: dict[tuple[str | int, ...], int],
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = None
        for i in range(len(loc), -1, -1):
            if loc[:i] in lines:
                line = lines[loc[:i]]
                break
        where = location_of(loc)
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            hint = closest(key, _fields_at(model, loc[:-1]))
            msg = f"unknown key '{key}'" + (f" (did you mean '{hint}'?)" if hint else "")
            if loc[:1] == ("rules",) and key in ("speaker", "character", "characters"):
                msg += (
                    "; a rule matches segments, not speakers: give a character its voice "
                    f"under characters: voices: (`{narrate()} characters` lists them)"
                )
            where = location_of(loc[:-1])
        elif err["type"] == "missing":
            msg = "is required"
        elif err["type"] in _BOUND_MESSAGES and (bounds := _bounds(model, loc)):
            msg = f"must be between {bounds[0]} and {bounds[1]} (got {err['input']!r})"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and not isinstance(err["input"], dict | list):
                msg += f" (got {err['input']!r})"
        problems.append(Problem(path, line, f"{where}: {msg}" if where else msg))
    return problems


def location_of(loc: tuple[str | int, ...]) -> str:
    """A location as users write it: rules[1].kind, voices.serge.rate."""
    text = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    return text

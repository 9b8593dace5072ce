"""YAML settings files (config.yaml, site rules) → validated pydantic models, with errors naming file and line.

The only module that imports PyYAML. A wrong value becomes a ConfigError whose lines each name the file, the
line, the key path and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from feeder.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)
Location = tuple[str | int, ...]


class Document:
    """One YAML file, parsed: its data, and its node tree to find the line of any key."""

    def __init__(self, text: str, path: Path, what: str) -> None:
        self.path = path
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            problem = getattr(e, "problem", None) or str(e)
            raise ConfigError(f"{where}: not valid YAML: {problem}") from e
        if not isinstance(self.data, dict):
            raise ConfigError(f"{path}: {what} must be a mapping of settings, got {type(self.data).__name__}")
        duplicates = [
            f"{path}:{line}: {key}: set twice (the first value would be ignored)"
            for line, key in _duplicate_keys(self.root, [])
        ]
        if duplicates:
            raise ConfigError("\n".join(duplicates))
        self._names: set[str] = set()
        self._kinds: Mapping[str, str] = {}

    def validate(
        self, model: type[Model], context: dict[str, Any] | None = None, kinds: Mapping[str, str] | None = None
    ) -> Model:
        """The data as ``model``; ConfigError with one line per problem. ``kinds`` maps a ``kind`` written in the
        file to the one it is validated as (an old name), so errors inside such an item find its line."""
        self._names = field_names(model)
        self._kinds = kinds or {}
        try:
            return model.model_validate(self.data, context=context)
        except ValidationError as e:
            lines = [self.describe(_location(err), _message(err)) for err in e.errors()]
            raise ConfigError("\n".join(lines)) from e

    def describe(self, loc: Location, message: str) -> str:
        node, keys = _locate(self.root, loc, self._names, self._kinds)
        where = f"{self.path}:{node.start_mark.line + 1}" if node is not None else str(self.path)
        return f"{where}: {key_path(keys) or '(top level)'}: {message}"

    def fail(self, problems: Iterable[tuple[Location, str]]) -> None:
        """Raise one ConfigError for every problem found past field validation, if any."""
        lines = [self.describe(loc, message) for loc, message in problems]
        if lines:
            raise ConfigError("\n".join(lines))


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: {what} not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read {what}: {e}") from e


def field_names(model: type[BaseModel]) -> set[str]:
    """Every field name of a model and of the models its fields hold."""
    names: set[str] = set()
    pending, seen = [model], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, info in current.model_fields.items():
            names.add(name)
            pending.extend(_models_in(info.annotation))
    return names


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in getattr(annotation, "__args__", ()) or ():
        yield from _models_in(argument)
    for meta in getattr(annotation, "__metadata__", ()) or ():
        yield from _models_in(meta)
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and origin is not annotation:
        yield from _models_in(origin)


def _duplicate_keys(node: yaml.Node | None, keys: list[Any]) -> Iterator[tuple[int, str]]:
    """(line, key path) of every mapping key written twice; YAML keeps the last one silently."""
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key_node, value_node in node.value:
            if key_node.value in seen:
                yield key_node.start_mark.line + 1, key_path([*keys, key_node.value])
            seen.add(key_node.value)
            yield from _duplicate_keys(value_node, [*keys, key_node.value])
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, [*keys, index])


def _location(err: Any) -> tuple[Any, ...]:
    """The key an error is about; a source's unknown or missing ``kind`` is reported at ``kind``."""
    loc = tuple(err["loc"])
    return (*loc, "kind") if err["type"] in ("union_tag_invalid", "union_tag_not_found") else loc


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown setting"
    if err["type"] in ("missing", "union_tag_not_found"):
        return "required setting is missing"
    if err["type"] == "union_tag_invalid":
        return f"unknown kind {err['ctx']['tag']!r} (expected one of: {err['ctx']['expected_tags']})"
    return str(err["msg"]).removeprefix("Value error, ")


def _locate(
    node: yaml.Node | None, loc: tuple[Any, ...], names: set[str], kinds: Mapping[str, str]
) -> tuple[yaml.Node | None, list[Any]]:
    """Follow a pydantic error location through the YAML node tree, as far as it goes."""
    keys: list[Any] = []
    for part in loc:
        kind = _child(node, "kind")
        if isinstance(kind, yaml.ScalarNode) and kinds.get(kind.value, kind.value) == part:
            continue  # the tag pydantic puts in the location of a union's member
        child = _child(node, part)
        if child is None:
            if node is not None and not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
                break  # a value written as one scalar that the model reads as a list or a mapping
            if isinstance(part, int) or part in names:
                keys.append(part)
            continue
        keys.append(part)
        node = child
    return node, keys


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == part:
                return value_node  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def key_path(keys: list[Any]) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out

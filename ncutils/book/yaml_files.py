"""Reading the book's YAML (profiles, ``-p`` values) strictly, with errors that name the file.

PyYAML's ``safe_load`` reads YAML 1.1, where ``1e-3`` is a *string* (a float needs a dot
and a signed exponent: ``1.0e-3``), and a mapping that repeats a key silently keeps the
last value. Here:

* a number in exponent notation is a float, as YAML 1.2 reads it (``1e-3``, ``5E+2``, ``2e4``);
* a repeated key in one mapping is an error naming the file, the key and both lines
  (a merge key ``<<: *anchor`` still lets the mapping override what it merges);
* a file that is not UTF-8 is an error naming the file and the offending byte's position.

Examples
--------
>>> loads("lr: 1e-3\\nepochs: 10\\nwidth: 1.5")
{'lr': 0.001, 'epochs': 10, 'width': 1.5}
>>> loads("a: 1\\na: 2")
Traceback (most recent call last):
...
ValueError: duplicate key 'a' at line 2 (first at line 1)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["BookLoader", "DuplicateKeyError", "load", "loads"]


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping repeats a key."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        self.key, self.line, self.first_line = key, line, first_line
        super().__init__(problem=f"duplicate key {key!r} at line {line} (first at line {first_line})")

    def __str__(self) -> str:
        return self.problem


class BookLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2's exponent floats and no repeated keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # SafeLoader reports an unhashable key itself
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise DuplicateKeyError(key, line, seen[key])
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 core schema: exponent notation without a dot or without a sign is a float too
# (YAML 1.1 reads "1e-3" as a string); tried after PyYAML's int and float patterns.
BookLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def loads(text: str) -> Any:
    """Parse YAML text with :class:`BookLoader`.

    Raises
    ------
    ValueError
        A repeated key (naming it and its lines).
    yaml.YAMLError
        Any other YAML error.
    """
    try:
        return yaml.load(text, Loader=BookLoader)  # noqa: S506 - BookLoader is a SafeLoader
    except DuplicateKeyError as error:
        raise ValueError(str(error)) from None


def load(path: str | Path) -> Any:
    """Read a YAML file with :class:`BookLoader`.

    Raises
    ------
    ValueError
        Naming the file: not UTF-8, invalid YAML, or a repeated key.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise ValueError(f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at line {line}); "
                         f"save it as UTF-8") from None
    try:
        return loads(text)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: invalid YAML ({error})") from None

"""Typed reads of one YAML mapping of the config, with every problem recorded by dotted path.

Owns the generic field reader that ``router.config.sections`` parses each section with:
``Problems`` collects ``dotted.path: what is wrong``, ``Section`` reads one mapping's fields as
strings, URLs, flags, integers, positive numbers or nested sections, and the ``as_*`` coercions turn
single values into sizes and seconds. A bad value records a problem and reads as the caller's
default, so parsing always runs to the end and reports everything at once.

Knows nothing of the config's schema: no field names, defaults or records live here. Messages
name paths and rules but never repeat a value read from the file or the environment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import fields
from typing import TypeVar

from router.config.env import EnvText, child_path

_SIZE = re.compile(r"\d+x\d+")
_INTEGER = re.compile(r"[-+]?[0-9]+")

_D = TypeVar("_D")  # the default a typed read falls back to (None for optional fields)


class Problems:
    """Problems by dotted path; a value whose variable is unset is reported once, for that."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._unset_paths: set[str] = set()

    def add(self, path: str, message: str) -> None:
        if path not in self._unset_paths:
            self.messages.append(f"{path}: {message}")

    def unset_variable(self, path: str, variable: str) -> None:
        self.messages.append(f"{path}: environment variable {variable} is not set")
        self._unset_paths.add(path)


class Section:
    """One mapping of the file. A bad value records a problem and reads as the default."""

    def __init__(self, raw: object, path: str, problems: Problems, known: Collection[str]) -> None:
        self.path = path
        self.problems = problems
        self._raw: Mapping[object, object] = raw if isinstance(raw, Mapping) else {}
        if raw is not None and not isinstance(raw, Mapping):
            problems.add(path, "must be a mapping")
        for name in self._raw:
            if name not in known:
                problems.add(self.at(name), "unknown field")

    def at(self, name: object) -> str:
        return child_path(self.path, name)

    def get(self, name: str, default: object = None) -> object:
        value = self._raw.get(name)
        return default if value is None else value

    def problem(self, name: str, message: str) -> None:
        self.problems.add(self.at(name), message)

    def section(self, name: str, known: Collection[str]) -> Section:
        return Section(self.get(name), self.at(name), self.problems, known)

    def sections(self, name: str, known: Collection[str]) -> list[Section]:
        """The mappings of a required list field."""
        found = []
        for path, item in self.items(name, required=True):
            if isinstance(item, Mapping):
                found.append(Section(item, path, self.problems, known))
            else:
                self.problems.add(path, "must be a mapping")
        return found

    def items(self, name: str, *, required: bool = False) -> list[tuple[str, object]]:
        """``(path, value)`` per entry of a list field, which must not be empty when given."""
        value = self.get(name)
        if value is None:
            if required:
                self.problem(name, "is required")
            return []
        if not isinstance(value, list) or not value:
            self.problem(name, "must be a non-empty list")
            return []
        return [(f"{self.at(name)}[{i}]", item) for i, item in enumerate(value)]

    def entries(self, name: str, *, required: bool = False) -> list[tuple[str, str, object]]:
        """``(key, path, value)`` per entry of a mapping field keyed by names."""
        value = self.get(name)
        if value is None:
            if required:
                self.problem(name, "is required")
            return []
        if not isinstance(value, Mapping) or not value:
            self.problem(name, "must be a non-empty mapping")
            return []
        found: list[tuple[str, str, object]] = []
        for key, item in value.items():
            path = child_path(self.at(name), key)
            if isinstance(key, str) and key:
                found.append((key, path, item))
            else:
                self.problems.add(path, "names must be non-empty strings")
        return found

    def text(self, name: str, default: str = "") -> str:
        value = self.get(name, default)
        if not isinstance(value, str):
            self.problem(name, "must be a string")
            return default
        return str(value)  # a plain str, never EnvText

    def required_text(self, name: str, default: str = "") -> str:
        """A non-empty string; ``default`` when absent, and a problem when there is none."""
        value = self.text(name, default)
        if not value and isinstance(self.get(name, ""), str):  # a non-string was reported already
            self.problem(name, "must not be empty" if name in self._raw else "is required")
        return value

    def choice(self, name: str, default: str, options: Collection[str]) -> str:
        value = self.text(name, default)
        if value not in options:
            self.problem(name, f"must be one of {', '.join(options)}")
            return default
        return value

    def url(self, name: str) -> str:
        """An http(s) URL without its trailing slash, or "" when not given."""
        url = self.text(name).rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            self.problem(name, "must start with http:// or https://")
        return url

    def flag(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if isinstance(value, EnvText) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.problem(name, "must be true or false")
            return default
        return value

    def integer(
        self, name: str, default: _D, *, low: int | None = None, high: int | None = None
    ) -> int | _D:
        raw = self.get(name)
        if raw is None:
            return default
        value = _as_int(raw)
        if value is None:
            self.problem(name, "must be an integer")
        elif (low is not None and value < low) or (high is not None and value > high):
            self.problem(name, f"must be >= {low}" if high is None else f"must be {low} to {high}")
        else:
            return value
        return default

    def positive(self, name: str, default: _D) -> float | _D:
        raw = self.get(name)
        value = None if raw is None else check_positive(raw, self.at(name), self.problems)
        return default if value is None else value

    def share(self, name: str, default: float) -> float:
        """A fraction in (0, 1]."""
        value = self.positive(name, default)
        if value > 1:
            self.problem(name, "must be > 0 and <= 1")
            return default
        return value


def check_positive(raw: object, path: str, problems: Problems) -> float | None:
    """``raw`` as a finite number > 0, or None after recording why it is not one."""
    value = _as_float(raw)
    if value is None:
        problems.add(path, "must be a number")
    elif not value > 0:
        problems.add(path, "must be > 0")
    else:
        return value
    return None


def as_seconds(value: object) -> int | None:
    """A whole number of seconds > 0; digit strings count, as OpenAI's own API sends "8"."""
    number = int(value) if isinstance(value, str) and _INTEGER.fullmatch(value) else _as_int(value)
    return number if number is not None and number > 0 else None


def as_size(value: object) -> str | None:
    """A ``WxH`` size such as 1280x720."""
    return str(value) if isinstance(value, str) and _SIZE.fullmatch(value) else None


def field_names(cls: type) -> frozenset[str]:
    """The field names of a dataclass: the keys its section may hold."""
    return frozenset(f.name for f in fields(cls))


def report_repeats(found: list[tuple[str, str]], problems: Problems, what: str) -> None:
    """Report each repeated non-empty value at its path, naming where it first appeared."""
    first: dict[str, str] = {}
    for path, value in found:
        if value and value in first:
            problems.add(path, f"same {what} as {first[value]}")
        first.setdefault(value, path)


def _as_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, EnvText) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def _as_float(value: object) -> float | None:
    """A finite number; bools are not numbers."""
    if isinstance(value, EnvText):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)

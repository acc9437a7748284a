"""``${VAR}`` and ``${VAR:-default}`` expansion over a parsed YAML tree.

Used by ``router.config.model``.

Expansion runs on string values after YAML parsing, never on the file's text, so a value from
the environment can never change the document's structure. Mapping keys are left as written.
Like the shell, ``${VAR:-default}`` uses the default when VAR is unset or empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class EnvText(str):
    """A string with at least one reference expanded in it.

    Typed fields accept it when its text reads as their type, so ``port: ${PORT:-8000}`` works
    although YAML saw a string there; a literal ``port: "8000"`` stays a type error.
    """

    __slots__ = ()


def child_path(path: str, key: object) -> str:
    """The dotted path of ``key`` inside the mapping at ``path`` ("" is the document root)."""
    return f"{path}.{key}" if path else str(key)


def expand_env(raw: object, env: Mapping[str, str]) -> tuple[object, list[tuple[str, str]]]:
    """``raw`` with every string's references expanded, and ``(path, variable)`` per unset one.

    An unset variable without a default expands to "" so the rest of the tree can still be
    checked; the caller reports it.
    """
    unset: list[tuple[str, str]] = []
    return _expand(raw, env, "", unset), unset


def _expand(raw: object, env: Mapping[str, str], path: str, unset: list[tuple[str, str]]) -> object:
    if isinstance(raw, str):
        return _expand_text(raw, env, path, unset)
    if isinstance(raw, dict):
        return {k: _expand(v, env, child_path(path, k), unset) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_expand(v, env, f"{path}[{i}]", unset) for i, v in enumerate(raw)]
    return raw


def _expand_text(text: str, env: Mapping[str, str], path: str, unset: list[tuple[str, str]]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            unset.append((path, name))
            return ""
        return value

    expanded, count = _REFERENCE.subn(substitute, text)
    return EnvText(expanded) if count else text

"""Tree paths and writable-scope globs (docs/PROTOCOL.md §Trees, §Scope).

Paths name files inside a workspace. They are relative, '/'-separated, with no empty, '.' or '..'
component, no control characters and no backslash, so the same path means the same file on every
verifier and can never point outside the workspace it is materialised into.

Globs say which paths a commit may change. A glob is a path whose components may use ``*`` (any
run of characters inside one component) and ``?`` (one character); a component that is exactly
``**`` matches zero or more whole components. Nothing else is special: no character classes, no
braces, so a glob reads the same to every implementation.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .constants import MAX_PATH_BYTES, MAX_PATH_COMPONENT_BYTES

__all__ = ["glob_match", "match_any", "path_problem"]

_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def path_problem(path: object) -> str | None:
    """Why ``path`` is not a valid tree path, or None if it is."""
    if not isinstance(path, str):
        return f"path is a {type(path).__name__}, not a str"
    if not path:
        return "path is empty"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "path is not valid Unicode"
    if size > MAX_PATH_BYTES:
        return f"path is {size} bytes, over {MAX_PATH_BYTES}"
    if path.startswith("/"):
        return f"absolute path {path!r}"
    if _FORBIDDEN_CHARS.search(path):
        return f"path {path!r} contains a control character or backslash"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return f"path {path!r} has an empty, '.' or '..' component"
        if len(part.encode("utf-8")) > MAX_PATH_COMPONENT_BYTES:
            return f"path {path!r} has a component over {MAX_PATH_COMPONENT_BYTES} bytes"
    return None


def glob_problem(glob: object) -> str | None:
    """Why ``glob`` is not a valid scope glob, or None if it is (same rules as paths)."""
    problem = path_problem(glob)
    if problem:
        return problem.replace("path", "glob", 1)
    return None


@lru_cache(maxsize=256)
def _compile(glob: str) -> re.Pattern[str]:
    parts: list[str] = []
    components = glob.split("/")
    for index, component in enumerate(components):
        last = index == len(components) - 1
        if component == "**":
            # Zero or more whole components; as the last component, anything below.
            parts.append(".*" if last else "(?:[^/]+/)*")
            continue
        regex = "".join(
            "[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in component
        )
        parts.append(regex if last else regex + "/")
    return re.compile("".join(parts))


def glob_match(glob: str, path: str) -> bool:
    """Whether ``path`` is matched by ``glob`` (see the module docstring for the syntax)."""
    return _compile(glob).fullmatch(path) is not None


def match_any(globs: tuple[str, ...] | list[str], path: str) -> bool:
    return any(glob_match(glob, path) for glob in globs)

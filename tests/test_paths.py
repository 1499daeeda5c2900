"""Tree path rules and scope glob matching."""

from __future__ import annotations

import pytest

from protocol.paths import glob_match, path_problem


@pytest.mark.parametrize("path", ["a", "a/b.rs", "dft/src/x/y.rs", "é/ü", "a..b", ".hidden"])
def test_valid_paths(path):
    assert path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "why"),
    [("", "empty"), ("/etc/passwd", "absolute"), ("../x", "'..'"), ("a/../b", "'..'"),
     ("a//b", "empty"), ("a/./b", "'.'"), ("a/", "empty"), ("a\\b", "backslash"),
     ("a\nb", "control"), ("a\x00", "control"), ("x" * 300, "component"),
     ("a/" * 600 + "b", "bytes"), (5, "not a str")],
)
def test_invalid_paths_say_why(path, why):
    problem = path_problem(path)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("dft/src/**", "dft/src/lib.rs", True),
        ("dft/src/**", "dft/src/a/b/c.rs", True),
        ("dft/src/**", "dft/Cargo.toml", False),
        ("dft/src/**", "dft/src", False),
        ("dft/src/**", "dft/srcx/lib.rs", False),
        ("*.rs", "lib.rs", True),
        ("*.rs", "src/lib.rs", False),
        ("**/*.rs", "lib.rs", True),
        ("**/*.rs", "a/b/lib.rs", True),
        ("a/?.rs", "a/b.rs", True),
        ("a/?.rs", "a/bc.rs", False),
        ("a.rs", "axrs", False),
        ("a/[b].rs", "a/[b].rs", True),
        ("a/[b].rs", "a/b.rs", False),
    ],
)
def test_glob_semantics(glob, path, matches):
    assert glob_match(glob, path) is matches

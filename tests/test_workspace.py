"""Trees from directories, the scope check, materialised workspaces and diffs."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from dag.scope import (
    DELETED_OUTSIDE_SCOPE,
    FILE,
    FORBIDDEN_PATH,
    OUTSIDE_SCOPE,
    OVERSIZE,
    SPECIAL_FILE,
    SYMLINK_ENTRY,
    Entry,
    check_scope,
    commit_tree_for,
    overlay,
    writable_part,
)
from dag.workspace import (
    WorkspaceError,
    blob_reader,
    materialize,
    scan_directory,
    tree_from_directory,
    unified_diff,
)
from protocol.cid import cid_of_blob

WRITABLE = ("dft/src/**",)


def _write(root, files):
    for path, body in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body)


@pytest.fixture
def base(tmp_path):
    root = tmp_path / "base"
    _write(root, {"Cargo.toml": "[workspace]\n", "dft/src/lib.rs": "pub fn a() {}\n",
                  "dft/Cargo.toml": "[package]\n", "gate/src/main.rs": "fn main() {}\n"})
    (root / "target").mkdir()
    (root / "target" / "junk").write_text("build output")
    tree, blobs = tree_from_directory(root, exclude=["target/**", "target"])
    return root, tree, blobs


def test_tree_from_directory_excludes_build_output_and_records_modes(base):
    root, tree, blobs = base
    assert list(tree) == ["Cargo.toml", "dft/Cargo.toml", "dft/src/lib.rs", "gate/src/main.rs"]
    os.chmod(root / "gate/src/main.rs", 0o755)
    again, _ = tree_from_directory(root, exclude=["target"])
    assert again.entries["gate/src/main.rs"].mode == 0o755
    assert tree.entries["dft/src/lib.rs"].blob in blobs


def test_materialise_reproduces_the_tree_exactly(base, tmp_path):
    _root, tree, blobs = base
    dest = tmp_path / "out"
    materialize(tree.entries, blob_reader(blobs), dest)
    again, _ = tree_from_directory(dest)
    assert again.cid == tree.cid
    with pytest.raises(WorkspaceError, match="not empty"):
        materialize(tree.entries, blob_reader(blobs), dest)


def test_materialise_refuses_a_blob_that_does_not_match(base, tmp_path):
    _, tree, _blobs = base
    with pytest.raises(WorkspaceError, match="do not match"):
        materialize(tree.entries, lambda cid: b"tampered", tmp_path / "bad")
    with pytest.raises(WorkspaceError, match="not available"):
        materialize(tree.entries, lambda cid: None, tmp_path / "missing")


def test_overlay_replaces_exactly_the_writable_part(base):
    _, tree, _blobs = base
    commit_tree = writable_part(tree, WRITABLE)
    assert list(commit_tree) == ["dft/src/lib.rs"]
    assert overlay(tree, WRITABLE, commit_tree) == dict(tree.entries)
    new_blob = cid_of_blob(b"pub fn b() {}\n")
    from protocol.objects import Tree, TreeEntry

    changed = Tree({"dft/src/lib.rs": TreeEntry(new_blob), "dft/src/new.rs": TreeEntry(new_blob)})
    ws = overlay(tree, WRITABLE, changed)
    assert ws["dft/src/lib.rs"].blob == new_blob and "dft/src/new.rs" in ws
    assert ws["gate/src/main.rs"] == tree.entries["gate/src/main.rs"]
    removed = overlay(tree, WRITABLE, Tree({}))
    assert "dft/src/lib.rs" not in removed and "Cargo.toml" in removed


def test_scope_check_lists_every_violation(base, tmp_path):
    root, tree, _ = base
    work = tmp_path / "work"
    subprocess.run(["cp", "-a", str(root), str(work)], check=True)
    (work / "dft/src/lib.rs").write_text("pub fn faster() {}\n")          # allowed
    (work / "gate/src/main.rs").write_text("fn main() { lie() }\n")      # changed outside
    (work / "bench.rs").write_text("x")                                   # added outside
    (work / "dft/Cargo.toml").unlink()                                    # deleted outside
    os.symlink("/etc/passwd", work / "dft/src/link.rs")                   # symlink
    os.mkfifo(work / "dft/src/pipe")                                      # special file
    (work / "dft/src/huge.rs").write_bytes(b"x" * 5000)                   # oversize
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(work / "dft/src/sock"))
    entries, _ = scan_directory(work, exclude=["target"])
    entries["dft/../../escape"] = Entry(FILE, size=1, blob=cid_of_blob(b"x"))
    found = {(v.path.strip("'"), v.rule) for v in check_scope(tree.entries, entries, WRITABLE,
                                                                max_file_bytes=4096)}
    assert found == {
        ("gate/src/main.rs", OUTSIDE_SCOPE),
        ("bench.rs", OUTSIDE_SCOPE),
        ("dft/Cargo.toml", DELETED_OUTSIDE_SCOPE),
        ("dft/src/link.rs", SYMLINK_ENTRY),
        ("dft/src/pipe", SPECIAL_FILE),
        ("dft/src/sock", SPECIAL_FILE),
        ("dft/src/huge.rs", OVERSIZE),
        ("dft/../../escape", FORBIDDEN_PATH),
    }
    sock.close()


def test_commit_tree_keeps_out_of_scope_changes_visible(base, tmp_path):
    root, tree, _ = base
    work = tmp_path / "work"
    subprocess.run(["cp", "-a", str(root), str(work)], check=True)
    (work / "gate/src/main.rs").write_text("fn main() { lie() }\n")
    entries, _ = scan_directory(work, exclude=["target"])
    commit_tree = commit_tree_for(tree.entries, entries, WRITABLE)
    assert set(commit_tree) == {"dft/src/lib.rs", "gate/src/main.rs"}
    # A verifier reconstructing the workspace from that tree sees the out-of-scope change.
    ws = overlay(tree, WRITABLE, commit_tree)
    violations = check_scope(tree.entries, {p: Entry(FILE, 1, e.blob, e.mode)
                                            for p, e in ws.items()}, WRITABLE, 1 << 20)
    assert [(v.path, v.rule) for v in violations] == [("gate/src/main.rs", OUTSIDE_SCOPE)]


def test_unified_diff_round_trips_through_git_apply(base, tmp_path):
    root, tree, blobs = base
    work = tmp_path / "work"
    subprocess.run(["cp", "-a", str(root), str(work)], check=True)
    (work / "dft/src/lib.rs").write_text("pub fn a() {}\npub fn b() {}\n")
    (work / "dft/src/new.rs").write_text("// new\n")
    (work / "gate/src/main.rs").unlink()
    (work / "Cargo.toml").write_text("[workspace]")  # no trailing newline
    new_tree, new_blobs = tree_from_directory(work, exclude=["target"])
    patch = unified_diff(tree.entries, new_tree.entries, blob_reader({**blobs, **new_blobs}))
    assert "+pub fn b() {}" in patch and "new file mode 100644" in patch
    applied = tmp_path / "applied"
    materialize(tree.entries, blob_reader(blobs), applied)
    result = subprocess.run(["git", "apply", "-p1", "-"], input=patch, text=True,
                            cwd=applied, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert tree_from_directory(applied)[0].cid == new_tree.cid
    assert unified_diff(tree.entries, tree.entries, blob_reader(blobs)) == ""


def test_a_patch_applies_in_a_work_directory_inside_a_git_clone(base, tmp_path):
    """`git apply` inside a repository takes paths from the repository's top and silently skips
    what lies outside the current directory: `make demo` runs in ./devnet of a clone, where
    every example patch "applied" and changed nothing."""
    from verifier.candidates import apply_patch

    _, tree, blobs = base
    clone = tmp_path / "clone"
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    work = clone / "devnet" / "work" / "ws"
    materialize(tree.entries, blob_reader(blobs), work)
    materialize(tree.entries, blob_reader(blobs), tmp_path / "new")
    (tmp_path / "new" / "dft/src/lib.rs").write_text("pub fn a() { faster() }\n")
    new_tree, new_blobs = tree_from_directory(tmp_path / "new")
    patch = unified_diff(tree.entries, new_tree.entries, blob_reader({**blobs, **new_blobs}))
    apply_patch(patch, work)
    assert (work / "dft/src/lib.rs").read_text() == "pub fn a() { faster() }\n"
    assert tree_from_directory(work)[0].cid == new_tree.cid

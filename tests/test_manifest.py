"""Target manifests become genesis targets; bad manifests are named, field by field."""

from __future__ import annotations

import pytest

from dag.manifest import ManifestError, load_manifest, make_genesis
from protocol import examples
from protocol.objects import Target

GOOD = """
name = "toy"
profile = "avx2"
writable = ["src/**"]
metric = "ns"

[commands]
build = ["make"]
gate = ["./gate", "{seed}"]
bench = ["./bench", "--seed", "{seed}"]

[stats]
pairs = 9
"""


def _workspace(tmp_path, manifest=GOOD):
    (tmp_path / "targets").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src/lib.rs").write_text("fn a() {}\n")
    (tmp_path / "Makefile").write_text("all:\n")
    (tmp_path / "target").mkdir()
    (tmp_path / "target/out").write_text("build output")
    (tmp_path / "README.md").write_text("docs")
    path = tmp_path / "targets/toy.toml"
    path.write_text(manifest)
    return path


def test_manifest_and_workspace_make_a_target(tmp_path):
    manifest = load_manifest(_workspace(tmp_path))
    assert manifest.stats.pairs == 9 and manifest.stats.proposer_pairs == 7
    genesis = make_genesis(manifest, [(examples.key(1).public_key, 10)], genesis_time_ms=5)
    assert list(genesis.base_tree) == ["Makefile", "src/lib.rs"]
    assert Target.decode(genesis.target.encode()) == genesis.target
    assert genesis.target.base_tree == genesis.base_tree.cid
    assert {b.cid for b in genesis.blobs.values()} == {
        e.blob for e in genesis.base_tree.entries.values()}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace('name = "toy"\n', ""), "missing key 'name'"),
        (lambda s: "colour = 1\n" + s, "unknown key(s) colour"),
        (lambda s: s + "\ncolour = 1\n", "colour"),
        (lambda s: s.replace('"{seed}"]\nbench', '"x"]\nbench'), "commands.gate"),
        (lambda s: s.replace("pairs = 9", "pairs = 1"), "stats.pairs"),
        (lambda s: s.replace("pairs = 9", "paris = 9"), "paris"),
        (lambda s: s.replace('["src/**"]', '["../**"]'), "writable"),
        (lambda s: s + "\n[limits\n", "toy.toml"),
        (lambda s: s.replace('["src/**"]', '"src/**"'), "list of globs"),
    ],
)
def test_bad_manifests_are_refused_with_the_field_named(tmp_path, edit, message):
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_manifest(_workspace(tmp_path, edit(GOOD)))


def test_genesis_refuses_a_workspace_with_a_symlink(tmp_path):
    path = _workspace(tmp_path)
    (tmp_path / "src/link").symlink_to("/etc/passwd")
    with pytest.raises(Exception, match="symlink"):
        make_genesis(load_manifest(path), [(examples.key(1).public_key, 1)], genesis_time_ms=0)

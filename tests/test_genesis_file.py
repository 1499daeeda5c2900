"""node/genesis_file.py: a genesis bundle is read completely or refused with the reason."""

from __future__ import annotations

import pytest

from node.bundle import encode_bundle
from node.genesis_file import GenesisFileError, read_genesis_file
from protocol import examples as ex
from protocol.objects import Target


def _genesis_items() -> list[bytes]:
    target = ex.target()
    base = ex.tree({"Cargo.toml": "[workspace]\n", "dft/src/lib.rs": "pub fn dft() {}\n",
                    "baby-bear/src/lib.rs": "// p\n", "gate/src/main.rs": "fn main() {}\n"})
    assert base.cid == target.base_tree
    blobs = [ex.blob(t).encode() for t in ("[workspace]\n", "pub fn dft() {}\n", "// p\n",
                                           "fn main() {}\n")]
    return [target.encode(), base.encode(), *blobs]


def test_a_complete_genesis_file_is_read(tmp_path):
    path = tmp_path / "genesis.bundle"
    path.write_bytes(encode_bundle(_genesis_items()))
    objects = read_genesis_file(path)
    assert [o.cid for o in objects if isinstance(o, Target)] == [ex.target().cid]
    assert len(objects) == 6


@pytest.mark.parametrize("change, fault", [
    (lambda items: items[1:], "holds no target"),
    (lambda items: items[:1], "base tree of example-ntt is missing"),
    (lambda items: [items[0], *items[2:]], "item 1: not a poi object"),  # blobs nobody names
    (lambda items: [*items, b"an unnamed blob"], "item 6"),
])
def test_an_incomplete_or_foreign_genesis_file_is_refused(tmp_path, change, fault):
    path = tmp_path / "genesis.bundle"
    path.write_bytes(encode_bundle(change(_genesis_items())))
    with pytest.raises(GenesisFileError, match=fault):
        read_genesis_file(path)


def test_a_missing_or_garbage_file_names_the_file(tmp_path):
    with pytest.raises(GenesisFileError, match=r"nope\.bundle"):
        read_genesis_file(tmp_path / "nope.bundle")
    (tmp_path / "bad.bundle").write_bytes(b"\xc1")
    with pytest.raises(GenesisFileError, match=r"bad\.bundle"):
        read_genesis_file(tmp_path / "bad.bundle")

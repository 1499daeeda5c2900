"""Genesis files: a target with its base tree and blobs, as one bundle (what `poi devnet`
writes and `targets.genesis_files` names). Read with the same per-item decoding gossip uses
(`node.validation.decode_items`), so a blob is accepted only when a tree in the file names it."""

from __future__ import annotations

from pathlib import Path

from dag.manifest import Genesis
from dag.store import Store, StoredObject
from protocol.errors import ProtocolError
from protocol.objects import Target, Tree

from .bundle import decode_bundle, encode_bundle
from .validation import decode_items


class GenesisFileError(ValueError):
    """A genesis file that cannot be read, or holds something other than a complete target."""


def read_genesis_file(path: Path) -> list[StoredObject]:
    """The objects of ``path``, checked: every item decodes, at least one target, and each
    target's base tree is in the file."""
    try:
        datas = decode_bundle(Path(path).read_bytes())
    except (OSError, ProtocolError) as exc:
        raise GenesisFileError(f"genesis file {path}: {exc}") from None
    objects = []
    for item in decode_items(datas):
        if item.obj is None or not item.ok:
            raise GenesisFileError(f"genesis file {path}: item {item.index}: "
                                   f"{item.check.reason or 'not a poi object'}")
        objects.append(item.obj)
    targets = [obj for obj in objects if isinstance(obj, Target)]
    if not targets:
        raise GenesisFileError(f"genesis file {path} holds no target")
    trees = {obj.cid for obj in objects if isinstance(obj, Tree)}
    for target in targets:
        if target.base_tree not in trees:
            raise GenesisFileError(f"genesis file {path}: the base tree of {target.name} "
                                   "is missing")
    return objects


def encode_genesis_file(genesis: Genesis) -> bytes:
    """The bytes of a genesis file: every object of the genesis, dependencies first."""
    return encode_bundle([obj.encode() for obj in genesis.objects()])


def load_genesis_file(path: Path, store: Store) -> list[Target]:
    """Store a genesis file's objects (checked by `read_genesis_file`); its targets."""
    objects = read_genesis_file(path)
    store.put_many(objects)
    return [obj for obj in objects if isinstance(obj, Target)]

"""Gossip topics and how objects travel in them (docs/PROTOCOL.md §Network).

Each followed target has one gossipsub topic per kind of object::

    poi/<target-cid>/<kind>/1      kind ∈ commits, attestations, stake, evidence, challenges,
                                   rulings

(``<target-cid>`` in base32 text form; the trailing ``1`` is the message-format version.) Every
message on every topic is a *bundle* (node/bundle.py): the canonical MessagePack array of the
objects' encoded bytes. A bundle on a topic carries only objects of that topic's kind and target,
except that a bundle on ``commits`` may also carry the trees and blobs those commits name, so a
verifier has the content without a round trip. A node packs what it publishes into as few
bundles as fit under the gossip size cap (`pack_bundles`), which is what makes a burst of
attestations cost one message per few hundred signatures instead of one per signature.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol.cid import CID
from protocol.errors import ProtocolError

from .bundle import MAX_BUNDLE_OBJECTS, encode_bundle

TOPIC_VERSION = 1
KINDS = ("commits", "attestations", "stake", "evidence", "challenges", "rulings")
KIND_OF_TYPE = {
    "commit": "commits",
    "attestation": "attestations",
    "stake": "stake",
    "evidence": "evidence",
    "challenge": "challenges",
    "ruling": "rulings",
}
"""Object ``type`` -> the topic kind it travels on. Trees and blobs travel with commits."""

MAX_GOSSIP_BUNDLE_OBJECTS = 1024
"""Most objects one gossip bundle carries (a full gossip message holds ~2,000 attestations;
smaller bundles keep one message's validation under ~100 ms on one core)."""

_ARRAY_OVERHEAD_BYTES = 5
"""A MessagePack array header (array32)."""


class TopicError(ValueError):
    """A topic name that is not ``poi/<target-cid>/<kind>/1``."""


def topic(target: CID, kind: str) -> str:
    """The gossip topic of ``kind`` objects on ``target``."""
    if kind not in KINDS:
        raise TopicError(f"unknown topic kind {kind!r} (one of {', '.join(KINDS)})")
    return f"poi/{target}/{kind}/{TOPIC_VERSION}"


def topics_of(target: CID) -> dict[str, str]:
    """kind -> topic name for every kind of ``target``."""
    return {kind: topic(target, kind) for kind in KINDS}


def parse_topic(name: str) -> tuple[CID, str]:
    """(target, kind) of a topic name; TopicError for anything else."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "poi" or parts[3] != str(TOPIC_VERSION):
        raise TopicError(f"{name!r} is not poi/<target>/<kind>/{TOPIC_VERSION}")
    if parts[2] not in KINDS:
        raise TopicError(f"{name!r}: unknown kind {parts[2]!r}")
    try:
        return CID.parse(parts[1]), parts[2]
    except ProtocolError as exc:
        raise TopicError(f"{name!r}: {exc}") from None


def kind_of(type_name: str) -> str | None:
    """The topic kind of an object type (None for trees, blobs and targets)."""
    return KIND_OF_TYPE.get(type_name)


def _item_overhead(size: int) -> int:
    """Bytes MessagePack adds in front of a bin of ``size`` bytes."""
    return 2 if size < 256 else 3 if size < 65536 else 5


def pack_bundles(items: Iterable[bytes], *, max_bytes: int,
                 max_objects: int = MAX_GOSSIP_BUNDLE_OBJECTS) -> list[bytes]:
    """Encoded bundles holding ``items`` in order, each at most ``max_bytes`` and
    ``max_objects``. An item too large for any bundle raises ValueError (send it by sync)."""
    max_objects = min(max_objects, MAX_BUNDLE_OBJECTS)
    bundles: list[bytes] = []
    current: list[bytes] = []
    size = _ARRAY_OVERHEAD_BYTES
    for item in items:
        item = bytes(item)
        cost = len(item) + _item_overhead(len(item))
        if cost + _ARRAY_OVERHEAD_BYTES > max_bytes:
            raise ValueError(f"an object of {len(item)} bytes does not fit a {max_bytes}-byte "
                             "gossip message: announce it and serve it by sync")
        if current and (size + cost > max_bytes or len(current) >= max_objects):
            bundles.append(encode_bundle(current))
            current, size = [], _ARRAY_OVERHEAD_BYTES
        current.append(item)
        size += cost
    if current:
        bundles.append(encode_bundle(current))
    return bundles

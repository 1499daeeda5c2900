"""Bundles: several encoded objects carried as one message (docs/PROTOCOL.md §13, Bundles).

A bundle is the canonical MessagePack array of the objects' encoded bytes (blobs as their raw
bytes). It carries a commit together with the tree and blobs a peer may lack (HTTP
``POST /v1/commits``), and many attestations in one gossip message, so that ingest is bound by
signature checks rather than per-message overhead. Each object inside is checked on its own:
one bad object never makes the others count, and never makes the bundle's sender trusted.
"""

from __future__ import annotations

from protocol.constants import MAX_BLOB_BYTES
from protocol.encoding import decode, encode
from protocol.errors import ProtocolError

MAX_BUNDLE_OBJECTS = 4096
"""Most objects in one bundle."""
MAX_BUNDLE_BYTES = 64 << 20
"""Largest bundle accepted over HTTP (a commit's full tree with blobs fits well under it);
gossip caps messages lower still (node.p2p ``max_gossip_bytes``)."""


class BundleError(ProtocolError):
    """A bundle that is not an array of byte strings within the caps."""


def encode_bundle(objects: list[bytes]) -> bytes:
    if len(objects) > MAX_BUNDLE_OBJECTS:
        raise BundleError(f"a bundle holds at most {MAX_BUNDLE_OBJECTS} objects, "
                          f"got {len(objects)}")
    try:
        return encode([bytes(o) for o in objects], max_bytes=MAX_BUNDLE_BYTES,
                      max_bin_bytes=MAX_BLOB_BYTES)
    except ProtocolError as exc:
        raise BundleError(f"cannot encode the bundle: {exc}") from None


def decode_bundle(data: bytes, *, max_bytes: int = MAX_BUNDLE_BYTES) -> list[bytes]:
    """The objects' bytes, in order; each still has to be decoded and validated."""
    if len(data) > max_bytes:
        raise BundleError(f"bundle of {len(data)} bytes is over the {max_bytes}-byte cap")
    try:
        value = decode(data, max_bytes=max_bytes, max_bin_bytes=MAX_BLOB_BYTES)
    except ProtocolError as exc:
        raise BundleError(f"bundle is not canonical MessagePack: {exc}") from None
    if not isinstance(value, list):
        raise BundleError(f"a bundle is an array of objects, got {type(value).__name__}")
    if not value:
        raise BundleError("a bundle holds at least one object")
    if len(value) > MAX_BUNDLE_OBJECTS:
        raise BundleError(f"a bundle holds at most {MAX_BUNDLE_OBJECTS} objects, "
                          f"got {len(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, bytes):
            raise BundleError(f"bundle[{index}] is {type(item).__name__}, expected bytes")
    return value

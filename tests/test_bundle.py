"""node/bundle.py: many encoded objects in one canonical message."""

from __future__ import annotations

import pytest

from node.bundle import BundleError, decode_bundle, encode_bundle
from protocol.constants import MAX_BLOB_BYTES, MAX_OBJECT_BYTES
from protocol.encoding import encode


def test_bundles_carry_more_than_one_object_cap():
    """A commit with its blobs can exceed one object's 1 MiB cap; each item up to a blob's."""
    items = [b"\x02" * MAX_BLOB_BYTES, b"\x03" * MAX_OBJECT_BYTES]
    data = encode_bundle(items)
    assert len(data) > MAX_BLOB_BYTES + MAX_OBJECT_BYTES
    assert decode_bundle(data) == items


@pytest.mark.parametrize("value, fault", [
    ([], "at least one object"),
    ({"a": b"x"}, "an array of objects"),
    ([b"x", 3], r"bundle\[1\] is int"),
])
def test_malformed_bundles_name_the_fault(value, fault):
    with pytest.raises(BundleError, match=fault):
        decode_bundle(encode(value))


def test_oversize_item_and_non_canonical_bytes_are_refused():
    with pytest.raises(BundleError, match="cannot encode"):
        encode_bundle([b"\x00" * (MAX_BLOB_BYTES + 1)])
    with pytest.raises(BundleError, match="not canonical"):
        decode_bundle(b"\x91\xc5\x00\x01x")  # a 1-byte bin in a 2-byte length

"""Canonical MessagePack: round trips, every non-canonical variant refused, faults named."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol.constants import MAX_CONTAINER_LEN, MAX_DEPTH, MAX_OBJECT_BYTES, MAX_STR_BYTES
from protocol.encoding import decode, encode
from protocol.errors import DecodeError, EncodeError

from .noncanonical import KINDS, canonical, variant
from .strategies import structured_objects, values


@given(values)
def test_decode_inverts_encode_and_reencoding_is_identity(value):
    data = encode(value)
    assert encode(decode(data)) == data


@given(values)
def test_our_encoder_agrees_with_an_independent_writer(value):
    assert encode(value) == canonical(decode(encode(value)))


@settings(max_examples=300)
@given(values, st.integers(0, 200), st.sampled_from(KINDS))
def test_every_noncanonical_variant_of_a_value_is_refused(value, node, kind):
    bad = variant(decode(encode(value)), node, kind)
    assume(bad is not None)
    with pytest.raises(DecodeError):
        decode(bad)


@settings(max_examples=300)
@given(structured_objects, st.integers(0, 400), st.sampled_from(KINDS))
def test_every_noncanonical_variant_of_an_object_encoding_is_refused(obj, node, kind):
    bad = variant(obj.to_wire(), node, kind)
    assume(bad is not None)
    with pytest.raises(DecodeError):
        decode(bad)


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        (b"\x82\xa1b\x01\xa1a\x02", "not sorted"),
        (b"\x82\xa1a\x01\xa1a\x02", "duplicate map key 'a'"),
        (b"\x81\x01\x02", "map key is not a string"),
        (b"\x81\xc4\x01a\x01", "map key is not a string"),
        (b"\xcc\x05", "non-shortest integer"),
        (b"\xd0\x05", "non-shortest integer: 5 in a signed form"),
        (b"\xd1\xff\x80", "non-shortest integer: -128"),
        (b"\xcb" + bytes(8), "float"),
        (b"\xca" + bytes(4), "float"),
        (b"\xd4\x01\x01", "ext type"),
        (b"\xc7\x01\x05a", "ext type"),
        (b"\x01\x02", "trailing bytes"),
        (b"\xd9\x01a", "non-shortest str length"),
        (b"\xc5\x00\x01a", "non-shortest bin length"),
        (b"\xdc\x00\x01\xc0", "non-shortest array length"),
        (b"\xde\x00\x01\xa1a\xc0", "non-shortest map length"),
        (b"\xa2\xff\xfe", "not valid UTF-8"),
        (b"\xc1", "never used"),
        (b"", "empty input"),
        (b"\xda", "truncated"),
        (b"\x92\x01", "truncated"),
        (b"\x91" * (MAX_DEPTH + 1) + b"\xc0", "nesting deeper"),
        (b"\xdd\x00\x01\x00\x01", "over"),
    ],
)
def test_decoder_names_the_fault(data, fault):
    with pytest.raises(DecodeError, match=fault):
        decode(data)


def test_caps_are_enforced_on_both_sides():
    with pytest.raises(DecodeError, match="over"):
        decode(b"\xc0" * (MAX_OBJECT_BYTES + 1))
    with pytest.raises(EncodeError, match="over"):
        encode("x" * (MAX_STR_BYTES + 1))
    with pytest.raises(EncodeError, match="over"):
        encode([0] * (MAX_CONTAINER_LEN + 1))
    deep = None
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert decode(encode(deep)) == deep
    with pytest.raises(EncodeError, match="nesting"):
        encode([deep])


@pytest.mark.parametrize(
    "value", [1.5, {1: 2}, {b"k": 1}, {"a": 0.0}, object(), 2**64, -(2**63) - 1, "\udc80"])
def test_encoder_refuses_values_without_a_canonical_form(value):
    with pytest.raises(EncodeError):
        encode(value)


def test_known_encodings():
    assert encode({"b": 1, "a": [True, None, -1, 200, b"\x00"]}).hex() == (
        "82a16195c3c0ffccc8c40100a16201"
    )
    assert encode({"é": 1, "z": 2}) == b"\x82\xa1z\x02\xa2\xc3\xa9\x01"  # bytewise key order

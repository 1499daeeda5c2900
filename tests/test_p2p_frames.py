"""Request/response frames: canonical MessagePack with frame-sized caps, length-prefixed."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from node.p2p._errors import FrameError, FrameTooLarge
from node.p2p._frames import (
    END_OF_STREAM,
    MAX_FRAME_BIN_BYTES,
    decode_body,
    encode_body,
    encode_frame,
    encode_uvarint,
    read_frame,
)
from protocol.encoding import encode
from tests import noncanonical
from tests.strategies import values


class ChunkedStream:
    """A stream that hands out its bytes a few at a time, like a socket."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk, self.pos = data, chunk, 0

    async def read(self, n: int) -> bytes:
        await trio.lowlevel.checkpoint()
        out = self.data[self.pos : self.pos + min(n, self.chunk)]
        self.pos += len(out)
        return out


def read_all(data: bytes, chunk: int = 7, max_bytes: int = 1 << 20) -> list[object]:
    async def main() -> list[object]:
        stream = ChunkedStream(data, chunk)
        frames = []
        while (frame := await read_frame(stream, max_bytes=max_bytes)) is not END_OF_STREAM:
            frames.append(frame)
        return frames

    return trio.run(main)


@given(values)
def test_frame_body_equals_the_protocol_encoding(value):
    assert encode_body(value) == encode(value)
    assert decode_body(encode_body(value)) == decode_body(encode(value))


@given(st.lists(values, max_size=4), st.integers(1, 50))
def test_frames_round_trip_through_a_chunked_stream(items, chunk):
    data = b"".join(encode_frame(item) for item in items)
    assert read_all(data, chunk) == [decode_body(encode_body(item)) for item in items]


@given(values, st.integers(0, 40), st.sampled_from(noncanonical.KINDS))
def test_non_canonical_bodies_are_refused(value, node, kind):
    bad = noncanonical.variant(value, node, kind)
    if bad is None or bad == encode(value):
        return
    with pytest.raises(FrameError):
        decode_body(bad)


def test_frames_carry_more_than_one_object_and_whole_blobs():
    blob = bytes(range(256)) * (MAX_FRAME_BIN_BYTES // 256)
    value = {"blobs": [blob, blob, blob, blob], "n": 4}  # 16 MiB: over encode()'s 1 MiB cap
    body = encode_body(value)
    assert len(body) > 16 << 20
    assert decode_body(body) == value
    with pytest.raises(FrameError, match="byte string"):
        encode_body({"x": blob + b"!"})


def test_size_caps_are_enforced_before_reading_the_body():
    frame = encode_frame({"x": bytes(5000)})
    with pytest.raises(FrameTooLarge, match="5006 bytes is over the 1000-byte"):
        read_all(frame, max_bytes=1000)
    with pytest.raises(FrameTooLarge):
        encode_frame({"x": bytes(5000)}, max_bytes=1000)


@pytest.mark.parametrize("value", [1.5, {"a": 1.0}, {1: 2}, object(), [{"k": set()}]])
def test_values_without_a_canonical_encoding_are_refused(value):
    with pytest.raises(FrameError):
        encode_body(value)


def test_truncated_and_malformed_input_is_named():
    frame = encode_frame({"k": "v" * 100})
    with pytest.raises(EOFError, match="bytes into a"):
        read_all(frame[:-10])
    with pytest.raises(EOFError, match="inside a frame length"):
        read_all(b"\x80")
    with pytest.raises(FrameError, match="empty frame"):
        read_all(b"\x00")
    with pytest.raises(FrameError, match="uvarint"):
        read_all(b"\xff" * 11)
    with pytest.raises(FrameError, match=r"byte 0xc1 is never used in MessagePack"):
        decode_body(b"\xc1")


@given(st.integers(0, 2**63))
def test_uvarint_is_leb128(n):
    encoded = encode_uvarint(n)
    value = sum((b & 0x7F) << (7 * i) for i, b in enumerate(encoded))
    assert value == n
    assert all(b & 0x80 for b in encoded[:-1]) and not encoded[-1] & 0x80


def test_frames_are_protocol_encoding_with_frame_caps():
    """One encoder: a frame body is protocol.encoding's bytes, and only the caps are larger."""
    blob = b"\x01" * (MAX_FRAME_BIN_BYTES - 1)  # over one object's byte-string cap
    body = encode_body({"objects": [blob, blob]})
    assert len(body) > 2 * MAX_FRAME_BIN_BYTES - 2
    assert decode_body(body) == {"objects": [blob, blob]}

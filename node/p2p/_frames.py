"""Length-prefixed canonical MessagePack frames for request/response streams.

A frame is ``uvarint(len(body)) || body`` where ``body`` is canonical MessagePack under the rules
of :mod:`protocol.encoding` (nil, bool, int, str, bin, array, str-keyed maps sorted bytewise,
shortest forms, no floats or ext types, exactly one value; the decoder refuses anything that does
not re-encode to the same bytes).

Only the size caps differ, passed to :mod:`protocol.encoding` (one encoder, one decoder): an
object stops at ``MAX_OBJECT_BYTES`` (1 MiB; byte strings ``MAX_BIN_BYTES``, 1 MiB) while a sync
response carries many objects and raw blobs (up to ``MAX_BLOB_BYTES``), so a frame may be up to
the stream's ``max_frame_bytes`` (32 MiB by default) with byte strings up to
:data:`MAX_FRAME_BIN_BYTES`. For any value :func:`protocol.encoding.encode` accepts, the frame
body is byte-identical to its encoding (tested).
"""

from __future__ import annotations

from typing import Any

from protocol.constants import MAX_BLOB_BYTES
from protocol.encoding import decode, encode
from protocol.errors import DecodeError, EncodeError

from ._errors import FrameError, FrameTooLarge

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "END_OF_STREAM",
    "MAX_FRAME_BIN_BYTES",
    "decode_body",
    "encode_body",
    "encode_frame",
    "encode_uvarint",
    "read_frame",
    "write_frame",
]

DEFAULT_MAX_FRAME_BYTES = 32 << 20
"""Largest frame body a stream accepts by default, in bytes (a 16 MiB sync response fits)."""
MAX_FRAME_BIN_BYTES = max(MAX_BLOB_BYTES, 4 << 20)
"""Largest byte string inside a frame, in bytes: a whole blob."""


class _EndOfStream:
    def __repr__(self) -> str:
        return "END_OF_STREAM"


END_OF_STREAM = _EndOfStream()
"""What ``read_frame`` returns when the stream ends cleanly between frames."""
_MAX_UVARINT_BYTES = 10
_READ_CHUNK_BYTES = 1 << 20


def encode_uvarint(value: int) -> bytes:
    """Unsigned LEB128, as libp2p frames lengths."""
    if value < 0:
        raise ValueError("uvarint of a negative number")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_body(value: Any, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """The canonical MessagePack body of ``value``; FrameTooLarge over ``max_bytes``."""
    try:
        # The size is checked below, to raise FrameTooLarge with both numbers.
        body = encode(value, max_bytes=None, max_bin_bytes=MAX_FRAME_BIN_BYTES)
    except EncodeError as exc:
        raise FrameError(str(exc)) from None
    if len(body) > max_bytes:
        raise FrameTooLarge(len(body), max_bytes)
    return body


def encode_frame(value: Any, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """``uvarint(len(body)) || body``."""
    body = encode_body(value, max_bytes=max_bytes)
    return encode_uvarint(len(body)) + body


def decode_body(body: bytes) -> Any:
    """Decode a canonical body (its length already checked by the reader); FrameError naming
    the fault for anything else."""
    if not body:
        raise FrameError("empty frame: expected exactly one value")
    try:
        return decode(body, max_bytes=None, max_bin_bytes=MAX_FRAME_BIN_BYTES)
    except DecodeError as exc:
        raise FrameError(str(exc)) from None


async def _read_exactly(stream: Any, n: int) -> bytes:
    """Read ``n`` bytes; raise EOFError if the stream ends first."""
    parts: list[bytes] = []
    left = n
    while left:
        chunk = await stream.read(min(left, _READ_CHUNK_BYTES))
        if not chunk:
            raise EOFError(f"stream ended {n - left} bytes into a {n}-byte frame")
        parts.append(chunk)
        left -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def read_length(stream: Any) -> int | None:
    """The next frame's length, or None at a clean end of stream (before any byte)."""
    value = shift = 0
    for index in range(_MAX_UVARINT_BYTES):
        byte = await stream.read(1)
        if not byte:
            if index == 0:
                return None
            raise EOFError("stream ended inside a frame length")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
    raise FrameError("frame length is not a valid uvarint")


async def read_frame(stream: Any, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Any:
    """Read and decode one frame; END_OF_STREAM at a clean end of stream (between frames).

    Raises FrameTooLarge (without reading the body) when the announced length is over
    ``max_bytes``: the caller resets the stream.
    """
    length = await read_length(stream)
    if length is None:
        return END_OF_STREAM
    if length > max_bytes:
        raise FrameTooLarge(length, max_bytes)
    return decode_body(await _read_exactly(stream, length))


async def write_frame(stream: Any, value: Any, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> int:
    """Encode and write one frame; return the body size."""
    body = encode_body(value, max_bytes=max_bytes)
    await stream.write(encode_uvarint(len(body)) + body)
    return len(body)

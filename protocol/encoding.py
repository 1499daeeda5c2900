"""Canonical MessagePack (docs/PROTOCOL.md §Encoding).

Every structured object has exactly one byte encoding, so its CID and its signature are functions
of its content alone. The allowed values are nil, bool, int, str (UTF-8), bin, array and maps with
str keys sorted bytewise; every length and integer uses its shortest form; no floats, no ext types,
exactly one top-level value.

The decoder's rule is the one DESIGN §3 states: *input that does not re-encode to the same bytes is
refused*. The fast path is msgpack's C decoder followed by a re-encode and a byte comparison; only
when that fails does a slow, pure-Python parser walk the input to name the first fault (a peer's
bad message should say why it was refused, and the common case should not pay for the diagnosis).
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from .constants import (
    INT_MAX,
    INT_MIN,
    MAX_BIN_BYTES,
    MAX_CONTAINER_LEN,
    MAX_DEPTH,
    MAX_OBJECT_BYTES,
    MAX_STR_BYTES,
)
from .errors import DecodeError, EncodeError

__all__ = ["decode", "encode"]


def encode(value: Any, *, max_bytes: int | None = MAX_OBJECT_BYTES,
           max_bin_bytes: int = MAX_BIN_BYTES) -> bytes:
    """Return the canonical encoding of ``value``; raise :class:`EncodeError` if it has none.

    The defaults are one object's caps. Containers of many objects (bundles, sync frames) are
    the same canonical encoding with larger caps, so they pass their own ``max_bytes`` and
    ``max_bin_bytes`` rather than keep a second encoder (``max_bytes=None``: the caller
    checks the size itself).
    """
    data = msgpack.packb(_canonical(value, 1, max_bin_bytes), use_bin_type=True)
    if max_bytes is not None and len(data) > max_bytes:
        raise EncodeError(f"encoding is {len(data)} bytes, over the {max_bytes}-byte cap")
    return data


def _canonical(value: Any, depth: int, max_bin: int) -> Any:
    """Check ``value`` is encodable and return it with every map's keys in canonical order."""
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise EncodeError(f"integer {value} is outside the MessagePack range")
        return value
    if kind is str:
        if len(value) * 4 > MAX_STR_BYTES and len(_utf8(value)) > MAX_STR_BYTES:
            raise EncodeError(f"string of {len(_utf8(value))} bytes is over {MAX_STR_BYTES}")
        _utf8(value)
        return value
    if kind is bytes or kind is bytearray:
        if len(value) > max_bin:
            raise EncodeError(f"byte string of {len(value)} bytes is over {max_bin}")
        return bytes(value)
    if depth > MAX_DEPTH:
        raise EncodeError(f"nesting deeper than {MAX_DEPTH}")
    if kind is list or kind is tuple:
        if len(value) > MAX_CONTAINER_LEN:
            raise EncodeError(f"array of {len(value)} elements is over {MAX_CONTAINER_LEN}")
        return [_canonical(item, depth + 1, max_bin) for item in value]
    if kind is dict:
        if len(value) > MAX_CONTAINER_LEN:
            raise EncodeError(f"map of {len(value)} entries is over {MAX_CONTAINER_LEN}")
        for key in value:
            if type(key) is not str:
                raise EncodeError(f"map key {key!r} is a {type(key).__name__}, not a str")
        # Code-point order of str equals byte order of their UTF-8 encodings.
        return {key: _canonical(value[key], depth + 1, max_bin) for key in sorted(value)}
    if kind is bool:  # unreachable (True/False handled above); kept for subclasses of bool
        return bool(value)
    if isinstance(value, float):
        raise EncodeError(f"float {value!r} has no canonical encoding: use integers (ns, ppm)")
    raise EncodeError(f"a {kind.__name__} has no canonical encoding")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"string is not valid Unicode ({exc.reason})") from None


def _refuse_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"ext type {code} is not allowed")


def decode(data: bytes, *, max_bytes: int | None = MAX_OBJECT_BYTES,
           max_bin_bytes: int = MAX_BIN_BYTES) -> Any:
    """Decode canonical bytes; raise :class:`DecodeError` naming the fault for anything else.
    The caps are :func:`encode`'s."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if max_bytes is not None and len(data) > max_bytes:
        raise DecodeError(f"input of {len(data)} bytes is over the {max_bytes}-byte cap")
    if not data:
        raise DecodeError("empty input: expected exactly one value")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            max_str_len=MAX_STR_BYTES,
            max_bin_len=max_bin_bytes,
            max_array_len=MAX_CONTAINER_LEN,
            max_map_len=MAX_CONTAINER_LEN,
            max_ext_len=0,
        )
        if encode(value, max_bytes=max_bytes, max_bin_bytes=max_bin_bytes) == data:
            return value
    except Exception:
        pass
    raise _diagnose(data, max_bin_bytes)


def _diagnose(data: bytes, max_bin: int) -> DecodeError:
    """Walk ``data`` and return an error naming its first non-canonical feature."""
    try:
        end = _Walker(data, max_bin).value(0, 1)
    except DecodeError as exc:
        return exc
    if end != len(data):
        return DecodeError(f"{len(data) - end} trailing bytes after the value", end)
    return DecodeError("input does not re-encode to the same bytes")


class _Walker:
    """A strict, pure-Python MessagePack reader used only to explain a refusal."""

    def __init__(self, data: bytes, max_bin: int) -> None:
        self.data = data
        self.max_bin = max_bin

    def take(self, pos: int, n: int, what: str) -> bytes:
        if pos + n > len(self.data):
            raise DecodeError(f"truncated input: {what} needs {n} bytes", pos)
        return self.data[pos : pos + n]

    def uint(self, pos: int, size: int, what: str) -> int:
        return int.from_bytes(self.take(pos, size, what), "big")

    def value(self, pos: int, depth: int) -> int:
        """Check the value starting at ``pos``; return the position just after it."""
        head = self.take(pos, 1, "a type byte")[0]
        # Scalars first.
        if head <= 0x7F or head >= 0xE0 or head in (0xC0, 0xC2, 0xC3):
            return pos + 1
        if head in (0xCC, 0xCD, 0xCE, 0xCF):
            size = 1 << (head - 0xCC)
            number = self.uint(pos + 1, size, "an unsigned integer")
            floor = (0x80, 0x100, 0x10000, 0x100000000)[head - 0xCC]
            if number < floor:
                raise DecodeError(f"non-shortest integer: {number} in a {size}-byte uint", pos)
            return pos + 1 + size
        if head in (0xD0, 0xD1, 0xD2, 0xD3):
            size = 1 << (head - 0xD0)
            fmt = ">" + "bhiq"[head - 0xD0]
            (number,) = struct.unpack(fmt, self.take(pos + 1, size, "a signed integer"))
            floor = (-32, -128, -32768, -(1 << 31))[head - 0xD0]
            if number >= 0:
                raise DecodeError(f"non-shortest integer: {number} in a signed form", pos)
            if number >= floor:
                raise DecodeError(f"non-shortest integer: {number} in a {size}-byte int", pos)
            return pos + 1 + size
        if head in (0xCA, 0xCB):
            raise DecodeError("float values are not allowed", pos)
        if head in (0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
            raise DecodeError("ext types are not allowed", pos)
        if head == 0xC1:
            raise DecodeError("byte 0xc1 is never used in MessagePack", pos)
        if 0xA0 <= head <= 0xBF or head in (0xD9, 0xDA, 0xDB):
            return self.string(pos, head)[1]
        if head in (0xC4, 0xC5, 0xC6):
            size = 1 << (head - 0xC4)
            length = self.uint(pos + 1, size, "a bin length")
            if head != 0xC4 and length < (0x100, 0x10000)[head - 0xC5]:
                raise DecodeError(f"non-shortest bin length: {length} in {size} bytes", pos)
            if length > self.max_bin:
                raise DecodeError(f"byte string of {length} bytes is over {self.max_bin}", pos)
            self.take(pos + 1 + size, length, "a byte string")
            return pos + 1 + size + length
        # Containers.
        if depth > MAX_DEPTH:
            raise DecodeError(f"nesting deeper than {MAX_DEPTH}", pos)
        if 0x90 <= head <= 0x9F or head in (0xDC, 0xDD):
            count, pos = self.container_length(pos, head, 0x90, 0xDC, "array")
            for _ in range(count):
                pos = self.value(pos, depth + 1)
            return pos
        count, start = self.container_length(pos, head, 0x80, 0xDE, "map")
        pos, previous = start, None
        for _ in range(count):
            key_head = self.take(pos, 1, "a map key")[0]
            if not (0xA0 <= key_head <= 0xBF or key_head in (0xD9, 0xDA, 0xDB)):
                raise DecodeError("map key is not a string", pos)
            body, key_end = self.string(pos, key_head)
            key = self.data[body:key_end]
            if previous is not None and key == previous:
                raise DecodeError(f"duplicate map key {key.decode()!r}", pos)
            if previous is not None and key < previous:
                raise DecodeError(f"map keys not sorted: {key.decode()!r} after "
                                  f"{previous.decode()!r}", pos)
            previous = key
            pos = self.value(key_end, depth + 1)
        return pos

    def container_length(self, pos: int, head: int, fix: int, wide: int, what: str
                         ) -> tuple[int, int]:
        if fix <= head <= fix + 0x0F:
            return head - fix, pos + 1
        size = 2 if head == wide else 4
        count = self.uint(pos + 1, size, f"an {what} length")
        if count < (0x10 if size == 2 else 0x10000):
            raise DecodeError(f"non-shortest {what} length: {count} in {size} bytes", pos)
        if count > MAX_CONTAINER_LEN:
            raise DecodeError(f"{what} of {count} entries is over {MAX_CONTAINER_LEN}", pos)
        return count, pos + 1 + size

    def string(self, pos: int, head: int) -> tuple[int, int]:
        """Check the str at ``pos``; return where its UTF-8 body starts and where it ends."""
        if 0xA0 <= head <= 0xBF:
            length, body = head - 0xA0, pos + 1
        else:
            size = (1, 2, 4)[head - 0xD9]
            length = self.uint(pos + 1, size, "a str length")
            if length < (0x20, 0x100, 0x10000)[head - 0xD9]:
                raise DecodeError(f"non-shortest str length: {length} in {size} bytes", pos)
            body = pos + 1 + size
        if length > MAX_STR_BYTES:
            raise DecodeError(f"string of {length} bytes is over {MAX_STR_BYTES}", pos)
        raw = self.take(body, length, "a string")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("string is not valid UTF-8", pos) from None
        return body, body + length

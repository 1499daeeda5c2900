"""A deliberately flexible MessagePack writer that emits non-canonical variants of a value.

``variant(value, node, kind)`` encodes ``value`` canonically except at pre-order node ``node``,
where it applies one deviation of ``kind``. Each returned encoding decodes (with a lenient
decoder) to the same data model value or a near one, but is not the canonical encoding, so the
protocol decoder must refuse it.
"""

from __future__ import annotations

import struct
from typing import Any

KINDS = ("wide", "signed", "unsorted", "duplicate", "float", "ext", "trailing")


def _uint(value: int, width: int) -> bytes:
    return value.to_bytes(width, "big")


def _length(fix_base: int | None, fix_max: int, wide: tuple[int, ...], n: int, widen: bool
            ) -> bytes | None:
    """Header for a length-prefixed item; wide = type bytes for 1/2/4-byte lengths (0 = none)."""
    sizes = [(1, wide[0]), (2, wide[1]), (4, wide[2])]
    candidates = []
    if fix_base is not None and n <= fix_max:
        candidates.append(bytes([fix_base | n]))
    for size, head in sizes:
        if head and n < (1 << (8 * size)):
            candidates.append(bytes([head]) + _uint(n, size))
    if not widen:
        return candidates[0]
    return candidates[1] if len(candidates) > 1 else None


def _int(value: int, mode: str) -> bytes | None:
    forms: list[bytes] = []
    if 0 <= value <= 0x7F:
        forms.append(bytes([value]))
    if -32 <= value < 0:
        forms.append(struct.pack("b", value))
    if value >= 0:
        for head, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
            if value < (1 << (8 * size)):
                forms.append(bytes([head]) + _uint(value, size))
    signed = []
    for head, fmt, size in ((0xD0, ">b", 1), (0xD1, ">h", 2), (0xD2, ">i", 4), (0xD3, ">q", 8)):
        if -(1 << (8 * size - 1)) <= value < (1 << (8 * size - 1)):
            signed.append(bytes([head]) + struct.pack(fmt, value))
    if value < 0:
        forms.extend(signed)
    if mode == "canonical":
        return forms[0]
    if mode == "wide":
        return forms[1] if len(forms) > 1 else None
    if mode == "signed":
        return signed[0] if value >= 0 and signed else None
    if mode == "float":
        return b"\xcb" + struct.pack(">d", float(value))
    if mode == "ext":
        return b"\xd4\x01" + bytes([value & 0xFF])
    return None


class _Writer:
    def __init__(self, target: int, kind: str) -> None:
        self.target, self.kind, self.node, self.applied = target, kind, -1, False

    def here(self) -> bool:
        self.node += 1
        return self.node == self.target and not self.applied

    def write(self, value: Any) -> bytes:
        hit = self.here()
        if value is None:
            return b"\xc0"
        if value is True or value is False:
            return b"\xc3" if value else b"\xc2"
        if isinstance(value, int):
            if hit and self.kind in ("wide", "signed", "float", "ext"):
                out = _int(value, self.kind)
                if out is not None:
                    self.applied = True
                    return out
            return _int(value, "canonical")
        if isinstance(value, str):
            raw = value.encode()
            head = _length(0xA0, 31, (0xD9, 0xDA, 0xDB), len(raw), hit and self.kind == "wide")
            if head is None:
                head = _length(0xA0, 31, (0xD9, 0xDA, 0xDB), len(raw), False)
            elif hit and self.kind == "wide":
                self.applied = True
            return head + raw
        if isinstance(value, bytes):
            head = _length(None, 0, (0xC4, 0xC5, 0xC6), len(value), hit and self.kind == "wide")
            if head is None:
                head = _length(None, 0, (0xC4, 0xC5, 0xC6), len(value), False)
            elif hit and self.kind == "wide":
                self.applied = True
            return head + value
        if isinstance(value, list):
            head = _length(0x90, 15, (0, 0xDC, 0xDD), len(value), hit and self.kind == "wide")
            if head is None:
                head = _length(0x90, 15, (0, 0xDC, 0xDD), len(value), False)
            elif hit and self.kind == "wide":
                self.applied = True
            return head + b"".join(self.write(v) for v in value)
        if isinstance(value, dict):
            items = sorted(value.items(), key=lambda kv: kv[0].encode())
            widen = hit and self.kind == "wide"
            if hit and self.kind == "unsorted" and len(items) >= 2:
                items = items[::-1]
                self.applied = True
            elif hit and self.kind == "duplicate" and items:
                items = [items[0], *items]
                self.applied = True
            head = _length(0x80, 15, (0, 0xDE, 0xDF), len(items), widen)
            if head is None:
                head = _length(0x80, 15, (0, 0xDE, 0xDF), len(items), False)
            elif widen:
                self.applied = True
            body = b"".join(self.write(k) + self.write(v) for k, v in items)
            return head + body
        raise TypeError(type(value))


def variant(value: Any, node: int, kind: str) -> bytes | None:
    """The encoding of ``value`` with one ``kind`` deviation at pre-order ``node``, or None."""
    if kind == "trailing":
        return _Writer(-1, kind).write(value) + b"\xc0"
    writer = _Writer(node, kind)
    out = writer.write(value)
    return out if writer.applied else None


def canonical(value: Any) -> bytes:
    return _Writer(-1, "none").write(value)

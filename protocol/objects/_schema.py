"""Field checks shared by every object schema.

Each check takes the dotted location of the field (``commit.claim.ratio_ppm``) so the error says
exactly what was wrong and where. Objects run these in ``__post_init__``: an object that exists
is valid, whether it was built in Python or decoded from a peer's bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ..cid import CID
from ..errors import ProtocolError, ValidationError

T = TypeVar("T")


def fail(where: str, message: str) -> ValidationError:
    return ValidationError(where, message)


def wire_map(where: str, wire: object, required: Iterable[str]) -> Mapping[str, Any]:
    """Check ``wire`` is a map with exactly the ``required`` keys (none missing, none unknown)."""
    if not isinstance(wire, dict):
        raise fail(where, f"expected a map, got {type(wire).__name__}")
    expected = set(required)
    missing = sorted(expected - wire.keys())
    if missing:
        raise fail(where, f"missing field(s) {', '.join(missing)}")
    unknown = sorted(str(k) for k in wire.keys() - expected)
    if unknown:
        raise fail(where, f"unknown field(s) {', '.join(unknown)}")
    return wire


def wire_header(where: str, wire: Mapping[str, Any], object_type: str, version: int) -> None:
    if wire["type"] != object_type:
        raise fail(f"{where}.type", f"expected {object_type!r}, got {wire['type']!r}")
    if wire["v"] != version:
        raise fail(f"{where}.v", f"version {wire['v']!r} is not supported (expected {version})")


def check_int(where: str, value: object, lo: int, hi: int) -> int:
    if type(value) is not int:
        raise fail(where, f"expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise fail(where, f"{value} is outside [{lo}, {hi}]")
    return value


def check_bytes(where: str, value: object, *, length: int | None = None, max_len: int = 1 << 20
                ) -> bytes:
    if type(value) is not bytes:
        raise fail(where, f"expected bytes, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise fail(where, f"expected {length} bytes, got {len(value)}")
    if len(value) > max_len:
        raise fail(where, f"{len(value)} bytes is over {max_len}")
    return value


def check_str(where: str, value: object, *, max_bytes: int, choices: Iterable[str] | None = None,
              allow_empty: bool = False) -> str:
    if type(value) is not str:
        raise fail(where, f"expected a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise fail(where, "must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise fail(where, "is not valid Unicode") from None
    if size > max_bytes:
        raise fail(where, f"{size} bytes is over {max_bytes}")
    if choices is not None and value not in choices:
        raise fail(where, f"{value!r} is not one of {', '.join(sorted(choices))}")
    return value


def check_cid(where: str, value: object, codec: str | None = None) -> CID:
    if not isinstance(value, CID):
        raise fail(where, f"expected a CID, got {type(value).__name__}")
    if codec is not None and value.codec != codec:
        raise fail(where, f"expected a {codec} CID, got a {value.codec} one")
    return value


def check_tuple(where: str, value: object, *, max_len: int, min_len: int = 0,
                item: Callable[[str, Any], Any] | None = None, sorted_unique: bool = False,
                unique: bool = False) -> tuple[Any, ...]:
    """Check a sequence field; ``sorted_unique`` where the order must not carry meaning."""
    if not isinstance(value, tuple):
        raise fail(where, f"expected a sequence, got {type(value).__name__}")
    if not min_len <= len(value) <= max_len:
        raise fail(where, f"has {len(value)} items, expected {min_len} to {max_len}")
    if item is not None:
        for index, element in enumerate(value):
            item(f"{where}[{index}]", element)
    if sorted_unique:
        for index in range(1, len(value)):
            if not _key(value[index - 1]) < _key(value[index]):
                raise fail(where, f"items must be sorted and unique (item {index} is out of order "
                                  "or repeated)")
    elif unique and len({_key(v) for v in value}) != len(value):
        raise fail(where, "items must be unique")
    return value


def _key(value: Any) -> Any:
    """Sort key in canonical (bytewise) order: CIDs by bytes, strings by their UTF-8 bytes."""
    if isinstance(value, CID):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    sort_key = getattr(value, "sort_key", None)
    return sort_key() if callable(sort_key) else value


def wire_cid(where: str, value: object) -> CID:
    """A CID field on the wire: binary CID bytes."""
    if type(value) is not bytes:
        raise fail(where, f"expected a binary CID, got {type(value).__name__}")
    try:
        return CID(value)
    except ProtocolError as exc:
        raise fail(where, str(exc)) from None


def wire_list(where: str, value: object) -> list[Any]:
    if not isinstance(value, list):
        raise fail(where, f"expected an array, got {type(value).__name__}")
    return value


def nested(where: str, build: Callable[[], T]) -> T:
    """Run ``build`` and prefix any validation error it raises with ``where``."""
    try:
        return build()
    except ValidationError as exc:
        if exc.field.startswith(where):
            raise
        raise ValidationError(f"{where}.{exc.field}", str(exc).split(": ", 1)[-1]) from None

"""Content identifiers (docs/PROTOCOL.md §Identifiers).

A CID here is always CIDv1 with a sha2-256 multihash and one of two codecs: ``raw`` for blobs
(file bytes) and ``messagepack`` for structured objects; its text form is base32 (multibase
prefix ``b``, lower case). The byte layout comes from py-cid / py-multihash, the multiformats
libraries py-libp2p already depends on; we ask them for each codec's prefix once and then only
append a sha256 digest, because hashing is on the hot path of every object a node stores.
"""

from __future__ import annotations

import base64
import hashlib
from functools import total_ordering
from typing import Final

import cid as _cid
import multihash as _multihash

from .errors import CIDError

__all__ = ["CID", "CODEC_MSGPACK", "CODEC_RAW", "cid_of_blob", "cid_of_object_bytes"]

CODEC_RAW: Final = "raw"
CODEC_MSGPACK: Final = "messagepack"
_HASH: Final = "sha2-256"
_DIGEST_BYTES: Final = 32


def _prefix(codec: str) -> bytes:
    """The bytes a CIDv1 of ``codec`` carries before its sha2-256 digest, per the libraries."""
    probe = _cid.CIDv1(codec, _multihash.encode(bytes(_DIGEST_BYTES), _HASH)).buffer
    return probe[:-_DIGEST_BYTES]


_PREFIXES: Final = {codec: _prefix(codec) for codec in (CODEC_RAW, CODEC_MSGPACK)}
_CODEC_BY_PREFIX: Final = {prefix: codec for codec, prefix in _PREFIXES.items()}
CID_BYTES: Final = {codec: len(p) + _DIGEST_BYTES for codec, p in _PREFIXES.items()}


@total_ordering
class CID:
    """An immutable, hashable CID; ordered bytewise by its binary form (the tie-break order)."""

    __slots__ = ("_bytes",)

    def __init__(self, raw: bytes) -> None:
        """Wrap binary CID bytes, refusing any that are not a CID this protocol uses."""
        raw = bytes(raw)
        prefix = raw[:-_DIGEST_BYTES]
        if len(raw) <= _DIGEST_BYTES or prefix not in _CODEC_BY_PREFIX:
            raise CIDError(_explain(raw))
        self._bytes = raw

    @classmethod
    def for_bytes(cls, codec: str, data: bytes) -> CID:
        """The CID of ``data`` under ``codec`` (``raw`` or ``messagepack``)."""
        try:
            prefix = _PREFIXES[codec]
        except KeyError:
            raise CIDError(f"codec {codec!r} is not used by poi") from None
        return cls._trusted(prefix + hashlib.sha256(data).digest())

    @classmethod
    def _trusted(cls, raw: bytes) -> CID:
        obj = object.__new__(cls)
        obj._bytes = raw
        return obj

    @classmethod
    def parse(cls, text: str) -> CID:
        """Parse the base32 text form; anything else (other bases, CIDv0, junk) is refused."""
        if not isinstance(text, str):
            raise CIDError(f"a CID's text form is a str, not {type(text).__name__}")
        if not text.startswith("b") or text != text.lower() or len(text) > 128:
            raise CIDError(f"{text[:80]!r} is not a base32 CIDv1 (expected 'b' + lower case)")
        try:
            parsed = _cid.from_string(text)
        except Exception as exc:
            raise CIDError(f"{text[:80]!r} is not a valid CID: {exc}") from None
        result = cls(parsed.buffer)
        if str(result) != text:
            raise CIDError(f"{text[:80]!r} is not in canonical base32 form")
        return result

    @property
    def codec(self) -> str:
        return _CODEC_BY_PREFIX[self._bytes[:-_DIGEST_BYTES]]

    @property
    def digest(self) -> bytes:
        return self._bytes[-_DIGEST_BYTES:]

    def __bytes__(self) -> bytes:
        return self._bytes

    def __str__(self) -> str:
        # Multibase base32 is RFC 4648 base32, lower case, unpadded, after the prefix 'b';
        # parse() checks the library's reading of this text against the same bytes.
        return "b" + base64.b32encode(self._bytes).decode().lower().rstrip("=")

    def __repr__(self) -> str:
        return f"CID({self!s})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CID) and other._bytes == self._bytes

    def __lt__(self, other: CID) -> bool:
        return self._bytes < other._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` hashes to this CID (under this CID's codec)."""
        return hashlib.sha256(data).digest() == self.digest


def _explain(raw: bytes) -> str:
    """Say what is wrong with binary CID bytes, using the library's parser for the details."""
    try:
        parsed = _cid.from_bytes_strict(raw)
    except Exception as exc:
        return f"not a valid binary CID ({len(raw)} bytes): {exc}"
    if parsed.version != 1:
        return f"CIDv{parsed.version} is not used: poi uses CIDv1"
    if parsed.codec not in _PREFIXES:
        return f"codec {parsed.codec!r} is not used: poi uses raw and messagepack"
    return "multihash is not sha2-256 with a 32-byte digest"


def cid_of_blob(data: bytes) -> CID:
    """CID of a blob: the raw codec over the file bytes."""
    return CID.for_bytes(CODEC_RAW, data)


def cid_of_object_bytes(encoded: bytes) -> CID:
    """CID of a structured object: the messagepack codec over its full canonical encoding."""
    return CID.for_bytes(CODEC_MSGPACK, encoded)

"""Blobs: raw file bytes, named by a ``raw`` CID (docs/PROTOCOL.md §Objects)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..cid import CID, cid_of_blob
from ..constants import MAX_BLOB_BYTES
from ..errors import ValidationError


@dataclass(frozen=True)
class Blob:
    """One file's contents. Unlike the other objects it has no map form: its bytes are itself."""

    data: bytes

    def __post_init__(self) -> None:
        if type(self.data) is not bytes:
            raise ValidationError("blob", f"expected bytes, got {type(self.data).__name__}")
        if len(self.data) > MAX_BLOB_BYTES:
            raise ValidationError("blob", f"{len(self.data)} bytes is over {MAX_BLOB_BYTES}")

    def encode(self) -> bytes:
        return self.data

    @cached_property
    def cid(self) -> CID:
        return cid_of_blob(self.data)

    @classmethod
    def decode(cls, data: bytes) -> Blob:
        return cls(bytes(data))

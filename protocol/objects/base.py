"""What every structured object shares: wire form, canonical bytes, CID, signature.

One obvious way for each object type:

- build: ``Commit(...)`` (validates in ``__post_init__``; an object that exists is valid), or
  ``Commit.create(key, ...)`` for signed types, which fills the signer field and signs;
- encode: ``obj.encode()`` (canonical MessagePack) and ``obj.cid``;
- decode: ``Commit.decode(data)`` (or :func:`protocol.objects.decode_object` by ``type``);
- verify: ``obj.verify()`` raises :class:`SignatureError` unless every signature holds.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any, ClassVar, Self

from ..cid import CID, cid_of_object_bytes
from ..constants import PROTOCOL_VERSION, SIGNATURE_BYTES
from ..encoding import decode, encode
from ..errors import ValidationError
from ..keys import SigningKey, verify
from ._schema import check_bytes, wire_header, wire_map


class PoiObject:
    """Base of the structured (MessagePack) objects. Subclasses are frozen dataclasses."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = PROTOCOL_VERSION
    FIELDS: ClassVar[tuple[str, ...]]
    """Wire field names besides ``type`` and ``v``."""

    # -- subclass hooks -------------------------------------------------------------------------
    def body(self) -> dict[str, Any]:
        """The wire fields (plain msgpack values) other than ``type`` and ``v``."""
        raise NotImplementedError

    @classmethod
    def from_body(cls, wire: dict[str, Any]) -> Self:
        """Build from checked wire fields (keys already exact); raise ValidationError."""
        raise NotImplementedError

    # -- shared behaviour -----------------------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "v": self.VERSION, **self.body()}

    @classmethod
    def from_wire(cls, wire: object) -> Self:
        checked = wire_map(cls.TYPE, wire, ("type", "v", *cls.FIELDS))
        wire_header(cls.TYPE, checked, cls.TYPE, cls.VERSION)
        return cls.from_body(dict(checked))

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def encoded(self) -> bytes:
        return encode(self.to_wire())

    @cached_property
    def cid(self) -> CID:
        return cid_of_object_bytes(self.encoded)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode and validate canonical bytes as this type (DecodeError / ValidationError)."""
        obj = cls.from_wire(decode(data))
        obj.__dict__["encoded"] = bytes(data)  # canonical: re-encoding would give these bytes
        return obj


class SignedObject(PoiObject):
    """An object carrying its signer's public key and an Ed25519 signature over the rest."""

    SIGNER: ClassVar[str]
    """Name of the field that holds the signer's public key."""

    sig: bytes | None

    @property
    def signer(self) -> bytes:
        return getattr(self, self.SIGNER)

    def signing_payload(self) -> bytes:
        """The canonical encoding of the object without ``sig``: what the signature covers."""
        return encode(self.to_wire_unsigned())

    def to_wire_unsigned(self) -> dict[str, Any]:
        return {"type": self.TYPE, "v": self.VERSION, **self.body()}

    def to_wire(self) -> dict[str, Any]:
        if self.sig is None:
            raise ValidationError(f"{self.TYPE}.sig", "unsigned: sign it before encoding")
        return {**self.to_wire_unsigned(), "sig": self.sig}

    @classmethod
    def from_wire(cls, wire: object) -> Self:
        checked = wire_map(cls.TYPE, wire, ("type", "v", "sig", *cls.FIELDS))
        wire_header(cls.TYPE, checked, cls.TYPE, cls.VERSION)
        body = dict(checked)
        sig = check_bytes(f"{cls.TYPE}.sig", body.pop("sig"), length=SIGNATURE_BYTES)
        obj = cls.from_body(body)
        # Setting the checked signature in place, not by dataclasses.replace: replace would
        # build and validate the object a second time (a third of decoding an attestation).
        object.__setattr__(obj, "sig", sig)
        return obj

    def signed(self, key: SigningKey) -> Self:
        """A copy carrying ``key``'s signature; ``key`` must be the object's signer."""
        if key.public_key != self.signer:
            raise ValidationError(f"{self.TYPE}.{self.SIGNER}",
                                  "signing key does not match the signer field")
        return dataclasses.replace(  # type: ignore[type-var]
            self, sig=key.sign(self.TYPE, self.signing_payload())
        )

    def verify(self) -> None:
        """Raise SignatureError unless the signature (and any nested one) verifies."""
        if self.sig is None:
            raise ValidationError(f"{self.TYPE}.sig", "unsigned")
        verify(self.signer, self.TYPE, self.signing_payload(), self.sig)


def check_signature_field(where: str, sig: bytes | None) -> None:
    if sig is not None:
        check_bytes(f"{where}.sig", sig, length=SIGNATURE_BYTES)

"""Ed25519 keys, domain-separated signatures and peer IDs (docs/PROTOCOL.md §Keys).

A node's signing key is also its libp2p identity: the same 32-byte seed makes the Ed25519 key that
signs commits and attestations and the key behind the node's libp2p peer ID, so one name covers
both worlds. Every signature covers ``poi/1/<type>`` + NUL + the canonical encoding of the object
without its ``sig`` field, so a signature made for one object type can never be replayed as
another.
"""

from __future__ import annotations

from functools import lru_cache

import base58
import multihash as _multihash
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .constants import PUBLIC_KEY_BYTES, SEED_BYTES, SIGNATURE_BYTES, SIGNATURE_DOMAIN_PREFIX
from .errors import SignatureError

__all__ = ["SigningKey", "domain", "peer_id_of", "verify"]

# libp2p names a key by the identity multihash of its protobuf PublicKey message:
# field 1 (varint) KeyType = 1 (Ed25519), field 2 (bytes) Data = the 32-byte public key.
_LIBP2P_ED25519_PROTOBUF_PREFIX = bytes([0x08, 0x01, 0x12, PUBLIC_KEY_BYTES])


def domain(object_type: str) -> bytes:
    """The signature domain of an object type: ``poi/1/<type>`` followed by a NUL byte."""
    return SIGNATURE_DOMAIN_PREFIX + object_type.encode("ascii") + b"\x00"


class SigningKey:
    """An Ed25519 private key held as its 32-byte seed (the form libp2p also stores)."""

    __slots__ = ("_private", "public_key", "seed")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes")
        self.seed = seed
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._private.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's randomness (the only impure constructor)."""
        return cls(Ed25519PrivateKey.generate().private_bytes_raw())

    def sign(self, object_type: str, payload: bytes) -> bytes:
        """Sign ``payload`` (an encoding without ``sig``) in ``object_type``'s domain."""
        return self._private.sign(domain(object_type) + payload)

    @property
    def peer_id(self) -> str:
        return peer_id_of(self.public_key)

    def __repr__(self) -> str:  # never print the seed
        return f"SigningKey(public_key={self.public_key.hex()})"


@lru_cache(maxsize=1 << 14)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key: bytes, object_type: str, payload: bytes, signature: bytes) -> None:
    """Check a signature; raise :class:`SignatureError` saying why it fails."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise SignatureError(f"public key is {len(public_key)} bytes, not {PUBLIC_KEY_BYTES}")
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"signature is {len(signature)} bytes, not {SIGNATURE_BYTES}")
    try:
        _public_key(public_key).verify(signature, domain(object_type) + payload)
    except InvalidSignature:
        raise SignatureError(
            f"{object_type} signature does not verify under key {public_key.hex()[:16]}…"
        ) from None
    except ValueError as exc:  # not a point on the curve
        raise SignatureError(f"public key is not a valid Ed25519 key: {exc}") from None


def peer_id_of(public_key: bytes) -> str:
    """The libp2p peer ID (base58btc) that names ``public_key``.

    An Ed25519 key's protobuf form is 36 bytes, under libp2p's 42-byte limit for inlining, so the
    peer ID is the identity multihash of the protobuf itself (tests check this against
    py-libp2p's own derivation).
    """
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"public key is {len(public_key)} bytes, not {PUBLIC_KEY_BYTES}")
    encoded = _multihash.encode(_LIBP2P_ED25519_PROTOBUF_PREFIX + public_key, "id")
    return base58.b58encode(encoded).decode("ascii")

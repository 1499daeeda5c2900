"""Keystore documents: a signing key sealed with a passphrase (docs/PROTOCOL.md §Keystore).

A node's key signs attestations that stake rides on, so at rest it is encrypted: scrypt derives a
key from the passphrase and ChaCha20-Poly1305 seals the 32-byte seed, with the public key as
associated data (a document whose public key was swapped fails to open). The document is
canonical MessagePack like every other poi object, so it has one byte form.

An explicit, loudly named unencrypted mode exists for throw-away development networks; opening
one says so (``SealedKey.unencrypted``) so callers can warn every time.

This module is pure: salt and nonce are arguments. ``node.keystore`` does the file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .constants import PROTOCOL_VERSION, SEED_BYTES
from .encoding import decode, encode
from .errors import KeystoreError, ProtocolError
from .keys import SigningKey

__all__ = [
    "PROTECTION_PASSPHRASE",
    "PROTECTION_UNENCRYPTED",
    "SCRYPT_DEFAULT",
    "OpenedKey",
    "ScryptParams",
    "open_key",
    "seal_key",
    "seal_key_unencrypted",
]

PROTECTION_PASSPHRASE = "scrypt+chacha20poly1305"
PROTECTION_UNENCRYPTED = "UNENCRYPTED-DEV-ONLY"
SALT_BYTES = 16
NONCE_BYTES = 12


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost: ``n`` (CPU/memory, a power of two), ``r`` (block size), ``p`` (parallelism)."""

    n: int = 1 << 15
    r: int = 8
    p: int = 1

    def check(self) -> None:
        if not (2 <= self.n <= 1 << 20 and self.n & (self.n - 1) == 0):
            raise KeystoreError(f"scrypt n={self.n} must be a power of two in [2, 2^20]")
        if not (1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise KeystoreError(f"scrypt r={self.r}, p={self.p} out of range")


SCRYPT_DEFAULT = ScryptParams()
"""About 0.1 s and 32 MiB per unlock on a laptop core: slow enough to deter guessing."""


@dataclass(frozen=True)
class OpenedKey:
    key: SigningKey
    unencrypted: bool


def _derive(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    params.check()
    kdf = Scrypt(salt=salt, length=32, n=params.n, r=params.r, p=params.p)
    return kdf.derive(passphrase.encode("utf-8"))


def seal_key(
    key: SigningKey,
    passphrase: str,
    *,
    salt: bytes,
    nonce: bytes,
    params: ScryptParams = SCRYPT_DEFAULT,
) -> bytes:
    """Encrypt ``key`` under ``passphrase``; ``salt`` and ``nonce`` must be fresh random bytes."""
    if not passphrase:
        raise KeystoreError("an empty passphrase protects nothing: use the unencrypted dev mode")
    if len(salt) != SALT_BYTES or len(nonce) != NONCE_BYTES:
        raise KeystoreError(f"salt is {SALT_BYTES} bytes and nonce {NONCE_BYTES} bytes")
    sealed = ChaCha20Poly1305(_derive(passphrase, salt, params)).encrypt(
        nonce, key.seed, key.public_key
    )
    return encode({
        "type": "keystore",
        "v": PROTOCOL_VERSION,
        "protection": PROTECTION_PASSPHRASE,
        "public_key": key.public_key,
        "scrypt": {"n": params.n, "r": params.r, "p": params.p, "salt": salt},
        "nonce": nonce,
        "ciphertext": sealed,
    })


def seal_key_unencrypted(key: SigningKey) -> bytes:
    """Store the seed in clear. For local development networks only; never for real stake."""
    return encode({
        "type": "keystore",
        "v": PROTOCOL_VERSION,
        "protection": PROTECTION_UNENCRYPTED,
        "public_key": key.public_key,
        "seed": key.seed,
    })


def open_key(document: bytes, passphrase: str | None) -> OpenedKey:
    """Open a keystore document; raise :class:`KeystoreError` saying why it cannot be opened."""
    try:
        doc = decode(document)
    except ProtocolError as exc:
        raise KeystoreError(f"keystore is not a canonical document: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "keystore":
        raise KeystoreError("not a poi keystore document")
    if doc.get("v") != PROTOCOL_VERSION:
        raise KeystoreError(f"keystore version {doc.get('v')!r} is not supported")
    protection = doc.get("protection")
    try:
        if protection == PROTECTION_UNENCRYPTED:
            seed = doc["seed"]
        elif protection == PROTECTION_PASSPHRASE:
            if not passphrase:
                raise KeystoreError("this key is encrypted: a passphrase is needed")
            s = doc["scrypt"]
            params = ScryptParams(n=s["n"], r=s["r"], p=s["p"])
            cipher = ChaCha20Poly1305(_derive(passphrase, s["salt"], params))
            seed = cipher.decrypt(doc["nonce"], doc["ciphertext"], doc["public_key"])
        else:
            raise KeystoreError(f"unknown key protection {protection!r}")
    except InvalidTag:
        raise KeystoreError("wrong passphrase, or the keystore was altered") from None
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, KeystoreError):
            raise
        raise KeystoreError(f"malformed keystore document: {exc!r}") from None
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        raise KeystoreError("malformed keystore document: bad seed")
    key = SigningKey(seed)
    if key.public_key != doc.get("public_key"):
        raise KeystoreError("keystore's public key does not match its secret key")
    return OpenedKey(key=key, unencrypted=protection == PROTECTION_UNENCRYPTED)

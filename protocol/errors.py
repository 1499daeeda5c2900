"""The protocol's error hierarchy.

Every refusal of bad input raises a subclass of :class:`ProtocolError` whose message names the
fault (which byte, which field, which rule), so a node can log why it rejected a peer's message
and a user can act on it. Nothing else escapes the decoders and validators.
"""


class ProtocolError(ValueError):
    """Base class: input that the protocol refuses."""


class DecodeError(ProtocolError):
    """Bytes that are not the canonical encoding of an allowed value (DESIGN §3)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        super().__init__(message if offset is None else f"{message} (at byte {offset})")


class EncodeError(ProtocolError):
    """A value that has no canonical encoding (a float, a non-str map key, too deep...)."""


class CIDError(ProtocolError):
    """A malformed CID or one this protocol does not use (wrong version, codec or hash)."""


class ValidationError(ProtocolError):
    """A well-encoded object whose fields break the schema; ``field`` is the dotted path."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class SignatureError(ProtocolError):
    """A signature that does not verify under the signer key carried by the object."""


class KeystoreError(ProtocolError):
    """A keystore document that cannot be opened (wrong passphrase, corrupt or unknown format)."""

"""poi's protocol: canonical encoding, CIDs, keys and signatures, objects, validation rules.

Pure: no I/O, no clock. This package is the executable specification that docs/PROTOCOL.md
describes; every other package builds on it.
"""

from .cid import CID, cid_of_blob, cid_of_object_bytes
from .encoding import decode, encode
from .errors import (
    CIDError,
    DecodeError,
    EncodeError,
    KeystoreError,
    ProtocolError,
    SignatureError,
    ValidationError,
)
from .keys import SigningKey, peer_id_of, verify
from .objects import (
    Attestation,
    Blob,
    Challenge,
    Claim,
    Commands,
    Commit,
    Evidence,
    Limits,
    Ruling,
    StakeTx,
    Stats,
    Target,
    Tree,
    TreeEntry,
    Validator,
    Verdict,
    decode_object,
)

__all__ = [
    "CID", "Attestation", "Blob", "CIDError", "Challenge", "Claim", "Commands", "Commit",
    "DecodeError", "EncodeError", "Evidence", "KeystoreError", "Limits", "ProtocolError", "Ruling",
    "SignatureError", "SigningKey", "StakeTx", "Stats", "Target", "Tree", "TreeEntry",
    "ValidationError", "Validator", "Verdict", "cid_of_blob", "cid_of_object_bytes", "decode",
    "decode_object", "encode", "peer_id_of", "verify",
]

"""Keys, signatures, peer IDs and the keystore."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.keystore import UNENCRYPTED_NAME, create_key, load_key
from protocol.errors import KeystoreError, SignatureError
from protocol.keys import SigningKey, domain, peer_id_of, verify
from protocol.keystore import ScryptParams, open_key, seal_key, seal_key_unencrypted

FAST = ScryptParams(n=2**4, r=8, p=1)  # keeps tests quick; the default is 2^15


@settings(max_examples=25)
@given(st.binary(min_size=32, max_size=32))
def test_peer_id_matches_libp2p_derivation_for_the_same_seed(seed):
    from libp2p.crypto.ed25519 import Ed25519PrivateKey
    from libp2p.peer.id import ID

    ours = SigningKey(seed)
    theirs = Ed25519PrivateKey.from_bytes(seed)
    assert theirs.get_public_key().to_bytes() == ours.public_key
    assert ID.from_pubkey(theirs.get_public_key()).to_base58() == ours.peer_id
    # libp2p's signatures for the same seed verify under our checker (same key, both worlds)
    message = b"hello"
    assert theirs.sign(domain("commit") + message) == ours.sign("commit", message)


def test_signature_checks_name_the_problem():
    key = SigningKey(bytes(32))
    sig = key.sign("commit", b"x")
    verify(key.public_key, "commit", b"x", sig)
    with pytest.raises(SignatureError, match="does not verify"):
        verify(key.public_key, "commit", b"y", sig)
    with pytest.raises(SignatureError, match="64"):
        verify(key.public_key, "commit", b"x", sig[:10])
    with pytest.raises(SignatureError, match="32"):
        verify(key.public_key[:5], "commit", b"x", sig)
    assert "seed" not in repr(key) and key.seed.hex() not in repr(key)


def test_keystore_round_trip_and_wrong_passphrase():
    key = SigningKey.generate()
    doc = seal_key(key, "correct horse", salt=os.urandom(16), nonce=os.urandom(12), params=FAST)
    opened = open_key(doc, "correct horse")
    assert opened.key.seed == key.seed and not opened.unencrypted
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        open_key(doc, "battery staple")
    with pytest.raises(KeystoreError, match="passphrase is needed"):
        open_key(doc, None)
    assert key.seed not in doc


def test_keystore_detects_tampering():
    key = SigningKey.generate()
    doc = bytearray(seal_key(key, "pw", salt=bytes(16), nonce=bytes(12), params=FAST))
    doc[-1] ^= 1
    with pytest.raises(KeystoreError):
        open_key(bytes(doc), "pw")
    with pytest.raises(KeystoreError, match="not a canonical document"):
        open_key(b"\xff\x00garbage", "pw")


def test_unencrypted_dev_mode_is_explicit_and_says_so():
    key = SigningKey.generate()
    opened = open_key(seal_key_unencrypted(key), None)
    assert opened.unencrypted and opened.key.seed == key.seed


def test_keystore_directory_files_are_private_atomic_and_never_overwritten(tmp_path, caplog):
    path = create_key(tmp_path / "keys", "pw", params=FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(tmp_path / "keys", "pw").key.public_key
    with pytest.raises(KeystoreError, match="refusing to overwrite"):
        create_key(tmp_path / "keys", "pw", params=FAST)
    with pytest.raises(KeystoreError, match="passphrase is needed"):
        create_key(tmp_path / "other", None)
    with caplog.at_level(logging.WARNING):
        dev = create_key(tmp_path / "dev", None, dev_unencrypted=True)
        assert dev.name == UNENCRYPTED_NAME
        assert load_key(tmp_path / "dev", None).unencrypted
    assert sum("UNENCRYPTED" in r.message for r in caplog.records) >= 2
    with pytest.raises(KeystoreError, match="poi init"):
        load_key(tmp_path / "empty", None)


def test_peer_id_of_rejects_wrong_length():
    with pytest.raises(ValueError):
        peer_id_of(b"short")

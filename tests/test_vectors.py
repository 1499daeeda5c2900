"""Known-answer vectors: what we compute today equals what is committed under tests/vectors/."""

from __future__ import annotations

import json

from protocol.cid import CID, cid_of_object_bytes
from protocol.encoding import decode
from protocol.keys import SigningKey
from protocol.objects import decode_object

from .vectors.generate import PATH, render, to_json


def test_committed_vectors_equal_a_fresh_computation():
    assert PATH.read_text() == render(), (
        "protocol output changed: if intended, run `python -m tests.vectors.generate` and "
        "say why in the commit"
    )


def test_vectors_check_out_independently_of_the_generator():
    data = json.loads(PATH.read_text())
    for entry in data["keys"]:
        key = SigningKey(bytes.fromhex(entry["seed"]))
        assert key.public_key.hex() == entry["public_key"]
        assert key.peer_id == entry["peer_id"]
    for entry in data["plain_values"]:
        assert to_json(decode(bytes.fromhex(entry["encoding"]))) == entry["value"]
    for name, entry in data["objects"].items():
        raw = bytes.fromhex(entry["encoding"])
        if entry["type"] == "blob":
            assert CID.parse(entry["cid"]).matches(raw)
            continue
        obj = decode_object(raw)
        assert str(cid_of_object_bytes(raw)) == entry["cid"] == str(obj.cid), name
        if "sig" in entry:
            obj.verify()
            assert obj.sig.hex() == entry["sig"]

"""Protocol objects: round trips, signatures, and a clear error for every malformed field."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import examples
from protocol.cid import cid_of_blob, cid_of_object_bytes
from protocol.encoding import encode
from protocol.errors import ProtocolError, SignatureError, ValidationError
from protocol.objects import (
    Attestation,
    Blob,
    Challenge,
    Commit,
    Evidence,
    StakeTx,
    Target,
    Tree,
    TreeEntry,
    decode_object,
)

from .strategies import blobs, signed_objects, structured_objects


@settings(max_examples=200)
@given(structured_objects)
def test_every_object_round_trips_through_its_encoding(obj):
    data = obj.encode()
    again = type(obj).decode(data)
    assert again == obj
    assert again.encode() == data
    assert again.cid == obj.cid == cid_of_object_bytes(data)
    assert decode_object(data).cid == obj.cid


@given(blobs)
def test_blob_round_trips_and_is_named_by_a_raw_cid(blob):
    assert Blob.decode(blob.encode()) == blob
    assert blob.cid == cid_of_blob(blob.data) and blob.cid.codec == "raw"


@settings(max_examples=200)
@given(signed_objects, st.data())
def test_one_flipped_bit_in_a_signed_object_fails(obj, data):
    obj.verify()
    raw = bytearray(obj.encode())
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ProtocolError):
        decoded = decode_object(bytes(raw))
        decoded.verify()


@given(signed_objects)
def test_signature_is_domain_separated_by_type(obj):
    from protocol.keys import verify

    for other in ("commit", "attestation", "stake", "evidence", "challenge", "ruling"):
        if other != obj.TYPE:
            with pytest.raises(SignatureError):
                verify(obj.signer, other, obj.signing_payload(), obj.sig)


def test_signing_with_a_key_that_is_not_the_signer_is_refused():
    commit = examples.commit()
    with pytest.raises(ValidationError, match=r"commit\.author"):
        commit.signed(examples.key(5))


def test_unsigned_objects_cannot_be_encoded():
    tx = StakeTx(target=examples.target().cid, account=examples.key(1).public_key, op="bond",
                 amount=1, nonce=0)
    with pytest.raises(ValidationError, match="unsigned"):
        tx.encode()


def _mutated(obj, path, value):
    wire = copy.deepcopy(obj.to_wire())
    node = wire
    for step in path[:-1]:
        node = node[step]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return encode(wire)


DELETE = object()
ANY_CID = bytes(examples.commit().cid)
BLOB_CID = bytes(examples.blob().cid)

MALFORMED = [
    # (example name, path into the wire map, new value, the field the error must name)
    ("commit", ["type"], "comit", "type"),
    ("commit", ["v"], 2, "commit.v"),
    ("commit", ["extra"], 1, "unknown field(s) extra"),
    ("commit", ["message"], DELETE, "missing field(s) message"),
    ("commit", ["parents"], [], "commit.parents"),
    ("commit", ["parents"], [ANY_CID, ANY_CID], "commit.parents"),
    ("commit", ["parents", 0], b"\x01\x02", "commit.parents[0]"),
    ("commit", ["parents", 0], BLOB_CID, "commit.parents[0]"),
    ("commit", ["tree"], "bafy", "commit.tree"),
    ("commit", ["author"], b"\x00" * 31, "commit.author"),
    ("commit", ["claim", "ratio_ppm"], -5, "commit.claim.ratio_ppm"),
    ("commit", ["claim", "lo_ppm"], 999_999, "commit.claim"),
    ("commit", ["claim", "pairs"], 0, "commit.claim.pairs"),
    ("commit", ["claim", "profile"], "", "commit.claim.profile"),
    ("commit", ["time_ms"], -1, "commit.time_ms"),
    ("commit", ["message"], "x" * 5000, "commit.message"),
    ("commit", ["sig"], b"\x00" * 10, "commit.sig"),
    ("commit", ["stake_txs", 0, "op"], "steal", "commit.stake_txs[0].stake.op"),
    ("commit", ["stake_txs", 0, "amount"], 0, "commit.stake_txs[0].stake.amount"),
    ("attestation", ["seq"], 3, "attestation.prev"),
    ("attestation", ["verdict", "result"], "maybe", "attestation.verdict.result"),
    ("attestation", ["verdict", "gate_seed"], b"x", "attestation.verdict.gate_seed"),
    ("attestation", ["verdict", "ratio_ppm"], 0, "attestation.verdict.ratio_ppm"),
    ("attestation", ["verdict", "parent"], bytes(examples.commit().cid),
     "attestation.verdict.parent"),
    ("attestation", ["head"], None, "attestation.head"),
    ("attestation", ["epoch"], True, "attestation.epoch"),
    ("tree", ["entries", "../escape"], [BLOB_CID, 0o644], "tree.entries"),
    ("tree", ["entries", "/abs"], [BLOB_CID, 0o644], "tree.entries"),
    ("tree", ["entries", "a\x00b"], [BLOB_CID, 0o644], "tree.entries"),
    ("tree", ["entries", "dft/src/lib.rs/x"], [BLOB_CID, 0o644], "both a file and a directory"),
    ("tree", ["entries", "link"], [BLOB_CID, 0o120777], "tree.entries['link'].mode"),
    ("tree", ["entries", "obj"], [ANY_CID, 0o644], "tree.entries['obj'].blob"),
    ("target", ["writable"], ["b/**", "a/**"], "target.writable"),
    ("target", ["writable"], ["../**"], "target.writable[0]"),
    ("target", ["direction"], "sideways", "target.direction"),
    ("target", ["commands", "gate"], ["gate"], "target.commands.gate"),
    ("target", ["stats", "pairs"], 1, "target.stats.pairs"),
    ("target", ["limits", "memory_mb"], 0, "target.limits.memory_mb"),
    ("target", ["validators"], [], "target.validators"),
    ("target", ["validators", 0, 1], 0, "target.validators[0].validator.stake"),
    ("target", ["quorum_ppm"], 0, "target.quorum_ppm"),
    ("stake", ["op"], "mint", "stake.op"),
    ("evidence", ["b"], DELETE, "missing field(s) b"),
    ("challenge", ["bond"], 0, "challenge.bond"),
    ("challenge", ["anchor"], BLOB_CID, "challenge.anchor"),
    ("ruling", ["gate_passed"], 1, "ruling.gate_passed"),
    ("ruling", ["member"], b"", "ruling.member"),
]


@pytest.mark.parametrize(("name", "path", "value", "field"), MALFORMED,
                         ids=[f"{m[0]}-{'.'.join(map(str, m[1]))}" for m in MALFORMED])
def test_malformed_field_is_refused_with_its_name(name, path, value, field):
    obj = examples.all_objects()[name]
    with pytest.raises(ProtocolError) as info:
        decode_object(_mutated(obj, path, value))
    assert field in str(info.value)


def test_evidence_must_be_a_real_conflict_in_canonical_order():
    a = examples.attestation(result="improved")
    b = examples.attestation(result="gate_failed", seq=7)
    first, second = sorted((a, b), key=lambda x: x.cid)
    with pytest.raises(ValidationError, match="ascending CID order"):
        Evidence(target=a.target, a=second, b=first, submitter=examples.key(3).public_key)
    same_result = examples.attestation(result="improved", seq=5)
    with pytest.raises(ValidationError, match="do not conflict"):
        Evidence.create(examples.key(3), a, same_result)
    other_verifier = examples.attestation(verifier=2, result="gate_failed")
    with pytest.raises(ValidationError, match="do not conflict"):
        Evidence.create(examples.key(3), a, other_verifier)
    ev = Evidence.create(examples.key(3), a, b)
    assert ev.offender == examples.key(1).public_key
    assert "different verdicts" in ev.reason
    fork = Evidence.create(examples.key(3), a, examples.attestation(result=None))
    assert "sequence number 0" in fork.reason


def test_evidence_with_a_forged_attestation_fails_verification():
    a, b = examples.attestation(result="improved"), examples.attestation(result="gate_failed")
    forged = Attestation(**{**b.__dict__, "sig": a.sig})
    forged.__dict__.pop("encoded", None)
    forged.__dict__.pop("cid", None)
    ev = Evidence.create(examples.key(3), a, forged)
    with pytest.raises(SignatureError):
        ev.verify()


def test_challenge_needs_a_gate_claim_and_another_party():
    anchor = examples.target().cid
    vote_only = examples.attestation(result=None)
    with pytest.raises(ValidationError, match="no gate claim"):
        Challenge.create(examples.key(2), vote_only, anchor=anchor, bond=1, nonce=0)
    build_failed = examples.attestation(result="build_failed")
    with pytest.raises(ValidationError, match="no gate claim"):
        Challenge.create(examples.key(2), build_failed, anchor=anchor, bond=1, nonce=0)
    with pytest.raises(ValidationError, match="cannot challenge itself"):
        Challenge.create(examples.key(1), examples.attestation(verifier=1), anchor=anchor, bond=1,
                         nonce=0)


def test_merge_parents_after_the_first_are_canonically_ordered():
    tgt = examples.target()
    p1, p2, p3 = (cid_of_object_bytes(bytes([i])) for i in range(3))
    c = Commit.create(examples.key(0), target=tgt.cid, parents=[p2, p3, p1], tree=tgt.base_tree,
                      claim=examples.claim(), time_ms=1)
    assert c.parents == (p2, *sorted([p1, p3]))
    with pytest.raises(ValidationError, match="sorted and unique"):
        Commit(**{**c.__dict__, "parents": (p2, max(p1, p3), min(p1, p3)), "sig": None})


def test_tree_entries_are_kept_in_canonical_order_and_file_dir_clash_refused():
    blob = examples.blob().cid
    tree = Tree({"b": TreeEntry(blob), "a/z": TreeEntry(blob), "a-b": TreeEntry(blob)})
    assert list(tree) == ["a-b", "a/z", "b"]
    with pytest.raises(ValidationError, match="both a file and a directory"):
        Tree({"a": TreeEntry(blob), "a/b": TreeEntry(blob)})


def test_target_epoch_arithmetic():
    tgt = examples.target()
    assert tgt.epoch_at(tgt.genesis_time_ms) == 0
    assert tgt.epoch_at(tgt.genesis_time_ms + tgt.epoch_seconds * 1000 - 1) == 0
    assert tgt.epoch_at(tgt.genesis_time_ms + tgt.epoch_seconds * 1000) == 1
    assert tgt.epoch_at(tgt.genesis_time_ms - 1) == -1
    assert Target.decode(tgt.encode()).commands.with_seed("gate", "ab") == [
        "target/release/gate", "--seed", "ab"]


def test_decode_object_refuses_unknown_types_and_non_maps():
    for value in ({"type": "nope", "v": 1}, [1, 2], 5, {"v": 1}):
        with pytest.raises(ValidationError, match="type"):
            decode_object(encode(value))

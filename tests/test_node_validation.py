"""The gossip validation tiers, topics and bundles (node/validation.py, node/topics.py)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import trio

from node.bundle import decode_bundle
from node.p2p import MAX_GOSSIP_BYTES
from node.runtime import gossip_messages
from node.topics import KINDS, TopicError, pack_bundles, parse_topic, topic
from node.validation import (
    MAX_FUTURE_MS,
    MAX_ITEM_BYTES,
    Action,
    Item,
    SignatureVerifier,
    bundle_check,
    decode_items,
    ignore,
    placement_problem,
    reject,
    time_problem,
)
from protocol import examples
from protocol.constants import MAX_LABEL_BYTES, MAX_MESSAGE_BYTES, MAX_PARENTS
from protocol.objects import (
    Attestation,
    Blob,
    Challenge,
    Claim,
    Commit,
    Evidence,
    Ruling,
    StakeTx,
    Tree,
    TreeEntry,
    Verdict,
)

TARGET = examples.target()
NOW = examples.GENESIS_TIME_MS + 200_000
FOLLOW = {TARGET.cid}


def test_topic_names_round_trip_and_junk_is_refused():
    for kind in KINDS:
        name = topic(TARGET.cid, kind)
        assert name == f"poi/{TARGET.cid}/{kind}/1"
        assert parse_topic(name) == (TARGET.cid, kind)
    for junk in ("poi/x/commits/1", f"poi/{TARGET.cid}/blocks/1", f"poi/{TARGET.cid}/commits/2",
                 "commits"):
        with pytest.raises(TopicError):
            parse_topic(junk)


def test_bundles_are_packed_under_the_cap_in_order():
    items = [bytes([i % 256]) * 3000 for i in range(1000)]
    bundles = pack_bundles(items, max_bytes=100_000, max_objects=50)
    assert all(len(b) <= 100_000 for b in bundles)
    unpacked = [item for b in bundles for item in decode_bundle(b)]
    assert unpacked == items
    assert max(len(decode_bundle(b)) for b in bundles) <= 50
    with pytest.raises(ValueError, match="does not fit"):
        pack_bundles([b"x" * 200_000], max_bytes=100_000)


def test_the_largest_valid_objects_fit_their_size_caps():
    key = examples.key(1)
    label = "x" * MAX_LABEL_BYTES
    verdict = dataclasses.replace(examples.verdict(), profile=label, toolchain=label)
    big_att = Attestation.create(key, target=TARGET.cid, seq=2**63, prev=TARGET.cid,
                                 epoch=2**40, time_ms=2**50, head=examples.commit().cid,
                                 verdict=verdict)
    other = Attestation.create(key, target=TARGET.cid, seq=2**63, prev=TARGET.cid,
                               epoch=2**40, time_ms=2**50, head=TARGET.cid,
                               verdict=dataclasses.replace(verdict, result="gate_failed",
                                                           ratio_ppm=0, lo_ppm=0, hi_ppm=0,
                                                           pairs=0))
    txs = [StakeTx.create(examples.key(2), target=TARGET.cid, op="unbond", amount=2**62,
                          nonce=2**62 + i) for i in range(64)]
    parents = sorted(hashlib.sha256(bytes([i])).digest() for i in range(MAX_PARENTS))
    parent_cids = [type(TARGET.cid).for_bytes("messagepack", p) for p in parents]
    big_commit = Commit.create(
        key, target=TARGET.cid, parents=parent_cids, tree=examples.tree().cid,
        claim=Claim(profile=label, ratio_ppm=10**8, lo_ppm=10**8, hi_ppm=10**8, pairs=100_000),
        time_ms=2**60, message="é" * (MAX_MESSAGE_BYTES // 2), stake_txs=txs)
    sizes = {
        "attestation": len(big_att.encode()),
        "commit": len(big_commit.encode()),
        "stake": max(len(tx.encode()) for tx in txs),
        "evidence": len(Evidence.create(examples.key(3), big_att, other).encode()),
        "challenge": len(Challenge.create(examples.key(3), big_att, anchor=TARGET.cid,
                                          bond=2**62, nonce=2**62).encode()),
        "ruling": len(Ruling.create(examples.key(3), target=TARGET.cid, challenge=TARGET.cid,
                                    gate_passed=True, toolchain=label).encode()),
    }
    for kind, size in sizes.items():
        assert size <= MAX_ITEM_BYTES[kind], (kind, size)


def test_decoding_rejects_junk_and_oversize_and_names_why():
    att = examples.attestation()
    items = decode_items([att.encode(), b"\xc1junk", b"\x00" * 5000, att.encode()[:-1]],
                         max_item_bytes=MAX_ITEM_BYTES["attestation"])
    assert items[0].ok and isinstance(items[0].obj, Attestation)
    assert items[1].check.action is Action.REJECT and "not a poi object" in items[1].check.reason
    assert "over the 2048-byte cap" in items[2].check.reason
    assert items[3].check.action is Action.REJECT


def test_a_blob_is_welcome_only_when_a_tree_in_the_bundle_names_it():
    blob = Blob(b"fn main() {}\n")
    tree = Tree({"src/main.rs": TreeEntry(blob.cid, 0o644)})
    with_tree = decode_items([tree.encode(), blob.data])
    assert isinstance(with_tree[1].obj, Blob) and with_tree[1].ok
    alone = decode_items([blob.data])
    assert alone[0].check.action is Action.REJECT


def test_placement_keeps_each_kind_on_its_topic_and_target():
    commit, att = examples.commit(), examples.attestation()
    tree = examples.tree()
    assert placement_problem(commit, follow=FOLLOW, topic_target=TARGET.cid,
                             topic_kind="commits") is None
    assert "on the commits topic" in placement_problem(
        att, follow=FOLLOW, topic_target=TARGET.cid, topic_kind="commits")
    other = examples.target(validators=2).cid
    assert "on the topic of" in placement_problem(commit, follow=FOLLOW | {other},
                                                  topic_target=other, topic_kind="commits")
    assert "does not follow" in placement_problem(commit, follow=set(), topic_target=None,
                                                  topic_kind=None)
    assert "do not travel on gossip" in placement_problem(
        TARGET, follow=FOLLOW, topic_target=TARGET.cid, topic_kind="commits")
    assert "not named" in placement_problem(tree, follow=FOLLOW, topic_target=TARGET.cid,
                                            topic_kind="commits", content=())
    assert placement_problem(tree, follow=FOLLOW, topic_target=TARGET.cid,
                             topic_kind="commits", content={tree.cid}) is None


def test_the_clock_allowance_bounds_future_dates():
    targets = {TARGET.cid: TARGET}
    key = examples.key(1)

    def att(time_ms: int, epoch: int) -> Attestation:
        return Attestation.create(key, target=TARGET.cid, seq=0, prev=None, epoch=epoch,
                                  time_ms=time_ms, head=TARGET.cid)

    now_epoch = TARGET.epoch_at(NOW)
    assert time_problem(att(NOW + MAX_FUTURE_MS, now_epoch), targets, NOW) is None
    assert "in the future" in time_problem(att(NOW + MAX_FUTURE_MS + 1, now_epoch), targets,
                                           NOW)
    assert "current epoch" in time_problem(att(NOW, now_epoch + 5), targets, NOW)
    old = examples.commit()
    assert time_problem(old, targets, NOW) is None
    future = dataclasses.replace(old, time_ms=NOW + 10 * MAX_FUTURE_MS, sig=None)
    assert "commit dated" in time_problem(future, targets, NOW)
    evidence = Evidence.create(key, att(NOW, now_epoch),
                               att(NOW + 3_600_000, TARGET.epoch_at(NOW + 3_600_000)))
    assert "in the future" in time_problem(evidence, targets, NOW)


def test_signatures_are_checked_in_worker_threads_and_bad_ones_named():
    good = [examples.attestation(verifier=1, seq=i, prev=TARGET.cid if i else None)
            for i in range(300)]
    sig = bytearray(good[7].sig)
    sig[5] ^= 0x40
    forged = dataclasses.replace(good[7], sig=bytes(sig))
    objects = [*good[:7], forged, *good[8:], examples.tree()]
    verifier = SignatureVerifier(threads=2, chunk=64)
    problems = trio.run(verifier.verify, objects)
    assert [i for i, p in enumerate(problems) if p] == [7]
    assert "bad signature" in problems[7]
    assert verifier.stats["verify_signatures_total"] == 300
    assert verifier.stats["verify_failures_total"] == 1


def test_a_bundle_is_rejected_by_any_invalid_object_and_ignored_when_nothing_is_new():
    ok = Item(0, b"", examples.attestation())
    dup = Item(1, b"", examples.attestation(), ignore("already stored"))
    bad = Item(2, b"", examples.attestation(), reject("bad signature"))
    assert bundle_check([ok, dup]).action is Action.ACCEPT
    assert bundle_check([dup]).action is Action.IGNORE
    verdict = bundle_check([ok, dup, bad])
    assert verdict.action is Action.REJECT and "object 2" in verdict.reason


def test_own_commits_travel_with_their_tree_and_the_blobs_that_fit():
    small, big = Blob(b"small\n"), Blob(b"x" * (MAX_GOSSIP_BYTES - 200))
    tree = Tree({"a.rs": TreeEntry(small.cid, 0o644), "b.rs": TreeEntry(big.cid, 0o644)})
    commit = Commit.create(examples.key(0), target=TARGET.cid, parents=[TARGET.cid],
                           tree=tree.cid, claim=examples.claim(), time_ms=NOW)
    votes = [examples.attestation(verifier=1, seq=i, prev=TARGET.cid if i else None)
             for i in range(5)]
    messages = gossip_messages([commit, tree, small, big, *votes])
    assert [name for name, _ in messages] == [topic(TARGET.cid, "commits"),
                                              topic(TARGET.cid, "attestations")]
    carried = decode_bundle(messages[0][1])
    assert carried[:2] == [commit.encode(), tree.encode()]
    assert small.data in carried and big.data not in carried
    assert len(decode_bundle(messages[1][1])) == 5


def test_verdict_fields_stay_within_the_attestation_cap_for_every_result():
    for result in ("improved", "not_improved", "gate_failed", "build_failed",
                   "scope_violation", "timeout"):
        att = examples.attestation(result=result)
        assert len(att.encode()) < MAX_ITEM_BYTES["attestation"]
        assert isinstance(att.verdict, Verdict)

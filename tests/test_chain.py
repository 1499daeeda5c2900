"""node/chain.py: a target's store objects drive fork choice and the ledger; a restart replays
the store to the same state; the canonical chain reports verified speed-ups."""

from __future__ import annotations

import hashlib

import pytest

from dag.store import Store
from node.chain import CommitStatus, TargetChain
from protocol import examples as ex
from protocol.constants import PPM
from protocol.objects import Attestation, Commit, Evidence, Verdict

T0 = ex.GENESIS_TIME_MS + 1


def make_commit(parent, author=0, message="step"):
    target = ex.target()
    return Commit.create(ex.key(author), target=target.cid, parents=[parent], tree=ex.tree().cid,
                         claim=ex.claim(), time_ms=T0, message=message)


def verdict(commit, result, ratio=900_000):
    measured = result in ("improved", "not_improved")
    return Verdict(commit=commit.cid, parent=commit.parents[0], result=result,
                   ratio_ppm=ratio if measured else 0, lo_ppm=ratio - 5000 if measured else 0,
                   hi_ppm=ratio + 5000 if measured else 0, pairs=15 if measured else 0,
                   gate_seed=hashlib.sha256(b"s").digest(), profile="avx2", toolchain="t")


class Verifier:
    def __init__(self, index):
        self.key = ex.key(index)
        self.seq = 0
        self.prev = None

    def attest(self, head, v=None):
        att = Attestation.create(self.key, target=ex.target().cid, seq=self.seq, prev=self.prev,
                                 epoch=0, time_ms=T0, head=head.cid if v is None else v.commit,
                                 verdict=v)
        self.seq += 1
        self.prev = att.cid
        return att


@pytest.fixture
def started(tmp_path):
    """The example target in a fresh store and its chain (not yet ticked to an epoch)."""
    target = ex.target()
    store = Store(tmp_path / "s.db")
    store.put(target)
    chain = TargetChain(store, target)
    yield target, store, chain
    store.close()


def put_all(store, chain, objects):
    for obj in objects:
        assert store.put(obj).status in ("stored", "exists"), obj
        if isinstance(obj, Commit):
            chain.on_commit(obj)
        elif isinstance(obj, Attestation):
            chain.on_attestation(obj)
        elif isinstance(obj, Evidence):
            chain.on_evidence(obj)
    chain.update()


def test_accept_finalize_reject_and_replay(started):
    target, store, chain = started
    events = []
    chain.listeners.append(lambda kind, data: events.append(kind))
    chain.tick(T0)

    good = make_commit(target.cid, message="good")
    bad = make_commit(target.cid, message="bad")
    verifiers = [Verifier(i) for i in range(4)]
    objects = [good, bad]
    for v in verifiers:
        objects.append(v.attest(good, verdict(good, "improved", 900_000 + v.seq)))
    for v in verifiers:
        objects.append(v.attest(bad, verdict(bad, "gate_failed")))
    for v in verifiers:
        objects.append(v.attest(good))  # head votes for the good commit
    put_all(store, chain, objects)

    assert chain.status(good.cid) == CommitStatus.FINAL
    assert chain.status(bad.cid) == CommitStatus.REJECTED
    assert chain.head == good.cid and chain.finalized == good.cid
    tally = chain.tally(good.cid)
    assert tally.improved == target.total_genesis_stake and tally.against == 0
    assert chain.tally(bad.cid).against == target.total_genesis_stake
    steps = chain.canonical_chain()
    assert [s.commit for s in steps] == [good.cid]
    assert 900_000 <= steps[0].ratio_ppm <= 900_001
    assert abs(chain.speedup() - PPM / steps[0].cumulative_ppm) < 1e-12
    assert {"commit", "attestation", "head", "final"} <= set(events)

    replayed = TargetChain.load(store, target, T0)
    assert replayed.head == chain.head and replayed.finalized == chain.finalized
    assert replayed.status(bad.cid) == CommitStatus.REJECTED
    assert replayed.canonical_chain() == steps


def test_pending_with_minority_and_equivocator_loses_weight(started):
    target, store, chain = started
    chain.tick(T0)
    c = make_commit(target.cid)
    liar = Verifier(0)  # the smallest stake (100 of 1000)
    first = liar.attest(c, verdict(c, "improved"))
    put_all(store, chain, [c, first])
    assert chain.status(c.cid) == CommitStatus.PENDING  # 100 < the 1/3 quorum
    # Same seq, another verdict: an equivocation.
    liar.seq, liar.prev = 0, None
    second = liar.attest(c, verdict(c, "gate_failed"))
    evidence = Evidence.create(ex.key(1), first, second)
    events = []
    chain.listeners.append(lambda kind, data: events.append((kind, data)))
    put_all(store, chain, [second, evidence])
    assert liar.key.public_key in chain.fork_choice.equivocators()
    assert chain.tally(c.cid).total == 0
    assert ("evidence", {"target": str(target.cid), "cid": str(evidence.cid),
                         "offender": liar.key.public_key.hex()}) in events



def test_a_long_chain_reports_a_finite_speedup_past_one_ppm(started):
    """0.95 per step takes the product below 1 ppm after 270 steps: the speed-up must stay
    the product's inverse, not a division by a ppm integer that reached zero."""
    target, store, chain = started
    chain.tick(T0)
    verifiers = [Verifier(i) for i in range(4)]
    parent, objects = target.cid, []
    for n in range(300):
        commit = make_commit(parent, message=f"step {n}")
        objects.append(commit)
        objects.extend(v.attest(commit, verdict(commit, "improved", 950_000)) for v in verifiers)
        parent = commit.cid
    put_all(store, chain, objects)
    steps = chain.canonical_chain()
    assert len(steps) == 300 and all(s.ratio_ppm == 950_000 for s in steps)
    assert steps[99].cumulative_ppm == round(PPM * 0.95 ** 100)
    assert steps[-1].cumulative_ppm == 1  # rounded, never below 1 ppm
    assert abs(chain.speedup() / 0.95 ** -300 - 1) < 1e-9


def test_view_version_moves_with_what_queries_show_not_with_every_head_vote(started):
    target, store, chain = started
    chain.tick(T0)
    verifiers = [Verifier(i) for i in range(4)]
    commit = make_commit(target.cid)
    version = chain.view_version
    put_all(store, chain, [commit])
    assert chain.view_version > version  # a new commit
    version = chain.view_version
    put_all(store, chain, [verifiers[0].attest(commit, verdict(commit, "improved"))])
    assert chain.view_version > version  # a verdict
    put_all(store, chain, [v.attest(commit, verdict(commit, "improved"))
                           for v in verifiers[1:]])
    put_all(store, chain, [v.attest(commit) for v in verifiers])  # votes make it head, final
    assert chain.head == commit.cid
    version = chain.view_version
    put_all(store, chain, [v.attest(commit) for v in verifiers])  # votes that move nothing
    assert chain.view_version == version


def test_a_verified_ratio_exists_only_once_the_commit_is_accepted(started):
    target, store, chain = started
    chain.tick(T0)
    liar, *honest = [Verifier(i) for i in range(4)]  # the liar has the smallest stake
    bad = make_commit(target.cid, message="gate-failing")
    put_all(store, chain, [bad, liar.attest(bad, verdict(bad, "improved", 800_000))])
    assert chain.status(bad.cid) == CommitStatus.PENDING
    assert chain.fork_choice.improvement_ratio(bad.cid) == 800_000
    assert chain.verified_ratio(bad.cid) is None  # one unconfirmed claim is not verified
    put_all(store, chain, [v.attest(bad, verdict(bad, "gate_failed")) for v in honest])
    assert chain.status(bad.cid) == CommitStatus.REJECTED
    assert chain.verified_ratio(bad.cid) is None  # nor is a claim the network overruled
    good = make_commit(target.cid, message="good")
    put_all(store, chain, [good, *(v.attest(good, verdict(good, "improved", 900_000))
                                   for v in honest)])
    assert chain.status(good.cid) in (CommitStatus.ACCEPTED, CommitStatus.FINAL)
    assert chain.verified_ratio(good.cid) == 900_000

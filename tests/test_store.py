"""The SQLite object store: integrity, pending objects, indices."""

from __future__ import annotations

import threading

import pytest

from dag.store import Store
from protocol import examples
from protocol.cid import cid_of_object_bytes
from protocol.errors import CIDError, ProtocolError
from protocol.objects import Blob

from .dag_factories import make_attestation, make_commit


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store.sqlite") as s:
        yield s


def test_put_checks_bytes_against_the_cid(store):
    target = examples.target()
    with pytest.raises(CIDError, match="do not hash"):
        store.put_bytes(cid_of_object_bytes(b"something else"), target.encode())
    with pytest.raises(ProtocolError):
        bad = b"\x81\xa4type\xa4tree"
        store.put_bytes(cid_of_object_bytes(bad), bad)
    assert store.count() == 0
    assert store.put_bytes(target.cid, target.encode()).status == "stored"
    assert store.get(target.cid) == target
    assert store.put(target).status == "duplicate"


def test_commit_waits_for_its_parents_and_is_released_in_order(store):
    target = examples.target()
    c1 = make_commit(target, [target.cid], 1)
    c2 = make_commit(target, [c1.cid], 2)
    c3 = make_commit(target, [c2.cid], 3)
    assert store.put(c3).status == "pending"
    assert store.put(c2).status == "pending"
    result = store.put(c1)
    assert result.status == "pending" and result.missing == (target.cid,)
    assert set(store.missing()) == {target.cid}
    assert not store.has(c1.cid) and store.is_pending(c1.cid)
    released = store.put(target).released
    assert released == [c1.cid, c2.cid, c3.cid]
    assert store.commits_of(target.cid) == [c1.cid, c2.cid, c3.cid]
    assert store.pending_count() == 0 and store.missing() == []
    assert store.check_integrity() == []


def test_merge_waits_for_every_parent_and_indices_record_edges(store):
    target = examples.target()
    store.put(target)
    a = make_commit(target, [target.cid], 1)
    b = make_commit(target, [target.cid], 2)
    merge = make_commit(target, [a.cid, b.cid], 3)
    store.put(a)
    assert store.put(merge).missing == (b.cid,)
    assert store.put(b).released == [merge.cid]
    assert store.parents(merge.cid) == list(merge.parents)
    assert store.children(target.cid) == sorted([a.cid, b.cid])
    assert store.commit_edges(target.cid)[-1] == (merge.cid, merge.parents)


def test_attestations_indexed_and_latest_vote_only_moves_forward(store):
    target = examples.target()
    c1 = make_commit(target, [target.cid], 1)
    c2 = make_commit(target, [c1.cid], 2)
    store.put_many([target, c1, c2])
    a0 = make_attestation(target, 1, 0, None, c1.cid, verdict_on=c1)
    a1 = make_attestation(target, 1, 1, a0.cid, c2.cid, verdict_on=c2)
    # seq 1 arrives first: it waits for its predecessor in the verifier's chain.
    assert store.put(a1).missing == (a0.cid,)
    assert store.put(a0).released == [a1.cid]
    vote = store.latest_votes(target.cid)[examples.key(1).public_key]
    assert vote == (1, a1.cid, c2.cid)
    # An older or equal sequence number never replaces the latest.
    fork = make_attestation(target, 1, 1, a0.cid, c1.cid)
    store.put(fork)
    assert store.latest_attestation(target.cid, examples.key(1).public_key) == a1.cid
    assert sorted(store.attestations_at(target.cid, examples.key(1).public_key, 1)) == sorted(
        [a1.cid, fork.cid])
    assert store.attestations_on(c1.cid) == [a0.cid]
    assert store.check_integrity() == []


def test_evidence_challenges_stake_txs_and_blobs_are_stored(store):
    target = examples.target()
    store.put(target)
    blob = Blob(b"fn main() {}\n")
    store.put(blob)
    assert store.blob_size(blob.cid) == len(blob.data)
    assert store.get(blob.cid) == blob
    ev = examples.evidence()
    ch = examples.challenge()
    tx = examples.stake_tx()
    ruling = examples.ruling()
    assert store.put(ruling).missing == (ch.cid,)  # a ruling waits for its challenge
    for obj in (ev, ch, tx):
        assert store.put(obj).status == "stored"
    assert store.rulings_on(ch.cid) == [ruling.cid]
    assert store.evidence_of(target.cid) == [ev.cid]
    assert store.challenges_of(target.cid) == [ch.cid]
    assert store.stake_txs_of(target.cid) == [tx.cid]


def test_data_survives_reopen_and_concurrent_readers(tmp_path):
    path = tmp_path / "s.sqlite"
    target = examples.target()
    commits = [make_commit(target, [target.cid], i) for i in range(50)]
    with Store(path) as s:
        s.put(target)
        errors = []

        def reader():
            try:
                for _ in range(200):
                    s.commits_of(target.cid)
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        s.put_many(commits)
        for t in threads:
            t.join()
        assert not errors
    with Store(path) as again:
        assert len(again.commits_of(target.cid)) == 50
        assert again.check_integrity() == []


def test_integrity_check_detects_a_tampered_index(tmp_path):
    path = tmp_path / "s.sqlite"
    target = examples.target()
    with Store(path) as s:
        s.put_many([target, make_commit(target, [target.cid], 1)])
        s._writer.execute("DELETE FROM edges")
        assert any("edges" in p for p in s.check_integrity())

"""The SQLite object store: integrity, pending objects, indices."""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- batches: put_many's one-transaction fast path must store exactly what put does ------------

def _objects_for_batches() -> list:
    """A target, a small branching DAG, two verifiers' attestation chains (with a fork at
    one sequence number) and some content: every kind of dependency the store tracks."""
    target = examples.target()
    commits = [make_commit(target, [target.cid], 1)]
    for n in range(2, 8):
        parents = [commits[-1].cid] if n % 3 else [commits[-1].cid, commits[-2].cid]
        commits.append(make_commit(target, parents, n))
    attestations = []
    for verifier in (1, 2):
        prev = None
        for seq, commit in enumerate(commits[:4]):
            att = make_attestation(target, verifier, seq, prev, commit.cid, verdict_on=commit)
            attestations.append(att)
            prev = att.cid
    attestations.append(make_attestation(target, 1, 2, attestations[1].cid, commits[0].cid))
    return [target, *commits, *attestations, Blob(b"content")]


def _table_rows(store: Store) -> dict[str, list]:
    """Every table's rows, minus arrival times (which differ between two runs)."""
    conn = store._writer
    out = {}
    for table in ("objects", "pending", "pending_deps", "targets", "commits", "edges",
                  "attestations", "latest_votes"):
        rows = conn.execute(f"SELECT * FROM {table}").fetchall()
        if table in ("objects", "pending"):
            rows = [row[:3] for row in rows]
        out[table] = sorted(map(repr, rows))
    out["arrival"] = [repr(c) for c in store.commits_of(examples.target().cid)]
    return out


@given(order=st.permutations(range(18)), cuts=st.sets(st.integers(1, 17), max_size=5),
       repeats=st.lists(st.integers(0, 17), max_size=3))
@settings(max_examples=40, deadline=None)
def test_put_many_in_any_batches_stores_exactly_what_put_one_by_one_does(
        tmp_path_factory, order, cuts, repeats):
    objects = _objects_for_batches()
    assert len(objects) == 18
    sequence = [objects[i] for i in order] + [objects[i] for i in repeats]
    bounds = [0, *sorted(cuts), len(sequence)]
    root = tmp_path_factory.mktemp("batches")
    with Store(root / "one.sqlite") as one, Store(root / "many.sqlite") as many:
        singles = [one.put(obj) for obj in sequence]
        batched = []
        for start, end in itertools.pairwise(bounds):
            batched.extend(many.put_many(sequence[start:end]))
        assert [(r.cid, r.status, r.missing, r.released) for r in batched] == \
            [(r.cid, r.status, r.missing, r.released) for r in singles]
        assert _table_rows(many) == _table_rows(one)
        assert many.check_integrity() == []


def test_arrival_pages_counts_and_has_many(store):
    target = examples.target()
    c1 = make_commit(target, [target.cid], 1)
    c2 = make_commit(target, [c1.cid], 2)
    orphan = make_commit(target, [make_commit(target, [target.cid], 9).cid], 3)
    store.put_many([target, c1, c2, orphan])
    assert store.count_of("commits", target.cid) == 2 and store.count_of("evidence",
                                                                         target.cid) == 0
    first = store.arrivals("commits", target.cid, 0, 1)
    assert [cid for _, cid in first] == [c1.cid]
    rest = store.arrivals("commits", target.cid, first[-1][0], 10)
    assert [cid for _, cid in rest] == [c2.cid]
    assert store.arrivals("commits", target.cid, rest[-1][0], 10) == []
    asked = [c1.cid, c2.cid, orphan.cid, make_commit(target, [c2.cid], 4).cid]
    assert store.has_many(asked) == {c1.cid, c2.cid}
    assert store.has_many(asked, pending=True) == {c1.cid, c2.cid, orphan.cid}


def test_evicting_pending_objects_by_age_and_count_keeps_the_dag_and_what_waits_on_them(store):
    target = examples.target()
    store.put(target)
    lost = make_commit(target, [target.cid], 1)  # never arrives
    waiting = [make_commit(target, [lost.cid], n) for n in range(2, 6)]
    for n, commit in enumerate(waiting):
        assert store.put(commit).status == "pending"
        # held since 1, 2, 3 and 4 seconds after the epoch
        store._writer.execute("UPDATE pending SET since_ms=? WHERE cid=?",
                              (1_000 * (n + 1), bytes(commit.cid)))
    stored = make_commit(target, [target.cid], 9)
    store.put(stored)
    assert store.evict_pending(older_than_ms=2_500, keep=10) == 2  # the two oldest
    assert store.pending_count() == 2 and store.missing() == [lost.cid]
    assert store.evict_pending(older_than_ms=0, keep=1) == 1  # beyond the newest one
    assert [c for c in waiting if store.is_pending(c.cid)] == [waiting[-1]]
    assert store.has(stored.cid) and store.check_integrity() == []
    # the survivor is still released when its dependency turns up
    assert store.put(lost).released == [waiting[-1].cid]
    assert store.pending_count() == 0 and store.missing() == []

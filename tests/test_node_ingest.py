"""Ingest and the sync protocol's server side, in process (node/ingest.py, node/sync.py)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from dag.store import Store
from node.bundle import encode_bundle
from node.chain import TargetChain
from node.ingest import ORDER_GRACE_S, Ingest, StoreWriteError
from node.p2p import RequestError
from node.sync import MAX_GET_CIDS, Sync, SyncRequestError, parse_request, read_objects
from node.topics import topic
from node.validation import Action, SignatureVerifier
from protocol.cid import CID
from protocol.objects import Verdict
from tests.node_support import Feed, key_for, make_test_genesis, now_ms


@dataclass
class FakeP2P:
    """What Sync needs from node.p2p.P2P, recording offences and serving canned replies."""

    reports: list[tuple[str, str]] = field(default_factory=list)
    replies: dict[str, Any] = field(default_factory=dict)

    def report(self, peer: str, reason: str) -> bool:
        self.reports.append((peer, reason))
        return False

    def connected_peers(self) -> list[str]:
        return list(self.replies)

    async def request(self, peer: str, protocol: str, request: dict, *, timeout: float) -> dict:
        return self.replies[peer](request)


@dataclass
class World:
    store: Store
    chain: TargetChain
    ingest: Ingest
    feed: Feed
    missing: list[tuple[set[CID], str | None]]

    @property
    def target(self) -> CID:
        return self.chain.cid

    async def gossip(self, kind: str, objects: list[Any], peer: str = "peer-1") -> Any:
        data = encode_bundle([o.encode() if hasattr(o, "encode") else o for o in objects])
        return await self.ingest.gossip(topic(self.target, kind), self.target, kind, peer,
                                        data)


@pytest.fixture
def world(tmp_path: Path) -> World:
    genesis = make_test_genesis(tmp_path)
    store = Store(tmp_path / "store.sqlite")
    store.put_many(genesis.objects())
    chain = TargetChain.load(store, genesis.target, now_ms())
    ingest = Ingest(store, {chain.cid: chain}, {chain.cid}, verifier=SignatureVerifier(2),
                    clock_ms=now_ms)
    missing: list[tuple[set[CID], str | None]] = []
    ingest.on_missing = lambda cids, peer: missing.append((cids, peer))
    yield World(store, chain, ingest, Feed(genesis), missing)
    store.close()


def run(fn, *args):
    return trio.run(fn, *args)


def test_a_gossiped_commit_is_stored_with_its_content_and_verdicts_move_the_head(world):
    commit, tree, blob = world.feed.commit()

    async def main() -> None:
        check = await world.gossip("commits", [commit, tree, blob])
        assert check.action is Action.ACCEPT, check
        assert world.chain.knows(commit.cid)
        assert world.store.has(tree.cid) and world.store.has(blob.cid)
        check = await world.gossip("attestations", world.feed.endorse(commit))
        assert check.action is Action.ACCEPT, check
        assert world.chain.head == commit.cid

    run(main)


def test_bundles_judged_out_of_order_wait_for_the_one_they_extend(world):
    commit, tree, blob = world.feed.commit()
    votes = world.feed.votes(world.target, 50)
    first, second = votes[:100], votes[100:]
    results: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            async def one(name: str, kind: str, objects: list[Any]) -> None:
                results[name] = await world.gossip(kind, objects)

            nursery.start_soon(one, "second", "attestations", second)
            await trio.sleep(0)
            nursery.start_soon(one, "commit", "commits", [commit, tree, blob])
            nursery.start_soon(one, "first", "attestations", first)

    run(main)
    assert {k: v.action for k, v in results.items()} == {
        "second": Action.ACCEPT, "first": Action.ACCEPT, "commit": Action.ACCEPT}
    assert world.store.pending_count() == 0
    # stored in dependency order, whichever bundle was judged first: the bundle extending
    # another waited for it to be in flight or queued, so nothing was held pending
    order = [cid for _, cid in world.store.arrivals("attestations", world.target, 0, 1000)]
    assert order.index(second[0].cid) > max(order.index(a.cid) for a in first)
    assert world.ingest.stats["ingest_pending_total"] == 0


def test_an_object_whose_parent_never_comes_is_held_not_forwarded_and_fetched(world):
    lost, _, _ = world.feed.commit()
    orphan, tree, blob = world.feed.commit(lost.cid)

    async def main() -> float:
        started = trio.current_time()
        check = await world.gossip("commits", [orphan, tree, blob], peer="peer-9")
        assert check.action is Action.IGNORE and "dependencies" in check.reason
        return trio.current_time() - started

    waited = run(main)
    assert ORDER_GRACE_S <= waited < ORDER_GRACE_S + 2
    assert world.store.is_pending(orphan.cid)
    assert world.missing == [({lost.cid}, "peer-9")]


def test_duplicates_and_unstaked_verifiers_are_ignored_on_gossip(world):
    commit, tree, blob = world.feed.commit()
    outsider = key_for("not-a-validator")

    async def main() -> None:
        assert (await world.gossip("commits", [commit, tree, blob])).action is Action.ACCEPT
        again = await world.gossip("commits", [commit])
        assert again.action is Action.IGNORE and "already stored" in again.reason
        vote = world.feed.attest(outsider, commit.cid)
        check = await world.gossip("attestations", [vote])
        assert check.action is Action.IGNORE and "without stake" in check.reason
        assert not world.store.has(vote.cid)
        # The same attestation submitted directly is valid and kept (it just has no weight).
        result, _ = await world.ingest.submit([vote.encode()])
        assert result.accepted == [str(vote.cid)]

    run(main)


def test_a_verdict_measured_against_a_non_parent_is_rejected(world):
    commit, tree, blob = world.feed.commit()
    other, tree2, blob2 = world.feed.commit()
    key = world.feed.validators[0]

    async def main() -> None:
        await world.gossip("commits", [commit, tree, blob, other, tree2, blob2])
        good = world.feed.attest(key, commit.cid, verdict_on=commit)
        wrong = Verdict(**{**vars(good.verdict), "parent": other.cid})
        bad = type(good).create(key, target=good.target, seq=good.seq + 1, prev=good.cid,
                                epoch=good.epoch, time_ms=good.time_ms, head=good.head,
                                verdict=wrong)
        check = await world.gossip("attestations", [good, bad])
        assert check.action is Action.REJECT and "not a parent" in check.reason
        assert not world.store.has(good.cid)  # nothing of a rejected bundle is kept

    run(main)


def test_submitted_objects_are_judged_one_by_one(world):
    commit, tree, blob = world.feed.commit()

    async def main() -> None:
        result, usable = await world.ingest.submit(
            [commit.encode(), b"\xc1not an object", tree.encode(), blob.data])
        assert result.accepted == [str(commit.cid), str(tree.cid), str(blob.cid)]
        assert [i for i, _ in result.rejected] == [1]
        assert len(usable) == 3
        again, _ = await world.ingest.submit([commit.encode()])
        assert again.ignored == [(0, "already stored")]

    run(main)


def test_sync_serves_objects_lists_and_heads_and_reports_malformed_requests(world):
    commit, tree, blob = world.feed.commit()
    p2p = FakeP2P()
    sync = Sync(p2p, world.store, world.ingest, {world.target: world.chain}, {world.target})

    async def main() -> None:
        await world.gossip("commits", [commit, tree, blob])
        await world.gossip("attestations", world.feed.endorse(commit))
        got = await sync.handle("peer", {"op": "get", "cids": [bytes(commit.cid),
                                                               bytes(world.target)[:-1] + b"!"]})
        assert got["objects"] == [[bytes(commit.cid), commit.encode()]]
        assert len(got["missing"]) == 1 and not got["truncated"]
        page = await sync.handle("peer", {"op": "list", "target": bytes(world.target),
                                          "kind": "attestations", "since": 0, "limit": 3})
        assert len(page["cids"]) == 3 and page["more"]
        rest = await sync.handle("peer", {"op": "list", "target": bytes(world.target),
                                          "kind": "attestations", "since": page["next"],
                                          "limit": 3})
        assert len(rest["cids"]) == 1 and not rest["more"]
        heads = await sync.handle("peer", {"op": "heads", "target": bytes(world.target)})
        assert heads["head"] == bytes(commit.cid) and heads["counts"]["commits"] == 1
        for bad in ({"op": "get", "cids": []}, {"op": "list"}, {"op": "drop"},
                    {"op": "heads", "target": b"zz"}):
            with pytest.raises(SyncRequestError):
                await sync.handle("mallory", bad)

    run(main)
    assert [peer for peer, _ in p2p.reports] == ["mallory"] * 4


def test_responses_stop_at_the_byte_budget():
    class Fake:
        def __init__(self) -> None:
            self.data = {CID.for_bytes("raw", bytes([i]) * 1000): bytes([i]) * 1000
                         for i in range(10)}

        def get_bytes(self, cid: CID) -> bytes | None:
            return self.data.get(cid)

    fake = Fake()
    reply = read_objects(fake, list(fake.data), max_bytes=3500)
    assert len(reply["objects"]) == 3 and reply["truncated"]
    with pytest.raises(SyncRequestError):
        parse_request({"op": "get", "cids": [bytes(next(iter(fake.data)))] * (MAX_GET_CIDS + 1)})


def test_a_peer_that_sends_bytes_not_matching_the_cid_is_reported_and_nothing_stored(world):
    commit, _, _ = world.feed.commit()
    p2p = FakeP2P(replies={
        "liar": lambda req: {"objects": [[req["cids"][0], b"forged"]], "missing": [],
                             "truncated": False}})
    sync = Sync(p2p, world.store, world.ingest, {world.target: world.chain}, {world.target})

    async def main() -> None:
        with pytest.raises(RequestError, match="do not hash"):
            await sync.get("liar", [commit.cid])

    run(main)
    assert p2p.reports and p2p.reports[0][0] == "liar"
    assert not world.store.has(commit.cid)


def test_fetch_pulls_a_missing_chain_of_parents_from_a_peer(world, tmp_path):
    feed = world.feed
    chain: list[Any] = []
    parent = None
    for _ in range(5):
        commit, _, _ = feed.commit(parent)
        chain.append(commit)
        parent = commit.cid
    by_cid = {bytes(c.cid): c.encode() for c in chain}
    p2p = FakeP2P(replies={"honest": lambda req: {
        "objects": [[c, by_cid[c]] for c in req["cids"] if c in by_cid],
        "missing": [c for c in req["cids"] if c not in by_cid], "truncated": False}})
    sync = Sync(p2p, world.store, world.ingest, {world.target: world.chain}, {world.target})

    run(lambda: sync.fetch([chain[-1].cid], timeout=10))
    assert all(world.chain.knows(c.cid) for c in chain)
    assert not p2p.reports


def test_admissions_queued_behind_a_transaction_are_committed_together(world):
    votes = world.feed.votes(world.target, 30)  # one chain per validator: order matters
    parts = [votes[i:i + 20] for i in range(0, len(votes), 20)]
    results: dict[int, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i, part in enumerate(parts):
                async def one(i: int = i, part: list = part) -> None:
                    results[i] = await world.ingest.admit(part)
                nursery.start_soon(one)

    run(main)
    # The first admission (trio starts the tasks in no set order) writes alone; every one
    # queued meanwhile rides the next transaction, which releases what the first held.
    assert world.ingest.stats["ingest_transactions_total"] == 2
    stored = [o.cid for i in results for o in results[i].stored]
    assert sorted(stored) == sorted(v.cid for v in votes)  # each once, none lost
    assert world.store.pending_count() == 0
    last = {v.verifier: v for v in votes}
    assert world.store.latest_votes(world.target) == {
        key: (att.seq, att.cid, att.head) for key, att in last.items()}


def test_a_failed_store_transaction_fails_every_admission_in_it_and_the_next_one_works(world):
    votes = world.feed.votes(world.target, 2)
    real_put_many = world.store.put_many
    calls = []

    def failing_put_many(objects):
        calls.append(len(objects))
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real_put_many(objects)

    world.store.put_many = failing_put_many

    async def main() -> None:
        with pytest.raises(StoreWriteError, match="disk is full"):
            await world.ingest.admit(votes[:4])
        admitted = await world.ingest.admit(votes)
        assert [o.cid for o in admitted.stored] == [o.cid for o in votes]

    run(main)
    assert calls == [4, len(votes)]

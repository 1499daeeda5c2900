"""poi node processes on 127.0.0.1: gossip, bursts, late joiners, restarts, hostile peers.

One module-scoped network (A; B and C bootstrapping from A) runs the whole story in order; every
process is stopped by PID when the module ends (NodeCluster), and every wait has a deadline.
The test process joins as a libp2p peer (tests/node_support.Client) connected to A only, so
whatever B and C receive, A's gossip or sync carried.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from dag.store import Store
from node.bundle import encode_bundle
from node.p2p import PeerUnreachable, RemoteError, RequestError
from node.sync import PROTOCOL as SYNC
from node.topics import topic
from protocol.cid import CID
from protocol.objects import Attestation
from tests.node_support import (
    Feed,
    NodeCluster,
    NodeProcess,
    client,
    make_test_genesis,
    now_ms,
    wait_all,
)

pytestmark = pytest.mark.slow

BURST = 600


@dataclass
class Net:
    cluster: NodeCluster
    feed: Feed
    a: NodeProcess
    b: NodeProcess
    c: NodeProcess

    @property
    def target(self) -> CID:
        return self.feed.target.cid

    @property
    def nodes(self) -> list[NodeProcess]:
        return [self.a, self.b, self.c]

    def publish(self, batches: list[tuple[str, list[Any]]], until: Any,
                timeout: float = 30) -> None:
        """Publish each (kind, objects) bundle from a client connected to A only, and stay
        connected until ``until()`` holds (so nothing is cut off in flight)."""
        others = tuple(n.peer_id for n in self.cluster.nodes.values() if n is not self.a)

        async def main() -> None:
            async with client(fresh_name(), self.a.addr, refuse=others) as peer:
                for kind, _ in batches:
                    await peer.wait_topic(topic(self.target, kind), self.a.peer_id)
                for kind, objects in batches:
                    await peer.publish(self.target, kind, objects)
                await wait_for(until, timeout)

        trio.run(main)


_names = itertools.count()


def fresh_name() -> str:
    """A new client identity per connection: py-libp2p numbers a publisher's messages from
    its start time in seconds, so one identity reconnecting within seconds would reuse
    sequence numbers, and gossipsub drops such messages as equivocation."""
    return f"client-{next(_names)}"


async def wait_for(condition: Any, timeout: float) -> None:
    with trio.fail_after(timeout):
        while True:
            outcome = await trio.to_thread.run_sync(_try, condition)
            if outcome is True:
                return
            await trio.sleep(0.1)


def _try(condition: Any) -> bool:
    try:
        condition()
    except (TimeoutError, AssertionError):
        return False
    return True


def head(node: NodeProcess, target: CID) -> str | None:
    return node.chain(target).get("head")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("nodes")
    genesis = make_test_genesis(root)
    with NodeCluster(root, genesis) as cluster:
        a = cluster.add("A")
        bootstrap = (a.addr,)
        b = cluster.add("B", bootstrap=bootstrap)
        c = cluster.add("C", bootstrap=bootstrap)
        for node in (b, c):
            node.wait_ready()
        # Every node meshed with the others on the commits and attestations topics.
        wait_all([a, b, c], lambda d: len(d.get("peers", [])) >= 2 and all(
            n >= 1 for k, n in d.get("mesh", {}).items()
            if k.endswith(("/commits", "/attestations"))), 30, "a connected gossip mesh")
        yield Net(cluster, Feed(genesis), a, b, c)


def test_a_commit_and_its_verdicts_reach_every_node_by_gossip_and_move_every_head(net):
    commit, tree, blob = net.feed.commit()
    net.publish([("commits", [commit, tree, blob]),
                 ("attestations", net.feed.endorse(commit))],
                until=lambda: wait_all(net.nodes, lambda d: d["chains"][str(net.target)]["head"]
                                       == str(commit.cid), 0.1, "the endorsed commit as head"))
    for node in net.nodes:
        assert node.has_object(tree.cid) and node.has_object(blob.cid), node.name
        stats = node.stats()
        assert stats["ingest_gossip_objects_total"] >= 1, (node.name, stats)
        assert stats.get("ingest_gossip_reject_total", 0) == 0, (node.name, stats)


def test_a_burst_of_bundled_attestations_is_ingested_by_every_node_without_drops(net):
    commit = CID.parse(_head_commit(net))
    votes = net.feed.votes(commit, BURST // len(net.feed.validators))
    before = {n.name: n.chain(net.target)["attestations"] for n in net.nodes}
    bundles = [("attestations", votes[i:i + 100]) for i in range(0, len(votes), 100)]
    net.publish(bundles, until=lambda: wait_all(
        net.nodes, lambda d: d["chains"][str(net.target)]["attestations"]
        >= before[d["name"]] + len(votes), 0.1, f"{len(votes)} more attestations"))
    for node in net.nodes:
        stats = node.stats()
        assert node.chain(net.target)["attestations"] == before[node.name] + len(votes)
        assert stats.get("ingest_gossip_reject_total", 0) == 0, (node.name, stats)
        assert stats["gossip_rpc_drops_messages"] == 0, (node.name, stats)
    # B and C heard the burst from A's gossip (the client talks to A only), not from sync.
    for node in (net.b, net.c):
        assert node.stats()["ingest_gossip_objects_total"] >= len(votes), node.name


def test_a_late_joiner_catches_up_by_sync_alone(net):
    # D knows only the target's CID: the target itself, its commits and attestations all come
    # from B by sync before D subscribes to gossip.
    d = net.cluster.add("D", bootstrap=(net.b.addr,), with_genesis=False)
    expected = net.a.chain(net.target)
    d.wait(lambda s: s["chains"].get(str(net.target), {}).get("head") == expected["head"]
           and s["chains"][str(net.target)]["attestations"] == expected["attestations"]
           and s["synced"], 30, "caught up with the network")
    # Sync counts only objects it stored (never one already there), so the target and every
    # commit and attestation came by sync. (Gossip's IHAVE may still replay the last seconds'
    # messages once D subscribes: a commit's tree and blob, which sync leaves to the roles.)
    stats = d.stats()
    assert stats["ingest_sync_objects_total"] >= 1 + expected["commits"] \
        + expected["attestations"], stats


def test_a_stopped_node_restarts_from_its_store_and_converges(net):
    c = net.c
    known = c.chain(net.target)
    assert c.terminate(timeout=10) == 0, "SIGTERM must stop the node cleanly"
    assert c.status()["phase"] == "stopped"
    problems = Store(c.store_path).check_integrity()
    assert problems == []

    # The network goes on without C: a second commit on top of the first.
    parent = CID.parse(_head_commit(net))
    commit, tree, blob = net.feed.commit(parent)
    net.publish([("commits", [commit, tree, blob]),
                 ("attestations", net.feed.endorse(commit))],
                until=lambda: wait_all([net.a, net.b], lambda d: d["chains"][str(net.target)][
                    "head"] == str(commit.cid), 0.1, "the second commit as head"))

    c.start()
    first = c.wait(lambda s: "chains" in s and str(net.target) in s["chains"], 30, "loaded")
    assert first["chains"][str(net.target)]["commits"] >= known["commits"]
    c.wait(lambda s: s["chains"][str(net.target)]["head"] == str(commit.cid), 30,
           "the second commit as head after the restart")
    # Only what it missed came by sync: everything else was in its SQLite store.
    fetched = c.stats()["ingest_sync_objects_total"]
    assert 0 < fetched < known["commits"] + known["attestations"], fetched


def test_a_node_killed_mid_burst_loses_nothing_and_converges(net):
    d = net.cluster.nodes["D"]
    commit = CID.parse(_head_commit(net))
    votes = net.feed.votes(commit, 60)
    before = net.a.chain(net.target)["attestations"]
    acknowledged = []

    async def burst() -> None:
        others = tuple(n.peer_id for n in net.cluster.nodes.values() if n is not net.a)
        async with client(fresh_name(), net.a.addr, refuse=others) as peer:
            await peer.wait_topic(topic(net.target, "attestations"), net.a.peer_id)
            for i in range(0, len(votes), 20):
                await peer.publish(net.target, "attestations", votes[i:i + 20])
                if i == 100:
                    acknowledged.append(d.chain(net.target)["attestations"])
                    d.kill()  # SIGKILL while the burst is arriving
            await wait_for(lambda: net.a.wait(
                lambda s: s["chains"][str(net.target)]["attestations"] == total, 0.1, "burst"),
                20)

    total = before + len(votes)
    trio.run(burst)
    assert not d.alive()
    assert Store(d.store_path).check_integrity() == []
    d.start()
    first = d.wait(lambda s: str(net.target) in s.get("chains", {}), 30, "loaded")
    assert first["chains"][str(net.target)]["attestations"] >= acknowledged[0]
    wait_all([d, net.b, net.c], lambda s: s["chains"][str(net.target)]["attestations"] == total,
             30, "every attestation everywhere")


def test_hostile_gossip_and_sync_frames_are_refused_and_the_peer_banned(net):
    a = net.a
    feed = net.feed
    head_cid = CID.parse(_head_commit(net))
    tips = dict(feed.tips)  # the hostile objects below must not advance the honest chains
    signer = feed.validators[0]
    good = feed.attest(signer, head_cid)  # never published: it must stay out
    sig = bytearray(good.sig)
    sig[0] ^= 1
    forged = Attestation(**{**{f: getattr(good, f) for f in (
        "target", "verifier", "seq", "prev", "epoch", "time_ms", "head", "verdict")},
        "sig": bytes(sig)})
    future = feed.attest(feed.validators[1], head_cid, time_ms=now_ms() + 3_600_000)
    commit, _, _ = feed.commit(head_cid)
    replay = net.feed.endorse(commit)[0]  # signed, valid, but sent on the wrong topic
    hostile = {
        "malformed": b"\x93\x01\x02",  # not a bundle of byte strings
        "not an object": encode_bundle([b"\xc1junk"]),
        "oversize": encode_bundle([b"\x00" * 100_000]),
        "bad signature": encode_bundle([forged.encode()]),
        "future-dated": encode_bundle([future.encode()]),
        "wrong topic": encode_bundle([replay.encode()]),
    }
    bad_cids = [forged.cid, future.cid, replay.cid]
    feed.tips = tips

    async def lying_sync(peer: str, request: dict) -> dict:
        if request.get("op") == "heads":
            return {"head": bytes(head_cid), "finalized": bytes(net.target), "epoch": 0,
                    "counts": {"commits": 1}}
        if request.get("op") == "list":
            return {"cids": [bytes(CID.parse(_head_commit(net)))[:-1] + b"\x00"], "next": 1,
                    "more": False}
        return {"objects": [[request["cids"][0], b"forged bytes"]], "missing": [],
                "truncated": False}

    async def main() -> None:
        others = tuple(n.peer_id for n in net.cluster.nodes.values() if n is not a)
        async with client("hostile", a.addr, refuse=others,
                          handlers={SYNC: lying_sync}) as peer:
            for kind in ("attestations", "commits"):
                await peer.wait_topic(topic(net.target, kind), a.peer_id)
            for what, data in hostile.items():
                kind = "commits" if what == "wrong topic" else "attestations"
                await peer.publish_raw(net.target, kind, data)
            # A raw garbage frame on a sync stream, then malformed sync requests: each is
            # answered with an error and counted (the ban may land before the last ones).
            offences = [lambda: _raw_frame(peer.p2p, a.peer_id, b"\x05\xc1\xc1\xc1\xc1\xc1")]
            for request in ({"op": "get", "cids": "all"}, {"op": "mine"},
                            {"op": "get", "cids": [b"x"] * 2000},
                            {"op": "list", "target": b"x", "kind": "commits", "since": 0,
                             "limit": 5}):
                offences.append(lambda r=request: peer.p2p.request(a.peer_id, SYNC, r,
                                                                   timeout=10))
            for offence in offences:
                with pytest.raises(Exception):  # noqa: B017 - an error reply, or banned
                    await offence()
            with trio.fail_after(20):  # ten offences within a minute: banned, disconnected
                while a.peer_id in peer.p2p.connected_peers():
                    await trio.sleep(0.1)
            with pytest.raises((PeerUnreachable, RemoteError, RequestError)):
                await peer.p2p.request(a.peer_id, SYNC, {"op": "heads",
                                                          "target": bytes(net.target)},
                                       timeout=5)

    trio.run(main)
    status = a.wait(lambda s: s["stats"].get("peers_bans", 0) >= 1, 10, "a ban")
    assert a.alive() and status["phase"] == "running"
    stats = status["stats"]
    assert stats["ingest_gossip_reject_total"] >= 5, stats
    assert stats["sync_bad_requests_total"] >= 1, stats
    log = a.log_text()
    for reason in ("bundle is not", "not a poi object", "over the", "bad signature",
                   "in the future", "on the commits topic", "bad request frame",
                   "do not hash", "banning peer"):
        assert reason in log, f"A's log does not say {reason!r}"
    for node in net.nodes:
        for cid in bad_cids:
            assert not node.has_object(cid), (node.name, cid)
    # A still serves its honest peers: a new commit still propagates.
    parent = CID.parse(_head_commit(net))
    fresh, tree2, blob2 = feed.commit(parent)
    net.publish([("commits", [fresh, tree2, blob2]), ("attestations", feed.endorse(fresh))],
                until=lambda: wait_all(
                    net.nodes, lambda d: d["chains"][str(net.target)]["head"] == str(fresh.cid),
                    0.1, "a fresh commit after the attack"))


def _head_commit(net: Net) -> str:
    return net.a.chain(net.target)["head"]


async def _raw_frame(p2p: Any, peer_id: str, frame: bytes) -> None:
    """Write raw bytes as a request on a sync stream and read the answer."""
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    from node.p2p._frames import read_frame

    stream = await p2p._host.new_stream(ID.from_base58(peer_id), [TProtocol(SYNC)])
    try:
        await stream.write(frame)
        with trio.fail_after(5):
            reply = await read_frame(stream)
    except Exception as exc:
        raise RequestError(f"stream failed: {exc!r}") from exc
    finally:
        with trio.move_on_after(1):
            await stream.reset()
    raise RequestError(f"error reply: {reply!r}")


"""The verifier role (node/roles/verifier.py) against an in-process stand-in for the node.

Every node of a test shares one real Store and one real TargetChain (instant gossip: what one
node publishes is stored, applied and handed to every role at once); verifiers evaluate with the
real sandboxed Pipeline on the quick example target. Scenarios: honest verdicts on a good, a
hostile and a broken commit with head votes, finality and a restart that redoes nothing;
evidence against an equivocating verifier; a lying verifier challenged and slashed through
committee rulings; head votes that are rate-limited but always follow the last change.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from contracts import MIN_CHALLENGE_BOND, ChallengeStatus
from contracts.ledger import REASON_FALSE_GATE_CLAIM
from dag.manifest import load_manifest, make_genesis
from dag.store import Store
from dag.workspace import blob_reader
from node.chain import CommitStatus, TargetChain
from node.roles import VerifierRole
from protocol import examples
from protocol.cid import CID
from protocol.keys import SigningKey
from protocol.objects import (
    Attestation,
    Blob,
    Challenge,
    Claim,
    Commit,
    Evidence,
    Ruling,
    Target,
    Tree,
    Validator,
    Verdict,
)
from verifier.attest import AttestationSigner, SlashingProtection
from verifier.candidates import Workspace, read_patch, workspace_from_tree, workspace_with_patch
from verifier.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
PLONKY3 = ROOT / "examples" / "plonky3"
GOOD_STACK = ("02-fused-inverse-scaling", "03-bitrev-free-lde",
              "04-blocked-passes-tables-fused-spread")
"""Good patches applied together in one commit: about 30% faster than the baseline on the quick
target, so a handful of pairs decides `improved` every time."""
HOSTILE = "02-avx2-wrong-blend-mask"
"""Fails the gate whatever the seed (half the AVX2 lanes are garbage)."""
PAIRS = 9


# --- fixtures ----------------------------------------------------------------------------------

@dataclass
class Plonky3:
    target: Target
    base_tree: Tree
    blobs: dict[CID, Blob]
    good: Workspace
    hostile: Workspace
    work_dir: Path


@pytest.fixture(scope="session")
def plonky3(tmp_path_factory) -> Plonky3:
    """The quick target's base and two candidate workspaces; one build cache for every test."""
    manifest = load_manifest(PLONKY3 / "targets" / "avx2-quick.toml")
    genesis = make_genesis(manifest, [(examples.key(1).public_key, 1)], genesis_time_ms=0)
    work = tmp_path_factory.mktemp("verifier-role")
    base = workspace_from_tree(genesis.target, genesis.base_tree, None,
                               blob_reader(genesis.blobs), label="baseline")
    good = base
    for name in GOOD_STACK:
        good = workspace_with_patch(genesis.target, genesis.base_tree, good,
                                    read_patch(PLONKY3 / "patches" / "good" / f"{name}.patch"),
                                    scratch=work)
    hostile = workspace_with_patch(genesis.target, genesis.base_tree, base,
                                   read_patch(PLONKY3 / "patches" / "hostile" / f"{HOSTILE}.patch"),
                                   scratch=work)
    return Plonky3(genesis.target, genesis.base_tree, dict(genesis.blobs), good, hostile,
                   work / "work")


class Network:
    """Instant gossip: one store and one chain that every node of the test shares."""

    def __init__(self, path: Path, plonky3: Plonky3, target: Target) -> None:
        self.plonky3 = plonky3
        self.target = target
        self.store = Store(path)
        self.store.put_many([target, plonky3.base_tree, *plonky3.blobs.values()])
        self.chain = TargetChain(self.store, target)
        self.roles: list[tuple[VerifierRole, bool]] = []
        self.heads: list[CID] = []
        self.log: list[tuple[float, bytes, object]] = []
        """(trio time, publisher key, object) for everything nodes published."""

    def add(self, role: VerifierRole, *, commits: bool) -> VerifierRole:
        self.roles.append((role, commits))
        return role

    async def publish(self, objects: list) -> None:
        self.chain.tick(int(time.time() * 1000))
        for obj in objects:
            result = self.store.put(obj)
            stored = [result.cid] if result.status == "stored" else []
            for cid in stored + result.released:
                self._apply(self.store.get(cid))
        head = self.chain.head
        self.chain.update()
        if self.chain.head != head:
            self.heads.append(self.chain.head)
            for role, _ in self.roles:
                role.on_head_change()

    def _apply(self, obj: object) -> None:
        if isinstance(obj, Commit):
            self.chain.on_commit(obj)
            for role, commits in self.roles:
                if commits:
                    role.on_commit(obj)
        elif isinstance(obj, Attestation):
            self.chain.on_attestation(obj)
            for role, _ in self.roles:
                role.on_attestation(obj)
        elif isinstance(obj, Evidence):
            self.chain.on_evidence(obj)
        elif isinstance(obj, Challenge):
            self.chain.on_challenge(obj)
            for role, _ in self.roles:
                role.on_challenge(obj)
        elif isinstance(obj, Ruling):
            self.chain.on_ruling(obj)

    def published_by(self, key: SigningKey, kind: type) -> list:
        return [obj for _, who, obj in self.log if who == key.public_key and isinstance(obj, kind)]

    def pipeline(self) -> Pipeline:
        return Pipeline(self.target, self.plonky3.base_tree, self.plonky3.work_dir,
                        bench_lock=self.plonky3.work_dir.parent / "bench.lock")

    def verifier(self, key: SigningKey, tmp: Path, *, mode: str = "honest", commits: bool = True,
                 **kwargs) -> VerifierRole:
        protection = SlashingProtection(tmp / f"protection-{key.peer_id}.sqlite", key.public_key)
        node = FakeNode(self, key)
        role = VerifierRole(node, self.chain, self.pipeline(), AttestationSigner(key, protection),
                            mode=mode, pairs=PAIRS, **kwargs)
        return self.add(role, commits=commits)


class FakeNode:
    """What VerifierRole uses of node/runtime.py's Node."""

    def __init__(self, network: Network, key: SigningKey) -> None:
        self.network = network
        self.store = network.store
        self.key = key
        self.peer_id = key.peer_id
        self.chains = {network.target.cid: network.chain}
        self.fetched: list[CID] = []

    async def publish_own(self, objects: list) -> None:
        for obj in objects:
            self.network.log.append((trio.current_time(), self.key.public_key, obj))
        await self.network.publish(objects)

    async def fetch(self, cids: list[CID]) -> None:
        self.fetched.extend(cids)
        missing = [cid for cid in cids if not self.store.has(cid)]
        if missing:
            raise LookupError(f"no peer has {missing[0]}")


def make_target(plonky3: Plonky3, stakes: list[tuple[SigningKey, int]], *,
                epoch_seconds: int = 60) -> Target:
    validators = tuple(sorted((Validator(k.public_key, s) for k, s in stakes),
                              key=lambda v: v.key))
    return dataclasses.replace(plonky3.target, validators=validators,
                               genesis_time_ms=int(time.time() * 1000) - 1000,
                               epoch_seconds=epoch_seconds)


def commit_of(target: Target, workspace: Workspace | None, *, parent: CID | None = None,
              tree: CID | None = None, time_ms: int | None = None, message: str = ""
              ) -> tuple[Commit, list]:
    """A commit of ``workspace`` (or naming ``tree``) and the objects a proposer publishes."""
    objects: list = []
    if workspace is not None:
        tree = workspace.commit_tree.cid
        objects = [workspace.commit_tree, *(workspace.blobs[e.blob] for e in
                                            workspace.commit_tree.entries.values())]
    commit = Commit.create(
        examples.key(99), target=target.cid, parents=[parent or target.cid], tree=tree,
        claim=Claim(target.profile, 800_000, 780_000, 820_000, 9),
        time_ms=time_ms or int(time.time() * 1000), message=message)
    return commit, [*objects, commit]


def run(roles: list[VerifierRole], scenario: Callable[[], Awaitable[None]],
        timeout: float) -> None:
    async def main() -> None:
        with trio.fail_after(timeout):
            async with trio.open_nursery() as nursery:
                for role in roles:
                    await nursery.start(role.run)
                await scenario()
                nursery.cancel_scope.cancel()

    trio.run(main)


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


def verdicts_of(network: Network, key: SigningKey) -> dict[CID, Verdict]:
    return {a.verdict.commit: a.verdict for a in network.published_by(key, Attestation)
            if a.verdict is not None}


def votes_of(network: Network, key: SigningKey) -> list[tuple[float, Attestation]]:
    return [(t, obj) for t, who, obj in network.log if who == key.public_key
            and isinstance(obj, Attestation) and obj.verdict is None]


# --- honest evaluation, head votes, restart ---------------------------------------------------

def test_honest_verifier_attests_each_commit_votes_the_new_head_and_never_redoes_work(
        plonky3, tmp_path):
    v = examples.key(11)
    target = make_target(plonky3, [(v, 100)])
    net = Network(tmp_path / "store.sqlite", plonky3, target)
    role = net.verifier(v, tmp_path, head_vote_interval_s=0.5)
    good, good_objects = commit_of(target, plonky3.good, message="good")
    bad, bad_objects = commit_of(target, plonky3.hostile, message="hostile")
    # A commit whose tree CID names an object that is not a tree (here: the target itself).
    broken, broken_objects = commit_of(target, None, tree=target.cid, message="broken")

    async def scenario() -> None:
        await net.publish(good_objects + bad_objects + broken_objects)
        assert role.queue_length() == 3
        await wait_until(lambda: len(verdicts_of(net, v)) == 3, "three verdicts", 90)
        await wait_until(lambda: net.chain.finalized == good.cid, "the good commit final")
        assert role.current is None and role.queue_length() == 0

    run([role], scenario, 120)

    verdicts = verdicts_of(net, v)
    assert {c: verdicts[c].result for c in verdicts} == {
        good.cid: "improved", bad.cid: "gate_failed", broken.cid: "scope_violation"}
    measured = verdicts[good.cid]
    assert measured.lo_ppm <= measured.ratio_ppm <= measured.hi_ppm < 1_000_000
    assert measured.pairs == PAIRS and measured.parent == target.cid
    assert {v.profile for v in verdicts.values()} == {target.profile}
    assert len({v.gate_seed for v in verdicts.values()}) == 3  # a fresh seed each time

    # One chain of attestations: seq 0, 1, 2…, each linking the previous, epochs by the clock.
    chain = net.published_by(v, Attestation)
    assert [a.seq for a in chain] == list(range(len(chain)))
    assert all(b.prev == a.cid for a, b in itertools.pairwise(chain))
    assert all(a.epoch == target.epoch_at(a.time_ms) for a in chain)
    # After the good verdict moved the head, a vote-only attestation followed it: final.
    assert any(a.head == good.cid for _, a in votes_of(net, v))
    assert net.chain.status(good.cid) is CommitStatus.FINAL
    assert net.chain.status(bad.cid) is CommitStatus.REJECTED
    assert net.chain.status(broken.cid) is CommitStatus.REJECTED

    # Restart on the same store and record: nothing is queued, nothing signed again.
    signed = len(net.log)
    net.roles.clear()
    again = net.verifier(v, tmp_path)

    async def restarted() -> None:
        await trio.sleep(1.5)
        assert again.queue_length() == 0 and again.current is None

    run([again], restarted, 30)
    assert len(net.log) == signed


# --- equivocation -----------------------------------------------------------------------------

def test_equivocating_verifier_is_reported_once_with_evidence(plonky3, tmp_path):
    honest, liar, peer = examples.key(21), examples.key(22), examples.key(23)
    target = make_target(plonky3, [(honest, 40), (liar, 30), (peer, 30)])
    net = Network(tmp_path / "store.sqlite", plonky3, target)
    watcher = net.verifier(honest, tmp_path, commits=False)
    equivocator = net.verifier(liar, tmp_path, mode="equivocate")
    c1, c1_objects = commit_of(target, None, tree=plonky3.base_tree.cid, message="c1")
    _, c2_objects = commit_of(target, None, tree=plonky3.base_tree.cid, message="c2")

    async def scenario() -> None:
        await net.publish(c1_objects + c2_objects)
        await wait_until(lambda: len(net.published_by(liar, Attestation)) == 4,
                         "two attestation pairs")
        await wait_until(lambda: net.published_by(honest, Evidence), "evidence")
        # Another peer signs two different verdicts on one commit (different seqs).
        now = int(time.time() * 1000)
        verdict = Verdict(commit=c1.cid, parent=target.cid, result="improved", ratio_ppm=900_000,
                          lo_ppm=890_000, hi_ppm=910_000, pairs=6, gate_seed=bytes(32),
                          profile=target.profile, toolchain="t")
        first = Attestation.create(peer, target=target.cid, seq=0, prev=None, epoch=0,
                                   time_ms=now, head=target.cid, verdict=verdict)
        second = Attestation.create(
            peer, target=target.cid, seq=1, prev=first.cid, epoch=0, time_ms=now,
            head=target.cid, verdict=dataclasses.replace(
                verdict, result="gate_failed", ratio_ppm=0, lo_ppm=0, hi_ppm=0, pairs=0))
        await net.publish([first])
        await net.publish([second])
        await wait_until(lambda: len(net.published_by(honest, Evidence)) == 2, "evidence 2")
        await trio.sleep(0.5)  # more conflicting pairs arrive: no further evidence

    run([watcher, equivocator], scenario, 60)

    attestations = net.published_by(liar, Attestation)
    by_seq = {}
    for att in attestations:
        by_seq.setdefault(att.seq, set()).add(att.verdict.result)
    assert by_seq == {0: {"improved", "not_improved"}, 1: {"improved", "not_improved"}}
    # The slashing-protection record holds only the first of each pair.
    assert equivocator.signer.protection.tip(target.cid).seq == 1

    evidence = net.published_by(honest, Evidence)
    assert sorted(e.offender for e in evidence) == sorted([liar.public_key, peer.public_key])
    for item in evidence:
        item.verify()
        assert item.submitter == honest.public_key
    assert [e.reason.startswith("two distinct attestations with sequence number") for e in
            evidence] == [True, False]
    assert len(net.store.evidence_of(target.cid)) == 2
    assert {liar.public_key, peer.public_key} <= net.chain.fork_choice.equivocators()
    assert {liar.public_key, peer.public_key} <= net.chain.ledger.accused()


# --- auto-challenge and committee duty ------------------------------------------------------------

def test_lying_verifier_is_challenged_and_slashed_by_committee_rulings(plonky3, tmp_path):
    honest, liar, m1, m2 = (examples.key(i) for i in (31, 32, 33, 34))
    target = make_target(plonky3, [(honest, 70), (liar, 10), (m1, 10), (m2, 10)],
                         epoch_seconds=1)
    net = Network(tmp_path / "store.sqlite", plonky3, target)
    challenger = net.verifier(honest, tmp_path)
    lying = net.verifier(liar, tmp_path, mode="lie")
    # The committee members evaluate nothing here: they only serve on committees.
    members = [net.verifier(key, tmp_path, commits=False) for key in (m1, m2)]
    bad, bad_objects = commit_of(target, plonky3.hostile, message="hostile")
    # An hour ahead: its epoch follows every attestation's, so once final it anchors challenges.
    good, good_objects = commit_of(target, plonky3.good, message="good",
                                   time_ms=target.genesis_time_ms + 3_600_000)

    def settled() -> list:
        return [r for r in net.chain.ledger.state.challenges.values()
                if r.status is ChallengeStatus.CHALLENGER_WON]

    async def scenario() -> None:
        await net.publish(bad_objects + good_objects)
        await wait_until(lambda: settled(), "a settled challenge", 90)

    run([challenger, lying, *members], scenario, 120)

    assert verdicts_of(net, liar)[bad.cid].result == "improved"
    assert verdicts_of(net, honest)[bad.cid].result == "gate_failed"
    assert bad.cid not in net.heads and net.chain.status(bad.cid) is CommitStatus.REJECTED
    assert net.chain.finalized == good.cid

    (challenge,) = net.published_by(honest, Challenge)
    assert challenge.attestation.verifier == liar.public_key
    assert challenge.attestation.verdict.commit == bad.cid
    assert challenge.anchor == good.cid and challenge.bond == MIN_CHALLENGE_BOND
    (record,) = settled()
    assert record.challenge == challenge.cid and set(record.members) == {m1.public_key,
                                                                         m2.public_key}
    rulings = [r for key in (m1, m2) for r in net.published_by(key, Ruling)]
    assert [r.gate_passed for r in rulings] == [False, False]
    slashes = [s for s in net.chain.ledger.state.slashes if s.reason == REASON_FALSE_GATE_CLAIM]
    assert [s.offender for s in slashes] == [liar.public_key] and slashes[0].amount > 0
    assert net.chain.ledger.state.accounts[liar.public_key].ejected
    # The liar's attestation on the good commit agrees with ours on the gate: not challenged.
    assert not net.published_by(m1, Challenge) and not net.published_by(m2, Challenge)


# --- head votes ---------------------------------------------------------------------------------

def test_head_votes_are_rate_limited_and_follow_the_last_change(plonky3, tmp_path):
    v, peer = examples.key(41), examples.key(42)
    target = make_target(plonky3, [(v, 50), (peer, 50)])
    net = Network(tmp_path / "store.sqlite", plonky3, target)
    role = net.verifier(v, tmp_path, commits=False, head_vote_interval_s=1.0,
                        head_vote_settle_s=0.1)
    peer_signer = AttestationSigner(peer, SlashingProtection(tmp_path / "peer.sqlite",
                                                             peer.public_key))
    commits = []
    parent = target.cid
    for i in range(3):
        commit, _ = commit_of(target, None, parent=parent, tree=plonky3.base_tree.cid,
                              message=f"c{i}")
        commits.append(commit)
        parent = commit.cid
    c1, c2, c3 = commits

    async def improved(commit: Commit) -> None:
        verdict = Verdict(commit=commit.cid, parent=commit.parents[0], result="improved",
                          ratio_ppm=900_000, lo_ppm=890_000, hi_ppm=910_000, pairs=6,
                          gate_seed=bytes(32), profile=target.profile, toolchain="t")
        now = int(time.time() * 1000)
        await net.publish([peer_signer.sign(target=target.cid, head=commit.cid,
                                            epoch=target.epoch_at(now), time_ms=now,
                                            verdict=verdict)])

    async def scenario() -> None:
        await net.publish(commits)
        await trio.sleep(0.3)
        assert votes_of(net, v) == []  # nothing moved: no vote
        await improved(c1)
        await wait_until(lambda: len(votes_of(net, v)) == 1, "a vote for c1", 5)
        assert net.chain.finalized == c1.cid
        await improved(c2)
        await improved(c3)  # a burst: c2 is head only for an instant
        await wait_until(lambda: len(votes_of(net, v)) == 2, "a vote after the burst", 5)
        role.on_head_change()  # a spurious wake-up: the head did not move
        await trio.sleep(1.5)

    run([role], scenario, 30)

    votes = votes_of(net, v)
    assert [a.head for _, a in votes] == [c1.cid, c3.cid]
    assert votes[1][0] - votes[0][0] >= 1.0
    assert net.chain.finalized == c3.cid


def test_restart_republishes_an_attestation_recorded_but_never_published(plonky3, tmp_path):
    v = examples.key(51)
    target = make_target(plonky3, [(v, 100)])
    net = Network(tmp_path / "store.sqlite", plonky3, target)
    role = net.verifier(v, tmp_path, commits=False)
    now = int(time.time() * 1000)
    # A crash between recording and publishing: the record holds seq 0, the network never saw it.
    lost = role.signer.sign(target=target.cid, head=target.cid, epoch=target.epoch_at(now),
                            time_ms=now)
    assert not net.store.has(lost.cid)

    async def scenario() -> None:
        await wait_until(lambda: net.store.has(lost.cid), "the lost attestation", 5)

    run([role], scenario, 10)
    assert net.published_by(v, Attestation) == [lost]


def test_a_commit_whose_tree_nobody_delivers_is_fetched_deferred_and_never_attested(
        plonky3, tmp_path):
    v = examples.key(61)
    target = make_target(plonky3, [(v, 100)])
    net = Network(tmp_path / "store.sqlite", plonky3, target)
    role = net.verifier(v, tmp_path)
    # The proposer publishes the commit but withholds its tree.
    withheld, objects = commit_of(target, plonky3.hostile, message="withheld")

    async def scenario() -> None:
        await net.publish(objects[-1:])
        await wait_until(lambda: role.node.fetched, "a fetch", 5)
        await trio.sleep(0.3)
        assert role.queue_length() == 1 and role.current is None  # deferred, not dropped

    run([role], scenario, 10)
    assert role.node.fetched == [withheld.tree]
    assert net.published_by(v, Attestation) == []

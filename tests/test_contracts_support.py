"""Builders of real signed objects for the contracts tests (no tests here).

The target is `protocol.examples.target(4)`: validators key(0)…key(3) with genesis stakes
100, 200, 300, 400 (total 1,000), 60-second epochs. Keys 4 and 5 start with nothing.
"""

from __future__ import annotations

import hashlib

from contracts import LedgerState
from protocol import examples
from protocol.cid import CID
from protocol.keys import SigningKey
from protocol.objects import (
    MEASURED_RESULTS,
    Attestation,
    Challenge,
    Claim,
    Commit,
    Evidence,
    Ruling,
    StakeTx,
    Target,
    Verdict,
)

TARGET: Target = examples.target(4)
EPOCH_MS = TARGET.epoch_seconds * 1000
KEYS: list[SigningKey] = [examples.key(i) for i in range(8)]
PK: list[bytes] = [k.public_key for k in KEYS]
GENESIS_STAKE = {PK[i]: 100 * (i + 1) for i in range(4)}
TREE = examples.tree().cid
GATE_SEED = hashlib.sha256(b"contracts-gate-seed").digest()


def time_of(epoch: int, offset_ms: int = 0) -> int:
    return TARGET.genesis_time_ms + epoch * EPOCH_MS + offset_ms


def bond(i: int, amount: int, nonce: int) -> StakeTx:
    return StakeTx.create(KEYS[i], target=TARGET.cid, op="bond", amount=amount, nonce=nonce)


def unbond(i: int, amount: int, nonce: int) -> StakeTx:
    return StakeTx.create(KEYS[i], target=TARGET.cid, op="unbond", amount=amount, nonce=nonce)


class Chain:
    """A finalized chain under construction: each commit extends the previous one."""

    def __init__(self) -> None:
        self.commits: list[Commit] = []

    @property
    def tip(self) -> CID:
        return self.commits[-1].cid if self.commits else TARGET.cid

    def add(self, epoch: int, txs: tuple[StakeTx, ...] | list[StakeTx] = (), author: int = 4,
            time_ms: int | None = None, ratio_ppm: int = 970_000) -> Commit:
        commit = Commit.create(
            KEYS[author], target=TARGET.cid, parents=[self.tip], tree=TREE,
            claim=Claim(profile="avx2", ratio_ppm=ratio_ppm, lo_ppm=ratio_ppm,
                        hi_ppm=ratio_ppm, pairs=7),
            time_ms=time_of(epoch, len(self.commits)) if time_ms is None else time_ms,
            message=f"commit {len(self.commits)}", stake_txs=list(txs))
        self.commits.append(commit)
        return commit


def verdict(commit: Commit, result: str = "improved", ratio_ppm: int = 970_000,
            parent: CID | None = None) -> Verdict:
    measured = result in MEASURED_RESULTS
    return Verdict(commit=commit.cid, parent=parent or commit.parents[0], result=result,
                   ratio_ppm=ratio_ppm if measured else 0, lo_ppm=ratio_ppm if measured else 0,
                   hi_ppm=ratio_ppm if measured else 0, pairs=15 if measured else 0,
                   gate_seed=GATE_SEED, profile="avx2", toolchain="rustc 1.95.0")


def attest(i: int, commit: Commit | None = None, *, result: str | None = "improved",
           ratio_ppm: int = 970_000, seq: int = 0, epoch: int = 0, head: CID | None = None,
           parent: CID | None = None) -> Attestation:
    """An attestation by key i; with `commit`, a verdict on it (unless result is None)."""
    return Attestation.create(
        KEYS[i], target=TARGET.cid, seq=seq, prev=None if seq == 0 else TARGET.cid,
        epoch=epoch, time_ms=time_of(epoch), head=head or (commit.cid if commit else TARGET.cid),
        verdict=None if commit is None or result is None
        else verdict(commit, result, ratio_ppm, parent))


def evidence(offender: int, submitter: int, epoch_a: int, epoch_b: int | None = None,
             seq: int = 0, salt: int = 0) -> Evidence:
    """Equivocation by `offender`: two vote-only attestations with the same seq, other heads."""
    epoch_b = epoch_a if epoch_b is None else epoch_b
    heads = [CID.for_bytes("messagepack", f"head-{salt}-{n}".encode()) for n in (0, 1)]
    first = attest(offender, seq=seq, epoch=epoch_a, head=heads[0], result=None)
    second = attest(offender, seq=seq, epoch=epoch_b, head=heads[1], result=None)
    return Evidence.create(KEYS[submitter], first, second)


def challenge(challenger: int, attestation: Attestation, anchor: CID, bond_amount: int = 50,
              nonce: int = 0) -> Challenge:
    return Challenge.create(KEYS[challenger], attestation, anchor=anchor, bond=bond_amount,
                            nonce=nonce)


def ruling(member: int | bytes, challenge_obj: Challenge, gate_passed: bool,
           toolchain: str = "rustc 1.95.0") -> Ruling:
    key = KEYS[PK.index(member)] if isinstance(member, bytes) else KEYS[member]
    return Ruling.create(key, target=TARGET.cid, challenge=challenge_obj.cid,
                         gate_passed=gate_passed, toolchain=toolchain)


def check_invariants(state: LedgerState) -> None:
    """§Conservation and the account invariants that hold after every fold."""
    assert state.total_balance() == state.genesis_stake + state.minted - state.burned
    assert state.minted == sum(r.total for r in state.rewards.values())
    lost = sum(c.burned for c in state.challenges.values() if c.status == "challenger_lost")
    assert state.burned == sum(s.burned for s in state.slashes) + lost
    for key, account in state.accounts.items():
        assert min(account.free, account.bonded, account.locked, account.escrowed) >= 0, key
        assert account.locked <= account.bonded
        assert all(e.amount > 0 for e in account.pending + account.unbonding)
        assert all(e.epoch > state.epoch for e in account.pending + account.unbonding)
        if account.ejected:
            assert account.pending == [] and account.bonded == account.locked
        open_free = sum(c.bond_from_free for c in state.challenges.values()
                        if c.status == "open" and c.challenger == key)
        assert account.escrowed == open_free

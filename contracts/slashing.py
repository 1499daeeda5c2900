"""Slashing and ejection; equivocation evidence (docs/PROTOCOL.md, "Contracts", §Slashing).

The caller has validated the evidence and checked its three signatures (`Evidence.verify`); an
`Evidence` object that exists already proves a conflict (`protocol.objects.conflict`).
"""

from __future__ import annotations

from collections.abc import Iterable

from contracts.ledger import (
    REASON_EQUIVOCATION,
    Account,
    Entry,
    LedgerState,
    Slash,
    credit_free,
    get_account,
)
from contracts.params import PPM, ContractParams
from protocol.objects import Evidence


def get_evidence_anchor(evidence: Evidence) -> int:
    """§Slashing: evidence is anchored at the later of its two attestations' epochs."""
    return max(evidence.a.epoch, evidence.b.epoch)


def get_evidence_key(evidence: Evidence) -> tuple[int, bytes]:
    """§Slashing: evidence against one offender is ranked by (anchor epoch, CID bytes)."""
    return get_evidence_anchor(evidence), bytes(evidence.cid)


def get_counted_evidence(evidence: Iterable[Evidence]) -> dict[bytes, Evidence]:
    """§Slashing: of all evidence against one offender only the first by (anchor epoch, CID)
    counts, so double evidence never slashes twice and every node picks the same submitter."""
    counted: dict[bytes, Evidence] = {}
    for item in evidence:
        best = counted.get(item.offender)
        if best is None or get_evidence_key(item) < get_evidence_key(best):
            counted[item.offender] = item
    return counted


def get_slash_cut(amount: int, ppm: int) -> int:
    """§Slashing: what a slash at rate `ppm` takes from one holding (rounded down)."""
    return amount * ppm // PPM


def eject_account(account: Account, epoch: int, ppm: int, params: ContractParams) -> None:
    """§Slashing, ejection: the account never counts for fork choice again. Its unlocked bonded
    stake and its pending bonds start unbonding at once (released at
    `epoch + unbond_delay_epochs`); locked stake stays locked until its challenge settles. The
    first ejection's slash rate is kept: later bonds by the account are slashed at it."""
    if not account.ejected:
        account.ejected = True
        account.ejection_ppm = ppm
    leaving = account.bonded - account.locked + sum(e.amount for e in account.pending)
    account.bonded = account.locked
    account.pending = []
    if leaving > 0:
        account.unbonding.append(Entry(leaving, epoch + params.unbond_delay_epochs))


def apply_slash(state: LedgerState, key: bytes, ppm: int, epoch: int,
                params: ContractParams) -> int:
    """§Slashing: take `ppm` of every holding of `key`'s stake — unlocked bonded, locked, each
    pending bond and each unbonding entry not yet released (each rounded down) — then eject the
    account. Returns the amount taken; the caller pays it out or burns it."""
    account = get_account(state, key)
    cut_unlocked = get_slash_cut(account.bonded - account.locked, ppm)
    cut_locked = get_slash_cut(account.locked, ppm)
    taken = cut_unlocked + cut_locked
    account.bonded -= taken
    account.locked -= cut_locked
    for name in ("pending", "unbonding"):
        kept = []
        for entry in getattr(account, name):
            cut = get_slash_cut(entry.amount, ppm)
            taken += cut
            if entry.amount > cut:
                kept.append(Entry(entry.amount - cut, entry.epoch))
        setattr(account, name, kept)
    eject_account(account, epoch, ppm, params)
    return taken


def process_evidence(state: LedgerState, evidence: Evidence, epoch: int,
                     params: ContractParams) -> None:
    """§Slashing: the counted evidence against an offender, applied at its anchor epoch.

    The offender loses `equivocation_slash_ppm` of its stake and is ejected; the submitter
    receives `whistleblower_ppm` of the slashed amount as free balance (nothing if it is the
    offender itself); the rest is burned.
    """
    offender = evidence.offender
    if offender in state.equivocation_slashed:
        return
    state.equivocation_slashed.add(offender)
    amount = apply_slash(state, offender, params.equivocation_slash_ppm, epoch, params)
    reward = 0 if evidence.submitter == offender else amount * params.whistleblower_ppm // PPM
    credit_free(state, evidence.submitter, reward)
    state.burned += amount - reward
    paid = ((evidence.submitter, reward),) if reward else ()
    state.slashes.append(Slash(offender, REASON_EQUIVOCATION, epoch, amount, paid,
                               amount - reward, evidence.cid))

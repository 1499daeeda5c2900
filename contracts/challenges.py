"""Challenges: the anchor, committee sampling, rulings and settlement (docs/PROTOCOL.md,
"Contracts", §Challenges).

A challenge disputes one attestation's gate claim. The gate is deterministic given (tree, seed)
and the attestation reveals its seed, so a committee sampled by stake re-runs it and signs
rulings; the committee's stake majority settles the dispute and the loser forfeits.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from contracts.ledger import (
    REASON_FALSE_GATE_CLAIM,
    LedgerState,
    Slash,
    credit_free,
    get_account,
    get_stake_snapshot,
)
from contracts.params import PPM, ContractParams
from contracts.slashing import apply_slash, eject_account
from protocol.cid import CID
from protocol.objects import Attestation, Challenge, Ruling

COMMITTEE_SEED_DOMAIN = b"poi/1/committee"
"""Prefix of the committee seed preimage."""

DRAW_COUNTER_BYTES = 8
"""Width of the big-endian counter appended to the seed for each 256-bit draw."""

DRAW_BITS = 256
"""Each draw is one SHA-256 digest read as a big-endian unsigned integer."""


class ChallengeStatus(StrEnum):
    """Where a challenge stands (§Challenges)."""

    WAITING_ANCHOR = "waiting_anchor"
    """Its anchor is not in the finalized chain (yet): nothing happens until it is."""
    INVALID_ANCHOR = "invalid_anchor"
    """Its anchor is final but is not the attestation's challenge anchor: a no-op for good."""
    BOND_TOO_SMALL = "bond_too_small"
    """Its bond is below `min_challenge_bond`: a no-op."""
    UNFUNDED = "unfunded"
    """The challenger's free balance plus unlocked bonded stake could not cover the bond at the
    anchor: a no-op."""
    NO_COMMITTEE = "no_committee"
    """No account besides the challenger and the verifier had stake at the anchor: a no-op."""
    OPEN = "open"
    """Bond escrowed; no side has a strict majority of the committee's stake yet."""
    CHALLENGER_WON = "challenger_won"
    """The committee found the gate claim false: the verifier is slashed and ejected."""
    CHALLENGER_LOST = "challenger_lost"
    """The committee confirmed the gate claim: the challenger's bond is forfeited."""


SETTLED = (ChallengeStatus.CHALLENGER_WON, ChallengeStatus.CHALLENGER_LOST)
ACTIVE = (ChallengeStatus.OPEN, *SETTLED)
"""Statuses of a challenge that has a committee."""


@dataclass(frozen=True)
class ChallengeRecord:
    """What the fold decided about one challenge whose anchor is final.

    `committee` lists (member, weight) in draw order; weights are the members' stakes in the
    snapshot at the anchor's epoch. `votes_passed` / `votes_failed` are the committee weight
    behind each counted ruling value. `bond_from_free` / `bond_from_bonded` say where the
    escrowed bond came from.
    """

    challenge: CID
    challenger: bytes
    verifier: bytes
    attestation: CID
    anchor: CID
    epoch: int
    bond: int
    status: ChallengeStatus
    committee: tuple[tuple[bytes, int], ...] = ()
    bond_from_free: int = 0
    bond_from_bonded: int = 0
    votes_passed: int = 0
    votes_failed: int = 0
    gate_passed: bool | None = None
    """The committee majority's finding; None while open."""
    slashed: int = 0
    challenger_reward: int = 0
    committee_rewards: tuple[tuple[bytes, int], ...] = ()
    burned: int = 0

    @property
    def members(self) -> tuple[bytes, ...]:
        return tuple(member for member, _ in self.committee)


# ---------------------------------------------------------------------------------------------
# The anchor
# ---------------------------------------------------------------------------------------------


def get_challenge_anchor_index(chain_epochs: Sequence[int], attestation: Attestation
                               ) -> int | None:
    """§Challenges, anchor: the challenge anchor of an attestation is the first final commit
    whose epoch is greater than the attestation's epoch (its position in the chain, the genesis
    being 0); None while the finalized chain has no such commit. `chain_epochs` are the
    epochs of the genesis and the final commits, in chain order (non-decreasing)."""
    index = bisect_right(chain_epochs, attestation.epoch)
    return index if index < len(chain_epochs) else None


# ---------------------------------------------------------------------------------------------
# Committee sampling
# ---------------------------------------------------------------------------------------------


def get_committee_seed(anchor: CID, attestation: CID) -> bytes:
    """§Challenges, committee: sha256(b"poi/1/committee" ‖ anchor CID ‖ attestation CID), CIDs
    in their binary form."""
    return hashlib.sha256(COMMITTEE_SEED_DOMAIN + bytes(anchor) + bytes(attestation)).digest()


def get_committee_candidates(snapshot: Mapping[bytes, int], challenger: bytes,
                             verifier: bytes) -> dict[bytes, int]:
    """§Challenges, committee: the accounts with stake in the snapshot at the anchor's epoch,
    except the challenger and the challenged verifier."""
    return {key: stake for key, stake in snapshot.items()
            if stake > 0 and key not in (challenger, verifier)}


def sample_committee(candidates: Mapping[bytes, int], seed: bytes, size: int
                     ) -> tuple[bytes, ...]:
    """§Challenges, committee sampling: `size` members drawn by stake without replacement
    (all candidates, in draw order, when there are no more than `size`).

    Candidates are kept in ascending key order. A draw counter c starts at 0. For each member:
    W = total stake of the candidates left; repeatedly take x = sha256(seed ‖ c as 8 bytes
    big-endian) as a 256-bit big-endian integer and increment c, until x < 2^256 − (2^256 mod W)
    (rejection keeps the draw uniform); r = x mod W; the member is the first remaining candidate
    whose running stake total exceeds r; remove it.
    """
    remaining = sorted((key, stake) for key, stake in candidates.items() if stake > 0)
    members: list[bytes] = []
    counter = 0
    space = 1 << DRAW_BITS
    while remaining and len(members) < size:
        total = sum(stake for _, stake in remaining)
        limit = space - space % total
        while True:
            block = seed + counter.to_bytes(DRAW_COUNTER_BYTES, "big")
            draw = int.from_bytes(hashlib.sha256(block).digest(), "big")
            counter += 1
            if draw < limit:
                break
        point = draw % total
        running = 0
        for index, (key, stake) in enumerate(remaining):
            running += stake
            if point < running:
                members.append(key)
                del remaining[index]
                break
    return tuple(members)


# ---------------------------------------------------------------------------------------------
# Rulings
# ---------------------------------------------------------------------------------------------


def get_counted_rulings(rulings: Iterable[Ruling], members: Iterable[bytes]
                        ) -> dict[bytes, bool]:
    """§Challenges, rulings: each committee member's finding. Rulings by non-members are
    ignored; a member that signed both findings for one challenge counts for neither (whichever
    arrived first: the result must not depend on arrival order); the same finding signed twice
    counts once."""
    allowed = set(members)
    findings: dict[bytes, set[bool]] = {}
    for ruling in rulings:
        if ruling.member in allowed:
            findings.setdefault(ruling.member, set()).add(ruling.gate_passed)
    return {member: next(iter(found)) for member, found in findings.items() if len(found) == 1}


def get_ruling_tally(committee: Sequence[tuple[bytes, int]], counted: Mapping[bytes, bool]
                     ) -> tuple[int, int]:
    """§Challenges, settlement: committee weight behind `gate_passed = true` and `false`."""
    passed = sum(weight for member, weight in committee if counted.get(member) is True)
    failed = sum(weight for member, weight in committee if counted.get(member) is False)
    return passed, failed


def get_majority_finding(committee: Sequence[tuple[bytes, int]], counted: Mapping[bytes, bool]
                         ) -> bool | None:
    """§Challenges, settlement: the finding of members holding a strict majority of the
    committee's weight (2·w > W), or None while neither side has one."""
    total = sum(weight for _, weight in committee)
    passed, failed = get_ruling_tally(committee, counted)
    if 2 * passed > total:
        return True
    if 2 * failed > total:
        return False
    return None


def get_committee_payouts(pool: int, majority: Sequence[tuple[bytes, int]]
                          ) -> tuple[tuple[bytes, int], ...]:
    """§Challenges, committee reward: `pool` split among the members who ruled with the
    majority, ⌊pool × weight / majority weight⌋ each (what rounding leaves is burned)."""
    total = sum(weight for _, weight in majority)
    if pool <= 0 or total <= 0:
        return ()
    payouts = tuple((member, pool * weight // total) for member, weight in majority)
    return tuple((member, amount) for member, amount in payouts if amount > 0)


# ---------------------------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------------------------


def process_challenge(state: LedgerState, challenge: Challenge, epoch: int,
                      is_canonical_anchor: bool, rulings: Iterable[Ruling],
                      params: ContractParams) -> ChallengeRecord:
    """§Challenges: a challenge, applied right after its anchor (a final commit of `epoch`).

    In order: the anchor must be the attestation's challenge anchor; the bond at least
    `min_challenge_bond`; the challenger able to cover it (free balance first, then unlocked
    bonded stake, which is locked: it still counts for fork choice but cannot be unbonded); the
    committee, sampled from the stake snapshot at `epoch`, non-empty. Then the bond is escrowed
    and, if the rulings known have a strict committee majority, the challenge is settled at
    once (at the anchor, whenever the rulings arrive). Returns the record, also stored in
    `state.challenges`.
    """
    attestation = challenge.attestation
    record = ChallengeRecord(
        challenge=challenge.cid, challenger=challenge.challenger,
        verifier=attestation.verifier, attestation=attestation.cid, anchor=challenge.anchor,
        epoch=epoch, bond=challenge.bond, status=ChallengeStatus.OPEN)
    failure = None
    if not is_canonical_anchor:
        failure = ChallengeStatus.INVALID_ANCHOR
    elif challenge.bond < params.min_challenge_bond:
        failure = ChallengeStatus.BOND_TOO_SMALL
    else:
        account = get_account(state, challenge.challenger)
        if account.free + account.bonded - account.locked < challenge.bond:
            failure = ChallengeStatus.UNFUNDED
    if failure is not None:
        record = replace(record, status=failure)
        state.challenges[challenge.cid] = record
        return record
    snapshot = get_stake_snapshot(state, epoch)
    candidates = get_committee_candidates(snapshot, challenge.challenger, attestation.verifier)
    seed = get_committee_seed(challenge.anchor, attestation.cid)
    members = sample_committee(candidates, seed, params.committee_size)
    if not members:
        record = replace(record, status=ChallengeStatus.NO_COMMITTEE)
        state.challenges[challenge.cid] = record
        return record
    account = get_account(state, challenge.challenger)
    from_free = min(account.free, challenge.bond)
    from_bonded = challenge.bond - from_free
    account.free -= from_free
    account.escrowed += from_free
    account.locked += from_bonded
    committee = tuple((member, candidates[member]) for member in members)
    counted = get_counted_rulings(rulings, members)
    passed, failed = get_ruling_tally(committee, counted)
    record = replace(record, committee=committee, bond_from_free=from_free,
                     bond_from_bonded=from_bonded, votes_passed=passed, votes_failed=failed)
    finding = get_majority_finding(committee, counted)
    if finding is not None:
        record = settle_challenge(state, record, finding, attestation, counted, params)
    state.challenges[challenge.cid] = record
    return record


def settle_challenge(state: LedgerState, record: ChallengeRecord, finding: bool,
                     attestation: Attestation, counted: Mapping[bytes, bool],
                     params: ContractParams) -> ChallengeRecord:
    """§Challenges, settlement, given the committee majority's `finding` (did the gate pass?).

    The challenger wins iff the finding differs from the attestation's claim. Winning: the bond
    is returned; the verifier loses `challenge_slash_ppm` of its stake and is ejected (once: a
    verifier already slashed for a false gate claim is not slashed again, and the challenger
    then gets only its bond back); the challenger receives `challenger_reward_ppm` of the slash.
    Losing: the bond is forfeited. Either way the loser pays the majority members
    `committee_reward_ppm` of the bond (out of the slash, as far as it goes) and the rest of
    what it lost is burned.
    """
    assert attestation.verdict is not None
    claim = attestation.verdict.gate_passed
    majority = [(m, w) for m, w in record.committee if counted.get(m) is finding]
    pool = record.bond * params.committee_reward_ppm // PPM
    challenger = get_account(state, record.challenger)
    challenger.escrowed -= record.bond_from_free
    challenger.locked -= record.bond_from_bonded
    if finding != claim:
        challenger.free += record.bond_from_free
        slashed = reward = 0
        if record.verifier not in state.challenge_slashed:
            state.challenge_slashed.add(record.verifier)
            slashed = apply_slash(state, record.verifier, params.challenge_slash_ppm,
                                  record.epoch, params)
            reward = slashed * params.challenger_reward_ppm // PPM
        payouts = get_committee_payouts(min(pool, slashed - reward), majority)
        credit_free(state, record.challenger, reward)
        lost = slashed
        status = ChallengeStatus.CHALLENGER_WON
    else:
        challenger.bonded -= record.bond_from_bonded
        payouts = get_committee_payouts(pool, majority)
        slashed = reward = 0
        lost = record.bond
        status = ChallengeStatus.CHALLENGER_LOST
    if challenger.ejected:  # a returned bond of an ejected challenger leaves with the rest
        eject_account(challenger, record.epoch, challenger.ejection_ppm, params)
    for member, amount in payouts:
        credit_free(state, member, amount)
    burned = lost - reward - sum(amount for _, amount in payouts)
    state.burned += burned
    if slashed:
        paid = tuple(p for p in ((record.challenger, reward), *payouts) if p[1] > 0)
        state.slashes.append(Slash(record.verifier, REASON_FALSE_GATE_CLAIM, record.epoch,
                                   slashed, paid, burned, record.challenge))
    return replace(record, status=status, gate_passed=finding, slashed=slashed,
                   challenger_reward=reward, committee_rewards=payouts, burned=burned)


# ---------------------------------------------------------------------------------------------
# Queries the node uses
# ---------------------------------------------------------------------------------------------


def get_challenge_record(challenge: Challenge | CID, state: LedgerState
                         ) -> ChallengeRecord | None:
    """The fold's record of a challenge; None while its anchor is not final (or the state was
    never given the challenge)."""
    cid = challenge if isinstance(challenge, CID) else challenge.cid
    return state.challenges.get(cid)


def challenge_status(challenge: Challenge | CID, state: LedgerState) -> ChallengeStatus:
    """§Challenges: where a challenge stands in `state` (`waiting_anchor` until its anchor is in
    the finalized chain)."""
    record = get_challenge_record(challenge, state)
    return ChallengeStatus.WAITING_ANCHOR if record is None else record.status


def committee_for(challenge: Challenge | CID, state: LedgerState) -> tuple[bytes, ...]:
    """§Challenges: the committee members (draw order) who should re-run the challenged gate
    and sign a `Ruling`; empty while the challenge has no committee (anchor not final yet,
    invalid, unfunded, ...). Members keep ruling until the challenge is settled."""
    record = get_challenge_record(challenge, state)
    if record is None or record.status not in ACTIVE:
        return ()
    return record.members

"""Accounts, epochs, stake transactions and stake snapshots (docs/PROTOCOL.md, "Contracts",
§Accounts, §Epochs, §Stake transactions, §Stake snapshot).

`LedgerState` is the state the contracts fold over the finalized chain (see `contracts.state`).
Functions named `get_*` / `is_*` decide and change nothing; functions named `process_*` apply one
rule to the state in place, the way ethereum/consensus-specs writes its state transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from contracts.params import PPM, ContractParams
from protocol.cid import CID
from protocol.objects import Commit, StakeTx, Target

if TYPE_CHECKING:
    from contracts.challenges import ChallengeRecord
    from contracts.rewards import CommitRewards

# ---------------------------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------------------------


class Entry(NamedTuple):
    """An amount that changes state at an epoch: a pending bond (effective epoch) or unbonding
    stake (release epoch)."""

    amount: int
    epoch: int


@dataclass
class Account:
    """§Accounts. All amounts are stake units.

    - `free`: spendable balance (rewards, released stake).
    - `bonded`: effective stake; it counts for fork choice unless the account is ejected.
    - `locked`: the part of `bonded` escrowed by open challenges (counts, cannot be unbonded).
    - `escrowed`: challenge bonds taken from the free balance, held until the challenge settles.
    - `pending`: bonds not yet effective, as (amount, effective epoch).
    - `unbonding`: stake on its way out, as (amount, release epoch); slashable until released.
    - `nonce`: the nonce the account's next stake transaction must carry.
    - `ejected` / `ejection_ppm`: ejected by a slash (for good), and that slash's rate.
    """

    free: int = 0
    bonded: int = 0
    locked: int = 0
    escrowed: int = 0
    pending: list[Entry] = field(default_factory=list)
    unbonding: list[Entry] = field(default_factory=list)
    nonce: int = 0
    ejected: bool = False
    ejection_ppm: int = 0

    @property
    def stake(self) -> int:
        """Slashable stake: bonded + pending + unbonding."""
        return (self.bonded + sum(e.amount for e in self.pending)
                + sum(e.amount for e in self.unbonding))

    @property
    def balance(self) -> int:
        """Everything the account holds: free + escrowed + stake."""
        return self.free + self.escrowed + self.stake


class TxStatus(StrEnum):
    """What became of a stake transaction in a final commit (§Stake transactions)."""

    APPLIED = "applied"
    APPLIED_EJECTED = "applied_ejected"
    """A bond by an ejected account: taken from free, slashed at the ejection rate, the rest
    unbonding (§Slashing, ejection is permanent)."""
    BAD_NONCE = "bad_nonce"
    INSUFFICIENT_FREE = "insufficient_free"
    INSUFFICIENT_UNLOCKED = "insufficient_unlocked"


class TxResult(NamedTuple):
    tx: CID
    account: bytes
    status: TxStatus


@dataclass(frozen=True)
class Slash:
    """A slash, in fold order (§Slashing, §Challenges). `paid` lists who received part of it
    (whistle-blower, challenger, committee members); the rest, `burned`, is destroyed."""

    offender: bytes
    reason: str
    """`equivocation`, `false_gate_claim` or `bond_after_ejection`."""
    epoch: int
    amount: int
    paid: tuple[tuple[bytes, int], ...]
    burned: int
    source: CID
    """The evidence, challenge or stake transaction that caused it."""


REASON_EQUIVOCATION = "equivocation"
REASON_FALSE_GATE_CLAIM = "false_gate_claim"
REASON_BOND_AFTER_EJECTION = "bond_after_ejection"


@dataclass
class LedgerState:
    """The contracts' state after folding the finalized chain up to `head` (§The fold).

    `epoch` is the ledger's clock: the epoch of the last final commit (0 at genesis).
    `tx_results` is keyed by (commit CID, index in its `stake_txs`).
    `accused` holds every offender named by known evidence, including evidence whose anchor
    epoch the chain has not reached yet: they are out of every stake snapshot at once.
    """

    target: CID
    genesis_stake: int
    accounts: dict[bytes, Account]
    epoch: int = 0
    head: CID | None = None
    height: int = 0
    minted: int = 0
    burned: int = 0
    accused: frozenset[bytes] = frozenset()
    tx_results: dict[tuple[CID, int], TxResult] = field(default_factory=dict)
    slashes: list[Slash] = field(default_factory=list)
    challenges: dict[CID, ChallengeRecord] = field(default_factory=dict)
    rewards: dict[CID, CommitRewards] = field(default_factory=dict)
    equivocation_slashed: set[bytes] = field(default_factory=set)
    challenge_slashed: set[bytes] = field(default_factory=set)

    def account(self, key: bytes) -> Account:
        """The account of `key` (an empty one if it never held anything; not stored)."""
        return self.accounts.get(key) or Account()

    def next_nonce(self, key: bytes) -> int:
        """The nonce `key`'s next stake transaction must carry."""
        return self.account(key).nonce

    def stakes_at(self, epoch: int) -> dict[bytes, int]:
        """§Stake snapshot: the stakes fork choice uses at `epoch` (`set_stakes`).

        Meant for epochs at or after the ledger's clock: the ledger keeps no history, so an
        earlier epoch gets the snapshot at the ledger's epoch.
        """
        return get_stake_snapshot(self, epoch, excluded=self.accused)

    def total_balance(self) -> int:
        """§Conservation: what all accounts hold; always genesis_stake + minted − burned."""
        return sum(account.balance for account in self.accounts.values())


# ---------------------------------------------------------------------------------------------
# Genesis and epochs
# ---------------------------------------------------------------------------------------------


def get_genesis_state(target: Target) -> LedgerState:
    """§Accounts: every genesis validator's stake is bonded at epoch 0; nothing else exists."""
    accounts = {v.key: Account(bonded=v.stake) for v in target.validators}
    return LedgerState(target=target.cid, genesis_stake=target.total_genesis_stake,
                       accounts=accounts, head=target.cid)


def get_commit_epoch(target: Target, commit: Commit, previous_epoch: int) -> int:
    """§Epochs: a final commit's epoch is `target.epoch_at(commit.time_ms)`, but never earlier
    than the previous final commit's (nor than 0, the genesis epoch): the ledger's clock does not
    run backwards."""
    return max(previous_epoch, target.epoch_at(commit.time_ms))


def get_chain_epochs(target: Target, chain: Iterable[Commit]) -> list[int]:
    """§Epochs: the epochs of the genesis (0) and of each final commit, in chain order."""
    epochs = [0]
    for commit in chain:
        epochs.append(get_commit_epoch(target, commit, epochs[-1]))
    return epochs


def get_account(state: LedgerState, key: bytes) -> Account:
    """The stored account of `key`, created empty on first use."""
    account = state.accounts.get(key)
    if account is None:
        account = state.accounts[key] = Account()
    return account


def credit_free(state: LedgerState, key: bytes, amount: int) -> None:
    """Add `amount` to `key`'s free balance (creating the account); zero changes nothing."""
    if amount > 0:
        get_account(state, key).free += amount


def process_epoch(state: LedgerState, epoch: int) -> None:
    """§Epochs: move the ledger's clock to `epoch` (never back). Pending bonds whose effective
    epoch is ≤ `epoch` become bonded; unbonding stake whose release epoch is ≤ `epoch` becomes
    free. This happens before anything else of that epoch."""
    if epoch <= state.epoch:
        return  # delays are at least one epoch, so nothing new can mature at the same epoch
    state.epoch = epoch
    for account in state.accounts.values():
        if account.pending:
            matured = [e for e in account.pending if e.epoch <= state.epoch]
            if matured:
                account.bonded += sum(e.amount for e in matured)
                account.pending = [e for e in account.pending if e.epoch > state.epoch]
        if account.unbonding:
            released = [e for e in account.unbonding if e.epoch <= state.epoch]
            if released:
                account.free += sum(e.amount for e in released)
                account.unbonding = [e for e in account.unbonding if e.epoch > state.epoch]


# ---------------------------------------------------------------------------------------------
# Stake transactions
# ---------------------------------------------------------------------------------------------


def get_tx_failure(account: Account, tx: StakeTx) -> TxStatus | None:
    """§Stake transactions: why `tx` cannot be applied to `account`, or None.

    The nonce must be the account's next one. A bond needs a free balance ≥ amount; an unbond
    needs unlocked bonded stake (bonded − locked, pending bonds excluded) ≥ amount.
    """
    if tx.nonce != account.nonce:
        return TxStatus.BAD_NONCE
    if tx.op == "bond" and account.free < tx.amount:
        return TxStatus.INSUFFICIENT_FREE
    if tx.op == "unbond" and account.bonded - account.locked < tx.amount:
        return TxStatus.INSUFFICIENT_UNLOCKED
    return None


def process_stake_tx(state: LedgerState, tx: StakeTx, epoch: int,
                     params: ContractParams) -> TxStatus:
    """§Stake transactions: apply one transaction of a final commit of `epoch`.

    A transaction with the account's next nonce consumes that nonce whether or not its balance
    check passes (so whether it applied never changes which transactions follow it); any other
    nonce is a no-op. A bond moves `amount` from free to a pending bond effective at
    `epoch + bond_delay_epochs`; an unbond moves it from bonded to unbonding, released at
    `epoch + unbond_delay_epochs`. A bond by an ejected account is slashed at its ejection rate
    and the rest unbonds at once (§Slashing: ejection is permanent).
    """
    account = get_account(state, tx.account)
    failure = get_tx_failure(account, tx)
    if failure is not TxStatus.BAD_NONCE:
        account.nonce += 1
    if failure is not None:
        return failure
    if tx.op == "unbond":
        account.bonded -= tx.amount
        account.unbonding.append(Entry(tx.amount, epoch + params.unbond_delay_epochs))
        return TxStatus.APPLIED
    account.free -= tx.amount
    if not account.ejected:
        account.pending.append(Entry(tx.amount, epoch + params.bond_delay_epochs))
        return TxStatus.APPLIED
    slashed = tx.amount * account.ejection_ppm // PPM
    if tx.amount > slashed:
        account.unbonding.append(Entry(tx.amount - slashed, epoch + params.unbond_delay_epochs))
    state.burned += slashed
    state.slashes.append(Slash(tx.account, REASON_BOND_AFTER_EJECTION, epoch, slashed, (),
                               slashed, tx.cid))
    return TxStatus.APPLIED_EJECTED


# ---------------------------------------------------------------------------------------------
# Stake snapshot
# ---------------------------------------------------------------------------------------------


def get_effective_stake(account: Account, epoch: int) -> int:
    """§Stake snapshot: bonded stake (locked included) plus pending bonds effective by
    `epoch`; 0 for an ejected account."""
    if account.ejected:
        return 0
    return account.bonded + sum(e.amount for e in account.pending if e.epoch <= epoch)


def get_stake_snapshot(state: LedgerState, epoch: int,
                       excluded: Iterable[bytes] = ()) -> dict[bytes, int]:
    """§Stake snapshot: every account's effective stake at `epoch`, leaving out ejected accounts,
    the `excluded` keys and zero stakes. Keys in ascending byte order."""
    skip = set(excluded)
    snapshot = {}
    for key in sorted(state.accounts):
        stake = get_effective_stake(state.accounts[key], epoch)
        if stake > 0 and key not in skip:
            snapshot[key] = stake
    return snapshot


def get_total_stake(snapshot: Mapping[bytes, int]) -> int:
    """The total active stake of a snapshot."""
    return sum(snapshot.values())


"""The devnet's outcome: the final table, and whether the run is done.

Pure functions over JSON in the HTTP API's shapes (see ``Outcome``): ``build_summary`` reads
what the network decided, ``render_summary`` draws it, ``check_done`` says whether everything
the demo promises has happened — every patch published and resolved, the Byzantine verifier
slashed, every node on the same final head with the same balances — or lists, in words, what is
still missing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from protocol.constants import PPM
from protocol.objects import REJECTING_RESULTS

from .progress import ratio_text, short

REASON_WORDS = {
    "gate_failed": "failed the gate",
    "build_failed": "did not build",
    "scope_violation": "changed files outside the writable scope",
    "timeout": "ran out of time",
    "not_improved": "not measurably faster",
    "improved": "faster",
}


@dataclass
class Outcome:
    """Everything the summary needs, as the API returns it (plus who is who)."""

    target: str
    chain: dict
    """``GET /v1/targets/{t}/chain`` of the reference node."""
    dag: list[dict]
    """``GET /v1/targets/{t}/dag`` nodes of the reference node (the target included or not)."""
    stakes: dict
    """``GET /v1/targets/{t}/stakes`` of the reference node."""
    heads: dict[str, dict | None]
    """Node name -> ``GET /v1/targets/{t}/heads`` (None: the node did not answer)."""
    attestations: dict[str, list[dict]]
    """Commit CID -> ``GET /v1/commits/{cid}/attestations``, for commits not on the chain."""
    names: dict[str, str]
    """Public key (hex) -> node name."""
    honest: tuple[str, ...]
    """Public keys (hex) of the honest verifiers."""
    byzantine: str
    """Public key (hex) of the Byzantine verifier."""
    hostile: dict[str, dict] = field(default_factory=dict)
    """Hostile commit CID -> {patch, expect, threat}."""
    hostile_expected: int = 0
    """How many hostile commits the adversary meant to submit."""
    proposers_idle: dict[str, bool] = field(default_factory=dict)
    """Proposer name -> whether it has worked through all its patches."""
    experiments: dict[str, list[dict]] = field(default_factory=dict)
    """Proposer name -> its experiment log rows (proposer/log.py), oldest first."""
    description: str = ""
    ledgers: dict[str, str | None] = field(default_factory=dict)
    """Node name -> ``ledger_fingerprint`` of its own ``/stakes`` answer (None: no answer)."""


def ledger_fingerprint(stakes: Mapping) -> str:
    """What must be identical on every honest node once they share a final head (pure): every
    account's balances, the slashes, the rewards, and what was minted and burned. The node's
    clock epoch is left out (it is local time, not ledger state)."""
    def rows(key: str) -> list[str]:
        return sorted(json.dumps(row, sort_keys=True) for row in stakes.get(key) or [])
    return json.dumps({"accounts": rows("accounts"), "slashes": rows("slashes"),
                       "rewards": rows("rewards"), "minted": stakes.get("minted"),
                       "burned": stakes.get("burned"),
                       "ledger_epoch": stakes.get("ledger_epoch")}, sort_keys=True)


@dataclass(frozen=True)
class ChainRow:
    cid: str
    message: str
    author: str
    ratio_ppm: int | None
    cumulative_ppm: int
    final: bool


@dataclass(frozen=True)
class HeldRow:
    """A commit that is not on the canonical chain, and why."""

    cid: str
    message: str
    author: str
    status: str
    verdicts: dict[str, int]
    """Honest verifiers' verdicts: result -> how many."""
    patch: str = ""
    expect: str = ""


@dataclass(frozen=True)
class ExperimentRow:
    """One patch a proposer tried before publishing anything (its own experiment log)."""

    proposer: str
    patch: str
    status: str
    """keep (published), discard, skipped, crash, gate_failed, scope_violation."""
    ratio_ppm: int | None
    lo_ppm: int | None
    hi_ppm: int | None
    detail: str


@dataclass(frozen=True)
class SlashRow:
    offender: str
    reason: str
    amount: int
    epoch: int


@dataclass(frozen=True)
class AccountRow:
    name: str
    proposer_rewards: int
    verifier_rewards: int
    free: int
    bonded: int
    ejected: bool


@dataclass
class Summary:
    chain: list[ChainRow]
    speedup: float
    held: list[HeldRow]
    slashes: list[SlashRow]
    accounts: list[AccountRow]
    heads: dict[str, tuple[str, str] | None]
    description: str = ""
    experiments: list[ExperimentRow] = field(default_factory=list)
    ledgers: dict[str, str | None] = field(default_factory=dict)

    @property
    def same_balances(self) -> bool:
        """Every node answered and all report the same ledger (``ledger_fingerprint``)."""
        values = list(self.ledgers.values())
        return bool(values) and None not in values and len(set(values)) == 1

    @property
    def same_final_head(self) -> bool:
        """Every node answered, all report the same head, and that head is final."""
        values = list(self.heads.values())
        return bool(values) and all(v is not None and v[0] == v[1] for v in values) and \
            len({v for v in values}) == 1


def latest_verdicts(attestations: Sequence[dict], commit: str,
                    verifiers: Sequence[str] | None = None) -> dict[str, str]:
    """Verifier key -> the result of its latest (highest seq) verdict on ``commit`` (pure)."""
    latest: dict[str, tuple[int, str]] = {}
    for att in attestations:
        verdict = att.get("verdict")
        if not verdict or verdict.get("commit") != commit:
            continue
        key = att.get("verifier", "")
        if verifiers is not None and key not in verifiers:
            continue
        if key not in latest or att.get("seq", 0) > latest[key][0]:
            latest[key] = (att.get("seq", 0), verdict.get("result", ""))
    return {key: result for key, (_, result) in latest.items()}


def _count(results: Mapping[str, str]) -> dict[str, int]:
    return dict(sorted(Counter(results.values()).items()))


def build_summary(o: Outcome) -> Summary:
    name = lambda key: o.names.get(key, key[:10] if key else "?")  # noqa: E731
    chain = [ChainRow(cid=s["cid"], message=s.get("message", ""), author=name(s.get("author")),
                      ratio_ppm=s.get("ratio_ppm"), cumulative_ppm=s.get("cumulative_ppm", PPM),
                      final=bool(s.get("final")))
             for s in o.chain.get("steps", []) if s.get("cid") != o.target]
    on_chain = {row.cid for row in chain}
    held = []
    for node in o.dag:
        cid = node.get("cid")
        if cid == o.target or cid in on_chain:
            continue
        verdicts = latest_verdicts(o.attestations.get(cid, []), cid, o.honest)
        info = o.hostile.get(cid, {})
        held.append(HeldRow(cid=cid, message=node.get("message", ""),
                            author=name(node.get("author")), status=node.get("status", ""),
                            verdicts=_count(verdicts), patch=info.get("patch", ""),
                            expect=info.get("expect", "")))
    slashes = [SlashRow(offender=name(s.get("offender")), reason=s.get("reason", ""),
                        amount=int(s.get("amount", 0)), epoch=int(s.get("epoch", 0)))
               for s in o.stakes.get("slashes", [])]
    rewards: dict[str, list[int]] = {}
    for reward in o.stakes.get("rewards", []):
        slot = rewards.setdefault(reward.get("account", ""), [0, 0])
        slot[0 if reward.get("kind") == "proposer" else 1] += int(reward.get("amount", 0))
    accounts = []
    seen = set()
    for account in o.stakes.get("accounts", []):
        key = account.get("key", "")
        seen.add(key)
        proposer, verifier = rewards.get(key, (0, 0))
        accounts.append(AccountRow(name(key), proposer, verifier, int(account.get("free", 0)),
                                   int(account.get("bonded", 0)), bool(account.get("ejected"))))
    for key, (proposer, verifier) in rewards.items():
        if key not in seen:
            accounts.append(AccountRow(name(key), proposer, verifier, 0, 0, False))
    heads = {n: (h.get("head", ""), h.get("finalized", "")) if h else None
             for n, h in o.heads.items()}
    speedup = float(o.chain.get("speedup") or 1.0)
    experiments = [ExperimentRow(proposer=proposer, patch=row.get("patch") or "",
                                 status=row.get("status", ""), ratio_ppm=row.get("ratio_ppm"),
                                 lo_ppm=row.get("lo_ppm"), hi_ppm=row.get("hi_ppm"),
                                 detail=row.get("detail") or "")
                   for proposer, rows in o.experiments.items() for row in rows]
    return Summary(chain=chain, speedup=speedup, held=held, slashes=slashes,
                   accounts=accounts, heads=heads, description=o.description,
                   experiments=experiments, ledgers=dict(o.ledgers))


def _verdict_text(verdicts: Mapping[str, int]) -> str:
    if not verdicts:
        return "no verdict yet"
    return ", ".join(f"{n}× {result}" for result, n in verdicts.items())


def why(row: HeldRow) -> str:
    """What kept a commit off the chain, in words (pure): the failure most honest verifiers
    reported, else their most common verdict."""
    if not row.verdicts:
        return "waiting for verdicts"
    rejecting = {r: n for r, n in row.verdicts.items() if r in REJECTING_RESULTS}
    pool = rejecting or row.verdicts
    main = max(sorted(pool), key=pool.get)
    if main == "improved" and row.status in ("pending", "rejected"):
        return f"faster, but stacked on a commit that is {row.status} itself"
    if row.status in ("accepted", "final"):
        return "faster, on a branch fork choice did not pick"
    return REASON_WORDS.get(main, main)


class _Rows:
    """A table whose narrow columns keep their full width and whose wide ones (``change``,
    ``outcome``) give way: one line per row in ``change``, ``outcome`` wraps."""

    WIDE = ("change", "outcome")
    RIGHT = ("#", "speed-up", "amount", "free", "bonded", "proposer", "verifier")

    def __init__(self, title: str, *columns: str, change_width: int = 30) -> None:
        self.title, self.columns, self.rows = title, columns, []
        self.change_width = change_width

    def add_row(self, *cells) -> None:
        self.rows.append(cells)

    def table(self, caption: str | None = None) -> Table:
        table = Table(title=self.title, title_justify="left", box=box.SIMPLE_HEAD,
                      pad_edge=False, title_style="bold", caption=caption)
        for index, column in enumerate(self.columns):
            width = max([len(column), *(Text(c).cell_len if isinstance(c, str)
                                         else c.cell_len for c in
                                         (row[index] for row in self.rows))])
            wide = column in self.WIDE
            table.add_column(column, no_wrap=column != "outcome", overflow="ellipsis",
                             min_width=None if wide else width,
                             max_width=self.change_width if column == "change" else None,
                             justify="right" if column in self.RIGHT else "left")
        for row in self.rows:
            table.add_row(*row)
        return table


def _first_line(text: str, limit: int = 70) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"


def render_summary(s: Summary) -> Group:
    """The final tables (pure)."""
    parts: list = []
    chain = _Rows("Canonical chain: improvements verified by stake-weighted attestations",
                  "#", "commit", "by", "change", "Δ time", "speed-up", "",
                  change_width=22)
    for index, row in enumerate(s.chain, 1):
        chain.add_row(str(index), short(row.cid, 8), row.author, _first_line(row.message),
                      ratio_text(row.ratio_ppm),
                      f"{PPM / row.cumulative_ppm:.2f}×" if row.cumulative_ppm else "",
                      Text("final", "bold green") if row.final else Text("accepted", "green"))
    if not s.chain:
        chain.add_row("", "", "", "no improvement accepted", "", "", "")
    parts.append(chain.table())
    parts.append(Text(f"Cumulative verified speed-up: {s.speedup:.2f}×"
                      + (f" ({s.description})" if s.description else ""), "bold"))

    if s.experiments:
        tried = _Rows("The proposers' own experiments, before publishing (same pipeline, "
                      "their own measurement)", "proposer", "patch", "result", "outcome")
        for row in s.experiments:
            measured = ""
            if row.ratio_ppm:
                measured = (f"{ratio_text(row.ratio_ppm)} "
                            f"[{ratio_text(row.lo_ppm)}, {ratio_text(row.hi_ppm)}]")
            outcome = {"keep": "published", "discard": "discarded: not faster",
                       "skipped": row.detail}.get(row.status, row.status)
            tried.add_row(row.proposer, row.patch.split("-")[0], measured,
                          Text(outcome, "green" if row.status == "keep" else "yellow"))
        parts.append(tried.table())

    held = _Rows("Not on the chain, and why (the honest verifiers' verdicts)",
                 "commit", "by", "change", "outcome")
    for row in s.held:
        label = _first_line(row.message, 50)
        if row.patch:
            label += f" [{row.patch.split('-')[0]}]"
        style = "red" if row.status == "rejected" else "yellow"
        outcome = Text(f"{row.status}: ", style)
        outcome.append(why(row))
        outcome.append(f" ({_verdict_text(row.verdicts)})", "dim")
        held.add_row(short(row.cid, 8), row.author, label, outcome)
    if not s.held:
        held.add_row("", "", "every commit is on the chain", "")
    parts.append(held.table())

    slashed = _Rows("Slashed", "verifier", "reason", "amount", "epoch")
    for slash in s.slashes:
        slashed.add_row(slash.offender, slash.reason.replace("_", " "), str(slash.amount),
                        str(slash.epoch))
    if not s.slashes:
        slashed.add_row("nobody yet", "", "", "")
    parts.append(slashed.table())

    accounts = _Rows("Stake and rewards", "account", "proposer", "verifier", "free",
                     "bonded", "")
    for row in s.accounts:
        accounts.add_row(row.name, str(row.proposer_rewards), str(row.verifier_rewards),
                         str(row.free), str(row.bonded), "ejected" if row.ejected else "")
    parts.append(accounts.table(caption="proposer / verifier: rewards minted by final "
                                        "commits"))

    heads = _Rows("Nodes", "node", "head", "finalized")
    for node, value in s.heads.items():
        heads.add_row(node, *(short(v) for v in value) if value else ("no answer", ""))
    parts.append(heads.table())
    if s.same_final_head:
        final = next(iter(s.heads.values()))[1]
        parts.append(Text(f"All {len(s.heads)} nodes share the final head {short(final)}.",
                          "bold green"))
    else:
        parts.append(Text("The nodes do not (yet) share one final head.", "bold yellow"))
    if s.same_balances:
        parts.append(Text(f"All {len(s.ledgers)} nodes report the same balances, slashes and "
                          "rewards.", "bold green"))
    elif s.ledgers:
        parts.append(Text("The nodes do not (yet) report the same balances.", "bold yellow"))
    return Group(*parts)


# --- done? -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    ok: bool
    missing: tuple[str, ...]


def unresolved(o: Outcome) -> list[str]:
    """Commits still waiting: pending ones some honest verifier has not given a verdict on."""
    waiting = []
    for node in o.dag:
        cid = node.get("cid")
        if cid == o.target or node.get("status") != "pending":
            continue
        given = latest_verdicts(o.attestations.get(cid, []), cid, o.honest)
        if len(given) < len(o.honest):
            waiting.append(cid)
    return waiting


def hostile_dealt_with(o: Outcome) -> bool:
    """Every hostile commit the adversary meant to submit is known and resolved (pure)."""
    present = {n.get("cid") for n in o.dag} & set(o.hostile)
    return len(present) >= o.hostile_expected and not present & set(unresolved(o))


def check_done(o: Outcome) -> Done:
    """Whether the demo has shown everything it promises; if not, what is missing (pure)."""
    missing: list[str] = []
    busy = sorted(n for n, idle in o.proposers_idle.items() if not idle)
    if busy:
        missing.append(f"{' and '.join(busy)} still working through "
                       f"{'its' if len(busy) == 1 else 'their'} patches")
    hostile_seen = sum(1 for n in o.dag if n.get("cid") in o.hostile)
    if hostile_seen < o.hostile_expected:
        missing.append(f"only {hostile_seen} of {o.hostile_expected} hostile commits reached "
                       "the reference node")
    waiting = unresolved(o)
    if waiting:
        missing.append(f"{len(waiting)} commit(s) still waiting for honest verdicts: "
                       f"{', '.join(short(c) for c in waiting[:5])}")
    steps = [s for s in o.chain.get("steps", []) if s.get("cid") != o.target]
    if not steps:
        missing.append("no improvement accepted on the canonical chain")
    slashed = {s.get("offender") for s in o.stakes.get("slashes", [])}
    if o.byzantine and o.byzantine not in slashed:
        missing.append(f"the Byzantine verifier ({o.names.get(o.byzantine, 'byzantine')}) "
                       "not slashed yet")
    silent = sorted(n for n, h in o.heads.items() if h is None)
    if silent:
        missing.append(f"no answer from {', '.join(silent)}")
    answered = {n: (h.get("head"), h.get("finalized")) for n, h in o.heads.items() if h}
    if answered:
        if len(set(answered.values())) > 1:
            missing.append("the nodes disagree on head or finality: " + ", ".join(
                f"{n} {short(h)}/{short(f)}" for n, (h, f) in sorted(answered.items())))
        elif any(h != f for h, f in answered.values()):
            missing.append("the head is not final yet")
    ledgers = {n: v for n, v in o.ledgers.items() if v is not None}
    if len(set(ledgers.values())) > 1:
        groups: dict[str, list[str]] = {}
        for name, value in sorted(ledgers.items()):
            groups.setdefault(value, []).append(name)
        missing.append("the nodes report different balances: " + " | ".join(
            ", ".join(names) for names in sorted(groups.values())))
    return Done(ok=not missing, missing=tuple(missing))

"""Fork-choice benchmark: the proto-array against the reference on one realistic event stream.

    nice .venv/bin/python benchmarks/fork_choice.py            # 100,000 commits, 10,000 verifiers
    nice .venv/bin/python benchmarks/fork_choice.py --commits 5000 --runs 1   # a quick look

The stream (seeded, the same in every run): one commit per slot, built on the latest good
commit (5% on an older one: a fork; 2% merge a recent commit; 3% are broken and rejected). A
committee judges each commit (the 20 largest verifiers, which hold about 37% of the stake, and
10 others), each in an attestation that also carries its head vote. Then 40 verifiers, drawn in
proportion to stake, send vote-only attestations, 80% for the newest good commit and the rest
for one of the five before it. Stakes follow Zipf's law (verifier i holds 1/(i+1) of the
largest stake). Every 10,000 slots a new stake snapshot changes 1% of the stakes and one small
verifier forks its attestation chain (equivocation). The node calls `update_head` every slot.

The proto-array runs the whole stream `--runs` times; figures are the median over runs. The
reference is fed the same events once (its handlers only record them, so the per-vote figure
is cheap), but recomputes everything per head: its head computation is timed a few times on the
full store, seeded with the proto-array's finalized commit (the one piece of state the reference
derives from history), and must reach the same head.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dag.fork_choice import (
    Attestation,
    Commit,
    CommitId,
    ProtoArrayForkChoice,
    SpecForkChoice,
    Verdict,
    VerdictClaim,
    VerifierId,
)
from dag.fork_choice.spec import get_head

GENESIS = hashlib.sha256(b"target").digest()
LARGEST_STAKE = 10**12  # stake units of verifier 0; verifier i holds LARGEST_STAKE // (i + 1)
COMMITTEE_LARGEST = 20  # the largest verifiers judge every commit ...
COMMITTEE_OTHERS = 10  # ... with this many others drawn uniformly
VOTES_PER_SLOT = 40  # vote-only attestations per slot, senders drawn in proportion to stake
FORK_PERCENT, MERGE_PERCENT, BROKEN_PERCENT = 5, 2, 3  # of commits
EPOCH_SLOTS = 10_000  # slots between stake snapshots
RESTAKED_PERCENT = 1  # of verifiers whose stake changes at each snapshot
RECENT_GOOD = 6  # how far back forks, merges and stale votes reach (commits)


@dataclass
class Slot:
    """The events of one slot, in order: the commit, its verdicts, the votes, maybe stakes."""

    commit: Commit
    verdicts: list[Attestation]
    votes: list[Attestation]
    stakes: dict[VerifierId, int] | None = None


@dataclass
class Stream:
    """A seeded generator of slots; it knows which commits are good, not what fork choice says."""

    verifiers: int
    seed: int
    offline_percent: int = 0
    rng: random.Random = field(init=False)
    ids: list[VerifierId] = field(init=False)
    stakes: dict[VerifierId, int] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.ids = [hashlib.sha256(b"verifier %d" % i).digest() for i in range(self.verifiers)]
        self.stakes = {v: LARGEST_STAKE // (i + 1) for i, v in enumerate(self.ids)}
        self._seq = [0] * self.verifiers
        self._last_id: list[bytes] = [b""] * self.verifiers
        self._attestations = 0
        self._offline: set[int] = set()  # never attest: holds finality back when >= 1/3
        total, offline_stake = sum(self.stakes.values()), 0
        for who in range(COMMITTEE_LARGEST, self.verifiers):
            if 100 * offline_stake >= self.offline_percent * total:
                break
            self._offline.add(who)
            offline_stake += self.stakes[self.ids[who]]
        self._online_others = [
            who for who in range(COMMITTEE_LARGEST, self.verifiers) if who not in self._offline
        ]

    def _vote_weights(self) -> list[int]:
        """Cumulative stakes for drawing voters, offline verifiers weighing nothing."""
        return list(
            itertools.accumulate(
                0 if who in self._offline else self.stakes[v] for who, v in enumerate(self.ids)
            )
        )

    def _attestation(
        self, who: int, head: CommitId, claim: VerdictClaim | None = None
    ) -> Attestation:
        self._seq[who] += 1
        self._attestations += 1
        attestation_id = self._attestations.to_bytes(8, "big")
        self._last_id[who] = attestation_id
        return Attestation(attestation_id, self.ids[who], self._seq[who], head, claim)

    def slots(self, commits: int) -> Iterator[Slot]:
        rng = self.rng
        good = [GENESIS]
        weights = self._vote_weights()
        for number in range(1, commits + 1):
            first = good[-1]
            if len(good) > 1 and rng.randrange(100) < FORK_PERCENT:
                first = rng.choice(good[-RECENT_GOOD:-1])
            parents = (first,)
            others = [c for c in good[-RECENT_GOOD:] if c != first]
            if others and rng.randrange(100) < MERGE_PERCENT:
                parents = (first, rng.choice(others))
            commit = Commit(hashlib.sha256(b"commit %d" % number).digest(), parents)
            broken = rng.randrange(100) < BROKEN_PERCENT
            committee = list(range(COMMITTEE_LARGEST)) + rng.sample(
                self._online_others, COMMITTEE_OTHERS
            )
            verdicts = []
            for who in committee:
                if broken:
                    kind, ratio = Verdict.GATE_FAILED, 0
                elif who < COMMITTEE_LARGEST or rng.randrange(10) < 8:
                    kind, ratio = Verdict.IMPROVED, rng.randrange(900_000, 990_000)
                else:
                    kind, ratio = rng.choice([Verdict.NOT_IMPROVED, Verdict.TIMEOUT]), 1_000_000
                claim = VerdictClaim(commit.id, first, kind, ratio)
                verdicts.append(self._attestation(who, good[-1], claim))
            if not broken:
                good.append(commit.id)
                del good[: -RECENT_GOOD - 1]
            votes = []
            for who in rng.choices(range(self.verifiers), cum_weights=weights, k=VOTES_PER_SLOT):
                head = good[-1] if rng.randrange(10) < 8 else rng.choice(good[-RECENT_GOOD:])
                votes.append(self._attestation(who, head))
            stakes = None
            if number % EPOCH_SLOTS == 0:
                stakes = dict(self.stakes)
                for verifier in rng.sample(self.ids, self.verifiers * RESTAKED_PERCENT // 100):
                    stakes[verifier] = stakes[verifier] * rng.randrange(90, 111) // 100
                self.stakes = stakes
                weights = self._vote_weights()
                who = rng.choice(self._online_others[len(self._online_others) // 2 :])
                if self._seq[who]:  # a second attestation with its latest seq: equivocation
                    fork_id = b"fork" + self._last_id[who]
                    votes.append(Attestation(fork_id, self.ids[who], self._seq[who], head))
            yield Slot(commit, verdicts, votes, stakes)


@dataclass
class Timings:
    """Seconds spent per kind of event, and one entry per head computation."""

    commits: float = 0.0
    verdict_attestations: float = 0.0
    vote_attestations: float = 0.0
    stake_changes: list[float] = field(default_factory=list)
    heads: list[float] = field(default_factory=list)
    reference_feed: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("verdict", "vote"), 0))


def run_proto_array(
    args: argparse.Namespace, reference: SpecForkChoice | None
) -> tuple[Timings, ProtoArrayForkChoice]:
    """Replays the stream into a fresh proto-array (and, when given, the reference's handlers,
    timed apart), calling `update_head` every slot."""
    stream = Stream(args.verifiers, args.seed, args.offline_percent)
    proto = ProtoArrayForkChoice(GENESIS, stream.stakes)
    timings = Timings()
    clock = time.perf_counter
    for slot in stream.slots(args.commits):
        start = clock()
        proto.add_commit(slot.commit)
        middle = clock()
        for attestation in slot.verdicts:
            proto.add_attestation(attestation)
        end = clock()
        timings.commits += middle - start
        timings.verdict_attestations += end - middle
        start = clock()
        for attestation in slot.votes:
            proto.add_attestation(attestation)
        timings.vote_attestations += clock() - start
        timings.counts["verdict"] += len(slot.verdicts)
        timings.counts["vote"] += len(slot.votes)
        if slot.stakes is not None:
            start = clock()
            proto.set_stakes(slot.stakes)
            timings.stake_changes.append(clock() - start)
        start = clock()
        proto.update_head()
        timings.heads.append(clock() - start)
        if reference is not None:
            feed_reference(reference, slot, timings)
    return timings, proto


def feed_reference(reference: SpecForkChoice, slot: Slot, timings: Timings) -> None:
    """The reference's event handlers only record events; their time is kept apart."""
    start = time.perf_counter()
    reference.add_commit(slot.commit)
    for attestation in slot.verdicts:
        reference.add_attestation(attestation)
    for attestation in slot.votes:
        reference.add_attestation(attestation)
    if slot.stakes is not None:
        reference.set_stakes(slot.stakes)
    timings.reference_feed += time.perf_counter() - start


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--verifiers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reference-heads", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--offline-percent",
        type=int,
        default=0,
        help="share of the stake that never attests (>= 34 stalls finality: the worst case)",
    )
    args = parser.parse_args()
    print(f"$ python {' '.join(sys.argv)}")
    print(
        f"stream: {args.commits:,} commits, {args.verifiers:,} verifiers, seed {args.seed}, "
        f"{args.offline_percent}% of the stake offline; "
        f"proto-array: median of {args.runs} runs; Python {sys.version.split()[0]}"
    )

    reference = SpecForkChoice(GENESIS, Stream(args.verifiers, args.seed).stakes)
    runs: list[Timings] = []
    for run in range(args.runs):
        gc.collect()
        timings, proto = run_proto_array(args, reference if run == 0 else None)
        runs.append(timings)
        print(
            f"  run {run + 1}: {vote_us(timings):.2f} µs per vote, "
            f"{verdict_us(timings):.2f} µs per verdict, "
            f"{1e3 * statistics.fmean(timings.heads):.3f} ms per head"
        )
    reference.store.finalized = proto.finalized
    reference_heads = []
    for _ in range(args.reference_heads):
        start = time.perf_counter()
        head = get_head(reference.store)
        reference_heads.append(time.perf_counter() - start)
        assert head == proto.head, "the reference and the proto-array disagree"

    chain = proto.canonical_chain()
    print(
        f"outcome: head at height {len(chain) - 1:,}, finalized at height "
        f"{chain.index(proto.finalized):,}, "
        f"{len(proto.accepted()):,} accepted, {len(proto.rejected()):,} rejected, "
        f"{len(proto.equivocators())} equivocators"
    )
    print("the reference, seeded with that finalized commit, computes the same head")

    def median(figure: Callable[[Timings], float]) -> float:
        return statistics.median(figure(timings) for timings in runs)

    first = runs[0]
    attestations = first.counts["vote"] + first.counts["verdict"]
    rows = [
        ("µs per vote-only attestation", f"{median(vote_us):.2f}", ""),
        ("µs per attestation with a verdict", f"{median(verdict_us):.2f}", ""),
        (
            "µs per attestation, all (reference: recorded only)",
            f"{median(all_us):.2f}",
            f"{1e6 * first.reference_feed / attestations:.2f}",
        ),
        (
            "ms per head computation, mean",
            f"{median(lambda t: 1e3 * statistics.fmean(t.heads)):.3f}",
            f"{1e3 * statistics.median(reference_heads):,.0f} "
            f"(full store, {len(reference_heads)} heads)",
        ),
        (
            "ms per head computation, p99 / max",
            f"{median(lambda t: 1e3 * percentile(t.heads, 0.99)):.3f} / "
            f"{median(lambda t: 1e3 * max(t.heads)):.2f}",
            "",
        ),
    ]
    if first.stake_changes:
        rows.append(
            (
                "ms per stake snapshot change (median)",
                f"{median(lambda t: 1e3 * statistics.median(t.stake_changes)):.1f}",
                "",
            )
        )
    width = max(len(label) for label, _, _ in rows)
    print(f"\n{'':{width}}  {'proto-array':>16}  {'reference':>30}")
    for label, proto_figure, reference_figure in rows:
        print(f"{label:{width}}  {proto_figure:>16}  {reference_figure:>30}")
    return 0


def vote_us(timings: Timings) -> float:
    return 1e6 * timings.vote_attestations / timings.counts["vote"]


def verdict_us(timings: Timings) -> float:
    return 1e6 * timings.verdict_attestations / timings.counts["verdict"]


def all_us(timings: Timings) -> float:
    spent = timings.vote_attestations + timings.verdict_attestations
    return 1e6 * spent / (timings.counts["vote"] + timings.counts["verdict"])


if __name__ == "__main__":
    sys.exit(main())

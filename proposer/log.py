"""The experiment log: one JSON line per iteration, appended and flushed as it happens.

A row says what was tried (description, hypothesis, patch, diff), on what (parent CID), what it
produced (tree CID, and the commit CID when kept), how it went (status, the pipeline's result,
ratio and interval, detail), and what it cost (tokens, dollars, seconds). Together with the
memory file it lets a fresh run resume: the last kept commit is the base, the iteration count
goes on, patches already tried are not tried again.

Statuses: ``keep`` (improved: signed and published), ``discard`` (measured, not improved),
``gate_failed`` (wrong output: the gate or the benchmark's own check failed), ``scope_violation``,
``crash`` (did not build, timed out, or the strategy or evaluation failed) and ``skipped``
(nothing evaluated: a patch that does not apply, a duplicate).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from protocol.constants import PPM

KEEP = "keep"
DISCARD = "discard"
CRASH = "crash"
GATE_FAILED = "gate_failed"
SCOPE_VIOLATION = "scope_violation"
SKIPPED = "skipped"
STATUSES = (KEEP, DISCARD, CRASH, GATE_FAILED, SCOPE_VIOLATION, SKIPPED)

NEAR_MISS_PPM = 15_000
"""A discarded experiment whose ratio is within 1.5 % of its parent is a near-miss."""
MAX_DIFF_CHARS = 20_000
MAX_DETAIL_CHARS = 2_000


@dataclass
class Row:
    iteration: int
    status: str
    parent: str
    time_ms: int
    strategy: str = ""
    tree: str | None = None
    """CID of the candidate's commit tree (its writable scope)."""
    commit: str | None = None
    result: str | None = None
    """The pipeline's verdict (improved, not_improved, gate_failed, ...), None if not evaluated."""
    ratio_ppm: int | None = None
    lo_ppm: int | None = None
    hi_ppm: int | None = None
    pairs: int | None = None
    detail: str = ""
    description: str = ""
    hypothesis: str = ""
    patch: str | None = None
    patch_sha256: str | None = None
    expected: str | None = None
    """What a patch's ``Expect`` header predicted."""
    diff: str = ""
    tokens: dict = field(default_factory=dict)
    cost_usd: float = 0.0
    eval_s: float = 0.0
    refused_edits: int = 0

    @property
    def evaluated(self) -> bool:
        return self.status != SKIPPED and self.tree is not None

    @property
    def ratio(self) -> float | None:
        return None if self.ratio_ppm is None else self.ratio_ppm / PPM

    def is_near_miss(self, within_ppm: int = NEAR_MISS_PPM) -> bool:
        return (self.status == DISCARD and self.ratio_ppm is not None
                and self.ratio_ppm <= PPM + within_ppm)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Row:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class ExperimentLog:
    """An append-only JSONL file of `Row`s."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def rows(self) -> list[Row]:
        """Every row; a torn last line (a crash mid-write) is ignored."""
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                rows.append(Row.from_json(json.loads(line)))
            except (ValueError, TypeError):
                continue
        return rows

    def append(self, row: Row) -> None:
        row.diff = row.diff[:MAX_DIFF_CHARS]
        row.detail = row.detail[:MAX_DETAIL_CHARS]
        line = json.dumps(row.to_json(), sort_keys=True) + "\n"
        with open(self.path, "a") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())


def near_misses(rows: list[Row], within_ppm: int = NEAR_MISS_PPM) -> list[Row]:
    return [r for r in rows if r.is_near_miss(within_ppm)]


def running_best(rows: list[Row]) -> list[tuple[int, float]]:
    """(iteration, best speed-up so far) after each evaluated row.

    A kept commit's speed-up over the run's start is its parent's times 1/ratio; a parent the
    log does not know (the start of the run, a head it rebased onto) counts as 1.0.
    """
    speedup_of: dict[str, float] = {}
    best = 1.0
    out = []
    for row in rows:
        if not row.evaluated:
            continue
        if row.status == KEEP and row.commit and row.ratio_ppm:
            speedup_of[row.commit] = speedup_of.get(row.parent, 1.0) * PPM / row.ratio_ppm
            best = max(best, speedup_of[row.commit])
        out.append((row.iteration, best))
    return out


def summarize(rows: list[Row]) -> str:
    """A plain-text summary of a run (``poi propose --log``)."""
    if not rows:
        return "no experiments logged yet"
    counts = Counter(r.status for r in rows)
    tokens = sum(sum(v for k, v in r.tokens.items() if k not in ("requests", "retries"))
                 for r in rows)
    cost = sum(r.cost_usd for r in rows)
    best = running_best(rows)
    lines = [
        f"{len(rows)} rows, {sum(r.evaluated for r in rows)} experiments evaluated "
        f"(iterations {rows[0].iteration}–{rows[-1].iteration})",
        "  " + ", ".join(f"{s} {counts[s]}" for s in STATUSES if counts[s]),
        f"  best speed-up over the start: {best[-1][1]:.3f}x" if best else "  nothing evaluated",
        f"  tokens {tokens:,}, cost ${cost:.2f}",
        "kept:",
    ]
    kept = [r for r in rows if r.status == KEEP]
    for r in kept:
        gain = (1 - r.ratio_ppm / PPM) * 100 if r.ratio_ppm else math.nan
        lines.append(f"  #{r.iteration:<4} {gain:+6.2f}%  {(r.commit or '')[:20]}…  "
                     f"{r.description[:70]}")
    if not kept:
        lines.append("  (none)")
    misses = near_misses(rows)
    if misses:
        lines.append("near misses (discarded within 1.5%):")
        for r in misses:
            lines.append(f"  #{r.iteration:<4} ratio {r.ratio_ppm / PPM:.4f}  "
                         f"{r.description[:70]}")
    return "\n".join(lines)

"""The autoresearch loop, independent of the network (DESIGN §9).

    propose (a strategy edits a working copy) → evaluate against the current best with the
    shared verifier pipeline → keep: sign a commit with its claim, publish it at once, make it
    the new best │ otherwise: revert → log the row, update the memory file → repeat

`ProposerLoop.step` is that loop body, readable top to bottom; `run` repeats it until a budget
or the strategy stops. Strategies (`proposer.strategies`) and evaluation (`Evaluator`) sit
behind it. Publication is a callback: the standalone CLI stores the commit (and may POST it to
a node), the node's `ProposerRole` hands it to ``node.publish_own``. When the network's head
moves away from the best, the role calls `rebase` and the next iteration starts from there.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dag.store import Store
from dag.workspace import WorkspaceError, blob_reader, unified_diff
from protocol.cid import CID
from protocol.constants import MAX_MESSAGE_BYTES
from protocol.keys import SigningKey
from protocol.objects import (
    BUILD_FAILED,
    GATE_FAILED,
    IMPROVED,
    NOT_IMPROVED,
    SCOPE_VIOLATION,
    TIMEOUT,
    Blob,
    Claim,
    Commit,
    Target,
    Tree,
)
from verifier.candidates import CandidateError, Workspace, workspace_from_store
from verifier.pipeline import Evaluation, EvaluationError, Pipeline
from verifier.sandbox import SandboxError

from . import log as L
from .budget import Budget, Usage
from .log import ExperimentLog, Row
from .memory import Memory

STATUS_OF_RESULT = {
    IMPROVED: L.KEEP,
    NOT_IMPROVED: L.DISCARD,
    GATE_FAILED: L.GATE_FAILED,
    SCOPE_VIOLATION: L.SCOPE_VIOLATION,
    BUILD_FAILED: L.CRASH,
    TIMEOUT: L.CRASH,
}
MAX_STRATEGY_ERRORS = 3
"""Consecutive strategy failures (API errors after retries) that end a run."""

Publish = Callable[[list], None]
"""Receives [blobs…, tree, commit] (dependencies first) of each kept commit, at once."""


LOG_NAME = "log.jsonl"
"""The experiment log in the work directory (proposer/log.py)."""

class ProposerError(Exception):
    """The loop cannot start or go on; the message says why."""


class StrategyError(Exception):
    """A strategy could not produce a proposal (e.g. the API failed after its retries)."""

    def __init__(self, message: str, *, fatal: bool = False, usage: Usage | None = None):
        super().__init__(message)
        self.fatal = fatal
        self.usage = usage or Usage()


@dataclass
class Base:
    """A commit (or the target itself, the genesis) and its full workspace."""

    commit: CID
    workspace: Workspace


@dataclass
class Proposal:
    """What a strategy proposes: a candidate workspace to evaluate against ``parent``."""

    parent: Base
    candidate: Workspace | None
    description: str
    hypothesis: str = ""
    usage: Usage = field(default_factory=Usage)
    skipped: str | None = None
    """Set when there is nothing to evaluate (a patch that does not apply): the reason."""
    patch: str | None = None
    patch_sha256: str | None = None
    expected: str | None = None
    refused_edits: int = 0
    strategy: str = ""
    """The strategy that made it, when not the loop's own (a queued human patch)."""


class Evaluator(Protocol):
    def evaluate(self, parent: Workspace, candidate: Workspace) -> Evaluation: ...


class Strategy(Protocol):
    name: str

    def propose(self, ctx: Context) -> Proposal | None:
        """Edit a working copy (``ctx.checkout``) and return the proposal; None: nothing left."""

    def observe(self, row: Row) -> None:
        """Learn the outcome of the last proposal."""


@dataclass
class PipelineEvaluator:
    """The shared verifier pipeline with the proposer's number of pairs."""

    pipeline: Pipeline
    pairs: int | None = None
    """None: the target's ``stats.proposer_pairs``."""

    def evaluate(self, parent: Workspace, candidate: Workspace) -> Evaluation:
        pairs = self.pairs or self.pipeline.target.stats.proposer_pairs
        return self.pipeline.evaluate(parent, candidate, pairs=pairs)


@dataclass
class Context:
    """What a strategy sees of the loop in one iteration."""

    iteration: int
    target: Target
    base_tree: Tree
    best: Base
    """The current best: proposals normally build on it."""
    start: Base
    """Where this run started (or last rebased): a patch that does not apply to the best may
    apply here instead (a branch, as in the example's DAG)."""
    history: list[Row]
    memory: Memory
    budget: Budget
    scratch: Path
    checkout: Callable[[Base], Path]
    """Materialise a base into the working copy directory (emptied first); returns it."""
    base_of: Callable[[CID], Base | None]


class ProposerLoop:
    def __init__(self, *, target: Target, base_tree: Tree, store: Store, key: SigningKey,
                 strategy: Strategy, evaluator: Evaluator, work_dir: Path,
                 start: CID | Base | None = None, budget: Budget | None = None,
                 publish: Publish | None = None, resume: bool = True,
                 clock: Callable[[], float] = time.time,
                 on_row: Callable[[Row], None] | None = None) -> None:
        self.target = target
        self.base_tree = base_tree
        self.store = store
        self.key = key
        self.strategy = strategy
        self.evaluator = evaluator
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.budget = budget or Budget()
        self.publish = publish or (lambda objects: store.put_many(objects))
        self.clock = clock
        self.on_row = on_row or (lambda row: None)
        self.log = ExperimentLog(self.work_dir / LOG_NAME)
        self.memory = Memory(self.work_dir / "memory.md", target)
        self.history = self.log.rows()
        self.iteration = max((r.iteration for r in self.history), default=0) + 1
        self._bases: dict[CID, Base] = {}
        self._strategy_errors = 0
        self.stop_reason: str | None = None
        if isinstance(start, Base):  # a workspace the store need not hold (a node's head)
            self._bases[start.commit] = start
            start = start.commit
        start_cid = start or target.cid
        self.start = self._require(start_cid)
        resumed = self._resume_point(start_cid) if resume else None
        self.best = self._require(resumed) if resumed else self.start
        self.resumed_from = resumed

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> str:
        """Repeat `step` until a budget or the strategy stops; returns why it stopped."""
        while (reason := self.budget.stop_reason()) is None:
            if self.step() is None:
                reason = (self.stop_reason or self.budget.stop_reason()
                          or "the strategy has nothing more to propose")
                break
        self.stop_reason = reason
        return reason

    def step(self) -> Row | None:
        """One experiment. Returns its log row, or None when the strategy has nothing left."""
        try:
            proposal = self.strategy.propose(self._context())
        except StrategyError as exc:
            return self._strategy_failed(exc)
        if proposal is None:
            return None
        self._strategy_errors = 0
        if proposal.skipped is None:
            proposal.skipped = self._duplicate(proposal)
        if proposal.skipped is not None:
            return self._record(proposal, L.SKIPPED, detail=proposal.skipped)

        evaluation, status, detail, seconds = self._evaluate(proposal)
        commit = None
        if status == L.KEEP:
            commit = self._sign(proposal, evaluation)
            self.publish(self._objects(commit, proposal.candidate))
            self.best = self._bases[commit.cid] = Base(commit.cid, proposal.candidate)
        return self._record(proposal, status, evaluation=evaluation, detail=detail,
                            commit=commit, seconds=seconds)

    def rebase(self, commit: CID) -> None:
        """Start the next iteration from ``commit`` (the network's new head)."""
        self.best = self.start = self._require(commit)

    # -- the pieces ---------------------------------------------------------------------------
    def _evaluate(self, proposal: Proposal) -> tuple[Evaluation | None, str, str, float]:
        started = time.monotonic()
        try:
            ev = self.evaluator.evaluate(proposal.parent.workspace, proposal.candidate)
        except (EvaluationError, CandidateError, WorkspaceError, SandboxError, OSError) as exc:
            return None, L.CRASH, f"evaluation failed: {exc}", time.monotonic() - started
        status = STATUS_OF_RESULT.get(ev.result, L.CRASH)
        return ev, status, ev.detail, time.monotonic() - started

    def _sign(self, proposal: Proposal, ev: Evaluation) -> Commit:
        est = ev.estimate
        claim = Claim(profile=self.target.profile, ratio_ppm=est.ratio_ppm, lo_ppm=est.lo_ppm,
                      hi_ppm=est.hi_ppm, pairs=est.pairs)
        return Commit.create(self.key, target=self.target.cid, parents=[proposal.parent.commit],
                             tree=proposal.candidate.commit_tree.cid, claim=claim,
                             time_ms=int(self.clock() * 1000),
                             message=commit_message(proposal.description, proposal.hypothesis))

    def _objects(self, commit: Commit, workspace: Workspace) -> list:
        blobs: dict[CID, Blob] = {}
        for entry in workspace.commit_tree.entries.values():
            if entry.blob not in blobs:
                data = workspace.read_blob(entry.blob)
                if data is None:
                    raise ProposerError(f"blob {entry.blob} of the kept tree is not available")
                blobs[entry.blob] = Blob(data)
        return [*blobs.values(), workspace.commit_tree, commit]

    def _duplicate(self, proposal: Proposal) -> str | None:
        tree = str(proposal.candidate.commit_tree.cid)
        parent = str(proposal.parent.commit)
        if proposal.candidate.commit_tree.cid == proposal.parent.workspace.commit_tree.cid:
            return "no change: the candidate is identical to its parent"
        for row in self.history:
            if row.tree == tree and row.parent == parent and row.evaluated:
                return f"same code as #{row.iteration} on the same parent ({row.status})"
        return None

    def _record(self, proposal: Proposal, status: str, *, evaluation: Evaluation | None = None,
                detail: str = "", commit: Commit | None = None, seconds: float = 0.0) -> Row:
        est = evaluation.estimate if evaluation is not None and evaluation.measured else None
        row = Row(
            iteration=self.iteration, status=status, parent=str(proposal.parent.commit),
            time_ms=int(self.clock() * 1000),
            strategy=proposal.strategy or self.strategy.name,
            tree=(str(proposal.candidate.commit_tree.cid)
                  if proposal.candidate is not None and status != L.SKIPPED else None),
            commit=str(commit.cid) if commit else None,
            result=evaluation.result if evaluation else None,
            ratio_ppm=est.ratio_ppm if est else None, lo_ppm=est.lo_ppm if est else None,
            hi_ppm=est.hi_ppm if est else None, pairs=est.pairs if est else None,
            detail=detail, description=proposal.description, hypothesis=proposal.hypothesis,
            patch=proposal.patch, patch_sha256=proposal.patch_sha256,
            expected=proposal.expected,
            diff=self._diff(proposal) if status != L.SKIPPED else "",
            tokens=proposal.usage.to_json(), cost_usd=round(proposal.usage.cost_usd, 6),
            eval_s=round(seconds, 3), refused_edits=proposal.refused_edits)
        self.log.append(row)
        self.history.append(row)
        self.memory.record(row)
        self.budget.charge(proposal.usage, status, evaluated=row.evaluated)
        self.strategy.observe(row)
        self.iteration += 1
        self.on_row(row)
        return row

    def _strategy_failed(self, exc: StrategyError) -> Row | None:
        self._strategy_errors += 1
        proposal = Proposal(parent=self.best, candidate=None,
                            description=f"strategy error: {exc}", usage=exc.usage)
        row = self._record(proposal, L.CRASH, detail=str(exc))
        if exc.fatal or self._strategy_errors >= MAX_STRATEGY_ERRORS:
            self.stop_reason = (f"the strategy failed: {exc}" if exc.fatal else
                                f"the strategy failed {self._strategy_errors} times in a row: "
                                f"{exc}")
            return None
        return row

    def _diff(self, proposal: Proposal) -> str:
        if proposal.candidate is None:
            return ""
        read = blob_reader(proposal.candidate.blobs, _either(proposal.candidate.read_blob,
                                                             proposal.parent.workspace.read_blob))
        try:
            return unified_diff(proposal.parent.workspace.commit_tree.entries,
                                proposal.candidate.commit_tree.entries, read)
        except WorkspaceError as exc:
            return f"(no diff: {exc})"

    def _context(self) -> Context:
        return Context(iteration=self.iteration, target=self.target, base_tree=self.base_tree,
                       best=self.best, start=self.start, history=self.history,
                       memory=self.memory, budget=self.budget, scratch=self.work_dir,
                       checkout=self.checkout, base_of=self.base_of)

    def checkout(self, base: Base) -> Path:
        root = self.work_dir / "ws"
        if root.exists():
            shutil.rmtree(root)
        base.workspace.materialize(root)
        return root

    def base_of(self, commit: CID) -> Base | None:
        """The workspace of a commit of this target (or of the target), None if unavailable."""
        if commit not in self._bases:
            if commit != self.target.cid:
                obj = self.store.get(commit)
                if not isinstance(obj, Commit) or obj.target != self.target.cid:
                    return None
            try:
                workspace = workspace_from_store(self.store, self.target, commit)
            except CandidateError:
                return None
            self._bases[commit] = Base(commit, workspace)
        return self._bases[commit]

    def _require(self, commit: CID) -> Base:
        base = self.base_of(commit)
        if base is None:
            raise ProposerError(f"cannot start from {commit}: it is not a stored commit of "
                                f"target {self.target.name} with its tree and blobs")
        return base

    def _resume_point(self, start: CID) -> CID | None:
        """The last kept commit of the log, if it is stored and descends from ``start``."""
        for row in reversed(self.history):
            if row.status != L.KEEP or not row.commit:
                continue
            cid = CID.parse(row.commit)
            if self.store.has(cid) and is_ancestor(self.store, start, cid):
                return cid
        return None


def is_ancestor(store: Store, ancestor: CID, commit: CID) -> bool:
    """Whether ``ancestor`` is ``commit`` or reachable through its parents in the store."""
    seen, frontier = set(), [commit]
    while frontier:
        cid = frontier.pop()
        if cid == ancestor:
            return True
        if cid not in seen:
            seen.add(cid)
            frontier.extend(store.parents(cid))
    return False


def commit_message(description: str, hypothesis: str) -> str:
    """The commit message: the description, then the hypothesis, within the protocol's cap."""
    text = description.strip() or "(no description)"
    if hypothesis.strip():
        text += "\n\n" + hypothesis.strip()
    data = text.encode()
    if len(data) > MAX_MESSAGE_BYTES:
        text = data[:MAX_MESSAGE_BYTES - 3].decode("utf-8", "ignore") + "..."
    return text


def _either(first, second):
    def read(cid: CID) -> bytes | None:
        data = first(cid)
        return data if data is not None else second(cid)
    return read

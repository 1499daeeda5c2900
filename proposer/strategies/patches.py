"""The patch strategy: unified diffs applied in order — the offline default, and how a human
proposes (a folder of patches, or ``POST /v1/patches`` to a node's proposer).

Which workspace a patch applies to:

- ``Depends-On: NAME`` in its header: the commit NAME became (when NAME was kept in this run
  or an earlier run of the same log); if NAME was not kept the patch is skipped, saying why.
- otherwise the current best; if it does not apply there, the run's start (the target or the
  head the run started from): the DAG branches there, as with the example's patches 01 and 02,
  which both apply to the baseline.

A patch that applies to neither is reported and skipped. Patches already tried (same name and
content) in an earlier run of the same log are not tried again.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from protocol.cid import CID
from verifier.candidates import CandidateError, PatchFile, read_patch, workspace_with_patch

from ..log import KEEP, Row
from ..loop import Context, Proposal

PATCH_SUFFIXES = (".patch", ".diff")


def patch_files(directory: Path) -> list[Path]:
    """The patches of a directory, in name order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory of patches")
    return sorted(p for p in directory.iterdir() if p.suffix in PATCH_SUFFIXES and p.is_file())


def sha256_of(patch: PatchFile) -> str:
    return hashlib.sha256(patch.text.encode()).hexdigest()


class PatchStrategy:
    def __init__(self, patches: Iterable[Path | PatchFile] = (), *, name: str = "patches"):
        self.name = name
        self.queue: deque[PatchFile] = deque(
            p if isinstance(p, PatchFile) else read_patch(p) for p in patches)
        self.kept: dict[str, CID] = {}
        """Patch name → the commit it became."""
        self.not_kept: dict[str, str] = {}
        """Patch name → the status it ended with."""
        self._tried: set[tuple[str, str]] = set()
        self._synced = 0

    @classmethod
    def from_directory(cls, directory: Path, **kwargs) -> PatchStrategy:
        return cls(patch_files(directory), **kwargs)

    def enqueue(self, patch: PatchFile) -> int:
        """Queue a patch after the others; returns how many are queued now."""
        self.queue.append(patch)
        return len(self.queue)

    def pending(self) -> int:
        return len(self.queue)

    def propose(self, ctx: Context) -> Proposal | None:
        self._sync(ctx.history)
        while self.queue:
            patch = self.queue.popleft()
            sha = sha256_of(patch)
            if (patch.name, sha) not in self._tried:
                self._tried.add((patch.name, sha))
                return self._proposal(ctx, patch, sha)
        return None

    def observe(self, row: Row) -> None:
        if row.patch is None:
            return
        if row.status == KEEP and row.commit:
            self.kept[row.patch] = CID.parse(row.commit)
            self.not_kept.pop(row.patch, None)
        elif row.patch not in self.kept:
            self.not_kept[row.patch] = row.status

    def _sync(self, history: list[Row]) -> None:
        """Learn from rows this strategy has not seen (an earlier run of the same log)."""
        for row in history[self._synced:]:
            if row.patch is not None and row.patch_sha256:
                self._tried.add((row.patch, row.patch_sha256))
            self.observe(row)
        self._synced = len(history)

    def _proposal(self, ctx: Context, patch: PatchFile, sha: str) -> Proposal:
        meta = {"description": patch.title, "hypothesis": patch.headers.get("description", ""),
                "patch": patch.name, "patch_sha256": sha, "expected": patch.expect,
                "strategy": self.name}
        dependency = patch.depends_on
        if dependency:
            parent = ctx.base_of(self.kept[dependency]) if dependency in self.kept else None
            if parent is None:
                why = (f"ended {self.not_kept[dependency]}" if dependency in self.not_kept
                       else "was never kept" if dependency not in self.kept
                       else "has a commit that is not in the store")
                return Proposal(parent=ctx.best, candidate=None,
                                skipped=f"{patch.name} depends on {dependency}, which {why}",
                                **meta)
            parents = [parent]
        else:
            parents = [ctx.best]
            if ctx.start.commit != ctx.best.commit:
                parents.append(ctx.start)
        problems = []
        for parent in parents:
            try:
                candidate = workspace_with_patch(ctx.target, ctx.base_tree, parent.workspace,
                                                 patch, scratch=ctx.scratch)
            except CandidateError as exc:
                problems.append(f"not onto {_short(parent.commit)}: {exc}")
                continue
            return Proposal(parent=parent, candidate=candidate, **meta)
        return Proposal(parent=parents[0], candidate=None,
                        skipped=f"{patch.name} no longer applies (" + "; ".join(problems) + ")",
                        **meta)


class PrioritizedStrategy:
    """Ask ``first`` (e.g. the queue of human patches) before ``second``; ``second`` only
    while ``allow_second()`` says so (e.g. its budget is not spent)."""

    def __init__(self, first, second, allow_second=lambda: True) -> None:
        self.first, self.second = first, second
        self.allow_second = allow_second
        self.name = second.name

    def propose(self, ctx: Context) -> Proposal | None:
        proposal = self.first.propose(ctx)
        if proposal is None and self.allow_second():
            proposal = self.second.propose(ctx)
        return proposal

    def observe(self, row: Row) -> None:
        self.first.observe(row)
        self.second.observe(row)


def _short(cid: CID) -> str:
    return str(cid)[:16] + "…"

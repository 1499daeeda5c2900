"""The proposer role of a node: the autoresearch loop wired to the network.

The role starts from the target chain's canonical head (or, on a restart, from the last commit
its own log kept, if that still descends from the head), runs one experiment at a time in a
worker thread, and publishes every kept commit — the commit with its tree and blobs — through
``node.publish_own`` the moment it is signed. Its own kept commits stay its base while the
network verifies them (the head is then an ancestor of the base); when the head moves anywhere
else (past the base, or onto another branch), the next experiment starts from the new head.

Humans propose through `submit_patch` (HTTP ``POST /v1/patches``): the patch is saved in the
role's inbox (so it survives a restart) and evaluated before the strategy's next experiment,
exactly like a patch of the patch strategy.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import trio

from protocol.cid import CID
from protocol.objects import Commit, Tree
from verifier.candidates import PatchFile, read_patch
from verifier.pipeline import Pipeline

from .budget import Budget
from .loop import PipelineEvaluator, ProposerError, ProposerLoop, Strategy
from .strategies.patches import PatchStrategy, PrioritizedStrategy

log = logging.getLogger("poi.proposer")

MAX_PATCH_BYTES = 1 << 20
POLL_S = 1.0
"""How often an idle role looks at the head again (a submitted patch wakes it at once)."""
ERROR_BACKOFF = 10
"""Poll periods to wait after a step failed unexpectedly (a full disk, a bug)."""


class ProposerRole:
    def __init__(self, node, target_chain, *, strategy: Strategy | str, work_dir: Path,
                 pipeline: Pipeline, pairs: int | None = None, budget: Budget | None = None,
                 patches_dir: Path | None = None, model: str | None = None,
                 max_tokens: int | None = None, temperature: float | None = None,
                 max_iterations: int = 0, strategy_options: dict | None = None,
                 poll_s: float = POLL_S) -> None:
        """``strategy``: a strategy object, or ``"patches"`` (from ``patches_dir``; without one,
        only submitted patches) or ``"claude"`` (``model``, ``max_tokens``, ``temperature`` and
        ``strategy_options`` go to ClaudeStrategy; raises MissingAPIKey without a key).
        ``max_iterations`` (0: no limit) applies when no ``budget`` is given."""
        self.node = node
        self.chain = target_chain
        self.work_dir = Path(work_dir)
        self.inbox = self.work_dir / "inbox"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.pipeline = pipeline
        self.evaluator = PipelineEvaluator(pipeline, pairs)
        self.budget = budget or Budget(max_iterations=max_iterations or None)
        options = {k: v for k, v in (("model", model), ("max_tokens", max_tokens),
                                     ("temperature", temperature)) if v is not None}
        self.main = make_strategy(strategy, patches_dir=patches_dir, pairs=pairs,
                                  **options, **(strategy_options or {}))
        self.human = PatchStrategy(name="human")
        self.strategy = PrioritizedStrategy(self.human, self.main, self._main_allowed)
        self.poll_s = poll_s
        self.loop: ProposerLoop | None = None
        self.published: list[CID] = []
        self.rebases = 0
        self.state = "starting"
        self._main_done = False
        self._wake = trio.Event()
        self._submitted = len(list(self.inbox.glob("*.patch")))

    # -- the role -----------------------------------------------------------------------------
    async def run(self) -> None:
        await self._ensure_workspace(self.chain.head)
        try:
            self.loop = await trio.to_thread.run_sync(self._make_loop)
        except ProposerError as exc:
            self.state = f"error: {exc}"
            log.error("proposer: cannot start: %s", exc)
            return
        self._load_inbox()
        log.info("proposer: starting from %s (%s)", self.loop.best.commit, self.main.name)
        while True:
            await self._follow_head()
            if self._main_done and not self.human.pending():
                self.state = "idle"
                with trio.move_on_after(self.poll_s):
                    await self._wake.wait()
                self._wake = trio.Event()
                continue
            self.state = "experimenting"
            try:
                row = await trio.to_thread.run_sync(self.loop.step, abandon_on_cancel=True)
            except Exception as exc:  # the node must outlive a failed step
                self.state = f"error: {exc}"
                log.exception("proposer: the experiment failed")
                await trio.sleep(self.poll_s * ERROR_BACKOFF)
                continue
            if row is None and not self.human.pending():
                self._main_done = True
                log.info("proposer: %s", self.loop.stop_reason or self.budget.stop_reason()
                         or "strategy exhausted; waiting for submitted patches")

    async def submit_patch(self, text: str, message: str | None = None) -> dict:
        """Queue a human patch (a unified diff, optionally with a header block)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("the patch is empty")
        if len(text.encode()) > MAX_PATCH_BYTES:
            raise ValueError(f"the patch is over {MAX_PATCH_BYTES} bytes")
        if "diff --git " not in text and not text.lstrip().startswith("--- ") \
                and "\n--- " not in text:
            raise ValueError("not a unified diff (expected 'diff --git' or '---/+++' lines)")
        self._submitted += 1
        name = f"inbox-{self._submitted:04d}"
        path = self.inbox / f"{name}.patch"
        path.write_text(text if text.endswith("\n") else text + "\n")
        (self.inbox / f"{name}.json").write_text(json.dumps({"message": message}))
        position = self.human.enqueue(_with_message(read_patch(path), message))
        self._wake.set()
        return {"queued": True, "id": path.name, "position": position,
                "base": str(self.loop.best.commit) if self.loop else None}

    def status(self) -> dict:
        loop = self.loop
        return {"state": self.state, "strategy": self.main.name,
                "best": str(loop.best.commit) if loop else None,
                "iteration": loop.iteration if loop else None,
                "queued_patches": self.human.pending(), "published": [str(c) for c in
                                                                     self.published],
                "rebases": self.rebases, "stop_reason": loop.stop_reason if loop else None}

    # -- the pieces ---------------------------------------------------------------------------
    def _make_loop(self) -> ProposerLoop:
        base_tree = self.node.store.get(self.chain.target.base_tree)
        if not isinstance(base_tree, Tree):
            raise ProposerError(f"the base tree of {self.chain.target.name} is not stored")
        return ProposerLoop(target=self.chain.target, base_tree=base_tree, store=self.node.store,
                            key=self.node.key, strategy=self.strategy, evaluator=self.evaluator,
                            work_dir=self.work_dir, start=self.chain.head, budget=self.budget,
                            publish=self._publish_from_thread)

    def _main_allowed(self) -> bool:
        return not self._main_done and self.budget.stop_reason() is None

    def _publish_from_thread(self, objects: list) -> None:
        """Called by the loop in its worker thread: publish now, in the node's event loop."""
        trio.from_thread.run(self._publish, objects)

    async def _publish(self, objects: list) -> None:
        await self.node.publish_own(objects)
        commit = objects[-1]
        self.published.append(commit.cid)
        log.info("proposer: published %s (%s)", commit.cid, commit.message.splitlines()[0])

    async def _follow_head(self) -> None:
        head, base = self.chain.head, self.loop.best.commit
        if head == base:
            return
        index = self.chain.index
        if base in index and head in index and index.is_ancestor(head, base):
            return  # our own line, still being verified, is ahead of the head
        if await self._ensure_workspace(head):
            await trio.to_thread.run_sync(self.loop.rebase, head)
            self.rebases += 1
            log.info("proposer: the head moved to %s; continuing from there", head)

    async def _ensure_workspace(self, cid: CID) -> bool:
        """Fetch the tree and blobs of ``cid`` if the store lacks them."""
        store = self.node.store
        if cid == self.chain.cid:
            return True
        try:
            commit = store.get(cid)
            if not isinstance(commit, Commit):
                await self.node.fetch([cid])
                commit = store.get(cid)
            if not store.has(commit.tree):
                await self.node.fetch([commit.tree])
            tree = store.get(commit.tree)
            missing = sorted({e.blob for e in tree.entries.values() if not store.has(e.blob)},
                             key=bytes)
            if missing:
                await self.node.fetch(missing)
        except Exception as exc:  # a failed fetch is retried next time
            log.warning("proposer: cannot get the workspace of %s yet: %s", cid, exc)
            return False
        return True

    def _load_inbox(self) -> None:
        for path in sorted(self.inbox.glob("*.patch")):
            meta = path.with_suffix(".json")
            message = json.loads(meta.read_text()).get("message") if meta.exists() else None
            self.human.enqueue(_with_message(read_patch(path), message))


def make_strategy(strategy: Strategy | str, *, patches_dir: Path | None = None,
                  pairs: int | None = None, **options) -> Strategy:
    if not isinstance(strategy, str):
        return strategy
    if strategy == "patches":
        return PatchStrategy.from_directory(patches_dir) if patches_dir else PatchStrategy()
    if strategy == "claude":
        from .strategies.claude import ClaudeStrategy

        return ClaudeStrategy(pairs=pairs, **options)
    raise ValueError(f"unknown strategy {strategy!r} (choose patches or claude)")


def _with_message(patch: PatchFile, message: str | None) -> PatchFile:
    if not message:
        return patch
    return PatchFile(path=patch.path, headers={**patch.headers, "title": message},
                     text=patch.text)

"""ProposerRole in a node: publication at once, following the head, and submitted patches.

The node is the HTTP API tests' in-process stand-in (real Store, real TargetChain, signature
checks on ingest) with the two calls a proposer needs added (`publish_own`, `fetch`), and the
real API served in the same trio loop, so a patch goes in through ``POST /v1/patches``. The
target is the tiny one; every evaluation is the real sandboxed pipeline.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.error
import urllib.request

import pytest
import trio

from node.api import serve_api
from node.api.models import ProposerStatus
from proposer.role import ProposerRole
from proposer.strategies.patches import PatchStrategy
from protocol import examples
from protocol.objects import Attestation, Claim, Commit, Verdict
from verifier.candidates import workspace_from_directory, workspace_from_store

from .api_support import StandInNode
from .proposer_support import cost_patch, tiny_genesis, tiny_pipeline, write_patches

T0 = examples.GENESIS_TIME_MS + 1
DEADLINE_S = 60


class ProposerNode(StandInNode):
    """The API tests' stand-in node, plus what the proposer role calls."""

    async def publish_own(self, objects: list) -> None:
        self.ingest(objects)

    async def fetch(self, cids: list) -> None:
        missing = [c for c in cids if not self.store.has(c)]
        if missing:
            raise LookupError(f"no peer has {missing[0]}")


def other_proposers_commit(node, genesis, tmp_path, cost: int) -> list:
    """A commit by someone else on the baseline, its content, and three validators' verdicts
    (all improved, voting for it as head): enough to make it the canonical head."""
    target = genesis.target
    root = tmp_path / f"other-{cost}"
    base = workspace_from_store(node.store, target, target.cid)
    base.materialize(root)
    (root / "src" / "cost.txt").write_text(f"{cost}\n")
    ws = workspace_from_directory(target, genesis.base_tree, root)
    shutil.rmtree(root)
    commit = Commit.create(examples.key(5), target=target.cid, parents=[target.cid],
                           tree=ws.commit_tree.cid, claim=Claim("avx2", cost * 1000, cost * 1000,
                                                                cost * 1000, 15),
                           time_ms=T0, message=f"someone else: cost {cost}")
    named = {e.blob for e in ws.commit_tree.entries.values()}
    objects = [*(b for b in ws.blobs.values() if b.cid in named), ws.commit_tree, commit]
    for index in (1, 2, 3):
        verdict = Verdict(commit=commit.cid, parent=target.cid, result="improved",
                          ratio_ppm=cost * 1000, lo_ppm=cost * 1000 - 5000,
                          hi_ppm=cost * 1000 + 5000, pairs=15,
                          gate_seed=hashlib.sha256(b"seed").digest(), profile="avx2",
                          toolchain="t")
        objects.append(Attestation.create(examples.key(index), target=target.cid, seq=0,
                                          prev=None, epoch=0, time_ms=T0, head=commit.cid,
                                          verdict=verdict))
    return objects


def post_json(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def until(condition, what: str) -> None:
    with trio.fail_after(DEADLINE_S):
        while not condition():
            await trio.sleep(0.05)
    assert condition(), what


def test_role_publishes_at_once_follows_the_head_and_takes_submitted_patches(tmp_path):
    genesis = tiny_genesis(tmp_path / "tiny")
    node = ProposerNode(tmp_path, [(genesis.target, genesis.base_tree,
                                    list(genesis.blobs.values()))], now_ms=T0)
    chain = node.chains[genesis.target.cid]
    patches = write_patches(tmp_path / "patches", {
        "01-faster.patch": cost_patch(1000, 900, "Faster")})
    role = ProposerRole(node, chain, strategy=PatchStrategy.from_directory(patches),
                        work_dir=tmp_path / "proposer", pipeline=tiny_pipeline(genesis, tmp_path),
                        poll_s=0.05)
    target = genesis.target.cid
    seen = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_api, node, "127.0.0.1", 0)
            node.proposer = role
            nursery.start_soon(role.run)

            # 1. The patch is kept and published at once: in the node's store and chain.
            await until(lambda: len(role.published) == 1, "the first commit is published")
            first = node.store.get(role.published[0])
            assert first.parents == (target,) and first.author == node.key.public_key
            assert chain.knows(first.cid) and node.store.has(first.tree)
            # Unverified, the head stays at the target: an ancestor of the proposer's base,
            # so the proposer keeps building on its own commit.
            await trio.sleep(0.3)
            assert chain.head == target and role.loop.best.commit == first.cid
            assert role.rebases == 0 and role.state == "idle"

            # 2. Another proposer's commit becomes the head: the role moves onto it.
            node.ingest(other_proposers_commit(node, genesis, tmp_path, 500))
            other = chain.head
            assert other != target
            await until(lambda: role.rebases == 1, "the role rebases onto the new head")
            assert role.loop.best.commit == other

            # 3. A human patch through the API, measured against the new head, published.
            status, body = await trio.to_thread.run_sync(
                post_json, f"{url}/v1/patches",
                {"patch": cost_patch(500, 450, "ignored title"), "message": "Human idea"})
            assert status == 202 and body["queued"] and body["base"] == str(other)
            await until(lambda: len(role.published) == 2, "the human patch is published")
            second = node.store.get(role.published[1])
            assert second.parents == (other,) and second.claim.ratio_ppm == 900_000
            assert second.message == "Human idea"
            status, body = await trio.to_thread.run_sync(
                post_json, f"{url}/v1/patches", {"patch": "make it faster", "message": None})
            seen["refused"] = (status, body)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert seen["refused"][0] == 400 and "not a unified diff" in seen["refused"][1]["error"]
    rows = role.loop.log.rows()
    assert [(r.strategy, r.status) for r in rows] == [("patches", "keep"), ("human", "keep")]
    assert rows[1].description == "Human idea" and rows[1].patch == "inbox-0001.patch"
    assert (tmp_path / "proposer" / "inbox" / "inbox-0001.patch").exists()
    status = role.status()
    assert status["published"] == [str(c) for c in role.published] and status["rebases"] == 1
    # what a node's /v1/status reports of its proposer matches the API's schema
    assert ProposerStatus.model_validate(status).state == role.state


def test_role_reports_a_head_it_cannot_get_instead_of_crashing_the_node(tmp_path):
    genesis = tiny_genesis(tmp_path / "tiny")
    node = ProposerNode(tmp_path, [(genesis.target, genesis.base_tree,
                                    list(genesis.blobs.values()))], now_ms=T0)
    chain = node.chains[genesis.target.cid]
    objects = other_proposers_commit(node, genesis, tmp_path, 500)
    node.ingest([o for o in objects if isinstance(o, Commit | Attestation)])  # no content
    assert chain.head != genesis.target.cid
    role = ProposerRole(node, chain, strategy="patches", work_dir=tmp_path / "proposer",
                        pipeline=tiny_pipeline(genesis, tmp_path), max_iterations=3)

    async def main() -> None:
        with trio.fail_after(DEADLINE_S):
            await role.run()  # returns: no peer has the head's tree

    trio.run(main)
    assert role.state.startswith("error: cannot start from")
    assert role.budget.max_iterations == 3


@pytest.mark.parametrize("text", ["", "x" * 10, "diff --git a/x b/x\n" + "+" * (1 << 20)])
def test_submit_patch_refuses_what_is_not_a_patch(tmp_path, text):
    genesis = tiny_genesis(tmp_path / "tiny")
    node = ProposerNode(tmp_path, [(genesis.target, genesis.base_tree,
                                    list(genesis.blobs.values()))], now_ms=T0)
    role = ProposerRole(node, node.chains[genesis.target.cid], strategy="patches",
                        work_dir=tmp_path / "p", pipeline=tiny_pipeline(genesis, tmp_path))
    with pytest.raises(ValueError):
        trio.run(role.submit_patch, text, None)

"""The adversary: hostile example patches turned into signed commits, as anyone could send them.

An honest proposer evaluates a patch before it publishes, so it would never publish these. The
adversary skips that: it applies each hostile patch to the genesis workspace, signs a commit
claiming a 10% speed-up, and submits the commit with its tree and blobs to a node over HTTP
(``POST /v1/commits``, the same path any client uses). What happens next is the network's
business: every verifier rebuilds it in the sandbox, gates and benchmarks it, and the stake
decides.

A patch that adds a symlink (06) cannot travel at all — a tree holds regular files only — so
its commit carries the patch without the link, and the build fails on the missing file.
"""

from __future__ import annotations

from dataclasses import dataclass

from dag.manifest import Genesis
from protocol.keys import SigningKey
from protocol.objects import Claim, Commit
from verifier.candidates import PatchFile, Workspace

from .errors import DevnetError

CLAIM_RATIO_PPM = 900_000
"""What every hostile commit claims: 10% faster, a confident-looking interval."""
CLAIM_INTERVAL_PPM = (880_000, 920_000)


@dataclass(frozen=True)
class HostileCommit:
    patch: str
    title: str
    expect: str
    threat: str
    commit: Commit
    objects: list[bytes]
    """The bundle: the commit tree's blobs, the tree, then the commit."""

    @property
    def cid(self) -> str:
        return str(self.commit.cid)


def hostile_commit(genesis: Genesis, patch: PatchFile, candidate: Workspace, key: SigningKey, *,
                   time_ms: int) -> HostileCommit:
    """Sign ``candidate`` (``patch`` applied to the genesis workspace: prebuild.apply_patches)
    as a commit on the target."""
    target = genesis.target
    tree = candidate.commit_tree
    blobs = {}
    for entry in tree.entries.values():
        data = candidate.read_blob(entry.blob)
        if data is None:
            raise DevnetError(f"hostile patch {patch.name}: blob {entry.blob} is missing")
        blobs[entry.blob] = data
    lo, hi = CLAIM_INTERVAL_PPM
    commit = Commit.create(
        key, target=target.cid, parents=[target.cid], tree=tree.cid,
        claim=Claim(profile=target.profile, ratio_ppm=CLAIM_RATIO_PPM, lo_ppm=lo, hi_ppm=hi,
                    pairs=target.stats.proposer_pairs),
        time_ms=time_ms, message=patch.title)
    objects = [*blobs.values(), tree.encode(), commit.encode()]
    return HostileCommit(patch=patch.name, title=patch.title,
                         expect=patch.headers.get("expect", ""),
                         threat=patch.headers.get("threat", ""), commit=commit,
                         objects=objects)

"""Hypothesis strategies for random valid protocol values and objects."""

from __future__ import annotations

import hashlib

from hypothesis import strategies as st

from protocol import examples
from protocol.cid import CID, cid_of_blob, cid_of_object_bytes
from protocol.constants import INT_MAX, INT_MIN
from protocol.keys import SigningKey
from protocol.objects import (
    MEASURED_RESULTS,
    RESULTS,
    Attestation,
    Blob,
    Challenge,
    Claim,
    Commands,
    Commit,
    Evidence,
    Limits,
    Ruling,
    StakeTx,
    Stats,
    Target,
    Tree,
    TreeEntry,
    Validator,
    Verdict,
)

KEYS = [examples.key(i) for i in range(6)]

# --- plain encodable values ---------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(INT_MIN, INT_MAX),
    st.integers(-300, 300), st.text(max_size=40), st.binary(max_size=300),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=20),
        st.dictionaries(st.text(max_size=12), inner, max_size=20),
    ),
    max_leaves=60,
)

# --- object pieces ------------------------------------------------------------------------------
signing_keys = st.sampled_from(KEYS)
object_cids = st.binary(min_size=1, max_size=16).map(cid_of_object_bytes)
blob_cids = st.binary(max_size=16).map(cid_of_blob)
labels = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                 max_size=20)
path_parts = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FF,
                                   exclude_characters="/\\\x7f"), min_size=1, max_size=8
                     ).filter(lambda s: s not in (".", ".."))
paths = st.lists(path_parts, min_size=1, max_size=4).map("/".join)
times = st.integers(0, 2**50)


def _no_dir_conflicts(files: dict[str, TreeEntry]) -> dict[str, TreeEntry]:
    keep: dict[str, TreeEntry] = {}
    for path in sorted(files, key=len):
        parts = path.split("/")
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if prefixes & keep.keys() or any(p.startswith(path + "/") for p in keep):
            continue
        keep[path] = files[path]
    return keep


trees = st.dictionaries(
    paths, st.builds(TreeEntry, blob_cids, st.sampled_from([0o644, 0o755])), max_size=12
).map(_no_dir_conflicts).map(Tree)


@st.composite
def claims(draw: st.DrawFn) -> Claim:
    lo, ratio, hi = sorted(draw(st.lists(st.integers(1, 100_000_000), min_size=3, max_size=3)))
    return Claim(profile=draw(labels), ratio_ppm=ratio, lo_ppm=lo, hi_ppm=hi,
                 pairs=draw(st.integers(1, 100)))


@st.composite
def stake_txs(draw: st.DrawFn, target: CID | None = None) -> StakeTx:
    return StakeTx.create(draw(signing_keys), target=target or draw(object_cids),
                          op=draw(st.sampled_from(["bond", "unbond"])),
                          amount=draw(st.integers(1, INT_MAX)), nonce=draw(st.integers(0, 2**40)))


@st.composite
def commits(draw: st.DrawFn) -> Commit:
    target = draw(object_cids)
    parents = draw(st.lists(object_cids, min_size=1, max_size=4, unique=True))
    return Commit.create(
        draw(signing_keys), target=target, parents=parents, tree=draw(object_cids),
        claim=draw(claims()), time_ms=draw(times), message=draw(st.text(max_size=60)),
        stake_txs=draw(st.lists(stake_txs(target), max_size=2, unique_by=lambda t: t.cid)),
    )


@st.composite
def verdicts(draw: st.DrawFn, commit: CID | None = None) -> Verdict:
    result = draw(st.sampled_from(RESULTS))
    commit = commit or draw(object_cids)
    parent = draw(object_cids.filter(lambda c: c != commit))
    if result in MEASURED_RESULTS:
        lo, ratio, hi = sorted(draw(st.lists(st.integers(1, 100_000_000), min_size=3,
                                             max_size=3)))
        pairs = draw(st.integers(1, 1000))
    else:
        lo = ratio = hi = pairs = 0
    return Verdict(commit=commit, parent=parent, result=result, ratio_ppm=ratio, lo_ppm=lo,
                   hi_ppm=hi, pairs=pairs, gate_seed=draw(st.binary(min_size=32, max_size=32)),
                   profile=draw(labels), toolchain=draw(labels))


@st.composite
def attestations(draw: st.DrawFn, key: SigningKey | None = None, target: CID | None = None,
                 with_verdict: bool | None = None) -> Attestation:
    seq = draw(st.integers(0, 2**40))
    has_verdict = draw(st.booleans()) if with_verdict is None else with_verdict
    return Attestation.create(
        key or draw(signing_keys), target=target or draw(object_cids), seq=seq,
        prev=None if seq == 0 else draw(object_cids), epoch=draw(st.integers(0, 2**32)),
        time_ms=draw(times), head=draw(object_cids),
        verdict=draw(verdicts()) if has_verdict else None,
    )


@st.composite
def evidences(draw: st.DrawFn) -> Evidence:
    key, target = draw(signing_keys), draw(object_cids)
    first = draw(attestations(key=key, target=target))
    if draw(st.booleans()):  # same sequence number, different content
        second = draw(attestations(key=key, target=target).filter(
            lambda a: a.cid != first.cid))
        second = Attestation.create(key, target=target, seq=first.seq, prev=first.prev,
                                    epoch=second.epoch, time_ms=second.time_ms,
                                    head=second.head, verdict=second.verdict)
    else:  # two different results on one commit
        v1 = draw(verdicts())
        v2 = draw(verdicts(commit=v1.commit).filter(lambda v: v.result != v1.result))
        first = Attestation.create(key, target=target, seq=1, prev=draw(object_cids), epoch=1,
                                   time_ms=1, head=v1.commit, verdict=v1)
        second = Attestation.create(key, target=target, seq=2, prev=first.cid, epoch=1,
                                    time_ms=2, head=v2.commit, verdict=v2)
    return Evidence.create(draw(signing_keys), first, second)


@st.composite
def challenges(draw: st.DrawFn) -> Challenge:
    verifier, challenger = draw(st.lists(signing_keys, min_size=2, max_size=2,
                                         unique_by=lambda k: k.public_key))
    att = draw(attestations(key=verifier, with_verdict=True).filter(
        lambda a: a.verdict is not None and a.verdict.gate_passed is not None))
    return Challenge.create(challenger, att, anchor=draw(object_cids),
                            bond=draw(st.integers(1, INT_MAX)), nonce=draw(st.integers(0, 1000)))


@st.composite
def rulings(draw: st.DrawFn) -> Ruling:
    return Ruling.create(draw(signing_keys), target=draw(object_cids),
                         challenge=draw(object_cids), gate_passed=draw(st.booleans()),
                         toolchain=draw(labels))


@st.composite
def targets(draw: st.DrawFn) -> Target:
    validators = draw(st.lists(st.tuples(signing_keys, st.integers(1, 10**12)), min_size=1,
                               max_size=6, unique_by=lambda kv: kv[0].public_key))
    pairs = draw(st.integers(2, 50))
    return Target(
        name=draw(labels), description=draw(st.text(max_size=40)),
        base_tree=draw(object_cids),
        writable=tuple(sorted(set(draw(st.lists(paths, min_size=1, max_size=4))),
                              key=lambda s: s.encode())),
        metric=draw(labels), direction=draw(st.sampled_from(["lower", "higher"])),
        profile=draw(labels),
        commands=Commands(build=("make",), gate=("gate", "{seed}"),
                          bench=("bench", "--seed={seed}", draw(labels))),
        stats=Stats(pairs=pairs, proposer_pairs=draw(st.integers(1, pairs))),
        limits=Limits(memory_mb=draw(st.integers(16, 1 << 20))),
        validators=tuple(sorted((Validator(k.public_key, s) for k, s in validators),
                                key=lambda v: v.key)),
        genesis_time_ms=draw(times), epoch_seconds=draw(st.integers(1, 1_000_000)),
        quorum_ppm=draw(st.integers(1, 1_000_000)),
    )


blobs = st.binary(max_size=2000).map(Blob)
structured_objects = st.one_of(trees, targets(), commits(), attestations(), stake_txs(),
                               evidences(), challenges(), rulings())
signed_objects = st.one_of(commits(), attestations(), stake_txs(), evidences(), challenges(),
                           rulings())


def seed_of(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()

"""The tiered checks every received object passes (DESIGN §4, docs/PROTOCOL.md §Network).

Cheapest first, and each tier runs only on what the previous ones let through:

1. **size** — the message, then each object against its type's cap (`MAX_ITEM_BYTES`);
2. **canonical decoding and schema** — `protocol.objects.decode_object` refuses any byte that
   is not the canonical encoding of a valid object and names the fault;
3. **placement** — the object's kind belongs on the topic, its target is the topic's (or, off
   gossip, one this node follows);
4. **epoch window** — nothing dated more than `MAX_FUTURE_MS` after the receiver's clock (time
   and epoch of commits, attestations, and the attestations inside evidence and challenges);
5. **signature** — every signature, nested ones included, in a worker thread pool
   (`SignatureVerifier`) so the event loop never stalls on a burst;
6. **dedupe and dependencies** — done by node/ingest.py, which owns the store.

Every check here is a pure function of its arguments (the clock is passed in) returning a
`Check`: ACCEPT, REJECT (invalid: the peer that sent it is penalised) or IGNORE (valid but not
usable now: a duplicate, a dependency we lack, a verifier without stake).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import trio

from dag.store import StoredObject
from protocol.cid import CID, cid_of_blob
from protocol.constants import MAX_BLOB_BYTES, MAX_OBJECT_BYTES
from protocol.errors import ProtocolError
from protocol.objects import (
    Attestation,
    Blob,
    Challenge,
    Commit,
    Evidence,
    SignedObject,
    Target,
    Tree,
    decode_object,
)

from .topics import kind_of

MAX_FUTURE_MS = 15_000
"""Clock-skew allowance: an object dated more than this after the receiver's clock (its
``time_ms``, or an attestation ``epoch`` beyond the epoch of now + this) is REJECTed. NTP keeps
hosts within milliseconds of each other; 15 s tolerates a badly kept clock while keeping a
forged future date from reaching past the next epoch boundary by more than a quarter of the
default 60 s epoch. There is no lower bound: a late verdict is still evidence, and an
attestation cannot be replayed as new because each one is a link in its verifier's seq chain."""

MAX_ITEM_BYTES = {
    "commit": 32 << 10,
    "attestation": 2 << 10,
    "stake": 1 << 10,
    "evidence": 4 << 10,
    "challenge": 2 << 10,
    "ruling": 1 << 10,
    "tree": MAX_OBJECT_BYTES,
    "target": MAX_OBJECT_BYTES,
    "blob": MAX_BLOB_BYTES,
}
"""Largest encoding of each object type, in bytes. The schema maxima are about 19 KiB for a
commit (64 stake transactions, a 4 KiB message, 16 parents), 1 KiB for an attestation (two
256-byte labels), 2.1 KiB for evidence, 1.1 KiB for a challenge: anything larger is padding."""

MAX_TOPIC_ITEM_BYTES = {
    "commits": MAX_OBJECT_BYTES,
    "attestations": MAX_ITEM_BYTES["attestation"],
    "stake": MAX_ITEM_BYTES["stake"],
    "evidence": MAX_ITEM_BYTES["evidence"],
    "challenges": MAX_ITEM_BYTES["challenge"],
    "rulings": MAX_ITEM_BYTES["ruling"],
}
"""Size tier before decoding: the largest object a topic can carry (commits also carry trees)."""

SIGNATURE_CHUNK = 128
"""Signatures verified per worker-thread call."""


class Action(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Check:
    action: Action
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.action is Action.ACCEPT


ACCEPTED = Check(Action.ACCEPT)


def reject(reason: str) -> Check:
    return Check(Action.REJECT, reason)


def ignore(reason: str) -> Check:
    return Check(Action.IGNORE, reason)


@dataclass
class Item:
    """One object of a bundle on its way through the tiers."""

    index: int
    data: bytes
    obj: StoredObject | None = None
    check: Check = ACCEPTED
    pending_on: tuple[CID, ...] = ()

    @property
    def cid(self) -> CID | None:
        return None if self.obj is None else self.obj.cid

    @property
    def type_name(self) -> str:
        if self.obj is None:
            return "?"
        return "blob" if isinstance(self.obj, Blob) else self.obj.TYPE

    @property
    def ok(self) -> bool:
        return self.check.accepted


# -- tier 1: size ---------------------------------------------------------------------------------

def size_problem(data: bytes, limit: int, what: str = "message") -> str | None:
    if len(data) > limit:
        return f"{what} of {len(data)} bytes is over the {limit}-byte cap"
    return None


# -- tier 2: canonical decoding and schema --------------------------------------------------------

def referenced_blobs(objects: Iterable[object]) -> set[CID]:
    """Blob CIDs named by the trees among ``objects``."""
    out: set[CID] = set()
    for obj in objects:
        if isinstance(obj, Tree):
            out.update(entry.blob for entry in obj.entries.values())
    return out


def decode_items(datas: Sequence[bytes], *, max_item_bytes: int = MAX_BLOB_BYTES,
                 wanted_blobs: Iterable[CID] = ()) -> list[Item]:
    """Decode each object of a bundle on its own (tiers 1 and 2).

    A bundle item is a structured object, or a blob when its raw CID is named by a tree in the
    same bundle (or is in ``wanted_blobs``): a blob carries no type of its own, so only a tree
    that names it makes it welcome. Anything else that does not decode is REJECTed with the
    decoder's reason; anything over ``max_item_bytes`` (the topic's cap) or its type's cap
    (`MAX_ITEM_BYTES`) is REJECTed by size.
    """
    items = [Item(i, bytes(d)) for i, d in enumerate(datas)]
    errors: dict[int, str] = {}
    for item in items:
        problem = size_problem(item.data, max_item_bytes, "object")
        if problem:
            item.check = reject(problem)
        elif len(item.data) > MAX_OBJECT_BYTES:
            errors[item.index] = f"{len(item.data)} bytes is over the object cap"
        else:
            try:
                item.obj = decode_object(item.data)
            except ProtocolError as exc:
                errors[item.index] = str(exc)
    blobs = referenced_blobs(i.obj for i in items if i.obj is not None) | set(wanted_blobs)
    for item in items:
        if not item.ok:
            continue
        if blobs and cid_of_blob(item.data) in blobs:
            item.obj = Blob(item.data)
        elif item.obj is None:
            item.check = reject(f"not a poi object: {errors.get(item.index, 'undecodable')}")
            continue
        problem = size_problem(item.data, MAX_ITEM_BYTES.get(item.type_name, MAX_OBJECT_BYTES),
                               item.type_name)
        if problem:
            item.check = reject(problem)
            item.obj = None
    return items


# -- tier 3: placement ----------------------------------------------------------------------------

def target_of(obj: StoredObject) -> CID | None:
    """The target an object belongs to (None for trees and blobs; a target is its own)."""
    if isinstance(obj, Target):
        return obj.cid
    return getattr(obj, "target", None)


def placement_problem(obj: StoredObject, *, follow: Iterable[CID], topic_target: CID | None,
                      topic_kind: str | None, content: Iterable[CID] = ()) -> str | None:
    """Why ``obj`` does not belong where it arrived (a topic, or a submission), or None.

    On a topic: the object's kind must be the topic's (trees and blobs only on ``commits``, and
    only when a commit or tree of the same bundle names them: ``content``); targets never travel
    on gossip. Anywhere: its target must be one this node follows.
    """
    follow = set(follow)
    if isinstance(obj, Target):
        if topic_kind is not None:
            return "targets do not travel on gossip: fetch them by sync"
        if obj.cid not in follow:
            return f"target {obj.cid} is not followed by this node"
        return None
    if isinstance(obj, Tree | Blob):
        if topic_kind not in (None, "commits"):
            return f"a {'tree' if isinstance(obj, Tree) else 'blob'} on the {topic_kind} topic"
        if obj.cid not in set(content):
            return f"{'tree' if isinstance(obj, Tree) else 'blob'} {obj.cid} is not named by " \
                   "any commit or tree in the same bundle"
        return None
    kind = kind_of(obj.TYPE)
    if topic_kind is not None and kind != topic_kind:
        article = "an" if obj.TYPE[0] in "aeiou" else "a"
        return f"{article} {obj.TYPE} on the {topic_kind} topic"
    target = target_of(obj)
    if topic_target is not None and target != topic_target:
        return f"{obj.TYPE} for target {target} on the topic of {topic_target}"
    if target not in follow:
        return f"{obj.TYPE} for target {target}, which this node does not follow"
    return None


def named_content(objects: Iterable[object]) -> set[CID]:
    """Trees named by the commits and targets, and blobs named by the trees, among ``objects``."""
    objects = list(objects)
    out: set[CID] = referenced_blobs(objects)
    for obj in objects:
        if isinstance(obj, Commit):
            out.add(obj.tree)
        elif isinstance(obj, Target):
            out.add(obj.base_tree)
    return out


# -- tier 4: epoch window -------------------------------------------------------------------------

def time_problem(obj: StoredObject, targets: Mapping[CID, Target], now_ms: int,
                 max_future_ms: int = MAX_FUTURE_MS) -> str | None:
    """Why ``obj`` is dated in the future beyond the allowance, or None."""
    limit = now_ms + max_future_ms
    if isinstance(obj, Commit):
        if obj.time_ms > limit:
            return f"commit dated {obj.time_ms - now_ms} ms in the future " \
                   f"(allowance {max_future_ms} ms)"
        return None
    attestations: list[Attestation] = []
    if isinstance(obj, Attestation):
        attestations = [obj]
    elif isinstance(obj, Evidence):
        attestations = [obj.a, obj.b]
    elif isinstance(obj, Challenge):
        attestations = [obj.attestation]
    for att in attestations:
        if att.time_ms > limit:
            return f"attestation dated {att.time_ms - now_ms} ms in the future " \
                   f"(allowance {max_future_ms} ms)"
        target = targets.get(att.target)
        if target is not None:
            latest = target.epoch_at(limit)
            if att.epoch > latest:
                return f"attestation for epoch {att.epoch}, but the current epoch is " \
                       f"{target.epoch_at(now_ms)} (at most {latest} with the clock allowance)"
    return None


# -- tier 5: signatures ---------------------------------------------------------------------------

def signature_problem(obj: StoredObject) -> str | None:
    """Why a signature of ``obj`` (nested ones included) does not verify, or None."""
    if not isinstance(obj, SignedObject):
        return None
    try:
        obj.verify()
    except ProtocolError as exc:
        return f"bad signature: {exc}"
    return None


def signature_problems(objects: Sequence[StoredObject]) -> list[str | None]:
    return [signature_problem(obj) for obj in objects]


@dataclass
class SignatureVerifier:
    """Verifies signatures in worker threads, off the event loop.

    Ed25519 verification in `cryptography` releases the GIL, so chunks verified in parallel
    threads use several cores (measured: 70 µs per signature on one thread, 47 µs on two).
    """

    threads: int = 2
    chunk: int = SIGNATURE_CHUNK
    stats: dict[str, float] = field(default_factory=lambda: {
        "verify_signatures_total": 0, "verify_failures_total": 0,
        "verify_seconds_total": 0.0, "verify_batches_total": 0})

    def __post_init__(self) -> None:
        self._limiter = trio.CapacityLimiter(max(1, self.threads))

    async def verify(self, objects: Sequence[StoredObject]) -> list[str | None]:
        """The signature problem of each object (None: it verifies), in order."""
        signed = [i for i, obj in enumerate(objects) if isinstance(obj, SignedObject)]
        out: list[str | None] = [None] * len(objects)
        if not signed:
            return out
        started = time.perf_counter()
        chunks = [signed[i:i + self.chunk] for i in range(0, len(signed), self.chunk)]

        async def run(indices: list[int]) -> None:
            problems = await trio.to_thread.run_sync(
                signature_problems, [objects[i] for i in indices], limiter=self._limiter)
            for i, problem in zip(indices, problems, strict=True):
                out[i] = problem

        if len(chunks) == 1:
            await run(chunks[0])
        else:
            async with trio.open_nursery() as nursery:
                for indices in chunks:
                    nursery.start_soon(run, indices)
        self.stats["verify_signatures_total"] += len(signed)
        self.stats["verify_failures_total"] += sum(1 for p in out if p)
        self.stats["verify_seconds_total"] += time.perf_counter() - started
        self.stats["verify_batches_total"] += 1
        return out


# -- combining ------------------------------------------------------------------------------------

def bundle_check(items: Sequence[Item]) -> Check:
    """The verdict on a whole gossip bundle: REJECT if any object is invalid (an honest node
    never bundles one, so nothing of it is stored or forwarded); IGNORE if no object is new and
    usable; otherwise ACCEPT."""
    for item in items:
        if item.check.action is Action.REJECT:
            return reject(f"object {item.index} ({item.type_name}): {item.check.reason}")
    usable = [item for item in items if item.ok]
    if not usable:
        reasons = sorted({item.check.reason for item in items})
        return ignore("; ".join(reasons)[:300] or "empty")
    return ACCEPTED


def first_reject(items: Sequence[Item], checker: Callable[[Item], str | None]) -> None:
    """Apply ``checker`` to every still-acceptable item; a problem REJECTs that item."""
    for item in items:
        if item.ok and item.obj is not None:
            problem = checker(item)
            if problem:
                item.check = reject(problem)

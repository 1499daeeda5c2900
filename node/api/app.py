"""The node's HTTP API (FastAPI), the live DAG page at ``/``, and serving it with Hypercorn.

Every handler reads the node's store and its `TargetChain`s (docs: CONTRACT of the Node object).
Handlers that touch a chain run on the node's event loop, because fork choice and the ledger are
only ever changed there; work that reads only the store (rendering a patch) goes to a thread.
Bad input never reaches a 500: a malformed CID is a 400, an unknown one a 404, an oversize body
a 413, and every error body is ``{"error": "<what was wrong>"}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from functools import partial
from itertools import islice
from pathlib import Path as FilePath
from typing import Annotated, Any

import anyio
import trio
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import StreamingResponse

from dag.scope import writable_part
from dag.store import StoreError
from dag.workspace import WorkspaceError, unified_diff
from node.bundle import MAX_BUNDLE_BYTES, BundleError, decode_bundle
from node.chain import CommitStatus, TargetChain
from node.events import EVENT_KINDS
from protocol.cid import CID
from protocol.errors import CIDError, ProtocolError
from protocol.objects import Attestation, Commit
from verifier.candidates import CandidateError, workspace_from_store

from . import models as m
from .metrics import LatencyMiddleware, Metrics
from .sse import event_stream

log = logging.getLogger(__name__)

STATIC_DIR = FilePath(__file__).parent / "static"
API_VERSION = "1"
BUNDLE_MEDIA_TYPES = ("application/x-poi-bundle", "application/octet-stream")
MAX_JSON_BYTES = 1 << 20
"""Largest JSON body (a patch) accepted."""
DAG_PAGE_DEFAULT = 1000
DAG_PAGE_MAX = 10_000
CACHED_ANSWERS = 64
"""Built chain and DAG-page answers kept per node (`NodeView.cached_json`), newest last."""
PATCH_FETCH_TIMEOUT_S = 10.0
"""How long ``/patch`` waits for peers to send a tree or blobs this node lacks."""
COMMIT_CACHE_MAX = 200_000
"""Decoded commits kept in memory (commits are immutable; the DAG page reads all of them)."""

ERRORS = {code: {"model": m.ErrorBody, "description": text} for code, text in (
    (400, "Malformed input: a bad CID, query parameter or body."),
    (404, "Unknown commit, target or other object."),
)}


class ApiError(Exception):
    """Answer with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _errors(*codes: int, explicit_json: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error responses (``explicit_json`` on routes whose success response
    is not JSON, where FastAPI would otherwise document errors with that media type)."""
    extra = {409: "The node cannot do this (e.g. it has no proposer role).",
             413: "The body is larger than the node accepts.",
             415: "The body's content type is not one this endpoint reads."}
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        text = ERRORS[code]["description"] if code in ERRORS else extra[code]
        if explicit_json:
            out[code] = {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        else:
            out[code] = {"model": m.ErrorBody, "description": text}
    return out


CID_PATTERN = r"^b[a-z2-7]+$"
CidPath = Annotated[str, Path(description="A CID: base32 text, 'b' and lower case.",
                              json_schema_extra={"pattern": CID_PATTERN})]
TargetPath = Annotated[str, Path(description="A target's CID (base32 text).",
                                 json_schema_extra={"pattern": CID_PATTERN})]


class NodeView:
    """Answers the API's questions from a node's store and chains (no HTTP here)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self._commits: dict[CID, Commit] = {}
        self._summaries: dict[CID, dict[str, Any]] = {}
        self._answers: dict[tuple, tuple[int, bytes]] = {}

    def cached_json(self, what: str, chain: TargetChain, build: Callable[[], Any],
                    *params: Any) -> bytes:
        """``build()`` as JSON bytes, reused while the chain's ``view_version`` stays the same:
        the chain and DAG pages cost milliseconds to build and serialise, and a busy node gets
        many identical queries between two changes (head votes alone do not change them)."""
        version = getattr(chain, "view_version", None)
        key = (what, chain.cid, params)
        hit = self._answers.get(key)
        if hit is not None and version is not None and hit[0] == version:
            return hit[1]
        body = _json_bytes(build())
        if version is not None:
            self._answers.pop(key, None)
            self._answers[key] = (version, body)
            while len(self._answers) > CACHED_ANSWERS:
                self._answers.pop(next(iter(self._answers)))
        return body

    @property
    def store(self) -> Any:
        return self.node.store

    # -- lookups ----------------------------------------------------------------------------
    @staticmethod
    def parse_cid(text: str, what: str = "CID") -> CID:
        try:
            return CID.parse(text)
        except CIDError as exc:
            raise ApiError(400, f"{what} {text[:80]!r} is malformed: {exc}") from None

    def chain(self, target_text: str) -> TargetChain:
        cid = self.parse_cid(target_text, "target")
        chain = self.node.chains.get(cid)
        if chain is None:
            followed = ", ".join(str(c) for c in self.node.chains) or "none"
            raise ApiError(404, f"this node does not follow target {cid} (it follows: "
                                f"{followed})")
        return chain

    def commit(self, cid: CID) -> Commit:
        cached = self._commits.get(cid)
        if cached is not None:
            return cached
        try:
            obj = self.store.get(cid)
        except ProtocolError as exc:  # pragma: no cover - the store checks what it admits
            raise ApiError(404, f"{cid} cannot be read from the store: {exc}") from None
        if obj is None:
            if self.store.is_pending(cid):
                raise ApiError(404, f"commit {cid} is known but still waits for its parents")
            raise ApiError(404, f"no commit {cid} on this node")
        if not isinstance(obj, Commit):
            kind = "blob" if cid.codec == "raw" else getattr(obj, "TYPE", type(obj).__name__)
            raise ApiError(404, f"{cid} is a {kind}, not a commit")
        if len(self._commits) >= COMMIT_CACHE_MAX:
            self._commits.clear()
            self._summaries.clear()
        self._commits[cid] = obj
        return obj

    def summary(self, cid: CID) -> dict[str, Any]:
        """A commit's unchanging fields as JSON text values (cached: commits are immutable
        and the DAG page asks for all of them)."""
        cached = self._summaries.get(cid)
        if cached is None:
            commit = self.commit(cid)
            cached = self._summaries[cid] = {
                "cid": str(cid), "parents": [str(p) for p in commit.parents],
                "message": commit.message, "author": commit.author.hex(),
                "time_ms": commit.time_ms, "claim_ratio_ppm": commit.claim.ratio_ppm}
        return cached

    def commit_and_chain(self, text: str) -> tuple[Commit, TargetChain]:
        commit = self.commit(self.parse_cid(text, "commit"))
        chain = self.node.chains.get(commit.target)
        if chain is None:
            raise ApiError(404, f"commit {commit.cid} belongs to target {commit.target}, which "
                                "this node does not follow")
        return commit, chain

    @staticmethod
    def status_of(chain: TargetChain, cid: CID) -> str:
        return chain.status(cid).value if chain.knows(cid) else CommitStatus.PENDING.value

    # -- answers ----------------------------------------------------------------------------
    def target_info(self, chain: TargetChain) -> dict[str, Any]:
        t = chain.target
        return {
            "cid": str(t.cid), "name": t.name, "description": t.description, "metric": t.metric,
            "direction": t.direction, "profile": t.profile, "writable": list(t.writable),
            "validators": [{"key": v.key.hex(), "stake": v.stake} for v in t.validators],
            "genesis_time_ms": t.genesis_time_ms, "epoch_seconds": t.epoch_seconds,
            "quorum_ppm": t.quorum_ppm, "head": str(chain.head),
            "finalized": str(chain.finalized), "commit_count": len(chain.index),
        }

    def commit_info(self, commit: Commit, chain: TargetChain) -> dict[str, Any]:
        cid = commit.cid
        known = chain.knows(cid)
        tally = chain.tally(cid)
        claim = commit.claim
        return {
            "cid": str(cid), "target": str(commit.target),
            "parents": [str(p) for p in commit.parents], "tree": str(commit.tree),
            "author": commit.author.hex(), "message": commit.message, "time_ms": commit.time_ms,
            "claim": {"profile": claim.profile, "ratio_ppm": claim.ratio_ppm,
                      "lo_ppm": claim.lo_ppm, "hi_ppm": claim.hi_ppm, "pairs": claim.pairs},
            "status": self.status_of(chain, cid),
            "stake": {"improved": tally.improved, "against": tally.against,
                      "neutral": tally.neutral, "verifiers": tally.verifiers,
                      "total_active": chain.fork_choice.total_active_stake()},
            "verified_ratio_ppm": chain.verified_ratio(cid) if known else None,
            "children": [str(c) for c in (chain.index.children(cid) if known
                                          else self.store.children(cid))],
            "attestation_count": len(self.store.attestations_on(cid)),
            "on_chain": known and cid in set(chain.fork_choice.canonical_chain()),
        }

    def attestations(self, commit: Commit) -> list[dict[str, Any]]:
        out = []
        for cid in self.store.attestations_on(commit.cid):
            att = self.store.get_typed(cid, Attestation)
            if att is None:  # pragma: no cover - indexed objects are stored
                continue
            v = att.verdict
            out.append({
                "cid": str(att.cid), "verifier": att.verifier.hex(), "seq": att.seq,
                "epoch": att.epoch, "time_ms": att.time_ms, "head": str(att.head),
                "verdict": None if v is None else {
                    "commit": str(v.commit), "parent": str(v.parent), "result": v.result,
                    "ratio_ppm": v.ratio_ppm, "lo_ppm": v.lo_ppm, "hi_ppm": v.hi_ppm,
                    "pairs": v.pairs, "gate_seed": v.gate_seed.hex(), "profile": v.profile,
                    "toolchain": v.toolchain},
            })
        return out

    def lineage(self, commit: Commit, chain: TargetChain) -> list[str]:
        if chain.knows(commit.cid):
            return [str(c) for c in chain.index.lineage(commit.cid)]
        path = [commit.cid, commit.parents[0]]
        while path[-1] != chain.cid:
            path.append(self.commit(path[-1]).parents[0])
        return [str(c) for c in path]

    def heads(self, chain: TargetChain) -> dict[str, Any]:
        return {"head": str(chain.head), "finalized": str(chain.finalized),
                "heads": [str(c) for c in chain.index.heads()]}

    def canonical(self, chain: TargetChain) -> dict[str, Any]:
        steps = []
        for step in chain.canonical_chain():
            summary = self.summary(step.commit)
            steps.append({
                "cid": summary["cid"], "message": summary["message"],
                "author": summary["author"], "time_ms": summary["time_ms"],
                "ratio_ppm": step.ratio_ppm, "cumulative_ppm": step.cumulative_ppm,
                "speedup": step.speedup, "final": step.final,
            })
        speedup = steps[-1]["speedup"] if steps else 1.0
        return {"target": str(chain.cid), "speedup": speedup, "steps": steps}

    def dag(self, chain: TargetChain, since: int, limit: int) -> dict[str, Any]:
        total = len(chain.index)
        on_chain = set(chain.fork_choice.canonical_chain())
        # The index's graph keeps insertion order: the target, then commits as they arrived.
        cids = list(islice(chain.index.graph.nodes, since + 1, since + 1 + limit))
        nodes, edges = [], []
        for cid in cids:
            summary = self.summary(cid)
            nodes.append({**summary, "status": chain.status(cid).value,
                          "ratio_ppm": chain.verified_ratio(cid), "on_chain": cid in on_chain})
            edges.extend([p, summary["cid"]] for p in summary["parents"])
        end = since + len(cids)
        return {"nodes": nodes, "edges": edges, "next": end if end < total else None,
                "total": total}

    def stakes(self, chain: TargetChain) -> dict[str, Any]:
        state = chain.ledger.state
        rewards = []
        for commit_cid, r in state.rewards.items():
            if r.proposer_reward:
                rewards.append({"commit": str(commit_cid), "account": r.proposer.hex(),
                                "amount": r.proposer_reward, "kind": "proposer"})
            rewards.extend({"commit": str(commit_cid), "account": key.hex(), "amount": amount,
                            "kind": "verifier"} for key, amount in r.verifier_rewards)
        return {
            "epoch": chain.epoch, "ledger_epoch": state.epoch, "minted": state.minted,
            "burned": state.burned,
            "accounts": [{"key": key.hex(), "free": a.free, "bonded": a.bonded,
                          "locked": a.locked, "ejected": a.ejected}
                         for key, a in sorted(state.accounts.items())],
            "slashes": [{"offender": s.offender.hex(), "reason": s.reason, "epoch": s.epoch,
                         "amount": s.amount, "source": str(s.source)} for s in state.slashes],
            "rewards": rewards,
            "equivocators": sorted(k.hex() for k in chain.fork_choice.equivocators()),
        }

    def rejected(self, chain: TargetChain) -> list[dict[str, Any]]:
        out = []
        rejected = chain.fork_choice.rejected()
        excluded = chain.fork_choice.equivocators()
        for cid in (c for c in chain.index.graph.nodes if c in rejected):
            commit = self.commit(cid)
            latest: dict[bytes, Attestation] = {}
            for att_cid in self.store.attestations_on(cid):
                att = self.store.get_typed(att_cid, Attestation)
                if (att.verdict is not None and att.verdict.commit == cid
                        and att.verifier not in excluded):
                    seen = latest.get(att.verifier)
                    if seen is None or att.seq > seen.seq:
                        latest[att.verifier] = att
            reasons: dict[str, int] = {}
            for att in latest.values():
                reasons[att.verdict.result] = reasons.get(att.verdict.result, 0) + 1
            out.append({"cid": str(cid), "message": commit.message,
                        "author": commit.author.hex(),
                        "stake_against": chain.tally(cid).against,
                        "reasons": dict(sorted(reasons.items()))})
        return out

    def missing_content(self, commit: Commit, chain: TargetChain) -> list[CID]:
        """Trees, then blobs, that rendering the commit's patch needs and the store lacks:
        the base tree and both commit trees, then the blobs of the files that differ."""
        store = self.store
        trees = [chain.target.base_tree, commit.tree]
        parent = commit.parents[0]
        if parent != chain.cid:
            trees.append(self.commit(parent).tree)
        missing = [t for t in trees if not store.has(t)]
        if missing:
            return missing
        old, new = _writable_entries(store, chain, parent), _writable_entries(store, chain,
                                                                              commit.cid)
        blobs = {entry.blob for path in old.keys() | new.keys() if old.get(path) != new.get(path)
                 for entry in (old.get(path), new.get(path)) if entry is not None}
        return sorted(b for b in blobs if not store.has(b))


def _writable_entries(store: Any, chain: TargetChain, cid: CID) -> dict[str, Any]:
    """The writable-scope files of a commit (or of the target: its base tree's writable part);
    everything outside that scope is the base tree's, the same on both sides of a patch."""
    if cid == chain.cid:
        return dict(writable_part(store.get(chain.target.base_tree), chain.target.writable)
                    .entries)
    return dict(store.get(store.get_typed(cid, Commit).tree).entries)


def render_patch(store: Any, chain: TargetChain, commit: Commit) -> str:
    """The commit's change as a unified diff against its first parent (runs in a thread)."""
    parent = workspace_from_store(store, chain.target, commit.parents[0])
    child = workspace_from_store(store, chain.target, commit.cid)
    return unified_diff(parent.entries, child.entries, store.get_bytes)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"Content-Length {declared[:40]!r} is not a number") from None
        if size > limit:
            raise ApiError(413, f"body of {size} bytes is over this endpoint's {limit}-byte "
                                "limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body is over this endpoint's {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def create_app(node: Any, *, max_bundle_bytes: int = MAX_BUNDLE_BYTES,
               max_json_bytes: int = MAX_JSON_BYTES) -> FastAPI:
    """The API of ``node`` (the Node object of node/runtime.py, or anything shaped like it)."""
    view = NodeView(node)
    metrics = Metrics(node)
    app = FastAPI(
        title="poi node API", version=API_VERSION, docs_url=None, redoc_url=None,
        description="Query a poi node's improvement DAG, submit signed commits and patches, "
                    "follow its events. CIDs are base32 text, keys hex, ratios in ppm of "
                    "candidate/parent time (lower is faster).",
    )
    app.state.node = node
    app.state.view = view
    app.state.metrics = metrics
    app.add_middleware(LatencyMiddleware, metrics=metrics)

    # -- errors -------------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no endpoint {request.url.path}; see /docs for the API"
        return JSONResponse({"error": message}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _explain_validation(exc.errors())}, status_code=400)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    # -- node ---------------------------------------------------------------------------------
    @app.get("/v1/status", response_model=m.NodeStatus, tags=["node"])
    async def status() -> dict[str, Any]:
        """The node: identity, roles, peers, sync state, verification queue."""
        return node.status()

    # -- targets ------------------------------------------------------------------------------
    @app.get("/v1/targets", response_model=list[m.TargetInfo], tags=["targets"])
    async def targets() -> list[dict[str, Any]]:
        """The targets (DAGs) this node follows."""
        return [view.target_info(chain) for chain in node.chains.values()]

    @app.get("/v1/targets/{target}", response_model=m.TargetInfo, responses=_errors(400, 404),
             tags=["targets"])
    async def target(target: TargetPath) -> dict[str, Any]:
        """One target: its genesis parameters, head, finalized commit and size."""
        return view.target_info(view.chain(target))

    @app.get("/v1/targets/{target}/heads", response_model=m.Heads, responses=_errors(400, 404),
             tags=["targets"])
    async def heads(target: TargetPath) -> dict[str, Any]:
        """The fork-choice head, the last final commit, and every tip of the DAG."""
        return view.heads(view.chain(target))

    @app.get("/v1/targets/{target}/chain", response_model=m.CanonicalChain,
             responses=_errors(400, 404), tags=["targets"])
    async def canonical(target: TargetPath) -> Response:
        """The canonical chain, each step with its verified ratio and cumulative speed-up."""
        chain = view.chain(target)
        return _fast_json(view.cached_json("chain", chain, lambda: view.canonical(chain)))

    @app.get("/v1/targets/{target}/dag", response_model=m.DagPage, responses=_errors(400, 404),
             tags=["targets"])
    async def dag(target: TargetPath,
                  since: int = Query(0, ge=0, description="Skip this many commits (arrival "
                                     "order); pass the previous page's `next`."),
                  limit: int = Query(DAG_PAGE_DEFAULT, ge=1, le=DAG_PAGE_MAX)) -> Response:
        """The DAG as nodes and edges, in arrival order (parents before children)."""
        chain = view.chain(target)
        return _fast_json(view.cached_json("dag", chain, lambda: view.dag(chain, since, limit),
                                           since, limit))

    @app.get("/v1/targets/{target}/stakes", response_model=m.Stakes,
             responses=_errors(400, 404), tags=["targets"])
    async def stakes(target: TargetPath) -> dict[str, Any]:
        """Accounts, slashes, rewards and equivocators, from the finalized chain."""
        return view.stakes(view.chain(target))

    @app.get("/v1/targets/{target}/rejected", response_model=list[m.RejectedCommit],
             responses=_errors(400, 404), tags=["targets"])
    async def rejected(target: TargetPath) -> list[dict[str, Any]]:
        """Commits the verdict stake rejected, with the verdicts that did it."""
        return view.rejected(view.chain(target))

    # -- commits ------------------------------------------------------------------------------
    @app.get("/v1/commits/{cid}", response_model=m.CommitInfo, responses=_errors(400, 404),
             tags=["commits"])
    async def commit(cid: CidPath) -> dict[str, Any]:
        """One commit: claim, status (pending/accepted/rejected/final), stake for and
        against."""
        return view.commit_info(*view.commit_and_chain(cid))

    @app.get("/v1/commits/{cid}/patch", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "A unified diff (git apply accepts it)."},
                        **_errors(400, 404, explicit_json=True)}, tags=["commits"])
    async def patch(cid: CidPath) -> PlainTextResponse:
        """The commit's change as a unified diff against its first parent."""
        commit, chain = view.commit_and_chain(cid)
        missing = view.missing_content(commit, chain)
        fetch: Callable | None = getattr(node, "fetch", None)
        if missing and fetch is not None:
            with anyio.move_on_after(PATCH_FETCH_TIMEOUT_S), contextlib.suppress(Exception):
                await fetch(missing)
                missing = view.missing_content(commit, chain)
                if missing:  # the trees arrived; now their blobs
                    await fetch(missing)
            missing = view.missing_content(commit, chain)
        if missing:
            raise ApiError(404, f"the content of commit {commit.cid} is not on this node "
                                f"(missing {len(missing)} objects, e.g. {missing[0]})")
        try:
            text = await anyio.to_thread.run_sync(partial(render_patch, node.store, chain,
                                                          commit))
        except (CandidateError, WorkspaceError, StoreError) as exc:
            raise ApiError(404, f"cannot render the patch of {commit.cid}: {exc}") from None
        return PlainTextResponse(text, media_type="text/plain; charset=utf-8")

    @app.get("/v1/commits/{cid}/attestations", response_model=list[m.AttestationInfo],
             responses=_errors(400, 404), tags=["commits"])
    async def attestations(cid: CidPath) -> list[dict[str, Any]]:
        """Every attestation carrying a verdict on the commit, in arrival order."""
        commit = view.commit(view.parse_cid(cid, "commit"))
        return view.attestations(commit)

    @app.get("/v1/commits/{cid}/lineage", response_model=list[str], responses=_errors(400, 404),
             tags=["commits"])
    async def lineage(cid: CidPath) -> list[str]:
        """The first-parent line from the commit back to its target (commit first)."""
        return view.lineage(*view.commit_and_chain(cid))

    @app.post("/v1/commits", response_model=m.SubmitResultBody,
              responses={400: {"model": m.SubmitRejected,
                               "description": "A malformed bundle, or every object rejected."},
                         **_errors(413, 415)},
              openapi_extra={"requestBody": {"required": True, "content": {
                  media: {"schema": {"type": "string", "format": "binary"}}
                  for media in BUNDLE_MEDIA_TYPES}}},
              tags=["commits"])
    async def submit(request: Request) -> Any:
        """Submit signed objects (a commit with its tree and blobs) as a bundle: each is
        validated exactly as gossip validates it, stored, applied and gossiped."""
        if _media_type(request) not in BUNDLE_MEDIA_TYPES:
            raise ApiError(415, "send a bundle with Content-Type: application/x-poi-bundle")
        body = await read_body(request, max_bundle_bytes)
        try:
            objects = decode_bundle(body, max_bytes=max_bundle_bytes)
        except BundleError as exc:
            raise ApiError(400, f"malformed bundle: {exc}") from None
        try:
            result = await node.submit_objects(objects)
        except ProtocolError as exc:
            raise ApiError(400, f"malformed objects: {exc}") from None
        out = {"accepted": [str(c) for c in result.accepted],
               "rejected": [[i, r] for i, r in result.rejected],
               "ignored": [[i, r] for i, r in result.ignored]}
        if result.rejected and not result.accepted and not result.ignored:
            reasons = "; ".join(f"[{i}] {r}" for i, r in result.rejected[:5])
            return JSONResponse({"error": f"every object was rejected: {reasons}", **out},
                                status_code=400)
        return out

    @app.post("/v1/patches", status_code=202, response_model=m.PatchQueued,
              responses=_errors(400, 409, 413, 415),
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": m.PatchRequest.model_json_schema()}}}},
              tags=["commits"])
    async def submit_patch(request: Request) -> dict[str, Any]:
        """Hand a patch to this node's proposer, which measures it and, if it is faster,
        commits and publishes it."""
        proposer = getattr(node, "proposer", None)
        if proposer is None:
            raise ApiError(409, "this node has no proposer role (start it with --role "
                                "proposer to submit patches here)")
        if _media_type(request) != "application/json":
            raise ApiError(415, "send JSON with Content-Type: application/json")
        body = await read_body(request, max_json_bytes)
        try:
            req = m.PatchRequest.model_validate_json(body)
        except ValidationError as exc:
            raise ApiError(400, f"malformed patch request: {_explain_validation(exc.errors())}"
                           ) from None
        try:
            result = await proposer.submit_patch(req.patch, req.message)
        except (ValueError, ProtocolError, CandidateError) as exc:
            raise ApiError(400, f"patch refused: {exc}") from None
        return {"queued": True, **(result or {})}

    # -- events and metrics -------------------------------------------------------------------
    @app.get("/v1/events", tags=["node"],
             responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                              "description": "Server-sent events: id, event (kind), data "
                                             "(JSON)."}, **_errors(400)})
    async def events(kinds: str | None = Query(
            None, description=f"Comma-separated kinds to receive ({', '.join(EVENT_KINDS)}); "
                              "all when absent.")) -> StreamingResponse:
        """The node's live events: commits, attestations, head changes, finality, slashings."""
        wanted = None
        if kinds is not None:
            wanted = frozenset(k.strip() for k in kinds.split(",") if k.strip())
            unknown = sorted(wanted - set(EVENT_KINDS))
            if unknown or not wanted:
                raise ApiError(400, f"unknown event kinds {unknown}; known: "
                                    f"{', '.join(EVENT_KINDS)}")
        return StreamingResponse(event_stream(node.events, wanted),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    @app.get("/metrics", response_class=PlainTextResponse, tags=["node"],
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format."}})
    async def prometheus() -> Response:
        """Prometheus metrics: node counters, fork choice per target, HTTP latencies."""
        body, media_type = metrics.render()
        return Response(body, media_type=media_type)

    # -- the page -----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        """The API reference, rendered from /openapi.json by the page itself (FastAPI's
        Swagger page would load its code from a CDN, which a node's users may not reach)."""
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _json_bytes(content: Any) -> bytes:
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def _fast_json(body: bytes) -> Response:
    """Plain JSON for the large, hot answers (the DAG, the chain): FastAPI validates a returned
    dict against the route's response model, which costs more than building it; these dicts
    are built to the model's shape, which the API tests and schemathesis check."""
    return Response(body, media_type="application/json")


def _explain_validation(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def serve_api(node: Any, host: str = "127.0.0.1", port: int = 0,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED, *,
                    app: FastAPI | None = None) -> None:
    """Serve the node's API with Hypercorn's trio worker in the caller's trio loop.

    Reports the bound URL (``http://127.0.0.1:PORT``, the real port when ``port`` is 0) through
    ``task_status``; runs until cancelled.
    """
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve

    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.include_server_header = False
    config.graceful_timeout = 1.0

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app or create_app(node), config))
        task_status.started(binds[0])

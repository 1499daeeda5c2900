"""The content-addressed object store: SQLite in WAL mode (docs/PROTOCOL.md §Store).

Every object a node holds lives here, keyed by CID, with the indices the node and the HTTP API
query: a target's commits in arrival (topological) order, a commit's parents and children, the
attestations on a commit, each verifier's latest vote, evidence, challenges and stake
transactions.

Guarantees:

- **Integrity.** Every put checks that the bytes hash to the CID and decode to a valid object
  before anything is written.
- **Durability.** A put that returned is on disk (``synchronous=FULL``): a crash at any later
  moment, kill -9 included, loses none of it. An object and its index rows are written in one
  transaction, so a crash never leaves a half-written index.
- **Completeness.** An object whose dependencies (a commit's parents and target, an
  attestation's commit, head and previous attestation...) are not all present is held as
  *pending* and released, with everything waiting on it, when the last one arrives. The DAG
  therefore only ever contains objects whose ancestry is complete, in an order where parents
  come before children.

One writer connection (guarded by a lock) and one read connection per thread: WAL lets readers
run while a write is in progress, so queries from the HTTP API do not wait for ingest.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from protocol.cid import CID
from protocol.errors import CIDError, ProtocolError
from protocol.objects import (
    Attestation,
    Blob,
    Challenge,
    Commit,
    Evidence,
    PoiObject,
    Ruling,
    StakeTx,
    Target,
    decode_object,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    cid BLOB PRIMARY KEY, type TEXT NOT NULL, data BLOB NOT NULL, stored_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    cid BLOB PRIMARY KEY, type TEXT NOT NULL, data BLOB NOT NULL, since_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_deps (
    missing BLOB NOT NULL, cid BLOB NOT NULL, PRIMARY KEY (missing, cid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_deps_by_cid ON pending_deps (cid);
CREATE TABLE IF NOT EXISTS targets (cid BLOB PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commits (
    seqno INTEGER PRIMARY KEY AUTOINCREMENT, cid BLOB NOT NULL UNIQUE, target BLOB NOT NULL,
    author BLOB NOT NULL, tree BLOB NOT NULL, time_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS commits_by_target ON commits (target, seqno);
-- Primary-key columns lead in WITHOUT ROWID tables: SQLite 3.40's integrity_check misreports
-- NOT NULL columns placed before them.
CREATE TABLE IF NOT EXISTS edges (
    child BLOB NOT NULL, position INTEGER NOT NULL, parent BLOB NOT NULL,
    PRIMARY KEY (child, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_by_parent ON edges (parent);
CREATE TABLE IF NOT EXISTS attestations (
    seqno INTEGER PRIMARY KEY AUTOINCREMENT, cid BLOB NOT NULL UNIQUE, target BLOB NOT NULL,
    verifier BLOB NOT NULL, seq INTEGER NOT NULL, head BLOB NOT NULL, commit_cid BLOB,
    result TEXT, epoch INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attestations_by_verifier ON attestations (target, verifier, seq);
CREATE INDEX IF NOT EXISTS attestations_by_commit ON attestations (commit_cid);
CREATE TABLE IF NOT EXISTS latest_votes (
    target BLOB NOT NULL, verifier BLOB NOT NULL, seq INTEGER NOT NULL,
    attestation BLOB NOT NULL, head BLOB NOT NULL, PRIMARY KEY (target, verifier)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evidence (
    seqno INTEGER PRIMARY KEY AUTOINCREMENT, cid BLOB NOT NULL UNIQUE, target BLOB NOT NULL,
    offender BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS challenges (
    seqno INTEGER PRIMARY KEY AUTOINCREMENT, cid BLOB NOT NULL UNIQUE, target BLOB NOT NULL,
    attestation BLOB NOT NULL, challenger BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rulings (
    seqno INTEGER PRIMARY KEY AUTOINCREMENT, cid BLOB NOT NULL UNIQUE, target BLOB NOT NULL,
    challenge BLOB NOT NULL, member BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS rulings_by_challenge ON rulings (challenge);
CREATE TABLE IF NOT EXISTS stake_txs (
    seqno INTEGER PRIMARY KEY AUTOINCREMENT, cid BLOB NOT NULL UNIQUE, target BLOB NOT NULL,
    account BLOB NOT NULL, nonce INTEGER NOT NULL
);
"""

StoredObject = PoiObject | Blob

ARRIVAL_TABLES = {"commits": "commits", "attestations": "attestations", "evidence": "evidence",
                  "challenges": "challenges", "rulings": "rulings", "stake": "stake_txs"}
"""Each kind of target object with an arrival order, and the index table that records it."""


class StoreError(Exception):
    """The store cannot do what was asked (not a protocol violation by a peer)."""


@dataclass
class PutResult:
    """What a put did: ``stored`` (now in the DAG), ``pending`` (waiting for ``missing``), or
    ``duplicate``; ``released`` lists objects that were pending on it and are now stored."""

    cid: CID
    status: str
    missing: tuple[CID, ...] = ()
    released: list[CID] = field(default_factory=list)


def dependencies(obj: StoredObject) -> set[CID]:
    """The objects that must be stored before ``obj`` may be (docs/PROTOCOL.md §Store).

    Trees and blobs are content, not structure: a commit does not wait for its tree, which the
    verifier fetches when it evaluates the commit.
    """
    if isinstance(obj, Commit):
        return {obj.target, *obj.parents}
    if isinstance(obj, Attestation):
        deps = {obj.target, obj.head}
        if obj.prev is not None:
            deps.add(obj.prev)
        if obj.verdict is not None:
            deps.update((obj.verdict.commit, obj.verdict.parent))
        return deps
    if isinstance(obj, Challenge):
        return {obj.target, obj.anchor}
    if isinstance(obj, Ruling):
        return {obj.target, obj.challenge}
    if isinstance(obj, Evidence | StakeTx):
        return {obj.target}
    return set()


def decode_stored(cid: CID, data: bytes) -> StoredObject:
    """Check ``data`` hashes to ``cid`` and decode it by the CID's codec."""
    if not cid.matches(data):
        raise CIDError(f"bytes do not hash to {cid}")
    if cid.codec == "raw":
        return Blob.decode(data)
    return decode_object(data)


class Store:
    """An object store in one SQLite file. Safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._writer = self._connect()
        with self._writer:
            self._writer.executescript(_SCHEMA)
            self._writer.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                                 (str(SCHEMA_VERSION),))
        version = self._writer.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
        if int(version) != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {version}, expected {SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    @property
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
        return conn

    def close(self) -> None:
        with self._write_lock:
            self._writer.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------
    # Writing
    # ------------------------------------------------------------------------------------------

    def put(self, obj: StoredObject) -> PutResult:
        """Store one validated object (or hold it as pending); durable when this returns."""
        return self.put_many([obj])[0]

    def put_bytes(self, cid: CID, data: bytes) -> PutResult:
        """Check, decode and store bytes received for ``cid`` (e.g. from a sync response)."""
        return self.put(decode_stored(cid, data))

    def put_many(self, objects: Iterable[StoredObject]) -> list[PutResult]:
        """Store several objects in one transaction (one fsync): the batch path for ingest."""
        objects = list(objects)
        now = int(time.time() * 1000)
        with self._write_lock, self._transaction() as cur:
            results = self._put_batch(cur, objects, now)
            if results is None:
                results = [self._put_one(cur, obj, now) for obj in objects]
        return results

    def _put_batch(self, cur: sqlite3.Cursor, objects: list[StoredObject], now: int
                   ) -> list[PutResult] | None:
        """The common case in a few statements: nothing is pending (so nothing can be
        released) and every object's dependencies are stored or come earlier in the batch.
        The index rows are the ones `_put_one` writes (`_index_rows`), grouped by statement.
        None: not that case (the caller goes object by object)."""
        if cur.execute("SELECT EXISTS (SELECT 1 FROM pending)").fetchone()[0]:
            return None
        keys = [bytes(obj.cid) for obj in objects]
        deps = [[bytes(d) for d in dependencies(obj)] for obj in objects]
        known = _present(cur, "objects", {*keys, *(d for ds in deps for d in ds)})
        results: list[PutResult] = []
        rows: dict[str, list[tuple]] = {}
        for obj, key, needs in zip(objects, keys, deps, strict=True):
            if key in known:
                results.append(PutResult(obj.cid, "duplicate"))
                continue
            if any(d not in known for d in needs):
                return None
            known.add(key)
            for sql, params in _index_rows(obj, key, now):
                rows.setdefault(sql, []).append(params)
            results.append(PutResult(obj.cid, "stored"))
        for sql, params in rows.items():
            cur.executemany(sql, params)
        return results

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        cur = self._writer.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")

    def _put_one(self, cur: sqlite3.Cursor, obj: StoredObject, now: int) -> PutResult:
        cid = obj.cid
        key = bytes(cid)
        if cur.execute("SELECT 1 FROM objects WHERE cid=?", (key,)).fetchone():
            return PutResult(cid, "duplicate")
        missing = sorted(d for d in dependencies(obj) if not cur.execute(
            "SELECT 1 FROM objects WHERE cid=?", (bytes(d),)).fetchone())
        if missing:
            cur.execute("INSERT OR IGNORE INTO pending VALUES (?,?,?,?)",
                        (key, _type_of(obj), obj.encode(), now))
            cur.executemany("INSERT OR IGNORE INTO pending_deps VALUES (?,?)",
                            [(bytes(m), key) for m in missing])
            return PutResult(cid, "pending", tuple(missing))
        result = PutResult(cid, "stored")
        self._insert(cur, obj, now)
        result.released = self._release(cur, key, now)
        return result

    def _release(self, cur: sqlite3.Cursor, arrived: bytes, now: int) -> list[CID]:
        """Store every pending object whose last missing dependency just arrived."""
        released: list[CID] = []
        queue = [arrived]
        while queue:
            dep = queue.pop()
            waiting = [row[0] for row in cur.execute(
                "SELECT cid FROM pending_deps WHERE missing=?", (dep,))]
            cur.execute("DELETE FROM pending_deps WHERE missing=?", (dep,))
            for waiter in waiting:
                if cur.execute("SELECT 1 FROM pending_deps WHERE cid=?", (waiter,)).fetchone():
                    continue  # still waiting on something else
                row = cur.execute("SELECT data FROM pending WHERE cid=?", (waiter,)).fetchone()
                cur.execute("DELETE FROM pending WHERE cid=?", (waiter,))
                if row is None:
                    continue
                obj = decode_object(row[0])
                self._insert(cur, obj, now)
                released.append(obj.cid)
                queue.append(waiter)
        return released

    def _insert(self, cur: sqlite3.Cursor, obj: StoredObject, now: int) -> None:
        key = bytes(obj.cid)
        cur.execute("DELETE FROM pending WHERE cid=?", (key,))
        for sql, params in _index_rows(obj, key, now):
            cur.execute(sql, params)

    # ------------------------------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------------------------------

    def has(self, cid: CID) -> bool:
        return self._reader.execute("SELECT 1 FROM objects WHERE cid=?",
                                    (bytes(cid),)).fetchone() is not None

    def get_bytes(self, cid: CID) -> bytes | None:
        row = self._reader.execute("SELECT data FROM objects WHERE cid=?",
                                   (bytes(cid),)).fetchone()
        return None if row is None else bytes(row[0])

    def get(self, cid: CID) -> StoredObject | None:
        data = self.get_bytes(cid)
        return None if data is None else decode_stored(cid, data)

    def get_typed(self, cid: CID, kind: type[PoiObject]) -> PoiObject | None:
        obj = self.get(cid)
        if obj is not None and not isinstance(obj, kind):
            raise StoreError(f"{cid} is a {_type_of(obj)}, not a {kind.TYPE}")
        return obj

    def blob_size(self, cid: CID) -> int | None:
        row = self._reader.execute("SELECT length(data) FROM objects WHERE cid=?",
                                   (bytes(cid),)).fetchone()
        return None if row is None else row[0]

    def arrivals(self, kind: str, target: CID, since: int, limit: int) -> list[tuple[int, CID]]:
        """(arrival number, CID) of a target's objects of ``kind`` (`ARRIVAL_TABLES`) after
        arrival number ``since``, oldest first: a cursor a peer can page through (the index
        tables are append-only, so a cursor stays valid)."""
        rows = self._reader.execute(
            f"SELECT seqno, cid FROM {ARRIVAL_TABLES[kind]} WHERE target=? AND seqno>? "
            "ORDER BY seqno LIMIT ?", (bytes(target), since, limit)).fetchall()
        return [(row[0], CID(bytes(row[1]))) for row in rows]

    def count_of(self, kind: str, target: CID) -> int:
        """How many objects of ``kind`` (`ARRIVAL_TABLES`) a target has in the DAG."""
        return self._reader.execute(
            f"SELECT count(*) FROM {ARRIVAL_TABLES[kind]} WHERE target=?",
            (bytes(target),)).fetchone()[0]

    def has_many(self, cids: Iterable[CID], *, pending: bool = False) -> set[CID]:
        """Which of ``cids`` the DAG holds (with ``pending``: the DAG or the pending set), in
        one query per few hundred CIDs rather than one per CID."""
        keys = {bytes(c) for c in cids}
        found = _present(self._reader, "objects", keys)
        if pending:
            found |= _present(self._reader, "pending", keys - found)
        return {CID(key) for key in found}

    def is_pending(self, cid: CID) -> bool:
        return self._reader.execute("SELECT 1 FROM pending WHERE cid=?",
                                    (bytes(cid),)).fetchone() is not None

    def missing(self) -> list[CID]:
        """Dependencies that pending objects wait for and nobody has stored: what to fetch."""
        rows = self._reader.execute(
            "SELECT DISTINCT missing FROM pending_deps WHERE missing NOT IN "
            "(SELECT cid FROM pending)").fetchall()
        return [CID(row[0]) for row in rows]

    def evict_pending(self, *, older_than_ms: int, keep: int) -> int:
        """Drop pending objects held since before ``older_than_ms``, then all but the newest
        ``keep``; returns how many were dropped. Pending objects are whatever peers sent
        ahead of their dependencies, so without a bound a peer could fill the disk with
        objects whose parents never come. Dropping one loses nothing the DAG holds: if its
        dependencies turn up, sync fetches it again from whoever stored it."""
        with self._write_lock, self._transaction() as cur:
            doomed = [row[0] for row in cur.execute(
                "SELECT cid FROM pending WHERE since_ms < ?", (older_than_ms,))]
            doomed += [row[0] for row in cur.execute(
                "SELECT cid FROM pending WHERE since_ms >= ? ORDER BY since_ms DESC, cid "
                "LIMIT -1 OFFSET ?", (older_than_ms, max(0, keep)))]
            cur.executemany("DELETE FROM pending WHERE cid=?", [(c,) for c in doomed])
            cur.executemany("DELETE FROM pending_deps WHERE cid=?", [(c,) for c in doomed])
        return len(doomed)

    def pending_count(self) -> int:
        return self._reader.execute("SELECT count(*) FROM pending").fetchone()[0]

    def targets(self) -> list[CID]:
        return [CID(r[0]) for r in self._reader.execute("SELECT cid FROM targets ORDER BY name")]

    def commits_of(self, target: CID, since: int = 0, limit: int = -1) -> list[CID]:
        """A target's commits in arrival order, which is topological (parents first)."""
        rows = self._reader.execute(
            "SELECT cid FROM commits WHERE target=? AND seqno>? ORDER BY seqno LIMIT ?",
            (bytes(target), since, limit))
        return [CID(r[0]) for r in rows]

    def commit_edges(self, target: CID) -> list[tuple[CID, tuple[CID, ...]]]:
        """(commit, parents) for every commit of ``target`` in topological order."""
        rows = self._reader.execute(
            "SELECT c.cid, e.parent FROM commits c JOIN edges e ON e.child = c.cid "
            "WHERE c.target=? ORDER BY c.seqno, e.position", (bytes(target),))
        out: list[tuple[CID, tuple[CID, ...]]] = []
        for child, parent in rows:
            child_cid = CID(child)
            if out and out[-1][0] == child_cid:
                out[-1] = (child_cid, (*out[-1][1], CID(parent)))
            else:
                out.append((child_cid, (CID(parent),)))
        return out

    def parents(self, commit: CID) -> list[CID]:
        rows = self._reader.execute("SELECT parent FROM edges WHERE child=? ORDER BY position",
                                    (bytes(commit),))
        return [CID(r[0]) for r in rows]

    def children(self, cid: CID) -> list[CID]:
        rows = self._reader.execute("SELECT child FROM edges WHERE parent=? ORDER BY child",
                                    (bytes(cid),))
        return [CID(r[0]) for r in rows]

    def attestations_on(self, commit: CID) -> list[CID]:
        """Attestations carrying a verdict on ``commit``, in arrival order."""
        rows = self._reader.execute(
            "SELECT cid FROM attestations WHERE commit_cid=? ORDER BY seqno", (bytes(commit),))
        return [CID(r[0]) for r in rows]

    def attestations_of(self, target: CID, since: int = 0) -> list[tuple[int, CID]]:
        """(arrival number, attestation) for a target, for replaying into fork choice."""
        rows = self._reader.execute(
            "SELECT seqno, cid FROM attestations WHERE target=? AND seqno>? ORDER BY seqno",
            (bytes(target), since))
        return [(r[0], CID(r[1])) for r in rows]

    def attestations_at(self, target: CID, verifier: bytes, seq: int) -> list[CID]:
        """Every stored attestation of ``verifier`` with sequence number ``seq`` (> 1: a fork)."""
        rows = self._reader.execute(
            "SELECT cid FROM attestations WHERE target=? AND verifier=? AND seq=? ORDER BY cid",
            (bytes(target), verifier, seq))
        return [CID(r[0]) for r in rows]

    def latest_attestation(self, target: CID, verifier: bytes) -> CID | None:
        row = self._reader.execute(
            "SELECT attestation FROM latest_votes WHERE target=? AND verifier=?",
            (bytes(target), verifier)).fetchone()
        return None if row is None else CID(row[0])

    def latest_votes(self, target: CID) -> dict[bytes, tuple[int, CID, CID]]:
        """verifier → (seq, attestation, head) of its latest attestation on ``target``."""
        rows = self._reader.execute(
            "SELECT verifier, seq, attestation, head FROM latest_votes WHERE target=?",
            (bytes(target),))
        return {bytes(r[0]): (r[1], CID(r[2]), CID(r[3])) for r in rows}

    def evidence_of(self, target: CID) -> list[CID]:
        rows = self._reader.execute("SELECT cid FROM evidence WHERE target=? ORDER BY seqno",
                                    (bytes(target),))
        return [CID(r[0]) for r in rows]

    def challenges_of(self, target: CID) -> list[CID]:
        rows = self._reader.execute("SELECT cid FROM challenges WHERE target=? ORDER BY seqno",
                                    (bytes(target),))
        return [CID(r[0]) for r in rows]

    def rulings_on(self, challenge: CID) -> list[CID]:
        rows = self._reader.execute("SELECT cid FROM rulings WHERE challenge=? ORDER BY seqno",
                                    (bytes(challenge),))
        return [CID(r[0]) for r in rows]

    def stake_txs_of(self, target: CID) -> list[CID]:
        rows = self._reader.execute("SELECT cid FROM stake_txs WHERE target=? ORDER BY seqno",
                                    (bytes(target),))
        return [CID(r[0]) for r in rows]

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return self._reader.execute("SELECT count(*) FROM objects").fetchone()[0]
        return self._reader.execute("SELECT count(*) FROM objects WHERE type=?",
                                    (kind,)).fetchone()[0]

    # ------------------------------------------------------------------------------------------
    # Self-check
    # ------------------------------------------------------------------------------------------

    def check_integrity(self) -> list[str]:
        """Recompute every index from the stored objects and list each disagreement.

        Used by the crash test and by ``poi`` maintenance: an empty list means every object
        hashes to its CID and decodes, and every index row is exactly what the objects imply.
        """
        problems: list[str] = []
        conn = self._reader
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append("sqlite integrity_check failed")
        expected = _Expected()
        stored: set[bytes] = set()
        for key, kind, data in conn.execute("SELECT cid, type, data FROM objects"):
            stored.add(bytes(key))
            try:
                obj = decode_stored(CID(bytes(key)), bytes(data))
            except ProtocolError as exc:
                problems.append(f"object {key.hex()[:16]}: {exc}")
                continue
            if _type_of(obj) != kind:
                problems.append(f"object {key.hex()[:16]}: type {kind} but decodes as "
                                f"{_type_of(obj)}")
            expected.add(obj)
        for dep_key in expected.dependencies:
            if dep_key not in stored:
                problems.append(f"stored object depends on absent {dep_key.hex()[:16]}")
        for table, rows in expected.rows.items():
            actual = {tuple(bytes(v) if isinstance(v, bytes) else v for v in row)
                      for row in conn.execute(_INDEX_QUERIES[table])}
            if table == "latest_votes":
                problems.extend(expected.check_latest(actual))
            elif actual != rows:
                problems.append(f"index {table}: {len(actual ^ rows)} rows disagree")
        for (key,) in conn.execute("SELECT cid FROM pending"):
            if bytes(key) in stored:
                problems.append(f"{key.hex()[:16]} is both stored and pending")
        return problems


_INDEX_QUERIES = {
    "targets": "SELECT cid, name FROM targets",
    "commits": "SELECT cid, target, author, tree, time_ms FROM commits",
    "edges": "SELECT child, parent, position FROM edges",
    "attestations": "SELECT cid, target, verifier, seq, head, commit_cid, result, epoch "
                    "FROM attestations",
    "latest_votes": "SELECT target, verifier, seq, attestation, head FROM latest_votes",
    "evidence": "SELECT cid, target, offender FROM evidence",
    "challenges": "SELECT cid, target, attestation, challenger FROM challenges",
    "rulings": "SELECT cid, target, challenge, member FROM rulings",
    "stake_txs": "SELECT cid, target, account, nonce FROM stake_txs",
}


class _Expected:
    """The index rows the stored objects imply, for :meth:`Store.check_integrity`."""

    def __init__(self) -> None:
        self.rows: dict[str, set[tuple]] = {name: set() for name in _INDEX_QUERIES}
        # (target, verifier) -> (highest seq, {(attestation, head) at that seq}); with a fork of
        # the chain several attestations share the highest seq and the first to arrive is kept.
        self.latest: dict[tuple[bytes, bytes], tuple[int, set[tuple[bytes, bytes]]]] = {}
        self.dependencies: set[bytes] = set()

    def add(self, obj: StoredObject) -> None:
        key = bytes(obj.cid)
        self.dependencies.update(bytes(d) for d in dependencies(obj))
        if isinstance(obj, Target):
            self.rows["targets"].add((key, obj.name))
        elif isinstance(obj, Commit):
            self.rows["commits"].add((key, bytes(obj.target), obj.author, bytes(obj.tree),
                                      obj.time_ms))
            for i, parent in enumerate(obj.parents):
                self.rows["edges"].add((key, bytes(parent), i))
        elif isinstance(obj, Attestation):
            v = obj.verdict
            self.rows["attestations"].add((
                key, bytes(obj.target), obj.verifier, obj.seq, bytes(obj.head),
                None if v is None else bytes(v.commit), None if v is None else v.result,
                obj.epoch))
            slot = (bytes(obj.target), obj.verifier)
            current = self.latest.get(slot)
            if current is None or obj.seq > current[0]:
                self.latest[slot] = (obj.seq, {(key, bytes(obj.head))})
            elif obj.seq == current[0]:
                current[1].add((key, bytes(obj.head)))
        elif isinstance(obj, Evidence):
            self.rows["evidence"].add((key, bytes(obj.target), obj.offender))
        elif isinstance(obj, Challenge):
            self.rows["challenges"].add((key, bytes(obj.target), bytes(obj.attestation.cid),
                                         obj.challenger))
        elif isinstance(obj, Ruling):
            self.rows["rulings"].add((key, bytes(obj.target), bytes(obj.challenge), obj.member))
        elif isinstance(obj, StakeTx):
            self.rows["stake_txs"].add((key, bytes(obj.target), obj.account, obj.nonce))

    def check_latest(self, actual: set[tuple]) -> list[str]:
        found = {(t, v): (seq, (att, head)) for t, v, seq, att, head in actual}
        if found.keys() != self.latest.keys():
            return [f"index latest_votes: {len(found.keys() ^ self.latest.keys())} verifiers "
                    "disagree"]
        return [f"index latest_votes: verifier {v.hex()[:16]} points at the wrong attestation"
                for (t, v), (seq, row) in found.items()
                if seq != self.latest[(t, v)][0] or row not in self.latest[(t, v)][1]]


_PRESENT_BATCH = 500
"""CIDs per ``IN (…)`` query (SQLite's default limit on parameters is far above this)."""


def _present(conn: sqlite3.Connection | sqlite3.Cursor, table: str, keys: Iterable[bytes]
             ) -> set[bytes]:
    """Which of ``keys`` (binary CIDs) ``table`` holds: one query per `_PRESENT_BATCH`."""
    keys = list(keys)
    found: set[bytes] = set()
    for start in range(0, len(keys), _PRESENT_BATCH):
        batch = keys[start:start + _PRESENT_BATCH]
        marks = ",".join("?" * len(batch))
        found.update(bytes(row[0]) for row in conn.execute(
            f"SELECT cid FROM {table} WHERE cid IN ({marks})", batch))
    return found


def _index_rows(obj: StoredObject, key: bytes, now: int) -> list[tuple[str, tuple]]:
    """The rows storing ``obj`` writes: the object itself and its type's index rows."""
    rows: list[tuple[str, tuple]] = [
        ("INSERT INTO objects VALUES (?,?,?,?)", (key, _type_of(obj), obj.encode(), now))]
    if isinstance(obj, Target):
        rows.append(("INSERT INTO targets VALUES (?,?)", (key, obj.name)))
    elif isinstance(obj, Commit):
        rows.append(("INSERT INTO commits (cid, target, author, tree, time_ms) VALUES (?,?,?,?,?)",
                     (key, bytes(obj.target), obj.author, bytes(obj.tree), obj.time_ms)))
        rows.extend(("INSERT INTO edges (child, position, parent) VALUES (?,?,?)",
                     (key, i, bytes(p))) for i, p in enumerate(obj.parents))
    elif isinstance(obj, Attestation):
        verdict = obj.verdict
        rows.append((
            "INSERT INTO attestations (cid, target, verifier, seq, head, commit_cid, result,"
            " epoch) VALUES (?,?,?,?,?,?,?,?)",
            (key, bytes(obj.target), obj.verifier, obj.seq, bytes(obj.head),
             None if verdict is None else bytes(verdict.commit),
             None if verdict is None else verdict.result, obj.epoch)))
        # Latest message: a higher seq replaces; an equal or lower one never does.
        rows.append((
            "INSERT INTO latest_votes VALUES (?,?,?,?,?) ON CONFLICT (target, verifier) "
            "DO UPDATE SET seq=excluded.seq, attestation=excluded.attestation, "
            "head=excluded.head WHERE excluded.seq > latest_votes.seq",
            (bytes(obj.target), obj.verifier, obj.seq, key, bytes(obj.head))))
    elif isinstance(obj, Evidence):
        rows.append(("INSERT INTO evidence (cid, target, offender) VALUES (?,?,?)",
                     (key, bytes(obj.target), obj.offender)))
    elif isinstance(obj, Challenge):
        rows.append(("INSERT INTO challenges (cid, target, attestation, challenger) "
                     "VALUES (?,?,?,?)", (key, bytes(obj.target), bytes(obj.attestation.cid),
                                          obj.challenger)))
    elif isinstance(obj, Ruling):
        rows.append(("INSERT INTO rulings (cid, target, challenge, member) VALUES (?,?,?,?)",
                     (key, bytes(obj.target), bytes(obj.challenge), obj.member)))
    elif isinstance(obj, StakeTx):
        rows.append(("INSERT INTO stake_txs (cid, target, account, nonce) VALUES (?,?,?,?)",
                     (key, bytes(obj.target), obj.account, obj.nonce)))
    return rows


def _type_of(obj: StoredObject) -> str:
    return "blob" if isinstance(obj, Blob) else obj.TYPE


__all__ = ["PutResult", "Store", "StoreError", "StoredObject", "decode_stored", "dependencies"]

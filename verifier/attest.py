"""Signing attestations without ever equivocating (DESIGN §5.6, docs/PROTOCOL.md §Slashing).

A verifier's attestations on a target form one chain (seq 0, 1, 2… each linking the previous
by CID). Signing two attestations with one seq, or two different results for one commit, is
equivocation and costs stake. The slashing-protection record is a small SQLite file that is the
single source of truth for the verifier's chain: an attestation is signed in memory, recorded
durably (the record refuses any conflict), and only then released to the caller to publish. A
crash between recording and publishing loses nothing that matters: the next attestation simply
follows the recorded one, which the verifier can re-publish from the record.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from protocol.cid import CID
from protocol.keys import SigningKey
from protocol.objects import Attestation, Verdict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signed (
    target BLOB NOT NULL, seq INTEGER NOT NULL, cid BLOB NOT NULL, data BLOB NOT NULL,
    commit_cid BLOB, result TEXT, PRIMARY KEY (target, seq)
);
CREATE INDEX IF NOT EXISTS signed_by_commit ON signed (target, commit_cid);
"""


class SlashingProtectionError(Exception):
    """Signing this attestation would conflict with one already signed."""


@dataclass(frozen=True)
class ChainTip:
    seq: int
    cid: CID
    data: bytes


class SlashingProtection:
    """The durable record of every attestation this verifier key has signed."""

    def __init__(self, path: Path | str, verifier: bytes) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB)")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('verifier', ?)", (verifier,))
        stored = self._db.execute("SELECT value FROM meta WHERE key='verifier'").fetchone()[0]
        if bytes(stored) != verifier:
            raise SlashingProtectionError(
                f"{self.path} belongs to another verifier key: refusing to sign with this one")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def tip(self, target: CID) -> ChainTip | None:
        """The last attestation signed on ``target``, or None before the first."""
        row = self._db.execute("SELECT seq, cid, data FROM signed WHERE target=? "
                               "ORDER BY seq DESC LIMIT 1", (bytes(target),)).fetchone()
        return None if row is None else ChainTip(row[0], CID(bytes(row[1])), bytes(row[2]))

    def result_on(self, target: CID, commit: CID) -> str | None:
        row = self._db.execute("SELECT result FROM signed WHERE target=? AND commit_cid=?",
                               (bytes(target), bytes(commit))).fetchone()
        return None if row is None else row[0]

    def record(self, attestation: Attestation) -> None:
        """Durably record a signed attestation, refusing any that would be slashable."""
        target, verdict = bytes(attestation.target), attestation.verdict
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute("SELECT seq, cid FROM signed WHERE target=? ORDER BY seq DESC "
                                  "LIMIT 1", (target,)).fetchone()
                expected_seq = 0 if row is None else row[0] + 1
                expected_prev = None if row is None else CID(bytes(row[1]))
                if attestation.seq != expected_seq or attestation.prev != expected_prev:
                    raise SlashingProtectionError(
                        f"attestation seq {attestation.seq} does not extend the recorded chain "
                        f"(next is seq {expected_seq}): signing it could fork the chain")
                if verdict is not None:
                    earlier = cur.execute(
                        "SELECT result FROM signed WHERE target=? AND commit_cid=?",
                        (target, bytes(verdict.commit))).fetchone()
                    if earlier is not None and earlier[0] != verdict.result:
                        raise SlashingProtectionError(
                            f"already signed {earlier[0]!r} for commit {verdict.commit}: "
                            f"signing {verdict.result!r} would be equivocation")
                cur.execute("INSERT INTO signed VALUES (?,?,?,?,?,?)", (
                    target, attestation.seq, bytes(attestation.cid), attestation.encode(),
                    None if verdict is None else bytes(verdict.commit),
                    None if verdict is None else verdict.result))
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")


class AttestationSigner:
    """Builds the next attestation of this verifier's chain and signs it safely."""

    def __init__(self, key: SigningKey, protection: SlashingProtection) -> None:
        self.key = key
        self.protection = protection

    def sign(self, *, target: CID, head: CID, epoch: int, time_ms: int,
             verdict: Verdict | None = None) -> Attestation:
        """The next attestation on ``target``, recorded before it is returned.

        A second verdict on a commit that repeats the recorded result is allowed (it changes
        nothing a verifier can be slashed for); a different result is refused.
        """
        tip = self.protection.tip(target)
        attestation = Attestation.create(
            self.key, target=target, seq=0 if tip is None else tip.seq + 1,
            prev=None if tip is None else tip.cid, epoch=epoch, time_ms=time_ms, head=head,
            verdict=verdict)
        self.protection.record(attestation)
        return attestation

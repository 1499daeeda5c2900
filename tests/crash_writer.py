"""Child process for the store crash test: write objects forever, acknowledging each batch.

Prints ``ack <cid>`` for every object of a batch once ``put_many`` has returned (and so is
durable), flushing at once. Each run continues the chain found in the store, and sometimes puts
a commit before its parent so pending objects are exercised too.
"""

from __future__ import annotations

import random
import sys

from dag.store import Store
from protocol import examples
from protocol.objects import Blob
from tests.dag_factories import make_attestation, make_commit


def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    store = Store(path)
    target = examples.target()
    store.put(target)
    commits = store.commits_of(target.cid)
    head = commits[-1] if commits else target.cid
    n = len(commits) + store.pending_count() * 1000 + seed * 100_000
    seq = {}
    held = None
    while True:
        n += 1
        commit = make_commit(target, [head], n, author=rng.randrange(3))
        head = commit.cid
        batch: list = []
        if held is not None and rng.random() < 0.5:
            batch.append(held)  # the child first, its parent below: it waits, then is released
            held = None
        if held is None and rng.random() < 0.2:
            held = commit
        else:
            batch.append(commit)
        batch.append(Blob(rng.randbytes(rng.randint(1, 2048))))
        verifier = rng.randrange(4, 6)
        if rng.random() < 0.5 and held is None:
            key = (verifier, seed)
            prev_seq = seq.get(key)
            att = make_attestation(target, verifier, 0 if prev_seq is None else prev_seq[0] + 1,
                                   None if prev_seq is None else prev_seq[1], commit.cid,
                                   verdict_on=commit)
            # Each run starts a fresh chain per verifier under a run-specific key index.
            seq[key] = (att.seq, att.cid)
            batch.append(att)
        rng.shuffle(batch)
        store.put_many(batch)
        sys.stdout.write("".join(f"ack {obj.cid}\n" for obj in batch))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

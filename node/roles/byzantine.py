"""Byzantine verifier behaviours, for the devnet only (``verifier.byzantine`` in config.toml).

A devnet shows that the protocol holds against a dishonest verifier, so one verifier can be
told to misbehave in one of two ways:

- ``lie``: attest ``improved`` with a made-up ratio on every commit, never fetching, building or
  benchmarking anything. Its attestations are properly signed and chained (the slashing
  protection record is used as usual): the lie is only in the verdict, and a gate-failing
  commit makes it a false gate claim that honest verifiers challenge (§Challenges).
- ``equivocate``: for every commit, sign two attestations with the same sequence number and
  different results. The second one bypasses the slashing-protection record, which would refuse
  it; this is logged loudly every time. Honest verifiers turn the pair into evidence
  (§Slashing).

Nothing here is used by an honest verifier.
"""

from __future__ import annotations

import logging
import secrets

from protocol.constants import GATE_SEED_BYTES
from protocol.keys import SigningKey
from protocol.objects import IMPROVED, NOT_IMPROVED, Attestation, Commit, Verdict

log = logging.getLogger("poi.verifier.byzantine")

HONEST = "honest"
LIE = "lie"
EQUIVOCATE = "equivocate"
MODES = (HONEST, LIE, EQUIVOCATE)

LIE_RATIO_PPM = 900_000
"""The made-up ratio a liar attests: 10% faster than the parent, every time."""
LIE_LO_PPM = 880_000
LIE_HI_PPM = 920_000
EQUIVOCATE_OTHER_RATIO_PPM = 1_010_000
"""The ratio of an equivocator's second (``not_improved``) verdict."""


def normalize_mode(mode: str | None) -> str:
    """``""`` / None (node.config's "no misbehaviour") means honest; anything else must be known."""
    mode = mode or HONEST
    if mode not in MODES:
        raise ValueError(f"unknown verifier mode {mode!r} (choose from {', '.join(MODES)})")
    return mode


def made_up_verdict(commit: Commit, *, profile: str, toolchain: str, pairs: int,
                    result: str = IMPROVED) -> Verdict:
    """A measured verdict nobody measured: the liar's ``improved`` (or an equivocator's second
    ``not_improved``) with a fresh random seed that no gate ever ran with."""
    if result == IMPROVED:
        ratio, lo, hi = LIE_RATIO_PPM, LIE_LO_PPM, LIE_HI_PPM
    elif result == NOT_IMPROVED:
        ratio = lo = hi = EQUIVOCATE_OTHER_RATIO_PPM
    else:
        raise ValueError(f"a made-up verdict is improved or not_improved, not {result!r}")
    return Verdict(commit=commit.cid, parent=commit.parents[0], result=result, ratio_ppm=ratio,
                   lo_ppm=lo, hi_ppm=hi, pairs=max(1, pairs),
                   gate_seed=secrets.token_bytes(GATE_SEED_BYTES), profile=profile,
                   toolchain=toolchain)


def conflicting_twin(key: SigningKey, first: Attestation, verdict: Verdict) -> Attestation:
    """A second attestation with ``first``'s sequence number, ``prev`` and head but another
    verdict: equivocation. Signed directly with the key, bypassing the slashing-protection
    record (which would refuse it)."""
    log.warning("BYZANTINE equivocate: signing a second attestation with seq %d (%s on %s), "
                "bypassing the slashing-protection record", first.seq, verdict.result,
                verdict.commit)
    return Attestation.create(key, target=first.target, seq=first.seq, prev=first.prev,
                              epoch=first.epoch, time_ms=first.time_ms, head=first.head,
                              verdict=verdict)

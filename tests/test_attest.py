"""Attestation signing with slashing protection: a verifier can never sign a conflict."""

from __future__ import annotations

import pytest

from protocol import examples
from protocol.objects import Attestation, conflict
from verifier.attest import AttestationSigner, SlashingProtection, SlashingProtectionError


@pytest.fixture
def signer(tmp_path):
    key = examples.key(1)
    protection = SlashingProtection(tmp_path / "protection.sqlite", key.public_key)
    yield AttestationSigner(key, protection)
    protection.close()


def _sign(signer, result="improved", head=None, verdict_result=None):
    target = examples.target()
    verdict = examples.verdict(verdict_result or result) if result else None
    return signer.sign(target=target.cid, head=head or examples.commit().cid, epoch=1,
                       time_ms=target.genesis_time_ms + 1, verdict=verdict)


def test_chain_is_linked_and_numbered(signer):
    first = _sign(signer)
    second = _sign(signer, result=None)
    third = _sign(signer, result=None)
    assert (first.seq, first.prev) == (0, None)
    assert (second.seq, second.prev) == (1, first.cid)
    assert (third.seq, third.prev) == (2, second.cid)
    for att in (first, second, third):
        att.verify()


def test_a_different_result_on_a_commit_is_refused_and_nothing_is_recorded(signer):
    first = _sign(signer, "improved")
    with pytest.raises(SlashingProtectionError, match="equivocation"):
        _sign(signer, "gate_failed")
    # The refused attestation left no trace: the chain continues from the first.
    again = _sign(signer, "improved")
    assert again.seq == 1 and again.prev == first.cid
    assert conflict(first, again) is None


def test_a_fork_of_the_chain_is_refused(signer):
    first = _sign(signer)
    fork = Attestation.create(signer.key, target=first.target, seq=0, prev=None, epoch=1,
                              time_ms=first.time_ms, head=first.head)
    with pytest.raises(SlashingProtectionError, match="fork"):
        signer.protection.record(fork)


def test_the_record_survives_restart_and_belongs_to_one_key(tmp_path):
    key = examples.key(1)
    path = tmp_path / "p.sqlite"
    protection = SlashingProtection(path, key.public_key)
    first = _sign(AttestationSigner(key, protection))
    protection.close()
    reopened = SlashingProtection(path, key.public_key)
    assert reopened.tip(first.target).cid == first.cid
    with pytest.raises(SlashingProtectionError, match="equivocation"):
        _sign(AttestationSigner(key, reopened), "gate_failed")
    reopened.close()
    with pytest.raises(SlashingProtectionError, match="another verifier key"):
        SlashingProtection(path, examples.key(2).public_key)

"""The devnet's genesis: one key per node and the example target with its genesis stakes.

Everything here is pure but for ``host_profile`` (it reads /proc/cpuinfo through
verifier.hardware). The choices a local run needs are constants with their reasons beside them,
so the summary and the README can quote them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

from dag.manifest import Genesis, Manifest, make_genesis
from protocol.keys import SigningKey
from verifier.hardware import host_profiles

from .errors import DevnetError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plonky3"
"""The example workspace: its targets/ hold the manifests, its patches/ the candidates."""

PROFILE_PREFERENCE = ("avx512", "avx2")
"""The first profile this CPU satisfies is the devnet's: the AVX-512 kernels where they run."""

GENESIS_STAKE = 1000
"""Every validator (honest or Byzantine) starts with the same stake: with three honest
verifiers and one Byzantine one, the Byzantine holds 1/4 of the stake — under the 1/3 that
could block finality or reject honest commits, and more than nothing, so its slash shows."""

DEVNET_EPOCH_SECONDS = 10
"""Epoch length of the devnet's target, in seconds.

Why 10 s and not the protocol default of 60 s: slashing a lying verifier needs a *final* commit
in a later epoch than its lie (the challenge anchor, docs/PROTOCOL.md §Challenges), and an
equivocation's evidence is applied when the first final commit of its epoch arrives. The whole
demo lasts a few minutes and one quick evaluation takes 10–30 s on a 2-core machine, so with
60 s epochs the slash would land only at the very end, or after the last commit. With 10 s
epochs each verification round spans one or two epochs, the anchor exists one round after the
lie, and the slash shows while the demo is still running. Shorter still buys nothing (epochs
much shorter than an evaluation only add stake snapshots) and makes an attestation that waits
in a queue look old.
"""

GENESIS_FILE = "genesis.bundle"


def choose_profile(profiles: Iterable[str]) -> str:
    """The devnet's hardware profile for a CPU satisfying ``profiles`` (pure)."""
    have = set(profiles)
    for profile in PROFILE_PREFERENCE:
        if profile in have:
            return profile
    raise DevnetError("this CPU satisfies none of the example target's profiles "
                      f"({', '.join(PROFILE_PREFERENCE)}): its verifiers could not attest "
                      "anything. The devnet needs an x86-64 CPU with AVX2.")


def host_profile() -> str:
    return choose_profile(host_profiles())


def manifest_path(profile: str, *, full: bool = False, example: Path = EXAMPLE) -> Path:
    """``targets/<profile>-quick.toml`` (the default), or ``targets/<profile>.toml`` (--full)."""
    name = f"{profile}.toml" if full else f"{profile}-quick.toml"
    path = example / "targets" / name
    if not path.exists():
        raise DevnetError(f"{path} is missing: the example target has no {name}")
    return path


def generate_keys(names: Iterable[str]) -> dict[str, SigningKey]:
    """A fresh signing key (and so libp2p identity) per node name."""
    return {name: SigningKey.generate() for name in names}


def validator_stakes(keys: Mapping[str, SigningKey], validators: Iterable[str],
                     stake: int = GENESIS_STAKE) -> list[tuple[bytes, int]]:
    """Genesis stakes ``(public key, stake)`` for the named validators."""
    return [(keys[name].public_key, stake) for name in validators]


def build_genesis(manifest: Manifest, stakes: list[tuple[bytes, int]], *, genesis_time_ms: int,
                  epoch_seconds: int = DEVNET_EPOCH_SECONDS) -> Genesis:
    """The target of the devnet (the genesis of its DAG) with its base tree and blobs.

    Its ``stats.proposer_pairs`` is raised to ``stats.pairs``: the devnet's proposers apply
    patches that stack on each other, and one good patch a proposer wrongly discards on a noisy
    machine takes every patch that depends on it out of the demo, so they measure as carefully
    as the verifiers do.
    """
    if not stakes:
        raise DevnetError("a devnet needs at least one validator with genesis stake")
    careful = dataclasses.replace(manifest, stats=dataclasses.replace(
        manifest.stats, proposer_pairs=manifest.stats.pairs))
    return make_genesis(careful, stakes, genesis_time_ms=genesis_time_ms,
                        epoch_seconds=epoch_seconds)

"""Hardware profiles and toolchain identity (verifier/hardware.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.hardware import (
    PROFILE_FLAGS,
    ProfileUnsupported,
    ToolchainError,
    UnknownProfile,
    check_profile,
    detect_toolchain,
    host_profiles,
    missing_flags,
    parse_cpu_flags,
    profiles_for_flags,
    read_cpu_flags,
)

EPYC_FLAGS = ("fpu vme de pse tsc msr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 popcnt avx f16c "
              "bmi1 avx2 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl")
AVX2_ONLY_FLAGS = "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx bmi1 avx2 bmi2"


def cpuinfo(*flag_lines: str) -> str:
    """A /proc/cpuinfo text with one processor block per flags line."""
    return "\n".join(
        f"processor\t: {i}\nvendor_id\t: AuthenticAMD\nmodel name\t: Test CPU\n"
        f"flags\t\t: {flags}\nbugs\t\t: sysret_ss_attrs\n"
        for i, flags in enumerate(flag_lines))


def test_flags_are_parsed_from_cpuinfo() -> None:
    flags = parse_cpu_flags(cpuinfo(EPYC_FLAGS, EPYC_FLAGS))
    assert {"avx2", "avx512f", "fma", "bmi2"} <= flags
    assert "sysret_ss_attrs" not in flags and "AuthenticAMD" not in flags


def test_only_flags_every_core_has_count() -> None:
    """On a heterogeneous CPU a kernel may run on any core."""
    flags = parse_cpu_flags(cpuinfo(EPYC_FLAGS, AVX2_ONLY_FLAGS))
    assert "avx2" in flags and "avx512f" not in flags


def test_non_x86_or_empty_cpuinfo_has_no_flags() -> None:
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"
    assert parse_cpu_flags(arm) == frozenset()
    assert parse_cpu_flags("") == frozenset()
    assert profiles_for_flags(parse_cpu_flags(arm)) == frozenset()


@pytest.mark.parametrize(("flags", "profiles"), [
    (EPYC_FLAGS, {"avx2", "avx512"}),
    (AVX2_ONLY_FLAGS, {"avx2"}),
    ("fpu sse sse2 avx", set()),
    ("avx512f", {"avx512"}),  # the profiles require exactly what the kernels dispatch on
])
def test_profiles_follow_the_flags(flags: str, profiles: set[str]) -> None:
    assert profiles_for_flags(flags.split()) == profiles


def test_missing_profile_flag_is_named_in_the_error() -> None:
    with pytest.raises(ProfileUnsupported,
                       match=r"^this CPU lacks avx512f: it cannot attest avx512 targets$") as err:
        check_profile("avx512", AVX2_ONLY_FLAGS.split())
    assert err.value.missing == ("avx512f",) and err.value.profile == "avx512"
    check_profile("avx2", AVX2_ONLY_FLAGS.split())  # satisfied: no error


def test_unknown_profile_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownProfile, match="avx2, avx512"):
        missing_flags("neon", EPYC_FLAGS.split())


@given(st.sets(st.sampled_from(sorted(set(EPYC_FLAGS.split()) | {"avx512f", "avx2"}))))
def test_check_profile_agrees_with_profiles_for_flags(flags: set[str]) -> None:
    for profile in PROFILE_FLAGS:
        satisfied = profile in profiles_for_flags(flags)
        try:
            check_profile(profile, flags)
            assert satisfied
        except ProfileUnsupported as exc:
            assert not satisfied and set(exc.missing) == PROFILE_FLAGS[profile] - flags


def test_this_machine_profiles_match_its_cpuinfo() -> None:
    flags = read_cpu_flags()
    assert host_profiles() == set(profiles_for_flags(flags))
    if "avx2" in flags:
        assert "avx2" in host_profiles()
    if "avx512f" in flags:
        check_profile("avx512")


def test_reading_a_missing_cpuinfo_gives_no_profiles(tmp_path: Path) -> None:
    assert read_cpu_flags(tmp_path / "nope") == frozenset()
    assert host_profiles(tmp_path / "nope") == set()


# --- toolchain -----------------------------------------------------------------------------


def _toolchain():
    """The Rust toolchain is a requirement of the suite (make test builds examples/plonky3)."""
    try:
        return detect_toolchain()
    except ToolchainError as exc:
        pytest.fail(f"no Rust toolchain here: {exc}")


def test_toolchain_is_identified_by_its_own_binaries() -> None:
    toolchain = _toolchain()
    assert re.fullmatch(r"rustc \d+\.\d+\.\d+(-\w+)? \([0-9a-f]{9,} \d{4}-\d\d-\d\d\)",
                        toolchain.rustc), toolchain.rustc
    assert toolchain.cargo.startswith("cargo ")
    assert toolchain.id == toolchain.rustc
    assert os.access(toolchain.sysroot / "bin" / "rustc", os.X_OK)


def test_example_workspace_toolchain_is_found_from_its_directory() -> None:
    workspace = Path(__file__).resolve().parent.parent / "examples" / "plonky3"
    assert (workspace / "rust-toolchain.toml").exists()
    _toolchain()
    assert detect_toolchain(workspace).rustc.startswith("rustc 1.")


def test_missing_rustc_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="cannot run"):
        detect_toolchain(rustc=str(tmp_path / "no-rustc"))


def test_a_rustc_that_fails_is_reported_with_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "rustc"
    fake.write_text("#!/bin/sh\necho 'error: toolchain not installed' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(ToolchainError, match="toolchain not installed"):
        detect_toolchain(rustc=str(fake))

"""poi verifier: sandbox, benchmark statistics, hardware profiles (DESIGN §5).

The evaluation pipeline (materialise -> build -> gate -> paired bench -> verdict) is built on
these pieces; proposer and verifier share it.
"""

from .hardware import (
    PROFILE_FLAGS,
    HardwareError,
    ProfileUnsupported,
    Toolchain,
    ToolchainError,
    UnknownProfile,
    check_profile,
    detect_toolchain,
    host_profiles,
    parse_cpu_flags,
    profiles_for_flags,
)
from .sandbox import (
    BUILD_DIR,
    TOOLCHAIN_DIR,
    WORKSPACE_DIR,
    ResourceLimits,
    SandboxConfigError,
    SandboxError,
    SandboxPolicy,
    SandboxResult,
    SandboxSetupError,
    SandboxUnavailable,
    check_sandbox,
    run_sandboxed,
)
from .stats import (
    PairedEstimate,
    StatsError,
    decide,
    estimate,
    estimate_for_target,
    min_pairs,
)

__all__ = [
    "BUILD_DIR", "PROFILE_FLAGS", "TOOLCHAIN_DIR", "WORKSPACE_DIR", "HardwareError",
    "PairedEstimate", "ProfileUnsupported", "ResourceLimits", "SandboxConfigError",
    "SandboxError", "SandboxPolicy", "SandboxResult", "SandboxSetupError", "SandboxUnavailable",
    "StatsError", "Toolchain", "ToolchainError", "UnknownProfile", "check_profile",
    "check_sandbox", "decide", "detect_toolchain", "estimate", "estimate_for_target",
    "host_profiles", "min_pairs", "parse_cpu_flags", "profiles_for_flags", "run_sandboxed",
]

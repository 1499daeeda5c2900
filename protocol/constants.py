"""Protocol constants, in one place, with their units (docs/PROTOCOL.md §Constants).

Changing any of these changes what honest nodes accept, so each is part of the protocol version.
"""

PROTOCOL_VERSION = 1
"""Version carried as ``v`` in every object and in every signature domain (``poi/1/<type>``)."""

# --- canonical encoding caps (docs/PROTOCOL.md §Encoding) ---
MAX_OBJECT_BYTES = 1 << 20
"""Largest encoded structured object, in bytes (fits one gossip message)."""
MAX_BLOB_BYTES = 4 << 20
"""Largest raw blob (one source file), in bytes."""
MAX_STR_BYTES = 64 << 10
"""Largest UTF-8 string inside an object, in bytes."""
MAX_BIN_BYTES = 1 << 20
"""Largest byte string inside an object, in bytes."""
MAX_CONTAINER_LEN = 1 << 16
"""Most elements in one array or entries in one map."""
MAX_DEPTH = 16
"""Deepest nesting of arrays and maps (the top-level value is depth 1)."""

INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1
"""The integer range MessagePack can carry; anything outside has no encoding."""

# --- keys and signatures ---
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
GATE_SEED_BYTES = 32
SIGNATURE_DOMAIN_PREFIX = b"poi/1/"
"""A signature covers ``poi/1/<type>`` + NUL + the canonical encoding of the object without sig."""

# --- object limits ---
MAX_PATH_BYTES = 1024
MAX_PATH_COMPONENT_BYTES = 255
MAX_TREE_ENTRIES = 10_000
MAX_PARENTS = 16
MAX_STAKE_TXS_PER_COMMIT = 64
MAX_MESSAGE_BYTES = 4096
MAX_NAME_BYTES = 128
MAX_LABEL_BYTES = 256
"""Short identifier strings: profile, toolchain, metric, glob, command argument."""
MAX_COMMAND_ARGS = 64
MAX_GLOBS = 64
MAX_VALIDATORS = 10_000
PPM = 1_000_000
"""Parts per million: ratios, fractions and probabilities are integers over this denominator."""
MAX_RATIO_PPM = 100 * PPM
"""Largest measured ratio candidate/parent an object may carry (a 100x slow-down)."""
FILE_MODES = (0o644, 0o755)
"""Tree entries are regular files, executable or not: nothing else."""

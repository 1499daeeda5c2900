"""A tiny target for the proposer tests, evaluated by the real (sandboxed) pipeline.

Its build, gate and bench are shell scripts: the bench reports the number in ``src/cost.txt``
as ``lde_ns``, so every ratio is exact and every verdict deterministic (cost 900 against 1000:
ratio 0.9, improved; same cost: ratio 1.0, not improved), while each evaluation still goes
through scope check, sandboxed build, gate with a fresh seed and paired benchmark in well under
a second. ``BUG`` anywhere in ``src/`` fails the gate; ``SYNTAX ERROR`` fails the build.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from dag.manifest import Genesis, load_manifest, make_genesis
from dag.store import Store
from protocol import examples
from verifier.pipeline import Pipeline

BUILD = """set -e
if grep -rq "SYNTAX ERROR" src; then
  echo "error[E0001]: expected item, found SYNTAX ERROR" >&2
  exit 1
fi
cp src/cost.txt "$CARGO_TARGET_DIR/cost"
"""
GATE = """if grep -rq "BUG" src; then
  detail=$(cat src/gate-detail.txt 2>/dev/null || echo wrong result)
  printf '{"gate":"fail","check":"random_inputs","detail":"%s"}\\n' "$detail"
  exit 1
fi
echo '{"gate":"pass"}'
"""
BENCH = """v=$(cat "$1")
echo "{\\"metric\\":\\"lde_ns\\",\\"value\\":$v,\\"ok\\":true}"
"""
MANIFEST = """name = "tiny"
profile = "avx2"
description = "A tiny target whose benchmark reports src/cost.txt"
writable = ["src/**"]
metric = "lde_ns"
direction = "lower"

[commands]
build = ["sh", "build.sh"]
gate = ["sh", "gate.sh", "{seed}"]
bench = ["sh", "bench.sh", "target/cost", "{seed}"]

[stats]
pairs = 6
proposer_pairs = 6
min_improvement_ppm = 5000
confidence_ppm = 950000

[limits]
build_timeout_s = 30
gate_timeout_s = 10
bench_timeout_s = 10
memory_mb = 512
max_file_bytes = 65536
"""
LIB = "fn lde() {}\n"
VALIDATORS = [examples.key(i).public_key for i in (1, 2, 3)]


def make_tiny(root: Path) -> Path:
    """Write the tiny workspace under ``root``; returns its manifest."""
    (root / "src").mkdir(parents=True)
    (root / "targets").mkdir()
    (root / "build.sh").write_text(BUILD)
    (root / "gate.sh").write_text(GATE)
    (root / "bench.sh").write_text(BENCH)
    (root / "src" / "cost.txt").write_text("1000\n")
    (root / "src" / "lib.rs").write_text(LIB)
    manifest = root / "targets" / "tiny.toml"
    manifest.write_text(MANIFEST)
    return manifest


def tiny_genesis(root: Path, genesis_time_ms: int = examples.GENESIS_TIME_MS) -> Genesis:
    return make_genesis(load_manifest(make_tiny(root)), [(k, 100) for k in VALIDATORS],
                        genesis_time_ms=genesis_time_ms)


def store_with(path: Path, genesis: Genesis) -> Store:
    store = Store(path)
    store.put_many(genesis.objects())
    return store


def tiny_pipeline(genesis: Genesis, work: Path) -> Pipeline:
    return Pipeline(genesis.target, genesis.base_tree, work / "eval",
                    bench_lock=work / "bench.lock")


def patch(path: str, old: str, new: str, title: str, *, depends_on: str | None = None,
          expect: str | None = None) -> str:
    """A git-style patch changing ``path`` from ``old`` to ``new``, with a header block."""
    header = f"Title: {title}\n"
    if depends_on:
        header += f"Depends-On: {depends_on}\n"
    if expect:
        header += f"Expect: {expect}\n"
    body = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"a/{path}", f"b/{path}"))
    return f"{header}\ndiff --git a/{path} b/{path}\n{body}"


def cost_patch(old: int, new: int, title: str, **kwargs) -> str:
    return patch("src/cost.txt", f"{old}\n", f"{new}\n", title, **kwargs)


def write_patches(directory: Path, patches: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in patches.items():
        (directory / name).write_text(text)
    return directory

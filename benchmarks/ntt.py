"""Benchmark the Plonky3-style NTT target: the baseline and every good patch, against the floor.

Run from the repository root (takes a few minutes on a 2-core machine):

    python benchmarks/ntt.py                 # quick target, 2^16 and 2^20, one thread
    python benchmarks/ntt.py --threads 0     # 2^16 and 2^20 on all cores instead
    python benchmarks/ntt.py --rounds 3      # faster, noisier
    python benchmarks/ntt.py --update-headers  # also rewrite the patches' `Measured:` lines

One thread is the default because this machine is shared: with another process on the second
core, a fork-join per pass waits for a descheduled thread and 2-thread timings scatter by 2-3x,
while 1-thread timings stay within a few percent. The floor is then one core's throughput.

What it does, in one run:

1. builds the baseline workspace (examples/plonky3) and, for each good patch, a scratch copy with
   the patch and everything it `Depends-On` applied (`git apply -p1`), reusing a copy of the
   baseline's target/release so only the changed crates rebuild;
2. measures the compute floor with the `floor` binary (built from the baseline, which does not
   depend on any writable crate): the throughput of packed Montgomery DIT butterflies on
   registers with as many threads busy as the measurement uses, probed once per round and the
   best probe kept (the least disturbed by other processes). The floor
   of one coset LDE is (h/2·log2 h + n/2·log2 n)·width butterflies (inverse DFT of height h,
   forward DFT of height n = 2h) at that throughput. The LDE's other work (1/h and coset
   scaling, data movement) is not counted, so the floor is a lower bound, not a target;
3. runs `bench` for every variant in interleaved rounds (each round one fresh seed shared by all
   variants, variants in a shuffled order), so slow drifts of a shared machine hit every variant
   alike, and reports medians: ns per LDE, ns per butterfly, the ratio to the floor, and the
   change against the patch's parent (the patch it depends on, or the baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The repository in place of this folder at the head of sys.path: run as a script, the
# folder would come first, and benchmarks/http.py would shadow the stdlib's http package
# (libp2p's Prometheus exporter, for one, imports http.server).
sys.path.pop(0)
sys.path.insert(0, str(ROOT))

from verifier.candidates import PatchFile, apply_patch, read_patch  # noqa: E402

WORKSPACE = ROOT / "examples" / "plonky3"
PATCHES = WORKSPACE / "patches"
# The workspace minus target/, patches/, targets/ and README.md: what a patch applies to.
BASE_TREE = ("Cargo.toml", "Cargo.lock", "rust-toolchain.toml",
             "baby-bear", "dft", "reference", "gate", "bench")
WIDTH = 16
ADDED_BITS = 1
GOAL_BASELINE_X = 10.0
GOAL_BEST_X = 2.0


@dataclass
class Variant:
    name: str
    parent: str | None
    bench: Path
    title: str = ""


@dataclass
class Config:
    label: str
    log_size: int
    width: int
    reps: int
    threads: int | None
    rounds: int
    results: dict[str, list[int]] = field(default_factory=dict)
    floors: list[float] = field(default_factory=list)

    def bench_args(self, seed: str) -> list[str]:
        args = ["--log-size", str(self.log_size), "--width", str(self.width),
                "--reps", str(self.reps), "--seed", seed, "--simd", "avx2"]
        if self.threads is not None:
            args += ["--threads", str(self.threads)]
        return args


def good_patches() -> list[PatchFile]:
    return [read_patch(p) for p in sorted((PATCHES / "good").glob("*.patch"))]


def chain(patch: PatchFile, by_name: dict[str, PatchFile]) -> list[PatchFile]:
    """The patch preceded by everything it depends on, in application order."""
    out = [patch]
    while out[0].depends_on:
        out.insert(0, by_name[out[0].depends_on])
    return out


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"command failed in {cwd}: {' '.join(cmd)}\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def build_baseline() -> None:
    print("building the baseline …", flush=True)
    run(["cargo", "build", "--release", "--offline", "--frozen"], WORKSPACE)


def build_variant(patches: list[PatchFile], scratch: Path) -> Path:
    """Copies the base tree and target/release, applies `patches`, builds; returns `bench`."""
    ws = scratch / patches[-1].name.removesuffix(".patch")
    ws.mkdir()
    for item in BASE_TREE:
        src = WORKSPACE / item
        if src.is_dir():
            shutil.copytree(src, ws / item, symlinks=True)
        else:
            shutil.copy2(src, ws / item)
    (ws / "target").mkdir()
    shutil.copytree(WORKSPACE / "target" / "release", ws / "target" / "release", symlinks=True)
    for p in patches:
        apply_patch(p, ws)
    run(["cargo", "build", "--release", "--offline", "--frozen", "-p", "bench", "--bin", "bench"],
        ws)
    return ws / "target" / "release" / "bench"


def butterflies(log_size: int, width: int) -> int:
    h, n = 1 << log_size, 1 << (log_size + ADDED_BITS)
    return (h // 2 * log_size + n // 2 * (log_size + ADDED_BITS)) * width


def measure_floor(threads: int | None) -> float:
    """ns per vector butterfly with `threads` busy (one `floor` run, itself best of 3 per K)."""
    cmd = [str(WORKSPACE / "target" / "release" / "floor"), "--simd", "avx2", "--millis", "100"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    return float(json.loads(run(cmd, WORKSPACE))["ns_per_vector_butterfly"])


def bench_once(binary: Path, cfg: Config, seed: str) -> int:
    out = run([str(binary), *cfg.bench_args(seed)], WORKSPACE)
    result = json.loads(out.strip().splitlines()[-1])
    if not result.get("ok"):
        sys.exit(f"{binary}: bench failed: {result}")
    return int(result["value"])


def measure(variants: list[Variant], cfg: Config, rng: random.Random) -> None:
    print(f"measuring {cfg.label}: {cfg.rounds} interleaved rounds × {len(variants)} variants …",
          flush=True)
    cfg.results = {v.name: [] for v in variants}
    cfg.floors = []
    for _ in range(cfg.rounds):
        # The floor is probed once per round too: the fastest probe is the one least disturbed
        # by other processes, so the floor is the best throughput seen during the measurement.
        cfg.floors.append(measure_floor(cfg.threads))
        seed = f"{rng.getrandbits(256):064x}"
        order = variants[:]
        rng.shuffle(order)
        for v in order:
            cfg.results[v.name].append(bench_once(v.bench, cfg, seed))


def paired_change(samples: list[int], parent_samples: list[int]) -> float:
    """Median over rounds of this variant's time / its parent's in the same round, minus 1.

    Both ran on the same seed moments apart, so slow drifts of a shared machine cancel in each
    ratio; comparing two separate medians would keep them (this is how poi's verifier pairs).
    """
    return statistics.median(a / b for a, b in zip(samples, parent_samples, strict=True)) - 1


def report(variants: list[Variant], configs: list[Config], floors: dict[str, float]) -> dict:
    summary: dict = {"floor_ns_per_vector_butterfly": floors, "configs": {}}
    for cfg in configs:
        med = {name: statistics.median(vals) for name, vals in cfg.results.items()}
        bfly = butterflies(cfg.log_size, cfg.width)
        floor_ns = bfly / 8 * floors[cfg.label]
        threads = "all cores" if cfg.threads is None else f"{cfg.threads} thread(s)"
        print(f"\n== {cfg.label}: coset LDE 2^{cfg.log_size} x {cfg.width} -> "
              f"2^{cfg.log_size + ADDED_BITS}, {threads}, median of {cfg.rounds} runs "
              f"(each the median of {cfg.reps} calls)")
        print(f"   floor: {bfly:,} butterflies / 8 lanes x {floors[cfg.label]:.3f} ns per vector "
              f"butterfly = {floor_ns / 1e6:.3f} ms")
        print(f"   {'variant':34} {'ms':>9} {'ns/bfly':>8} {'x floor':>8} {'vs parent':>10} "
              f"{'vs base':>8}")
        rows = {}
        for v in variants:
            m = med[v.name]
            vs_parent = (paired_change(cfg.results[v.name], cfg.results[v.parent])
                         if v.parent else None)
            vs_base = paired_change(cfg.results[v.name], cfg.results["baseline"])
            rows[v.name] = {"median_ns": m, "samples_ns": cfg.results[v.name],
                            "ns_per_butterfly": m / bfly, "x_floor": m / floor_ns,
                            "vs_parent": vs_parent}
            shown = f"{vs_parent * 100:+.1f}%" if vs_parent is not None else ""
            print(f"   {v.name:34} {m / 1e6:9.3f} {m / bfly:8.3f} {m / floor_ns:8.2f} "
                  f"{shown:>10} {vs_base * 100:+7.1f}%")
        summary["configs"][cfg.label] = {"log_size": cfg.log_size, "width": cfg.width,
                                         "threads": cfg.threads, "floor_ns": floor_ns,
                                         "variants": rows}
    return summary


def goals(summary: dict, best: str) -> None:
    print("\n== goals (baseline <= 10x floor, best stack <= 2x floor)")
    for label, c in summary["configs"].items():
        base = c["variants"]["baseline"]["x_floor"]
        top = c["variants"][best]["x_floor"]
        print(f"   {label:10} baseline {base:5.2f}x {'ok' if base <= GOAL_BASELINE_X else 'MISSED'}"
              f"   best stack ({best}) {top:5.2f}x {'ok' if top <= GOAL_BEST_X else 'MISSED'}")


def measured_line(summary: dict, name: str, parent: str) -> str:
    parts = []
    for label, c in summary["configs"].items():
        gain = c["variants"][name]["vs_parent"]
        parts.append(f"{label} {gain * 100:+.1f}%".replace("-", "−"))
    rounds = ", ".join(f"{label} {len(c['variants'][name]['samples_ns'])}"
                       for label, c in summary["configs"].items())
    return (f"{', '.join(parts)} vs {parent} (median paired ratio over interleaved rounds: "
            f"{rounds}; "
            "`python benchmarks/ntt.py`)")


def update_headers(patches: list[PatchFile], summary: dict, parents: dict[str, str]) -> None:
    for p in patches:
        name = p.name.removesuffix(".patch")
        line = "Measured: " + measured_line(summary, name, parents[name])
        text = p.path.read_text()
        head, sep, rest = text.partition("\ndiff --git")
        lines = head.splitlines()
        out: list[str] = []
        skipping = False
        for ln in lines:
            if ln.startswith("Measured:"):
                out.append(line)
                skipping = True
                continue
            if skipping and ln[:1] in (" ", "\t"):
                continue
            skipping = False
            out.append(ln)
        p.path.write_text("\n".join(out) + ("\n" if head.endswith("\n") else "") + sep + rest)
        print(f"   {p.name}: {line}")


def quick_config(rounds: int) -> Config:
    """The quick avx2 target's bench command, read from its manifest."""
    manifest = tomllib.loads((WORKSPACE / "targets" / "avx2-quick.toml").read_text())
    argv = manifest["commands"]["bench"]
    opt = {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1, 2)}
    threads = int(opt["--threads"]) if "--threads" in opt else None
    return Config("quick", int(opt["--log-size"]), int(opt["--width"]), int(opt["--reps"]),
                  threads, rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds (2^20 uses ~half)")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads at 2^16 and 2^20 (default 1; 0 = all cores)")
    ap.add_argument("--skip-main", action="store_true", help="skip the 2^20 runs")
    ap.add_argument("--json", type=Path, help="also write the full results here")
    ap.add_argument("--update-headers", action="store_true",
                    help="rewrite each good patch's Measured: header from this run")
    args = ap.parse_args()
    started = time.time()
    rng = random.Random(20260401)

    build_baseline()
    patches = good_patches()
    by_name = {p.name: p for p in patches}
    variants = [Variant("baseline", None, WORKSPACE / "target" / "release" / "bench", "baseline")]
    parents: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="poi-ntt-bench-") as tmp:
        for p in patches:
            print(f"building {p.name} (with {len(chain(p, by_name)) - 1} dependencies) …",
                  flush=True)
            name = p.name.removesuffix(".patch")
            parent = p.depends_on.removesuffix(".patch") if p.depends_on else "baseline"
            parents[name] = parent
            variants.append(Variant(name, parent, build_variant(chain(p, by_name), Path(tmp)),
                                    p.title))

        threads = args.threads or None
        configs = [quick_config(max(args.rounds, 9) + 6),
                   Config("2^16", 16, WIDTH, 5, threads, args.rounds)]
        if not args.skip_main:
            configs.append(Config("2^20", 20, WIDTH, 3, threads, max(3, args.rounds // 2)))
        for cfg in configs:
            measure(variants, cfg, rng)
        floors = {cfg.label: min(cfg.floors) for cfg in configs}
        summary = report(variants, configs, floors)

    # The best stack is the end of the longest Depends-On chain.
    best = max(parents, key=lambda n: len(chain(by_name[n + ".patch"], by_name)))
    goals(summary, best)
    print("\n== Measured: lines (gain against each patch's parent)")
    for p in patches:
        name = p.name.removesuffix(".patch")
        print(f"   {p.name}: {measured_line(summary, name, parents[name])}")
    if args.update_headers:
        print("\n== updating patch headers")
        update_headers(patches, summary, parents)
    summary["parents"] = parents
    summary["cpu"] = os.cpu_count()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    print(f"\nfloor: packed AVX2 Montgomery DIT butterflies on registers (bench/src/bin/floor.rs) "
          f"with the row's thread count busy, best probe of the rounds; "
          f"{time.time() - started:.0f} s in all")


if __name__ == "__main__":
    main()

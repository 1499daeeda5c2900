"""The sandboxed evaluation pipeline on the real example target (quick AVX2 profile).

Every hostile patch from examples/plonky3/patches gets the verdict its header expects and leaves
the host untouched; hostile cases of our own complete the set; every good patch is `improved`
against the patch it stacks on; the baseline against itself never is; the gate re-run with a
revealed seed reproduces its outcome.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from dag.manifest import load_manifest, make_genesis
from dag.scope import commit_tree_for, overlay, tree_entries
from dag.workspace import blob_reader
from protocol import examples
from protocol.objects import Blob, Tree, TreeEntry
from verifier.candidates import (
    Workspace,
    read_patch,
    workspace_from_directory,
    workspace_from_tree,
    workspace_with_patch,
)
from verifier.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
PLONKY3 = ROOT / "examples" / "plonky3"
GOOD = sorted((PLONKY3 / "patches" / "good").glob("*.patch"))
HOSTILE = sorted((PLONKY3 / "patches" / "hostile").glob("*.patch"))
HOSTILE_PORT = 47111
MARKERS = [Path("/tmp/poi-hostile-write"), Path.home() / "poi-hostile-write"]
SANDBOX_UID = 65534


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    manifest = load_manifest(PLONKY3 / "targets" / "avx2-quick.toml")
    genesis = make_genesis(manifest, [(examples.key(1).public_key, 100)], genesis_time_ms=0)
    work = tmp_path_factory.mktemp("pipeline")
    pipeline = Pipeline(genesis.target, genesis.base_tree, work / "work",
                        bench_lock=work / "bench.lock")
    base = workspace_from_tree(genesis.target, genesis.base_tree, None,
                               blob_reader(genesis.blobs), label="baseline")
    return genesis, pipeline, base, work


@pytest.fixture
def host_watch(env):
    """Open the port the network patch dials and record what touches the host."""
    _, _, _, work = env
    for marker in MARKERS:
        marker.unlink(missing_ok=True)
    connections: list[bytes] = []
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", HOSTILE_PORT))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            connections.append(conn.recv(1024))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    before = set((work / "work").rglob("poi-hostile-write")) if (work / "work").exists() else set()
    yield connections
    stop.set()
    thread.join(timeout=5)
    server.close()
    # Nothing reached the host: no marker files outside the sandbox, no connection, no process.
    leaked = [m for m in MARKERS if m.exists()]
    leaked += [p for p in (work / "work").rglob("poi-hostile-write") if p not in before
               and "target" not in p.parts]
    assert leaked == [], f"hostile code wrote to the host: {leaked}"
    assert connections == [], "hostile code reached a listener on the host"
    assert _sandbox_processes() == [], "processes outlived the sandbox"


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _ancestors(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of each ancestor, nearest first."""
    chain = []
    while pid > 1:
        try:
            pid = int(_status(pid)["PPid"])
            chain.append((pid, _status(pid)["Name"]) if pid > 1 else (pid, "init"))
        except (FileNotFoundError, KeyError, ValueError):
            break
    return chain


def _sandbox_processes() -> list[int]:
    """Processes that outlived this test's sandboxes: our own bwrap still running, or a process
    of the sandbox user that no live bwrap holds (an escapee, reparented to init). Sandboxes of
    other test runs on the same host (each under its own live bwrap) are not ours to judge."""
    me = os.getpid()
    leaked = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            uid = entry.stat().st_uid
            name = _status(pid)["Name"]
        except (FileNotFoundError, KeyError):
            continue
        ancestors = _ancestors(pid)
        ours_alive = name == "bwrap" and any(a == me for a, _ in ancestors)
        escaped = uid == SANDBOX_UID and not any(n == "bwrap" for _, n in ancestors)
        if ours_alive or escaped:
            leaked.append(pid)
    return leaked


def _chain(patch_path: Path) -> list[Path]:
    """The good patches ``patch_path`` stacks on, oldest first, then itself."""
    chain = [patch_path]
    while (parent := read_patch(chain[0]).depends_on):
        chain.insert(0, patch_path.parent / parent)
    return chain


def _apply_chain(env, paths: list[Path]) -> Workspace:
    genesis, _, base, work = env
    ws = base
    for path in paths:
        ws = workspace_with_patch(genesis.target, genesis.base_tree, ws, read_patch(path),
                                  scratch=work)
    return ws


@pytest.mark.parametrize("patch", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_hostile_patch_gets_its_verdict_and_leaves_the_host_untouched(env, host_watch, patch):
    genesis, pipeline, base, work = env
    expected = read_patch(patch).expect
    candidate = workspace_with_patch(genesis.target, genesis.base_tree, base, read_patch(patch),
                                     scratch=work)
    evaluation = pipeline.evaluate(base, candidate)
    assert evaluation.result == expected, evaluation.summary()


def _modified(env, edit) -> Workspace:
    genesis, _, base, work = env
    root = work / f"edit-{edit.__name__}"
    base.materialize(root)
    edit(root)
    return workspace_from_directory(genesis.target, genesis.base_tree, root)


def test_hostile_oversize_file_in_scope(env, host_watch):
    def oversize(root: Path) -> None:
        (root / "dft/src/tables.rs").write_bytes(b"// " + b"x" * (2 << 20))

    _, pipeline, base, _ = env
    ev = pipeline.evaluate(base, _modified(env, oversize))
    assert ev.result == "scope_violation" and "oversize" in ev.detail


def test_hostile_deleting_a_file_outside_scope(env, host_watch):
    def delete(root: Path) -> None:
        (root / "gate/src/main.rs").unlink()

    _, pipeline, base, _ = env
    ev = pipeline.evaluate(base, _modified(env, delete))
    assert ev.result == "scope_violation" and "deleted_outside_scope" in ev.detail


def test_hostile_commit_tree_overriding_a_read_only_file(env, host_watch):
    """A proposer that bypasses honest tooling and ships a tree replacing the bench."""
    genesis, pipeline, base, _ = env
    liar = Blob(b'fn main() { println!("{{\\"metric\\":\\"lde_ns\\",\\"value\\":1}}"); }\n')
    tree = Tree({**base.commit_tree.entries, "bench/src/main.rs": TreeEntry(liar.cid)})
    read = blob_reader({liar.cid: liar}, base.read_blob)
    candidate = workspace_from_tree(genesis.target, genesis.base_tree, tree, read)
    ev = pipeline.evaluate(base, candidate)
    assert ev.result == "scope_violation" and "bench/src/main.rs" in ev.detail


def _constructor(root: Path, body: str) -> None:
    """Add code to dft that runs when any program linking it starts (an ELF constructor)."""
    lib = root / "dft/src/lib.rs"
    lib.write_text(lib.read_text() + "\n#[used]\n#[unsafe(link_section = \".init_array\")]\n"
                   "static POI_HOSTILE_INIT: extern \"C\" fn() = poi_hostile_init;\n"
                   f"extern \"C\" fn poi_hostile_init() {{ {body} }}\n")


def test_hostile_output_flood_in_the_gate(env, host_watch):
    def flood(root: Path) -> None:
        _constructor(root, "loop { println!(\"{}\", \"x\".repeat(4096)); }")

    _, pipeline, base, _ = env
    ev = pipeline.evaluate(base, _modified(env, flood))
    assert ev.result in ("gate_failed", "timeout"), ev.summary()


def test_hostile_runtime_read_of_a_node_key(env, host_watch, tmp_path):
    """The constructor runs in gate and bench (the output-flood test proves the mechanism);
    the key file exists on the host, world-readable, yet the sandbox does not show it."""
    secret = tmp_path / "node.key"
    secret.write_text("SECRET-KEY-MATERIAL")
    os.chmod(tmp_path, 0o755)
    os.chmod(secret, 0o644)

    def steal(root: Path) -> None:
        _constructor(root, f"if let Ok(s) = std::fs::read_to_string(\"{secret}\") "
                           "{ eprintln!(\"stolen: {}\", s); std::process::exit(3); }")

    _, pipeline, base, _ = env
    ev = pipeline.evaluate(base, _modified(env, steal))
    assert "SECRET-KEY-MATERIAL" not in ev.detail
    assert ev.result in ("not_improved", "improved"), ev.summary()


VERIFIERS = 3
"""Independent evaluations per good patch, as three equal-stake verifiers of a network would
make them. One evaluation on a noisy shared machine misses a real 3-4% gain now and then (its
power there is about 90-95%, see README §Performance); the network accepts a commit when 2/3 of
the verdict stake says improved, so that is the rule this test applies."""


def _majority(evaluate) -> tuple[str, list[str]]:
    """Evaluate until two evaluations agree (at most three); return the majority and all."""
    results: list[str] = []
    while len(results) < VERIFIERS:
        results.append(evaluate())
        for result in set(results):
            if results.count(result) * 3 >= VERIFIERS * 2:
                return result, results
    return max(set(results), key=results.count), results


@pytest.mark.parametrize("patch", GOOD, ids=[p.stem for p in GOOD])
def test_good_patch_is_accepted_by_two_thirds_of_three_verifiers(env, patch):
    _, pipeline, _, _ = env
    chain = _chain(patch)
    parent = _apply_chain(env, chain[:-1])
    candidate = _apply_chain(env, chain)
    summaries: list[str] = []

    def evaluate() -> str:
        ev = pipeline.evaluate(parent, candidate)
        summaries.append(ev.summary())
        return ev.result

    majority, _ = _majority(evaluate)
    assert majority == "improved", summaries


def test_baseline_against_itself_is_never_improved(env):
    genesis, pipeline, base, _ = env
    # A different tree (one more comment line) with identical code: a null patch.
    tree_entries_ = dict(base.commit_tree.entries)
    lib = "dft/src/lib.rs"
    text = base.read_blob(tree_entries_[lib].blob) + b"\n// null change\n"
    blob = Blob(text)
    tree_entries_[lib] = TreeEntry(blob.cid)
    null = workspace_from_tree(genesis.target, genesis.base_tree, Tree(tree_entries_),
                               blob_reader({blob.cid: blob}, base.read_blob))
    assert null.tree_cid != base.tree_cid
    for candidate in (base, null, null):
        ev = pipeline.evaluate(base, candidate)
        assert ev.result == "not_improved", ev.summary()


def test_gate_rerun_with_the_revealed_seed_reproduces_the_outcome(env):
    genesis, pipeline, base, work = env
    failing = workspace_with_patch(genesis.target, genesis.base_tree, base, read_patch(
        PLONKY3 / "patches/hostile/01-twiddle-table-cap-wrong-at-large-sizes.patch"),
        scratch=work)
    ev = pipeline.evaluate(base, failing)
    verdict = ev.verdict(commit=examples.commit().cid, parent=genesis.target.cid)
    assert verdict.result == "gate_failed"
    build = pipeline.build(failing)
    again = pipeline.gate(build, verdict.gate_seed)
    assert again.passed is False and again.detail == ev.detail
    # A passing gate reproduces too, and a different seed draws different checks.
    ok_build = pipeline.build(base)
    first = pipeline.gate(ok_build, verdict.gate_seed)
    assert first.passed is True and pipeline.gate(ok_build, verdict.gate_seed).passed is True


def test_scan_entries_and_tree_entries_agree_for_an_unmodified_workspace(env):
    genesis, _, base, work = env
    root = work / "plain"
    base.materialize(root)
    ws = workspace_from_directory(genesis.target, genesis.base_tree, root)
    assert ws.tree_cid == base.tree_cid
    assert commit_tree_for(genesis.base_tree.entries, ws.scan, genesis.target.writable) == \
        base.commit_tree
    assert overlay(genesis.base_tree, genesis.target.writable, ws.commit_tree) == base.entries
    assert set(tree_entries(base.entries, lambda c: 1)) == set(ws.scan)


def test_the_benchmark_phase_runs_on_the_targets_bench_cpus_then_everywhere_again():
    from verifier.pipeline import _pinned

    allowed = os.sched_getaffinity(0)
    with _pinned(1):
        assert os.sched_getaffinity(0) == {min(allowed)}
    assert os.sched_getaffinity(0) == allowed
    with _pinned(0):  # a bench that measures all cores is left alone
        assert os.sched_getaffinity(0) == allowed
    with _pinned(len(allowed) + 5):
        assert os.sched_getaffinity(0) == allowed

"""node/devnet: genesis, layout, the adversary's commits, the live view and the summary, from
pure inputs (recorded JSON in the HTTP API's shapes) — no node process runs here except the
small stand-ins of the launcher test."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from dag.manifest import load_manifest
from dag.scope import check_scope
from node.bundle import decode_bundle
from node.config import load_config, parse_config
from node.devnet.errors import DevnetError
from node.devnet.genesis import (
    DEVNET_EPOCH_SECONDS,
    EXAMPLE,
    build_genesis,
    choose_profile,
    generate_keys,
    manifest_path,
    validator_stakes,
)
from node.devnet.hostile import hostile_commit
from node.devnet.launch import Launcher
from node.devnet.layout import (
    ADVERSARY,
    BUILD_CACHE,
    BYZANTINE,
    HONEST_VERIFIERS,
    MANIFEST_NAME,
    PROPOSERS,
    assign_cpus,
    node_config,
    patch_chains,
    plan_devnet,
    prepare_dir,
    read_patches,
    select_hostile,
    split_patches,
    write_layout,
)
from node.devnet.prebuild import apply_patches, build_items
from node.devnet.progress import NodeState, Snapshot, counts, diff_events, render
from node.devnet.summary import (
    Outcome,
    build_summary,
    check_done,
    ledger_fingerprint,
    render_summary,
)
from node.genesis_file import encode_genesis_file
from node.keystore import load_key
from protocol.objects import Commit, Target, decode_object
from verifier.candidates import PatchFile, read_patch

GOOD = EXAMPLE / "patches" / "good"
HOSTILE = EXAMPLE / "patches" / "hostile"


def ports(start=20000):
    port = start
    while True:
        yield port
        port += 1


def fake_patch(name, depends_on=None):
    headers = {"title": name}
    if depends_on:
        headers["depends-on"] = depends_on
    return PatchFile(path=Path(name), headers=headers, text="")


def plan(byzantine="lie", hostile=()):
    return plan_devnet(read_patches(GOOD), hostile, profile="avx512", manifest="m.toml",
                       pairs=9, byzantine=byzantine, stake=1000, ports=ports())


# --- genesis ---------------------------------------------------------------------------------


def test_profile_prefers_avx512_then_avx2_and_refuses_neither():
    assert choose_profile({"avx2", "avx512"}) == "avx512"
    assert choose_profile({"avx2"}) == "avx2"
    with pytest.raises(DevnetError, match="AVX2"):
        choose_profile(set())


def test_manifest_is_the_quick_variant_unless_full():
    assert manifest_path("avx2").name == "avx2-quick.toml"
    assert manifest_path("avx512", full=True).name == "avx512.toml"
    with pytest.raises(DevnetError, match="missing"):
        manifest_path("sse2")


def test_genesis_has_the_validators_stakes_and_short_epochs():
    keys = generate_keys(["a", "b", "c"])
    stakes = validator_stakes(keys, ["a", "b"], stake=700)
    genesis = build_genesis(load_manifest(manifest_path("avx2")), stakes, genesis_time_ms=1234)
    target = genesis.target
    assert {(v.key, v.stake) for v in target.validators} == {(keys["a"].public_key, 700),
                                                            (keys["b"].public_key, 700)}
    assert target.epoch_seconds == DEVNET_EPOCH_SECONDS < 60
    assert target.profile == "avx2" and target.genesis_time_ms == 1234
    objects = [decode_object(o) if i == len(genesis.objects()) - 1 else o
               for i, o in enumerate(decode_bundle(encode_genesis_file(genesis)))]
    assert isinstance(objects[-1], Target) and objects[-1].cid == target.cid
    with pytest.raises(DevnetError, match="validator"):
        build_genesis(load_manifest(manifest_path("avx2")), [], genesis_time_ms=1)


def test_devnet_proposers_measure_as_carefully_as_verifiers():
    manifest = load_manifest(manifest_path("avx2"))
    stats = build_genesis(manifest, validator_stakes(generate_keys(["a"]), ["a"]),
                          genesis_time_ms=1).target.stats
    assert manifest.stats.proposer_pairs < stats.proposer_pairs == stats.pairs


# --- layout ----------------------------------------------------------------------------------


def test_example_good_patches_split_into_whole_dependency_chains():
    shares = split_patches(read_patches(GOOD), 2)
    names = [[p.name[:2] for p in share] for share in shares]
    assert names == [["02", "03", "04", "05"], ["01"]]


def test_patches_stacking_on_one_patch_stay_with_one_proposer_parents_first():
    patches = [fake_patch("d", "c"), fake_patch("a"), fake_patch("c", "a"),
               fake_patch("b", "a"), fake_patch("e", "missing"), fake_patch("f")]
    groups = [[p.name for p in group] for group in patch_chains(patches)]
    assert groups == [["a", "b", "c", "d"], ["e"], ["f"]]
    shares = [[p.name for p in share] for share in split_patches(patches, 2)]
    assert shares == [["a", "b", "c", "d"], ["e", "f"]]
    with pytest.raises(DevnetError):
        split_patches(patches, 0)


def test_default_hostile_patches_are_the_rejectable_ones_for_the_profile():
    names = [p.name for p in read_patches(HOSTILE)]
    on_avx512 = select_hostile("default", "avx512", names)
    on_avx2 = select_hostile("default", "avx2", names)
    assert "02-avx2-wrong-blend-mask.patch" in on_avx2
    assert "02-avx2-wrong-blend-mask.patch" not in on_avx512
    for skipped in ("09", "10", "11"):
        assert not any(n.startswith(skipped) for n in on_avx2)
    for name in on_avx2:
        assert read_patch(HOSTILE / name).expect in ("gate_failed", "build_failed",
                                                     "scope_violation")
    assert select_hostile("all", "avx2", names) == tuple(sorted(names))
    assert select_hostile("none", "avx2", names) == ()
    assert select_hostile("5,01", "avx2", names) == ("05-bench-reports-less.patch",
                                                    "01-twiddle-table-cap-wrong-at-large-"
                                                    "sizes.patch")
    with pytest.raises(DevnetError, match="names no hostile patch"):
        select_hostile("99", "avx2", names)


def test_plan_has_two_proposers_three_honest_verifiers_and_one_byzantine():
    p = plan("equivocate")
    assert [n.name for n in p.proposers] == list(PROPOSERS)
    assert [n.name for n in p.validators] == [*HONEST_VERIFIERS, BYZANTINE]
    assert all(n.stake == 1000 for n in p.validators)
    assert p.node(BYZANTINE).byzantine == "equivocate"
    assert all(not p.node(n).byzantine for n in HONEST_VERIFIERS)
    assert p.node("proposer-1").patches[0].startswith("02")
    assert p.node("proposer-2").patches == ("01-twiddle-cache.patch",)
    used = [port for n in p.nodes for port in (n.p2p_port, n.http_port)]
    assert len(used) == len(set(used))
    with pytest.raises(DevnetError, match="--byzantine"):
        plan("sleep")


def test_the_busiest_proposer_gets_a_cpu_of_its_own():
    p = plan()
    cpus = assign_cpus(p, [0, 1])
    assert set(cpus) == {n.name for n in p.nodes}
    assert [n for n, c in cpus.items() if c == cpus["proposer-1"]] == ["proposer-1"]
    four = assign_cpus(p, [0, 1, 2, 3])
    assert [n for n, c in four.items() if c == four["proposer-1"]] == ["proposer-1"]
    assert len({four[n] for n in HONEST_VERIFIERS}) == 3  # spread over the other three
    spread = assign_cpus(p, range(8))
    assert len(set(spread.values())) == len(p.nodes)  # enough cores: one node each
    assert set(assign_cpus(p, [3]).values()) == {3}
    with pytest.raises(DevnetError):
        assign_cpus(p, [])


def test_node_config_bootstraps_to_earlier_nodes_and_round_trips(tmp_path):
    p = plan()
    keys = generate_keys([n.name for n in p.nodes])
    peer_ids = {n: k.peer_id for n, k in keys.items()}
    first, byz, proposer = p.nodes[0], p.node(BYZANTINE), p.node("proposer-2")
    assert node_config(p, first, peer_ids, "T", tmp_path).network.bootstrap == []
    config = node_config(p, byz, peer_ids, "T", tmp_path)
    assert config.network.bootstrap == [
        f"/ip4/127.0.0.1/tcp/{n.p2p_port}/p2p/{peer_ids[n.name]}" for n in p.nodes[:3]]
    assert config.network.listen == [f"/ip4/127.0.0.1/tcp/{byz.p2p_port}"]
    assert config.http.port == byz.http_port and config.verifier.byzantine == "lie"
    assert config.verifier.pairs == 9 and config.targets.follow == ["T"]
    assert config.node.roles == ["verifier"]
    pconf = node_config(p, proposer, peer_ids, "T", tmp_path / "p2")
    assert pconf.node.roles == ["proposer"]
    assert pconf.proposer.patches_dir == str(tmp_path / "p2" / "patches")
    assert parse_config(pconf.to_toml()) == pconf


def test_write_layout_makes_a_data_dir_per_node(tmp_path):
    p = plan(hostile=("05-bench-reports-less.patch",))
    keys = generate_keys([n.name for n in p.nodes] + [ADVERSARY])
    genesis = build_genesis(load_manifest(manifest_path("avx2")), validator_stakes(keys, [
        n.name for n in p.validators]), genesis_time_ms=1)
    root = tmp_path / "devnet"
    prepare_dir(root)
    layout = write_layout(root, p, keys, encode_genesis_file(genesis), str(genesis.target.cid))
    for node in p.nodes:
        node_dir = root / node.name
        config = load_config(node_dir)
        assert config.http.port == node.http_port
        assert load_key(node_dir / "keys", None).key.public_key == keys[node.name].public_key
        assert (node_dir / config.targets.genesis_files[0]).read_bytes() == \
            encode_genesis_file(genesis)
        patches = sorted(p.name for p in (node_dir / "patches").glob("*")) \
            if node.patches else []
        assert patches == sorted(node.patches)
    assert load_key(root / ADVERSARY / "keys", None).key.public_key == \
        keys[ADVERSARY].public_key
    data = json.loads((root / MANIFEST_NAME).read_text())
    assert data["target"] == str(genesis.target.cid)
    assert data["hostile"] == ["05-bench-reports-less.patch"]
    assert {n["name"]: n["peer_id"] for n in data["nodes"]} == {
        n.name: layout.peer_ids[n.name] for n in p.nodes}
    assert data["adversary"]["public_key"] == keys[ADVERSARY].public_key.hex()
    assert [n["name"] for n in data["nodes"]] == [n.name for n in p.nodes]
    for node in p.nodes:  # one build cache, the devnet's
        assert load_config(root / node.name).verifier.build_cache == str(root / BUILD_CACHE)
    # A second run clears a devnet directory but for its build cache; anything else is refused.
    (root / BUILD_CACHE / "entry").write_text("x")
    prepare_dir(root)
    assert sorted(x.name for x in root.iterdir()) == sorted([MANIFEST_NAME, BUILD_CACHE])
    assert (root / BUILD_CACHE / "entry").exists()
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    with pytest.raises(DevnetError, match="not a devnet directory"):
        prepare_dir(other)
    assert (other / "thesis.tex").exists()


# --- the adversary ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def genesis():
    keys = generate_keys(["v"])
    return build_genesis(load_manifest(manifest_path("avx2")), validator_stakes(keys, ["v"]),
                         genesis_time_ms=1)


def signed_hostile(genesis, name, tmp_path):
    patch = read_patch(HOSTILE / name)
    workspace = apply_patches(genesis, [], [patch], tmp_path)[name]
    return hostile_commit(genesis, patch, workspace, generate_keys(["x"])["x"], time_ms=5)


def test_hostile_commit_is_signed_on_the_genesis_and_carries_its_tree(genesis, tmp_path):
    hc = signed_hostile(genesis, "05-bench-reports-less.patch", tmp_path)
    commit = decode_object(hc.objects[-1])
    assert isinstance(commit, Commit) and commit.cid == hc.commit.cid
    commit.verify()
    assert commit.parents == (genesis.target.cid,) and commit.author == commit.signer
    assert commit.claim.ratio_ppm < 1_000_000
    tree = decode_object(hc.objects[-2])
    assert tree.cid == commit.tree
    assert "bench/src/main.rs" in tree.entries  # the out-of-scope edit travels, visibly
    from dag.scope import overlay, tree_entries

    workspace = overlay(genesis.base_tree, genesis.target.writable, tree)
    violations = check_scope(genesis.base_tree.entries, tree_entries(workspace, lambda c: 1),
                             genesis.target.writable, 1 << 20)
    assert [v.path for v in violations] == ["bench/src/main.rs"]
    assert hc.expect == "scope_violation"


def test_a_symlink_cannot_travel_in_a_tree(genesis, tmp_path):
    hc = signed_hostile(genesis, "06-symlink-outside.patch", tmp_path)
    tree = decode_object(hc.objects[-2])
    assert "dft/src/precomputed_twiddles.rs" not in tree.entries
    # the rest of the patch did apply: the file that includes the link changed
    changed = tree.entries["dft/src/radix2_dit.rs"].blob
    assert changed != genesis.base_tree.entries["dft/src/radix2_dit.rs"].blob


def test_good_patches_stack_on_their_depends_on_and_a_cycle_is_refused(genesis, tmp_path):
    good = read_patches(GOOD)
    applied = apply_patches(genesis, good, [], tmp_path)
    assert set(applied) == {"genesis", *(p.name for p in good)}
    for patch in good:  # each adds to the workspace of the patch it depends on
        parent = applied[patch.depends_on or "genesis"]
        assert applied[patch.name].tree_cid != parent.tree_cid
    items = build_items(genesis, applied)
    assert len({item.workspace.tree_cid for item in items}) == len(items) == len(applied)
    looped = [dataclasses.replace(p, headers={**p.headers, "depends-on": "x.patch"})
              for p in good[:1]]
    looped.append(dataclasses.replace(good[1], path=good[1].path.with_name("x.patch"),
                                      headers={**good[1].headers,
                                               "depends-on": good[0].name}))
    with pytest.raises(DevnetError, match="cycle"):
        apply_patches(genesis, looped, [], tmp_path)


# --- live view and summary from recorded API JSON -------------------------------------------

T = "bT"
KEYS = {"k1": "verifier-1", "k2": "verifier-2", "k3": "verifier-3", "kb": "byzantine",
        "kp1": "proposer-1", "kp2": "proposer-2", "ka": "adversary"}
HONEST = ("k1", "k2", "k3")


def dag_node(cid, status, author="kp1", message="m", ratio=None, parents=(T,), time_ms=1):
    return {"cid": cid, "parents": list(parents), "status": status, "message": message,
            "author": author, "time_ms": time_ms, "ratio_ppm": ratio, "on_chain": False}


def attestation(verifier, commit, result, seq=1):
    return {"cid": f"a-{verifier}-{commit}-{seq}", "verifier": verifier, "seq": seq,
            "epoch": 0, "time_ms": 1, "head": commit,
            "verdict": {"commit": commit, "parent": T, "result": result, "ratio_ppm": 0,
                        "lo_ppm": 0, "hi_ppm": 0, "pairs": 0, "gate_seed": "00",
                        "profile": "avx2", "toolchain": "t"}}


def outcome(**changes):
    dag = [dag_node(T, "final"),
           dag_node("c1", "final", message="fused inverse", ratio=900_000, time_ms=2),
           dag_node("c2", "final", message="bitrev-free", ratio=800_000, parents=("c1",),
                    time_ms=3),
           dag_node("h1", "rejected", author="ka", message="cap twiddles", time_ms=4),
           dag_node("p1", "pending", author="kp2", message="twiddle cache", time_ms=5),
           dag_node("p2", "pending", author="kp2", message="on top", parents=("p1",),
                    time_ms=6),
           dag_node("s1", "accepted", author="kp2", message="sibling", time_ms=7)]
    base = dict(
        target=T,
        chain={"target": T, "speedup": 1 / 0.72, "steps": [
            {"cid": "c1", "message": "fused inverse", "author": "kp1", "ratio_ppm": 900_000,
             "cumulative_ppm": 900_000, "speedup": 1 / 0.9, "final": True},
            {"cid": "c2", "message": "bitrev-free", "author": "kp1", "ratio_ppm": 800_000,
             "cumulative_ppm": 720_000, "speedup": 1 / 0.72, "final": True}]},
        dag=dag,
        stakes={"epoch": 9, "accounts": [
            {"key": "k1", "free": 12, "bonded": 1000, "locked": 0, "ejected": False},
            {"key": "kb", "free": 0, "bonded": 0, "locked": 0, "ejected": True}],
            "slashes": [{"offender": "kb", "reason": "false_gate_claim", "epoch": 3,
                         "amount": 500, "source": "ch1"}],
            "rewards": [{"commit": "c1", "account": "kp1", "amount": 100, "kind": "proposer"},
                        {"commit": "c1", "account": "k1", "amount": 5, "kind": "verifier"},
                        {"commit": "c2", "account": "kp1", "amount": 200,
                         "kind": "proposer"}],
            "equivocators": []},
        heads={name: {"head": "c2", "finalized": "c2", "heads": ["c2"]}
               for name in ("verifier-1", "verifier-2", "byzantine")},
        attestations={
            "h1": [attestation(k, "h1", "gate_failed") for k in HONEST]
            + [attestation("kb", "h1", "improved")],
            "p1": [attestation(k, "p1", "not_improved") for k in HONEST],
            "p2": [attestation(k, "p2", "improved") for k in HONEST],
            "s1": [attestation(k, "s1", "improved") for k in HONEST]},
        names=KEYS, honest=HONEST, byzantine="kb",
        hostile={"h1": {"patch": "01-cap.patch", "expect": "gate_failed"}},
        hostile_expected=1,
        proposers_idle={"proposer-1": True, "proposer-2": True},
        experiments={"proposer-1": [
            {"patch": "02-x.patch", "status": "keep", "ratio_ppm": 935_000, "lo_ppm": 916_000,
             "hi_ppm": 954_000, "detail": ""},
            {"patch": "06-y.patch", "status": "discard", "ratio_ppm": 1_003_000,
             "lo_ppm": 992_000, "hi_ppm": 1_010_000, "detail": ""}]},
        description="quick LDE")
    base["ledgers"] = {name: ledger_fingerprint(base["stakes"]) for name in base["heads"]}
    base.update(changes)
    return Outcome(**base)


def text_of(renderable) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def test_summary_shows_chain_rejections_slashes_rewards_and_heads():
    summary = build_summary(outcome())
    assert [r.cid for r in summary.chain] == ["c1", "c2"]
    assert summary.chain[-1].cumulative_ppm == 720_000
    held = {r.cid: r for r in summary.held}
    assert held["h1"].verdicts == {"gate_failed": 3}  # the liar's "improved" is not honest
    assert held["h1"].author == "adversary" and held["h1"].patch == "01-cap.patch"
    assert held["p1"].verdicts == {"not_improved": 3}
    assert [(s.offender, s.amount) for s in summary.slashes] == [("byzantine", 500)]
    accounts = {a.name: a for a in summary.accounts}
    assert accounts["proposer-1"].proposer_rewards == 300
    assert accounts["verifier-1"].verifier_rewards == 5
    assert accounts["byzantine"].ejected
    assert summary.same_final_head
    text = text_of(render_summary(summary))
    for expected in ("1.39×", "failed the gate", "3× gate_failed", "false gate claim",
                     "not measurably faster", "stacked on a commit that is pending",
                     "branch fork choice did not pick", "−6.5% [−8.4%, −4.6%]",
                     "discarded: not faster",
                     "All 3 nodes share the final head",
                     "All 3 nodes report the same balances, slashes and rewards"):
        assert expected in text, expected


def test_done_when_everything_happened():
    done = check_done(outcome())
    assert done.ok, done.missing


@pytest.mark.parametrize(("changes", "says"), [
    ({"proposers_idle": {"proposer-1": False, "proposer-2": True}}, "proposer-1 still working"),
    ({"hostile_expected": 2}, "only 1 of 2 hostile commits"),
    ({"attestations": {"p1": []}}, "still waiting for honest verdicts"),
    ({"chain": {"steps": [], "speedup": 1.0}}, "no improvement accepted"),
    ({"heads": {"verifier-1": {"head": "c2", "finalized": "c1"}}}, "not final yet"),
    ({"heads": {"verifier-1": {"head": "c2", "finalized": "c2"},
                "verifier-2": {"head": "c1", "finalized": "c1"}}}, "disagree"),
    ({"heads": {"verifier-1": None}}, "no answer from verifier-1"),
])
def test_not_done_says_what_is_missing(changes, says):
    done = check_done(outcome(**changes))
    assert not done.ok
    assert any(says in m for m in done.missing), done.missing


def test_ledger_fingerprint_ignores_the_clock_and_row_order():
    stakes = outcome().stakes
    shuffled = {**stakes, "epoch": stakes["epoch"] + 5,
                "rewards": list(reversed(stakes["rewards"])),
                "accounts": list(reversed(stakes["accounts"]))}
    assert ledger_fingerprint(shuffled) == ledger_fingerprint(stakes)
    richer = {**stakes, "accounts": [{**stakes["accounts"][0], "free": 13},
                                     *stakes["accounts"][1:]]}
    assert ledger_fingerprint(richer) != ledger_fingerprint(stakes)


def test_not_done_while_the_nodes_report_different_balances():
    o = outcome()
    stakes = {**o.stakes, "rewards": o.stakes["rewards"][:2]}  # one reward not (yet) known
    o.ledgers = {**o.ledgers, "verifier-2": ledger_fingerprint(stakes)}
    done = check_done(o)
    assert not done.ok
    assert "the nodes report different balances: byzantine, verifier-1 | verifier-2" \
        in done.missing
    assert "do not (yet) report the same balances" in text_of(render_summary(build_summary(o)))


def test_not_done_until_the_byzantine_is_slashed():
    o = outcome()
    o.stakes = {**o.stakes, "slashes": []}
    done = check_done(o)
    assert not done.ok and any("not slashed" in m for m in done.missing)
    assert "nobody yet" in text_of(render_summary(build_summary(o)))


def snapshot(dag, slashes=(), verifying=None):
    nodes = [NodeState("verifier-1", ("verifier",), "u", status={
        "peers": ["a", "b"], "verifying": verifying, "queue_length": 2}, heads={
        "head": "c1", "finalized": T}),
        NodeState("proposer-1", ("proposer",), "u", status=None, error="refused"),
        NodeState("byzantine", ("verifier",), "u", down="exited"),
        NodeState("proposer-2", ("proposer",), "u", down="not started yet")]
    return Snapshot(elapsed_s=12.0, target=T, nodes=nodes, names=KEYS, source="verifier-1",
                    dag=dag, stakes={"slashes": list(slashes)})


def test_live_counts_and_news_from_two_snapshots():
    before = snapshot([dag_node(T, "final"), dag_node("c1", "pending", message="fused")])
    after = snapshot([dag_node(T, "final"), dag_node("c1", "accepted", message="fused"),
                      dag_node("h1", "rejected", author="ka", message="cap")],
                     slashes=[{"offender": "kb", "reason": "equivocation", "amount": 500}],
                     verifying="c1")
    c = counts(after)
    assert (c.proposed, c.accepted, c.rejected, c.pending, c.slashings) == (2, 1, 1, 0, 1)
    assert (c.verifying, c.queued) == (1, 2)
    news = diff_events(before, after)
    assert any("c1" in n and "accepted" in n for n in news)
    assert any(n.startswith("adversary proposed") for n in news)
    assert any("rejected" in n for n in news)
    assert any(n == "SLASHED byzantine: 500 for equivocation" for n in news)
    assert diff_events(after, after) == []
    text = text_of(render(after, news))
    for expected in ("verifier-1", "exited", "not started yet", "refused", "accepted 1",
                     "slashings 1"):
        assert expected in text, expected


# --- the launcher ----------------------------------------------------------------------------


def fake_layout(tmp_path, script):
    """A layout whose every "node" is ``script`` (run as the launcher's python)."""
    p = plan()
    exe = tmp_path / "fake-python"
    exe.write_text(f"#!{sys.executable}\n{script}\n")
    exe.chmod(0o755)
    root = tmp_path / "devnet"
    prepare_dir(root)
    (root / "logs").mkdir()
    from node.devnet.layout import Layout

    return Layout(root=root, plan=p, target=T), str(exe)


def test_launcher_stops_every_process_it_started(tmp_path):
    layout, exe = fake_layout(tmp_path, "import signal, time\n"
                                        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                        "print('up', flush=True)\ntime.sleep(600)")
    launcher = Launcher(layout, python=exe)
    launcher.start()
    try:
        assert len(launcher.processes) == len(layout.plan.nodes)
        time.sleep(0.5)
        launcher.check_alive()
    finally:
        killed = launcher.stop(grace=1.0)
    assert sorted(killed) == sorted(n.name for n in layout.plan.nodes)  # SIGTERM ignored
    assert all(not p.alive() for p in launcher.processes)
    assert "up" in layout.log_path("verifier-1").read_text()


def test_launcher_names_a_node_that_died_with_its_log(tmp_path):
    layout, exe = fake_layout(tmp_path, "import sys\nprint('bad config: port taken')\n"
                                        "sys.exit(3)")
    launcher = Launcher(layout, python=exe)
    launcher.start()
    try:
        with pytest.raises(DevnetError, match=r"(?s)exited with status 3.*port taken"):
            launcher.wait_ready(timeout=20)
    finally:
        launcher.stop(grace=1.0)


def test_launcher_deadline_names_silent_nodes(tmp_path):
    layout, exe = fake_layout(tmp_path, "import time\ntime.sleep(600)")
    launcher = Launcher(layout, python=exe)
    launcher.start()
    try:
        with pytest.raises(DevnetError, match="still do not answer"):
            launcher.wait_ready(timeout=1)
    finally:
        assert launcher.stop(grace=5.0) == []


def test_a_proposer_is_idle_when_its_role_says_so_or_its_log_covers_its_patches():
    from node.devnet.run import proposer_idle

    assert proposer_idle({"proposer": {"state": "idle"}}, [], ["a.patch"])
    assert not proposer_idle({"proposer": {"state": "experimenting"}},
                             [{"patch": "a.patch"}], ["a.patch"])
    assert proposer_idle(None, [{"patch": "a.patch"}, {"patch": "b.patch"}],
                         ["a.patch", "b.patch"])
    assert not proposer_idle({"peers": []}, [{"patch": "a.patch"}], ["a.patch", "b.patch"])

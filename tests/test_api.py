"""The HTTP API served by Hypercorn on 127.0.0.1, queried over TCP with httpx.

The node is tests/api_support.StandInNode: a real store and real chains holding target ← c1
(final) ← c2 (accepted) ← pend (pending), c1 ← bad (rejected), and an equivocating verifier.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.bundle import encode_bundle
from protocol import examples as ex
from protocol.cid import CID
from protocol.constants import PPM
from protocol.encoding import encode
from protocol.objects import Blob
from tests.api_support import (
    BASE_FILES,
    BYZANTINE,
    ApiServer,
    RecordingProposer,
    Scenario,
    StandInNode,
    build_scenario,
    commit_bundle,
    make_target,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

BUNDLE = {"content-type": "application/x-poi-bundle"}
UNKNOWN_CID = str(CID.for_bytes("messagepack", b"nobody has this"))
BLOB_CID = str(CID.for_bytes("raw", b"just a blob"))
MALFORMED = ["xyz", "Bagaqiera", "bafy" + "a" * 200, "b" + "1" * 40, "%20", "QmYwAPJzv5CZsnA"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[tuple[Scenario, httpx.Client]]:
    node = StandInNode(tmp_path_factory.mktemp("api"), [make_target()])
    scenario = build_scenario(node)
    with ApiServer(node) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield scenario, client
    node.close()


@pytest.fixture
def fresh(tmp_path) -> Iterator[tuple[Scenario, ApiServer, httpx.Client]]:
    """A node of its own (for tests that change state), with small body limits."""
    node = StandInNode(tmp_path, [make_target()])
    scenario = build_scenario(node)
    with ApiServer(node, max_bundle_bytes=64 << 10, max_json_bytes=16 << 10) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        yield scenario, server, client
    node.close()


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body["error"]


# -- node and targets -------------------------------------------------------------------------
def test_status_reports_identity_roles_and_followed_targets(world):
    scenario, client = world
    status = client.get("/v1/status").json()
    assert status["peer_id"] == scenario.node.peer_id
    assert status["public_key"] == scenario.node.key.public_key.hex()
    assert status["targets"] == [str(scenario.target.cid)]
    assert status["roles"] == ["observer"] and status["synced"] is True
    assert status["http_url"] == str(client.base_url).rstrip("/")


def test_targets_show_genesis_parameters_head_and_size(world):
    scenario, client = world
    (listed,) = client.get("/v1/targets").json()
    one = client.get(f"/v1/targets/{scenario.target.cid}").json()
    assert listed == one
    target = scenario.target
    assert one["cid"] == str(target.cid) and one["name"] == target.name
    assert one["writable"] == list(target.writable) and one["quorum_ppm"] == target.quorum_ppm
    assert {v["key"]: v["stake"] for v in one["validators"]} == {
        v.key.hex(): v.stake for v in target.validators}
    assert one["head"] == str(scenario.cids["c2"])
    assert one["finalized"] == str(scenario.cids["c1"])
    assert one["commit_count"] == 4


@pytest.mark.parametrize("suffix", ["", "/heads", "/chain", "/dag", "/stakes", "/rejected"])
def test_target_endpoints_refuse_malformed_and_unknown_targets(world, suffix):
    _, client = world
    for bad in MALFORMED:
        assert "malformed" in error_of(client.get(f"/v1/targets/{bad}{suffix}"), 400)
    message = error_of(client.get(f"/v1/targets/{UNKNOWN_CID}{suffix}"), 404)
    assert "does not follow" in message
    error_of(client.get(f"/v1/targets/{BLOB_CID}{suffix}"), 404)


# -- commits ----------------------------------------------------------------------------------
def test_commit_shows_status_claim_and_stake_for_and_against(world):
    scenario, client = world
    cids = scenario.cids
    c1 = client.get(f"/v1/commits/{cids['c1']}").json()
    assert c1["status"] == "final" and c1["on_chain"] is True
    assert c1["parents"] == [str(scenario.target.cid)] and c1["target"] == str(
        scenario.target.cid)
    assert c1["message"] == "radix-4 butterflies"
    assert c1["claim"]["ratio_ppm"] == 900_000 and c1["claim"]["pairs"] == 7
    assert c1["stake"] == {"improved": 1000, "against": 0, "neutral": 0, "verifiers": 4,
                           "total_active": 1000}
    assert c1["verified_ratio_ppm"] == 902_000
    assert sorted(c1["children"]) == sorted([str(cids["c2"]), str(cids["bad"])])
    assert c1["attestation_count"] == 4

    c2 = client.get(f"/v1/commits/{cids['c2']}").json()
    assert c2["status"] == "accepted" and c2["stake"]["improved"] == 400

    bad = client.get(f"/v1/commits/{cids['bad']}").json()
    assert bad["status"] == "rejected" and bad["on_chain"] is False
    assert bad["stake"]["against"] == 1000 and bad["verified_ratio_ppm"] is None
    assert bad["attestation_count"] == 6  # 4 honest + both of the equivocator's

    pend = client.get(f"/v1/commits/{cids['pend']}").json()
    assert pend["status"] == "pending" and pend["stake"]["verifiers"] == 0
    assert pend["children"] == [] and pend["attestation_count"] == 0


@pytest.mark.parametrize("suffix", ["", "/patch", "/attestations", "/lineage"])
def test_commit_endpoints_refuse_malformed_and_unknown_cids(world, suffix):
    scenario, client = world
    for bad in MALFORMED:
        assert "malformed" in error_of(client.get(f"/v1/commits/{bad}{suffix}"), 400)
    assert "no commit" in error_of(client.get(f"/v1/commits/{UNKNOWN_CID}{suffix}"), 404)
    error_of(client.get(f"/v1/commits/{BLOB_CID}{suffix}"), 404)
    stored_blob = Blob(BASE_FILES["Cargo.toml"].encode()).cid
    assert "is a blob" in error_of(client.get(f"/v1/commits/{stored_blob}{suffix}"), 404)
    assert "is a target" in error_of(
        client.get(f"/v1/commits/{scenario.target.cid}{suffix}"), 404)
    assert "is a evidence" in error_of(
        client.get(f"/v1/commits/{scenario.evidence.cid}{suffix}"), 404)


def test_patch_is_a_unified_diff_against_the_first_parent(world):
    scenario, client = world
    response = client.get(f"/v1/commits/{scenario.cids['c2']}/patch")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == (
        "diff --git a/baby-bear/src/lib.rs b/baby-bear/src/lib.rs\n"
        "--- a/baby-bear/src/lib.rs\n+++ b/baby-bear/src/lib.rs\n"
        "@@ -1,3 +1,3 @@\n pub fn reduce(x: u64) -> u32 {\n"
        "-    (x % 2013265921) as u32\n+    montgomery(x)\n }\n")
    first = client.get(f"/v1/commits/{scenario.cids['c1']}/patch").text  # against the target
    assert "-    naive(v);\n+    radix4(v);\n" in first and "baby-bear" not in first


def test_attestations_list_every_verdict_on_the_commit(world):
    scenario, client = world
    atts = client.get(f"/v1/commits/{scenario.cids['bad']}/attestations").json()
    assert len(atts) == 6
    liar = ex.key(BYZANTINE).public_key.hex()
    assert sorted(a["verdict"]["result"] for a in atts if a["verifier"] == liar) == [
        "gate_failed", "improved"]
    for att in atts:
        verdict = att["verdict"]
        assert verdict["commit"] == str(scenario.cids["bad"])
        assert verdict["parent"] == str(scenario.cids["c1"])
        assert len(bytes.fromhex(verdict["gate_seed"])) == 32
        CID.parse(att["cid"]), CID.parse(att["head"])


def test_lineage_follows_first_parents_to_the_target(world):
    scenario, client = world
    cids = scenario.cids
    assert client.get(f"/v1/commits/{cids['pend']}/lineage").json() == [
        str(cids["pend"]), str(cids["c2"]), str(cids["c1"]), str(scenario.target.cid)]


def test_heads_name_head_finalized_and_every_tip(world):
    scenario, client = world
    cids = scenario.cids
    heads = client.get(f"/v1/targets/{scenario.target.cid}/heads").json()
    assert heads["head"] == str(cids["c2"]) and heads["finalized"] == str(cids["c1"])
    assert sorted(heads["heads"]) == sorted([str(cids["pend"]), str(cids["bad"])])


def test_canonical_chain_carries_verified_ratios_and_cumulative_speedup(world):
    scenario, client = world
    chain = client.get(f"/v1/targets/{scenario.target.cid}/chain").json()
    steps = chain["steps"]
    assert [s["cid"] for s in steps] == [str(scenario.cids["c1"]), str(scenario.cids["c2"])]
    assert [s["ratio_ppm"] for s in steps] == [902_000, 950_000]
    assert [s["final"] for s in steps] == [True, False]
    assert steps[1]["cumulative_ppm"] == 902_000 * 950_000 // PPM
    assert chain["speedup"] == pytest.approx(PPM / steps[1]["cumulative_ppm"])
    assert steps[0]["speedup"] == pytest.approx(PPM / 902_000)
    assert steps[0]["message"] == "radix-4 butterflies"


def test_dag_pages_through_nodes_and_edges_in_arrival_order(world):
    scenario, client = world
    url = f"/v1/targets/{scenario.target.cid}/dag"
    whole = client.get(url).json()
    assert whole["next"] is None and whole["total"] == 4
    by_cid = {n["cid"]: n for n in whole["nodes"]}
    cids = scenario.cids
    assert [by_cid[str(cids[k])]["status"] for k in ("c1", "c2", "bad", "pend")] == [
        "final", "accepted", "rejected", "pending"]
    assert [by_cid[str(cids[k])]["on_chain"] for k in ("c1", "c2", "bad", "pend")] == [
        True, True, False, False]
    assert sorted(map(tuple, whole["edges"])) == sorted(
        (str(scenario.commits[k].parents[0]), str(cids[k])) for k in ("c1", "c2", "bad", "pend"))
    seen = {str(scenario.target.cid)}
    for node in whole["nodes"]:  # parents always come first
        assert set(node["parents"]) <= seen
        seen.add(node["cid"])
    first = client.get(url, params={"limit": 3}).json()
    assert first["next"] == 3 and first["nodes"] == whole["nodes"][:3]
    rest = client.get(url, params={"since": first["next"], "limit": 3}).json()
    assert rest["next"] is None and rest["nodes"] == whole["nodes"][3:]
    assert client.get(url, params={"since": 99}).json()["nodes"] == []
    for params in ({"limit": 0}, {"limit": "x"}, {"since": -1}, {"limit": 10**9}):
        error_of(client.get(url, params=params), 400)


def test_stakes_show_accounts_slashes_rewards_and_equivocators(world):
    scenario, client = world
    stakes = client.get(f"/v1/targets/{scenario.target.cid}/stakes").json()
    liar = ex.key(BYZANTINE).public_key.hex()
    assert stakes["equivocators"] == [liar]
    (slash,) = stakes["slashes"]
    assert slash["offender"] == liar and slash["reason"] == "equivocation"
    assert slash["source"] == str(scenario.evidence.cid) and slash["amount"] > 0
    accounts = {a["key"]: a for a in stakes["accounts"]}
    assert accounts[liar]["ejected"] is True
    assert accounts[ex.key(3).public_key.hex()]["bonded"] == 400
    c1_rewards = [r for r in stakes["rewards"] if r["commit"] == str(scenario.cids["c1"])]
    assert {r["kind"] for r in c1_rewards} == {"proposer", "verifier"}
    assert stakes["minted"] == sum(r["amount"] for r in stakes["rewards"])


def test_rejected_lists_the_commit_with_the_verdicts_against_it(world):
    scenario, client = world
    (rejected,) = client.get(f"/v1/targets/{scenario.target.cid}/rejected").json()
    assert rejected["cid"] == str(scenario.cids["bad"])
    assert rejected["message"] == "skip the bit reversal"
    assert rejected["stake_against"] == 1000
    assert rejected["reasons"] == {"gate_failed": 4}  # the equivocator counts for nothing


# -- metrics, schema, page --------------------------------------------------------------------
def test_metrics_are_prometheus_text_with_fork_choice_and_latencies(world):
    scenario, client = world
    client.get("/v1/status")
    client.get(f"/v1/commits/{UNKNOWN_CID}")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    target = (("target", str(scenario.target.cid)),)
    assert samples[("poi_fork_choice_commits", target)] == 4
    assert samples[("poi_fork_choice_rejected_commits", target)] == 1
    assert samples[("poi_fork_choice_finalized_length", target)] == 1
    assert samples[("poi_fork_choice_equivocators", target)] == 1
    assert samples[("poi_ingest_accepted_total", ())] > 0
    assert samples[("poi_verification_queue_length", ())] == 0
    assert samples[("poi_synced", ())] == 1
    status_count = samples[("poi_http_request_duration_seconds_count",
                            (("method", "GET"), ("route", "/v1/status"), ("status", "200")))]
    assert status_count >= 1
    assert samples[("poi_http_request_duration_seconds_count",
                    (("method", "GET"), ("route", "/v1/commits/{cid}"), ("status", "404")))] >= 1


def test_openapi_schema_documents_every_endpoint(world):
    _, client = world
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) >= {
        "/v1/status", "/v1/targets", "/v1/targets/{target}", "/v1/targets/{target}/heads",
        "/v1/targets/{target}/chain", "/v1/targets/{target}/dag", "/v1/targets/{target}/stakes",
        "/v1/targets/{target}/rejected", "/v1/commits", "/v1/commits/{cid}",
        "/v1/commits/{cid}/patch", "/v1/commits/{cid}/attestations",
        "/v1/commits/{cid}/lineage", "/v1/patches", "/v1/events", "/metrics"}
    commit = schema["paths"]["/v1/commits/{cid}"]["get"]["responses"]
    assert set(commit) >= {"200", "400", "404"}
    assert client.get("/docs").status_code == 200


def test_unknown_paths_and_methods_answer_json_errors(world):
    _, client = world
    assert "no endpoint" in error_of(client.get("/v2/status"), 404)
    error_of(client.delete("/v1/status"), 405)
    page = client.get("/")
    assert page.status_code == 200 and "<svg" in page.text
    assert client.get("/static/app.js").status_code == 200


# -- events -----------------------------------------------------------------------------------
def read_events(response: httpx.Response, until, limit: int = 200) -> list[dict]:
    """Parse SSE events from a streaming response until ``until(events)`` holds."""
    events, current = [], {}
    for line in response.iter_lines():
        if line == "":
            if current:
                events.append(current)
                current = {}
                if until(events):
                    return events
            if len(events) > limit:
                break
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        current[name] = value
    raise AssertionError(f"stream ended before the condition held: {events}")


def test_event_stream_delivers_a_new_commit_live(fresh):
    scenario, server, client = fresh
    new = scenario.child("c2", "live", "fuse the twiddle loads",
                         lambda s: s.replace("radix4(v);", "radix4_fused(v);"))
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(10, read=20)) as stream_client, \
            stream_client.stream("GET", "/v1/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        wait_for(lambda: scenario.node.events.subscriber_count == 1, what="the subscription")
        posted = client.post("/v1/commits", content=commit_bundle(*new), headers=BUNDLE)
        assert posted.status_code == 200, posted.text
        events = read_events(response, lambda evs: any(e.get("event") == "commit" for e in evs))
    commit_event = next(e for e in events if e.get("event") == "commit")
    data = json.loads(commit_event["data"])
    assert data["cid"] == str(new[0].cid) and data["target"] == str(scenario.target.cid)
    assert int(commit_event["id"]) >= 1
    hub = scenario.node.events

    async def publish_and_count() -> int:
        hub.publish("head", {"probe": True})  # the hub drops closed subscribers on publishing
        return hub.subscriber_count

    wait_for(lambda: server.call(publish_and_count) == 0, what="the stream's subscription to end")


def test_event_stream_refuses_unknown_kinds(world):
    _, client = world
    assert "unknown event kinds" in error_of(client.get("/v1/events?kinds=commit,bogus"), 400)


# -- submitting -------------------------------------------------------------------------------
def test_posting_a_signed_commit_stores_applies_and_is_idempotent(fresh):
    scenario, _, client = fresh
    new = scenario.child("c2", "posted", "vectorise the butterflies",
                         lambda s: s.replace("radix4(v);", "radix4_simd(v);"))
    result = client.post("/v1/commits", content=commit_bundle(*new), headers=BUNDLE)
    assert result.status_code == 200, result.text
    body = result.json()
    # The commit and its tree are new; one blob (the unchanged baby-bear file) was known.
    assert body["accepted"][:2] == [str(new[0].cid), str(new[1].cid)]
    assert body["rejected"] == [] and body["ignored"] == [[2, "already known"]]
    assert len(body["accepted"]) == 3
    shown = client.get(f"/v1/commits/{new[0].cid}").json()
    assert shown["status"] == "pending" and shown["parents"] == [str(scenario.cids["c2"])]
    assert "radix4_simd" in client.get(f"/v1/commits/{new[0].cid}/patch").text
    again = client.post("/v1/commits", content=commit_bundle(*new), headers=BUNDLE).json()
    assert again["accepted"] == [] and [i for i, _ in again["ignored"]] == [0, 1, 2, 3]
    dag = client.get(f"/v1/targets/{scenario.target.cid}/dag").json()
    assert dag["total"] == 5 and dag["nodes"][-1]["cid"] == str(new[0].cid)


def test_posting_a_forged_commit_is_rejected_with_the_reason(fresh):
    scenario, _, client = fresh
    commit, _, _ = scenario.child("c2", "forged", "forged",
                                         lambda s: s.replace("radix4", "fake"))
    forged = dataclasses.replace(commit, message="a message the author never signed")
    response = client.post("/v1/commits", content=encode_bundle([forged.encode()]),
                           headers=BUNDLE)
    message = error_of(response, 400)
    assert "rejected" in message and "signature" in message
    assert response.json()["rejected"][0][0] == 0
    error_of(client.get(f"/v1/commits/{forged.cid}"), 404)


@pytest.mark.parametrize("body", [
    b"", b"\xc1", b"not msgpack at all", encode({"a": 1}), encode([]), encode([1, 2]),
    encode([b"\x00" * 8]), b"\x91" + b"\xc4",
], ids=["empty", "reserved-byte", "text", "map", "empty-array", "ints", "junk-object",
        "truncated"])
def test_malformed_bundles_are_400_never_500(fresh, body):
    _, _, client = fresh
    error_of(client.post("/v1/commits", content=body, headers=BUNDLE), 400)


def test_bundle_limits_and_content_type(fresh):
    _, _, client = fresh
    message = error_of(client.post("/v1/commits", content=b"\x00" * (64 << 10 | 1),
                                   headers=BUNDLE), 413)
    assert "limit" in message
    error_of(client.post("/v1/commits", json={"objects": []}), 415)


def test_patches_go_to_the_proposer_or_409_without_one(fresh):
    scenario, _, client = fresh
    patch = "--- a/dft/src/lib.rs\n+++ b/dft/src/lib.rs\n@@ -1 +1 @@\n-a\n+b\n"
    assert "no proposer" in error_of(client.post("/v1/patches", json={"patch": patch}), 409)
    scenario.node.proposer = proposer = RecordingProposer()
    queued = client.post("/v1/patches", json={"patch": patch, "message": "faster"})
    assert queued.status_code == 202 and queued.json() == {"queued": True, "position": 1}
    assert proposer.patches == [(patch, "faster")]
    for bad in ({}, {"patch": 3}, {"patch": ""}, {"patch": patch, "extra": 1}, [patch]):
        error_of(client.post("/v1/patches", json=bad), 400)
    error_of(client.post("/v1/patches", content=b"{not json",
                         headers={"content-type": "application/json"}), 400)
    assert "not a unified diff" in error_of(client.post("/v1/patches", json={"patch": "x"}), 400)
    error_of(client.post("/v1/patches", content=patch, headers={"content-type": "text/plain"}),
             415)
    error_of(client.post("/v1/patches", json={"patch": "x" * (16 << 10)}), 413)
    assert len(proposer.patches) == 1


def test_patch_of_a_commit_without_its_content_fetches_it_or_says_what_is_missing(fresh):
    scenario, _, client = fresh
    commit, tree, blobs = scenario.child("c2", "bare", "tree not sent",
                                         lambda s: s.replace("radix4(v);", "radix8(v);"))
    posted = client.post("/v1/commits", content=encode_bundle([commit.encode()]), headers=BUNDLE)
    assert posted.json()["accepted"] == [str(commit.cid)]
    message = error_of(client.get(f"/v1/commits/{commit.cid}/patch"), 404)
    assert "not on this node" in message and str(tree.cid) in message

    peers = {obj.cid: obj for obj in (tree, *blobs)}
    asked: list[list[str]] = []

    async def fetch(cids):  # the runtime's node.fetch: get objects from peers by sync
        asked.append(sorted(str(c) for c in cids))
        scenario.node.store.put_many([peers[c] for c in cids])

    scenario.node.fetch = fetch
    patch = client.get(f"/v1/commits/{commit.cid}/patch")
    assert patch.status_code == 200 and "+    radix8(v);" in patch.text
    changed = next(b for b in blobs if b"radix8" in b.data)
    assert asked == [[str(tree.cid)], [str(changed.cid)]]  # the tree, then only what differs


def test_chain_and_dag_answers_are_rebuilt_only_when_the_view_version_moves():
    from node.api.app import NodeView

    @dataclasses.dataclass
    class Chain:
        cid: CID
        view_version: int = 0

    view = NodeView(node=None)
    chain = Chain(ex.target().cid)
    builds = []

    def build():
        builds.append(chain.view_version)
        return {"version": chain.view_version}

    first = view.cached_json("chain", chain, build)
    assert view.cached_json("chain", chain, build) == first == b'{"version":0}'
    assert view.cached_json("dag", chain, build, 0, 10) == first  # another question: built
    assert len(builds) == 2
    chain.view_version += 1
    assert view.cached_json("chain", chain, build) == b'{"version":1}'
    assert len(builds) == 3

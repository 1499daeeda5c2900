"""The live DAG page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

The page is served by a real Hypercorn server for a tests/api_support.StandInNode: it must draw
every commit, mark the canonical chain, the rejected and the pending commit, show a commit's
attestations on click, and take in a new commit and its verdict from the event stream without a
reload. Screenshots go to artifacts/ (or $POI_ARTIFACTS_DIR).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright import sync_api

from node.bundle import encode_bundle
from tests.api_support import ApiServer, StandInNode, build_scenario, commit_bundle, make_target
from tests.api_support import verdict as make_verdict

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("POI_ARTIFACTS_DIR", Path(__file__).parent.parent / "artifacts"))
WAIT_MS = 15_000

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Debian's Chromium is a requirement of the suite (.ci/ensure-system-packages installs it);
    # a missing browser fails here with the fix, never a silent skip.
    assert CHROMIUM.exists(), "Debian's chromium is not installed: apt-get install chromium"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def site(tmp_path) -> Iterator[tuple]:
    node = StandInNode(tmp_path, [make_target()])
    scenario = build_scenario(node)
    with ApiServer(node) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield scenario, server, client
    node.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    try:
        yield page
    finally:
        context.close()


def cids_of(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.cid)")


def wait_count(page, selector: str, count: int) -> None:
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length === n",
                           arg=[selector, count], timeout=WAIT_MS)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_page_draws_the_dag_marks_chain_rejected_pending_and_shows_attestations(site, page):
    scenario, server, _ = site
    cids = {k: str(v) for k, v in scenario.cids.items()}
    page.goto(server.url + "/")
    wait_count(page, "#dag g.node", 4)
    assert cids_of(page, "#dag g.node.on-chain") == [cids["c1"], cids["c2"]]
    assert cids_of(page, "#dag g.node[data-status=rejected]") == [cids["bad"]]
    assert cids_of(page, "#dag g.node[data-status=pending]") == [cids["pend"]]
    assert cids_of(page, "#dag g.node[data-status=final]") == [cids["c1"]]
    assert page.locator(f"#dag g.root[data-target='{scenario.target.cid}']").count() == 1
    assert page.locator("#dag path.edge.on-chain").count() == 2
    assert page.locator("#dag path.edge").count() == 4
    assert page.locator("#staircase path.stair").get_attribute("data-steps") == "2"
    assert "1.167×" in page.locator("#speedup-now").inner_text()
    assert "skip the bit reversal" in page.locator("#rejected-table").inner_text()
    assert "equivocation" in page.locator("#slash-table").inner_text()

    page.click(f"#dag g.node[data-cid='{cids['c1']}']")
    page.wait_for_selector(f"#commit-info[data-cid='{cids['c1']}'] table.attestations tbody tr")
    wait_count(page, "#commit-info table.attestations tbody tr", 4)
    info = page.locator("#commit-info").inner_text()
    assert "final" in info and "radix-4 butterflies" in info
    assert page.locator("#commit-info .result-improved").count() == 4

    page.click(f"#dag g.node[data-cid='{cids['bad']}']")
    wait_count(page, "#commit-info table.attestations tbody tr", 6)
    assert page.locator("#commit-info .result-gate_failed").count() == 5
    page.click("#commit-patch button")
    page.wait_for_selector("#commit-patch pre.patch:not([hidden])")
    assert "+    radix4_unordered(v);" in page.locator("#commit-patch pre").inner_text()
    screenshot(page, "dashboard.png")
    assert page.errors == []
    assert all(url.startswith(server.url) for url in page.requested), page.requested


def test_page_updates_live_when_a_commit_and_its_verdict_arrive(site, page):
    scenario, server, client = site
    page.goto(server.url + "/")
    wait_count(page, "#dag g.node", 4)
    page.wait_for_selector("#live.on", timeout=WAIT_MS)
    page.evaluate("window.__sameDocument = true")

    commit, tree, blobs = scenario.child("c2", "live", "fuse the twiddle loads",
                                         lambda s: s.replace("radix4(v);", "radix4_fused(v);"))
    posted = client.post("/v1/commits", content=commit_bundle(commit, tree, blobs),
                         headers={"content-type": "application/x-poi-bundle"})
    assert posted.status_code == 200, posted.text
    wait_count(page, "#dag g.node", 5)
    new = f"#dag g.node[data-cid='{commit.cid}']"
    assert page.get_attribute(new, "data-status") == "pending"
    assert "on-chain" not in page.get_attribute(new, "class")

    # Verifier 3 (400 of 1000: over the 1/3 quorum) finds it faster and votes for it.
    attestation = scenario.verifiers[3].attest(commit.cid, make_verdict(commit, "improved",
                                                                        960_000))
    posted = client.post("/v1/commits", content=encode_bundle([attestation.encode()]),
                         headers={"content-type": "application/x-poi-bundle"})
    assert posted.status_code == 200, posted.text
    page.wait_for_selector(f"{new}.on-chain[data-status=accepted]", timeout=WAIT_MS)
    page.wait_for_selector("#staircase path.stair[data-steps='3']", timeout=WAIT_MS)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    screenshot(page, "dashboard-live.png")
    assert page.errors == []


def test_api_reference_page_renders_every_operation_without_a_cdn(site, page):
    _, server, client = site
    page.goto(server.url + "/docs")
    page.wait_for_selector("body[data-operations]", timeout=WAIT_MS)
    operations = sum(len(item) for item in client.get("/openapi.json").json()["paths"].values())
    assert int(page.get_attribute("body", "data-operations")) == operations
    assert "GET /v1/targets/{target}/dag" in page.locator("#operations").inner_text()
    assert all(url.startswith((server.url, "data:")) for url in page.requested)
    assert page.errors == []

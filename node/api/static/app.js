// The live DAG page of a poi node: plain JavaScript drawing SVG by hand, no libraries.
//
// Reads the node's JSON API (/v1/...), draws the improvement DAG (canonical chain, rejected and
// pending commits marked), the speed-up staircase over time, and the selected commit's verdicts;
// redraws when the event stream (/v1/events) says something changed.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COL = 120;        // px between DAG columns (depth)
  const ROW = 46;         // px between DAG lanes
  const PAD = 34;
  const R = 8;            // node radius
  const DAG_PAGE = 2000;
  const DAG_MAX_NODES = 20000;
  const REFRESH_DEBOUNCE_MS = 300;

  const state = {
    targets: [],
    target: null,          // TargetInfo of the shown target
    dag: { nodes: [], edges: [] },
    chain: null,
    selected: null,
    known: new Set(),      // CIDs drawn before the latest refresh (to mark fresh ones)
    refreshTimer: null,
    refreshing: false,
    again: false,
    renders: 0,
  };

  const $ = (id) => document.getElementById(id);

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(tag, props, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "text") node.textContent = v;
      else if (k === "className") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function short(cid) { return cid ? cid.slice(0, 6) + "…" + cid.slice(-6) : "—"; }
  function shortKey(hex) { return hex ? hex.slice(0, 8) : "—"; }
  function ratio(ppm) { return ppm == null ? "—" : (ppm / 1e6).toFixed(4); }
  function speedup(x) { return x.toFixed(3) + "×"; }
  function when(ms) { return new Date(ms).toISOString().replace("T", " ").slice(0, 19); }

  async function getJSON(path) {
    const response = await fetch(path, { headers: { accept: "application/json" } });
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
      throw new Error(`${path}: ${response.status} ${message}`);
    }
    return response.json();
  }

  // -- loading ---------------------------------------------------------------------------------
  async function loadTargets() {
    state.targets = await getJSON("/v1/targets");
    const select = $("target-select");
    select.textContent = "";
    for (const t of state.targets) {
      select.appendChild(html("option", { value: t.cid, text: `${t.name} (${short(t.cid)})` }));
    }
    const wanted = new URLSearchParams(location.search).get("target");
    const chosen = state.targets.find((t) => t.cid === wanted) || state.targets[0] || null;
    if (chosen) select.value = chosen.cid;
    state.target = chosen;
  }

  async function loadDag(cid) {
    const nodes = [], edges = [];
    let since = 0;
    while (since !== null && nodes.length < DAG_MAX_NODES) {
      const page = await getJSON(`/v1/targets/${cid}/dag?since=${since}&limit=${DAG_PAGE}`);
      nodes.push(...page.nodes);
      edges.push(...page.edges);
      since = page.next;
    }
    return { nodes, edges };
  }

  async function refresh() {
    if (state.refreshing) { state.again = true; return; }
    state.refreshing = true;
    try {
      if (!state.target) await loadTargets();
      if (!state.target) { $("dag-empty").hidden = false; $("dag-empty").textContent = "This node follows no target."; return; }
      const cid = state.target.cid;
      const [target, dag, chain, stakes, rejected, status] = await Promise.all([
        getJSON(`/v1/targets/${cid}`), loadDag(cid), getJSON(`/v1/targets/${cid}/chain`),
        getJSON(`/v1/targets/${cid}/stakes`), getJSON(`/v1/targets/${cid}/rejected`),
        getJSON("/v1/status"),
      ]);
      state.target = target;
      state.dag = dag;
      state.chain = chain;
      drawSummary(target, chain, dag);
      drawNodeStatus(status);
      drawDag(target, dag);
      drawStaircase(target, chain);
      drawRejected(rejected);
      drawSlashes(stakes);
      if (state.selected) await showCommit(state.selected, false);
      state.renders += 1;
      document.body.dataset.renders = String(state.renders);
    } catch (err) {
      console.error(err);
      $("summary").textContent = "could not load: " + err.message;
    } finally {
      state.refreshing = false;
      if (state.again) { state.again = false; scheduleRefresh(); }
    }
  }

  function scheduleRefresh() {
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(() => { state.refreshTimer = null; refresh(); },
                                    REFRESH_DEBOUNCE_MS);
  }

  // -- header ----------------------------------------------------------------------------------
  function drawSummary(target, chain, dag) {
    const counts = { final: 0, accepted: 0, pending: 0, rejected: 0 };
    for (const n of dag.nodes) counts[n.status] = (counts[n.status] || 0) + 1;
    const box = $("summary");
    box.textContent = "";
    const item = (label, value) => html("span", {}, [document.createTextNode(label + " "),
                                                     html("b", { text: value })]);
    box.append(item("speed-up", speedup(chain.speedup)), item("commits", String(dag.nodes.length)),
               item("final", String(counts.final)), item("accepted", String(counts.accepted)),
               item("pending", String(counts.pending)), item("rejected", String(counts.rejected)),
               item("head", short(target.head)));
    $("speedup-now").textContent = speedup(chain.speedup);
  }

  function drawNodeStatus(status) {
    $("node-status").textContent =
      `node ${status.peer_id.slice(0, 12)}… · ${status.roles.join("+")} · ` +
      `${status.peers.length} peers · ${status.synced ? "synced" : "syncing"}` +
      (status.queue_length ? ` · ${status.queue_length} queued` : "");
  }

  // -- the DAG ---------------------------------------------------------------------------------
  // Columns by depth (longest parent path from the target), lanes by row: the canonical chain
  // on lane 0, every other commit on the first free lane at its depth, near its parent's lane.
  function layout(target, dag) {
    const pos = new Map();
    pos.set(target.cid, { depth: 0, lane: 0 });
    const used = new Map();  // depth → Set of lanes
    const take = (depth, lane) => {
      if (!used.has(depth)) used.set(depth, new Set());
      used.get(depth).add(lane);
    };
    const free = (depth, lane) => !(used.get(depth) && used.get(depth).has(lane));
    take(0, 0);
    for (const n of dag.nodes) {
      let depth = 0;
      for (const p of n.parents) if (pos.has(p)) depth = Math.max(depth, pos.get(p).depth + 1);
      pos.set(n.cid, { depth, lane: null });
      if (n.on_chain) take(depth, 0);
    }
    let lanes = 1;
    for (const n of dag.nodes) {
      const p = pos.get(n.cid);
      if (n.on_chain) { p.lane = 0; continue; }
      const parent = pos.get(n.parents[0]);
      let lane = Math.max(1, parent && parent.lane ? parent.lane : 1);
      while (!free(p.depth, lane)) lane += 1;
      p.lane = lane;
      take(p.depth, lane);
      lanes = Math.max(lanes, lane + 1);
    }
    let depths = 1;
    for (const p of pos.values()) depths = Math.max(depths, p.depth + 1);
    return { pos, lanes, depths };
  }

  function drawDag(target, dag) {
    const svg = $("dag");
    svg.textContent = "";
    $("dag-empty").hidden = dag.nodes.length > 0;
    const { pos, lanes, depths } = layout(target, dag);
    const width = PAD * 2 + (depths - 1) * COL + 60;
    const height = PAD * 2 + (lanes - 1) * ROW + 16;
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const xy = (cid) => { const p = pos.get(cid); return [PAD + p.depth * COL, PAD + p.lane * ROW]; };
    const onChain = new Set(dag.nodes.filter((n) => n.on_chain).map((n) => n.cid));
    onChain.add(target.cid);
    const firstParent = new Map(dag.nodes.map((n) => [n.cid, n.parents[0]]));

    const edges = el("g", { class: "edges" }, svg);
    for (const [parent, child] of dag.edges) {
      if (!pos.has(parent) || !pos.has(child)) continue;
      const [x1, y1] = xy(parent), [x2, y2] = xy(child);
      const chainEdge = onChain.has(parent) && onChain.has(child) &&
        firstParent.get(child) === parent;
      const mid = (x1 + x2) / 2;
      el("path", {
        d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
        class: "edge" + (chainEdge ? " on-chain" : ""),
        "data-parent": parent, "data-child": child,
      }, edges);
    }

    const root = el("g", { class: "root", "data-target": target.cid }, svg);
    const [rx, ry] = xy(target.cid);
    el("rect", { x: rx - R, y: ry - R, width: 2 * R, height: 2 * R, rx: 2 }, root);
    el("title", {}, root).textContent = `target ${target.name}\n${target.cid}`;
    const rootLabel = el("text", { x: rx, y: ry + R + 14, "text-anchor": "middle" }, root);
    rootLabel.textContent = target.name;

    const layer = el("g", { class: "nodes" }, svg);
    for (const n of dag.nodes) {
      const [x, y] = xy(n.cid);
      const classes = ["node", "status-" + n.status];
      if (n.on_chain) classes.push("on-chain");
      if (n.cid === state.selected) classes.push("selected");
      if (state.renders > 0 && !state.known.has(n.cid)) classes.push("fresh");
      const g = el("g", {
        class: classes.join(" "), "data-cid": n.cid, "data-status": n.status,
        tabindex: "0", role: "button", "aria-label": `${n.status} commit ${n.message}`,
      }, layer);
      if (n.on_chain) el("circle", { cx: x, cy: y, r: R + 4, class: "halo" }, g);
      el("circle", { cx: x, cy: y, r: R, class: "dot status-" + n.status }, g);
      if (n.status === "rejected") {
        el("path", { d: `M${x - 4},${y - 4} L${x + 4},${y + 4} M${x + 4},${y - 4} L${x - 4},${y + 4}`,
                     class: "cross" }, g);
      }
      const label = el("text", { x, y: y + R + 14, "text-anchor": "middle" }, g);
      label.textContent = n.message.length > 18 ? n.message.slice(0, 17) + "…" : n.message;
      el("title", {}, g).textContent =
        `${n.message}\n${n.status}${n.on_chain ? ", on the canonical chain" : ""}\n` +
        `verified ratio ${ratio(n.ratio_ppm)} (claimed ${ratio(n.claim_ratio_ppm)})\n${n.cid}`;
      g.addEventListener("click", () => showCommit(n.cid, true));
      g.addEventListener("keydown", (e) => { if (e.key === "Enter") showCommit(n.cid, true); });
    }
    state.known = new Set(dag.nodes.map((n) => n.cid));
    const scroll = $("dag-scroll");
    if (scroll.scrollLeft + scroll.clientWidth >= scroll.scrollWidth - COL * 2) {
      scroll.scrollLeft = scroll.scrollWidth;  // follow the newest commits
    }
  }

  // -- the selected commit ---------------------------------------------------------------------
  async function showCommit(cid, userAction) {
    state.selected = cid;
    for (const g of document.querySelectorAll("#dag .node")) {
      g.classList.toggle("selected", g.dataset.cid === cid);
    }
    const box = $("commit-info");
    let commit, atts;
    try {
      [commit, atts] = await Promise.all([getJSON(`/v1/commits/${cid}`),
                                          getJSON(`/v1/commits/${cid}/attestations`)]);
    } catch (err) {
      box.textContent = err.message;
      return;
    }
    if (state.selected !== cid) return;  // another click came first
    box.textContent = "";
    box.dataset.cid = cid;
    document.querySelector("#details .hint").hidden = true;
    box.appendChild(html("p", {}, [
      html("span", { className: "badge " + commit.status, text: commit.status }),
      document.createTextNode(" " + commit.message),
    ]));
    const s = commit.stake;
    const total = Math.max(1, s.total_active);
    const bar = html("div", { className: "stakebar", title:
      `improved ${s.improved} · against ${s.against} · neutral ${s.neutral} of ${s.total_active}` });
    for (const [cls, v] of [["for", s.improved], ["against", s.against], ["neutral", s.neutral]]) {
      bar.appendChild(html("span", { className: cls, style: `width:${(100 * v) / total}%` }));
    }
    box.appendChild(bar);
    const facts = [
      ["cid", commit.cid], ["parents", commit.parents.map(short).join(", ")],
      ["author", shortKey(commit.author)], ["time", when(commit.time_ms)],
      ["claimed ratio", `${ratio(commit.claim.ratio_ppm)} [${ratio(commit.claim.lo_ppm)}, ` +
                        `${ratio(commit.claim.hi_ppm)}] over ${commit.claim.pairs} pairs`],
      ["verified ratio", ratio(commit.verified_ratio_ppm)],
      ["stake", `${s.improved} for · ${s.against} against · ${s.neutral} neutral ` +
                `(${s.verifiers} verifiers, ${s.total_active} active)`],
      ["on chain", commit.on_chain ? "yes" : "no"],
    ];
    const dl = html("dl");
    for (const [k, v] of facts) dl.append(html("dt", { text: k }), html("dd", { text: v }));
    box.appendChild(dl);

    box.appendChild(html("h2", { text: `Attestations (${atts.length})` }));
    const table = html("table", { className: "attestations" });
    table.appendChild(html("thead", {}, [html("tr", {}, ["verifier", "seq", "result", "ratio",
      "interval", "pairs"].map((h) => html("th", { text: h })))]));
    const body = html("tbody");
    for (const a of atts) {
      const v = a.verdict || {};
      body.appendChild(html("tr", { "data-attestation": a.cid }, [
        html("td", { className: "cid", text: shortKey(a.verifier), title: a.verifier }),
        html("td", { className: "num", text: String(a.seq) }),
        html("td", { className: "result-" + v.result, text: v.result || "vote" }),
        html("td", { className: "num", text: v.ratio_ppm ? ratio(v.ratio_ppm) : "—" }),
        html("td", { className: "num", text: v.ratio_ppm ? `${ratio(v.lo_ppm)}–${ratio(v.hi_ppm)}` : "—" }),
        html("td", { className: "num", text: v.pairs ? String(v.pairs) : "—" }),
      ]));
    }
    table.appendChild(body);
    box.appendChild(table);

    if (userAction || $("commit-patch").dataset.cid !== cid) drawPatchButton(cid);
    if (userAction) $("details").scrollTop = 0;
  }

  function drawPatchButton(cid) {
    const box = $("commit-patch");
    box.textContent = "";
    box.dataset.cid = cid;
    const button = html("button", { type: "button", text: "show patch" });
    const pre = html("pre", { className: "patch", hidden: "" });
    button.addEventListener("click", async () => {
      const response = await fetch(`/v1/commits/${cid}/patch`);
      const text = response.ok ? await response.text() : (await response.json()).error;
      pre.textContent = "";
      for (const line of text.split("\n")) {
        const cls = line.startsWith("+") && !line.startsWith("+++") ? "add"
          : line.startsWith("-") && !line.startsWith("---") ? "del" : "";
        pre.appendChild(html("span", { className: cls, text: line + "\n" }));
      }
      pre.hidden = false;
      button.hidden = true;
    });
    box.append(html("p", {}, [button]), pre);
  }

  // -- the staircase ---------------------------------------------------------------------------
  function drawStaircase(target, chain) {
    const svg = $("staircase");
    svg.textContent = "";
    const width = svg.clientWidth || 640, height = svg.clientHeight || 220;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const m = { left: 48, right: 16, top: 12, bottom: 26 };
    const t0 = target.genesis_time_ms;
    const points = [{ t: t0, s: 1, final: true, cid: target.cid, message: "baseline" }];
    for (const step of chain.steps) {
      points.push({ t: Math.max(step.time_ms, points[points.length - 1].t), s: step.speedup,
                    final: step.final, cid: step.cid, message: step.message });
    }
    // The time axis runs from genesis to the newest commit known (not the wall clock: a
    // target's genesis may lie long ago), with a little room after the last step.
    let tLast = points[points.length - 1].t;
    for (const n of state.dag.nodes) tLast = Math.max(tLast, n.time_ms);
    const tEnd = tLast + Math.max(1000, (tLast - t0) * 0.05);
    const tMin = t0, tMax = tEnd;
    const spanDays = (tMax - tMin) > 36 * 3600e3;
    const sMax = Math.max(1.05, ...points.map((p) => p.s)) * 1.05;
    const sMin = Math.min(1, ...points.map((p) => p.s));
    const x = (t) => m.left + ((t - tMin) / (tMax - tMin)) * (width - m.left - m.right);
    const y = (s) => height - m.bottom - ((s - sMin) / (sMax - sMin)) * (height - m.top - m.bottom);

    const axis = el("g", { class: "axis" }, svg);
    el("line", { x1: m.left, y1: height - m.bottom, x2: width - m.right, y2: height - m.bottom }, axis);
    el("line", { x1: m.left, y1: m.top, x2: m.left, y2: height - m.bottom }, axis);
    const ticks = 4;
    for (let i = 0; i <= ticks; i++) {
      const s = sMin + ((sMax - sMin) * i) / ticks;
      el("line", { x1: m.left - 3, y1: y(s), x2: m.left, y2: y(s) }, axis);
      el("text", { x: m.left - 6, y: y(s) + 3, "text-anchor": "end" }, axis).textContent =
        s.toFixed(2) + "×";
      const t = tMin + ((tMax - tMin) * i) / ticks;
      el("text", { x: x(t), y: height - 8, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" },
         axis).textContent = new Date(t).toISOString().slice(spanDays ? 5 : 11, spanDays ? 16 : 19).replace("T", " ");
    }

    let d = `M${x(points[0].t)},${y(points[0].s)}`;
    for (let i = 1; i < points.length; i++) {
      d += ` H${x(points[i].t)} V${y(points[i].s)}`;
    }
    d += ` H${x(tEnd)}`;
    el("path", { d: d + ` V${y(sMin)} H${x(points[0].t)} Z`, class: "stair-area" }, svg);
    el("path", { d, class: "stair", "data-steps": String(points.length - 1) }, svg);
    for (const p of points.slice(1)) {
      const dot = el("circle", { cx: x(p.t), cy: y(p.s), r: 4,
                                 class: "step-dot" + (p.final ? "" : " tentative"),
                                 "data-cid": p.cid }, svg);
      el("title", {}, dot).textContent = `${p.message}: ${speedup(p.s)}${p.final ? " (final)" : ""}`;
      dot.addEventListener("click", () => showCommit(p.cid, true));
    }
  }

  // -- tables ----------------------------------------------------------------------------------
  function drawRejected(rejected) {
    const body = $("rejected-table").tBodies[0];
    body.textContent = "";
    for (const r of rejected) {
      const reasons = Object.entries(r.reasons).map(([k, v]) => `${k} ×${v}`).join(", ");
      const row = html("tr", { "data-cid": r.cid }, [
        html("td", { className: "cid", text: short(r.cid) }), html("td", { text: r.message }),
        html("td", { className: "num", text: String(r.stake_against) }),
        html("td", { text: reasons }),
      ]);
      row.addEventListener("click", () => showCommit(r.cid, true));
      body.appendChild(row);
    }
    if (!rejected.length) body.appendChild(html("tr", {}, [html("td", { colspan: "4", className: "empty", text: "none" })]));
  }

  function drawSlashes(stakes) {
    const body = $("slash-table").tBodies[0];
    body.textContent = "";
    for (const s of stakes.slashes) {
      body.appendChild(html("tr", {}, [
        html("td", { className: "cid", text: shortKey(s.offender), title: s.offender }),
        html("td", { text: s.reason }), html("td", { className: "num", text: String(s.amount) }),
        html("td", { className: "num", text: String(s.epoch) }),
      ]));
    }
    if (!stakes.slashes.length) body.appendChild(html("tr", {}, [html("td", { colspan: "4", className: "empty", text: "none" })]));
  }

  // -- live updates ----------------------------------------------------------------------------
  function connect() {
    const live = $("live");
    const source = new EventSource("/v1/events");
    source.onopen = () => { live.textContent = "live"; live.className = "live on"; scheduleRefresh(); };
    source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
    const onEvent = (e) => {
      let data = {};
      try { data = JSON.parse(e.data); } catch (err) { return; }
      if (!state.target || !data.target || data.target === state.target.cid) scheduleRefresh();
    };
    for (const kind of ["commit", "attestation", "head", "final", "evidence", "challenge", "slashing"]) {
      source.addEventListener(kind, onEvent);
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("target-select").addEventListener("change", (e) => {
      state.target = state.targets.find((t) => t.cid === e.target.value) || null;
      state.selected = null;
      state.renders = 0;
      $("commit-info").textContent = "";
      $("commit-patch").textContent = "";
      refresh();
    });
    window.addEventListener("resize", () => { if (state.target && state.chain) drawStaircase(state.target, state.chain); });
    await refresh();
    connect();
  });
})();

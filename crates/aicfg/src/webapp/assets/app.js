// aicfg webapp: form -> POST /api/default -> summary, SVG Pareto chart, top-N tables.
// Plain browser JS, no build step; everything is drawn here.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const SVGNS = "http://www.w3.org/2000/svg";
const COLORS = { agg: "#1f77b4", disagg: "#d62728" };
const SET_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"];

let OPTIONS = null;
let lastInput = null;
let inflight = null;

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}
function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
const f2 = (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(2));
const modeName = (m) => (m === "agg" ? "agg" : m === "disagg" ? "disagg" : m);

function fillSelect(sel, values, value, blank) {
  sel.replaceChildren();
  if (blank) sel.append(el("option", { value: "", text: blank }));
  for (const v of values) sel.append(el("option", { value: v, text: v }));
  if (value !== undefined && value !== null) sel.value = value;
}

// ---------------------------------------------------------------- the form

async function loadOptions() {
  const r = await fetch("/api/options");
  OPTIONS = await r.json();
  const d = OPTIONS.defaults;
  fillSelect($("#f-model"), OPTIONS.models, d.model);
  fillSelect($("#f-system"), OPTIONS.systems, d.system);
  fillSelect($("#f-decode_system"), OPTIONS.systems, "", "same as system");
  fillSelect($("#f-backend"), OPTIONS.backends, d.backend);
  fillSelect($("#f-serving_mode"), OPTIONS.serving_modes, d.serving_mode);
  fillSelect($("#f-database_mode"), OPTIONS.database_modes, d.database_mode);
  for (const s of $$("select[data-quant]")) fillSelect(s, OPTIONS.quant[s.dataset.quant], "", "checkpoint default");
  const form = $("#search-form");
  for (const k of ["total_gpus", "isl", "osl", "ttft", "tpot", "prefix", "nextn", "top_n"]) {
    form.elements[k].value = d[k] ?? "";
  }
  form.elements.strict_sla.checked = !!d.strict_sla;
  form.elements.enable_wide_ep.checked = !!d.enable_wide_ep;
}

function intList(text) {
  return text.split(/[\s,]+/).filter((s) => s !== "").map(Number);
}

// The JSON body of /api/default; only fields the user set beyond the server defaults' shape.
function formInput() {
  const f = $("#search-form").elements;
  const num = (k) => (f[k].value.trim() === "" ? undefined : Number(f[k].value));
  const str = (k) => (f[k].value.trim() === "" ? undefined : f[k].value.trim());
  const body = {
    model: f.model.value,
    system: f.system.value,
    backend: f.backend.value,
    total_gpus: num("total_gpus"),
    isl: num("isl"),
    osl: num("osl"),
    ttft: num("ttft"),
    tpot: num("tpot"),
    prefix: num("prefix"),
    nextn: num("nextn"),
    top_n: num("top_n"),
    serving_mode: f.serving_mode.value,
    database_mode: f.database_mode.value,
    decode_system: str("decode_system"),
    model_config: str("model_config"),
    free_gpu_memory_fraction: num("free_gpu_memory_fraction"),
    gpu_cost_per_hour: num("gpu_cost_per_hour"),
    rank_by: f.rank_by.value,
    sla_percentile: f.sla_percentile.value,
    strict_sla: f.strict_sla.checked || undefined,
    enable_wide_ep: f.enable_wide_ep.checked || undefined,
  };
  for (const s of $$("select[data-quant]")) body[s.name] = str(s.name);
  for (const row of $$("tr[data-role]")) {
    const lists = {};
    for (const i of $$("input[data-list]", row)) {
      const v = intList(i.value);
      if (v.length) lists[i.dataset.list] = v;
    }
    if (Object.keys(lists).length) body[row.dataset.role] = lists;
  }
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  return body;
}

function clearErrors() {
  for (const e of $$(".err")) e.textContent = "";
  for (const e of $$(".invalid")) e.classList.remove("invalid");
}

function showError(err) {
  const slot = err.field ? $(`.err[data-for="${err.field}"]`) : null;
  if (slot) {
    slot.textContent = err.error;
    const input = $(`[name="${err.field}"]`) || $(`tr[data-role="${err.field}"]`);
    if (input) {
      input.classList.add("invalid");
      const adv = input.closest("details");
      if (adv) adv.open = true;
    }
  } else {
    $("#form-error").textContent = err.error;
  }
}

async function postJson(url, body, signal) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}`, field: null }));
  return { ok: r.ok, status: r.status, data };
}

async function runSearch() {
  clearErrors();
  const input = formInput();
  if (inflight) inflight.abort();
  const ctl = new AbortController();
  inflight = ctl;
  const status = $("#status");
  status.textContent = "searching…";
  const t0 = performance.now();
  try {
    const r = await postJson("/api/default", input, ctl.signal);
    if (ctl !== inflight) return;
    if (!r.ok) {
      status.textContent = "";
      showError(r.data);
      return;
    }
    lastInput = input;
    const evaluated = r.data.modes.reduce((a, m) => a + m.evaluated, 0);
    status.textContent = `searched ${evaluated} deployments in ${Math.round(performance.now() - t0)} ms`;
    renderResult(r.data, input);
  } catch (e) {
    if (e.name !== "AbortError") {
      status.textContent = "";
      $("#form-error").textContent = `request failed: ${e.message}`;
    }
  } finally {
    if (ctl === inflight) inflight = null;
  }
}

// ---------------------------------------------------------------- results

const replicas = (n) => (n === 1 ? "1 replica" : `${n} replicas`);

function layoutText(c) {
  if (c.agg) return `${replicas(c.replicas)} × 1 worker ${c.agg.parallel_label} (bs ${c.agg.batch_size})`;
  if (c.prefill && c.decode)
    return `${replicas(c.replicas)} × (${c.prefill.workers}P ${c.prefill.parallel_label} bs ${c.prefill.batch_size} + ${c.decode.workers}D ${c.decode.parallel_label} bs ${c.decode.batch_size})`;
  return "";
}

function renderBest(r) {
  const box = $("#best");
  box.replaceChildren();
  const b = r.best;
  if (!b) {
    box.append(
      el("h2", { text: "No configuration meets the SLA" }),
      el("p", { text: `TTFT ≤ ${r.ttft_ms} ms, TPOT ≤ ${r.tpot_ms} ms. The tables show the closest points; relax the targets, add GPUs or try another quantization.` })
    );
    box.dataset.mode = "";
    return;
  }
  const recommend = r.target !== null && r.target !== undefined;
  let verdict = "";
  if (r.comparison) verdict = `${modeName(r.comparison.winner)} is ${r.comparison.ratio.toFixed(2)}x better than ${modeName(r.comparison.loser)}`;
  box.dataset.mode = b.mode;
  box.dataset.backend = b.backend;
  box.append(
    el("h2", {}, "Best: ", el("span", { id: "best-mode", class: `mode ${b.mode}`, text: modeName(b.mode) }),
      " ", el("span", { id: "best-tpg", text: `${f2(b.tokens_per_s_per_gpu)} tokens/s/gpu` })),
    el("p", { id: "best-verdict", class: "verdict", text: verdict }),
    el("dl", {},
      el("dt", { text: "Deployment" }), el("dd", { id: "best-layout", text: layoutText(b) }),
      el("dt", { text: "Backend" }), el("dd", { id: "best-backend", text: b.backend }),
      el("dt", { text: "GPUs" }), el("dd", { id: "best-gpus", text: `${b.total_gpus_used} of ${b.total_gpus}` }),
      el("dt", { text: "User throughput" }), el("dd", { id: "best-tpu", text: `${f2(b.tokens_per_s_per_user)} tokens/s/user` }),
      el("dt", { text: "TTFT / TPOT" }), el("dd", { id: "best-latency", text: `${f2(b.ttft_ms)} ms / ${f2(b.tpot_ms)} ms` }),
      el("dt", { text: "Request rate" }), el("dd", { text: `${Number(b.request_rate).toFixed(3)} req/s at concurrency ${b.concurrency}` }),
      b.cost ? el("dt", { text: "Cost" }) : null,
      b.cost ? el("dd", { id: "best-cost", text: `$${b.cost.usd_per_m_output_tokens.toFixed(3)} per million output tokens ($${b.cost.usd_per_m_input_tokens.toFixed(3)} per million input tokens); $${b.cost.usd_per_hour.toFixed(2)} per hour` }) : null,
      recommend ? el("dt", { text: "Target load" }) : null,
      recommend ? el("dd", { text: JSON.stringify(r.target) }) : null
    )
  );
  for (const m of r.modes) {
    const c = m.top[0];
    box.append(el("p", { class: "mode-line" },
      el("span", { class: `mode ${m.mode}`, text: modeName(m.mode) }),
      m.sla_met && c
        ? ` best ${f2(c.tokens_per_s_per_gpu)} tokens/s/gpu, ${f2(c.tokens_per_s_per_user)} tokens/s/user (TTFT ${f2(c.ttft_ms)} ms, TPOT ${f2(c.tpot_ms)} ms)`
        : " no configuration meets the SLA"));
  }
}

function tooltipText(c) {
  const lines = [
    `${modeName(c.mode)} · ${c.backend}`,
    layoutText(c),
    `${f2(c.tokens_per_s_per_gpu)} tokens/s/gpu · ${f2(c.tokens_per_s_per_user)} tokens/s/user`,
    `TTFT ${f2(c.ttft_ms)} ms · TPOT ${f2(c.tpot_ms)} ms`,
    `GPUs ${c.total_gpus_used} · concurrency ${c.concurrency}`,
    c.meets_sla ? "meets the SLA" : "misses the TPOT target",
  ];
  return lines.join("\n");
}

function niceTicks(lo, hi, n = 5) {
  const span = hi - lo || 1;
  const step0 = span / n;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) ticks.push(+t.toFixed(10));
  return ticks;
}

// series: [{label, color, points: [candidate]}]; y is tokens/s/gpu (or per replica GPU).
function drawChart(host, series, best, yKey) {
  host.replaceChildren();
  const W = 760, H = 380, L = 64, R = 16, T = 16, B = 48;
  const all = series.flatMap((s) => s.points);
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  host.append(s);
  if (!all.length) {
    const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" });
    t.textContent = "no point meets the TTFT target; nothing to draw";
    s.append(t);
    return s;
  }
  const xs = all.map((c) => c.tokens_per_s_per_user), ys = all.map((c) => c[yKey]);
  const x1 = Math.max(...xs) * 1.08, y1 = Math.max(...ys) * 1.1;
  const px = (x) => L + (x / x1) * (W - L - R);
  const py = (y) => H - B - (y / y1) * (H - T - B);
  for (const t of niceTicks(0, x1)) {
    s.append(svg("line", { x1: px(t), x2: px(t), y1: T, y2: H - B, class: "grid" }));
    const lab = svg("text", { x: px(t), y: H - B + 16, "text-anchor": "middle", class: "tick" });
    lab.textContent = t;
    s.append(lab);
  }
  for (const t of niceTicks(0, y1)) {
    s.append(svg("line", { x1: L, x2: W - R, y1: py(t), y2: py(t), class: "grid" }));
    const lab = svg("text", { x: L - 6, y: py(t) + 4, "text-anchor": "end", class: "tick" });
    lab.textContent = t;
    s.append(lab);
  }
  s.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  s.append(svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));
  const xl = svg("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle", class: "label" });
  xl.textContent = "tokens/s/user";
  const yl = svg("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle", class: "label", transform: `rotate(-90 14 ${(T + H - B) / 2})` });
  yl.textContent = yKey === "tokens_per_s_per_gpu" ? "tokens/s/gpu" : "tokens/s/gpu (per replica)";
  s.append(xl, yl);
  const tip = $("#tooltip", host.parentElement) || host.parentElement.querySelector(".tooltip");
  series.forEach((ser, si) => {
    const pts = [...ser.points].sort((a, b) => a.tokens_per_s_per_user - b.tokens_per_s_per_user);
    if (pts.length > 1) {
      s.append(svg("polyline", {
        points: pts.map((c) => `${px(c.tokens_per_s_per_user)},${py(c[yKey])}`).join(" "),
        fill: "none", stroke: ser.color, "stroke-width": 2, class: "frontier",
      }));
    }
    for (const c of pts) {
      // Hollow dots miss the TPOT target (the frontier only requires TTFT).
      const dot = svg("circle", {
        cx: px(c.tokens_per_s_per_user), cy: py(c[yKey]), r: 5,
        fill: c.meets_sla ? ser.color : "#fff", stroke: c.meets_sla ? "#fff" : ser.color,
        class: "point", "data-series": ser.label,
      });
      const show = (ev) => {
        if (!tip) return;
        tip.textContent = `${ser.label}\n${tooltipText(c)}`;
        tip.hidden = false;
        const box = host.getBoundingClientRect();
        tip.style.left = `${ev.clientX - box.left + 14}px`;
        tip.style.top = `${ev.clientY - box.top + 14}px`;
      };
      dot.addEventListener("mouseenter", show);
      dot.addEventListener("mousemove", show);
      dot.addEventListener("mouseleave", () => { if (tip) tip.hidden = true; });
      s.append(dot);
    }
    // legend
    const ly = T + 8 + si * 18;
    s.append(svg("rect", { x: W - R - 150, y: ly - 8, width: 12, height: 12, fill: ser.color }));
    const lt = svg("text", { x: W - R - 132, y: ly + 2, class: "legend" });
    lt.textContent = ser.label;
    s.append(lt);
  });
  const note = svg("text", { x: W - R - 150, y: T + 8 + series.length * 18 + 2, class: "legend" });
  note.textContent = "○ misses TPOT target";
  s.append(note);
  if (best) {
    const bx = px(best.tokens_per_s_per_user), by = py(best[yKey]);
    const ring = svg("circle", { cx: bx, cy: by, r: 11, class: "best-mark", id: "best-point",
      "data-tpg": best.tokens_per_s_per_gpu, "data-tpu": best.tokens_per_s_per_user });
    const lab = svg("text", { x: bx + 14, y: by - 12, class: "best-label" });
    lab.textContent = "★ best";
    s.append(ring, lab);
  }
  return s;
}

function renderTables(r, input) {
  const host = $("#tables");
  host.replaceChildren();
  const multi = r.backends.length > 1;
  for (const m of [...r.modes].reverse()) {
    const card = el("section", { class: "card" });
    let sorted = !m.sla_met ? "closest to the SLA; none meets it" : r.target ? "sorted by GPUs needed" : "sorted by tokens/s/gpu";
    if (r.sla_percentile) sorted += `; simulated, at ${r.sla_percentile}`;
    card.append(el("h2", {}, el("span", { class: `mode ${m.mode}`, text: modeName(m.mode) }), ` top configurations `, el("small", { text: `(${sorted}; ${m.evaluated} evaluated)` })));
    if (!m.top.length) {
      card.append(el("p", { text: `no ${m.mode} deployment fits in GPU memory with these lists` }));
      host.append(card);
      continue;
    }
    const head = ["#"];
    if (multi) head.push("backend");
    const priced = m.top.some((c) => c.cost);
    if (priced) head.push("$/M output tokens");
    head.push("tokens/s/gpu", "tokens/s/user", "TTFT", "TPOT", "concurrency", "GPUs used", "replicas");
    if (m.mode === "agg") head.push("parallel", "bs");
    else head.push("(p) workers", "(p) parallel", "(p) bs", "(d) workers", "(d) parallel", "(d) bs");
    head.push("");
    const table = el("table", { class: "top", "data-mode": m.mode });
    table.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))));
    const tb = el("tbody");
    m.top.forEach((c, i) => {
      const cells = [String(i + 1)];
      if (multi) cells.push(c.backend);
      if (priced) cells.push(c.cost ? c.cost.usd_per_m_output_tokens.toFixed(3) : "-");
      cells.push(f2(c.tokens_per_s_per_gpu), f2(c.tokens_per_s_per_user), f2(c.ttft_ms), f2(c.tpot_ms), String(c.concurrency), `${c.total_gpus_used}/${c.total_gpus}`, String(c.replicas));
      if (c.agg) cells.push(c.agg.parallel_label, String(c.agg.batch_size));
      else cells.push(String(c.prefill.workers), c.prefill.parallel_label, String(c.prefill.batch_size), String(c.decode.workers), c.decode.parallel_label, String(c.decode.batch_size));
      const tr = el("tr", {}, ...cells.map((t) => el("td", { text: t })));
      const detail = el("tr", { class: "detail", hidden: true }, el("td", { colspan: head.length }));
      const actions = el("td", { class: "row-actions" },
        el("button", { type: "button", class: "small", text: "details", onclick: () => toggleDetails(c, input, detail) }),
        el("button", {
          type: "button", class: "small zip", "data-mode": m.mode, "data-rank": i + 1,
          disabled: !OPTIONS?.save_dir_zip, title: "download this row's --save_dir files (engine configs, k8s manifest, scripts)",
          text: "zip", onclick: (ev) => downloadZip(input, m.mode, i + 1, ev.currentTarget),
        })
      );
      tr.append(actions);
      tb.append(tr, detail);
    });
    table.append(tb);
    card.append(el("div", { class: "scroll" }, table));
    host.append(card);
  }
  const notes = $("#notes");
  notes.replaceChildren(...r.notes.map((n) => el("p", { class: "note", text: `note: ${n}` })));
}

// The generator fields of the Advanced section (sent only with /api/save).
function generatorInput() {
  const f = $("#search-form").elements;
  const sets = f.generator_set.value.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const version = f.generated_config_version.value.trim();
  const dynamo = f.dynamo_version.value.trim();
  const out = {};
  if (sets.length) out.generator_set = sets;
  if (version) out.generated_config_version = version;
  if (dynamo) out.dynamo_version = dynamo;
  return out;
}

// POST /api/save and hand the zip to the browser as a download.
async function downloadZip(input, mode, rank, btn) {
  clearErrors();
  btn.disabled = true;
  const old = btn.textContent;
  btn.textContent = "…";
  try {
    const r = await fetch("/api/save", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...input, ...generatorInput(), mode, rank }),
    });
    if (!r.ok) {
      showError(await r.json().catch(() => ({ error: `HTTP ${r.status}`, field: null })));
      return;
    }
    const name = /filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "")?.[1] || `${mode}_top${rank}.zip`;
    const url = URL.createObjectURL(await r.blob());
    const a = el("a", { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    document.body.dataset.zip = name;
  } catch (e) {
    $("#form-error").textContent = `download failed: ${e.message}`;
  } finally {
    btn.disabled = false;
    btn.textContent = old;
  }
}

// One row's prediction from /api/estimate (the server built the request from the row).
async function toggleDetails(c, input, row) {
  if (!row.hidden) { row.hidden = true; return; }
  row.hidden = false;
  const cell = row.firstChild;
  cell.textContent = "estimating…";
  const r = await postJson("/api/estimate", c.estimate);
  if (!r.ok) { cell.textContent = `estimate failed: ${r.data.error}`; return; }
  const e = r.data;
  const mem = (e.workers || []).map((w) => `${w.role} ${w.parallel} bs ${w.batch_size}: ${Number(w.memory.total_gib).toFixed(1)} of ${Number(w.memory.capacity_gib).toFixed(1)} GiB (weights ${Number(w.memory.weights_gib).toFixed(1)}, KV ${Number(w.memory.kv_cache_gib).toFixed(1)})${w.memory.oom ? " OOM" : ""}`);
  cell.replaceChildren(el("div", { class: "estimate" },
    el("div", { text: `estimate: TTFT ${f2(e.ttft_ms)} ms · TPOT ${f2(e.tpot_ms)} ms · ${f2(e.tokens_per_s_per_gpu)} tokens/s/gpu · context pass ${f2(e.context_ms)} ms · decode step ${f2(e.decode_step_ms)} ms` }),
    ...mem.map((t) => el("div", { text: t }))
  ));
}

// Simulated latency percentiles of each mode's top rows (the JSON's `percentiles`): the mean is
// the closed form's, each percentile that mean times the simulator's percentile/mean ratio.
function renderPercentiles(r) {
  const box = $("#percentiles");
  const rows = r.percentiles || [];
  box.hidden = rows.length === 0;
  if (!rows.length) { box.replaceChildren(); return; }
  const n = Math.max(...r.modes.map((m) => rows.filter((p) => p.mode === m.mode).length));
  const multi = r.backends.length > 1;
  const head = ["mode", "rank"];
  if (multi) head.push("backend");
  head.push("layout", "concurrency", "TTFT mean", "TTFT p50", "TTFT p90", "TTFT p99", "TPOT mean", "TPOT p90", "TPOT p99", "tokens/s/gpu");
  const table = el("table", { class: "top", id: "percentile-table" });
  table.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))));
  const tb = el("tbody");
  for (const p of rows) {
    const cells = [modeName(p.mode), p.rank === null ? "-" : String(p.rank)];
    if (multi) cells.push(p.backend);
    cells.push(p.layout, String(p.concurrency), f2(p.ttft_ms.mean), f2(p.ttft_ms.p50), f2(p.ttft_ms.p90), f2(p.ttft_ms.p99),
      f2(p.tpot_ms.mean), f2(p.tpot_ms.p90), f2(p.tpot_ms.p99), f2(p.tokens_per_s_per_gpu));
    tb.append(el("tr", { "data-mode": p.mode, class: p.meets_sla ? "" : "misses" }, ...cells.map((t) => el("td", { text: t }))));
  }
  table.append(tb);
  const at = r.sla_percentile ? `; SLA at ${r.sla_percentile}: rank '-' misses it` : "";
  box.replaceChildren(
    el("h2", {}, "Predicted latency percentiles ", el("small", { text: `(simulated top ${n} per mode; ms${at})` })),
    el("div", { class: "scroll" }, table),
    el("p", { class: "verdict", text: "The mean is the closed form's; each percentile is that mean times the simulator's percentile/mean ratio (benchmark replay at the row's concurrency)." })
  );
}

function renderResult(r, input) {
  $("#results").hidden = false;
  renderBest(r);
  renderPercentiles(r);
  const yKey = r.target ? "replica_tokens_per_s_per_gpu" : "tokens_per_s_per_gpu";
  const series = [...r.modes].reverse().map((m) => ({ label: modeName(m.mode), color: COLORS[m.mode] || "#555", points: m.pareto }));
  drawChart($("#chart"), series, r.best, yKey);
  renderTables(r, input);
  document.body.dataset.state = "done";
}

// ---------------------------------------------------------------- compare tab

const sets = [];

function renderSets() {
  const host = $("#cmp-sets");
  host.replaceChildren();
  sets.forEach((s, i) => {
    const ta = el("textarea", { rows: 8, spellcheck: "false" });
    ta.value = JSON.stringify(s.input, null, 1);
    ta.addEventListener("change", () => {
      try { s.input = JSON.parse(ta.value); ta.classList.remove("invalid"); } catch (e) { ta.classList.add("invalid"); }
    });
    const name = el("input", { value: s.name });
    name.addEventListener("change", () => { s.name = name.value; });
    host.append(el("div", { class: "set card" },
      el("div", { class: "set-head" }, name,
        el("button", { type: "button", class: "small", text: "remove", onclick: () => { sets.splice(i, 1); renderSets(); } })),
      ta, el("small", { class: "err", id: `cmp-err-${i}` })));
  });
}

// Points no other point beats on both axes (merging the agg and disagg frontiers).
function upperFrontier(points) {
  const byX = [...points].sort((a, b) => b.tokens_per_s_per_user - a.tokens_per_s_per_user);
  let top = -Infinity;
  return byX.filter((c) => (c.tokens_per_s_per_gpu > top ? ((top = c.tokens_per_s_per_gpu), true) : false));
}

async function runCompare() {
  const status = $("#cmp-status");
  const results = [];
  for (let i = 0; i < sets.length; i++) {
    status.textContent = `running ${i + 1} of ${sets.length}…`;
    const r = await postJson("/api/default", sets[i].input);
    const err = $(`#cmp-err-${i}`);
    if (err) err.textContent = r.ok ? "" : `${r.data.field ? r.data.field + ": " : ""}${r.data.error}`;
    results.push(r.ok ? r.data : null);
  }
  status.textContent = "";
  const host = $("#cmp-results");
  host.replaceChildren();
  const rows = [
    ["best mode", (r) => (r.best ? modeName(r.best.mode) : "none meets the SLA")],
    ["tokens/s/gpu", (r) => f2(r.best?.tokens_per_s_per_gpu)],
    ["tokens/s/user", (r) => f2(r.best?.tokens_per_s_per_user)],
    ["TTFT (ms)", (r) => f2(r.best?.ttft_ms)],
    ["TPOT (ms)", (r) => f2(r.best?.tpot_ms)],
    ["deployment", (r) => (r.best ? layoutText(r.best) : "—")],
    ["backend", (r) => r.best?.backend ?? "—"],
    ["GPUs used", (r) => (r.best ? `${r.best.total_gpus_used} of ${r.best.total_gpus}` : "—")],
    ["agg vs disagg", (r) => (r.comparison ? `${r.comparison.winner} ${r.comparison.ratio.toFixed(2)}x better` : "—")],
  ];
  const table = el("table", { class: "top compare", id: "cmp-table" });
  table.append(el("thead", {}, el("tr", {}, el("th"), ...sets.map((s) => el("th", { text: s.name })))));
  const tb = el("tbody");
  for (const [label, f] of rows) tb.append(el("tr", {}, el("th", { text: label }), ...results.map((r) => el("td", { text: r ? f(r) : "error" }))));
  table.append(tb);
  host.append(el("section", { class: "card" }, el("div", { class: "scroll" }, table)));
  // One chart: each set's frontier over both modes.
  const series = [];
  results.forEach((r, i) => {
    if (!r) return;
    series.push({ label: sets[i].name, color: SET_COLORS[i % SET_COLORS.length], points: upperFrontier(r.modes.flatMap((m) => m.pareto)) });
  });
  const wrap = el("div", { class: "chart-wrap" }, el("div"), el("div", { class: "tooltip", hidden: true }));
  host.append(el("section", { class: "card" }, el("h2", { text: "Frontiers (best of agg and disagg per set)" }), wrap));
  drawChart(wrap.firstChild, series, null, "tokens_per_s_per_gpu");
}

// YAML mode: POST /api/exp, then one chart of every experiment's frontier and a table like
// `cli exp`'s comparison.
async function runYaml() {
  const status = $("#cmp-yaml-status"), err = $("#cmp-yaml-err"), ta = $("#cmp-yaml");
  err.textContent = "";
  ta.classList.remove("invalid");
  status.textContent = "running…";
  const t0 = performance.now();
  const r = await postJson("/api/exp", { yaml: ta.value });
  const host = $("#cmp-results");
  host.replaceChildren();
  if (!r.ok) {
    status.textContent = "";
    const where = r.data.line ? ` (line ${r.data.line})` : "";
    err.textContent = `${r.data.error}${where}`;
    ta.classList.add("invalid");
    return;
  }
  const exps = r.data.experiments;
  status.textContent = `${exps.length} experiments in ${Math.round(performance.now() - t0)} ms`;
  const head = ["experiment", "mode", "system", "GPUs", "best tokens/s/gpu", "tokens/s/user", "TTFT (ms)", "TPOT (ms)", "deployment", "ratio to best"];
  const table = el("table", { class: "top compare", id: "cmp-exp-table" });
  table.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))));
  const tb = el("tbody");
  for (const e of exps) {
    const x = e.experiment, b = e.result.best;
    const sys = x.decode_system_name && x.decode_system_name !== x.system_name ? `${x.system_name}/${x.decode_system_name}` : x.system_name;
    const cells = [e.name, x.serving_mode, sys, String(x.total_gpus),
      b ? f2(e.best_tokens_per_s_per_gpu) : "no SLA fit", f2(b?.tokens_per_s_per_user), f2(b?.ttft_ms), f2(b?.tpot_ms),
      b ? layoutText(b) : "—", e.ratio_to_best === null ? "—" : `${Number(e.ratio_to_best).toFixed(2)}x`];
    const tr = el("tr", { "data-name": e.name }, ...cells.map((t) => el("td", { text: t })));
    if (e.name === r.data.best_experiment) tr.classList.add("winner");
    tb.append(tr);
  }
  table.append(tb);
  const verdict = r.data.best_experiment
    ? `Best experiment: ${r.data.best_experiment}`
    : "No experiment meets its SLA.";
  host.append(el("section", { class: "card" }, el("h2", { text: "Comparison across experiments" }),
    el("p", { class: "verdict", id: "cmp-exp-best", text: verdict }), el("div", { class: "scroll" }, table)));
  const series = exps.map((e, i) => ({
    label: e.name, color: SET_COLORS[i % SET_COLORS.length],
    points: upperFrontier(e.result.modes.flatMap((m) => m.pareto)),
  }));
  const win = exps.find((e) => e.name === r.data.best_experiment);
  const wrap = el("div", { class: "chart-wrap" }, el("div"), el("div", { class: "tooltip", hidden: true }));
  host.append(el("section", { class: "card" }, el("h2", { text: "Pareto frontiers (every experiment)" }), wrap));
  drawChart(wrap.firstChild, series, win ? win.result.best : null, "tokens_per_s_per_gpu");
}

function showCompareKind(kind) {
  $("#cmp-sets-pane").hidden = kind !== "sets";
  $("#cmp-yaml-pane").hidden = kind !== "yaml";
  for (const r of $$('input[name="cmp-kind"]')) r.checked = r.value === kind;
  $("#cmp-results").replaceChildren();
}

// ---------------------------------------------------------------- wiring

function showTab(name) {
  for (const b of $$(".tab")) b.classList.toggle("active", b.dataset.tab === name);
  for (const p of $$(".tabpane")) p.hidden = p.id !== `tab-${name}`;
}

async function main() {
  for (const b of $$(".tab")) b.addEventListener("click", () => showTab(b.dataset.tab));
  const form = $("#search-form");
  form.addEventListener("submit", (e) => { e.preventDefault(); runSearch(); });
  let timer = null;
  form.addEventListener("input", () => {
    if (!$("#live").checked) return;
    clearTimeout(timer);
    timer = setTimeout(runSearch, 500);
  });
  $("#cmp-add").addEventListener("click", () => {
    sets.push({ name: `set ${sets.length + 1}`, input: formInput() });
    renderSets();
  });
  $("#cmp-run").addEventListener("click", runCompare);
  $("#cmp-yaml-run").addEventListener("click", runYaml);
  for (const r of $$('input[name="cmp-kind"]')) r.addEventListener("change", () => showCompareKind(r.value));
  try {
    await loadOptions();
    $("#cmp-yaml").value = OPTIONS.exp_example || "";
  } catch (e) {
    $("#form-error").textContent = `cannot load options: ${e.message}`;
    return;
  }
  document.body.dataset.state = "ready";
  // ?autorun=1 presses Search once the pickers are filled (used by the browser test);
  // with ?tab=compare it adds the form's inputs as a set and runs the comparison, and with
  // &kind=yaml it runs the prefilled experiment YAML instead.
  const q = new URLSearchParams(location.search);
  if (q.get("tab") === "compare") showTab("compare");
  if (q.get("autorun") === "1") {
    if (q.get("tab") === "compare" && q.get("kind") === "yaml") {
      showCompareKind("yaml");
      await runYaml();
      document.body.dataset.state = "done";
    } else if (q.get("tab") === "compare") {
      $("#cmp-add").click();
      await runCompare();
      document.body.dataset.state = "done";
    } else {
      $("#run").click();
    }
  }
}

main();

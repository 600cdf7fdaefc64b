/* ElectroDB explorer: a table of electrolyte summaries with filters, and per-system plots drawn as inline SVG.
 * No build step, no external libraries. The page state lives in the URL: ?salt=NaCl&molality_min=1&system=<id>.
 * When a load finishes, document.body.dataset.ready is set to "table" / "detail" (used by the headless tests). */
"use strict";

const PAGE_SIZE = 50;
const FILTER_KEYS = ["salt", "molality_min", "molality_max", "temperature_min", "temperature_max", "model_id",
  "model_trust"];
/* The model-trust verdict of committee audits stands beside the model and the sampling statuses of the values. */
const LEAD_COLUMNS = [
  { key: "salt", label: "salt" },
  { key: "molality", label: "m / mol kg⁻¹", num: true, digits: 3 },
  { key: "temperature", label: "T / K", num: true, digits: 5 },
  { key: "model_name", label: "model", model: true },
  { key: "model_trust", label: "model trust", trust: true },
];
const TRUST_FIELDS = ["model_trust", "model_trust_reason", "model_trust_criterion", "frac_flagged", "sigma_F_max_p95",
  "n_frames_audited", "committee_id", "committee_name", "refine_round"];
const TRUST_TEXT = { trusted: "trusted", extrapolating: "extrapolating", insufficient: "too few frames audited",
  unaudited: "not audited" };
const TAIL_COLUMNS = [
  { key: "n_runs", label: "runs", num: true, digits: 0 },
  { key: "total_ps", label: "t / ps", num: true, time: true },
];
/* Headline-property columns (value with its convergence status and the experiment beside it) come from the
 * property registry: GET /properties lists each property with its explorer label (null: not a default column). */
let COLUMNS = [...LEAD_COLUMNS, ...TAIL_COLUMNS];

function propertyColumns(info) {
  return Object.entries(info)
    .filter(([, p]) => p.label)
    .map(([key, p]) => ({ key, label: p.label, prop: true, digits: p.digits }));
}
const STATUS_TEXT = { unconverged: "not converged", insufficient: "insufficient data", input: "input" };
const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bc4c00", "#0a7ea4", "#6e7781"];
const SPECIES_COLORS = { cation: "#1f6feb", anion: "#d1242f", water: "#1a7f37" };
const SVG_NS = "http://www.w3.org/2000/svg";

const state = { filters: {}, sort: "salt,molality,temperature", skip: 0, system: null, total: 0 };
let propertyInfo = {};
let rdfData = null;

// ------------------------------------------------------------------------------------------ helpers

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function isNum(v) { return typeof v === "number" && Number.isFinite(v); }

function fmt(v, digits = 3) {
  if (!isNum(v)) return "–";
  if (digits === 0) return String(Math.round(v));
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(digits - 1);
  return String(Number(v.toPrecision(digits)));
}

/* Times in ps with sensible precision: 0.4, 12.5, 250, 1.2e+4 (never "0" for a short run). */
function fmtPs(v) {
  if (!isNum(v)) return "–";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a < 10) return String(Number(v.toPrecision(2)));
  if (a < 100) return String(Math.round(v * 10) / 10);
  if (a < 1e5) return String(Math.round(v));
  return v.toExponential(1);
}

function modelLabel(doc) {
  return doc.model_name || shortModel(doc.model_id);
}

/* A headline value as a DOM node: converged → the number (± error); not converged → struck out and greyed,
 * reason on hover; input (taken from a correlation or an input, not computed) → the number with an "input" tag,
 * neither struck out nor shown as a result; insufficient → "insufficient data", never a number (whatever a
 * document built before that contract holds). Status absent (legacy documents) → the plain number. */
function valueNode(doc, name, digits = 3, errDigits = 1) {
  const status = doc[`${name}_status`];
  const v = status === "insufficient" ? null : inputValue(doc, name);
  const e = status === "insufficient" ? null : doc[`${name}_err`];
  const reason = doc[`${name}_reason`] || "";
  const span = el("span", { class: `value status-${status || "unknown"}` });
  const number = isNum(v) ? `${fmt(v, digits)}${isNum(e) ? " ± " + fmt(e, errDigits) : ""}` : "–";
  if (!status || status === "converged") {
    span.textContent = number;
    if (status) span.title = doc[`${name}_criterion`] ? `converged (${doc[`${name}_criterion`]})` : "converged";
    return span;
  }
  const label = STATUS_TEXT[status] || status;
  const needs = doc[`${name}_needs_ps`];
  const more = status !== "input" && isNum(needs) ? `needs ≈ ${fmt(needs, 2)} ps more production; ` : "";
  span.title = `${label}${reason || more ? ": " + more + reason : ""}`;
  if (status === "input") {
    span.textContent = isNum(v) ? number : "";
    span.appendChild(el("span", { class: "input-tag", "aria-label": "input, not computed" }, "input"));
    return span;
  }
  if (isNum(v)) span.appendChild(el("s", {}, number));
  else span.textContent = label;
  span.appendChild(el("span", { class: "status-flag", "aria-label": label }, " ⚠"));
  return span;
}

/* The model-trust verdict as a DOM node, in the style of the status cells: trusted → plain; extrapolating (the
 * committee members disagree on too many frames: the model left its training data) → orange with ⚠ and the share
 * of flagged frames; too few frames audited, or no audit → greyed. The reason, frac_flagged, σ_F p95 and the
 * committee on hover. */
function trustNode(doc) {
  const status = doc.model_trust || "unaudited";
  const frac = doc.frac_flagged;
  const pct = isNum(frac) ? `${fmt(100 * frac, 3)} %` : null;
  const numbers = [];
  if (pct !== null) {
    const n = isNum(doc.n_frames_audited) ? ` of ${fmt(doc.n_frames_audited, 0)}` : "";
    numbers.push(`frac_flagged ${pct}${n} audited frames above the σ_F threshold`);
  }
  if (isNum(doc.sigma_F_max_p95)) numbers.push(`σ_F p95 ${fmt(doc.sigma_F_max_p95, 2)} eV/Å`);
  if (doc.committee_name || doc.committee_id) {
    const round = isNum(doc.refine_round) ? ` (refine round ${doc.refine_round})` : "";
    numbers.push(`committee ${doc.committee_name || doc.committee_id}${round}`);
  }
  const reason = doc.model_trust_reason || "";
  const span = el("span", { class: `value trust trust-${status}` });
  span.title = `${TRUST_TEXT[status] || status}${reason ? ": " + reason : ""}` +
    (numbers.length ? ` · ${numbers.join("; ")}` : "") +
    (status === "trusted" && doc.model_trust_criterion ? ` · criterion: ${doc.model_trust_criterion}` : "");
  if (status === "extrapolating") {
    span.textContent = pct !== null ? `extrapolating ${pct}` : "extrapolating";
    span.appendChild(el("span", { class: "status-flag", "aria-label": "extrapolating" }, " ⚠"));
  } else {
    span.textContent = status === "unaudited" ? "not audited" : status === "insufficient" ? "insufficient" : status;
  }
  return span;
}

/* The value of a property; an input density (NVT) is null in `density` and given in `density_input`. */
function inputValue(doc, name) {
  if (name === "density" && doc.density_status === "input" && !isNum(doc.density)) return doc.density_input;
  return doc[name];
}

/* Effective number of independent samples behind a property's error, with its equilibration cut on hover. */
function neffNode(doc, name) {
  const status = doc[`${name}_status`];
  const n = status === "insufficient" ? null : doc[`${name}_n_eff`];
  const t = doc[`${name}_t_equil_ps`];
  const needs = doc[`${name}_needs_ps`];
  const td = el("td", { class: "num neff muted" }, isNum(n) ? `n_eff ${fmt(n, 2)}` : "");
  if (isNum(n)) {
    td.title = "effective number of independent samples behind the error" +
      (isNum(t) ? `; equilibration cut ${fmtPs(t)} ps` : "");
  }
  if ((status === "unconverged" || status === "insufficient") && isNum(needs)) {
    // not a result yet: what it still needs (flows.segments: from how its failed criteria grow with the run)
    td.appendChild(el("span", { class: "needs", title: "more production this value needs to converge, " +
      "estimated from how its failed criteria grow with the run length" }, ` needs ≈ ${fmt(needs, 2)} ps`));
  }
  return td;
}

/* The experimental value of a property, or null. An input (fixed) density is never compared with experiment. */
function expValue(doc, name) {
  if (name === "density" && doc.density_source === "input") return null;
  const x = doc[`exp_${name}`];
  return isNum(x) ? x : null;
}

function shortModel(id) {
  if (!id) return "–";
  if (id.startsWith("sha256:")) return id.slice(0, 19) + "…";
  const name = id.replace(/^name:/, "").replace(/@.*$/, "");
  return name.length > 24 ? name.slice(0, 23) + "…" : name;
}

function prettyUnit(unit) {
  const sup = { "-": "⁻", "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵", "6": "⁶", "7": "⁷", "8": "⁸",
    "9": "⁹" };
  return (unit || "").replace(/^1e(-?\d+) /, (_, e) => `10${[...e].map((c) => sup[c]).join("")} `)
    .replace(/\^(-?\d+)/g, (_, e) => [...e].map((c) => sup[c]).join(""));
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") query.set(k, v);
  const url = query.toString() ? `${path}?${query}` : path;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = body.error || {};
    throw new Error(`${err.status || response.status}: ${err.message || response.statusText}`);
  }
  return body;
}

// ------------------------------------------------------------------------------------------ URL state

function readUrl() {
  const params = new URLSearchParams(location.search);
  state.filters = {};
  for (const key of FILTER_KEYS) if (params.get(key)) state.filters[key] = params.get(key);
  state.sort = params.get("sort") || state.sort;
  state.skip = Math.max(0, parseInt(params.get("skip") || "0", 10) || 0);
  state.system = params.get("system") || null;
}

function writeUrl() {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filters)) if (v) params.set(k, v);
  if (state.sort !== "salt,molality,temperature") params.set("sort", state.sort);
  if (state.skip) params.set("skip", state.skip);
  if (state.system) params.set("system", state.system);
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
  const exportParams = new URLSearchParams({ format: "csv" });
  for (const [k, v] of Object.entries(state.filters)) if (v) exportParams.set(k, v);
  $("#export-link").href = `/export?${exportParams}`;
}

function formToFilters() {
  const form = $("#filters");
  state.filters = {};
  for (const key of FILTER_KEYS) {
    const value = form.elements[key].value.trim();
    if (value) state.filters[key] = value;
  }
}

function filtersToForm() {
  const form = $("#filters");
  for (const key of FILTER_KEYS) {
    const input = form.elements[key];
    input.value = state.filters[key] || "";
    if (input.tagName === "INPUT") input.setAttribute("value", input.value);
  }
}

// ------------------------------------------------------------------------------------------ table

function renderHeader() {
  const row = $("#systems thead tr");
  row.replaceChildren();
  const [first] = state.sort.split(",");
  for (const col of COLUMNS) {
    const th = el("th", { "data-key": col.key }, col.label);
    if (first === col.key) th.className = "sorted-asc";
    if (first === "-" + col.key) th.className = "sorted-desc";
    th.title = propertyInfo[col.key] ? `${propertyInfo[col.key].description} (${propertyInfo[col.key].unit})` : col.key;
    th.addEventListener("click", () => {
      state.sort = first === col.key ? "-" + col.key : col.key;
      state.skip = 0;
      loadTable();
    });
    row.appendChild(th);
  }
}

function cell(doc, col) {
  if (col.model) return el("td", { title: doc.model_id || "", class: "model" }, modelLabel(doc));
  if (col.trust) {
    const td = el("td", { class: "trust" });
    td.appendChild(trustNode(doc));
    return td;
  }
  if (col.prop) {
    const td = el("td", { class: "num" });
    td.appendChild(valueNode(doc, col.key, col.digits ?? 3, 1));
    const x = expValue(doc, col.key);
    if (x !== null) {
      td.appendChild(el("span", { class: "exp", title: doc[`exp_${col.key}_source`] || "experiment" },
        ` (exp ${fmt(x, col.digits ?? 3)})`));
    }
    return td;
  }
  const v = doc[col.key];
  if (!col.num) return el("td", {}, v === null || v === undefined ? "–" : String(v));
  return el("td", { class: "num" }, col.time ? fmtPs(v) : fmt(v, col.digits ?? 3));
}

async function loadTable() {
  document.body.dataset.ready = "";
  writeUrl();
  renderHeader();
  const fields = ["salt", "molality", "temperature", "model_id", "model_name", "n_runs", "total_ps",
    "density_source", ...TRUST_FIELDS,
    ...COLUMNS.filter((c) => c.prop).flatMap((c) => [c.key, `${c.key}_err`, `${c.key}_status`, `${c.key}_reason`,
      `${c.key}_criterion`, `${c.key}_needs_ps`, `exp_${c.key}`, `exp_${c.key}_source`]),
    ...COLUMNS.filter((c) => c.num).map((c) => c.key)];
  try {
    const body = await api("/electrolytes", {
      ...state.filters, _sort_fields: state.sort, _skip: state.skip, _limit: PAGE_SIZE,
      _fields: [...new Set(fields)].join(","),
    });
    showError("");
    state.total = body.meta.total_doc;
    const tbody = $("#systems tbody");
    tbody.replaceChildren();
    for (const doc of body.data) {
      const tr = el("tr", { "data-id": doc.electrolyte_id });
      if (doc.electrolyte_id === state.system) tr.classList.add("selected");
      for (const col of COLUMNS) tr.appendChild(cell(doc, col));
      tr.addEventListener("click", () => openSystem(doc.electrolyte_id));
      tbody.appendChild(tr);
    }
    const last = Math.min(state.skip + body.data.length, state.total);
    $("#page-info").textContent = state.total ? `${state.skip + 1}–${last} of ${state.total}` : "no systems match";
    $("#table-info").textContent = `${state.total} system${state.total === 1 ? "" : "s"}; D in 10⁻⁹ m²/s. ` +
      "Struck-out values did not converge (hover for the reason); values tagged “input” were taken from a " +
      "correlation or an input, not computed. Model trust: whether a committee of models agreed on these runs " +
      "(⚠ extrapolating: the model left its training data; hover for the numbers). " +
      "Click a row for g(r), MSD and γ±; click a header to sort.";
    $("#prev").disabled = state.skip === 0;
    $("#next").disabled = last >= state.total;
  } catch (err) {
    showError(`could not load systems: ${err.message}`);
  }
  document.body.dataset.ready = "table";
}

// ------------------------------------------------------------------------------------------ SVG charts

function niceStep(span, n) {
  const raw = span / Math.max(n, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

function niceRange(lo, hi, n = 5) {
  if (!isNum(lo) || !isNum(hi)) return { lo: 0, hi: 1, ticks: [0, 0.5, 1] };
  if (hi - lo < 1e-12) { const pad = Math.abs(hi) * 0.1 || 1; lo -= pad; hi += pad; }
  const step = niceStep(hi - lo, n);
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let t = start; t <= end + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return { lo: start, hi: end, ticks };
}

/* series: [{x, y, err?, label, color, axis: "y" | "y2", dash?, markers?, line?}] */
function lineChart(container, { series, xlabel, ylabel, y2label = null, width = 300, height = 215, xmin = null,
  y2max = null }) {
  container.replaceChildren();
  const usable = series.filter((s) => s.x.some((v, i) => isNum(v) && isNum(s.y[i])));
  if (!usable.length) {
    container.appendChild(el("div", { class: "empty" }, "no data"));
    return null;
  }
  const hasY2 = usable.some((s) => s.axis === "y2");
  const m = { l: 44, r: hasY2 ? 40 : 10, t: 8, b: 32 };
  const W = width - m.l - m.r, H = height - m.t - m.b;
  const extent = (axis, key) => {
    const vals = [];
    for (const s of usable) {
      if ((s.axis || "y") !== axis && key !== "x") continue;
      s[key].forEach((v, i) => {
        if (!isNum(v) || !isNum(s.x[i]) || !isNum(s.y[i])) return;
        const e = key !== "x" && s.err && isNum(s.err[i]) ? s.err[i] : 0;
        vals.push(v - e, v + e);
      });
    }
    return vals.length ? [Math.min(...vals), Math.max(...vals)] : [0, 1];
  };
  // Markers at the very edge would be half clipped: pad the data range by 3 % when a series has markers.
  const pad = usable.some((s) => s.markers) ? 0.03 : 0;
  const padded = ([lo, hi]) => [lo - pad * (hi - lo), hi + pad * (hi - lo)];
  const [x0, x1] = padded(extent("x", "x"));
  const xr = niceRange(xmin ?? x0, x1, 5);
  const yr = niceRange(...padded(extent("y", "y")), 4);
  const y2ext = extent("y2", "y");
  const y2r = hasY2 ? niceRange(y2ext[0], y2max !== null ? Math.min(y2ext[1], y2max) : y2ext[1], 4) : null;
  const sx = (v) => m.l + ((v - xr.lo) / (xr.hi - xr.lo)) * W;
  const scale = (r) => (v) => m.t + H - ((v - r.lo) / (r.hi - r.lo)) * H;
  const sy = scale(yr), sy2 = y2r ? scale(y2r) : null;

  const svg = svgEl("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const grid = svgEl("g", { class: "grid" });
  const axes = svgEl("g", { class: "axis" });
  for (const t of xr.ticks) {
    grid.appendChild(svgEl("line", { x1: sx(t), x2: sx(t), y1: m.t, y2: m.t + H }));
    axes.appendChild(svgEl("text", { x: sx(t), y: m.t + H + 12, "text-anchor": "middle" }, fmt(t, 3)));
  }
  for (const t of yr.ticks) {
    grid.appendChild(svgEl("line", { x1: m.l, x2: m.l + W, y1: sy(t), y2: sy(t) }));
    axes.appendChild(svgEl("text", { x: m.l - 4, y: sy(t) + 3, "text-anchor": "end" }, fmt(t, 3)));
  }
  if (y2r) {
    for (const t of y2r.ticks) {
      axes.appendChild(svgEl("text", { x: m.l + W + 4, y: sy2(t) + 3, "text-anchor": "start" }, fmt(t, 3)));
    }
  }
  axes.appendChild(svgEl("path", { d: `M${m.l},${m.t}V${m.t + H}H${m.l + W}${y2r ? `V${m.t}` : ""}`, fill: "none" }));
  axes.appendChild(svgEl("text", { x: m.l + W / 2, y: height - 4, "text-anchor": "middle" }, xlabel));
  axes.appendChild(svgEl("text", { x: 10, y: m.t + H / 2, transform: `rotate(-90 10 ${m.t + H / 2})`,
    "text-anchor": "middle" }, ylabel));
  if (y2r && y2label) {
    const x = width - 6;
    axes.appendChild(svgEl("text", { x, y: m.t + H / 2, transform: `rotate(90 ${x} ${m.t + H / 2})`,
      "text-anchor": "middle" }, y2label));
  }
  svg.append(grid, axes);
  const clipId = `clip-${Math.random().toString(36).slice(2)}`;
  const defs = svgEl("defs");
  const clip = svgEl("clipPath", { id: clipId });
  clip.appendChild(svgEl("rect", { x: m.l, y: m.t, width: W, height: H }));
  defs.appendChild(clip);
  svg.appendChild(defs);
  const plot = svgEl("g", { "clip-path": `url(#${clipId})` });
  usable.forEach((s, k) => {
    const fy = s.axis === "y2" ? sy2 : sy;
    const color = s.color || COLORS[k % COLORS.length];
    if (s.line !== false) {
      let d = "", pen = false;
      s.x.forEach((xv, i) => {
        const yv = s.y[i];
        if (!isNum(xv) || !isNum(yv)) { pen = false; return; }
        d += `${pen ? "L" : "M"}${sx(xv).toFixed(1)},${fy(yv).toFixed(1)}`;
        pen = true;
      });
      plot.appendChild(svgEl("path", { class: "series", d, stroke: color, "stroke-dasharray": s.dash || "",
        "data-label": s.label || "" }));
    }
    if (s.markers) {
      s.x.forEach((xv, i) => {
        const yv = s.y[i];
        if (!isNum(xv) || !isNum(yv)) return;
        if (s.err && isNum(s.err[i])) {
          plot.appendChild(svgEl("line", { x1: sx(xv), x2: sx(xv), y1: fy(yv - s.err[i]), y2: fy(yv + s.err[i]),
            stroke: color }));
        }
        const attrs = { class: "marker", cx: sx(xv), cy: fy(yv), r: 3, stroke: color };
        attrs.fill = s.hollow ? "#fff" : color;
        plot.appendChild(svgEl("circle", attrs));
      });
    }
  });
  svg.appendChild(plot);
  const legend = svgEl("g", { class: "legend" });
  usable.filter((s) => s.label).forEach((s, k) => {
    const y = m.t + 10 + k * 12, x = m.l + W - 6;
    const color = s.color || COLORS[usable.indexOf(s) % COLORS.length];
    legend.appendChild(svgEl("line", { x1: x - 16, x2: x - 2, y1: y - 3, y2: y - 3, stroke: color,
      "stroke-width": 2, "stroke-dasharray": s.line === false ? "1 3" : s.dash || "" }));
    legend.appendChild(svgEl("text", { x: x - 20, y, "text-anchor": "end" }, s.label));
  });
  svg.appendChild(legend);
  container.appendChild(svg);
  // A translucent box behind the legend keeps it readable over data (measured after insertion).
  if (legend.childNodes.length && legend.getBBox) {
    const box = legend.getBBox();
    legend.insertBefore(svgEl("rect", { x: box.x - 3, y: box.y - 2, width: box.width + 6, height: box.height + 4,
      fill: "#fff", "fill-opacity": 0.85, rx: 2 }), legend.firstChild);
  }
  return svg;
}

function empty(container, text) {
  container.replaceChildren(el("div", { class: "empty" }, text));
}

// ------------------------------------------------------------------------------------------ detail view

/* Notes shown after a property's value: where an input, a viscosity or a density came from. */
function propNote(doc, name) {
  if (name === "density" && doc.density_source === "input") {
    return isNum(doc.density_input) ? `fixed input ${fmt(doc.density_input, 4)} (NVT), not computed` : "fixed input";
  }
  if (name === "eta" && doc.eta_source) {
    return doc.eta_status === "input" ? `${doc.eta_source}, not computed` : doc.eta_source;
  }
  return "";
}

function renderProps(doc) {
  const tbody = $("#props tbody");
  tbody.replaceChildren();
  for (const [name, info] of Object.entries(propertyInfo)) {
    const tr = el("tr", { "data-prop": name });
    tr.appendChild(el("td", { title: info.description }, name));
    const td = el("td", { class: "num" });
    td.appendChild(valueNode(doc, name, 4, 2));
    tr.appendChild(td);
    tr.appendChild(neffNode(doc, name));
    tr.appendChild(el("td", { class: "muted unit" }, prettyUnit(info.unit)));
    const x = expValue(doc, name);
    const note = propNote(doc, name);
    const exp = el("td", { class: "num exp", title: doc[`exp_${name}_source`] || "" },
      x !== null ? `exp ${fmt(x, 4)}` : note);
    tr.appendChild(exp);
    tbody.appendChild(tr);
  }
}

function interp(xs, ys, x) {
  for (let i = 1; i < xs.length; i++) {
    if (xs[i] >= x) {
      const f = (x - xs[i - 1]) / (xs[i] - xs[i - 1] || 1);
      return ys[i - 1] + f * (ys[i] - ys[i - 1]);
    }
  }
  return ys[ys.length - 1];
}

function drawRdf() {
  const container = $("#rdf-plot");
  const pair = $("#pair-select").value;
  if (!rdfData || !rdfData.trajectories.length) { empty(container, "no structure documents"); return; }
  const series = [];
  const runs = rdfData.trajectories.filter((t) => t.rdf[pair]);
  let y2max = null;
  runs.forEach((t, k) => {
    const c = t.rdf[pair];
    const shell = (t.shells || {})[pair] || {};
    const color = COLORS[k % COLORS.length];
    const run = runs.length > 1 ? ` (run ${k + 1})` : "";
    series.push({ x: c.r, y: c.g, label: `g${run}`, color });
    if (!c.n) return;
    // n(r) grows like r³: scale its axis to the first shell (2.5 × n at the first minimum).
    const peak = c.r[c.g.indexOf(Math.max(...c.g.filter(isNum)))];
    const rMin = isNum(shell.r_min) ? shell.r_min : 1.6 * peak;
    const nRef = interp(c.r, c.n, rMin);
    if (isNum(nRef) && nRef > 0) y2max = Math.max(y2max ?? 0, 2.5 * nRef);
    const cn = isNum(shell.cn) ? ` (CN ${fmt(shell.cn, 3)})` : "";
    series.push({ x: c.r, y: c.n, label: k ? "" : `n${cn}`, color, axis: "y2", dash: "4 3" });
  });
  if (!series.length) { empty(container, `no g(r) for ${pair}`); return; }
  lineChart(container, { series, xlabel: "r / Å", ylabel: "g(r)", y2label: "n(r)", xmin: 0, y2max });
}

function drawMsd(data) {
  const container = $("#msd-plot");
  if (!data.trajectories.length) { empty(container, "no transport documents"); return; }
  const series = [];
  data.trajectories.forEach((t, k) => {
    for (const [species, c] of Object.entries(t.msd)) {
      const fit = t.diffusion && t.diffusion[species] ? t.diffusion[species] : {};
      const ok = !fit.status || fit.status === "converged";
      const D = isNum(fit.D) ? (ok ? ` (D ${fmt(fit.D, 3)})` : ` (D ${STATUS_TEXT[fit.status] || fit.status})`) : "";
      series.push({ x: c.t_ps, y: c.msd_A2, color: SPECIES_COLORS[species], dash: k ? "5 3" : "",
        label: k ? "" : `${species}${D}` });
    }
  });
  lineChart(container, { series, xlabel: "t / ps", ylabel: "MSD / Å²", xmin: 0 });
}

/* γ± points from thermo documents. Accepted shapes: the ThermoBuilder's `series: {molality: [...], gamma: [...],
 * gamma_err: [...]}`; the same arrays at top level (`gamma_pm` / `ln_gamma_pm` also accepted); one document per
 * molality with scalars; or a list `points` / `series` of {molality, gamma}. */
function thermoPoints(docs) {
  const pts = [];
  const pick = (d, keys) => keys.map((k) => d[k]).find((v) => v !== undefined && v !== null);
  const gammaKeys = ["gamma", "gamma_pm", "mean_activity_coefficient"];
  const errKeys = ["gamma_err", "gamma_pm_err"];
  const push = (m, g, e, lnG) => {
    if (!isNum(g) && isNum(lnG)) g = Math.exp(lnG);
    if (isNum(m) && isNum(g)) pts.push({ m, g, e: isNum(e) ? e : null });
  };
  const flat = (d) => {
    if (!d || typeof d !== "object") return;
    const m = pick(d, ["molality", "molalities", "molality_mol_kg"]);
    const g = pick(d, gammaKeys), e = pick(d, errKeys), lnG = pick(d, ["ln_gamma_pm", "ln_gamma"]);
    const at = (v, i) => (Array.isArray(v) ? v[i] : null);
    if (Array.isArray(m)) m.forEach((mi, i) => push(mi, at(g, i), at(e, i), at(lnG, i)));
    else push(m, g, e, lnG);
  };
  for (const d of docs) {
    flat(d);
    if (d.series && !Array.isArray(d.series)) flat(d.series);
    for (const p of Array.isArray(d.points) ? d.points : Array.isArray(d.series) ? d.series : []) flat(p);
  }
  return pts.sort((a, b) => a.m - b.m);
}

async function drawGamma(doc) {
  const container = $("#gamma-plot");
  const T = doc.temperature;
  const thermo = await api("/thermo", { salt: doc.salt, model_id: doc.model_id, temperature_min: T - 0.5,
    temperature_max: T + 0.5, _limit: 100 });
  const pts = thermoPoints(thermo.data);
  if (!pts.length) {
    const where = `${doc.salt} with this model at ${fmt(T, 5)} K`;
    if (!thermo.data.length) {
      empty(container, `no thermodynamics documents for ${where} yet`);
      return;
    }
    // A document without a series (too few converged concentrations): its status and reason, not "none yet".
    const status = thermoStatus(thermo.data) || "the thermodynamics document has no γ± series";
    empty(container, `no γ± for ${where}: ${status}`);
    const criterion = (thermo.data.find((t) => t.criterion) || {}).criterion;
    if (criterion) container.firstChild.title = `criterion: ${criterion}`;
    return;
  }
  const series = [{ x: pts.map((p) => p.m), y: pts.map((p) => p.g), err: pts.map((p) => p.e), label: "this model",
    color: COLORS[0], markers: true }];
  // Experiment: the table stored with the thermo document, else the package's reference table.
  let ref = thermo.data.map((d) => d.experiment && d.experiment.tables && d.experiment.tables.gamma).find(Boolean);
  if (!ref) {
    try {
      ref = (await api("/reference/activity", { salt: doc.salt })).data.gamma_pm;
    } catch (err) { /* no experimental table for this salt */ }
  }
  if (ref && Array.isArray(ref.molality)) {
    series.push({ x: ref.molality, y: ref.value, label: "experiment (25 °C)", color: "#24292f", markers: true,
      hollow: true, line: false });
  }
  lineChart(container, { series, xlabel: "m / mol kg⁻¹", ylabel: "γ±", xmin: 0 });
  container.appendChild(el("div", { class: "thermo-status muted" }, thermoStatus(thermo.data)));
}

/* σ vs molality: this model's summaries of the salt at this temperature (converged values filled, with error bars;
 * any other status hollow, without a bar, its reason on the point's title) and the experimental conductivity at
 * 25 °C (GET /reference/conductivity: McCleskey's equations, NIST KCl standards; to 1 mol/kg). */
async function drawSigma(doc) {
  const container = $("#sigma-plot");
  const T = doc.temperature;
  const rows = (await api("/electrolytes", { salt: doc.salt, model_id: doc.model_id, temperature_min: T - 0.5,
    temperature_max: T + 0.5, _fields: "molality,sigma,sigma_err,sigma_status,sigma_reason",
    _sort_fields: "molality", _limit: 100 })).data.filter((d) => isNum(d.sigma));
  const ok = rows.filter((d) => d.sigma_status === "converged");
  const other = rows.filter((d) => d.sigma_status !== "converged");
  const series = [];
  if (ok.length) {
    series.push({ x: ok.map((d) => d.molality), y: ok.map((d) => d.sigma), err: ok.map((d) => d.sigma_err),
      label: "this model", color: COLORS[0], markers: true });
  }
  if (other.length) {
    series.push({ x: other.map((d) => d.molality), y: other.map((d) => d.sigma), label: "not converged",
      color: COLORS[0], markers: true, hollow: true, line: false });
  }
  if (Math.abs(T - 298.15) < 1) {
    try {
      const ref = (await api("/reference/conductivity", { salt: doc.salt })).data;
      series.push({ x: ref.molality, y: ref.value, label: "experiment (25 °C)", color: "#24292f", dash: "4 3" });
    } catch (err) { /* no experimental conductivity for this salt */ }
  }
  if (!series.length) {
    empty(container, `no conductivity for ${doc.salt} with this model at ${fmt(T, 5)} K (rebuild to compute it)`);
    return;
  }
  lineChart(container, { series, xlabel: "m / mol kg⁻¹", ylabel: "σ / S m⁻¹", xmin: 0 });
  if (other.length) {
    const why = other.map((d) => `${fmt(d.molality, 3)} mol/kg: ${STATUS_TEXT[d.sigma_status] || d.sigma_status}`);
    container.appendChild(el("div", { class: "thermo-status muted", title: other.map((d) => d.sigma_reason || "")
      .join("\n") }, `hollow: ${why.join("; ")}`));
  }
}

/* The verdict of the thermo documents: converged, not converged (reason), or a legacy document without one. */
function thermoStatus(docs) {
  const d = docs.find((t) => t.status) || {};
  if (!d.status) return "";
  if (d.status === "converged") return "series converged";
  if (d.status === "ok" || d.status === "derivative_only") return `legacy document (status "${d.status}", no convergence check)`;
  return `${STATUS_TEXT[d.status] || d.status}${d.reason ? ": " + d.reason : ""}`;
}

async function openSystem(id) {
  state.system = id;
  writeUrl();
  document.body.dataset.ready = "";
  for (const tr of document.querySelectorAll("#systems tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.id === id);
  }
  const detail = $("#detail");
  try {
    const doc = (await api(`/electrolytes/${encodeURIComponent(id)}`)).data;
    detail.hidden = false;
    $("#detail-title").textContent = `${doc.salt}  ${fmt(doc.molality, 3)} mol/kg  ${fmt(doc.temperature, 5)} K`;
    const meta = $("#detail-meta");
    meta.replaceChildren("model ", el("span", { class: "model", title: doc.model_id || "" }, modelLabel(doc)),
      ` · ${doc.n_runs} run(s), ${fmtPs(doc.total_ps)} ps · id ${doc.electrolyte_id}`);
    const trust = el("div", { id: "detail-trust" }, "model trust: ");
    trust.appendChild(trustNode(doc));
    if (doc.model_trust && doc.model_trust !== "trusted" && doc.model_trust_reason) {
      trust.appendChild(document.createTextNode(` — ${doc.model_trust_reason}`));
    }
    if (doc.superseded_by) {
      // a refined committee's model ran this electrolyte again: this result is kept, but not the default answer
      const newer = el("a", { href: `?system=${encodeURIComponent(doc.superseded_by)}`, class: "superseded" },
        doc.superseded_by);
      newer.addEventListener("click", (ev) => { ev.preventDefault(); openSystem(doc.superseded_by); });
      trust.append(" · superseded by ", newer, " (a refined committee's model)");
    }
    meta.appendChild(trust);
    renderProps(doc);
    const [rdf, msd] = await Promise.all([api(`/electrolytes/${encodeURIComponent(id)}/rdf`, { max_points: 600 }),
      api(`/electrolytes/${encodeURIComponent(id)}/msd`, { max_points: 600 })]);
    rdfData = rdf.data;
    const select = $("#pair-select");
    const pairs = [...new Set(rdfData.trajectories.flatMap((t) => Object.keys(t.rdf)))];
    const previous = select.value;
    select.replaceChildren(...pairs.map((p) => el("option", { value: p }, p)));
    select.value = pairs.includes(previous) ? previous : pairs.includes("cation-O_w") ? "cation-O_w" : pairs[0] || "";
    drawRdf();
    drawMsd(msd.data);
    await drawGamma(doc);
    await drawSigma(doc);
    showError("");
  } catch (err) {
    showError(`could not load system ${id}: ${err.message}`);
  }
  document.body.dataset.ready = "detail";
}

function closeSystem() {
  state.system = null;
  $("#detail").hidden = true;
  for (const tr of document.querySelectorAll("#systems tbody tr.selected")) tr.classList.remove("selected");
  writeUrl();
}

// ------------------------------------------------------------------------------------------ start

async function loadFacets() {
  try {
    const facets = await api("/facets");
    $("#salt-list").replaceChildren(...facets.data.salt.map((s) => el("option", { value: s })));
    const select = $("#filters").elements.model_id;
    const names = facets.data.model_name || {};
    for (const id of facets.data.model_id) {
      select.appendChild(el("option", { value: id, title: id }, names[id] || shortModel(id)));
    }
    select.value = state.filters.model_id || "";
  } catch (err) { /* the filters still work as free text */ }
}

/* The model-trust filter's choices: the verdicts GET /properties lists, each with its meaning on hover. */
function trustOptions(meta) {
  const select = $("#filters").elements.model_trust;
  const described = (meta.trust_fields || {}).model_trust || "";
  select.title = described;
  for (const status of meta.trust_statuses || []) {
    const option = el("option", { value: status }, TRUST_TEXT[status] || status);
    if (status === state.filters.model_trust) option.setAttribute("selected", "");
    select.appendChild(option);
  }
  select.value = state.filters.model_trust || "";
}

async function loadStatus() {
  try {
    const health = await api("/health");
    const stored = health.counts ? health.counts.electrolytes : null;
    // the default answer (superseded results left out), as the table counts; the rest said apart
    const current = (await api("/electrolytes", { _limit: 0 })).meta.total_doc;
    const superseded = isNum(stored) && stored > current ? ` (+${stored - current} superseded)` : "";
    $("#db-status").textContent = `${health.backend} database · ${current} summaries${superseded}`;
  } catch (err) {
    $("#db-status").textContent = "database unavailable";
  }
}

async function start() {
  readUrl();
  filtersToForm();
  $("#filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    formToFilters();
    state.skip = 0;
    loadTable();
  });
  $("#clear").addEventListener("click", () => {
    state.filters = {};
    state.skip = 0;
    filtersToForm();
    loadTable();
  });
  $("#prev").addEventListener("click", () => { state.skip = Math.max(0, state.skip - PAGE_SIZE); loadTable(); });
  $("#next").addEventListener("click", () => { state.skip += PAGE_SIZE; loadTable(); });
  $("#pair-select").addEventListener("change", drawRdf);
  $("#close-detail").addEventListener("click", closeSystem);
  try {
    const properties = await api("/properties");
    propertyInfo = properties.data;
    COLUMNS = [...LEAD_COLUMNS, ...propertyColumns(propertyInfo), ...TAIL_COLUMNS];
    trustOptions(properties.meta || {});
  } catch (err) { /* no property columns and no property table; loadTable shows the error */ }
  // The table (and the selected system) first: on an embedded database every query is a full scan.
  await loadTable();
  if (state.system) await openSystem(state.system);
  await loadFacets();
  await loadStatus();
  document.body.dataset.loaded = "all";
}

start();

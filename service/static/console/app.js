// The console: three views over the /v1 API (models, forecast, live accuracy). No state leaves
// the page: the admin key lives in its input only, never in storage or in this code.
import { api, enc } from "./api.js";
import { answerCsv, buildRequest } from "./csv.js";
import { clear, color, forecastChart, linesChart, seconds } from "./charts.js";

const $ = (id) => document.getElementById(id);
const LEVELS = [50, 80, 90, 95, 99];
const DEFAULT_LEVELS = [80, 95];
// What the last forecast sent and got (the browser tests read it back).
const state = (window.consoleState = { request: null, answer: null, unanswerable: [] });

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function say(text, ok = false) {
  const m = $("message");
  m.textContent = text;
  m.className = ok ? "ok" : "";
  m.hidden = !text;
}

const fmt = (x, digits = 3) => (x === null || x === undefined ? "—" :
  typeof x === "number" ? Number(x.toPrecision(digits)).toString() : String(x));

function table(head, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) =>
      c instanceof Node ? el("td", {}, c) : el("td", { class: typeof c === "number" ? "num" : "" }, fmt(c)))))));
}

async function guarded(work) {
  try {
    await work();
  } catch (err) {
    say(err.message);
  }
}

// ------------------------------------------------------------------------------- models

async function showModels() {
  const models = await api("/v1/models");
  const rows = models.map((m) => [
    el("button", { type: "button", onclick: () => guarded(() => showVersions(m.name)) }, m.name),
    m.versions.join(", "), m.production, m.loaded_version, m.default ? "yes" : "",
    m.frequency, m.horizon, m.window,
    m.min_history ? `${m.min_history.model} (fallback ${m.min_history.fallback})` : null,
    m.covariates ? m.covariates.columns.map((c) => `${c.name} (${c.role})`).join(", ") || "calendar" : "none",
    m.quantiles ? m.quantiles.join(", ") : null, m.method, m.problem || "",
  ]);
  $("models-table").replaceChildren(table(["model", "versions", "production", "serving", "default",
    "frequency", "horizon", "window", "min. history", "covariates", "quantiles", "method",
    "problem"], rows));
  const shown = $("model-versions").dataset.model || hashModel() || (models[0] && models[0].name);
  if (shown) await showVersions(shown);
}

// {"smape": 9.3} or {"validation": {"smape": 9.3}, "test": {...}}, as a line of text.
function metricsText(metrics, prefix = "") {
  if (!metrics) return "—";
  return Object.entries(metrics).map(([k, v]) => {
    if (typeof v === "number") return `${prefix}${k} ${fmt(v)}`;
    if (v && typeof v === "object" && !prefix) return metricsText(v, `${k} `);
    return "";
  }).filter(Boolean).join(", ") || "—";
}

async function admin(name, action, body) {
  const key = $("admin-key").value;
  if (!key) { say("enter the admin key first"); return; }
  const done = await api(`/v1/models/${enc(name)}/${action}`, { method: "POST", body: body || {}, key });
  say(`${name}: now serving version ${done.version} (was ${done.previous ?? "none"})`, true);
  await showModels();
  await showVersions(name);
}

async function showVersions(name) {
  const versions = await api(`/v1/models/${enc(name)}/versions`);
  const box = $("model-versions");
  box.dataset.model = name;
  const rows = versions.map((v) => [
    v.version, v.aliases.join(", "), v.served ? "yes" : "", v.created_at, v.frequency, v.horizon,
    v.window, v.method, metricsText(v.metrics),
    v.decision ? `${v.decision.action} (${v.decision.status || ""}): ${v.decision.reason || ""}` : "—",
    v.error || "",
    el("button", { type: "button", onclick: () => guarded(() => admin(name, "promote", { version: v.version })) },
      `Promote v${v.version}`),
  ]);
  box.replaceChildren(
    el("h3", {}, `${name}: versions`),
    table(["version", "aliases", "serving", "created", "frequency", "horizon", "window", "method",
      "training scores", "retrain decision", "problem", "admin"], rows),
    el("button", { type: "button", onclick: () => guarded(() => admin(name, "rollback")) },
      `Roll ${name} back`));
}

// ------------------------------------------------------------------------------- forecast

let models = [];

async function loadModelList() {
  models = await api("/v1/models");
  const served = models.filter((m) => m.loaded_version !== null);
  $("fc-models").replaceChildren(...served.map((m) => el("option", { value: m.name })));
  const chosen = hashModel() || $("acc-model").value;
  $("acc-model").replaceChildren(...models.map((m) => el("option", { value: m.name }, m.name)));
  if (models.some((m) => m.name === chosen)) $("acc-model").value = chosen;
  const input = $("fc-model");
  if (!input.value && served.length) input.value = (served.find((m) => m.default) || served[0]).name;
  await modelChosen();
}

async function modelChosen() {
  const m = models.find((x) => x.name === $("fc-model").value.trim());
  if (m && m.horizon && !$("fc-horizon").dataset.touched) $("fc-horizon").value = m.horizon;
  const recent = m ? await api(`/v1/series?model=${enc(m.name)}&limit=100`) : [];
  $("fc-recent").replaceChildren(el("option", { value: "" }, "—"),
    ...recent.map((s) => el("option", { value: s.id }, `${s.id} (${s.forecasts} forecasts)`)));
}

async function recentChosen() {
  const id = $("fc-recent").value;
  if (!id) return;
  const rec = await api(`/v1/series/${enc(id)}?model=${enc($("fc-model").value.trim())}&forecasts=1`);
  if (!rec.actuals.length) { say(`no actuals have arrived for series ${id} yet`); return; }
  const q = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  $("fc-csv").value = ["id,timestamp,value",
    ...rec.actuals.map((v, k) => `${q(id)},${rec.timestamps[k]},${v}`)].join("\n");
  say("");
}

function chosenLevels() {
  return [...$("fc-levels").querySelectorAll("input:checked")].map((i) => Number(i.value));
}

async function forecast() {
  say("");
  clear($("fc-chart"));
  $("fc-info").textContent = "";
  state.request = state.answer = null;
  $("fc-download").disabled = true;
  $("fc-series").replaceChildren();
  $("fc-series").disabled = true;
  const name = $("fc-model").value.trim();
  if (!name) { say("choose a model"); return; }
  const model = await api(`/v1/models/${enc(name)}`);
  if (model.loaded_version === null) throw new Error(`model ${name} is not served: ${model.problem || "not loaded"}`);
  const horizon = Number($("fc-horizon").value) || model.horizon;
  const [levels] = answerable(model, chosenLevels());
  const body = buildRequest($("fc-csv").value, model, { horizon, levels });
  state.request = body;
  const answer = await api("/v1/forecast", { method: "POST", body });
  state.answer = answer;
  const pick = $("fc-series");
  pick.replaceChildren(...answer.forecasts.map((f, k) => el("option", { value: String(k) }, String(f.id))));
  pick.disabled = answer.forecasts.length < 2;
  $("fc-download").disabled = !answer.forecasts.length;
  if (answer.errors && answer.errors.length) {
    say(answer.errors.map((e) => `series ${e.id}: ${e.msg}`).join("\n"));
  }
  if (answer.forecasts.length) plotForecast(0);
}

// History plotted before a forecast, in horizons (all of it is sent; drag on the chart to zoom).
const SHOWN_HORIZONS = 10;

function plotForecast(k) {
  const f = state.answer.forecasts[k];
  const sent = state.request.series[f.index ?? k];
  const keep = Math.max(SHOWN_HORIZONS * f.forecast.length, 48);
  const cut = Math.max(0, sent.history.length - keep);
  const input = { history: sent.history.slice(cut), timestamps: sent.timestamps && sent.timestamps.slice(cut) };
  const timed = Boolean(input.timestamps && f.timestamps);
  const histX = timed ? input.timestamps.map(seconds) : input.history.map((_, i) => cut + i);
  const fcX = timed ? f.timestamps.map(seconds) : f.forecast.map((_, i) => sent.history.length + i);
  const n = histX.length, h = fcX.length;
  const pad = (values, before, after) => [...Array(before).fill(null), ...values, ...Array(after).fill(null)];
  const bands = {};
  for (const [level, b] of Object.entries(f.intervals || {})) {
    bands[level] = { upper: pad(b.upper, n, 0), lower: pad(b.lower, n, 0) };
  }
  forecastChart($("fc-chart"), {
    x: [...histX, ...fcX], history: pad(input.history, 0, h), forecast: pad(f.forecast, n, 0),
    bands, timed,
  });
  const notes = [`model ${state.answer.model} v${state.answer.version}`, `method: ${f.method}`];
  if (f.calibrated !== null && f.calibrated !== undefined) notes.push(f.calibrated ? "calibrated intervals" : "uncalibrated intervals");
  if (f.filled) notes.push(`${f.filled} missing points filled`);
  if (f.warnings) notes.push(...f.warnings);
  if (state.unanswerable.length) notes.push(`no ${state.unanswerable.join("/")}% interval: the model has no such quantiles`);
  $("fc-info").textContent = notes.join(" · ");
}

// The levels a model can answer: any when calibrated, else those whose two quantiles it has.
function answerable(model, levels) {
  const has = (q) => (model.quantiles || []).some((o) => Math.abs(o - q) < 1e-9);
  const ok = levels.filter((l) => model.calibrated || (has((1 - l / 100) / 2) && has((1 + l / 100) / 2)));
  state.unanswerable = levels.filter((l) => !ok.includes(l));
  return [ok, state.unanswerable];
}

function download() {
  const blob = new Blob([answerCsv(state.answer)], { type: "text/csv" });
  const a = el("a", { href: URL.createObjectURL(blob), download: `forecast-${state.answer.model}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ------------------------------------------------------------------------------- accuracy

async function showAccuracy() {
  const name = $("acc-model").value;
  if (!name) return;
  const every = $("acc-every").value;
  // One after another: the service runs few monitoring queries at once (503 beyond them).
  const timeline = await api(`/v1/models/${enc(name)}/accuracy/timeline?every=${every}`);
  const overall = await api(`/v1/models/${enc(name)}/accuracy`);
  const recent = await api(`/v1/series?model=${enc(name)}&limit=200`);
  $("acc-summary").replaceChildren(overall.versions.length ? table(
    ["version", "points", "MASE", "seasonal naive MASE", "sMAPE", "coverage per level"],
    overall.versions.map((v) => [v.version, v.overall.points, v.overall.model.mase,
      v.overall.seasonal_naive.mase, v.overall.model.smape,
      Object.values(v.overall.levels).map((c) => `${c.level}%: ${fmt(c.coverage === null ? null : 100 * c.coverage)}%`).join(", ") || "—"]))
    : el("p", { class: "muted" }, "No actuals have matched a recorded forecast of this model yet."));
  const x = timeline.windows.map((w) => seconds(w.start));
  const versions = [...new Set(timeline.windows.flatMap((w) => w.versions.map((v) => v.version)))].sort((a, b) => a - b);
  const of = (version, pick) => timeline.windows.map((w) => {
    const v = w.versions.find((o) => o.version === version);
    return v ? pick(v.overall) : null;
  });
  const mase = versions.flatMap((v, k) => [
    { label: `v${v} MASE`, values: of(v, (o) => o.model.mase), stroke: color(k) },
    { label: `v${v} seasonal naive`, values: of(v, (o) => o.seasonal_naive.mase), stroke: color(k), dash: [6, 4] },
  ]);
  mase.push({ label: "MASE = 1", values: x.map(() => 1), stroke: "#9ca3af", width: 1, dash: [2, 3] });
  linesChart($("acc-mase"), x, mase);
  linesChart($("acc-smape"), x, versions.map((v, k) => ({ label: `v${v} sMAPE`, values: of(v, (o) => o.model.smape), stroke: color(k) })));
  const levels = [...new Set(timeline.windows.flatMap((w) => w.versions.flatMap((v) => Object.keys(v.overall.levels))))]
    .sort((a, b) => Number(a) - Number(b));
  const coverage = [];
  versions.forEach((v, k) => levels.forEach((level, j) => coverage.push({
    label: `v${v} ${level}%`, stroke: color(k + j),
    values: of(v, (o) => (o.levels[level] && o.levels[level].coverage !== null ? 100 * o.levels[level].coverage : null)),
  })));
  levels.forEach((level, j) => coverage.push({ label: `nominal ${level}%`, values: x.map(() => Number(level)), stroke: color(j), width: 1, dash: [2, 3] }));
  linesChart($("acc-coverage"), x, coverage, { y: { range: [0, 100] } });
  const pick = $("acc-series");
  const before = pick.value;
  pick.replaceChildren(...recent.map((s) => el("option", { value: s.id }, s.id)));
  if (recent.some((s) => s.id === before)) pick.value = before;
  if (recent.length) await showSeries(); else clear($("acc-series-chart"));
}

async function showSeries() {
  const id = $("acc-series").value;
  if (!id) return;
  const rec = await api(`/v1/series/${enc(id)}?model=${enc($("acc-model").value)}&forecasts=30`);
  const times = new Set(rec.timestamps);
  rec.forecasts.forEach((f) => f.timestamps.forEach((t) => times.add(t)));
  const stamps = [...times].sort((a, b) => seconds(a) - seconds(b));
  const at = new Map(stamps.map((t, k) => [t, k]));
  const column = (ts, vs) => { const out = Array(stamps.length).fill(null); ts.forEach((t, k) => { out[at.get(t)] = vs[k]; }); return out; };
  const lines = [{ label: "actual", values: column(rec.timestamps, rec.actuals), stroke: "#111827", width: 2 }];
  rec.forecasts.forEach((f, k) => lines.push({
    label: `from ${f.timestamps[0].slice(0, 16).replace("T", " ")} (v${f.version})`,
    values: column(f.timestamps, f.forecast), stroke: color(k + 1), width: 1,
  }));
  // Past a few forecasts a legend entry each would bury the chart: a caption says what is what.
  linesChart($("acc-series-chart"), stamps.map(seconds), lines, { legend: lines.length <= 6 });
  $("acc-series-note").textContent = `black: the actuals; in colour: the series' last ${rec.forecasts.length} ` +
    `recorded forecasts${rec.forecasts.length ? `, the latest made ${rec.forecasts.at(-1).made_at.slice(0, 16)} UTC` : ""}.`;
}

// ------------------------------------------------------------------------------- routing

const VIEWS = { models: showModels, forecast: loadModelList, accuracy: async () => { await loadModelList(); await showAccuracy(); } };

// #view?model=NAME opens a view on a model (links and screenshots).
function hashModel() {
  return new URLSearchParams(location.hash.split("?")[1] || "").get("model");
}

async function route() {
  const view = (location.hash.slice(1) || "models").split("?")[0];
  const model = hashModel();
  if (model) $("fc-model").value = model;
  const name = view in VIEWS ? view : "models";
  for (const v of Object.keys(VIEWS)) {
    $(`view-${v}`).hidden = v !== name;
    if (v === name) $(`tab-${v}`).setAttribute("aria-current", "page");
    else $(`tab-${v}`).removeAttribute("aria-current");
  }
  say("");
  await guarded(VIEWS[name]);
  document.body.dataset.view = name;  // set once the view has loaded (the tests wait for it)
}

function setup() {
  $("fc-levels").append(...LEVELS.map((l) => el("label", {},
    el("input", { type: "checkbox", value: String(l), ...(DEFAULT_LEVELS.includes(l) ? { checked: "" } : {}) }), ` ${l}`)));
  $("forecast-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(forecast); });
  $("fc-model").addEventListener("change", () => guarded(modelChosen));
  $("fc-horizon").addEventListener("input", () => { $("fc-horizon").dataset.touched = "1"; });
  $("fc-recent").addEventListener("change", () => guarded(recentChosen));
  $("fc-file").addEventListener("change", async () => {
    const file = $("fc-file").files[0];
    if (file) $("fc-csv").value = await file.text();
  });
  $("fc-series").addEventListener("change", () => plotForecast(Number($("fc-series").value)));
  $("fc-download").addEventListener("click", download);
  $("acc-model").addEventListener("change", () => guarded(showAccuracy));
  $("acc-every").addEventListener("change", () => guarded(showAccuracy));
  $("acc-refresh").addEventListener("click", () => guarded(showAccuracy));
  $("acc-series").addEventListener("change", () => guarded(showSeries));
  window.addEventListener("hashchange", route);
  route();
}

setup();

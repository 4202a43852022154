// uPlot charts (window.uPlot, vendored). Every chart is kept in window.consoleCharts under its
// element's id, so its plotted data can be read back (the browser tests compare it to the API).

const uPlot = window.uPlot;
export const charts = (window.consoleCharts = {});
const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777"];
export const color = (k) => PALETTE[k % PALETTE.length];

// ISO 8601 -> Unix seconds; a stamp without an offset is read as UTC (as the service stores it).
export function seconds(stamp) {
  const zoned = /(Z|[+-]\d\d:?\d\d)$/.test(stamp);
  const t = Date.parse(zoned ? stamp : stamp.replace(" ", "T") + "Z");
  return Number.isNaN(t) ? null : t / 1000;
}

function width(el) {
  return Math.max(320, Math.min(el.clientWidth || 900, 1240));
}

function draw(el, opts, data) {
  if (charts[el.id]) charts[el.id].destroy();
  el.replaceChildren();
  const u = new uPlot({ width: width(el), height: 300, ...opts }, data, el);
  charts[el.id] = u;
  return u;
}

window.addEventListener("resize", () => {
  for (const [id, u] of Object.entries(charts)) {
    const el = document.getElementById(id);
    if (el) u.setSize({ width: width(el), height: 300 });
  }
});

function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
}

// History, forecast and its bands (widest first) on one axis; x: seconds, or point indexes.
export function forecastChart(el, { x, history, forecast, bands, timed }) {
  const data = [x, history, forecast];
  const series = [{}, { label: "history", stroke: "#374151", width: 1.5 },
    { label: "forecast", stroke: color(0), width: 2 }];
  const fills = [];
  const levels = Object.keys(bands).sort((a, b) => Number(b) - Number(a));
  levels.forEach((level, k) => {
    const shade = 0.12 + 0.1 * k;
    data.push(bands[level].upper, bands[level].lower);
    series.push({ label: `upper ${level}%`, stroke: alpha(color(0), 0.5), width: 1 },
      { label: `lower ${level}%`, stroke: alpha(color(0), 0.5), width: 1 });
    fills.push({ series: [data.length - 2, data.length - 1], fill: alpha(color(0), shade) });
  });
  return draw(el, {
    series, bands: fills, scales: { x: { time: timed } },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
  }, data);
}

// Lines over time: lines = [{label, values, stroke, dash}].
export function linesChart(el, x, lines, { timed = true, y, legend = true } = {}) {
  const series = [{}, ...lines.map((l) => ({
    label: l.label, stroke: l.stroke, width: l.width || 1.5, dash: l.dash, spanGaps: false,
    points: { show: x.length < 80 },
  }))];
  // One window alone would get a range of years around it: a day either side instead.
  const lone = x.length === 1 ? { range: [x[0] - 86400, x[0] + 86400] } : {};
  return draw(el, {
    series, scales: { x: { time: timed, ...lone }, ...(y ? { y } : {}) }, legend: { show: legend },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
  }, [x, ...lines.map((l) => l.values)]);
}

export function clear(el) {
  if (charts[el.id]) { charts[el.id].destroy(); delete charts[el.id]; }
  el.replaceChildren();
}

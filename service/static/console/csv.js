// CSV text -> the body of a forecast request, every problem named (row, column, why).

export class CsvError extends Error {}

const ID = ["id", "unique_id", "series"];
const TIME = ["timestamp", "ds", "time", "date"];
const VALUE = ["value", "y"];

// Rows of fields; quotes ("a,b", "say ""hi""") as RFC 4180 writes them.
export function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false, i = 0;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i += 1; continue; }
      field += c; i += 1; continue;
    }
    if (c === '"' && field === "") { quoted = true; i += 1; continue; }
    if (c === ",") { row.push(field); field = ""; i += 1; continue; }
    if (c === "\n" || c === "\r") {
      row.push(field); field = "";
      if (row.some((f) => f.trim() !== "")) rows.push(row);
      row = [];
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    field += c; i += 1;
  }
  row.push(field);
  if (row.some((f) => f.trim() !== "")) rows.push(row);
  if (quoted) throw new CsvError("a quoted field is never closed");
  return rows;
}

function number(text, row, column) {
  const t = text.trim();
  if (t === "") return null;
  const x = Number(t);
  if (!Number.isFinite(x)) {
    throw new CsvError(`row ${row}, column '${column}': '${t}' is not a number`);
  }
  return x;
}

function find(header, names) {
  const at = header.findIndex((h) => names.includes(h.toLowerCase()));
  return at < 0 ? null : at;
}

// model: the /v1/models/{name} answer (its covariates); returns {body, series: [{id, x, history}]}.
export function buildRequest(text, model, { horizon, levels }) {
  const rows = parseCsv(text);
  if (rows.length < 2) throw new CsvError("the CSV needs a header row and at least one value");
  const header = rows[0].map((h) => h.trim());
  const seen = new Set();
  for (const h of header) {
    if (h === "") throw new CsvError("the header has an empty column name");
    if (seen.has(h)) throw new CsvError(`column '${h}' appears twice in the header`);
    seen.add(h);
  }
  const idCol = find(header, ID), timeCol = find(header, TIME);
  let valueCol = find(header, VALUE);
  const covs = (model.covariates && model.covariates.columns) || [];
  const covNames = new Set(covs.map((c) => c.name));
  const rest = header.map((_, k) => k).filter((k) => k !== idCol && k !== timeCol && k !== valueCol);
  if (valueCol === null) {
    const candidates = rest.filter((k) => !covNames.has(header[k]));
    if (candidates.length !== 1) {
      throw new CsvError(`no value column: name it 'value' (columns: ${header.join(", ")})`);
    }
    valueCol = candidates[0];
  }
  const others = rest.filter((k) => k !== valueCol);
  for (const k of others) {
    if (!covNames.has(header[k])) {
      const known = covs.length ? covs.map((c) => c.name).join(", ") : "none";
      throw new CsvError(
        `column '${header[k]}' is not a covariate of model ${model.name} (its covariates: ${known})`);
    }
  }
  for (const c of covs) {
    if (!header.includes(c.name)) {
      throw new CsvError(`model ${model.name} needs the ${c.role} covariate '${c.name}': ` +
        "add a column of that name");
    }
  }
  const needsTimes = model.covariates && model.covariates.needs_timestamps;
  if (needsTimes && timeCol === null) {
    throw new CsvError(`model ${model.name} reads the calendar: add a 'timestamp' column`);
  }
  // Rows grouped by id, in file order.
  const groups = new Map();
  rows.slice(1).forEach((r, k) => {
    const line = k + 2;
    if (r.length !== header.length) {
      throw new CsvError(`row ${line} has ${r.length} fields, the header ${header.length}`);
    }
    const id = idCol === null ? null : r[idCol].trim();
    if (idCol !== null && id === "") throw new CsvError(`row ${line}: the id is empty`);
    const key = id === null ? "" : id;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push({ r, line });
  });
  const futureCovs = covs.filter((c) => c.role === "future");
  const series = [];
  let futureSteps = null;
  for (const [key, items] of groups) {
    const values = items.map(({ r, line }) => number(r[valueCol], line, header[valueCol]));
    let last = values.length - 1;
    while (last >= 0 && values[last] === null) last -= 1;
    if (last < 0) throw new CsvError(`series ${key || "in the file"} has no values`);
    const past = items.slice(0, last + 1), future = items.slice(last + 1);
    const entry = { history: values.slice(0, last + 1) };
    if (idCol !== null) entry.id = key;
    if (timeCol !== null) entry.timestamps = past.map(({ r }) => r[timeCol].trim());
    for (const c of covs) {
      const k = header.indexOf(c.name);
      if (c.role === "static") {
        const raw = items[0].r[k].trim();
        entry.static_covariates = entry.static_covariates || {};
        entry.static_covariates[c.name] = c.kind === "categorical" ? raw : number(raw, items[0].line, c.name);
        continue;
      }
      const vals = past.map(({ r, line }) => number(r[k], line, c.name));
      const gap = vals.indexOf(null);
      if (gap >= 0) throw new CsvError(`row ${past[gap].line}, column '${c.name}': no value`);
      entry.past_covariates = entry.past_covariates || {};
      entry.past_covariates[c.name] = vals;
      if (c.role === "future") {
        const ahead = future.map(({ r, line }) => number(r[k], line, c.name));
        const hole = ahead.indexOf(null);
        if (hole >= 0) throw new CsvError(`row ${future[hole].line}, column '${c.name}': no value`);
        entry.future_covariates = entry.future_covariates || {};
        entry.future_covariates[c.name] = ahead;
      }
    }
    if (futureCovs.length) {
      if (!future.length) {
        throw new CsvError(`series ${key || "in the file"}: model ${model.name} needs future ` +
          `covariates (${futureCovs.map((c) => c.name).join(", ")}) for each horizon step: add ` +
          "rows after the last value with an empty value and those columns filled");
      }
      if (futureSteps !== null && future.length !== futureSteps) {
        throw new CsvError("every series needs as many future rows as the others");
      }
      futureSteps = future.length;
    }
    series.push(entry);
  }
  const body = { model: model.name, series };
  body.horizon = futureSteps !== null ? futureSteps : horizon;
  if (levels.length) body.levels = levels;
  return body;
}

// The answer as CSV: id, step, timestamp, forecast, each interval's lower and upper.
export function answerCsv(answer) {
  const levels = new Set();
  for (const f of answer.forecasts) Object.keys(f.intervals || {}).forEach((l) => levels.add(l));
  const order = [...levels].sort((a, b) => Number(a) - Number(b));
  const head = ["id", "step", "timestamp", "forecast",
    ...order.flatMap((l) => [`lower_${l}`, `upper_${l}`]), "method"];
  const quote = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = [head.join(",")];
  for (const f of answer.forecasts) {
    f.forecast.forEach((y, k) => {
      const band = order.flatMap((l) => {
        const i = (f.intervals || {})[l];
        return i ? [i.lower[k], i.upper[k]] : ["", ""];
      });
      const t = f.timestamps ? f.timestamps[k] : "";
      lines.push([quote(String(f.id)), k + 1, t, y, ...band, f.method || ""].join(","));
    });
  }
  return lines.join("\n") + "\n";
}

// The /v1 API, as the console reads it: one fetch helper, errors as readable text.

export class ApiError extends Error {}

// "series.0.history.3: Input should be a valid number" from an ErrorResponse body.
export function describeError(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const where = (d.loc || []).filter((p) => p !== "body").join(".");
        const who = d.id !== undefined && d.id !== null ? `series ${d.id}: ` : "";
        return `${who}${where ? where + ": " : ""}${d.msg}`;
      })
      .join("\n");
  }
  return `HTTP ${status}`;
}

const RETRIES = 2;
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

export async function api(path, { method = "GET", body, key } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const { response, data } = await call(path, method, body, key);
    // A reading busy or overloaded service says when to come back: do, a couple of times.
    const wait = Number(response.headers.get("Retry-After"));
    if (response.status === 503 && method === "GET" && attempt < RETRIES && wait >= 0 && wait <= 5) {
      await sleep(1000 * Math.max(wait, 0.2));
      continue;
    }
    if (!response.ok) throw new ApiError(describeError(response.status, data));
    return data;
  }
}

async function call(path, method, body, key) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["X-API-Key"] = key;
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(`the service did not answer (${err.message})`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { response, data };
}

export const enc = encodeURIComponent;

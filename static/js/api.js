// The HTTP API as the page uses it: one error type that knows the field at
// fault, and an API key asked for once (kept for the browser session) when the
// server answers 401.

const KEY = "fugue.apiKey";

export class ApiProblem extends Error {
  constructor(status, body, retryAfter) {
    const error = body?.error ?? {};
    super(error.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error.code ?? "http_error";
    this.field = error.details?.field ?? null;
    this.retryAfter = retryAfter ?? error.details?.retry_after_secs ?? null;
  }

  // Words for a person, with what to do about a busy server.
  describe() {
    if (this.code === "too_many_requests") {
      return `The server is busy: ${this.message} Try again in ${this.retryAfter ?? "a few"} s.`;
    }
    return this.message;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

function askForKey() {
  const key = window.prompt("This fugue server needs an API key:");
  if (key) sessionStorage.setItem(KEY, key.trim());
  return Boolean(key);
}

export async function api(path, { method = "GET", json, form, as = "json" } = {}) {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const headers = {};
    const key = apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    const response = await fetch(path, { method, headers, body });
    if (response.status === 401 && attempt === 0 && askForKey()) continue;
    if (!response.ok) {
      const detail = await response.json().catch(() => null);
      throw new ApiProblem(response.status, detail, response.headers.get("retry-after"));
    }
    if (response.status === 204) return null;
    return as === "blob" ? response.blob() : response.json();
  }
  throw new ApiProblem(401, { error: { message: "An API key is needed." } });
}

// A WebSocket to the API; the key travels as the `bearer, <key>` subprotocols
// because browsers cannot set headers on WebSockets.
export function socket(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const key = apiKey();
  return key ? new WebSocket(url, ["bearer", key]) : new WebSocket(url);
}

// Shows each error next to the control it is about; returns what found no home.
export function showError(problem, fields, fallback) {
  const field = (problem.field ?? "").split(/[.[]/)[0];
  const home = document.getElementById(`error-${fields[field] ?? field}`);
  const target = home ?? fallback;
  target.textContent = problem.describe ? problem.describe() : String(problem.message ?? problem);
  return target;
}

export function clearErrors(container) {
  for (const element of container.querySelectorAll(".error")) element.textContent = "";
}

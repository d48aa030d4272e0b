// The operator console: live figures by polling (ETag), the operator's state, log-in per queue,
// pause and wrap-up, the directory as you type with keyboard navigation, missed callers, history.
// Vanilla JS; the browser phone lives behind phone.js.
import { createDevice } from "./phone.js";

const root = document.getElementById("console");
const API = root.dataset.api;
const HEARTBEAT_MS = Number(root.dataset.heartbeat || 15) * 1000;
const POLL_MS = 1500;
const T = JSON.parse(document.getElementById("console-strings").textContent);
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

let etag = "";
let live = null;
let clockOffsetMs = 0; // server now - browser now
let missedOpen = -1;
let lastState = null;
const device = createDevice(null);

// --- talking to the API ----------------------------------------------------------------------

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    window.location.reload(); // the session ended: the page sends us to log in
    throw new Error("login required");
  }
  const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || T.error);
  return data;
}

function showError(message) {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.hidden = false;
  notice.classList.add("error");
}

function showNotice(message) {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.hidden = false;
  notice.classList.remove("error");
}

async function act(method, path, body) {
  try {
    const data = await api(method, path, body);
    document.getElementById("notice").hidden = true;
    if (data.operator) renderOperator(data.operator);
    etag = ""; // see the change at once
    poll();
    return data;
  } catch (error) {
    showError(error.message);
    return null;
  }
}

// --- time --------------------------------------------------------------------------------------

function serverNow() {
  return Date.now() + clockOffsetMs;
}

function waitText(sinceIso) {
  if (!sinceIso) return "–";
  const seconds = Math.max(0, Math.floor((serverNow() - Date.parse(sinceIso)) / 1000));
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return `${m}:${s}`;
}

function tick() {
  document.querySelectorAll("[data-since]").forEach((el) => {
    el.textContent = waitText(el.dataset.since);
  });
  if (live && live.operator.state === "wrap_up" && live.operator.wrap_up_until) {
    const left = Math.max(0, Math.ceil((Date.parse(live.operator.wrap_up_until) - serverNow()) / 1000));
    document.getElementById("state-detail").textContent = T.wrap_left.replace("{seconds}", left);
  }
}

// --- live ----------------------------------------------------------------------------------------

async function poll() {
  try {
    const headers = { Accept: "application/json" };
    if (etag) headers["If-None-Match"] = etag;
    const response = await fetch(`${API}/live`, { headers, credentials: "same-origin" });
    document.getElementById("connection").hidden = true;
    if (response.status === 401) return window.location.reload();
    if (response.status === 304) return;
    if (!response.ok) throw new Error(T.error);
    etag = response.headers.get("ETag") || "";
    live = await response.json();
    clockOffsetMs = Date.parse(live.now) - Date.now();
    render(live);
  } catch (_error) {
    document.getElementById("connection").hidden = false;
  }
}

function render(data) {
  renderOperator(data.operator);
  data.queues.forEach(renderQueue);
  if (data.missed_open !== missedOpen) {
    missedOpen = data.missed_open;
    loadMissed();
  }
  tick();
}

function renderOperator(op) {
  const bar = document.querySelector(".state-bar");
  bar.className = `state-bar state-${op.state}`;
  document.getElementById("state-label").textContent = T.states[op.state] || op.state;
  document.getElementById("state-detail").textContent = op.state === "paused" ? op.pause_reason || "" : "";
  document.querySelectorAll("#action-bar [data-when]").forEach((el) => {
    el.hidden = !el.dataset.when.split(" ").includes(op.state);
  });
  document.querySelectorAll('[data-action="toggle-queue"]').forEach((button) => {
    const id = Number(button.dataset.queueId);
    button.setAttribute("aria-pressed", op.queue_ids.includes(id) ? "true" : "false");
  });
  renderOffer(op.offer);
  if (op.notice_pending) showLoggedOutNotice();
  if (lastState && lastState !== op.state && ["wrap_up", "available"].includes(op.state)) loadHistory();
  lastState = op.state;
}

async function showLoggedOutNotice() {
  const me = await api("GET", "/me").catch(() => null);
  if (me && me.logged_out) showNotice(me.logged_out.message);
}

function renderOffer(offer) {
  const panel = document.getElementById("offer-panel");
  panel.hidden = !offer;
  if (!offer) return;
  document.getElementById("offer-number").textContent = offer.caller_number;
  const queue = live && live.queues.find((q) => q.id === offer.queue_id);
  document.getElementById("offer-queue").textContent = queue ? queue.name : "";
  document.getElementById("offer-wait").dataset.since = offer.waiting_since;
  document.getElementById("offer-accept").disabled = !device;
  document.getElementById("offer-decline").disabled = !device;
}

function renderQueue(queue) {
  const li = document.querySelector(`.console-queue[data-queue-id="${queue.id}"]`);
  if (!li) return; // a queue made visible after the page loaded shows on the next reload
  const set = (name, value) => {
    const el = li.querySelector(`[data-figure="${name}"]`);
    if (el) el.textContent = value;
  };
  set("callers_waiting", queue.callers_waiting);
  set("operators_logged_in", queue.operators_logged_in);
  set("operators_free", queue.operators_free);
  const longest = li.querySelector('[data-figure="longest_wait"]');
  if (queue.longest_waiting_since) longest.dataset.since = queue.longest_waiting_since;
  else {
    delete longest.dataset.since;
    longest.textContent = "–";
  }
  const list = li.querySelector("[data-callers]");
  list.replaceChildren(
    ...queue.callers.map((caller) => {
      const item = document.createElement("li");
      item.className = `caller caller-${caller.state}`;
      const number = document.createElement("span");
      number.className = "number";
      number.textContent = caller.number;
      const wait = document.createElement("span");
      wait.className = "wait";
      wait.dataset.since = caller.waiting_since;
      item.append(number, wait);
      if (caller.state === "offered") {
        const ringing = document.createElement("span");
        ringing.className = "pill yes";
        ringing.textContent = T.ringing;
        item.append(ringing);
      }
      return item;
    }),
  );
}

// --- actions -------------------------------------------------------------------------------------

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-action]");
  if (!button) return;
  const action = button.dataset.action;
  if (action === "toggle-queue") {
    const on = button.getAttribute("aria-pressed") === "true";
    act("POST", `/queues/${button.dataset.queueId}/${on ? "logout" : "login"}`);
  } else if (action === "pause") {
    act("POST", "/me/pause", { reason: document.getElementById("pause-reason").value });
  } else if (action === "resume") {
    act("POST", "/me/resume");
  } else if (action === "wrap-up-end") {
    act("POST", "/me/wrap-up/end");
  } else if (action === "wrap-up-extend") {
    act("POST", "/me/wrap-up/extend", { seconds: 30 });
  } else if (action === "handled") {
    act("POST", `/missed/${button.dataset.id}/handled`).then(loadMissed);
  }
});

document.getElementById("action-bar").addEventListener("submit", (event) => event.preventDefault());
document.getElementById("pause-reason").addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    document.querySelector('[data-action="pause"]').click();
  }
});

// --- missed callers and history ------------------------------------------------------------------

function row(...parts) {
  const li = document.createElement("li");
  li.className = "row";
  li.append(...parts.filter(Boolean));
  return li;
}

function span(text, className) {
  const el = document.createElement("span");
  el.textContent = text;
  if (className) el.className = className;
  return el;
}

async function loadMissed() {
  const data = await api("GET", "/missed").catch(() => null);
  if (!data) return;
  const list = document.getElementById("missed-list");
  list.replaceChildren(
    ...data.missed.map((m) => {
      const call = document.createElement("a");
      call.href = `tel:${m.number}`;
      call.className = "button";
      call.textContent = T.call_back;
      const done = document.createElement("button");
      done.type = "button";
      done.dataset.action = "handled";
      done.dataset.id = m.id;
      done.textContent = T.handled;
      const when = new Date(m.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      return row(
        span(m.number, "number"),
        span(`${T.reasons[m.reason] || m.reason} · ${m.queue_name || ""} · ${when}`, "muted"),
        m.earlier_open ? span(T.earlier.replace("{count}", m.earlier_open), "pill no") : null,
        call,
        done,
      );
    }),
  );
  document.getElementById("missed-count").textContent = data.missed.length ? `(${data.missed.length})` : "";
  document.getElementById("missed-empty").hidden = data.missed.length > 0;
}

async function loadHistory() {
  const data = await api("GET", "/history?limit=10").catch(() => null);
  if (!data) return;
  document.getElementById("history-list").replaceChildren(
    ...data.calls.map((c) => {
      const when = c.answered_at
        ? new Date(c.answered_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : "";
      const to = c.transfers.length ? ` → ${c.transfers.at(-1).to_name || c.transfers.at(-1).to_number}` : "";
      return row(
        span(c.caller_number, "number"),
        span(`${when} · ${c.queue_name || ""}`, "muted"),
        span(`${T.outcomes[c.outcome] || c.outcome}${to}`, "pill yes"),
      );
    }),
  );
  document.getElementById("history-empty").hidden = data.calls.length > 0;
}

// --- directory -----------------------------------------------------------------------------------

const search = document.getElementById("directory-q");
const results = document.getElementById("directory-results");
const detail = document.getElementById("directory-detail");
let hits = [];
let active = -1;
let searchTimer = null;
let searchSeq = 0;

function availabilityText(a) {
  let text = T[a.state] || a.state;
  if (a.on_call) text += ` (${T.on_call})`;
  if (a.note) text += ` – ${a.note}`;
  if (a.until_local) text += ` ${T.until.replace("{time}", a.until_local)}`;
  return text;
}

async function runSearch() {
  const seq = ++searchSeq;
  const data = await api("GET", `/directory?q=${encodeURIComponent(search.value)}`).catch(() => null);
  if (!data || seq !== searchSeq) return; // an older answer arriving late is dropped
  hits = data.results;
  active = hits.length ? 0 : -1;
  renderResults();
}

function renderResults() {
  search.setAttribute("aria-expanded", hits.length ? "true" : "false");
  if (!hits.length) {
    results.replaceChildren(span(T.no_results, "muted"));
    search.removeAttribute("aria-activedescendant");
    return;
  }
  results.replaceChildren(
    ...hits.map((hit, i) => {
      const li = document.createElement("li");
      li.id = `dir-${hit.id}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", i === active ? "true" : "false");
      li.className = `hit avail-${hit.availability.state}`;
      li.append(
        span(hit.name, "name"),
        span([hit.title, hit.department].filter(Boolean).join(", "), "muted"),
        span(availabilityText(hit.availability), "availability"),
      );
      li.addEventListener("click", () => select(i));
      return li;
    }),
  );
  if (active >= 0) {
    search.setAttribute("aria-activedescendant", `dir-${hits[active].id}`);
    document.getElementById(`dir-${hits[active].id}`).scrollIntoView({ block: "nearest" });
  }
}

function select(i) {
  active = i;
  renderResults();
  const hit = hits[i];
  detail.hidden = false;
  detail.replaceChildren();
  const h3 = document.createElement("h3");
  h3.textContent = hit.name;
  detail.append(h3, span([hit.title, hit.department].filter(Boolean).join(", "), "muted"));
  for (const number of [hit.phone_number, hit.mobile_number].filter(Boolean)) {
    const a = document.createElement("a");
    a.href = `tel:${number}`;
    a.className = "button";
    a.textContent = number;
    detail.append(a);
  }
  if (hit.email) {
    const a = document.createElement("a");
    a.href = `mailto:${hit.email}`;
    a.textContent = hit.email;
    detail.append(a);
  }
  detail.append(span(availabilityText(hit.availability), `availability avail-${hit.availability.state}`));
  if (hit.may_edit) detail.append(availabilityForm(hit));
}

function availabilityForm(hit) {
  const form = document.createElement("form");
  form.className = "availability-form";
  form.innerHTML = `
    <fieldset><legend></legend>
      <select name="availability"><option value="free"></option><option value="busy"></option><option value="away"></option></select>
      <input name="note" maxlength="200"> <input name="until" placeholder="13:00" size="6">
      <button type="submit"></button></fieldset>`;
  form.querySelector("legend").textContent = T.set_availability;
  for (const option of form.querySelectorAll("option")) option.textContent = T[option.value];
  form.availability.value = hit.availability.state;
  form.note.placeholder = T.note;
  form.note.setAttribute("aria-label", T.note);
  form.until.setAttribute("aria-label", T.until_label);
  form.querySelector("button").textContent = T.save;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = await act("PATCH", `/directory/${hit.id}/availability`, {
      availability: form.availability.value,
      note: form.note.value,
      until: form.until.value,
    });
    if (data) {
      hits[active] = data.entry;
      select(active);
    }
  });
  return form;
}

search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 80);
});

search.addEventListener("keydown", (event) => {
  if (event.key === "ArrowDown" && hits.length) {
    event.preventDefault();
    active = (active + 1) % hits.length;
    renderResults();
  } else if (event.key === "ArrowUp" && hits.length) {
    event.preventDefault();
    active = (active - 1 + hits.length) % hits.length;
    renderResults();
  } else if (event.key === "Enter" && active >= 0) {
    event.preventDefault();
    select(active);
  } else if (event.key === "Escape") {
    search.value = "";
    hits = [];
    results.replaceChildren();
    detail.hidden = true;
  }
});

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    search.focus();
    search.select();
  }
});

// --- start ---------------------------------------------------------------------------------------

poll();
loadMissed();
loadHistory();
setInterval(poll, POLL_MS);
setInterval(tick, 1000);
setInterval(() => api("POST", "/me/heartbeat").catch(() => null), HEARTBEAT_MS);
api("POST", "/me/heartbeat").catch(() => null);

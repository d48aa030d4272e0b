// The operator console: live figures by polling (ETag), the operator's state, log-in per queue,
// pause and wrap-up, the directory as you type with keyboard navigation, missed callers, history.
// The browser phone (phone.js): answer, decline, mute, hang up; blind transfer to a colleague from the
// directory with the camp-on and recall shown (GET /api/v1/calls/<id>), or a consult first (the caller
// on hold; Connect with C, Back to the caller with R). Vanilla JS.
import { createDevice } from "./phone.js";

const root = document.getElementById("console");
const API = root.dataset.api;
const HEARTBEAT_MS = Number(root.dataset.heartbeat || 15) * 1000;
const POLL_MS = 1500;
const T = JSON.parse(document.getElementById("console-strings").textContent);
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const PLURAL = new Intl.PluralRules(document.documentElement.lang || "sv");

// A count in words, in the page's language: forms = {one, other} from ngettext.
function plural(forms, count) {
  return (forms[PLURAL.select(count)] || forms.other).replaceAll("{count}", count);
}

let etag = "";
let live = null;
let clockOffsetMs = 0; // server now - browser now
let missedOpen = -1;
let lastState = null;
let phone = null;
let phoneRinging = null; // {callerNumber} while this browser rings

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
  // An action of the console: shows its error in the notice, refreshes the live view.
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
  renderCall(op);
  if (op.notice_pending) showLoggedOutNotice();
  if (lastState && lastState !== op.state && ["wrap_up", "available"].includes(op.state)) loadHistory();
  lastState = op.state;
}

async function showLoggedOutNotice() {
  const me = await api("GET", "/me").catch(() => null);
  if (me && me.logged_out) showNotice(me.logged_out.message);
}

function queueName(queueId) {
  const queue = live && live.queues.find((q) => q.id === queueId);
  return queue ? queue.name : "";
}

function renderOffer(offer) {
  const panel = document.getElementById("offer-panel");
  const ringingHere = Boolean(phone && phone.ringing);
  panel.hidden = !offer && !ringingHere;
  document.getElementById("offer-accept").disabled = !ringingHere;
  document.getElementById("offer-decline").disabled = !ringingHere;
  const recall = document.getElementById("offer-recall");
  recall.hidden = true;
  if (!offer) {
    if (ringingHere && phoneRinging) document.getElementById("offer-number").textContent = phoneRinging.callerNumber;
    return;
  }
  document.getElementById("offer-number").textContent = offer.caller_number;
  document.getElementById("offer-queue").textContent = queueName(offer.queue_id);
  document.getElementById("offer-wait").dataset.since = offer.waiting_since;
  const t = tracked && tracked.call_id === offer.call_id && tracked.transfer;
  if (t && t.state === "recalled") {
    recall.textContent = T.came_back.replace("{name}", transferName(t)).replace("{reason}", recallReason(t));
    recall.hidden = false;
  }
}

// --- the call in progress --------------------------------------------------------------------------

let currentCall = null;

function renderCall(op) {
  const call = op.state === "on_call" ? op.current_call : null;
  const changed = Boolean(call) !== Boolean(currentCall);
  currentCall = call;
  document.getElementById("call-panel").hidden = !call;
  document.body.classList.toggle("on-call", Boolean(call));
  if (call) {
    document.getElementById("call-number").textContent = call.caller_number;
    document.getElementById("call-queue").textContent = queueName(call.queue_id);
    document.getElementById("call-duration").dataset.since = call.answered_at || "";
    const muted = Boolean(phone && phone.isMuted());
    document.getElementById("call-mute").setAttribute("aria-pressed", muted ? "true" : "false");
    renderAudioChoice();
  }
  if (changed && hits.length) renderResults(); // the Transfer buttons come and go with the call
}

function answer() {
  if (phone && phone.ringing) phone.accept();
}

function decline() {
  if (phone && phone.ringing) phone.decline();
}

function toggleMute() {
  if (!phone || !phone.connected) return;
  phone.mute(!phone.isMuted());
}

function hangUp() {
  if (phone && phone.connected) phone.hangUp();
  else if (currentCall) act("POST", `/calls/${currentCall.call_id}/hangup`);
}

function messageAboutCall() {
  const callId = (currentCall && currentCall.call_id) || (tracked && tracked.call_id);
  const entryId = tracked && tracked.transfer && tracked.transfer.directory_entry_id;
  const detail = {};
  if (callId) detail.call_id = callId;
  if (entryId) detail.directory_entry_id = entryId;
  document.dispatchEvent(new CustomEvent("koe:message", { detail }));
  const messages = document.getElementById("messages");
  messages.scrollIntoView({ behavior: "smooth", block: "start" });
  document.getElementById("msg-template").focus({ preventScroll: true });
}

function renderAudioChoice() {
  const box = document.getElementById("audio-choice");
  const outputs = phone ? phone.outputDevices() : [];
  const inputs = phone ? phone.inputDevices() : [];
  box.hidden = outputs.length === 0 && inputs.length === 0;
  const fill = (select, devices) => {
    const chosen = select.value;
    select.replaceChildren(...devices.map((d) => new Option(d.label || d.id, d.id)));
    if (chosen) select.value = chosen;
    select.hidden = devices.length === 0;
    select.previousElementSibling.hidden = devices.length === 0;
  };
  fill(document.getElementById("audio-output"), outputs);
  fill(document.getElementById("audio-input"), inputs);
}

document.getElementById("offer-accept").addEventListener("click", answer);
document.getElementById("offer-decline").addEventListener("click", decline);
document.getElementById("call-mute").addEventListener("click", toggleMute);
document.getElementById("call-hangup").addEventListener("click", hangUp);
document.getElementById("call-message").addEventListener("click", messageAboutCall);
document.getElementById("audio-output").addEventListener("change", (event) => {
  if (phone) phone.setOutputDevice(event.target.value).catch((error) => showError(error.message));
});
document.getElementById("audio-input").addEventListener("change", (event) => {
  if (phone) phone.setInputDevice(event.target.value).catch((error) => showError(error.message));
});
document.getElementById("transfer-number-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const number = document.getElementById("transfer-number").value.trim();
  const kind = event.submitter && event.submitter.value === "consult" ? "consult" : "blind";
  if (number) transfer({ to_number: number }, number, kind);
});

// --- the phone -------------------------------------------------------------------------------------

function phoneStatus(key, message) {
  const el = document.getElementById("phone-status");
  el.dataset.phone = key;
  el.textContent = (T.phone[key] || key).replace("{message}", message || "");
}

async function fetchToken() {
  return api("GET", "/token");
}

async function startPhone() {
  let info;
  try {
    info = await fetchToken();
  } catch (error) {
    phoneStatus("error", error.message);
    return;
  }
  phone = createDevice(info, { fetchToken });
  if (!phone) {
    phoneStatus(info.mode === "twilio" ? "missing_sdk" : "offline");
    return;
  }
  phone.on("registered", () => phoneStatus("ready"));
  phone.on("unregistered", () => phoneStatus("offline"));
  phone.on("error", (e) => phoneStatus("error", e.message));
  phone.on("incoming", (detail) => {
    phoneRinging = detail;
    renderOffer(live ? live.operator.offer : null);
    etag = "";
    poll();
  });
  const settle = () => {
    phoneRinging = null;
    renderOffer(live ? live.operator.offer : null);
    etag = "";
    poll();
  };
  phone.on("accept", settle);
  phone.on("cancel", settle);
  phone.on("reject", settle);
  phone.on("disconnect", settle);
  phone.on("mute", (muted) => {
    document.getElementById("call-mute").setAttribute("aria-pressed", muted ? "true" : "false");
  });
  phone.on("devices", renderAudioChoice);
  try {
    await phone.start();
  } catch (error) {
    phoneStatus("error", error.message);
  }
}

// --- transfers -------------------------------------------------------------------------------------

const TRACK_KEY = "koe.transfer";
const ACTIVE = new Set(["dialing", "consulting", "camped_on"]);
let tracked = JSON.parse(sessionStorage.getItem(TRACK_KEY) || "null"); // {call_id, transfer}
let transferTimer = null;

function transferName(t) {
  return t.to_name || t.to_number;
}

function recallReason(t) {
  return T.recall_reasons[t.recall_reason] || t.recall_reason || "";
}

function localTime(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
}

async function transfer(target, name, kind = "blind") {
  if (!currentCall) return;
  const data = await act("POST", `/calls/${currentCall.call_id}/transfer`, { ...target, kind });
  if (!data) return;
  tracked = { call_id: data.call.call_id, transfer: data.transfer, name };
  sessionStorage.setItem(TRACK_KEY, JSON.stringify(tracked));
  document.getElementById("transfer-number").value = "";
  renderTransfer();
  followTransfer();
}

async function followTransfer() {
  clearTimeout(transferTimer);
  if (!tracked) return;
  const data = await api("GET", `/calls/${tracked.call_id}`).catch(() => null);
  if (data) {
    const t = data.call.transfers.find((x) => x.id === tracked.transfer.id) || data.call.transfers.at(-1);
    if (t && t.state !== tracked.transfer.state) loadHistory();
    if (t) tracked.transfer = t;
    sessionStorage.setItem(TRACK_KEY, JSON.stringify(tracked));
    renderTransfer();
    if (live) renderOffer(live.operator.offer);
  }
  if (tracked && ACTIVE.has(tracked.transfer.state)) transferTimer = setTimeout(followTransfer, 1500);
}

function transferText(t) {
  if (t.kind !== "consult") return T.transfer_states[t.state] || t.state;
  if (t.state === "canceled") return T.consult_states[t.recall_reason] || T.consult_states.returned;
  // The operator hung up during the consult: the caller was recalled, not put back with them.
  if (t.state === "recalled" && t.recall_reason === "operator_left") return T.consult_states.operator_left;
  return T.consult_states[t.state] || t.state;
}

function renderTransfer() {
  const panel = document.getElementById("transfer-panel");
  panel.hidden = !tracked;
  renderConsultActions();
  if (!tracked) return;
  const t = tracked.transfer;
  panel.className = `card transfer-panel transfer-${t.state}`;
  const text = transferText(t).replace("{name}", transferName(t)).replace("{reason}", recallReason(t));
  document.getElementById("transfer-state").textContent = text;
  let detail = "";
  if (t.state === "camped_on" && t.camp_on_until) {
    detail = plural(T.attempts, t.attempts).replace("{time}", localTime(t.camp_on_until));
    if (t.next_attempt_at) detail += ` · ${T.next_try.replace("{time}", localTime(t.next_attempt_at))}`;
  } else if (t.state === "recalled") {
    detail = `${transferName(t)} · ${t.to_number}`;
  }
  document.getElementById("transfer-detail").textContent = detail;
  document.getElementById("transfer-dismiss").hidden = ACTIVE.has(t.state);
}

// --- consult: Connect / Back to the caller ---------------------------------------------------------

function consulting() {
  const t = tracked && tracked.transfer;
  return t && t.kind === "consult" && ACTIVE.has(t.state) ? t : null;
}

function renderConsultActions() {
  const t = consulting();
  const was = !document.getElementById("consult-actions").hidden;
  document.getElementById("consult-actions").hidden = !t;
  // No second transfer while consulting: the directory's and the number form's buttons go away.
  document.getElementById("transfer-number-form").hidden = Boolean(t);
  if (was !== Boolean(t) && hits.length) renderResults();
  // The colleague must have answered before the caller can be put through.
  document.getElementById("consult-connect").disabled = !t || t.state !== "consulting";
}

async function finishConsult(action) {
  const t = consulting();
  if (!t || (action === "connect" && t.state !== "consulting")) return;
  const data = await act("POST", `/calls/${tracked.call_id}/consult/${action}`);
  if (!data) return;
  tracked.transfer = data.transfer;
  sessionStorage.setItem(TRACK_KEY, JSON.stringify(tracked));
  renderTransfer();
  loadHistory();
}

document.getElementById("consult-connect").addEventListener("click", () => finishConsult("connect"));
document.getElementById("consult-return").addEventListener("click", () => finishConsult("return"));

document.getElementById("transfer-dismiss").addEventListener("click", () => {
  tracked = null;
  sessionStorage.removeItem(TRACK_KEY);
  renderTransfer();
});

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
        m.earlier_open ? span(plural(T.earlier, m.earlier_open), "pill no") : null,
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
      if (currentCall && !consulting() && (hit.phone_number || hit.mobile_number)) {
        const actions = document.createElement("span");
        actions.className = "hit-actions";
        actions.append(consultButton(hit, "hit-consult"), transferButton(hit, "hit-transfer"));
        li.append(actions);
      }
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
  if (currentCall && !consulting() && (hit.phone_number || hit.mobile_number)) {
    detail.append(transferButton(hit, "big accept"), consultButton(hit, "big"));
  }
  if (hit.may_edit) detail.append(availabilityForm(hit));
}

function transferButton(hit, className) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = className === "hit-transfer" ? T.transfer : T.transfer_to.replace("{name}", hit.name);
  button.setAttribute("aria-label", T.transfer_to.replace("{name}", hit.name));
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    transfer({ directory_entry_id: hit.id }, hit.name);
  });
  return button;
}

function consultButton(hit, className) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.textContent = className === "hit-consult" ? T.consult : T.consult_with.replace("{name}", hit.name);
  button.setAttribute("aria-label", T.consult_with.replace("{name}", hit.name));
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    transfer({ directory_entry_id: hit.id }, hit.name, "consult");
  });
  return button;
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
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  if (event.key === "/") {
    event.preventDefault();
    search.focus();
    search.select();
  } else if (key === "a" && phone && phone.ringing) {
    event.preventDefault();
    answer();
  } else if (key === "d" && phone && phone.ringing) {
    event.preventDefault();
    decline();
  } else if (key === "m" && currentCall) {
    event.preventDefault();
    toggleMute();
  } else if (key === "h" && currentCall) {
    event.preventDefault();
    hangUp();
  } else if (key === "c" && consulting()) {
    event.preventDefault();
    finishConsult("connect");
  } else if (key === "r" && consulting()) {
    event.preventDefault();
    finishConsult("return");
  }
});

// --- start ---------------------------------------------------------------------------------------

poll();
loadMissed();
loadHistory();
startPhone();
renderTransfer();
followTransfer();
setInterval(poll, POLL_MS);
setInterval(tick, 1000);
setInterval(() => api("POST", "/me/heartbeat").catch(() => null), HEARTBEAT_MS);
api("POST", "/me/heartbeat").catch(() => null);

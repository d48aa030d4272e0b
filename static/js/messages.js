// Messages to a colleague, in the console: pick a template, see its fields filled from the call,
// edit them and the text, choose SMS or e-mail and the colleague, send, and follow the status.
// Vanilla JS over /api/v1 (templates, messages/preview, messages, directory, history).
// Other scripts may pre-select a colleague or a call:
//   document.dispatchEvent(new CustomEvent("koe:message", { detail: { directory_entry_id, name, call_id } }))

const root = document.getElementById("messages");
const API = root.dataset.api;
const T = JSON.parse(document.getElementById("messages-strings").textContent);
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const FINAL = new Set(["sent", "delivered", "undelivered", "failed"]);
const POLL_MS = 5000;

const $ = (id) => document.getElementById(id);
const form = $("msg-form");
const state = {
  entry: null, // { directory_entry_id, name, sms, email }
  edited: {}, // fields the operator typed: they win over the call's facts
  bodyEdited: false,
  subjectEdited: false,
  colleagues: new Map(), // datalist label -> directory entry
};
let pollTimer = null;

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
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || T.error);
  return data;
}

function showError(message) {
  $("msg-error").textContent = message || "";
  $("msg-error").hidden = !message;
}

function channel() {
  return form.querySelector('input[name="msg-channel"]:checked').value;
}

function setChannel(value) {
  form.querySelector(`input[name="msg-channel"][value="${value}"]`).checked = true;
  showChannel();
}

function showChannel() {
  const email = channel() === "email";
  form.querySelectorAll('[data-for="email"]').forEach((el) => {
    el.hidden = !email;
  });
  if (state.entry) $("msg-to").value = (email ? state.entry.email : state.entry.sms) || "";
  countSegments();
}

// GSM-7 or UCS-2, as the server counts it; only a hint while typing.
const GSM = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXT = "^{}\\[~]|€\f";

function countSegments() {
  const text = $("msg-body").value;
  const out = $("msg-segments");
  if (channel() !== "sms" || !text) {
    out.textContent = "";
    return;
  }
  const chars = [...text];
  const gsm = chars.every((c) => GSM.includes(c) || GSM_EXT.includes(c));
  const units = gsm
    ? chars.reduce((n, c) => n + (GSM_EXT.includes(c) ? 2 : 1), 0)
    : chars.reduce((n, c) => n + (c.codePointAt(0) > 0xffff ? 2 : 1), 0);
  const [single, part] = gsm ? [160, 153] : [70, 67];
  const count = units <= single ? 1 : Math.ceil(units / part);
  const forms = T.segments_plural;
  const form = forms[new Intl.PluralRules(document.documentElement.lang || "sv").select(chars.length)];
  out.textContent = (form || forms.other).replace("{count}", count).replace("{chars}", chars.length);
}

// --- choices ---------------------------------------------------------------------------------------

async function loadTemplates() {
  const data = await api("GET", "/templates").catch(() => null);
  if (!data) return;
  const select = $("msg-template");
  select.replaceChildren(select.options[0]);
  data.templates.forEach((t) => select.append(new Option(t.name, t.id)));
}

async function loadCalls() {
  const data = await api("GET", "/history?limit=10").catch(() => null);
  if (!data) return;
  const select = $("msg-call");
  const chosen = select.value;
  select.replaceChildren(select.options[0]);
  data.calls.forEach((c) => {
    const when = c.answered_at
      ? new Date(c.answered_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : "";
    select.append(new Option(`${c.caller_number} ${when}`.trim(), c.call_id));
  });
  select.value = chosen;
}

let searchTimer = null;
function searchColleagues() {
  const typed = $("msg-colleague").value;
  const known = state.colleagues.get(typed);
  if (known) {
    chooseColleague(known);
    return;
  }
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const data = await api("GET", `/directory?q=${encodeURIComponent(typed)}&limit=8`).catch(() => null);
    if (!data) return;
    state.colleagues.clear();
    $("msg-colleagues").replaceChildren(
      ...data.results.map((e) => {
        const label = [e.name, e.department].filter(Boolean).join(", ");
        state.colleagues.set(label, e);
        return new Option(label);
      }),
    );
  }, 150);
}

function chooseColleague(entry) {
  state.entry = {
    directory_entry_id: entry.id,
    name: entry.name,
    sms: entry.mobile_number || entry.phone_number,
    email: entry.email,
  };
  if (!state.entry.sms && state.entry.email) setChannel("email");
  else showChannel();
  preview();
}

// --- preview ---------------------------------------------------------------------------------------

function renderFields(values, used) {
  const box = $("msg-fields");
  box.replaceChildren(
    ...used.map((name) => {
      const label = document.createElement("label");
      label.textContent = T.fields[name] || name;
      const input = document.createElement("input");
      input.value = values[name] || "";
      input.dataset.field = name;
      input.addEventListener("input", () => {
        state.edited[name] = input.value;
        previewSoon();
      });
      label.append(input);
      return label;
    }),
  );
}

let previewTimer = null;
function previewSoon() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, 250);
}

async function preview() {
  const templateId = Number($("msg-template").value);
  if (!templateId) return;
  const body = { template_id: templateId, fields: state.edited };
  if ($("msg-call").value) body.call_id = Number($("msg-call").value);
  if (state.entry) body.directory_entry_id = state.entry.directory_entry_id;
  try {
    const p = await api("POST", "/messages/preview", body);
    showError("");
    const focused = document.activeElement && document.activeElement.dataset.field;
    if (!focused) renderFields(p.fields, p.used_fields);
    if (!state.bodyEdited) $("msg-body").value = p.body;
    if (!state.subjectEdited) $("msg-subject").value = p.subject;
    if (p.template.channel !== "any") setChannel(p.template.channel);
    countSegments();
  } catch (error) {
    showError(error.message);
  }
}

// --- send and the sent list ---------------------------------------------------------------------

async function send(event) {
  event.preventDefault();
  const body = { channel: channel(), body: $("msg-body").value, to: $("msg-to").value.trim() || null };
  if ($("msg-template").value) body.template_id = Number($("msg-template").value);
  if ($("msg-call").value) body.call_id = Number($("msg-call").value);
  if (state.entry) body.directory_entry_id = state.entry.directory_entry_id;
  if (body.channel === "email") body.subject = $("msg-subject").value;
  $("msg-send").disabled = true;
  try {
    await api("POST", "/messages", body);
    showError("");
    state.bodyEdited = false;
    state.subjectEdited = false;
    state.edited = {};
    $("msg-body").value = "";
    $("msg-subject").value = "";
    countSegments();
    loadSent();
  } catch (error) {
    showError(error.message);
  } finally {
    $("msg-send").disabled = false;
  }
}

function localTime(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

async function loadSent() {
  clearTimeout(pollTimer);
  const data = await api("GET", "/messages?limit=10").catch(() => null);
  if (!data) return;
  $("msg-sent").replaceChildren(
    ...data.messages.map((m) => {
      const item = document.createElement("li");
      const who = document.createElement("span");
      who.className = "number";
      who.textContent = `${m.to_name || m.to_address} · ${m.channel === "sms" ? "SMS" : "e-mail"}`;
      const when = document.createElement("span");
      when.className = "muted";
      when.textContent = `${localTime(m.created_at)} · ${m.body.slice(0, 60)}`;
      const status = document.createElement("span");
      const bad = m.status === "failed" || m.status === "undelivered" || m.error;
      status.className = `pill ${bad ? "no" : "yes"}`;
      status.textContent = T.statuses[m.status] || m.status;
      item.append(who, when, status);
      if (m.error) {
        const why = document.createElement("span");
        why.className = "muted";
        const retry = m.next_attempt_at ? ` (${T.retrying.replace("{time}", localTime(m.next_attempt_at))})` : "";
        why.textContent = m.error + retry;
        item.append(why);
      }
      return item;
    }),
  );
  $("msg-sent-empty").hidden = data.messages.length > 0;
  if (data.messages.some((m) => !FINAL.has(m.status))) pollTimer = setTimeout(loadSent, POLL_MS);
}

// --- wiring ------------------------------------------------------------------------------------------

$("msg-template").addEventListener("change", () => {
  state.edited = {};
  state.bodyEdited = false;
  state.subjectEdited = false;
  if (!$("msg-template").value) $("msg-fields").replaceChildren();
  preview();
});
$("msg-call").addEventListener("change", preview);
$("msg-colleague").addEventListener("input", searchColleagues);
$("msg-body").addEventListener("input", () => {
  state.bodyEdited = true;
  countSegments();
});
$("msg-subject").addEventListener("input", () => {
  state.subjectEdited = true;
});
form.querySelectorAll('input[name="msg-channel"]').forEach((el) => el.addEventListener("change", showChannel));
form.addEventListener("submit", send);
$("msg-call").addEventListener("focus", loadCalls);
document.addEventListener("koe:message", (event) => {
  const d = event.detail || {};
  if (d.call_id) {
    loadCalls().then(() => {
      $("msg-call").value = d.call_id;
      preview();
    });
  }
  if (d.directory_entry_id) {
    api("GET", `/directory/${d.directory_entry_id}`)
      .then((data) => {
        $("msg-colleague").value = data.entry.name;
        chooseColleague(data.entry);
      })
      .catch((error) => showError(error.message));
  }
});

showChannel();
loadTemplates();
loadCalls();
loadSent();

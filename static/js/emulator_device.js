// The Twilio Voice SDK's Device and Call, for emulator mode: the same interface subset, by polling
// the emulator's demo API (queue_app/sim/web.py, /emulator/demo/device/...). twilio.md §6.
//
//   const { token } = await (await fetch("/emulator/demo/token")).json();
//   const device = new Device(token);
//   device.on("incoming", (call) => { call.on("cancel", ...); call.accept(); });
//   await device.register();
//
// Device: register(), unregister(), destroy(), on/off(event), state, identity, calls, isBusy.
//   Events: registering, registered, unregistered, incoming(call), error(err), destroyed.
// Call: accept(), reject(), ignore(), disconnect(), mute(bool), isMuted(), status(), parameters,
//   customParameters (Map), direction. Events: accept, cancel, reject, disconnect, error, mute.
// A busy device (a call open) drops new invites silently, as allowIncomingWhileBusy=false does.

const BASE = "/emulator/demo";
const POLL_MS = 1000;

class Emitter {
  constructor() {
    this._handlers = new Map();
  }
  on(event, handler) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(handler);
    return this;
  }
  off(event, handler) {
    this._handlers.get(event)?.delete(handler);
    return this;
  }
  once(event, handler) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      handler(...args);
    };
    return this.on(event, wrapper);
  }
  emit(event, ...args) {
    for (const handler of [...(this._handlers.get(event) || [])]) {
      try {
        handler(...args);
      } catch (error) {
        console.error(error);
      }
    }
  }
  removeAllListeners() {
    this._handlers.clear();
  }
}

async function request(method, path, token, body) {
  const headers = { Accept: "application/json", "X-Device-Token": token };
  if (method !== "GET") headers["Content-Type"] = "application/json";
  const response = await fetch(BASE + path, {
    method,
    headers,
    credentials: "same-origin",
    body: method === "GET" ? undefined : JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

export class Call extends Emitter {
  static State = { Pending: "pending", Connecting: "connecting", Ringing: "ringing", Open: "open", Closed: "closed" };

  constructor(device, info) {
    super();
    this._device = device;
    this._muted = false;
    this._status = Call.State.Pending;
    this.direction = "INCOMING";
    this.parameters = { ...info.parameters };
    this.customParameters = new Map(
      Object.entries(info.parameters).filter(([key]) => !["CallSid", "From", "To", "ParentCallSid", "ParentFrom"].includes(key)),
    );
  }
  get sid() {
    return this.parameters.CallSid;
  }
  status() {
    return this._status;
  }
  isMuted() {
    return this._muted;
  }
  async accept() {
    if (this._status !== Call.State.Pending) return;
    this._status = Call.State.Connecting;
    try {
      await this._action("accept");
      this._status = Call.State.Open;
      this.emit("accept", this);
    } catch (error) {
      this._status = Call.State.Closed;
      this.emit("error", error);
    }
  }
  async reject() {
    if (this._status !== Call.State.Pending) return;
    this._close("reject");
    await this._action("reject").catch((error) => this.emit("error", error));
  }
  ignore() {
    // Local only: the Dial rings on until its timeout (twilio.md §6).
    if (this._status === Call.State.Pending) this._close(null);
  }
  async disconnect() {
    if (this._status === Call.State.Closed) return;
    const wasPending = this._status === Call.State.Pending;
    this._close(wasPending ? "reject" : "disconnect");
    await this._action("disconnect").catch((error) => this.emit("error", error));
  }
  mute(shouldMute = true) {
    this._muted = Boolean(shouldMute);
    this.emit("mute", this._muted, this);
  }
  _action(name) {
    return request("POST", `/device/calls/${encodeURIComponent(this.sid)}/${name}`, this._device._token);
  }
  _close(event) {
    if (this._status === Call.State.Closed) return;
    this._status = Call.State.Closed;
    this._device._forget(this);
    if (event) this.emit(event, this);
  }
  // The server's view of this leg, from the device's poll.
  _update(info) {
    if (this._status === Call.State.Closed) return;
    if (info.ended) {
      this._close(this._status === Call.State.Open ? "disconnect" : "cancel");
    }
  }
}

export class Device extends Emitter {
  static State = { Unregistered: "unregistered", Registering: "registering", Registered: "registered", Destroyed: "destroyed" };

  constructor(token, options = {}) {
    super();
    this._token = token;
    this._options = options;
    this._calls = new Map();
    this._ignored = new Set();
    this._timer = null;
    this.state = Device.State.Unregistered;
    this.identity = null;
  }
  get calls() {
    return [...this._calls.values()];
  }
  get isBusy() {
    return this.calls.some((call) => call.status() === Call.State.Open || call.status() === Call.State.Connecting);
  }
  async register() {
    if (this.state !== Device.State.Unregistered) throw new Error(`register() from state ${this.state}`);
    this.state = Device.State.Registering;
    this.emit("registering");
    try {
      const data = await request("POST", "/device/register", this._token);
      this.identity = data.identity;
      this.state = Device.State.Registered;
      this.emit("registered");
      this._poll();
    } catch (error) {
      this.state = Device.State.Unregistered;
      this.emit("error", error);
      throw error;
    }
  }
  async unregister() {
    clearTimeout(this._timer);
    if (this.state === Device.State.Registered) {
      await request("POST", "/device/unregister", this._token).catch(() => {});
    }
    this.state = Device.State.Unregistered;
    this.emit("unregistered");
  }
  updateToken(token) {
    this._token = token;
  }
  destroy() {
    for (const call of this.calls) call.status() === Call.State.Pending ? call.reject() : call.disconnect();
    this.unregister();
    this.state = Device.State.Destroyed;
    this.emit("destroyed");
    this.removeAllListeners();
  }
  _forget(call) {
    this._calls.delete(call.sid);
    this._ignored.add(call.sid);
  }
  async _poll() {
    if (this.state !== Device.State.Registered) return;
    try {
      const known = [...this._calls.keys()].join(",");
      const data = await request("GET", `/device/calls?known=${encodeURIComponent(known)}`, this._token);
      if (!data.registered) {
        // The server forgot us (a restart, a long pause): register again.
        await request("POST", "/device/register", this._token);
      }
      for (const info of data.calls || []) {
        const call = this._calls.get(info.sid);
        if (call) {
          call._update(info);
        } else if (!info.ended && !info.answered && !this._ignored.has(info.sid) && !this.isBusy) {
          const incoming = new Call(this, info);
          this._calls.set(info.sid, incoming);
          this.emit("incoming", incoming);
        }
      }
    } catch (error) {
      this.emit("error", error);
    }
    this._timer = setTimeout(() => this._poll(), POLL_MS);
  }
}

// The same entry point as the SDK path: a Device for `token`, or null without one.
export function createDevice(token) {
  return token ? new Device(token) : null;
}

if (typeof window !== "undefined") {
  window.KoeEmulator = { Device, Call, createDevice };
}

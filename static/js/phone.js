// The browser phone: the one boundary between the console and the Twilio Voice JavaScript SDK.
//
// With Twilio the console page loads /static/vendor/twilio.min.js (`make install` copies it from
// node_modules/@twilio/voice-sdk) and this module drives `new Twilio.Device(token, {...})`. In
// emulator mode the page loads /static/js/emulator_device.js instead, which offers the same Device and
// Call interface (window.KoeEmulator). `createDevice` chooses by the token's `mode` (GET /api/v1/token).
//
// The contract console.js relies on:
//   createDevice(tokenInfo, { fetchToken }) -> a Phone, or null when no phone is available
//     tokenInfo: the /api/v1/token answer {token, mode, ttl_seconds, refresh_before_seconds}
//     fetchToken(): Promise of a fresh tokenInfo (asked for before the token expires)
//   phone.start()                        register the device (Promise)
//   phone.on(event, handler)             "registered", "unregistered", "incoming" ({callerNumber}),
//                                        "cancel", "accept", "disconnect", "reject", "mute" (bool),
//                                        "error" ({message})
//   phone.accept(), phone.decline(), phone.hangUp(), phone.mute(bool), phone.isMuted()
//   phone.ringing, phone.connected       is a call offered / open in this browser
//   phone.outputDevices(), phone.setOutputDevice(id)   the speaker choice, where the browser allows it
//   phone.inputDevices(), phone.setInputDevice(id)     the microphone choice
//
// twilio.md §6: `reject()` makes the Dial see busy; a busy Device drops new invites silently.

const TOKEN_ERRORS = new Set([20101, 20104, 31204, 31205]);

class Emitter {
  constructor() {
    this._handlers = new Map();
  }
  on(event, handler) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(handler);
    return this;
  }
  emit(event, detail) {
    for (const handler of [...(this._handlers.get(event) || [])]) {
      try {
        handler(detail);
      } catch (error) {
        console.error(error);
      }
    }
  }
}

function sdkFor(mode) {
  if (mode === "emulator") return window.KoeEmulator ? window.KoeEmulator.Device : null;
  return window.Twilio && window.Twilio.Device ? window.Twilio.Device : null;
}

export class Phone extends Emitter {
  constructor(DeviceClass, tokenInfo, fetchToken) {
    super();
    this.mode = tokenInfo.mode;
    this._fetchToken = fetchToken;
    this._tokenInfo = tokenInfo;
    this._refreshTimer = null;
    this.call = null; // the incoming or open call
    const options = {
      closeProtection: true,
      codecPreferences: ["opus", "pcmu"],
      tokenRefreshMs: (tokenInfo.refresh_before_seconds || 60) * 1000,
      appName: "koe-console",
    };
    this.device = new DeviceClass(tokenInfo.token, options);
    this.device.on("registered", () => this.emit("registered"));
    this.device.on("unregistered", () => this.emit("unregistered"));
    this.device.on("incoming", (call) => this._incoming(call));
    this.device.on("tokenWillExpire", () => this.refreshToken());
    this.device.on("error", (error) => {
      if (error && TOKEN_ERRORS.has(error.code)) this.refreshToken();
      this.emit("error", { message: (error && error.message) || String(error) });
    });
    if (this.device.audio && typeof this.device.audio.on === "function") {
      this.device.audio.on("deviceChange", () => this.emit("devices"));
    }
  }

  async start() {
    await this.device.register();
    this._scheduleRefresh();
  }

  get ringing() {
    return Boolean(this.call && this.call.status() === "pending");
  }

  get connected() {
    return Boolean(this.call && ["open", "connecting", "reconnecting"].includes(this.call.status()));
  }

  // The SDK fires tokenWillExpire; the emulator's adapter does not, so a timer asks as well.
  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    const info = this._tokenInfo;
    const ms = Math.max(5, (info.ttl_seconds || 3600) - (info.refresh_before_seconds || 60)) * 1000;
    this._refreshTimer = setTimeout(() => this.refreshToken(), ms);
  }

  async refreshToken() {
    try {
      const info = await this._fetchToken();
      this._tokenInfo = info;
      this.device.updateToken(info.token);
      this._scheduleRefresh();
    } catch (error) {
      this.emit("error", { message: error.message });
      clearTimeout(this._refreshTimer);
      this._refreshTimer = setTimeout(() => this.refreshToken(), 15000);
    }
  }

  _incoming(call) {
    if (this.connected) return; // one call at a time (the SDK drops these itself)
    this.call = call;
    const params = call.parameters || {};
    const custom = call.customParameters || new Map();
    const done = (event) => () => {
      if (this.call === call) this.call = null;
      this.emit(event);
    };
    call.on("accept", () => this.emit("accept"));
    call.on("cancel", done("cancel"));
    call.on("reject", done("reject"));
    call.on("disconnect", done("disconnect"));
    call.on("mute", (muted) => this.emit("mute", muted));
    call.on("error", (error) => this.emit("error", { message: (error && error.message) || String(error) }));
    this.emit("incoming", {
      callerNumber: custom.get("caller") || params.ParentFrom || params.From || "",
      callSid: params.CallSid,
    });
  }

  accept() {
    if (this.ringing) this.call.accept();
  }

  decline() {
    if (this.ringing) this.call.reject();
  }

  hangUp() {
    if (this.call) this.call.disconnect();
  }

  mute(shouldMute) {
    if (this.call) this.call.mute(Boolean(shouldMute));
  }

  isMuted() {
    return Boolean(this.call && this.call.isMuted());
  }

  // --- audio devices (Voice SDK `device.audio`; the emulator has none) ---------------------------

  outputDevices() {
    const audio = this.device.audio;
    if (!audio || !audio.isOutputSelectionSupported) return [];
    return [...audio.availableOutputDevices.values()].map((d) => ({ id: d.deviceId, label: d.label }));
  }

  setOutputDevice(id) {
    const audio = this.device.audio;
    if (!audio || !audio.isOutputSelectionSupported) return Promise.resolve();
    return Promise.all([audio.speakerDevices.set(id), audio.ringtoneDevices.set(id)]);
  }

  inputDevices() {
    const audio = this.device.audio;
    if (!audio || !audio.availableInputDevices) return [];
    return [...audio.availableInputDevices.values()].map((d) => ({ id: d.deviceId, label: d.label }));
  }

  setInputDevice(id) {
    const audio = this.device.audio;
    return audio && audio.setInputDevice ? audio.setInputDevice(id) : Promise.resolve();
  }
}

// One function chooses: the SDK with Twilio, the emulator's adapter in emulator mode; null when the
// library is not loaded (e.g. `make install` has not copied the SDK) or there is no token.
export function createDevice(tokenInfo, { fetchToken } = {}) {
  if (!tokenInfo || !tokenInfo.token) return null;
  const DeviceClass = sdkFor(tokenInfo.mode);
  if (!DeviceClass) return null;
  return new Phone(DeviceClass, tokenInfo, fetchToken || (() => Promise.reject(new Error("no token source"))));
}

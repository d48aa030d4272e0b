// The browser phone: the boundary between the console and the Twilio Voice JavaScript SDK.
//
// NOT IMPLEMENTED HERE. Another engineer fills this module (issue 7 item 3): access tokens with a
// VoiceGrant (refreshed before expiry), device registration, incoming offers, accept/decline,
// mute, hang up, audio device choice; in emulator mode the same through the emulator's adapter.
//
// The contract console.js relies on:
//   createDevice(token) -> a device object, or null when no phone is available, with
//     device.on(event, handler)   events: "incoming" ({callerNumber, queueName, waitingSince}),
//                                 "cancel", "accept", "disconnect", "error" ({message})
//     device.accept(), device.decline(), device.hangUp(), device.mute(bool)
// console.js shows the incoming-offer panel from /api/v1/live (`operator.offer`) and enables its
// Answer/Decline buttons only when a device exists.

export function createDevice(_token) {
  return null;
}

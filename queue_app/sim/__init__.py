"""The local Twilio emulator: REST API, TwiML executor, simulated parties and clocks.

Module map: `clock` (virtual and real-time schedulers), `transport` (WSGI/HTTP, signatures),
`webhooks` (retries, error codes), `callbacks` (status callbacks, reorder/duplicate), `twiml`
(parser), `executor` (verbs per leg), `parties` (callers, devices, phones), `model` (records),
`emulator` (state and operations, `CallHandle`), `rest` (REST API), `http_client` (in-process
twilio-python client), `web` (the /emulator blueprint), `audio` (WAV).
"""

from .emulator import CallHandle, Emulator, Options
from .http_client import EmulatorHttpClient
from .parties import CallerScript, ClientDevice, PhoneNumber, Press
from .transport import HttpTransport, WsgiTransport, signature

__all__ = [
    "CallHandle",
    "CallerScript",
    "ClientDevice",
    "Emulator",
    "EmulatorHttpClient",
    "HttpTransport",
    "Options",
    "PhoneNumber",
    "Press",
    "WsgiTransport",
    "signature",
]

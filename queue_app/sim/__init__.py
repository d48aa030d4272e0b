"""The local Twilio emulator: REST API, TwiML executor, simulated parties and clocks."""

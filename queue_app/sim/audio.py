"""Small WAV helpers: a real file for each `<Record>`, and the length of a file `<Play>` fetched."""

from __future__ import annotations

import io
import math
import struct
import wave

SAMPLE_RATE = 8000  # Twilio records mono 8 kHz


def tone_wav(seconds: float, frequency: float = 440.0, rate: int = SAMPLE_RATE) -> bytes:
    """A mono 16-bit WAV of `seconds` of a quiet sine tone (a stand-in for the caller's voice)."""
    frames = max(0, int(seconds * rate))
    amplitude = 3000
    step = 2 * math.pi * frequency / rate
    samples = struct.pack(f"<{frames}h", *(int(amplitude * math.sin(step * i)) for i in range(frames)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    return buffer.getvalue()


def wav_duration(data: bytes) -> float | None:
    """Seconds of audio in a WAV file, or None if `data` is not a WAV file Python can read."""
    if not data.startswith(b"RIFF"):
        return None
    try:
        with wave.open(io.BytesIO(data), "rb") as audio:
            rate = audio.getframerate()
            return audio.getnframes() / rate if rate else None
    except (wave.Error, EOFError):
        return None

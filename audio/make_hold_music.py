"""Regenerate hold.wav: ten seconds of a soft two-chord pad, made here, so free to ship.

    python audio/make_hold_music.py

8 kHz, 16-bit mono PCM (telephone quality; Twilio plays WAV). Each chord swells in and out, so the
track loops without a click.
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 8000
SECONDS_PER_CHORD = 5.0
# A major 7 then D major 7, voiced low and close: calm, not a melody to get tired of.
CHORDS = ((220.00, 277.18, 329.63, 415.30), (146.83, 220.00, 277.18, 369.99))
PEAK = 0.22


def samples() -> list[int]:
    out: list[int] = []
    n = int(RATE * SECONDS_PER_CHORD)
    for chord in CHORDS:
        for i in range(n):
            t = i / RATE
            # Raised-cosine swell: silent at both ends of each chord.
            envelope = 0.5 - 0.5 * math.cos(2 * math.pi * i / n)
            tone = sum(
                math.sin(2 * math.pi * f * t) + 0.25 * math.sin(4 * math.pi * f * t) for f in chord
            ) / (len(chord) * 1.25)
            out.append(int(32767 * PEAK * envelope * tone))
    return out


def main() -> None:
    path = Path(__file__).with_name("hold.wav")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples()))


if __name__ == "__main__":
    main()

"""Is this upload a WAV or an MP3 file, and how long is it? Decided from the bytes, never the name.

- WAV: a RIFF/WAVE file with a `fmt ` chunk before its `data` chunk; the length is the data size
  divided by the byte rate of the header.
- MP3: an optional ID3v2 tag, then MPEG audio frames (MPEG-1, 2 or 2.5, layers I-III). Every frame
  header gives its bitrate, sample rate and padding, so the frame's length in bytes and in samples;
  the duration is the sum over the frames. At least two frames must follow each other at the offsets
  their headers promise (or the file must be a single whole frame), so text or an image that happens
  to contain 0xFFE0 is not taken for audio. A trailing ID3v1 tag ("TAG", 128 bytes) is allowed.

Pure: no Flask, no I/O. The service turns a refusal's `reason` into the message the admin reads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

# Defaults for an uploaded or recorded prompt; the app may override them (PROMPT_MAX_BYTES/SECONDS).
MAX_BYTES = 10 * 1024 * 1024
MAX_SECONDS = 600.0

Reason = Literal["empty", "too_large", "not_audio", "too_long"]

CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


class AudioRefused(ValueError):
    """The bytes are not a prompt Kö accepts; `reason` says why, `detail` carries the numbers."""

    def __init__(self, reason: Reason, detail: float | None = None) -> None:
        super().__init__(f"{reason}" + (f" ({detail:g})" if detail is not None else ""))
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class AudioInfo:
    format: Literal["wav", "mp3"]
    duration_seconds: float

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def extension(self) -> str:
        return self.format


# ---- WAV -------------------------------------------------------------------------------------------


def wav_duration(data: bytes) -> float | None:
    """Seconds of audio in a RIFF/WAVE file, or None when `data` is not one."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset, byte_rate = 12, 0
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = offset + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                return None
            audio_format, channels, rate, byte_rate, block_align, _bits = struct.unpack_from(
                "<HHIIHH", data, body
            )
            if channels == 0 or rate == 0 or byte_rate == 0 or block_align == 0 or audio_format == 0:
                return None
        elif chunk_id == b"data":
            if byte_rate == 0:
                return None  # no fmt chunk before the data: not a file a player can read
            # A streamed file may leave the size at 0 or 0xFFFFFFFF: count what is there.
            available = len(data) - body
            length = size if 0 < size <= available else available
            return length / byte_rate
        offset = body + size + (size & 1)  # chunks are padded to an even length
    return None


# ---- MP3 -------------------------------------------------------------------------------------------

_BITRATES = {  # kbit/s by (MPEG-1?, layer), index 1..14; 0 is "free format", 15 is invalid
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@dataclass(frozen=True, slots=True)
class Frame:
    length: int  # bytes, header included
    samples: int
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate


def mp3_frame(data: bytes, offset: int) -> Frame | None:
    """The MPEG audio frame whose header starts at `offset`, or None when there is none."""
    if offset + 4 > len(data) or data[offset] != 0xFF or data[offset + 1] & 0xE0 != 0xE0:
        return None
    b1, b2 = data[offset + 1], data[offset + 2]
    version = (b1 >> 3) & 0x3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
    layer = 4 - ((b1 >> 1) & 0x3)  # bits 11 -> I, 10 -> II, 01 -> III, 00 -> reserved
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 0x3, (b2 >> 1) & 0x1
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _SAMPLE_RATES[version][rate_index]
    if layer == 1:
        return Frame((12 * bitrate // rate + padding) * 4, 384, rate)
    if layer == 2:
        return Frame(144 * bitrate // rate + padding, 1152, rate)
    per_frame = 1152 if mpeg1 else 576
    return Frame((per_frame // 8) * bitrate // rate + padding, per_frame, rate)


def _id3v2_end(data: bytes) -> int:
    """The offset just after a leading ID3v2 tag (0 when there is none)."""
    if len(data) < 10 or data[:3] != b"ID3" or data[3] == 0xFF or data[4] == 0xFF:
        return 0
    size_bytes = data[6:10]
    if any(b & 0x80 for b in size_bytes):
        return 0
    size = (size_bytes[0] << 21) | (size_bytes[1] << 14) | (size_bytes[2] << 7) | size_bytes[3]
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


def mp3_duration(data: bytes) -> float | None:
    """Seconds of audio in an MP3 (MPEG audio) file, or None when `data` is not one."""
    offset = _id3v2_end(data)
    has_tag = offset > 0
    end = len(data)
    if end - offset >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128  # ID3v1 at the end
    first = mp3_frame(data, offset)
    if first is None or offset + first.length > end:
        return None
    frames, seconds = 0, 0.0
    while offset < end:
        frame = mp3_frame(data, offset)
        if frame is None or offset + frame.length > end:
            break  # trailing bytes that are not a whole frame: what came before still plays
        frames += 1
        seconds += frame.seconds
        offset += frame.length
    whole = offset == end
    if frames >= 2 or (whole and (frames == 1 or has_tag)):
        return seconds
    return None


# ---- both ------------------------------------------------------------------------------------------


def sniff(data: bytes) -> Literal["wav", "mp3"] | None:
    if wav_duration(data) is not None:
        return "wav"
    if mp3_duration(data) is not None:
        return "mp3"
    return None


def inspect(data: bytes, max_bytes: int = MAX_BYTES, max_seconds: float = MAX_SECONDS) -> AudioInfo:
    """The format and length of an audio file Kö accepts; raises `AudioRefused` otherwise."""
    if not data:
        raise AudioRefused("empty")
    if len(data) > max_bytes:
        raise AudioRefused("too_large", max_bytes)
    seconds = wav_duration(data)
    info: AudioInfo | None = None
    if seconds is not None:
        info = AudioInfo("wav", seconds)
    else:
        seconds = mp3_duration(data)
        if seconds is not None:
            info = AudioInfo("mp3", seconds)
    if info is None or info.duration_seconds <= 0:
        raise AudioRefused("not_audio")
    if info.duration_seconds > max_seconds:
        raise AudioRefused("too_long", max_seconds)
    return info

"""Audio files are recognised by their bytes, and their length is computed from their headers."""

from __future__ import annotations

import io
import struct
import wave

import pytest

from queue_app.domain import audio


def make_wav(seconds: float, rate: int = 8000, channels: int = 1, width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(b"\x00" * int(seconds * rate) * channels * width)
    return buffer.getvalue()


def mp3_header(bitrate_index: int = 9, rate_index: int = 0, padding: int = 0, version: int = 3) -> bytes:
    """An MPEG (version 3: MPEG-1) Layer III frame header, no CRC; index 9 = 128 kbit/s, 0 = 44.1 kHz."""
    b1 = 0xE0 | (version << 3) | (0b01 << 1) | 0x1
    b2 = (bitrate_index << 4) | (rate_index << 2) | (padding << 1)
    return bytes((0xFF, b1, b2, 0xC4))


def make_mp3(frames: int, id3: bool = False) -> bytes:
    """`frames` MPEG-1 Layer III frames of 128 kbit/s at 44.1 kHz: 417 bytes and 1152 samples each."""
    frame = mp3_header() + b"\x00" * (417 - 4)
    tag = b"ID3\x04\x00\x00" + bytes((0, 0, 0, 10)) + b"\x00" * 10 if id3 else b""
    return tag + frame * frames


def test_it_reads_the_length_of_a_wav_file_from_its_header() -> None:
    assert audio.wav_duration(make_wav(2.5)) == pytest.approx(2.5)
    info = audio.inspect(make_wav(1.0, rate=16000, channels=2))
    assert (info.format, info.content_type, info.duration_seconds) == ("wav", "audio/wav", 1.0)


def test_it_sums_the_frames_of_an_mp3_file() -> None:
    data = make_mp3(100, id3=True)
    info = audio.inspect(data)
    assert info.format == "mp3"
    assert info.content_type == "audio/mpeg"
    assert info.duration_seconds == pytest.approx(100 * 1152 / 44100)


def test_it_computes_mpeg_frame_lengths_from_the_header() -> None:
    frame = audio.mp3_frame(mp3_header(padding=1), 0)
    assert frame is not None and (frame.length, frame.samples, frame.sample_rate) == (418, 1152, 44100)
    # MPEG-2 Layer III, 64 kbit/s at 22.05 kHz: 576 samples, 72 * 64000 / 22050 = 208 bytes.
    mpeg2 = audio.mp3_frame(mp3_header(bitrate_index=8, rate_index=0, version=2), 0)
    assert mpeg2 is not None and (mpeg2.length, mpeg2.samples, mpeg2.sample_rate) == (208, 576, 22050)
    assert audio.mp3_frame(mp3_header(bitrate_index=15), 0) is None
    assert audio.mp3_frame(mp3_header(rate_index=3), 0) is None


def test_it_accepts_a_trailing_id3v1_tag_and_stray_bytes_after_the_frames() -> None:
    assert audio.mp3_duration(make_mp3(10) + b"TAG" + b"\x00" * 125) == pytest.approx(10 * 1152 / 44100)
    assert audio.mp3_duration(make_mp3(10) + b"junk") == pytest.approx(10 * 1152 / 44100)


@pytest.mark.parametrize(
    "data",
    [
        b"Hello, this is not audio at all.\n" * 100,
        b"RIFF\x24\x00\x00\x00WAVEdata\x00\x00\x00\x00",  # no fmt chunk
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
        mp3_header() + b"\x00" * 20,  # a lone header that promises more bytes than there are
        b"ID3\x04\x00\x00\x00\x00\x00\x00",  # a tag and no audio
    ],
)
def test_it_refuses_what_is_not_audio(data: bytes) -> None:
    assert audio.sniff(data) is None
    with pytest.raises(audio.AudioRefused) as refused:
        audio.inspect(data)
    assert refused.value.reason == "not_audio"


def test_it_refuses_empty_oversize_and_overlong_files() -> None:
    with pytest.raises(audio.AudioRefused, match="empty"):
        audio.inspect(b"")
    with pytest.raises(audio.AudioRefused) as too_large:
        audio.inspect(make_wav(1.0), max_bytes=1000)
    assert too_large.value.reason == "too_large"
    with pytest.raises(audio.AudioRefused) as too_long:
        audio.inspect(make_wav(3.0), max_seconds=2)
    assert too_long.value.reason == "too_long"


def test_it_counts_the_bytes_of_a_streamed_wav_whose_data_size_was_never_filled_in() -> None:
    data = bytearray(make_wav(1.0))
    at = data.find(b"data")
    struct.pack_into("<I", data, at + 4, 0xFFFFFFFF)
    assert audio.wav_duration(bytes(data)) == pytest.approx(1.0)

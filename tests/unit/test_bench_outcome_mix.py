"""bench/waiturl.py reads the mix of waitUrl outcomes from the app's log: webhook lines name the
fetches that said something, gunicorn's access log counts the music-only ones (logged at DEBUG); with
--rounds it reports the median of each ceiling's shares of bare Flask."""

from __future__ import annotations

from pathlib import Path

from bench.waiturl import median_shares, outcome_mix

ACCESS = '127.0.0.1 - - [04/Dec/2026:11:00:00 +0000] "POST /twilio/wait HTTP/1.1" 200 231 "-" "-"\n'


def webhook(outcome: str, ms: float) -> str:
    return f"INFO koe.webhooks webhook route=/twilio/wait call_sid=CA1 outcome={outcome} status=200 ms={ms}\n"


def test_it_counts_fetches_no_webhook_line_names_as_music(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(webhook("announced", 0.6) + ACCESS + ACCESS * 3 + webhook("announced", 0.8) + ACCESS)
    assert outcome_mix(log) == {
        "announced": {"count": 2, "median_ms": 0.8},
        "music": {"count": 3},
    }


def test_it_reads_only_the_bytes_asked_for(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    first = webhook("announced", 0.5) + ACCESS + ACCESS
    log.write_text(first + ACCESS * 5)
    assert outcome_mix(log, 0, len(first)) == {
        "announced": {"count": 1, "median_ms": 0.5},
        "music": {"count": 1},
    }
    assert outcome_mix(log, len(first)) == {"music": {"count": 5}}


def test_rounds_report_each_ceilings_median_share() -> None:
    rows = median_shares({"waitUrl, 1000 callers ceiling": [0.61, 0.47, 0.66]})
    assert rows == [
        {
            "phase": "waitUrl, 1000 callers ceiling, median of 3",
            "shares": [0.61, 0.47, 0.66],
            "share_of_bare": 0.61,
        }
    ]

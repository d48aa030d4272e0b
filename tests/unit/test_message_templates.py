"""Message templates: allowed fields, filling from a call in the organisation's time, SMS segments."""

from __future__ import annotations

import pytest

from queue_app.clock import utc
from queue_app.domain import message_templates as mt
from queue_app.domain.message_templates import CallFacts, MalformedTemplate, UnknownField

STOCKHOLM = "Europe/Stockholm"
TEMPLATE = "{caller} called at {time} about {topic}, please call back on {number}"


def test_it_lists_the_fields_a_template_uses_in_order() -> None:
    assert mt.fields_used(TEMPLATE) == ("caller", "time", "topic", "number")


def test_it_refuses_an_unknown_field_by_its_name() -> None:
    with pytest.raises(UnknownField) as caught:
        mt.fields_used("{caller} ringde om {topik}")

    assert caught.value.field == "topik"
    assert "{topik}" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [("{time:%H}", "time:%H"), ("{caller!r}", "caller!r"), ("{}", ""), ("{caller.name}", "caller.name")],
)
def test_it_refuses_formats_conversions_and_positional_fields(text: str, field: str) -> None:
    with pytest.raises(UnknownField) as caught:
        mt.fields_used(text)

    assert caught.value.field == field


@pytest.mark.parametrize("text", ["{caller", "caller}", "{caller}}"])
def test_it_refuses_an_unbalanced_brace(text: str) -> None:
    with pytest.raises(MalformedTemplate):
        mt.fields_used(text)


def test_the_configuration_schema_uses_the_same_fields() -> None:
    from queue_app.services import config_schema

    assert config_schema.TEMPLATE_FIELDS is mt.TEMPLATE_FIELDS


def test_it_fills_fields_and_keeps_literal_braces() -> None:
    values = {"caller": "Karin", "time": "10:05", "topic": "fakturan", "number": "+46701234567"}

    filled = mt.fill("{{OBS}} " + TEMPLATE, values)

    assert filled == "{OBS} Karin called at 10:05 about fakturan, please call back on +46701234567"


def test_it_fills_a_missing_value_with_nothing() -> None:
    assert mt.fill("Ärende: {topic}.", {}) == "Ärende: ."


def test_it_finds_fields_left_unfilled_in_an_edited_message() -> None:
    assert mt.placeholders_left("Karin ringde om {topic}, {topic} och {number}") == ("topic", "number")
    assert mt.placeholders_left("Pris {50 kr} {topik}") == ()


def test_it_fills_from_the_call_in_swedish_winter_time() -> None:
    facts = CallFacts(caller_number="+46701234567", arrived_at=utc("2026-11-25 09:05"), queue_name="Växeln")

    values = mt.field_values(facts, operator="Bob", timezone=STOCKHOLM, now=utc("2026-11-25 09:30"))

    assert values == {
        "caller": "+46701234567",
        "number": "+46701234567",
        "time": "10:05",
        "topic": "",
        "message": "",
        "operator": "Bob",
        "queue": "Växeln",
    }


@pytest.mark.parametrize(
    ("arrived", "shown"),
    [
        # Spring forward, 29 March 2026: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
        ("2026-03-29 00:59", "01:59"),
        ("2026-03-29 01:00", "03:00"),
        # Fall back, 25 October 2026: 03:00 CEST becomes 02:00 CET at 01:00 UTC; 02:30 happens twice.
        ("2026-10-25 00:30", "02:30"),
        ("2026-10-25 01:30", "02:30"),
        ("2026-10-25 02:30", "03:30"),
    ],
)
def test_it_shows_the_time_in_stockholm_across_dst(arrived: str, shown: str) -> None:
    at = utc(arrived)

    values = mt.field_values(CallFacts(arrived_at=at), operator="Bob", timezone=STOCKHOLM, now=at)

    assert values["time"] == shown


def test_it_adds_the_date_to_a_call_on_another_day() -> None:
    # 23:30 UTC on the 24th is already the 25th in Stockholm; the day before "now" gets its date.
    facts = CallFacts(arrived_at=utc("2026-11-23 23:30"))

    values = mt.field_values(facts, operator="Bob", timezone=STOCKHOLM, now=utc("2026-11-25 09:00"))

    assert values["time"] == "2026-11-24 00:30"


def test_it_prefers_a_known_name_and_a_callback_number() -> None:
    facts = CallFacts(caller_name="Åke", caller_number="+46701234567", callback_number="+46812345678")

    values = mt.field_values(facts, operator="Bob", timezone=STOCKHOLM, now=utc("2026-11-25 09:00"))

    assert (values["caller"], values["number"]) == ("Åke", "+46812345678")


def test_without_a_call_the_time_is_now() -> None:
    values = mt.field_values(CallFacts(), operator="Bob", timezone=STOCKHOLM, now=utc("2026-07-01 12:00"))

    assert values["time"] == "14:00"
    assert values["caller"] == values["number"] == values["queue"] == ""


@pytest.mark.parametrize(
    ("body", "encoding", "count", "units"),
    [
        ("", "GSM-7", 0, 0),
        ("Hej Åke, ring Örjan på 070-123 45 67", "GSM-7", 1, 36),
        ("a" * 160, "GSM-7", 1, 160),
        ("a" * 161, "GSM-7", 2, 161),
        ("a" * 306, "GSM-7", 2, 306),
        ("a" * 307, "GSM-7", 3, 307),
        # € and [ are two septets each: 80 of them fill one segment exactly.
        ("€" * 80, "GSM-7", 1, 160),
        # 152 septets then an escape pair: the pair may not be split, so it starts part two.
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 2, 164),
        ("Ring Łukasz", "UCS-2", 1, 11),
        ("ł" * 70, "UCS-2", 1, 70),
        ("ł" * 71, "UCS-2", 2, 71),
        ("ł" * 134, "UCS-2", 2, 134),
        ("ł" * 135, "UCS-2", 3, 135),
        ("😀" * 35, "UCS-2", 1, 70),
    ],
)
def test_it_counts_sms_segments(body: str, encoding: str, count: int, units: int) -> None:
    assert mt.sms_segments(body) == mt.Segments(encoding, count, units)

"""The messages API: templates, preview, send, the sent list, and Twilio's message status callback."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from queue_app.clock import ManualClock, utc
from queue_app.extensions import db
from queue_app.models import Call, DirectoryEntry, MessageTemplate, SentMessage
from queue_app.services import messages

from ..factories import Personas
from ..twilio_helpers import signed_post
from .test_console_api import Api

API = "/api/v1"
_seq = itertools.count(1)


@pytest.fixture
def bob(client: FlaskClient, personas: Personas) -> Api:
    return Api(client, personas.bob.email)


@pytest.fixture
def charlie(app: Flask, personas: Personas) -> Api:
    return Api(app.test_client(), personas.charlie.email)


def add_template(app: Flask, org_id: int, **values: Any) -> int:
    with app.app_context(), db.transaction() as session:
        template = MessageTemplate(
            organisation_id=org_id, **({"name": f"T{next(_seq)}", "channel": "any"} | values)
        )
        session.add(template)
        session.flush()
        return template.id


def add_call(app: Flask, org_id: int, queue_id: int | None, **values: Any) -> int:
    with app.app_context(), db.transaction() as session:
        call = Call(
            organisation_id=org_id,
            queue_id=queue_id,
            call_sid=f"CA{next(_seq):032x}",
            from_number="+46701234567",
            to_number="+46855500001",
            state="completed",
            **values,
        )
        session.add(call)
        session.flush()
        return call.id


def add_entry(app: Flask, org_id: int, name: str, **values: Any) -> int:
    with app.app_context(), db.transaction() as session:
        entry = DirectoryEntry(organisation_id=org_id, name=name, search_text=name.lower(), **values)
        session.add(entry)
        session.flush()
        return entry.id


def stored(app: Flask) -> list[SentMessage]:
    with app.app_context(), db.transaction() as session:
        return list(session.scalars(select(SentMessage).order_by(SentMessage.id)))


@pytest.fixture
def world(app: Flask, personas: Personas) -> dict[str, int]:
    org = personas.bob.organisation_id
    return {
        "template": add_template(
            app,
            org,
            name="Ring tillbaka",
            subject="Ring tillbaka: {caller}",
            body="{caller} ringde {time} om {topic}, ring tillbaka på {number}",
        ),
        "sms_template": add_template(app, org, name="Besök", channel="sms", body="Du har besök: {caller}"),
        # 08:05 UTC in November is 09:05 in Stockholm.
        "call": add_call(app, org, personas.bob.queue_id, arrived_at=utc("2026-11-25 08:05")),
        "anna": add_entry(app, org, "Anna Berg", mobile_number="+46701111111", email="anna@exempel.se"),
        "desk": add_entry(app, org, "Receptionen", phone_number="+4686001000"),
        "other_template": add_template(app, personas.charlie.organisation_id, body="{caller}"),
        "other_call": add_call(
            app, personas.charlie.organisation_id, None, arrived_at=utc("2026-11-25 08:00")
        ),
        "other_entry": add_entry(app, personas.charlie.organisation_id, "Eve", mobile_number="+46709999999"),
    }


# --- refusals common to the API -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/templates", "/messages", "/messages/1"])
def test_it_answers_401_json_to_anonymous_callers(client: FlaskClient, personas: Personas, path: str) -> None:
    response = client.get(API + path)

    assert response.status_code == 401
    assert response.get_json()["error"] == "login_required"


@pytest.mark.parametrize("path", ["/messages", "/messages/preview"])
def test_it_refuses_a_post_without_the_csrf_header(
    app: Flask, bob: Api, world: dict[str, int], path: str
) -> None:
    body = {"template_id": world["template"], "channel": "sms", "to": "+46701111111", "body": "Hej"}

    response = bob.client.post(API + path, json=body)

    assert response.status_code == 400
    assert response.get_json()["error"] == "csrf_failed"
    assert stored(app) == []


def test_it_refuses_a_body_that_is_not_a_json_object(bob: Api) -> None:
    response = bob.post("/messages", json=["sms"])

    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"


# --- templates and preview -------------------------------------------------------------------------


def test_it_lists_the_organisations_templates(bob: Api, charlie: Api, world: dict[str, int]) -> None:
    listed = bob.get("/templates").get_json()

    assert listed["fields"] == ["caller", "number", "time", "topic", "message", "operator", "queue"]
    assert [(t["name"], t["channel"]) for t in listed["templates"]] == [
        ("Besök", "sms"),
        ("Ring tillbaka", "any"),
    ]
    assert listed["templates"][1]["fields"] == ["caller", "time", "topic", "number"]
    assert [t["id"] for t in charlie.get("/templates").get_json()["templates"]] == [world["other_template"]]


def test_it_previews_a_template_filled_from_the_call(bob: Api, world: dict[str, int]) -> None:
    response = bob.post(
        "/messages/preview",
        json={
            "template_id": world["template"],
            "call_id": world["call"],
            "directory_entry_id": world["anna"],
        },
    )

    assert response.status_code == 200
    shown = response.get_json()
    assert shown["body"] == "+46701234567 ringde 09:05 om , ring tillbaka på +46701234567"
    assert shown["subject"] == "Ring tillbaka: +46701234567"
    assert shown["fields"]["operator"] == "Bob"
    assert shown["fields"]["queue"] == "Växeln"
    assert shown["empty_fields"] == ["topic"]
    assert shown["recipient"] == {
        "directory_entry_id": world["anna"],
        "name": "Anna Berg",
        "sms": "+46701111111",
        "email": "anna@exempel.se",
    }
    assert shown["channel"] == "sms"
    assert shown["segments"] == {"encoding": "GSM-7", "count": 1, "units": len(shown["body"])}


def test_the_operators_edits_fill_the_fields(bob: Api, world: dict[str, int]) -> None:
    response = bob.post(
        "/messages/preview",
        json={
            "template_id": world["template"],
            "call_id": world["call"],
            "fields": {"caller": "Karin", "topic": "fakturan"},
        },
    )

    shown = response.get_json()
    assert shown["body"] == "Karin ringde 09:05 om fakturan, ring tillbaka på +46701234567"
    assert shown["empty_fields"] == []


def test_it_refuses_a_template_with_an_unknown_field_by_name(
    app: Flask, bob: Api, personas: Personas
) -> None:
    template = add_template(app, personas.bob.organisation_id, body="{caller} ringde om {topik}")

    response = bob.post("/messages/preview", json={"template_id": template})

    assert response.status_code == 422
    assert response.get_json()["error"] == "unknown_field"
    assert "{topik}" in response.get_json()["message"]


@pytest.mark.parametrize(
    ("extra", "code", "words"),
    [
        ({"fields": {"topik": "x"}}, "unknown_field", "{topik}"),
        ({"fields": {"topic": "x" * 501}}, "invalid_field", "500"),
        ({"fields": ["topic"]}, "invalid_fields", "fields"),
        ({"call_id": "12"}, "invalid_call_id", "call_id"),
    ],
)
def test_it_refuses_bad_preview_input(
    bob: Api, world: dict[str, int], extra: dict[str, Any], code: str, words: str
) -> None:
    response = bob.post("/messages/preview", json={"template_id": world["template"]} | extra)

    assert response.status_code == 422
    assert response.get_json()["error"] == code
    assert words in response.get_json()["message"]


@pytest.mark.parametrize(
    "ids",
    [
        {"template_id": "other_template"},
        {"template_id": "template", "call_id": "other_call"},
        {"template_id": "template", "directory_entry_id": "other_entry"},
        {"template_id": "template", "call_id": 2147483647},
    ],
)
def test_preview_answers_404_for_another_organisations_ids(
    bob: Api, world: dict[str, int], ids: dict[str, Any]
) -> None:
    body = {key: world[value] if isinstance(value, str) else value for key, value in ids.items()}

    response = bob.post("/messages/preview", json=body)

    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


# --- sending ----------------------------------------------------------------------------------------


def test_it_queues_an_sms_to_a_colleague(
    app: Flask, bob: Api, world: dict[str, int], clock: ManualClock
) -> None:
    response = bob.post(
        "/messages",
        json={
            "channel": "sms",
            "directory_entry_id": world["anna"],
            "template_id": world["template"],
            "call_id": world["call"],
            "body": "Karin ringde 10:05 om fakturan",
        },
    )

    assert response.status_code == 201
    sent = response.get_json()["message"]
    assert sent | {"id": 0} == {
        "id": 0,
        "call_id": world["call"],
        "template_id": world["template"],
        "directory_entry_id": world["anna"],
        "to_name": "Anna Berg",
        "sent_by": "Bob",
        "channel": "sms",
        "to_address": "+46701111111",
        "subject": None,
        "body": "Karin ringde 10:05 om fakturan",
        "status": "queued",
        "error": None,
        "attempts": 0,
        "next_attempt_at": "2026-11-25T09:00:00Z",
        "created_at": "2026-11-25T09:00:00Z",
        "updated_at": "2026-11-25T09:00:00Z",
    }
    assert response.get_json()["segments"]["count"] == 1
    [row] = stored(app)
    assert (row.id, row.status, row.sent_by_id) == (sent["id"], "queued", bob_id(app))


def bob_id(app: Flask) -> int:
    from queue_app.models import User

    with app.app_context(), db.transaction() as session:
        return int(session.scalar(select(User.id).where(User.email == "bob@acme.test")) or 0)


def test_it_queues_an_email_with_a_subject(app: Flask, bob: Api, world: dict[str, int]) -> None:
    response = bob.post(
        "/messages",
        json={"channel": "email", "to": "Anna@Exempel.se", "subject": "Ring  Karin", "body": "Hej Anna"},
    )

    assert response.status_code == 201
    assert (response.get_json()["message"]["to_address"], response.get_json()["message"]["subject"]) == (
        "Anna@exempel.se",
        "Ring Karin",
    )


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"channel": "sms", "to": "12345"}, "invalid_address", "12345 is not a valid phone number"),
        ({"channel": "sms", "to": "+4670111"}, "invalid_address", "+4670111 is not a valid phone number"),
        (
            {"channel": "email", "to": "anna@exempel"},
            "invalid_address",
            "anna@exempel is not a valid e-mail address",
        ),
        ({"channel": "email", "to": "anna.exempel.se"}, "invalid_address", "not a valid e-mail address"),
        (
            {"channel": "email", "directory_entry_id": "desk"},
            "invalid_address",
            "Receptionen has no e-mail address",
        ),
        ({"channel": "sms"}, "invalid_address", "pick a colleague"),
        ({"channel": "sms", "to": "+46701111111", "body": "Om {topic}"}, "unfilled_field", "{topic}"),
        ({"channel": "sms", "to": "+46701111111", "body": ""}, "invalid_body", "Write a message"),
        ({"channel": "sms", "to": "+46701111111", "body": None}, "invalid_body", "Write a message"),
        ({"channel": "sms", "to": "+46701111111", "body": "x" * 1601}, "invalid_body", "1600"),
        ({"channel": "email", "to": "a@exempel.se", "subject": "x" * 201}, "invalid_subject", "200"),
        (
            {"channel": "email", "to": "a@exempel.se", "template_id": "sms_template"},
            "invalid_channel",
            "SMS only",
        ),
        ({"channel": "pigeon", "to": "+46701111111"}, "invalid_channel", "sms or email"),
        ({"channel": "sms", "to": 46701111111}, "invalid_to", "text"),
        ({"channel": "sms", "to": "+46701111111", "call_id": True}, "invalid_call_id", "call_id"),
    ],
)
def test_it_refuses_bad_messages_with_a_clear_message_and_stores_nothing(
    app: Flask, bob: Api, world: dict[str, int], body: dict[str, Any], code: str, words: str
) -> None:
    body = {"body": "Hej"} | {
        k: world[v] if k.endswith("_id") and isinstance(v, str) else v for k, v in body.items()
    }

    response = bob.post("/messages", json=body)

    assert response.status_code == 422
    assert response.get_json()["error"] == code
    assert words in response.get_json()["message"]
    assert stored(app) == []


@pytest.mark.parametrize("key", ["template_id", "call_id", "directory_entry_id"])
def test_sending_answers_404_for_another_organisations_ids(
    app: Flask, bob: Api, world: dict[str, int], key: str
) -> None:
    other = {"template_id": "other_template", "call_id": "other_call", "directory_entry_id": "other_entry"}[
        key
    ]

    response = bob.post(
        "/messages", json={"channel": "sms", "to": "+46701111111", "body": "Hej", key: world[other]}
    )

    assert response.status_code == 404
    assert stored(app) == []


def test_it_answers_in_swedish_for_a_swedish_user(
    app: Flask, personas: Personas, world: dict[str, int]
) -> None:
    sv = Api(app.test_client(), personas.bob.email, locale="sv")

    response = sv.post("/messages", json={"channel": "sms", "to": "12345", "body": "Hej"})

    assert response.status_code == 422
    assert response.get_json()["message"].startswith("12345 är inte ett giltigt telefonnummer")


# --- the sent list and Twilio's callbacks -------------------------------------------------------


def send(bob: Api, **body: Any) -> dict[str, Any]:
    response = bob.post("/messages", json={"channel": "sms", "to": "+46701111111", "body": "Hej"} | body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["message"]  # type: ignore[no-any-return]


def test_it_lists_sent_messages_newest_first_and_by_call(
    bob: Api, charlie: Api, world: dict[str, int], clock: ManualClock
) -> None:
    first = send(bob, call_id=world["call"])
    clock.advance(60)
    second = send(bob)

    listed = bob.get("/messages").get_json()["messages"]
    about_call = bob.get(f"/messages?call_id={world['call']}").get_json()["messages"]

    assert [m["id"] for m in listed] == [second["id"], first["id"]]
    assert [m["id"] for m in about_call] == [first["id"]]
    assert [m["id"] for m in bob.get("/messages?limit=1").get_json()["messages"]] == [second["id"]]
    assert charlie.get("/messages").get_json()["messages"] == []
    assert bob.get(f"/messages/{first['id']}").get_json()["message"]["status"] == "queued"


def test_the_sent_list_answers_404_for_another_organisations_ids(
    bob: Api, charlie: Api, world: dict[str, int]
) -> None:
    mine = send(bob)

    assert charlie.get(f"/messages/{mine['id']}").status_code == 404
    assert bob.get(f"/messages?call_id={world['other_call']}").status_code == 404
    assert bob.get("/messages/2147483647").status_code == 404


@pytest.mark.parametrize(
    ("query", "code"),
    [("limit=0", "invalid_limit"), ("limit=x", "invalid_limit"), ("call_id=-1", "invalid_call_id")],
)
def test_the_sent_list_refuses_bad_parameters(bob: Api, query: str, code: str) -> None:
    response = bob.get(f"/messages?{query}")

    assert response.status_code == 422
    assert response.get_json()["error"] == code


def callback(client: FlaskClient, message_id: int | str, sid: str, status: str, **extra: str) -> Any:
    form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC1", "To": "+46701111111"} | extra
    return signed_post(client, f"/twilio/message-status?m={message_id}", form)


def status_of(bob: Api, message_id: int) -> tuple[str, str | None]:
    shown = bob.get(f"/messages/{message_id}").get_json()["message"]
    return shown["status"], shown["error"]


def handed_to_twilio(app: Flask, message_id: int, sid: str) -> None:
    with app.app_context(), db.transaction() as session:
        row = session.get(SentMessage, message_id)
        assert row is not None
        row.status, row.provider_id, row.attempts, row.next_attempt_at = "sending", sid, 1, None


def test_twilios_callbacks_move_the_status_forward_only(app: Flask, client: FlaskClient, bob: Api) -> None:
    sent = send(bob)
    handed_to_twilio(app, sent["id"], "SM100")

    for status, shown in [
        ("sent", "sent"),
        ("sent", "sent"),  # duplicated
        ("delivered", "delivered"),
        ("sent", "delivered"),  # late
        ("undelivered", "delivered"),
    ]:
        response = callback(client, sent["id"], "SM100", status, ErrorCode="30003")
        assert response.status_code == 200
        assert status_of(bob, sent["id"])[0] == shown


def test_an_undelivered_sms_shows_the_error(app: Flask, client: FlaskClient, bob: Api) -> None:
    sent = send(bob)
    handed_to_twilio(app, sent["id"], "SM200")

    callback(client, sent["id"], "SM200", "undelivered", ErrorCode="30005")

    assert status_of(bob, sent["id"]) == (
        "undelivered",
        "undelivered: Twilio error 30005 Unknown destination handset",
    )


def test_a_callback_for_an_unknown_message_gets_200(app: Flask, client: FlaskClient, bob: Api) -> None:
    sent = send(bob)
    handed_to_twilio(app, sent["id"], "SM300")

    for message_id in (sent["id"], "999999", "x", ""):
        assert callback(client, message_id, "SM404", "delivered").status_code == 200
    assert status_of(bob, sent["id"]) == ("sending", None)


def test_an_unsigned_callback_is_refused(app: Flask, client: FlaskClient, bob: Api) -> None:
    sent = send(bob)
    handed_to_twilio(app, sent["id"], "SM400")

    response = client.post(
        f"/twilio/message-status?m={sent['id']}", data={"MessageSid": "SM400", "MessageStatus": "delivered"}
    )
    forged = signed_post(
        client,
        f"/twilio/message-status?m={sent['id']}",
        {"MessageSid": "SM400", "MessageStatus": "failed"},
        token="x",
    )

    assert (response.status_code, forged.status_code) == (403, 403)
    assert status_of(bob, sent["id"]) == ("sending", None)


def test_nothing_is_stored_twice_by_one_callback(app: Flask, client: FlaskClient, bob: Api) -> None:
    sent = send(bob)
    handed_to_twilio(app, sent["id"], "SM500")

    callback(client, sent["id"], "SM500", "delivered")
    callback(client, sent["id"], "SM500", "delivered")

    with app.app_context(), db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(SentMessage)) == 1


def test_a_message_sent_from_the_api_reaches_the_emulator(
    app: Flask, bob: Api, world: dict[str, int], clock: ManualClock
) -> None:
    from ..e2e.conftest import bind_emulator

    emulator = bind_emulator(app, clock)
    sent = send(bob, directory_entry_id=world["anna"], to=None, body="Karin ringde")

    with app.app_context():
        assert messages.send_due(clock.now()) == 1
    emulator.advance(5)

    assert [(m.to, m.body) for m in emulator.outbox] == [("+46701111111", "Karin ringde")]
    assert status_of(bob, sent["id"]) == ("delivered", None)

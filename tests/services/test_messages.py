"""Sending messages: e-mail to a real SMTP server the test starts, SMS through the emulator.

The SMTP server is aiosmtpd on 127.0.0.1; smtplib's DATA returns only after the server's handler has
stored the message, so the tests read the mailbox without waiting. Retries are driven by the `clock`.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import delete, func, select, update

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, DirectoryEntry, MessageTemplate, PhoneNumber, SentMessage
from queue_app.services import messages
from queue_app.services.messages import Draft, MessageError, Sender
from queue_app.sim import PhoneNumber as FarPhone

from ..e2e.conftest import bind_emulator
from ..factories import Personas

_sids = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps what it accepts, refuses the recipients in `refuse`."""

    received: list[Any] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return f"250 2.0.0 Ok: queued as KOE{len(self.received)}"


def start_smtp(mailbox: Mailbox, port: int) -> Controller:
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


@pytest.fixture
def smtp_port(app: Flask) -> int:
    port = free_port()
    app.config.update(
        SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_STARTTLS=False, MAIL_FROM="Växeln <koe@exempel.se>"
    )
    return port


@pytest.fixture
def mailbox(smtp_port: int) -> Iterator[Mailbox]:
    box = Mailbox()
    controller = start_smtp(box, smtp_port)
    yield box
    controller.stop()


@pytest.fixture
def sender(app: Flask, personas: Personas) -> Sender:
    return Sender(personas.bob.user_id, personas.bob.organisation_id, "Bob", "Europe/Stockholm")


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def add_call(org_id: int, queue_id: int | None, **values: Any) -> int:
    with db.transaction() as session:
        call = Call(
            organisation_id=org_id,
            queue_id=queue_id,
            call_sid=f"CA{next(_sids):032x}",
            from_number="+46701234567",
            to_number="+46855500001",
            state="completed",
            arrived_at=values.pop("arrived_at"),
            **values,
        )
        session.add(call)
        session.flush()
        return call.id


def add_template(org_id: int, **values: Any) -> int:
    with db.transaction() as session:
        row = MessageTemplate(
            organisation_id=org_id, **({"name": f"T{next(_sids)}", "channel": "any"} | values)
        )
        session.add(row)
        session.flush()
        return row.id


def add_entry(org_id: int, name: str, **values: Any) -> int:
    with db.transaction() as session:
        entry = DirectoryEntry(organisation_id=org_id, name=name, search_text=name.lower(), **values)
        session.add(entry)
        session.flush()
        return entry.id


def row(message_id: int) -> SentMessage:
    with db.transaction() as session:
        found = session.get(SentMessage, message_id)
        assert found is not None
        return found


def stored_count() -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(SentMessage)) or 0)


def email_draft(to: str = "anna@exempel.se", **values: Any) -> Draft:
    return Draft(channel="email", to=to, subject="Ring tillbaka: Karin", body="Karin ringde 10:05.", **values)


# --- preview --------------------------------------------------------------------------------------


def test_it_fills_the_template_from_the_call_and_the_edits(
    ctx: None, personas: Personas, sender: Sender, clock: ManualClock
) -> None:
    org = personas.bob.organisation_id
    template = add_template(
        org,
        subject="Ring tillbaka: {caller}",
        body="{caller} ({number}) sökte dig {time} via {queue}. Ärende: {topic}. /{operator}",
    )
    # 08:05 UTC on a summer day is 10:05 in Stockholm.
    call = add_call(org, personas.bob.queue_id, arrived_at=clock.now().replace(month=7, hour=8, minute=5))
    clock.set(clock.now().replace(month=7, hour=8, minute=30))
    anna = add_entry(org, "Anna Berg", mobile_number="+46701111111", email="anna@exempel.se")

    with db.transaction() as session:
        shown = messages.preview(
            session,
            sender,
            template,
            clock.now(),
            call_id=call,
            directory_entry_id=anna,
            fields={"topic": " Fakturan "},
        )

    assert shown.subject == "Ring tillbaka: +46701234567"
    assert shown.body == "+46701234567 (+46701234567) sökte dig 10:05 via Växeln. Ärende: Fakturan. /Bob"
    assert shown.used_fields == ("caller", "number", "time", "queue", "topic", "operator")
    assert shown.empty_fields == ()
    assert shown.recipient == messages.Recipient(anna, "Anna Berg", "+46701111111", "anna@exempel.se")
    assert shown.channel == "sms"


def test_it_names_a_colleague_calling_from_their_own_phone(
    ctx: None, personas: Personas, sender: Sender
) -> None:
    org = personas.bob.organisation_id
    add_entry(org, "Åke Öberg", mobile_number="+46701234567")
    template = add_template(org, body="{caller} ringde om {topic}")
    call = add_call(org, None, arrived_at=messages_now())

    with db.transaction() as session:
        shown = messages.preview(session, sender, template, messages_now(), call_id=call)

    assert shown.body == "Åke Öberg ringde om "
    assert shown.empty_fields == ("topic",)


def messages_now() -> Any:
    from queue_app.clock import utc

    return utc("2026-11-25 09:00")


def test_it_refuses_a_template_with_an_unknown_field_by_name(
    ctx: None, personas: Personas, sender: Sender
) -> None:
    # Saved before the rule (or behind the admin pages' back): the preview names the field.
    template = add_template(personas.bob.organisation_id, body="{caller} ringde om {topik}")

    with pytest.raises(MessageError) as caught, db.transaction() as session:
        messages.preview(session, sender, template, messages_now())

    assert caught.value.code == "unknown_field"
    assert "{topik}" in caught.value.message


def test_it_hides_another_organisations_template_call_and_colleague(
    ctx: None, personas: Personas, sender: Sender
) -> None:
    other = personas.charlie.organisation_id
    mine = add_template(personas.bob.organisation_id, body="{caller}")
    for kwargs in (
        {"template_id": add_template(other, body="x")},
        {"template_id": mine, "call_id": add_call(other, None, arrived_at=messages_now())},
        {"template_id": mine, "directory_entry_id": add_entry(other, "Eve")},
    ):
        template_id = kwargs.pop("template_id")
        with pytest.raises(messages.NotFound), db.transaction() as session:
            messages.preview(session, sender, template_id, messages_now(), **kwargs)


# --- queueing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "to", "stored"),
    [
        ("sms", "070-123 45 67", "+46701234567"),
        ("sms", "+44 7911 123456", "+447911123456"),
        ("email", " Anna.Berg@Exempel.se ", "Anna.Berg@exempel.se"),
    ],
)
def test_it_stores_a_normalised_address(
    ctx: None, sender: Sender, clock: ManualClock, channel: str, to: str, stored: str
) -> None:
    queued = messages.queue_message(sender, Draft(channel=channel, to=to, body="Hej"), clock.now())

    assert (queued.status, queued.to_address, queued.attempts) == ("queued", stored, 0)
    assert row(queued.id).next_attempt_at == clock.now()


@pytest.mark.parametrize(
    ("draft", "code"),
    [
        (Draft(channel="sms", to="12345", body="Hej"), "invalid_address"),
        (Draft(channel="sms", to="+46 70 123", body="Hej"), "invalid_address"),
        (Draft(channel="sms", to="anna@exempel.se", body="Hej"), "invalid_address"),
        (Draft(channel="email", to="anna@", body="Hej"), "invalid_address"),
        (Draft(channel="email", to="anna exempel.se", body="Hej"), "invalid_address"),
        (Draft(channel="email", to="", body="Hej"), "invalid_address"),
        (Draft(channel="sms", to="+46701234567", body="   "), "invalid_body"),
        (Draft(channel="sms", to="+46701234567", body="x" * 1601), "invalid_body"),
        (Draft(channel="sms", to="+46701234567", body="Ärende: {topic}"), "unfilled_field"),
        (Draft(channel="fax", to="+46701234567", body="Hej"), "invalid_channel"),
    ],
)
def test_it_refuses_bad_messages_and_stores_nothing(
    ctx: None, sender: Sender, clock: ManualClock, draft: Draft, code: str
) -> None:
    with pytest.raises(MessageError) as caught:
        messages.queue_message(sender, draft, clock.now())

    assert caught.value.code == code
    assert caught.value.message
    assert stored_count() == 0


def test_it_takes_the_colleagues_number_or_address(ctx: None, personas: Personas, sender: Sender) -> None:
    org = personas.bob.organisation_id
    anna = add_entry(
        org, "Anna", phone_number="+4686001000", mobile_number="+46701111111", email="a@exempel.se"
    )
    desk = add_entry(org, "Desk", phone_number="+4686001001")

    to_mobile = messages.queue_message(sender, Draft("sms", "Hej", directory_entry_id=anna), messages_now())
    to_desk = messages.queue_message(sender, Draft("sms", "Hej", directory_entry_id=desk), messages_now())
    to_mail = messages.queue_message(sender, Draft("email", "Hej", directory_entry_id=anna), messages_now())

    assert [m.to_address for m in (to_mobile, to_desk, to_mail)] == [
        "+46701111111",
        "+4686001001",
        "a@exempel.se",
    ]
    assert to_mail.subject == "Meddelande från växeln"  # the default language outside a request
    with pytest.raises(MessageError, match="Desk har ingen e-postadress"):
        messages.queue_message(sender, Draft("email", "Hej", directory_entry_id=desk), messages_now())


def test_it_refuses_a_channel_the_template_is_not_for(ctx: None, personas: Personas, sender: Sender) -> None:
    template = add_template(personas.bob.organisation_id, name="Besök", channel="sms", body="Du har besök")

    with pytest.raises(MessageError, match="Besök är bara för sms"):
        messages.queue_message(sender, email_draft(template_id=template), messages_now())
    assert stored_count() == 0


def test_it_refuses_sms_without_a_number_to_send_from(ctx: None, personas: Personas, sender: Sender) -> None:
    with db.transaction() as session:
        session.execute(
            delete(PhoneNumber).where(PhoneNumber.organisation_id == personas.bob.organisation_id)
        )

    with pytest.raises(MessageError) as caught:
        messages.queue_message(sender, Draft("sms", "Hej", to="+46701234567"), messages_now())

    assert caught.value.code == "no_sender_number"


# --- e-mail through a real SMTP server ----------------------------------------------------------------


def test_the_worker_sends_an_email(ctx: None, mailbox: Mailbox, sender: Sender, clock: ManualClock) -> None:
    queued = messages.queue_message(sender, email_draft(), clock.now())

    assert messages.send_due(clock.now()) == 1

    assert len(mailbox.received) == 1
    envelope = mailbox.received[0]
    assert envelope.mail_from == "koe@exempel.se"
    assert envelope.rcpt_tos == ["anna@exempel.se"]
    email = message_from_bytes(envelope.original_content, policy=default_policy)
    assert email["Subject"] == "Ring tillbaka: Karin"
    assert email["From"] == "Växeln <koe@exempel.se>"
    assert email["To"] == "anna@exempel.se"
    assert email.get_content().strip() == "Karin ringde 10:05."
    sent = row(queued.id)
    assert (sent.status, sent.attempts, sent.error, sent.next_attempt_at) == ("sent", 1, None, None)
    assert sent.provider_id == "250 2.0.0 Ok: queued as KOE1"
    assert messages.send_due(clock.now() + timedelta(hours=1)) == 0
    assert len(mailbox.received) == 1


def test_a_refused_recipient_is_retried_with_backoff_then_failed(
    ctx: None, mailbox: Mailbox, sender: Sender, clock: ManualClock
) -> None:
    mailbox.refuse.add("nobody@exempel.se")
    queued = messages.queue_message(sender, email_draft("nobody@exempel.se"), clock.now())
    start = clock.now()

    for attempt, wait in ((1, 30), (2, 120), (3, 600)):
        assert messages.send_due(clock.now()) == 1
        retry = row(queued.id)
        assert (retry.status, retry.attempts) == ("queued", attempt)
        assert "550 5.1.1 <nobody@exempel.se>: Recipient address rejected" in (retry.error or "")
        assert retry.next_attempt_at == clock.now() + timedelta(seconds=wait)
        with db.transaction() as session:
            assert messages.next_due(session) == retry.next_attempt_at
        clock.advance(wait - 1)
        assert messages.send_due(clock.now()) == 0  # not yet
        clock.advance(1)

    assert messages.send_due(clock.now()) == 1
    failed = row(queued.id)
    assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 4, None)
    assert "Recipient address rejected" in (failed.error or "")
    assert "gave up after 4 attempts" in (failed.error or "")
    assert clock.now() - start == timedelta(seconds=750)
    assert mailbox.received == []
    with db.transaction() as session:
        assert messages.next_due(session) is None
    assert messages.send_due(clock.now() + timedelta(days=1)) == 0


def test_a_server_not_listening_is_retried_and_the_mail_goes_when_it_is_back(
    ctx: None, smtp_port: int, sender: Sender, clock: ManualClock
) -> None:
    queued = messages.queue_message(sender, email_draft(), clock.now())

    assert messages.send_due(clock.now()) == 1
    waiting = row(queued.id)
    assert waiting.status == "queued"
    assert f"127.0.0.1:{smtp_port}" in (waiting.error or "")

    box = Mailbox()
    controller = start_smtp(box, smtp_port)
    try:
        clock.advance(30)
        assert messages.send_due(clock.now()) == 1
    finally:
        controller.stop()
    sent = row(queued.id)
    assert (sent.status, sent.attempts, sent.error) == ("sent", 2, None)
    assert len(box.received) == 1


def test_email_without_smtp_settings_fails_with_a_clear_error(
    app: Flask, ctx: None, sender: Sender, clock: ManualClock
) -> None:
    app.config["SMTP_HOST"] = None
    queued = messages.queue_message(sender, email_draft(), clock.now())

    for wait in (30, 120, 600, 0):
        messages.send_due(clock.now())
        clock.advance(wait)

    failed = row(queued.id)
    assert failed.status == "failed"
    assert "SMTP_HOST is not set" in (failed.error or "")


def test_a_claim_left_by_a_dead_worker_is_taken_back(
    ctx: None, mailbox: Mailbox, sender: Sender, clock: ManualClock
) -> None:
    queued = messages.queue_message(sender, email_draft(), clock.now())
    with db.transaction() as session:
        # What a worker leaves when it dies between claiming and recording.
        session.execute(
            update(SentMessage)
            .where(SentMessage.id == queued.id)
            .values(status="sending", attempts=1, next_attempt_at=clock.now() + messages.CLAIM_LEASE)
        )
        assert messages.next_due(session) == clock.now() + messages.CLAIM_LEASE

    assert messages.send_due(clock.now()) == 0  # another worker may still be sending it
    clock.advance(messages.CLAIM_LEASE.total_seconds())
    assert messages.send_due(clock.now()) == 1

    sent = row(queued.id)
    assert (sent.status, sent.attempts) == ("sent", 2)
    assert len(mailbox.received) == 1


def test_a_claim_is_taken_once(ctx: None, mailbox: Mailbox, sender: Sender, clock: ManualClock) -> None:
    messages.queue_message(sender, email_draft(), clock.now())

    first = messages._claim(clock.now())
    second = messages._claim(clock.now())

    assert [c.attempt for c in first] == [1]
    assert second == []


# --- SMS through the emulator -----------------------------------------------------------------------


def test_the_worker_sends_an_sms_and_twilio_reports_delivery(
    app: Flask, ctx: None, personas: Personas, sender: Sender, clock: ManualClock
) -> None:
    emulator = bind_emulator(app, clock)
    queued = messages.queue_message(
        sender, Draft("sms", "Karin ringde, ring 070-123 45 67", to="0701111111"), clock.now()
    )

    assert messages.send_due(clock.now()) == 1

    [sms] = emulator.outbox
    assert (sms.to, sms.from_, sms.body) == (
        "+46701111111",
        personas.bob.number,
        "Karin ringde, ring 070-123 45 67",
    )
    assert sms.status_callback == f"http://koe.test/twilio/message-status?m={queued.id}"
    handed = row(queued.id)
    assert (handed.status, handed.provider_id, handed.next_attempt_at) == ("sending", sms.sid, None)

    emulator.advance(1)
    assert row(queued.id).status == "sent"
    emulator.advance(2)
    assert row(queued.id).status == "delivered"
    assert [dict(c.form)["MessageStatus"] for c in emulator.callbacks_sent] == ["sent", "delivered"]
    assert emulator.errors == []
    assert messages.send_due(clock.now() + timedelta(hours=1)) == 0
    assert len(emulator.outbox) == 1


def test_an_undelivered_sms_shows_twilios_error(
    app: Flask, ctx: None, sender: Sender, clock: ManualClock
) -> None:
    emulator = bind_emulator(app, clock)
    emulator.register_number("+46702222222", FarPhone(mode="failed"))
    queued = messages.queue_message(sender, Draft("sms", "Hej", to="+46702222222"), clock.now())

    messages.send_due(clock.now())
    emulator.advance(5)

    gone = row(queued.id)
    assert gone.status == "undelivered"
    assert gone.error == "undelivered: Twilio error 30003 Unreachable destination handset"


def test_an_sms_that_cannot_be_handed_to_twilio_is_retried(
    app: Flask, ctx: None, personas: Personas, sender: Sender, clock: ManualClock
) -> None:
    emulator = bind_emulator(app, clock)
    queued = messages.queue_message(sender, Draft("sms", "Hej", to="+46701111111"), clock.now())
    with db.transaction() as session:
        number = session.scalars(select(PhoneNumber).where(PhoneNumber.number == personas.bob.number)).one()
        number.organisation_id = personas.charlie.organisation_id  # gone from this organisation

    messages.send_due(clock.now())

    waiting = row(queued.id)
    assert (waiting.status, waiting.attempts) == ("queued", 1)
    assert waiting.error == "The organisation has no phone number to send SMS from."
    assert emulator.outbox == []


def status_form(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC1", "To": "+46701111111"} | extra


def handed_to_twilio(sender: Sender, sid: str) -> int:
    queued = messages.queue_message(sender, Draft("sms", "Hej", to="+46701111111"), messages_now())
    with db.transaction() as session:
        session.execute(
            update(SentMessage)
            .where(SentMessage.id == queued.id)
            .values(status="sending", attempts=1, provider_id=sid, next_attempt_at=None)
        )
    return queued.id


def test_callbacks_never_move_a_message_backwards(ctx: None, sender: Sender) -> None:
    message = handed_to_twilio(sender, "SM1")
    now = messages_now()

    assert messages.record_status(status_form("SM1", "delivered"), now) is True
    assert messages.record_status(status_form("SM1", "sent"), now) is False  # late
    assert messages.record_status(status_form("SM1", "delivered"), now) is False  # twice
    assert messages.record_status(status_form("SM1", "undelivered", ErrorCode="30003"), now) is False
    assert messages.record_status(status_form("SM1", "queued"), now) is False

    final = row(message)
    assert (final.status, final.error) == ("delivered", None)


def test_callbacks_in_order_each_change_once(ctx: None, sender: Sender) -> None:
    message = handed_to_twilio(sender, "SM2")
    now = messages_now()

    changes = [
        messages.record_status(status_form("SM2", s), now) for s in ("sending", "sent", "sent", "failed")
    ]

    assert changes == [False, True, False, True]
    assert (row(message).status, row(message).error) == ("failed", "failed")


def test_a_callback_for_an_unknown_message_changes_nothing(ctx: None, sender: Sender) -> None:
    message = handed_to_twilio(sender, "SM3")

    assert messages.record_status(status_form("SM404", "delivered"), messages_now()) is False
    assert messages.record_status(status_form("SM404", "delivered"), messages_now(), message) is False
    assert messages.record_status({"MessageStatus": "delivered"}, messages_now()) is False
    assert messages.record_status(status_form("SM3", "weird"), messages_now()) is False
    assert row(message).status == "sending"


def test_a_callback_that_beats_the_worker_finds_the_message_by_its_id(
    ctx: None, mailbox: Mailbox, sender: Sender
) -> None:
    queued = messages.queue_message(sender, Draft("sms", "Hej", to="+46701111111"), messages_now())
    [claim] = messages._claim(messages_now())

    assert messages.record_status(status_form("SM5", "sent"), messages_now(), queued.id) is True
    messages._record_accepted(claim, messages_now(), "SM5")  # the worker's own record comes after

    sent = row(queued.id)
    assert (sent.status, sent.provider_id, sent.next_attempt_at) == ("sent", "SM5", None)
    with db.transaction() as session:
        assert messages.next_due(session) is None


def test_the_worker_round_sends_due_messages(
    ctx: None, mailbox: Mailbox, sender: Sender, clock: ManualClock
) -> None:
    """`run_pending`, the worker's round, sends what is due; nothing else has to call `send_due`."""
    from queue_app import worker

    queued = messages.queue_message(sender, email_draft(), clock.now())
    worker.run_pending(clock.now())
    assert len(mailbox.received) == 1
    assert row(queued.id).status == "sent"

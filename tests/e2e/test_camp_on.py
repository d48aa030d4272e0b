"""What a caller camping on a busy colleague hears, in the queue's language (web/offers.py,
services/transfers.py `camp_on_words`): why they wait, music, and now and then that they still do."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import Call, DirectoryEntry, Prompt, Queue, Transfer
from queue_app.services import operators, transfers
from queue_app.sim import CallerScript, CallHandle, ClientDevice, Emulator, PhoneNumber

from .scenario import make_switchboard

CALLER = "+46701234567"
COLLEAGUE = "+46701112233"


def camp_on_busy_colleague(
    app: Flask,
    clock: ManualClock,
    emulator: Emulator,
    incoming_number: Callable[[str], str],
    language: str = "sv",
    prompt: str | None = None,
) -> CallHandle:
    """Anna transfers the caller to Anna Berg (directory), whose phone is busy."""
    app.config.update(CAMP_ON_SECONDS=300, CAMP_ON_RETRY_SECONDS=90)
    emulator.register_number(COLLEAGUE, PhoneNumber(mode="busy"))
    with app.app_context():
        board = make_switchboard(("op_anna",), language=language)
        operators.log_in(board.operators["op_anna"], [board.queue_id], clock.now())
        with db.transaction() as session:
            entry = DirectoryEntry(
                organisation_id=board.organisation_id, name="Anna Berg", phone_number=COLLEAGUE
            )
            session.add(entry)
            if prompt:
                session.add(
                    Prompt(
                        organisation_id=board.organisation_id, kind="camp_on", language=language, text=prompt
                    )
                )
            session.flush()
            entry_id = entry.id
    emulator.register_client("op_anna", ClientDevice(mode="answer", answer_after=2))
    call = emulator.place_call(CALLER, incoming_number(board.number), CallerScript(patience=None))
    assert call.wait_until(lambda: call.bridged_with is not None, timeout=120)
    with app.app_context():
        with db.transaction() as session:
            call_id = session.scalars(select(Call.id).where(Call.call_sid == call.sid)).one()
        transfer_id = transfers.start_blind_transfer(
            call_id, board.operators["op_anna"], COLLEAGUE, clock.now()
        )
        with db.transaction() as session:
            session.get_one(Transfer, transfer_id).directory_entry_id = entry_id
    emulator.tick_now()
    return call


def test_a_camped_on_caller_hears_who_is_busy_and_then_that_they_still_wait(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    call = camp_on_busy_colleague(app, clock, emulator, incoming_number)

    assert call.wait_until_heard("Anna Berg pratar i ett annat samtal just nu.", timeout=30)
    intro = [t for t in call.heard_texts if "Anna Berg pratar i ett annat" in t]
    assert intro == [
        "Anna Berg pratar i ett annat samtal just nu. Du väntar nu på Anna Berg, "
        "och vi försöker koppla dig igen om en liten stund."
    ]
    # Hold music first, then (about half a minute later) the update, in Swedish.
    emulator.advance(12)  # the intro takes about eight seconds to say
    assert call.heard_play_of("/twilio/audio/hold.wav")
    assert not call.heard_text_contains("fortfarande")
    assert call.wait_until_heard("Anna Berg pratar fortfarande i telefon.", timeout=60)
    assert call.heard_text_contains("Var vänlig dröj kvar, vi försöker fortfarande koppla dig.")
    assert emulator.errors == []


def test_an_english_queue_tells_the_caller_in_english(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    call = camp_on_busy_colleague(app, clock, emulator, incoming_number, language="en")

    assert call.wait_until_heard("Anna Berg is busy on another call.", timeout=30)
    assert call.heard_text_contains("You are now waiting for Anna Berg")
    assert call.wait_until_heard("Anna Berg is still busy. Please hold", timeout=90)
    assert not call.heard_text_contains("pratar")
    assert emulator.errors == []


def test_the_organisations_camp_on_prompt_replaces_the_built_in_words(
    app: Flask, clock: ManualClock, emulator: Emulator, incoming_number: Callable[[str], str]
) -> None:
    own = "Den du söker är upptagen. Vi kopplar dig så fort det går."
    call = camp_on_busy_colleague(app, clock, emulator, incoming_number, prompt=own)

    assert call.wait_until_heard(own, timeout=30)
    emulator.advance(60)
    assert len([t for t in call.heard_texts if t == own]) >= 2  # said again as the update
    assert not call.heard_text_contains("Anna Berg pratar")
    with app.app_context(), db.transaction() as session:
        assert session.scalars(select(Queue.language)).one() == "sv"
    assert emulator.errors == []

"""The console's JSON API: every endpoint, its refusals, and its description (static/openapi.yaml)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import (
    Call,
    DirectoryEntry,
    MissedCall,
    OperatorStatus,
    Queue,
    SentMessage,
    Transfer,
    User,
)
from queue_app.services import console, operators
from queue_app.services.config_import import search_text

from ..factories import Personas, login, make_membership, make_queue

API = "/api/v1"


class Api:
    """A logged-in console: JSON in and out, with the CSRF header the console sends."""

    def __init__(self, client: FlaskClient, email: str, locale: str = "en") -> None:
        self.client = client
        with db.transaction() as session:
            # English messages to assert on; the page tests cover Swedish.
            session.scalars(select(User).where(User.email == email)).one().locale = locale
        assert login(client, email).status_code == 302
        self.token = client.get(f"{API}/me").get_json()["csrf_token"]

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(API + path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.post(API + path, json=json, headers={"X-CSRFToken": self.token}, **kwargs)

    def patch(self, path: str, json: Any = None) -> Any:
        return self.client.patch(API + path, json=json, headers={"X-CSRFToken": self.token})


@pytest.fixture
def bob(client: FlaskClient, personas: Personas) -> Api:
    return Api(client, personas.bob.email)


@pytest.fixture
def alice(app: Flask, personas: Personas) -> Api:
    return Api(app.test_client(), personas.alice.email)


@pytest.fixture
def charlie(app: Flask, personas: Personas) -> Api:
    return Api(app.test_client(), personas.charlie.email)


def add_call(
    app: Flask, org_id: int, queue_id: int | None, number: str, entered_at: Any, **values: Any
) -> int:
    with app.app_context(), db.transaction() as session:
        call = Call(
            organisation_id=org_id,
            queue_id=queue_id,
            call_sid=f"CA{number.strip('+')}{entered_at.timestamp():.0f}{values.get('state', 'w')}",
            from_number=number,
            to_number="+46855500001",
            state="waiting",
            arrived_at=entered_at,
            entered_queue_at=entered_at,
        )
        for key, value in values.items():
            setattr(call, key, value)
        session.add(call)
        session.flush()
        return call.id


def add_entry(app: Flask, org_id: int, name: str, **values: Any) -> int:
    with app.app_context(), db.transaction() as session:
        entry = DirectoryEntry(organisation_id=org_id, name=name, **values)
        entry.search_text = search_text(name, entry.department, entry.title, entry.keywords)
        session.add(entry)
        session.flush()
        return entry.id


def status_of(app: Flask, user_id: int) -> OperatorStatus:
    with app.app_context(), db.transaction() as session:
        status = session.get(OperatorStatus, user_id)
        assert status is not None
        return status


# --- authentication and CSRF ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/me", "/queues", "/live", "/directory?q=a", "/history", "/missed", "/openapi.yaml"]
)
def test_it_answers_401_json_to_anonymous_callers(client: FlaskClient, personas: Personas, path: str) -> None:
    response = client.get(API + path)

    assert response.status_code == 401
    assert response.get_json()["error"] == "login_required"


def test_it_refuses_a_post_without_the_csrf_header(bob: Api, personas: Personas) -> None:
    response = bob.client.post(f"{API}/queues/{personas.bob.queue_id}/login", json={})

    assert response.status_code == 400
    assert response.get_json()["error"] == "csrf_failed"
    assert response.get_json()["message"]
    assert status_of_or_none(bob, personas.bob.user_id) is None


def status_of_or_none(api: Api, user_id: int) -> OperatorStatus | None:
    with db.transaction() as session:
        return session.get(OperatorStatus, user_id)


def test_it_refuses_a_patch_without_the_csrf_header(bob: Api, app: Flask, personas: Personas) -> None:
    entry = add_entry(app, personas.bob.organisation_id, "Bob", user_id=personas.bob.user_id)

    response = bob.client.patch(f"{API}/directory/{entry}/availability", json={"availability": "away"})

    assert response.status_code == 400
    assert response.get_json()["error"] == "csrf_failed"


# --- me, log-in per queue, pause, wrap-up ---------------------------------------------------------


def test_it_describes_the_operator(bob: Api, personas: Personas) -> None:
    me = bob.get("/me").get_json()

    assert me["user"]["email"] == personas.bob.email
    assert me["user"]["may_take_calls"] is True
    assert me["operator"]["state"] == "offline"
    assert me["operator"]["queue_ids"] == []
    assert me["logged_out"] is None
    assert me["csrf_token"]


def test_it_logs_in_to_and_out_of_a_queue(bob: Api, personas: Personas) -> None:
    queue_id = personas.bob.queue_id

    logged_in = bob.post(f"/queues/{queue_id}/login")

    assert logged_in.status_code == 200
    assert logged_in.get_json()["operator"]["state"] == "available"
    assert logged_in.get_json()["operator"]["queue_ids"] == [queue_id]
    queue = bob.get("/queues").get_json()["queues"][0]
    assert (queue["logged_in"], queue["operators_logged_in"], queue["operators_free"]) == (True, 1, 1)

    logged_out = bob.post(f"/queues/{queue_id}/logout")

    assert logged_out.status_code == 200
    assert logged_out.get_json()["operator"]["state"] == "offline"
    assert bob.get("/queues").get_json()["queues"][0]["operators_logged_in"] == 0


def test_it_refuses_log_in_to_a_see_only_queue_with_403(alice: Api, personas: Personas) -> None:
    response = alice.post(f"/queues/{personas.alice.queue_id}/login")

    assert response.status_code == 403
    assert "not take its calls" in response.get_json()["message"]
    assert alice.post(f"/queues/{personas.alice.queue_id}/logout").status_code == 403


def test_it_answers_404_for_another_organisations_queue(charlie: Api, personas: Personas) -> None:
    assert charlie.post(f"/queues/{personas.alice.queue_id}/login").status_code == 404
    assert charlie.post(f"/queues/{personas.alice.queue_id}/logout").status_code == 404
    assert charlie.post("/queues/999999/login").get_json()["error"] == "not_found"
    assert charlie.post("/queues/99999999999/login").status_code == 404


def test_it_refuses_log_in_without_a_plan_that_includes_it(app: Flask, bob: Api, personas: Personas) -> None:
    with db.transaction() as session:
        session.get_one(User, personas.bob.user_id).plan = "basic"

    response = bob.post(f"/queues/{personas.bob.queue_id}/login")

    assert response.status_code == 403
    assert "plan" in response.get_json()["message"]


def test_it_pauses_with_a_reason_and_resumes(bob: Api, personas: Personas) -> None:
    bob.post(f"/queues/{personas.bob.queue_id}/login")

    paused = bob.post("/me/pause", json={"reason": "Lunch"})

    assert paused.status_code == 200
    assert paused.get_json()["operator"]["state"] == "paused"
    assert paused.get_json()["operator"]["pause_reason"] == "Lunch"
    resumed = bob.post("/me/resume")
    assert resumed.get_json()["operator"]["state"] == "available"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"reason": "x" * 101}, 422, "at most 100 characters"),
        ({"reason": 7}, 422, "must be text"),
        (["not", "an", "object"], 400, "JSON object"),
    ],
)
def test_it_validates_the_pause_reason(
    bob: Api, personas: Personas, body: Any, status: int, message: str
) -> None:
    bob.post(f"/queues/{personas.bob.queue_id}/login")

    response = bob.post("/me/pause", json=body)

    assert response.status_code == status
    assert message in response.get_json()["message"]


def test_it_refuses_to_pause_when_not_logged_in(bob: Api) -> None:
    response = bob.post("/me/pause", json={"reason": "Coffee"})

    assert response.status_code == 409
    assert "Log in" in response.get_json()["message"]


def wrap_up(app: Flask, user_id: int, until: Any) -> None:
    with app.app_context(), db.transaction() as session:
        status = session.get_one(OperatorStatus, user_id)
        status.state = "wrap_up"
        status.wrap_up_until = until


def test_it_extends_and_ends_wrap_up(app: Flask, bob: Api, personas: Personas, clock: ManualClock) -> None:
    bob.post(f"/queues/{personas.bob.queue_id}/login")
    wrap_up(app, personas.bob.user_id, clock.now() + timedelta(seconds=30))

    extended = bob.post("/me/wrap-up/extend", json={"seconds": 60}).get_json()["operator"]

    assert extended["state"] == "wrap_up"
    assert extended["wrap_up_remaining_seconds"] == 90
    ended = bob.post("/me/wrap-up/end").get_json()["operator"]
    assert ended["state"] == "available"


@pytest.mark.parametrize("seconds", [-5, 0, "60", 1.5, True, None, 3601])
def test_it_refuses_a_bad_wrap_up_extension(
    app: Flask, bob: Api, personas: Personas, clock: ManualClock, seconds: Any
) -> None:
    bob.post(f"/queues/{personas.bob.queue_id}/login")
    wrap_up(app, personas.bob.user_id, clock.now() + timedelta(seconds=30))

    response = bob.post("/me/wrap-up/extend", json={"seconds": seconds})

    assert response.status_code == 422
    assert "whole number" in response.get_json()["message"]


def test_it_refuses_to_extend_when_not_in_wrap_up(bob: Api, personas: Personas) -> None:
    bob.post(f"/queues/{personas.bob.queue_id}/login")

    response = bob.post("/me/wrap-up/extend", json={"seconds": 30})

    assert response.status_code == 409
    assert response.get_json()["message"] == "You are not in wrap-up."


def test_it_tells_once_why_the_operator_was_logged_out(
    app: Flask, bob: Api, personas: Personas, clock: ManualClock
) -> None:
    bob.post(f"/queues/{personas.bob.queue_id}/login")
    with db.transaction() as session:
        queue = session.get_one(Queue, personas.bob.queue_id)
        for _ in range(queue.max_missed_offers):
            operators.record_missed_offer(session, personas.bob.user_id, queue, "no_answer", clock.now())
    assert bob.get("/live").get_json()["operator"]["notice_pending"] is True

    first = bob.get("/me").get_json()
    second = bob.get("/me").get_json()

    assert first["operator"]["state"] == "offline"
    assert first["logged_out"]["reason"] == "missed_offers"
    assert first["logged_out"]["message"] == "You were logged out after 3 unanswered calls."
    assert second["logged_out"] is None
    assert bob.get("/live").get_json()["operator"]["notice_pending"] is False


# --- heartbeat and vanished consoles --------------------------------------------------------------


def test_it_records_heartbeats_and_finds_vanished_consoles(
    app: Flask, bob: Api, personas: Personas, clock: ManualClock
) -> None:
    bob.post(f"/queues/{personas.bob.queue_id}/login")
    clock.advance(10)
    assert bob.post("/me/heartbeat").get_json()["recorded"] is True
    assert status_of(app, personas.bob.user_id).last_heartbeat_at == clock.now()

    clock.advance(50)
    assert console.vanished_operators(clock.now(), after_seconds=60) == []
    clock.advance(11)
    vanished = console.vanished_operators(clock.now(), after_seconds=60)

    assert [(v.user_id, v.last_seen_at) for v in vanished] == [
        (personas.bob.user_id, clock.now() - timedelta(seconds=61))
    ]


def test_it_counts_a_fresh_log_in_as_a_sign_of_life(bob: Api, personas: Personas, clock: ManualClock) -> None:
    bob.post(f"/queues/{personas.bob.queue_id}/login")  # no heartbeat yet

    assert console.vanished_operators(clock.now() + timedelta(seconds=59), after_seconds=60) == []
    assert len(console.vanished_operators(clock.now() + timedelta(seconds=61), after_seconds=60)) == 1


def test_it_records_no_heartbeat_for_someone_never_logged_in(bob: Api) -> None:
    assert bob.post("/me/heartbeat").get_json()["recorded"] is False


# --- live figures --------------------------------------------------------------------------------


def test_it_shows_each_waiting_caller_and_the_longest_wait(
    app: Flask, bob: Api, personas: Personas, clock: ManualClock
) -> None:
    q = personas.bob.queue_id
    org = personas.bob.organisation_id
    add_call(app, org, q, "+46701111111", clock.now() - timedelta(seconds=90))
    add_call(app, org, q, "+46702222222", clock.now() - timedelta(seconds=30), state="offered")
    add_call(app, org, q, "+46703333333", clock.now() - timedelta(seconds=300), state="completed")
    add_call(app, personas.charlie.organisation_id, personas.charlie.queue_id, "+46709999999", clock.now())

    queues = bob.get("/queues").get_json()["queues"]

    assert len(queues) == 1
    queue = queues[0]
    assert queue["callers_waiting"] == 2
    assert queue["longest_wait_seconds"] == 90
    assert [(c["number"], c["waiting_seconds"], c["position"]) for c in queue["callers"]] == [
        ("+46701111111", 90, 1),
        ("+46702222222", 30, 2),
    ]


def test_it_shows_see_only_queues_read_only(alice: Api, personas: Personas) -> None:
    queue = alice.get("/queues").get_json()["queues"][0]

    assert queue["id"] == personas.alice.queue_id
    assert queue["may_log_in"] is False


def test_it_answers_304_until_the_figures_change(
    app: Flask, bob: Api, personas: Personas, clock: ManualClock
) -> None:
    first = bob.get("/live")
    etag = first.headers["ETag"]
    assert first.status_code == 200
    assert first.get_json()["etag"] == etag.strip('"')

    clock.advance(5)  # waits grow, but the console counts seconds itself
    assert bob.get("/live", headers={"If-None-Match": etag}).status_code == 304
    assert bob.get(f"/live?since={etag.strip(chr(34))}").status_code == 304

    add_call(app, personas.bob.organisation_id, personas.bob.queue_id, "+46701111111", clock.now())
    changed = bob.get("/live", headers={"If-None-Match": etag})

    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.get_json()["queues"][0]["callers_waiting"] == 1


def test_it_changes_the_etag_when_the_operator_changes(bob: Api, personas: Personas) -> None:
    etag = bob.get("/live").headers["ETag"]
    bob.post(f"/queues/{personas.bob.queue_id}/login")

    assert bob.get("/live", headers={"If-None-Match": etag}).status_code == 200


# --- directory ------------------------------------------------------------------------------------


@pytest.fixture
def people(app: Flask, personas: Personas) -> dict[str, int]:
    org = personas.bob.organisation_id
    return {
        "ake": add_entry(
            app, org, "Åke Öberg", department="Ekonomi", title="Ekonomichef", phone_number="+46846500413"
        ),
        "orjan": add_entry(app, org, "Örjan Lind", department="Lager"),
        "hakan": add_entry(app, org, "Håkan Ek", department="Sälj", keywords="ake-projektet"),
        "bob": add_entry(app, org, "Bob Operatör", user_id=personas.bob.user_id),
        "other": add_entry(app, personas.charlie.organisation_id, "Åke Annan"),
    }


def names(response: Any) -> list[str]:
    return [r["name"] for r in response.get_json()["results"]]


def test_it_finds_colleagues_without_diacritics(bob: Api, people: dict[str, int]) -> None:
    assert names(bob.get("/directory?q=ake"))[0] == "Åke Öberg"
    assert names(bob.get("/directory?q=orjan")) == ["Örjan Lind"]
    assert names(bob.get("/directory?q=ÖBERG")) == ["Åke Öberg"]
    assert names(bob.get("/directory?q=08-465 004 13")) == ["Åke Öberg"]


def test_it_never_shows_another_organisations_colleagues(charlie: Api, people: dict[str, int]) -> None:
    assert names(charlie.get("/directory?q=ake")) == ["Åke Annan"]
    assert charlie.get(f"/directory/{people['ake']}").status_code == 404


def test_it_shows_one_colleague_and_404_for_unknown(bob: Api, people: dict[str, int]) -> None:
    entry = bob.get(f"/directory/{people['ake']}").get_json()["entry"]

    assert entry["department"] == "Ekonomi"
    assert entry["availability"]["state"] == "free"
    assert bob.get("/directory/999999").status_code == 404


@pytest.mark.parametrize(
    ("query", "message"), [("?q=" + "a" * 201, "at most 200"), ("?q=a&limit=0", "limit")]
)
def test_it_refuses_bad_searches(bob: Api, people: dict[str, int], query: str, message: str) -> None:
    response = bob.get("/directory" + query)

    assert response.status_code == 422
    assert message in response.get_json()["message"]


def test_a_colleague_sets_their_own_availability(
    bob: Api, people: dict[str, int], clock: ManualClock
) -> None:
    response = bob.patch(
        f"/directory/{people['bob']}/availability",
        {"availability": "away", "note": "Lunch", "until": "13:00"},
    )

    assert response.status_code == 200
    availability = response.get_json()["entry"]["availability"]
    assert availability == {
        "state": "away",
        "note": "Lunch",
        "until": "2026-11-25T12:00:00Z",  # 13:00 in Stockholm
        "until_local": "13:00",
        "on_call": False,
    }
    clock.advance(hours=3)
    assert bob.get(f"/directory/{people['bob']}").get_json()["entry"]["availability"]["state"] == "free"


def test_only_admins_set_someone_elses_availability(bob: Api, alice: Api, people: dict[str, int]) -> None:
    refused = bob.patch(f"/directory/{people['ake']}/availability", {"availability": "busy"})
    allowed = alice.patch(f"/directory/{people['ake']}/availability", {"availability": "busy"})

    assert refused.status_code == 403
    assert "administrators" in refused.get_json()["message"]
    assert allowed.status_code == 200
    assert allowed.get_json()["entry"]["availability"]["state"] == "busy"


def test_it_answers_404_for_availability_of_others_and_unknown(charlie: Api, people: dict[str, int]) -> None:
    assert (
        charlie.patch(f"/directory/{people['ake']}/availability", {"availability": "free"}).status_code == 404
    )
    assert charlie.patch("/directory/999999/availability", {"availability": "free"}).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"availability": "gone"}, "free, busy or away"),
        ({}, "free, busy or away"),
        ({"availability": "away", "until": "09:00"}, "in the future"),
        ({"availability": "away", "until": "soon"}, "13:00"),
        ({"availability": "away", "note": "x" * 201}, "at most 200"),
        ({"availability": "away", "note": 3}, "text"),
    ],
)
def test_it_validates_availability(
    alice: Api, people: dict[str, int], body: dict[str, Any], message: str
) -> None:
    response = alice.patch(f"/directory/{people['ake']}/availability", body)

    assert response.status_code == 422
    assert message in response.get_json()["message"]


def test_it_shows_a_colleague_on_a_call_as_busy(bob: Api, personas: Personas, people: dict[str, int]) -> None:
    bob.post(f"/queues/{personas.bob.queue_id}/login")
    with db.transaction() as session:
        session.get_one(OperatorStatus, personas.bob.user_id).state = "on_call"

    entry = bob.get(f"/directory/{people['bob']}").get_json()["entry"]

    assert entry["availability"]["state"] == "busy"
    assert entry["availability"]["on_call"] is True
    assert entry["is_me"] is True


# --- history and missed callers -------------------------------------------------------------------


def test_it_lists_the_operators_recent_calls_with_outcome(
    app: Flask, bob: Api, charlie: Api, personas: Personas, people: dict[str, int], clock: ManualClock
) -> None:
    org, q, me = personas.bob.organisation_id, personas.bob.queue_id, personas.bob.user_id
    start = clock.now() - timedelta(minutes=30)
    answered = add_call(
        app, org, q, "+46701111111", start, state="completed", answered_by_id=me,
        answered_at=start + timedelta(seconds=20), ended_at=start + timedelta(seconds=140),
    )  # fmt: skip
    transferred = add_call(
        app, org, q, "+46702222222", start + timedelta(minutes=5), state="completed", answered_by_id=me,
        answered_at=start + timedelta(minutes=6), ended_at=start + timedelta(minutes=7),
    )  # fmt: skip
    add_call(app, org, q, "+46703333333", start, state="completed", answered_by_id=personas.alice.user_id)
    with db.transaction() as session:
        session.add(
            Transfer(
                organisation_id=org, call_id=transferred, from_user_id=me, directory_entry_id=people["ake"],
                to_number="+46846500413", kind="blind", state="connected", created_at=start,
            )
        )  # fmt: skip
        session.add(
            SentMessage(
                organisation_id=org, call_id=answered, sent_by_id=me, channel="sms",
                to_address="+46701740608", body="Ring tillbaka", status="delivered",
                created_at=start, updated_at=start,
            )
        )  # fmt: skip

    calls = bob.get("/history").get_json()["calls"]

    assert [(c["caller_number"], c["outcome"]) for c in calls] == [
        ("+46702222222", "transferred"),
        ("+46701111111", "answered"),
    ]
    assert calls[0]["transfers"][0]["to_name"] == "Åke Öberg"
    assert calls[1]["messages"][0]["status"] == "delivered"
    assert calls[1]["duration_seconds"] == 120
    assert charlie.get("/history").get_json()["calls"] == []
    assert bob.get("/history?limit=abc").status_code == 422


def add_missed(
    app: Flask, org_id: int, queue_id: int, number: str, at: Any, reason: str = "abandoned"
) -> int:
    call_id = add_call(
        app, org_id, queue_id, number, at, state="abandoned", ended_at=at + timedelta(seconds=45)
    )
    with db.transaction() as session:
        missed = MissedCall(
            organisation_id=org_id, call_id=call_id, queue_id=queue_id, reason=reason, created_at=at
        )
        session.add(missed)
        session.flush()
        return missed.id


def test_it_shares_the_missed_callers_and_marks_them_handled(
    app: Flask, bob: Api, alice: Api, charlie: Api, personas: Personas, clock: ManualClock
) -> None:
    org, q = personas.bob.organisation_id, personas.bob.queue_id
    first = add_missed(app, org, q, "+46701111111", clock.now() - timedelta(minutes=10))
    add_missed(app, org, q, "+46701111111", clock.now() - timedelta(minutes=5), reason="callback")
    add_missed(app, personas.charlie.organisation_id, personas.charlie.queue_id, "+46709999999", clock.now())

    listed = bob.get("/missed").get_json()["missed"]

    assert [(m["number"], m["reason"], m["waited_seconds"], m["earlier_open"]) for m in listed] == [
        ("+46701111111", "abandoned", 45, 1),
        ("+46701111111", "callback", 45, 1),
    ]
    assert alice.get("/missed").get_json()["missed"] == listed  # one shared list
    assert charlie.post(f"/missed/{first}/handled").status_code == 404

    handled = bob.post(f"/missed/{first}/handled")

    assert handled.status_code == 200
    assert handled.get_json()["missed"]["status"] == "handled"
    assert handled.get_json()["missed"]["handled_by"] == "Bob"
    again = alice.post(f"/missed/{first}/handled").get_json()["missed"]
    assert again["handled_by"] == "Bob"
    assert len(bob.get("/missed").get_json()["missed"]) == 1
    assert [m["id"] for m in bob.get("/missed?status=handled").get_json()["missed"]] == [first]
    assert len(bob.get("/missed?status=all").get_json()["missed"]) == 2
    assert bob.get("/live").get_json()["missed_open"] == 1


def test_it_hides_missed_callers_of_queues_the_operator_does_not_see(
    app: Flask, bob: Api, personas: Personas, clock: ManualClock
) -> None:
    with db.transaction() as session:
        org = session.get_one(Queue, personas.bob.queue_id).organisation_id
        from queue_app.models import Organisation

        hidden = make_queue(session, session.get_one(Organisation, org), name="Ledning")
        hidden_id = hidden.id
    missed = add_missed(app, org, hidden_id, "+46701111111", clock.now())

    assert bob.get("/missed").get_json()["missed"] == []
    assert bob.post(f"/missed/{missed}/handled").status_code == 404
    assert bob.get("/missed?status=later").status_code == 422


def test_it_shows_queues_added_by_membership(app: Flask, bob: Api, personas: Personas) -> None:
    with db.transaction() as session:
        from queue_app.models import Organisation

        org = session.get_one(Organisation, personas.bob.organisation_id)
        extra = make_queue(session, org, name="Ekonomi")
        make_membership(session, extra, session.get_one(User, personas.bob.user_id), may_log_in=False)

    names_ = [q["name"] for q in bob.get("/queues").get_json()["queues"]]

    assert names_ == ["Ekonomi", "Växeln"]


# --- the description -----------------------------------------------------------------------------


@pytest.fixture
def spec(bob: Api) -> dict[str, Any]:
    response = bob.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    return yaml.safe_load(response.get_data(as_text=True))


def test_the_openapi_document_validates(spec: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    validate(spec)
    assert spec["openapi"].startswith("3.1")


def flask_routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API + "/"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)[len(API) :]
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes.add((path, method.lower()))
    return routes


def test_every_api_route_is_described_and_nothing_else(app: Flask, spec: dict[str, Any]) -> None:
    assert spec["servers"][0]["url"] == API
    described = {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }

    assert described == flask_routes(app)


def test_every_unsafe_operation_documents_the_csrf_header(spec: dict[str, Any]) -> None:
    for path, item in spec["paths"].items():
        for method in ("post", "patch"):
            if method in item:
                refs = [p.get("$ref") for p in item[method].get("parameters", [])]
                assert "#/components/parameters/CsrfToken" in refs, (method, path)
                assert "400" in item[method]["responses"], (method, path)

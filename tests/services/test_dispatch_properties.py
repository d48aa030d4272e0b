"""Property tests: random sequences of what happens in a switchboard, applied through the services.

Callers arrive and hang up; offers are answered, declined, ring out or time out; operators log in
and out, pause and end their wrap-up; status callbacks come twice or late. The caller waits in their
own queue while each operator is rung on a leg of their own: answers, declines and ring-outs come as
that leg's webhooks, and the worker hangs up the legs whose offer ended. After every step:
- no call rings in two offer groups at once, and no operator rings for two calls;
- nobody who rings is also available, and no operator is connected to two callers;
- a call that reached a final state never leaves it;
and after every dispatch round no caller waits while an available operator of their queue could
take them (skills and their widening over time included, in half the examples), and the worker's
next deadline comes no later than the instant widening would let a free operator take a waiting
caller: nobody waits for an eligible operator longer than until the worker's next round. The worker
never hangs up a leg whose offer still rings or was taken, nor one twice. At the end every caller
is hung up, every call has ended in a final state, and no operator's leg is left up.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from queue_app import worker
from queue_app.clock import ManualClock
from queue_app.domain import routing
from queue_app.domain.states import is_final
from queue_app.extensions import db
from queue_app.models import Call, Offer, OperatorStatus, Queue, QueueLogin, QueueSkill, Skill, UserSkill
from queue_app.services import calls as call_service
from queue_app.services import dispatch, offers, operators
from queue_app.services.operators import OperatorError

from ..factories import make_membership, make_org, make_queue, make_user

_sids = itertools.count(1)
OPERATORS = 3
QUEUES = 2


class FakeRest:
    """Twilio's REST port: the operators' legs it created and the ones it was asked to hang up."""

    def __init__(self) -> None:
        self.legs: dict[str, tuple[str, int]] = {}  # sid -> (offer group, operator)
        self.hung_up: list[str] = []
        self.wrong: list[tuple[str, str | None]] = []

    def redirect_call(self, call_sid: str, url: str) -> str:
        return "in-progress"

    def create_call(self, to: str, from_: str, url: str, **_: Any) -> str:
        found = re.search(r"/twilio/offer/([^/]+)/answer\?operator=(\d+)$", url)
        assert found, url  # no callbacks here: every outbound call is an operator's offer leg
        sid = f"CA{next(_sids):032x}"
        self.legs[sid] = (found[1], int(found[2]))
        return sid

    def hang_up(self, call_sid: str) -> None:
        # The worker catches what a hang-up raises, so a wrong request is noted for World.check.
        with db.transaction() as session:
            state = session.scalar(select(Offer.state).where(Offer.leg_sid == call_sid))
        if call_sid not in self.legs or call_sid in self.hung_up or state in ("ringing", "accepted"):
            self.wrong.append((call_sid, state))  # never a live offer's leg, and each leg once
        self.hung_up.append(call_sid)


@pytest.fixture
def ctx(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRest]:
    rest = FakeRest()
    monkeypatch.setattr(worker.TwilioRest, "from_app", classmethod(lambda cls: rest))
    with app.app_context():
        yield rest


WIDEN_AFTER = 20
# The first queue needs English at level 3 when skills are in play, and nobody quite has it: the
# operators qualify after one, two and three widening steps (levels 2, 1 and none), so every
# caller there waits for widening, and the worker must come back at the right instants.
ENGLISH = (2, 1, None)


def give_skills(session: Any, org_id: int, queue_id: int, users: list[int]) -> None:
    skill = Skill(organisation_id=org_id, name="english")
    session.add(skill)
    session.flush()
    session.add(QueueSkill(queue_id=queue_id, skill_id=skill.id, min_level=3))
    for user_id, level in zip(users, ENGLISH, strict=True):
        if level is not None:
            session.add(UserSkill(user_id=user_id, skill_id=skill.id, level=level))


class World:
    """One organisation per example: its queues, operators, callers and the callbacks sent so far."""

    def __init__(
        self, clock: ManualClock, rest: FakeRest, strategies: tuple[str, str], skilled: bool = False
    ) -> None:
        self.clock = clock
        self.rest = rest
        rest.legs.clear()  # one example's legs; the fixture's port outlives it
        rest.hung_up.clear()
        rest.wrong.clear()
        self.reported: set[str] = set()  # hung-up legs whose end Twilio has reported
        with db.transaction() as session:
            org = make_org(session)
            queues = [
                make_queue(
                    session,
                    org,
                    strategy=strategy,
                    parallel_count=2,
                    ring_timeout_seconds=15,
                    wrap_up_seconds=10,
                    max_missed_offers=2,
                    skill_widen_after_seconds=WIDEN_AFTER if skilled else None,
                )
                for strategy in strategies
            ]
            users = [make_user(session, org) for _ in range(OPERATORS)]
            for queue in queues:
                for user in users:
                    make_membership(session, queue, user)
            if skilled:
                give_skills(session, org.id, queues[0].id, [u.id for u in users])
            self.org = org.id
            self.queues = [q.id for q in queues]
            self.users = [u.id for u in users]
        self.calls: list[tuple[int, str]] = []
        self.sequence: Counter[str] = Counter()
        self.sent: list[Callable[[], Any]] = []  # every callback so far, to send again
        self.finals: dict[int, str] = {}

    @property
    def now(self) -> Any:
        return self.clock.now()

    # --- reading -----------------------------------------------------------------------------

    def offers(self, state: str) -> list[Offer]:
        with db.transaction() as session:
            return list(
                session.scalars(
                    select(Offer)
                    .where(Offer.organisation_id == self.org, Offer.state == state)
                    .order_by(Offer.id)
                )
            )

    def call_rows(self) -> list[Call]:
        with db.transaction() as session:
            return list(
                session.scalars(select(Call).where(Call.organisation_id == self.org).order_by(Call.id))
            )

    def statuses(self) -> dict[int, str]:
        with db.transaction() as session:
            rows = session.scalars(select(OperatorStatus).where(OperatorStatus.user_id.in_(self.users)))
            return {s.user_id: s.state for s in rows}

    # --- what happens ----------------------------------------------------------------------------

    def arrive(self, queue: int, priority: int) -> None:
        now = self.now
        with db.transaction() as session:
            call = Call(
                organisation_id=self.org,
                queue_id=self.queues[queue % QUEUES],
                call_sid=f"CA{next(_sids):032x}",
                from_number="+46701234567",
                to_number="+46855500001",
                state="waiting",
                priority=priority,
                arrived_at=now,
                entered_queue_at=now,
                announcement_state={"joined_at": now.isoformat()},  # their queue's waitUrl began
            )
            session.add(call)
            session.flush()
            self.calls.append((call.id, call.call_sid))

    def dispatch(self) -> None:
        upcoming = worker.run_pending(self.now)
        self.check_nobody_waits_for_a_free_operator(upcoming)
        # Twilio reports the end of each leg the worker hung up (ringing, so "canceled").
        for sid in self.rest.hung_up:
            if sid not in self.reported:
                self.reported.add(sid)
                key, user_id, at = *self.rest.legs[sid], self.now
                self._send(
                    lambda key=key, user_id=user_id, at=at: self._leg_status(key, user_id, "canceled", at)
                )

    def _send(self, callback: Callable[[], Any]) -> None:
        self.sent.append(callback)
        callback()

    def _leg_status(self, key: str, user_id: int, leg_status: str, at: datetime) -> None:
        """The operator leg's status callback (/twilio/offer/<group>/leg?operator=<id>)."""
        offers.record_leg_status(key, leg_status, at, user_id=user_id)

    def _caller_status(self, call_sid: str, at: datetime) -> None:
        """The caller's own status callback: their call is over."""
        self.sequence[call_sid] += 1
        status = call_service.StatusCallback(call_sid, "completed", self.sequence[call_sid])
        self._send(lambda: call_service.record_status(status, at))

    def _ringing_legs(self) -> list[Offer]:
        ringing = self.offers("ringing")
        assert all(o.leg_sid in self.rest.legs for o in ringing), ringing  # each rings on its own leg
        return ringing

    def leg(self, pick: int, leg_status: str) -> None:
        ringing = self._ringing_legs()
        if not ringing:
            return
        offer, at = ringing[pick % len(ringing)], self.now
        key, user_id, sid = offer.group_key, offer.user_id, offer.leg_sid or ""
        if leg_status == "in-progress":
            # The operator's browser answers: Twilio asks for the leg's TwiML (/answer), which takes
            # the caller out of their queue (asking the Queue url, /bridged, as the bridge forms),
            # and reports the answer to the status callback.
            self._send(lambda: self._answer(key, user_id, sid, at))
        self._send(lambda: self._leg_status(key, user_id, leg_status, at))

    def _answer(self, key: str, user_id: int, sid: str, at: datetime) -> None:
        if offers.answer_leg(key, user_id, sid, at, confirmed=False).step is offers.LegStep.BRIDGE:
            offers.bridge_formed(key, user_id, at)

    def ring_out(self, pick: int) -> None:
        groups = sorted({o.group_key for o in self._ringing_legs()})
        if groups:
            key, at = groups[pick % len(groups)], self.now
            for offer in self.offers("ringing"):
                if offer.group_key == key:
                    user_id = offer.user_id
                    self._send(lambda user_id=user_id: self._leg_status(key, user_id, "no-answer", at))

    def _talking(self) -> list[tuple[Offer, str]]:
        connected = {c.id: c.call_sid for c in self.call_rows() if c.state == "connected"}
        return [(o, connected[o.call_id]) for o in self.offers("accepted") if o.call_id in connected]

    def _operator_side_ends(self, offer: Offer, at: datetime) -> None:
        """The caller left the bridge: the operator leg's <Dial><Queue> ends (/done), then the leg."""
        key, user_id = offer.group_key, offer.user_id
        self._send(lambda: offers.leg_bridge_ended(key, user_id, "completed", at))
        self._send(lambda: self._leg_status(key, user_id, "completed", at))

    def talk_ends(self, pick: int) -> None:
        talking = self._talking()
        if not talking:
            return
        offer, call_sid = talking[pick % len(talking)]
        at = self.now
        if pick % 2 == 0:
            # The operator hangs up: their leg ends, the caller's Enqueue action says "bridged",
            # then the caller's call ends.
            key, user_id = offer.group_key, offer.user_id
            self._send(lambda: self._leg_status(key, user_id, "completed", at))
            self._send(lambda: offers.caller_bridge_ended(call_sid, at))
            self._caller_status(call_sid, at)
        else:
            self._caller_status(call_sid, at)
            self._operator_side_ends(offer, at)

    def hang_up(self, pick: int) -> None:
        live = [c for c in self.call_rows() if not is_final(c.state)]
        if not live:
            return
        call = live[pick % len(live)]
        talking = [o for o, sid in self._talking() if sid == call.call_sid]
        at = self.now
        self._caller_status(call.call_sid, at)
        # No Dial of the caller's to report anything else: legs still ringing for them are the
        # worker's to hang up. One they talk on ends its bridge.
        for offer in talking:
            self._operator_side_ends(offer, at)

    def replay(self, pick: int) -> None:
        """A callback Twilio sends again: a duplicate, or one arriving late, after later ones."""
        if self.sent:
            self.sent[pick % len(self.sent)]()

    def operator(self, action: str, who: int, queues: int) -> None:
        user_id, now = self.users[who % OPERATORS], self.now
        chosen = [q for i, q in enumerate(self.queues) if queues & (1 << i)] or self.queues[:1]
        try:
            if action == "log_in":
                operators.log_in(user_id, chosen, now)
            elif action == "log_out":
                operators.log_out(user_id, None if queues == 3 else chosen, now)
            elif action == "pause":
                operators.pause(user_id, "rast", now)
            elif action == "resume":
                operators.resume(user_id, now)
            elif action == "end_wrap_up":
                operators.end_wrap_up(user_id, now)
        except OperatorError:
            pass  # refused by the rules, as the console would be told

    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)
        dispatch.reclaim_expired_offers(self.now)
        operators.end_due_wrap_ups(self.now)

    # --- invariants ----------------------------------------------------------------------------

    def check(self) -> None:
        assert self.rest.wrong == [], self.rest.wrong
        ringing = self._ringing_legs()
        groups_per_call: dict[int, set[str]] = {}
        for offer in ringing:
            groups_per_call.setdefault(offer.call_id, set()).add(offer.group_key)
        assert all(len(g) == 1 for g in groups_per_call.values()), groups_per_call
        per_operator = Counter(o.user_id for o in ringing)
        assert not per_operator or max(per_operator.values()) == 1, per_operator
        states = self.statuses()
        assert all(states.get(o.user_id) != "available" for o in ringing), (states, ringing)
        rows = self.call_rows()
        connected = Counter(c.answered_by_id for c in rows if c.state == "connected")
        assert not connected or max(connected.values()) == 1, connected
        for call in rows:
            if call.id in self.finals:
                assert call.state == self.finals[call.id], (call.id, self.finals[call.id], call.state)
            elif is_final(call.state):
                self.finals[call.id] = call.state

    def check_nobody_waits_for_a_free_operator(self, upcoming: datetime | None) -> None:
        """No waiting caller has an operator free who could take them now, and the worker comes
        back by the instant skill widening would make one eligible (not at some later sweep)."""
        with db.transaction() as session:
            free: dict[int, set[int]] = {}
            for queue_id, user_id in session.execute(
                select(QueueLogin.queue_id, QueueLogin.user_id)
                .join(OperatorStatus, OperatorStatus.user_id == QueueLogin.user_id)
                .where(OperatorStatus.state == "available", QueueLogin.user_id.in_(self.users))
            ):
                free.setdefault(queue_id, set()).add(user_id)
            skills: dict[int, dict[str, int]] = {}
            for user_id, name, level in session.execute(
                select(UserSkill.user_id, Skill.name, UserSkill.level)
                .join(Skill, Skill.id == UserSkill.skill_id)
                .where(UserSkill.user_id.in_(self.users))
            ):
                skills.setdefault(user_id, {})[name] = level
            needs = {
                q: {name: level for _q, name, level in rows}
                for q, rows in itertools.groupby(
                    session.execute(
                        select(QueueSkill.queue_id, Skill.name, QueueSkill.min_level)
                        .join(Skill, Skill.id == QueueSkill.skill_id)
                        .where(QueueSkill.queue_id.in_(self.queues))
                        .order_by(QueueSkill.queue_id)
                    ),
                    key=lambda row: row[0],
                )
            }
            widen = {q: w for q, w in session.execute(select(Queue.id, Queue.skill_widen_after_seconds))}
            waiting = session.execute(
                select(Call.id, Call.queue_id, Call.entered_queue_at).where(
                    Call.organisation_id == self.org, Call.state == "waiting"
                )
            ).all()
        for call_id, queue_id, entered in waiting:
            waited = (self.now - entered).total_seconds()
            steps = routing.widening_steps(waited, widen.get(queue_id))
            for user_id in free.get(queue_id, ()):
                tier = routing.skill_tier(needs.get(queue_id, {}), skills.get(user_id, {}))
                assert tier > steps, (call_id, user_id, tier, steps)
                period = widen.get(queue_id)
                if period:
                    eligible_at = entered + timedelta(seconds=period * tier)
                    assert upcoming is not None and upcoming <= eligible_at, (call_id, upcoming, eligible_at)

    def end_everything(self) -> None:
        for _ in range(3):
            for i in range(len(self.calls)):
                self.hang_up(i)
        self.dispatch()
        for call in self.call_rows():
            assert is_final(call.state), (call.id, call.state)
        self.check()
        with db.transaction() as session:
            up = session.execute(
                select(Offer.id, Offer.state, Offer.leg_sid).where(
                    Offer.organisation_id == self.org, Offer.leg_sid.is_not(None), Offer.leg_done.is_(False)
                )
            ).all()
            stored = set(
                session.scalars(select(Offer.leg_sid).where(Offer.organisation_id == self.org)).all()
            )
        assert up == [], up  # every leg was hung up by the worker or reported over
        assert set(self.rest.legs) <= stored  # every leg made is stored on its offer
        for user_id in self.users:
            with contextlib.suppress(OperatorError):
                operators.log_out(user_id, None, self.now)


EVENTS = st.one_of(
    st.tuples(st.just("arrive"), st.integers(0, 1), st.sampled_from([0, 0, 0, 1])),
    st.tuples(st.just("dispatch"), st.just(0), st.just(0)),
    st.tuples(st.just("answer"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("decline"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("unreachable"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("ring_out"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("talk_ends"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("hang_up"), st.integers(0, 9), st.just(0)),
    st.tuples(st.just("replay"), st.integers(0, 50), st.just(0)),
    st.tuples(
        st.sampled_from(["log_in", "log_out", "pause", "resume", "end_wrap_up"]),
        st.integers(0, 2),
        st.integers(1, 3),
    ),
    st.tuples(st.just("time"), st.sampled_from([3, 12, 40]), st.just(0)),
)
STRATEGIES = st.tuples(
    *[st.sampled_from(["fair", "longest_idle", "round_robin", "parallel", "ring_all"])] * 2
)


def run(world: World, events: list[tuple[str, int, int]]) -> None:
    for user_id in world.users:
        operators.log_in(user_id, world.queues, world.now)
    for kind, a, b in events:
        if kind == "arrive":
            world.arrive(a, b)
        elif kind == "dispatch":
            world.dispatch()
        elif kind == "answer":
            world.leg(a, "in-progress")
        elif kind == "decline":
            world.leg(a, "busy")
        elif kind == "unreachable":
            world.leg(a, "failed")
        elif kind == "ring_out":
            world.ring_out(a)
        elif kind == "talk_ends":
            world.talk_ends(a)
        elif kind == "hang_up":
            world.hang_up(a)
        elif kind == "replay":
            world.replay(a)
        elif kind == "time":
            world.time_passes(a)
        else:
            world.operator(kind, a, b)
        world.check()
    world.dispatch()
    world.end_everything()


EXAMPLES = {"sqlite": 25, "postgresql": 6}


def test_it_keeps_the_invariants_over_random_switchboard_days(
    ctx: FakeRest, clock: ManualClock, database_url: str
) -> None:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"

    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(strategies=STRATEGIES, skilled=st.booleans(), events=st.lists(EVENTS, min_size=5, max_size=40))
    def days(strategies: tuple[str, str], skilled: bool, events: list[tuple[str, int, int]]) -> None:
        run(World(clock, ctx, strategies, skilled), events)

    days()


def test_it_serves_every_caller_when_everybody_answers(ctx: FakeRest, clock: ManualClock) -> None:
    """A fixed day as a sanity check of the harness: every caller is answered, then completes."""
    world = World(clock, ctx, ("fair", "parallel"))
    events: list[tuple[str, int, int]] = []
    for i in range(6):
        events += [("arrive", i, 0), ("dispatch", 0, 0), ("answer", 0, 0), ("answer", 0, 0)]
        # A worker round while they talk: it hangs up the parallel offer's other leg, never theirs.
        events += [("dispatch", 0, 0), ("talk_ends", i, 0), ("time", 12, 0)]
    for user_id in world.users:
        operators.log_in(user_id, world.queues, world.now)
    run(world, events)
    with db.transaction() as session:
        rows = session.scalars(select(Call).where(Call.organisation_id == world.org)).all()
        assert sorted(c.state for c in rows) == ["completed"] * 6
        assert all(c.answered_by_id is not None for c in rows)
        assert session.scalar(select(Queue.id).where(Queue.organisation_id == world.org).limit(1))

"""Distribution strategies on hand-made states, and properties that hold for any state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from queue_app.clock import utc
from queue_app.domain import routing
from queue_app.domain.routing import OperatorSnapshot, QueueRules, WaitingCall, plan_offers

NOW = utc("2026-11-25 09:00")
Q = 1


def call(call_id: int, waited: int = 60, priority: int = 0, queue_id: int = Q, **skills: int) -> WaitingCall:
    return WaitingCall(call_id, queue_id, priority, NOW - timedelta(seconds=waited), skills)


def op(
    user_id: int,
    idle: int | None = 60,
    state: str = "available",
    queues: tuple[int, ...] = (Q,),
    answered: int = 0,
    skills: dict[str, int] | None = None,
) -> OperatorSnapshot:
    return OperatorSnapshot(
        user_id=user_id,
        state=state,
        queue_ids=frozenset(queues),
        skills=skills or {},
        idle_since=None if idle is None else NOW - timedelta(seconds=idle),
        answered_today={q: answered for q in queues},
    )


def rules(strategy: str, **kw: object) -> dict[int, QueueRules]:
    return {Q: QueueRules(Q, strategy=strategy, **kw)}  # type: ignore[arg-type]


def offered(plan: list[routing.PlannedOffer]) -> list[tuple[int, tuple[int, ...]]]:
    return [(p.call_id, p.user_ids) for p in plan]


def test_it_gives_fair_calls_to_the_operator_with_fewest_answered_today() -> None:
    ops = [op(1, answered=5, idle=600), op(2, answered=2, idle=10), op(3, answered=3, idle=900)]
    assert offered(plan_offers([call(10)], ops, rules("fair"), NOW)) == [(10, (2,))]


def test_it_breaks_fair_ties_by_longest_idle() -> None:
    ops = [op(1, answered=2, idle=10), op(2, answered=2, idle=300), op(3, answered=4, idle=900)]
    assert offered(plan_offers([call(10)], ops, rules("fair"), NOW)) == [(10, (2,))]


def test_it_counts_fair_calls_per_queue() -> None:
    busy_elsewhere = OperatorSnapshot(1, "available", frozenset({1, 2}), {}, NOW, {1: 0, 2: 9})
    other = OperatorSnapshot(2, "available", frozenset({1}), {}, NOW - timedelta(seconds=5), {1: 1})
    assert offered(plan_offers([call(10)], [busy_elsewhere, other], rules("fair"), NOW)) == [(10, (1,))]


def test_it_picks_the_longest_idle_operator() -> None:
    ops = [op(1, idle=30), op(2, idle=400), op(3, idle=200)]
    assert offered(plan_offers([call(10)], ops, rules("longest_idle"), NOW)) == [(10, (2,))]


def test_it_treats_never_having_had_a_call_as_longest_idle() -> None:
    ops = [op(1, idle=4000), op(2, idle=None)]
    assert offered(plan_offers([call(10)], ops, rules("longest_idle"), NOW)) == [(10, (2,))]


def test_it_continues_round_robin_after_the_last_operator_offered() -> None:
    ops = [op(1), op(3), op(5)]
    plan = plan_offers([call(10)], ops, rules("round_robin", last_offered_user_id=3), NOW)
    assert offered(plan) == [(10, (5,))]


def test_it_wraps_round_robin_around_to_the_first_operator() -> None:
    ops = [op(1), op(3), op(5)]
    plan = plan_offers([call(10)], ops, rules("round_robin", last_offered_user_id=5), NOW)
    assert offered(plan) == [(10, (1,))]


def test_it_moves_the_round_robin_memory_within_one_plan() -> None:
    ops = [op(1), op(3), op(5)]
    plan = plan_offers([call(10, 90), call(11, 60)], ops, rules("round_robin", last_offered_user_id=1), NOW)
    assert offered(plan) == [(10, (3,)), (11, (5,))]


def test_it_skips_an_unavailable_operator_in_round_robin() -> None:
    ops = [op(1), op(3, state="on_call"), op(5)]
    plan = plan_offers([call(10)], ops, rules("round_robin", last_offered_user_id=1), NOW)
    assert offered(plan) == [(10, (5,))]


def test_it_rings_parallel_count_longest_idle_operators() -> None:
    ops = [op(1, idle=10), op(2, idle=50), op(3, idle=40), op(4, idle=30)]
    plan = plan_offers([call(10)], ops, rules("parallel", parallel_count=3), NOW)
    assert offered(plan) == [(10, (2, 3, 4))]


def test_it_rings_all_available_operators_of_the_queue() -> None:
    ops = [op(1), op(2, state="paused"), op(3, queues=(2,)), op(4, idle=500)]
    plan = plan_offers([call(10)], ops, rules("ring_all"), NOW)
    assert offered(plan) == [(10, (4, 1))]


def test_it_caps_ringing_at_ten_nouns() -> None:
    ops = [op(i, idle=i) for i in range(1, 16)]
    plan = plan_offers([call(10)], ops, rules("ring_all"), NOW)
    assert len(plan[0].user_ids) == 10


def test_it_serves_higher_priority_first_then_the_longest_waiting_across_queues() -> None:
    queues = {1: QueueRules(1, "longest_idle"), 2: QueueRules(2, "longest_idle")}
    calls = [
        call(10, waited=100, queue_id=1),
        call(11, waited=300, queue_id=2),
        call(12, waited=5, priority=5),
    ]
    ops = [op(1, queues=(1, 2), idle=100)]
    assert offered(plan_offers(calls, ops, queues, NOW)) == [(12, (1,))]
    ops = [op(1, queues=(1, 2), idle=100), op(2, queues=(1, 2), idle=50)]
    assert offered(plan_offers(calls[:2], ops, queues, NOW)) == [(11, (1,)), (10, (2,))]


def test_it_does_not_let_an_unservable_call_block_the_ones_behind_it() -> None:
    calls = [call(10, waited=500, spanish=5), call(11, waited=100)]
    plan = plan_offers(calls, [op(1)], rules("fair"), NOW)
    assert offered(plan) == [(11, (1,))]


def test_it_requires_every_skill_at_the_minimum_level() -> None:
    ops = [op(1, skills={"en": 3}), op(2, skills={"en": 4, "de": 2}), op(3, skills={"en": 5, "de": 1})]
    plan = plan_offers([call(10, en=4, de=2)], ops, rules("longest_idle"), NOW)
    assert offered(plan) == [(10, (2,))]


def test_it_merges_queue_and_caller_skills_taking_the_higher_level() -> None:
    ops = [op(1, skills={"en": 3, "invoice": 5}), op(2, skills={"en": 5, "invoice": 5}, idle=1)]
    queue = rules("longest_idle", required_skills={"en": 2})
    assert offered(plan_offers([call(10, en=4, invoice=1)], ops, queue, NOW)) == [(10, (2,))]


def test_it_widens_the_level_requirement_after_waiting() -> None:
    ops = [op(1, skills={"en": 2})]
    queue = rules("fair", skill_widen_after_seconds=60)
    assert plan_offers([call(10, waited=59, en=4)], ops, queue, NOW) == []
    assert plan_offers([call(10, waited=119, en=4)], ops, queue, NOW) == []
    assert offered(plan_offers([call(10, waited=120, en=4)], ops, queue, NOW)) == [(10, (1,))]


def test_it_drops_the_skill_one_period_after_the_level_reached_one() -> None:
    ops = [op(1, skills={})]
    queue = rules("fair", skill_widen_after_seconds=30)
    assert plan_offers([call(10, waited=89, en=3)], ops, queue, NOW) == []
    assert offered(plan_offers([call(10, waited=90, en=3)], ops, queue, NOW)) == [(10, (1,))]


def test_it_never_widens_without_a_widening_period() -> None:
    assert plan_offers([call(10, waited=99999, en=3)], [op(1)], rules("fair"), NOW) == []


def test_it_prefers_the_best_matched_operators_after_widening() -> None:
    ops = [op(1, skills={"en": 5}, idle=1), op(2, skills={"en": 2}, idle=999)]
    queue = rules("longest_idle", skill_widen_after_seconds=10)
    assert offered(plan_offers([call(10, waited=500, en=5)], ops, queue, NOW)) == [(10, (1,))]


def test_it_computes_the_start_of_day_in_the_organisation_time_zone() -> None:
    # 23:30 UTC on 25 Nov is 00:30 on 26 Nov in Stockholm.
    start = routing.start_of_day(utc("2026-11-25 23:30"), "Europe/Stockholm")
    assert start == utc("2026-11-25 23:00")
    # Summer time: midnight in Stockholm is 22:00 UTC.
    assert routing.start_of_day(utc("2026-06-10 12:00"), "Europe/Stockholm") == utc("2026-06-09 22:00")


# --- properties ----------------------------------------------------------------------------------

STATES = ["available", "available", "available", "ringing", "on_call", "wrap_up", "paused", "offline"]
SKILLS = ["en", "de", "fi"]

operators_st = st.lists(
    st.builds(
        OperatorSnapshot,
        user_id=st.integers(1, 40),
        state=st.sampled_from(STATES),
        queue_ids=st.frozensets(st.integers(1, 3), max_size=3),
        skills=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=3),
        idle_since=st.none() | st.integers(0, 10_000).map(lambda s: NOW - timedelta(seconds=s)),
        answered_today=st.dictionaries(st.integers(1, 3), st.integers(0, 30), max_size=3),
    ),
    max_size=25,
    unique_by=lambda o: o.user_id,
)
calls_st = st.lists(
    st.builds(
        WaitingCall,
        call_id=st.integers(1, 100),
        queue_id=st.integers(1, 4),
        priority=st.integers(0, 3),
        entered_at=st.integers(0, 3_600).map(lambda s: NOW - timedelta(seconds=s)),
        required_skills=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=2),
    ),
    max_size=30,
    unique_by=lambda c: c.call_id,
)
rules_st = st.fixed_dictionaries(
    {
        q: st.builds(
            QueueRules,
            queue_id=st.just(q),
            strategy=st.sampled_from(sorted(routing.STRATEGIES)),
            parallel_count=st.integers(1, 12),
            required_skills=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=1),
            skill_widen_after_seconds=st.none() | st.integers(1, 600),
            last_offered_user_id=st.none() | st.integers(1, 40),
        )
        for q in (1, 2, 3)
    }
)


@settings(max_examples=150, deadline=None)
@given(calls=calls_st, ops=operators_st, queues=rules_st)
def test_it_never_double_books_and_only_offers_to_eligible_operators(
    calls: list[WaitingCall], ops: list[OperatorSnapshot], queues: dict[int, QueueRules]
) -> None:
    plan = plan_offers(calls, ops, queues, NOW)
    by_id = {o.user_id: o for o in ops}
    call_ids = [p.call_id for p in plan]
    users = [u for p in plan for u in p.user_ids]
    assert len(call_ids) == len(set(call_ids)), "a call offered twice"
    assert len(users) == len(set(users)), "an operator in two offers"
    waiting = {c.call_id: c for c in calls}
    for p in plan:
        assert p.user_ids, "an offer to nobody"
        assert len(p.user_ids) <= routing.MAX_PARALLEL_NOUNS
        assert p.queue_id == waiting[p.call_id].queue_id
        for uid in p.user_ids:
            assert by_id[uid].state == "available"
            assert p.queue_id in by_id[uid].queue_ids


@settings(max_examples=150, deadline=None)
@given(calls=calls_st, ops=operators_st, queues=rules_st)
def test_it_leaves_no_eligible_operator_idle_while_a_call_they_could_take_waits(
    calls: list[WaitingCall], ops: list[OperatorSnapshot], queues: dict[int, QueueRules]
) -> None:
    plan = plan_offers(calls, ops, queues, NOW)
    busy = {u for p in plan for u in p.user_ids}
    served = {p.call_id for p in plan}
    for c in calls:
        if c.call_id in served or c.queue_id not in queues:
            continue
        rules_ = queues[c.queue_id]
        required = routing.merged_requirements(rules_.required_skills, c.required_skills)
        steps = routing.widening_steps((NOW - c.entered_at).total_seconds(), rules_.skill_widen_after_seconds)
        for o in ops:
            if o.state == "available" and o.user_id not in busy and c.queue_id in o.queue_ids:
                assert routing.skill_tier(required, o.skills) > steps, (c, o)


def test_it_keeps_plans_deterministic() -> None:
    ops = [op(i, idle=10) for i in range(1, 6)]
    calls = [call(i, waited=10) for i in range(1, 6)]
    assert plan_offers(calls, ops, rules("longest_idle"), NOW) == plan_offers(
        list(reversed(calls)), list(reversed(ops)), rules("longest_idle"), NOW
    )


def test_it_accepts_aware_datetimes_only_in_utc_consistently() -> None:
    assert isinstance(NOW, datetime) and NOW.tzinfo is not None


def test_it_offers_a_missed_call_to_someone_else_first() -> None:
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    call = WaitingCall(1, 10, 0, now, missed_by=frozenset({1}))
    anna = OperatorSnapshot(1, "available", frozenset({10}), idle_since=None)
    bo = OperatorSnapshot(2, "available", frozenset({10}), idle_since=now)
    plan = plan_offers([call], [anna, bo], {10: QueueRules(10, strategy="longest_idle")}, now)
    assert [offer.user_ids for offer in plan] == [(2,)]


def test_it_rings_the_same_operator_again_when_nobody_else_can_take_the_call() -> None:
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    call = WaitingCall(1, 10, 0, now, missed_by=frozenset({1}))
    anna = OperatorSnapshot(1, "available", frozenset({10}))
    plan = plan_offers([call], [anna], {10: QueueRules(10, strategy="fair")}, now)
    assert [offer.user_ids for offer in plan] == [(1,)]


# --- more strategies on hand-made states ------------------------------------------------------------


def test_it_starts_round_robin_at_the_lowest_user_id_without_memory() -> None:
    ops = [op(5), op(3), op(9)]
    assert offered(plan_offers([call(10)], ops, rules("round_robin"), NOW)) == [(10, (3,))]


def test_it_rings_every_available_operator_when_parallel_count_exceeds_them() -> None:
    ops = [op(1, idle=10), op(2, idle=20), op(3, state="on_call")]
    plan = plan_offers([call(10)], ops, rules("parallel", parallel_count=5), NOW)
    assert offered(plan) == [(10, (2, 1))]


def test_it_rings_at_least_one_operator_when_parallel_count_is_zero() -> None:
    plan = plan_offers([call(10)], [op(1), op(2, idle=90)], rules("parallel", parallel_count=0), NOW)
    assert offered(plan) == [(10, (2,))]


def test_it_shares_parallel_groups_out_among_several_calls() -> None:
    ops = [op(i, idle=10 * i) for i in range(1, 6)]
    calls = [call(10, waited=90), call(11, waited=30)]
    plan = plan_offers(calls, ops, rules("parallel", parallel_count=3), NOW)
    assert offered(plan) == [(10, (5, 4, 3)), (11, (2, 1))]


def test_it_falls_back_to_longest_idle_for_a_strategy_it_does_not_know() -> None:
    ops = [op(1, idle=10), op(2, idle=500)]
    assert offered(plan_offers([call(10)], ops, rules("lottery"), NOW)) == [(10, (2,))]


def test_it_serves_first_come_first_served_within_a_queue() -> None:
    calls = [call(10, waited=30), call(11, waited=90), call(12, waited=60)]
    plan = plan_offers(calls, [op(1), op(2, idle=90)], rules("longest_idle"), NOW)
    assert offered(plan) == [(11, (2,)), (12, (1,))]


def test_it_leaves_a_call_of_a_queue_without_rules_waiting() -> None:
    assert plan_offers([call(10, queue_id=7)], [op(1, queues=(7,))], rules("fair"), NOW) == []


def test_it_rings_only_those_who_have_not_missed_the_call_when_ringing_all() -> None:
    missed = WaitingCall(10, Q, 0, NOW - timedelta(seconds=60), missed_by=frozenset({2}))
    plan = plan_offers([missed], [op(1), op(2, idle=500), op(3, idle=30)], rules("ring_all"), NOW)
    assert offered(plan) == [(10, (1, 3))]


def test_it_rings_only_the_best_matched_tier_when_ringing_all() -> None:
    ops = [op(1, skills={"en": 5}), op(2, skills={"en": 5}, idle=10), op(3, skills={"en": 4}, idle=900)]
    queue = rules("ring_all", skill_widen_after_seconds=10)
    assert offered(plan_offers([call(10, waited=100, en=5)], ops, queue, NOW)) == [(10, (1, 2))]


# --- when widening next changes the plan ---------------------------------------------------------------


def test_it_names_the_instant_widening_lets_a_free_operator_take_the_call() -> None:
    waiting = call(10, waited=30, en=5)
    ops = [op(1, skills={"en": 3}), op(2, skills={"en": 1})]
    queue = rules("fair", skill_widen_after_seconds=60)
    plan = plan_offers([waiting], ops, queue, NOW)
    assert plan == []
    # Anna's level 3 is two steps below 5: at 120 s of waiting, 90 s from now.
    assert routing.next_widening_at([waiting], ops, queue, plan, NOW) == NOW + timedelta(seconds=90)


def test_it_names_the_instant_the_skill_is_dropped_for_an_operator_without_it() -> None:
    waiting = call(10, waited=0, en=3)
    queue = rules("fair", skill_widen_after_seconds=30)
    assert routing.next_widening_at([waiting], [op(1)], queue, [], NOW) == NOW + timedelta(seconds=90)


def test_it_times_widening_from_the_longest_waiting_call_with_the_same_needs() -> None:
    calls = [call(10, waited=10, en=4), call(11, waited=50, en=4), call(12, waited=5, en=2)]
    ops = [op(1, skills={"en": 1})]
    queue = rules("fair", skill_widen_after_seconds=60)
    # Call 12 needs one step less (60 s from its entry, 55 s from now); call 11 needs three (130 s).
    assert routing.next_widening_at(calls, ops, queue, [], NOW) == NOW + timedelta(seconds=55)


def test_it_names_no_widening_instant_when_nothing_can_widen() -> None:
    waiting = call(10, waited=30, en=5)
    widening = rules("fair", skill_widen_after_seconds=60)
    skilled = [op(1, skills={"en": 2})]
    assert routing.next_widening_at([waiting], skilled, rules("fair"), [], NOW) is None  # no period
    assert routing.next_widening_at([call(10, waited=30)], skilled, widening, [], NOW) is None  # no needs
    assert routing.next_widening_at([waiting], [op(1, queues=(2,))], widening, [], NOW) is None  # elsewhere
    busy = [op(1, skills={"en": 2}, state="on_call")]
    assert routing.next_widening_at([waiting], busy, widening, [], NOW) is None  # nobody free


def test_it_names_no_widening_instant_for_calls_and_operators_the_plan_already_used() -> None:
    ops = [op(1, skills={"en": 5}), op(2, skills={"en": 1})]
    queue = rules("fair", skill_widen_after_seconds=60)
    served = call(10, waited=30, en=5)
    plan = plan_offers([served], ops, queue, NOW)
    assert offered(plan) == [(10, (1,))]
    assert routing.next_widening_at([served], ops, queue, plan, NOW) is None
    waiting = call(11, waited=30, en=5)
    plan = plan_offers([served, waiting], ops[:1], queue, NOW)
    # The only operator is taken by the call ahead; no widening can help the second one.
    assert routing.next_widening_at([served, waiting], ops[:1], queue, plan, NOW) is None


@settings(max_examples=200, deadline=None)
@given(calls=calls_st, ops=operators_st, queues=rules_st)
def test_it_offers_nothing_more_until_the_widening_instant_and_something_then(
    calls: list[WaitingCall], ops: list[OperatorSnapshot], queues: dict[int, QueueRules]
) -> None:
    plan = plan_offers(calls, ops, queues, NOW)
    at = routing.next_widening_at(calls, ops, queues, plan, NOW)
    # The plan applied: its calls are offered, its operators ring.
    left = [c for c in calls if c.call_id not in {p.call_id for p in plan}]
    ringing = {uid for p in plan for uid in p.user_ids}
    after = [replace(o, state="ringing") if o.user_id in ringing else o for o in ops]
    assert plan_offers(left, after, queues, NOW) == []
    if at is None:
        assert plan_offers(left, after, queues, NOW + timedelta(days=365)) == []
        return
    assert at > NOW
    assert plan_offers(left, after, queues, at - timedelta(microseconds=1)) == []
    assert plan_offers(left, after, queues, at) != []

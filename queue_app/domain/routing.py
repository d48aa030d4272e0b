"""Distribution strategies: which available operator(s) are offered which waiting call.

Pure: frozen dataclasses in, frozen dataclasses out, the time passed in. The dispatcher
(`services/dispatch.py`) loads the rows, calls `plan_offers` and applies the plan in its transaction.

Order of calls: higher priority first, then the longest-waiting call, across all queues (a call
keeps its `entered_at` when it returns after a missed offer, so it keeps its place).

Strategies, per queue (each picks among the *eligible* operators: available, logged in to the
call's queue, not already picked for another call in this plan, and skilled enough):
- fair: fewest calls answered in this queue since the start of the day; ties to the longest idle.
- round_robin: the next operator after the one last offered a call of this queue, in user-id order
  (wrapping around); the memory moves on with every offer, also within one plan.
- longest_idle: the operator whose last call ended longest ago (never had one: idle the longest).
- parallel: the queue's `parallel_count` longest-idle operators ring at once; the first to answer wins.
- ring_all: every eligible operator rings at once.
A `<Dial>` rings at most 10 nouns (twilio.md §7), so parallel and ring_all are capped at 10, the
longest idle first.

A call that rang out at (or was declined by) an operator is next offered to the others of the same
tier; it returns to that operator only when nobody else can take it.

Skills and widening: a call requires the union of its queue's skills and its own (the caller's menu
choice), each at a minimum level (the higher of the two when both name a skill). While a call has
waited less than the queue's `skill_widen_after_seconds`, an operator needs every required skill at
>= its level. Each full period of waiting lowers every required level by one (never below 1); one
period after all levels have reached 1, the skills are no longer required at all, so nobody waits
forever for a perfect match. Among eligible operators the best-matched come first: an operator's
*tier* is the number of widening steps needed before they qualify, and a strategy only chooses
among the operators of the lowest tier present (Asterisk's penalty tiers, anchors.md b1).
`next_widening_at` says when the next such step makes a free operator eligible for a call left
waiting, so the worker can dispatch at that instant rather than at its next periodic sweep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

FAIR = "fair"
ROUND_ROBIN = "round_robin"
LONGEST_IDLE = "longest_idle"
PARALLEL = "parallel"
RING_ALL = "ring_all"
STRATEGIES = frozenset({FAIR, ROUND_ROBIN, LONGEST_IDLE, PARALLEL, RING_ALL})

AVAILABLE = "available"
MAX_PARALLEL_NOUNS = 10  # a <Dial> rings at most 10 Number/Client nouns together

# Sorts before every real instant: an operator who never had a call has been idle the longest.
_NEVER = datetime.min


@dataclass(frozen=True, slots=True)
class WaitingCall:
    call_id: int
    queue_id: int
    priority: int
    entered_at: datetime  # UTC, kept across returns to the queue
    required_skills: Mapping[str, int] = field(default_factory=dict)  # skill name -> minimum level
    # Operators who already let this call ring out or declined it: others are offered it first.
    missed_by: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class OperatorSnapshot:
    user_id: int
    state: str
    queue_ids: frozenset[int]  # queues the operator is logged in to
    skills: Mapping[str, int] = field(default_factory=dict)  # skill name -> level 1..10
    idle_since: datetime | None = None  # end of the last call (or log-in); None: never had a call
    answered_today: Mapping[int, int] = field(default_factory=dict)  # queue id -> calls since day start


@dataclass(frozen=True, slots=True)
class QueueRules:
    queue_id: int
    strategy: str = FAIR
    parallel_count: int = 1
    required_skills: Mapping[str, int] = field(default_factory=dict)
    skill_widen_after_seconds: int | None = None
    last_offered_user_id: int | None = None  # round robin's memory


@dataclass(frozen=True, slots=True)
class PlannedOffer:
    call_id: int
    queue_id: int
    user_ids: tuple[int, ...]


def start_of_day(now: datetime, timezone: str) -> datetime:
    """Midnight of `now`'s local date in `timezone`, as an aware datetime (fair's counting window)."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone)


def call_order_key(call: WaitingCall) -> tuple[int, datetime, int]:
    return (-call.priority, call.entered_at, call.call_id)


def merged_requirements(queue: Mapping[str, int], call: Mapping[str, int]) -> dict[str, int]:
    merged = dict(queue)
    for name, level in call.items():
        merged[name] = max(level, merged.get(name, 0))
    return merged


def widening_steps(waited_seconds: float, widen_after_seconds: int | None) -> int:
    """How many periods of `widen_after_seconds` the call has waited (0 when widening is off)."""
    if not widen_after_seconds or widen_after_seconds <= 0 or waited_seconds <= 0:
        return 0
    return int(waited_seconds // widen_after_seconds)


def skill_tier(required: Mapping[str, int], skills: Mapping[str, int]) -> int:
    """The fewest widening steps after which an operator with `skills` qualifies.

    Level requirements fall by one per step down to 1; the step after all have reached 1 drops them.
    """
    if not required:
        return 0
    if any(name not in skills for name in required):
        return max(required.values())  # only qualifies once the skills are dropped
    return max(max(0, level - skills[name]) for name, level in required.items())


def _idle_key(op: OperatorSnapshot) -> tuple[datetime, int]:
    idle = op.idle_since.astimezone(UTC).replace(tzinfo=None) if op.idle_since else _NEVER
    return (idle, op.user_id)


def _choose(rules: QueueRules, candidates: list[OperatorSnapshot], last_offered: int | None) -> list[int]:
    strategy = rules.strategy
    if strategy == FAIR:
        best = min(candidates, key=lambda op: (op.answered_today.get(rules.queue_id, 0), _idle_key(op)))
        return [best.user_id]
    if strategy == ROUND_ROBIN:
        ordered = sorted(op.user_id for op in candidates)
        if last_offered is None:
            return [ordered[0]]
        after = [uid for uid in ordered if uid > last_offered]
        return [(after or ordered)[0]]
    by_idle = sorted(candidates, key=_idle_key)
    if strategy == PARALLEL:
        count = max(1, min(rules.parallel_count, MAX_PARALLEL_NOUNS))
        return [op.user_id for op in by_idle[:count]]
    if strategy == RING_ALL:
        return [op.user_id for op in by_idle[:MAX_PARALLEL_NOUNS]]
    # LONGEST_IDLE, and any strategy this version does not know.
    return [by_idle[0].user_id]


def plan_offers(
    calls: Iterable[WaitingCall],
    operators: Iterable[OperatorSnapshot],
    queues: Mapping[int, QueueRules],
    now: datetime,
) -> list[PlannedOffer]:
    """The offers to make now: no call twice, no operator in two offers.

    A call nobody can take does not block the calls behind it; they may match other operators.
    """
    free = {op.user_id: op for op in operators if op.state == AVAILABLE}
    memory = {qid: rules.last_offered_user_id for qid, rules in queues.items()}
    planned: list[PlannedOffer] = []
    seen_calls: set[int] = set()
    for call in sorted(calls, key=call_order_key):
        if not free:
            break
        rules = queues.get(call.queue_id)
        if rules is None or call.call_id in seen_calls:
            continue
        required = merged_requirements(rules.required_skills, call.required_skills)
        steps = widening_steps((now - call.entered_at).total_seconds(), rules.skill_widen_after_seconds)
        tiered: dict[int, list[OperatorSnapshot]] = {}
        for op in free.values():
            if call.queue_id not in op.queue_ids:
                continue
            tier = skill_tier(required, op.skills)
            if tier <= steps:
                tiered.setdefault(tier, []).append(op)
        if not tiered:
            continue
        best = tiered[min(tiered)]
        # Someone who has not yet missed this call goes first; the same operator again only if
        # nobody else can take it (a one-person switchboard must still ring).
        fresh = [op for op in best if op.user_id not in call.missed_by]
        chosen = _choose(rules, fresh or best, memory.get(call.queue_id))
        for uid in chosen:
            del free[uid]
        memory[call.queue_id] = chosen[-1]
        seen_calls.add(call.call_id)
        planned.append(PlannedOffer(call.call_id, call.queue_id, tuple(chosen)))
    return planned


_Requirement = tuple[int, tuple[tuple[str, int], ...]]  # (queue id, sorted (skill, level) pairs)


def _longest_waiting_per_requirement(
    calls: Iterable[WaitingCall], queues: Mapping[int, QueueRules], served: set[int]
) -> dict[_Requirement, datetime]:
    """When the longest-waiting unserved call of each queue and set of requirements entered."""
    earliest: dict[_Requirement, datetime] = {}
    for call in calls:
        rules = queues.get(call.queue_id)
        if call.call_id in served or rules is None or not rules.skill_widen_after_seconds:
            continue
        required = merged_requirements(rules.required_skills, call.required_skills)
        key = (call.queue_id, tuple(sorted(required.items())))
        if required and (key not in earliest or call.entered_at < earliest[key]):
            earliest[key] = call.entered_at
    return earliest


def next_widening_at(
    calls: Iterable[WaitingCall],
    operators: Iterable[OperatorSnapshot],
    queues: Mapping[int, QueueRules],
    plan: Iterable[PlannedOffer],
    now: datetime,
) -> datetime | None:
    """The first instant after `now` at which widening makes an operator left free by `plan`
    eligible for a call it left waiting; None when no widening can change the plan.

    Every operator still free after the plan is above the tier of each waiting call of their
    queue (otherwise the plan would have offered it), so the call becomes theirs once it has
    waited `tier` periods. Calls with the same queue and requirements share their operators'
    tiers, and the longest-waiting of them reaches it first.
    """
    planned = list(plan)
    busy = {uid for p in planned for uid in p.user_ids}
    free = [op for op in operators if op.state == AVAILABLE and op.user_id not in busy]
    soonest: datetime | None = None
    served = {p.call_id for p in planned}
    for (queue_id, required), entered_at in _longest_waiting_per_requirement(calls, queues, served).items():
        tiers = [skill_tier(dict(required), op.skills) for op in free if queue_id in op.queue_ids]
        if not tiers:
            continue
        period = queues[queue_id].skill_widen_after_seconds or 0
        at = entered_at + timedelta(seconds=period * min(tiers))
        if at > now and (soonest is None or at < soonest):
            soonest = at
    return soonest

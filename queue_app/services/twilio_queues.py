"""Each caller's own Twilio queue (`koe-caller-<call id>`, telephony/twiml.py) and its end.

Twilio keeps a queue until it is deleted (twilio.md: "Queues persist, so delete idle ones"), and
one queue per call would pile up by the thousand. The Enqueue action tells the queue's SID
(`remember`); once the call has ended the worker deletes the queue (`spent`, then `deleted`).
A caller who comes back to the queue (a recall, a consult's return) joins the same queue again: it
is deleted only when the call is over.

When neither the Enqueue action nor the bridge's Queue url reached us (the app was down, the request
failed), we never learn the SID: `leaked` finds such queues in Twilio's list by their name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Exists, Select, select, update
from sqlalchemy.orm import Session

from ..domain.states import FINAL_CALL_STATES
from ..extensions import db
from ..models import Call
from ..telephony.rest import ListedQueue

_FINAL = tuple(state.value for state in FINAL_CALL_STATES)


def remember(call_sid: str, queue_sid: str) -> None:
    """The Enqueue action's QueueSid. Idempotent; a late duplicate after the deletion only makes
    the worker delete it again, which Twilio answers with a 404 that counts as done."""
    if not call_sid or not queue_sid:
        return
    with db.transaction() as session:
        session.execute(
            update(Call)
            .where(Call.call_sid == call_sid, Call.twilio_queue_sid.is_(None))
            .values(twilio_queue_sid=queue_sid)
            .execution_options(synchronize_session=False)
        )


def _spent() -> Select[tuple[int, str | None]]:
    return select(Call.id, Call.twilio_queue_sid).where(
        Call.twilio_queue_sid.is_not(None), Call.state.in_(_FINAL)
    )


def spent(session: Session, limit: int = 100) -> list[tuple[int, str]]:
    """Queues of calls that have ended: (call id, queue SID), oldest call first."""
    rows = session.execute(_spent().order_by(Call.id).limit(limit)).all()
    return [(call_id, str(sid)) for call_id, sid in rows]


def spent_exist() -> Exists:
    return _spent().exists()


def deleted(call_ids: list[int]) -> None:
    if not call_ids:
        return
    with db.transaction() as session:
        session.execute(
            update(Call)
            .where(Call.id.in_(call_ids))
            .values(twilio_queue_sid=None)
            .execution_options(synchronize_session=False)
        )


CALLER_QUEUE = re.compile(r"koe-caller-(\d+)")  # telephony/twiml.py `queue_name`
# Younger queues may still have their action on the way (Twilio retries a failed webhook).
LEAK_AGE = timedelta(hours=1)
_IDS_PER_READ = 500


def leaked(session: Session, listed: Iterable[ListedQueue], now: datetime) -> list[str]:
    """The SIDs of our callers' queues that nothing else will delete: empty, at least LEAK_AGE old,
    and their call over. A name whose call we do not know is left alone: it may be another
    deployment's on the same Twilio account."""
    candidates: dict[int, str] = {}
    for queue in listed:
        match = CALLER_QUEUE.fullmatch(queue.friendly_name)
        old = queue.date_created is not None and now - queue.date_created >= LEAK_AGE
        if match and old and queue.current_size == 0:
            candidates[int(match[1])] = queue.sid
    ids = sorted(candidates)
    over: set[int] = set()
    for start in range(0, len(ids), _IDS_PER_READ):
        chunk = ids[start : start + _IDS_PER_READ]
        over.update(session.scalars(select(Call.id).where(Call.id.in_(chunk), Call.state.in_(_FINAL))))
    return [candidates[call_id] for call_id in ids if call_id in over]

"""The directory: find the right colleague fast, and show whether they can take a call.

Search reads with the caller's (request) session: it never writes, so on SQLite it takes no write
lock. Matching is word-prefix on the stored, folded `search_text` (`LIKE 'term%' OR LIKE '% term%'`
per word, every word required) plus a digits match on the numbers, limited to the organisation's
rows; `domain/directory_search.py` ranks the candidates. See bench/directory_search.py for figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, false, or_, select
from sqlalchemy.orm import Session

from ..domain import directory_search as rules
from ..domain.states import Operator as OpState
from ..extensions import db
from ..models import AuditEntry, DirectoryEntry, OperatorStatus, Transfer, TransferState

DEFAULT_LIMIT = 20
MAX_LIMIT = 50
# Rows fetched for ranking: enough that the best 20 are among them even for a one-letter query,
# because SQL already puts entries whose text starts with the first word first.
CANDIDATE_LIMIT = 200
MAX_NOTE_LENGTH = 200

# A transfer in these states holds the colleague's line (a consult call, a caller camped on them).
_LINE_HOLDING_TRANSFERS = (TransferState.CONSULTING.value, TransferState.CAMPED_ON.value)


class DirectoryError(Exception):
    """Bad input; the message is for the person who typed it."""


class EntryNotFound(DirectoryError):
    pass


class NotPermitted(DirectoryError):
    pass


@dataclass(frozen=True, slots=True)
class DirectoryHit:
    id: int
    name: str
    department: str | None
    title: str | None
    keywords: str | None
    phone_number: str | None
    mobile_number: str | None
    email: str | None
    user_id: int | None
    availability: rules.ShownAvailability


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _word_prefix(term: str):  # type: ignore[no-untyped-def]
    escaped = _like_escape(term)
    return or_(
        DirectoryEntry.search_text.like(f"{escaped}%", escape="\\"),
        DirectoryEntry.search_text.like(f"% {escaped}%", escape="\\"),
    )


def search(session: Session, organisation_id: int, text: str, now: datetime, limit: int = DEFAULT_LIMIT):
    """The best matches for `text` (an empty query lists the directory by name)."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = rules.parse_query(text)
    statement = select(DirectoryEntry).where(DirectoryEntry.organisation_id == organisation_id)
    if query.is_empty:
        rows = session.scalars(statement.order_by(DirectoryEntry.name, DirectoryEntry.id).limit(limit)).all()
        return _hits(session, organisation_id, rows, now)
    text_match = and_(*(_word_prefix(t) for t in query.terms)) if query.terms else false()
    number_match = false()
    if query.number:
        pattern = f"%{query.number}%"
        number_match = or_(
            DirectoryEntry.phone_number.like(pattern), DirectoryEntry.mobile_number.like(pattern)
        )
    first = _like_escape(query.terms[0]) + "%" if query.terms else ""
    # Rank on a few columns; load whole rows only for the winners.
    candidates = session.execute(
        select(
            DirectoryEntry.id,
            DirectoryEntry.name,
            DirectoryEntry.search_text,
            DirectoryEntry.phone_number,
            DirectoryEntry.mobile_number,
        )
        .where(DirectoryEntry.organisation_id == organisation_id, or_(text_match, number_match))
        .order_by(
            case((DirectoryEntry.search_text.like(first, escape="\\"), 0), else_=1),
            DirectoryEntry.name,
            DirectoryEntry.id,
        )
        .limit(CANDIDATE_LIMIT)
    ).all()
    ranked = rules.rank(query, (rules.Candidate(*row) for row in candidates), limit)
    if not ranked:
        return []
    by_id = {row.id: row for row in session.scalars(statement.where(DirectoryEntry.id.in_(ranked)))}
    return _hits(session, organisation_id, [by_id[i] for i in ranked], now)


def get(session: Session, organisation_id: int, entry_id: int, now: datetime) -> DirectoryHit:
    row = session.scalars(
        select(DirectoryEntry).where(
            DirectoryEntry.id == entry_id, DirectoryEntry.organisation_id == organisation_id
        )
    ).first()
    if row is None:
        raise EntryNotFound("No such colleague in the directory.")
    return _hits(session, organisation_id, [row], now)[0]


def on_call_entry_ids(session: Session, organisation_id: int, entries: Sequence[DirectoryEntry]) -> set[int]:
    """Which of these colleagues are on a call through us right now."""
    if not entries:
        return set()
    busy: set[int] = set()
    user_ids = {e.user_id for e in entries if e.user_id is not None}
    if user_ids:
        busy_users = set(
            session.scalars(
                select(OperatorStatus.user_id).where(
                    OperatorStatus.organisation_id == organisation_id,
                    OperatorStatus.user_id.in_(user_ids),
                    OperatorStatus.state == OpState.ON_CALL.value,
                )
            )
        )
        busy |= {e.id for e in entries if e.user_id in busy_users}
    busy |= set(
        session.scalars(
            select(Transfer.directory_entry_id).where(
                Transfer.organisation_id == organisation_id,
                Transfer.directory_entry_id.in_([e.id for e in entries]),
                Transfer.state.in_(_LINE_HOLDING_TRANSFERS),
                Transfer.ended_at.is_(None),
            )
        )
    )
    return busy


def _hits(
    session: Session, organisation_id: int, rows: Sequence[DirectoryEntry], now: datetime
) -> list[DirectoryHit]:
    on_call = on_call_entry_ids(session, organisation_id, rows)
    return [
        DirectoryHit(
            id=r.id,
            name=r.name,
            department=r.department,
            title=r.title,
            keywords=r.keywords,
            phone_number=r.phone_number,
            mobile_number=r.mobile_number,
            email=r.email,
            user_id=r.user_id,
            availability=rules.shown_availability(
                r.availability, r.away_note, r.away_until, on_call=r.id in on_call, now=now
            ),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Editor:
    """Who asks to change an availability: admins may change anyone's, others only their own."""

    user_id: int
    organisation_id: int
    is_admin: bool


def set_availability(
    editor: Editor,
    entry_id: int,
    availability: str,
    note: str | None,
    until: datetime | None,
    now: datetime,
) -> DirectoryHit:
    """Set a colleague's availability; `note` and `until` belong to away (and busy), free clears them."""
    if availability not in rules.AVAILABILITIES:
        raise DirectoryError("Availability must be free, busy or away.")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE_LENGTH:
        raise DirectoryError(f"The note may be at most {MAX_NOTE_LENGTH} characters.")
    if until is not None and until <= now:
        raise DirectoryError("The time must be in the future.")
    if availability == rules.FREE:
        note, until = None, None
    with db.transaction() as session:
        row = session.scalars(
            select(DirectoryEntry)
            .where(DirectoryEntry.id == entry_id, DirectoryEntry.organisation_id == editor.organisation_id)
            .with_for_update()
        ).first()
        if row is None:
            raise EntryNotFound("No such colleague in the directory.")
        if not editor.is_admin and row.user_id != editor.user_id:
            raise NotPermitted("Only administrators and the colleague themself may change this.")
        before = {"availability": row.availability, "away_note": row.away_note}
        row.availability = availability
        row.away_note = note
        row.away_until = until
        session.add(
            AuditEntry(
                organisation_id=editor.organisation_id,
                user_id=editor.user_id,
                at=now,
                action="directory.availability",
                target_type="directory_entry",
                target_id=str(row.id),
                changes={
                    "before": before,
                    "after": {
                        "availability": availability,
                        "away_note": note,
                        "away_until": until.isoformat() if until else None,
                    },
                },
            )
        )
        session.flush()
        return _hits(session, editor.organisation_id, [row], now)[0]

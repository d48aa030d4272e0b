"""`GET /healthz`: is the database reachable? For load balancers and uptime checks."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    try:
        with db.transaction() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return jsonify(status="error", database="unreachable", error=type(exc).__name__), 503
    return jsonify(status="ok", database="ok")

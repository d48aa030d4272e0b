"""The first page after log-in: the queues this user may see."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from flask_login import current_user

from ..auth import queues_visible_to
from ..extensions import db

bp = Blueprint("main", __name__)


@bp.get("/")
def index() -> Any:
    queues = queues_visible_to(db.session, current_user)
    return render_template("main/index.html", queues=queues)

"""Deactivating a user on their page logs them out of their queues and ends their licence."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from queue_app.clock import ManualClock
from queue_app.extensions import db
from queue_app.models import OperatorStatus, QueueLogin, User
from queue_app.services import licences, operators
from tests.factories import Personas
from tests.web.test_admin_support import as_user, post

BOB_FORM = {"name": "Bob", "role": "operator", "plan": "pro", "locale": "", "client_identity": "op_bob"}


def test_deactivating_a_logged_in_operator_logs_them_out_and_ends_the_licence(
    app: Flask, client: FlaskClient, personas: Personas, clock: ManualClock
) -> None:
    with app.app_context():
        operators.log_in(personas.bob.user_id, [personas.bob.queue_id], clock.now())
        with db.transaction() as session:
            licences.sync(session, personas.bob.organisation_id, None, clock.now())
    as_user(client, personas.alice.email)

    response = post(client, f"/admin/users/{personas.bob.user_id}", BOB_FORM)  # "Active" unticked

    assert response.status_code == 302
    with app.app_context(), db.transaction() as session:
        assert session.get_one(User, personas.bob.user_id).is_active is False
        logins = session.scalars(select(QueueLogin).where(QueueLogin.user_id == personas.bob.user_id))
        assert logins.all() == []
        status = session.get_one(OperatorStatus, personas.bob.user_id)
        assert (status.state, status.logged_out_reason) == ("offline", operators.REASON_DEACTIVATED)
        assert personas.bob.user_id not in licences.licensed_user_ids(session, personas.bob.organisation_id)

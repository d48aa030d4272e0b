"""`GET /healthz` tells a load balancer whether the database answers."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from queue_app.extensions import db


def test_it_reports_a_reachable_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_it_reports_an_unreachable_database_with_503(app: Flask, client: FlaskClient) -> None:
    db.configure("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"
    db.configure(app.config["DATABASE_URL"])

"""What every JSON API blueprint under /api/v1 shares: the error shape and small helpers.

Errors are `{"error": code, "message": text}` with an HTTP status; `install_error_handlers(bp)` makes
a blueprint answer its own ApiErrors and other HTTP errors of API paths that way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

API = "/api/v1"
ID = "int(max=2147483647)"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _api_error(exc: ApiError) -> tuple[Response, int]:
    return jsonify(error=exc.code, message=exc.message), exc.status


def _http_error(exc: HTTPException) -> Any:
    """Other HTTP errors of the API (bad JSON, 405 …) as JSON too; 403/404/CSRF have app-wide handlers."""
    if not request.path.startswith(API + "/"):
        return exc
    code = (exc.name or "error").lower().replace(" ", "_")
    return jsonify(error=code, message=exc.description or exc.name), exc.code or 500


def install_error_handlers(bp: Blueprint) -> None:
    bp.register_error_handler(ApiError, _api_error)
    bp.register_error_handler(HTTPException, _http_error)


def iso(value: datetime | None) -> str | None:
    """An instant as ISO 8601 UTC with a Z, as the API's clients expect; None stays None."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")

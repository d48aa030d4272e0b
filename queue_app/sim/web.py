"""The emulator's HTTP face: Twilio's REST API under /emulator, for the live demo in real time.

With `TWILIO_API_BASE=http://host:port/emulator` the unchanged official client reaches these routes.
The emulator for a running server is created on first use, per app, in real time, and calls the app's
webhooks over HTTP at PUBLIC_BASE_URL. Tests in virtual time put their own emulator in
`app.extensions["koe_emulator"]` first, and these routes serve that one.
"""

from __future__ import annotations

import threading

from flask import Blueprint, Flask, Response, current_app, request

from ..extensions import csrf
from .emulator import Emulator
from .rest import RestApi
from .transport import HttpTransport

bp = Blueprint("emulator", __name__, url_prefix="/emulator")
csrf.exempt(bp)
_create_lock = threading.Lock()


def emulator_for(app: Flask) -> Emulator:
    """The app's emulator, created on first use in real time."""
    existing = app.extensions.get("koe_emulator")
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    with _create_lock:
        if "koe_emulator" not in app.extensions:
            app.extensions["koe_emulator"] = Emulator.real_time(
                app.config["TWILIO_ACCOUNT_SID"],
                app.config["TWILIO_AUTH_TOKEN"],
                HttpTransport(),
                api_base_url=app.config["TWILIO_API_BASE"],
            )
    return app.extensions["koe_emulator"]  # type: ignore[no-any-return]


@bp.route("/2010-04-01/<path:rest>", methods=["GET", "POST", "DELETE"])
def api(rest: str) -> Response:
    emulator = emulator_for(current_app._get_current_object())  # type: ignore[attr-defined]
    result = RestApi(emulator).handle(
        request.method,
        "/2010-04-01/" + rest,
        list(request.form.items(multi=True)),
        request.headers.get("Authorization"),
        list(request.args.items(multi=True)),
    )
    response = Response(result.body, status=result.status, content_type=result.content_type)
    for name, value in result.headers.items():
        response.headers[name] = value
    return response

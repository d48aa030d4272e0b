"""The emulator's HTTP face: Twilio's REST API under /emulator, for the live demo in real time; and the
live demo's own routes (the phone page at /emulator/phone, its API and the operator's browser device
under /emulator/demo/..., see live.py).

With `TWILIO_API_BASE=http://host:port/emulator` the unchanged official client reaches these routes.
The emulator for a running server is created on first use, per app, in real time, and calls the app's
webhooks over HTTP at PUBLIC_BASE_URL. Tests in virtual time put their own emulator in
`app.extensions["koe_emulator"]` first, and these routes serve that one.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    session,
)
from flask_login import current_user

from ..auth import CurrentUser
from ..extensions import csrf, login_manager
from . import live
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


# --- the live demo: the phone page and the operator's browser device ----------------------------
# The blueprint is public and CSRF-exempt (Twilio's REST API above); these routes act for a
# logged-in user, so each checks the log-in itself and takes JSON only (a cross-site form cannot
# send JSON, and the session cookie is SameSite=Lax).


def _demo_user() -> CurrentUser:
    if not current_app.config.get("TWILIO_EMULATOR"):
        abort(404)
    if not current_user.is_authenticated:
        abort(401)
    if request.method == "POST" and not request.is_json:
        abort(415)
    return current_user  # type: ignore[return-value]


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _demo_error(exc: live.DemoError, status: int = 400) -> Response:
    return Response(json.dumps({"error": str(exc)}), status=status, mimetype="application/json")


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


@bp.get("/phone")
def phone_page() -> Any:
    if not current_app.config.get("TWILIO_EMULATOR"):
        abort(404)
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    numbers = live.demo_numbers(current_user.organisation_id)
    live.route_numbers(_app(), emulator_for(_app()), [n["number"] for n in numbers])
    return render_template("sim/phone.html", numbers=numbers, caller=live.DEMO_CALLER)


@bp.post("/demo/dial")
def demo_dial() -> Any:
    user = _demo_user()
    body = _body()
    try:
        sid = live.dial(
            _app(),
            emulator_for(_app()),
            user.organisation_id,
            str(body.get("to", "")),
            str(body.get("from") or live.DEMO_CALLER),
        )
    except live.DemoError as exc:
        return _demo_error(exc)
    session.setdefault("demo_calls", [])
    session["demo_calls"] = [*session["demo_calls"][-19:], sid]
    return jsonify(sid=sid), 201


def _own_call(sid: str) -> None:
    if sid not in session.get("demo_calls", []):
        abort(404)


@bp.get("/demo/calls/<sid>")
def demo_call(sid: str) -> Any:
    _demo_user()
    _own_call(sid)
    try:
        return jsonify(live.call_view(emulator_for(_app()), sid, request.args.get("since", 0, type=int)))
    except live.DemoError as exc:
        return _demo_error(exc, 404)


@bp.post("/demo/calls/<sid>/press")
def demo_press(sid: str) -> Any:
    _demo_user()
    _own_call(sid)
    try:
        live.press(emulator_for(_app()), sid, str(_body().get("digits", "")))
    except live.DemoError as exc:
        return _demo_error(exc)
    return jsonify(ok=True)


@bp.post("/demo/calls/<sid>/hangup")
def demo_hang_up(sid: str) -> Any:
    _demo_user()
    _own_call(sid)
    try:
        live.hang_up(emulator_for(_app()), sid)
    except live.DemoError as exc:
        return _demo_error(exc, 404)
    return jsonify(ok=True)


@bp.get("/demo/token")
def demo_token() -> Any:
    """The operator's client identity and a token for `new Device(token)` in emulator mode."""
    user = _demo_user()
    identity = live.client_identity(user.id)
    if not identity:
        return _demo_error(live.DemoError("You have no browser phone (client identity)."), 409)
    return jsonify(identity=identity, token=live.device_token(_app(), identity))


def _device_identity() -> str:
    user = _demo_user()
    token = request.headers.get("X-Device-Token") or str(_body().get("token", ""))
    try:
        identity = live.token_identity(_app(), token)
    except live.DemoError:
        abort(403)
    if identity != live.client_identity(user.id):
        abort(403)
    return identity


@bp.post("/demo/device/register")
def demo_register() -> Any:
    identity = _device_identity()
    live.register(emulator_for(_app()), identity)
    return jsonify(identity=identity, registered=True)


@bp.post("/demo/device/unregister")
def demo_unregister() -> Any:
    identity = _device_identity()
    live.unregister(emulator_for(_app()), identity)
    return jsonify(identity=identity, registered=False)


@bp.get("/demo/device/calls")
def demo_device_calls() -> Any:
    identity = _device_identity()
    emulator = emulator_for(_app())
    live.drop_stale_devices(emulator)
    known = [s for s in request.args.get("known", "").split(",") if s]
    return jsonify(live.device_view(emulator, identity, known))


@bp.post("/demo/device/calls/<sid>/<action>")
def demo_device_action(sid: str, action: str) -> Any:
    identity = _device_identity()
    actions = {"accept": live.accept, "reject": live.reject, "disconnect": live.disconnect}
    if action not in actions:
        abort(404)
    try:
        actions[action](emulator_for(_app()), identity, sid)
    except live.DemoError as exc:
        return _demo_error(exc, 409)
    return jsonify(ok=True)

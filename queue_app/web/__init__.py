"""Flask blueprints: thin layers that parse, authorise, call a service and render."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from . import (
        admin,
        auth,
        consult_hooks,
        health,
        main,
        messages,
        offers,
        operator,
        operator_calls,
        prompt_audio,
        voice,
    )

    modules = (
        *(auth, main, health, voice, offers, consult_hooks, operator, operator_calls),
        *(admin, messages, prompt_audio),
    )
    for module in modules:
        app.register_blueprint(module.bp)
    if app.config["TWILIO_EMULATOR"]:
        from ..sim import web as sim_web

        app.register_blueprint(sim_web.bp)

"""Flask blueprints: thin layers that parse, authorise, call a service and render."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from . import admin, auth, health, main, messages, offers, operator, prompt_audio, voice

    for module in (auth, main, health, voice, offers, operator, admin, messages, prompt_audio):
        app.register_blueprint(module.bp)
    if app.config["TWILIO_EMULATOR"]:
        from ..sim import web as sim_web

        app.register_blueprint(sim_web.bp)

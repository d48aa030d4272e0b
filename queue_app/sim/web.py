"""The emulator's HTTP face (REST API at Twilio's paths, phone page). Placeholder."""

from flask import Blueprint

bp = Blueprint("emulator", __name__, url_prefix="/emulator")

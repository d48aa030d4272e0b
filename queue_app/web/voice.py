"""Placeholder: filled in by its issue."""

from flask import Blueprint

bp = Blueprint("voice", __name__)

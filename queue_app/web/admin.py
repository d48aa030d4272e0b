"""Placeholder: filled in by its issue."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

"""Placeholder: filled in by its issue."""

from flask import Blueprint

bp = Blueprint("main", __name__)

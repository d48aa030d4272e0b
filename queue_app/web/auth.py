"""Placeholder: filled in by its issue."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

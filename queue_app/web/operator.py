"""Placeholder: filled in by its issue."""

from flask import Blueprint

bp = Blueprint("operator", __name__)

"""WSGI entry point: `gunicorn app:app`, `flask --app app ...`."""

from queue_app import create_app

app = create_app()

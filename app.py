"""WSGI entry point: `gunicorn app:app`, `flask --app app ...`."""

import gc

from queue_app import create_app

app = create_app()

# What the app loaded (~160,000 objects) lives as long as the process: out of the collector's
# sight, a full collection no longer walks it. Walking it took ~70 ms, during which this worker
# answered no waitUrl fetch: the 99th percentile of the busiest endpoint (bench/waiturl.py).
gc.freeze()

"""The ceiling's application as granian serves it: its pool opened in each worker, as the
peer's gunicorn post_fork hook does."""

import app

app.pool.open(wait=True)
application = app.application

"""The production settings, as the tests exercise them.

DEBUG is forced off (a developer's `.env` from `make run` turns it on), and a signing secret is
provided when none is given.
"""

import os

os.environ["DEBUG"] = "false"
os.environ.setdefault("BETTER_AUTH_SECRET", "test-secret-that-is-long-enough-0123456789")
# The throttle runs on every request but only its own tests set a limit that can be reached.
os.environ.setdefault("RATE_LIMIT", "1000000/minute")
# The suite's own process keeps its cache in memory; live servers get REDIS_URL explicitly.
os.environ.pop("REDIS_URL", None)

from todo_project.settings import *  # noqa: F403

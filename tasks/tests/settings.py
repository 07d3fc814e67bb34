"""The production settings, as the tests exercise them.

DEBUG is forced off (a developer's `.env` from `make run` turns it on), and a signing secret is
provided when none is given.
"""

import os

os.environ["DEBUG"] = "false"
os.environ.setdefault("BETTER_AUTH_SECRET", "test-secret-that-is-long-enough-0123456789")

from todo_project.settings import *  # noqa: F403

"""The cycle collector runs a full collection every COLLECT_EVERY finished requests, whatever
the server (tasks.memory; its effect on a worker's RSS is measured by `make bench`)."""

import gc

from tasks import memory


def test_a_full_collection_follows_every_tenth_request(alice, monkeypatch):
    """Thirty requests, whichever the counter's start: three collections."""
    collections: list[tuple] = []
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args))
    for _ in range(3 * memory.COLLECT_EVERY):
        assert alice.get("/v1/tasks").status_code == 200
    assert collections == [()] * 3

"""The service changes nothing process-wide that other code in the process relies on: its lookups
are registered on the fields that use them, and the standard library's logging is left as it is."""

import logging

import pytest
from django.db.models import CharField, JSONField, TextField

from tasks.lookups import HasLabel, Search
from tasks.models import Task

pytestmark = pytest.mark.database_independent


def test_the_lookups_are_registered_on_the_task_fields_that_use_them_only():
    assert Task._meta.get_field("title").get_lookup("search") is Search
    assert Task._meta.get_field("details").get_lookup("search") is Search
    assert Task._meta.get_field("labels").get_lookup("has_label") is HasLabel
    assert CharField(max_length=1).get_lookup("search") is None
    assert TextField().get_lookup("search") is None
    assert JSONField().get_lookup("has_label") is None


def test_the_logging_module_keeps_its_defaults():
    assert logging.logProcesses and logging.logThreads and logging.logMultiprocessing
    assert logging._srcfile is not None

"""manage.py in a service without a user table: the auth commands explain themselves in one
line instead of crashing, and the service's own commands document their arguments."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize("command", ["createsuperuser", "changepassword"])
def test_the_auth_commands_say_why_they_do_not_apply(command):
    with pytest.raises(CommandError, match=r"no user table .* issue_token USER_ID"):
        call_command(command)


def test_issue_token_help_names_its_argument_and_default_lifetime():
    from tasks.management.commands.issue_token import Command

    help_text = " ".join(Command().create_parser("manage.py", "issue_token").format_help().split())
    assert "the owner of the tasks" in help_text
    assert "default: 3600, one hour" in help_text


def test_issue_token_prints_a_token_the_api_accepts(db, api_client):
    out = StringIO()
    call_command("issue_token", "carol", "--ttl", "60", stdout=out)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")
    assert api_client.get("/v1/tasks").status_code == 200

"""The service's commands; also `createsuperuser` and `changepassword` in place of
django.contrib.auth's, which the service installs only because simplejwt imports it: they
would crash on a table that does not exist."""

NO_USER_TABLE = (
    "this service has no user table (users are Better Auth's; a token names its user). "
    "For a development token: manage.py issue_token USER_ID."
)

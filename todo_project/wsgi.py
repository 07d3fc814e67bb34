import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

from tasks import memory
from todo_project.request_body import RequestBodyMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")

django_application = get_wsgi_application()
# Import the URLconf (the views, serializers, schema tools) now rather than on the first
# request: gunicorn preloads this module in its master, so every worker shares those pages
# instead of importing its own copy, and no first request waits for the imports.
get_resolver().url_patterns  # noqa: B018

from tasks.middleware import RejectionReplay  # noqa: E402 -- imports DRF: after the setup

application = RequestBodyMiddleware(RejectionReplay(django_application))
memory.freeze_then_collect_every_few_requests()

"""The browsable API (DEBUG only, docs/browsing.md): DRF's, with the Tasks API's own page
around it (tasks/templates/tasks/browsable_api.html).

- The breadcrumb leaves out `/v1` itself, which is no resource (the catch-all's 404).
- Extra actions that answer GET are links; those that take a POST without a body (toggle,
  clear completed) are buttons that send it; those that need a body (move, bulk) are left out:
  a link to them would open on a 405.
- The "Raw data" tab starts from a body that works: the operation's first example in the
  schema (tasks.schema) for a POST, the resource's writable fields for a PUT.
- A form field can carry a hint for the HTML form only (`style={"form_help_text": …}`), and a
  list field shown as one text input (`style={"comma_separated": True}`, serializers.LabelsField)
  shows its items separated by commas.
"""

import copy
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.urls import NoReverseMatch, Resolver404, resolve
from rest_framework import serializers, status
from rest_framework.renderers import BrowsableAPIRenderer, HTMLFormRenderer
from rest_framework.reverse import reverse
from rest_framework.utils.serializer_helpers import BoundField

if TYPE_CHECKING:  # rest_framework.views imports the renderers of the settings: not at run time
    from rest_framework.views import APIView


class TaskFormRenderer(HTMLFormRenderer):
    def render_field(self, field: BoundField, parent_style: Mapping[str, Any]) -> str:
        style = {**parent_style, **field.style}
        value, errors = field.value, field.errors
        errors_shown: Any = errors
        if style.get("comma_separated"):
            if isinstance(value, list):
                value = ", ".join(str(item) for item in value)
            if isinstance(errors, Mapping):  # a ListField's errors, by item index
                errors_shown = [str(error) for item in errors.values() for error in item]
        if "form_help_text" in style:
            shown = copy.copy(field._field)
            shown.help_text = style["form_help_text"]
            field = BoundField(shown, value, errors_shown, field._prefix)
        elif (value, errors_shown) != (field.value, field.errors):
            field = BoundField(field._field, value, errors_shown, field._prefix)
        rendered: str = super().render_field(field, parent_style)
        return rendered


class TasksBrowsableAPIRenderer(BrowsableAPIRenderer):
    template = "tasks/browsable_api.html"
    form_renderer_class = TaskFormRenderer

    def get_raw_data_form(self, data: Any, view: "APIView", method: str, request: Any) -> Any:
        """The "Raw data" tab starts from something that works: a POST from the schema's first
        example of that operation (tasks.schema), a PUT from the resource's writable fields."""
        form = super().get_raw_data_form(data, view, method, request)
        if form is None:
            return None
        content: Any = None
        if method == "POST":
            action = getattr(view, "action_map", {}).get("post")
            content = raw_data_example(getattr(view, "basename", None), action)
        elif method in ("PUT", "PATCH") and isinstance(data, Mapping):
            writable = [
                name
                for name, field in view.get_serializer_class()().fields.items()  # type: ignore[attr-defined]
                if not field.read_only
            ]
            content = {name: data[name] for name in writable if name in data}
        if content is not None:
            form.fields["_content"].initial = json.dumps(content, indent=4)
        return form

    def get_breadcrumbs(self, request: Any) -> list[tuple[str, str]]:
        from .views import UnknownAPIPath

        crumbs: list[tuple[str, str]] = super().get_breadcrumbs(request)
        return [
            (name, url)
            for name, url in crumbs
            if getattr(_resolved_view(url), "cls", None) is not UnknownAPIPath
        ]

    # DRF calls it with the status code too; its stubs leave that out.
    def get_extra_actions(self, view: "APIView", *args: Any) -> None:
        return None  # DRF's own dropdown, all links: get_context builds ours

    def get_context(
        self, data: Any, accepted_media_type: str | None, renderer_context: Mapping[str, Any]
    ) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context(data, accepted_media_type, renderer_context)
        links, forms = extra_actions(renderer_context["view"], renderer_context["response"])
        context["extra_action_links"], context["extra_action_forms"] = links, forms
        return context


def _resolved_view(url: str) -> Any:
    try:
        return resolve(urlsplit(url).path).func
    except Resolver404:
        return None


def extra_actions(view: "APIView", response: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The view's extra actions (of its kind, list or detail): those that answer GET, and those
    that take a POST without a body, each {name: url}."""
    auth_failed = response.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN)
    if auth_failed or getattr(view, "detail", None) is None:
        return {}, {}
    links: dict[str, str] = {}
    forms: dict[str, str] = {}
    for action in view.get_extra_actions():  # type: ignore[attr-defined]
        if action.detail != view.detail:  # type: ignore[attr-defined]
            continue
        try:
            url = reverse(
                f"{view.basename}-{action.url_name}",  # type: ignore[attr-defined]
                view.args,
                view.kwargs,
                request=view.request,
            )
        except NoReverseMatch:
            continue
        name = view.__class__(**action.kwargs).get_view_name()
        if "get" in action.mapping:
            links[name] = url
        elif action.kwargs.get("serializer_class") is serializers.Serializer:  # no body
            forms[name] = url
    return links, forms


def raw_data_example(basename: str | None, action: str | None) -> Any:
    """The first request-body example of the POST operation `action` of a viewset, or None."""
    from . import schema

    examples = {
        ("task", "create"): schema.CREATE_TASK_EXAMPLES,
        ("task", "move"): schema.MOVE_TASK_EXAMPLES,
        ("task", "bulk"): schema.BULK_EXAMPLES,
        ("list", "create"): schema.CREATE_LIST_EXAMPLES,
        ("list", "move"): schema.MOVE_LIST_EXAMPLES,
    }.get((basename or "", action or ""))
    return examples[0].value if examples else None

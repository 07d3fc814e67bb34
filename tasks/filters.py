import django_filters
from django import forms

BOOLEAN_WORDS = {"true": True, "false": False}


class TaskFilterForm(forms.Form):
    def clean_completed(self) -> str:
        # `?completed=` is a value too, and not one of the two allowed.
        value = self.cleaned_data["completed"]
        if "completed" in self.data and value not in BOOLEAN_WORDS:
            raise forms.ValidationError("Must be `true` or `false`.", code="invalid_choice")
        return value


class TaskFilter(django_filters.FilterSet):
    # Exactly `true` or `false`: django-filter's BooleanFilter also takes `1`, `True`, `yes`.
    completed = django_filters.ChoiceFilter(
        choices=[(word, word) for word in BOOLEAN_WORDS],
        method="filter_completed",
        help_text="Only completed (`true`) or only open (`false`) tasks.",
    )

    class Meta:
        form = TaskFilterForm

    def filter_completed(self, queryset, name: str, value: str):
        return queryset.filter(completed=BOOLEAN_WORDS[value])

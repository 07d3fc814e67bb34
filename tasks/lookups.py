"""`labels__has_label="x"`: a JSON array of strings that contains "x", on both databases.

PostgreSQL: `labels @> '["x"]'`, served by the GIN index on labels. SQLite (no JSON
containment, and Django's `contains` is not supported there): `EXISTS` over `json_each`.
"""

import orjson
from django.db.models import JSONField, Lookup


@JSONField.register_lookup
class HasLabel(Lookup):
    lookup_name = "has_label"
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        return "%s", [value]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return (
            f"EXISTS (SELECT 1 FROM json_each({lhs}) WHERE json_each.value = %s)",  # noqa: S608
            [*lhs_params, self.rhs],
        )

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} @> %s::jsonb", [*lhs_params, orjson.dumps([self.rhs]).decode()]

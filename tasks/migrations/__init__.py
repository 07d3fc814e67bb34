def run_on_postgresql(statements):
    """A RunPython function that executes `statements` on PostgreSQL and nothing elsewhere."""
    return run_per_vendor({"postgresql": statements})


def run_per_vendor(statements: dict[str, list[str]]):
    """A RunPython function that executes the statements listed for the database's vendor."""

    def run(apps, schema_editor):
        for statement in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, params=None)

    return run

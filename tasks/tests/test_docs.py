"""The documentation keeps to the code: its shell examples run, its configuration table lists
what the settings read.

The convention for code blocks in README.md and docs/*.md (docs/index.md states it for writers):
- A ```` ```sh ```` block is runnable. Each page's `sh` blocks run in order, in one
  `bash` with `set -euo pipefail`, from the repository root, against a fresh service of their own
  (gunicorn, the production way, on a new database) whose address is in `B`; `issue_token` signs
  with that service's secret. Each block must exit 0.
- A ```` ```text ```` block right after an `sh` block is the output it prints: each of its lines
  must appear in the output, in that order (lines the page leaves out, such as most headers, may
  come between), and `…` in a line stands for any text.
- ```` ```console ```` is a transcript or commands that need another set-up (a deployment, another
  configuration, npm): shown, never run. A block with `$ ` prompts must be one.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasks.tests.live_server import REPO_ROOT, LiveServer, fresh_database_url

pytestmark = [pytest.mark.live, pytest.mark.database_independent]

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\s*$")
# The secret the examples' `issue_token` signs with, and the server checks.
SECRET = "docs-examples-only-secret-0123456789abcdefghij"
# What the examples' comments say the service runs with, beyond the defaults of `make run`.
SERVER_ENV = {
    "DEBUG": "false",
    "BETTER_AUTH_SECRET": SECRET,
    "CORS_ALLOWED_ORIGINS": "https://app.example.com",
    "SECURE_HSTS_SECONDS": "31536000",
    "TRUST_X_FORWARDED_PROTO": "true",
    "RATE_LIMIT": "600/minute",  # the default, which the suite's settings raise
    "WEB_CONCURRENCY": "1",
    "REDIS_URL": None,
}


@dataclass
class Block:
    language: str
    text: str
    line: int  # of the opening fence, 1-based


def code_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page (fences at the start of a line only)."""
    blocks: list[Block] = []
    opened: tuple[str, int] | None = None
    lines: list[str] = []
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        fence = FENCE.match(line)
        if opened is None:
            if fence:
                opened, lines = (fence.group(1), number), []
        elif line.startswith("```"):
            blocks.append(Block(opened[0], "\n".join(lines), opened[1]))
            opened = None
        else:
            lines.append(line)
    assert opened is None, f"{page.name}: the block opened on line {opened[1]} is never closed"
    return blocks


def examples(page: Path) -> list[tuple[Block, Block | None]]:
    """Each runnable block of `page`, with the `text` block that follows it, if any."""
    blocks = code_blocks(page)
    found = []
    for index, block in enumerate(blocks):
        if block.language != "sh":
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        expected = following if following and following.language == "text" else None
        if expected is not None:
            # Only blank lines between the two fences.
            source = page.read_text().splitlines()
            start = block.line + block.text.count("\n") + 2
            between = source[start : expected.line - 1]
            if any(line.strip() for line in between):
                expected = None
        found.append((block, expected))
    return found


def output_matches(expected: str, output: str) -> str | None:
    """None if every line of `expected` matches a line of `output`, in order (`…`: any text);
    else the first line that does not."""
    lines = [line.rstrip().replace("\r", "") for line in output.splitlines()]
    position = 0
    for wanted in (line.strip() for line in expected.splitlines()):
        if not wanted:
            continue
        pattern = re.compile(".*?".join(re.escape(part) for part in wanted.split("…")))
        while position < len(lines) and not pattern.fullmatch(lines[position].strip()):
            position += 1
        if position == len(lines):
            return wanted
        position += 1
    return None


def test_expected_output_is_matched_line_by_line_in_order_with_wildcards():
    output = 'HTTP/1.1 201 Created\r\nETag: "1"\r\n{"id":"42","title":"Buy bread"}\n'
    assert output_matches('HTTP/1.1 201 Created\n{"id":"…","title":"Buy bread"}', output) is None
    assert output_matches('{"id":"…"}\nHTTP/1.1 201 Created', output) == "HTTP/1.1 201 Created"
    assert output_matches('ETag: "2"', output) == 'ETag: "2"'


RUNNABLE_PAGES = [page for page in PAGES if examples(page)]
MARKER = "@@docs-example {}@@"


def test_shell_transcripts_are_marked_console():
    """A block with `$ ` prompts is a transcript: `console`, so nobody expects it to run."""
    wrong = [
        f"{page.relative_to(REPO_ROOT)}:{block.line} ({block.language or 'no language'})"
        for page in PAGES
        for block in code_blocks(page)
        if block.language != "console"
        and any(line.startswith("$ ") for line in block.text.splitlines())
    ]
    assert wrong == []


def test_the_pages_with_examples_are_the_expected_ones():
    """A page whose examples silently stopped being `sh` would no longer be tested."""
    names = {page.relative_to(REPO_ROOT).as_posix() for page in RUNNABLE_PAGES}
    assert {
        "README.md",
        "docs/api-guide.md",
        "docs/organising-tasks.md",
        "docs/lists-and-subtasks.md",
        "docs/sync.md",
        "docs/reliability.md",
    } <= names


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda page: page.name)
def test_page_examples_run_against_a_live_server(page, tmp_path):
    runnable = examples(page)
    script = ["set -euo pipefail"]
    for number, (block, _) in enumerate(runnable):
        script += [f"printf '\\n{MARKER}\\n'".format(number), block.text]
    url, drop = fresh_database_url(tmp_path)
    try:
        with LiveServer({**SERVER_ENV, "DATABASE_URL": url}) as server:
            env = {
                **os.environ,
                "B": server.url,
                "DATABASE_URL": url,
                "DEBUG": "false",
                "BETTER_AUTH_SECRET": SECRET,
                "DJANGO_SETTINGS_MODULE": "todo_project.settings",
                "TMPDIR": str(tmp_path),
            }
            done = subprocess.run(
                ["bash", "-c", "\n".join(script)],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
    finally:
        drop()
    parts = re.split(MARKER.format(r"(\d+)"), done.stdout)
    outputs = {
        int(number): text.removeprefix("\n")
        for number, text in zip(parts[1::2], parts[2::2], strict=True)
    }
    last = max(outputs, default=0)
    where = f"{page.name}, the block on line {runnable[last][0].line}"
    assert done.returncode == 0, (
        f"{where} exited {done.returncode}:\n{outputs.get(last, '')}\n--- stderr ---\n{done.stderr}"
    )
    for number, (block, expected) in enumerate(runnable):
        if expected is None:
            continue
        missing = output_matches(expected.text, outputs[number])
        assert missing is None, (
            f"{page.name}, the block on line {block.line}: no output line matches {missing!r} "
            f"(in order). Its output:\n{outputs[number]}"
        )


# --- The configuration reference ------------------------------------------------------------

CONFIGURATION_PAGE = REPO_ROOT / "docs" / "configuration.md"
SOURCES = [REPO_ROOT / "todo_project" / "settings.py", REPO_ROOT / "gunicorn.conf.py"]
UNSET = object()


def variables_read(path: Path) -> dict[str, object]:
    """{name: default} of every `env.<type>("NAME", default=…)`, `os.environ.get("NAME")`,
    `os.environ["NAME"]` and `os.getenv("NAME")` in `path`; the default is UNSET when there is
    none, and None when it is not a literal."""
    found: dict[str, object] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        name = default = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            method = node.func.attr
            reads = (owner == "env" and not method.startswith("read")) or (
                (owner, method) in {("os.environ", "get"), ("os", "getenv")}
            )
            if reads and node.args and isinstance(node.args[0], ast.Constant):
                name = node.args[0].value
                given = [kw.value for kw in node.keywords if kw.arg == "default"]
                given += node.args[1:2]
                default = UNSET
                if given:
                    try:
                        default = ast.literal_eval(given[0])
                    except ValueError:
                        default = None
        elif (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.ctx, ast.Load)
        ):
            name, default = node.slice.value, UNSET
        if isinstance(name, str):
            found[name] = default
    return found


def documented_variables() -> dict[str, str]:
    """{name: default cell} of every row of the configuration page's tables."""
    rows = {}
    for line in CONFIGURATION_PAGE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 3:
            rows[cells[0].strip("`")] = cells[1]
    return rows


def as_written(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def test_configuration_table_lists_exactly_the_variables_the_code_reads():
    read = {name for source in SOURCES for name in variables_read(source)}
    assert read >= {"DEBUG", "DATABASE_URL", "WEB_CONCURRENCY"}  # the parser still finds them
    assert set(documented_variables()) == read


@pytest.mark.parametrize(
    ("name", "default"),
    sorted(
        {
            name: default for source in SOURCES for name, default in variables_read(source).items()
        }.items()
    ),
)
def test_configuration_table_states_each_literal_default(name, default):
    cell = documented_variables()[name]
    if default is None or default is UNSET:
        return  # computed in code (a path, the CPU count): the table says it in words
    if default in ("", []):
        assert re.match(r"(empty|unset|none)\b", cell), cell
        return
    written = re.fullmatch(r"`([^`]*)`", cell)
    if written is None:
        return  # the table explains it in words
    assert written.group(1).replace("_", "") == as_written(default).replace("_", "")

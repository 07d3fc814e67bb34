"""The lock files pin what pyproject.toml declares, with hashes (`make lock` writes them).

Read offline from the files themselves: a pin changed in pyproject.toml without `make lock`, a
package added or dropped on one side only, or a lock edited by hand fails here.
"""

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.database_independent

ROOT = Path(__file__).resolve().parents[2]

# Each lock and what it resolves: the project's dependencies and/or dependency groups.
LOCKS = {
    "requirements.txt": ["dependencies"],
    "requirements-dev.txt": ["dependencies", "dev"],
    "bench/requirements.txt": ["dependencies", "bench"],
    "fuzz/requirements.txt": ["fuzz"],
}
# Installed into the same .venv, so they must agree on every package they share.
SAME_ENVIRONMENT = ["requirements.txt", "requirements-dev.txt", "bench/requirements.txt"]


def declared(source):
    """{name: pinned version} for the project's dependencies or one dependency group."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    if source == "dependencies":
        lines = pyproject["project"]["dependencies"]
    else:
        lines = pyproject["dependency-groups"][source]
    pins = {}
    for line in lines:
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"pyproject.toml: pin {line!r} with =="
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def source_tag(source):
    """How `uv pip compile` names a source in a lock's `# via` comments."""
    suffix = "" if source == "dependencies" else f":{source}"
    return f"tasks-api (pyproject.toml{suffix})"


def locked(path):
    """{name: {"version", "hashes", "via"}} from a `uv pip compile` output file."""
    entries = {}
    entry = None
    for line in (ROOT / path).read_text().splitlines():
        text = line.strip().removesuffix("\\").strip()
        if not text or (line.startswith("#") and entry is None):
            continue
        if not line.startswith((" ", "#")):
            requirement = Requirement(text)
            (specifier,) = requirement.specifier
            entry = {"version": specifier.version, "hashes": 0, "via": set()}
            entries[canonicalize_name(requirement.name)] = entry
        elif text.startswith("--hash="):
            entry["hashes"] += 1
        elif text.startswith("# via "):
            entry["via"].add(text.removeprefix("# via "))
        elif text.startswith("#   "):
            entry["via"].add(text.removeprefix("#   "))
    return entries


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_pins_exactly_what_pyproject_declares(lock):
    sources = LOCKS[lock]
    entries = locked(lock)
    for source in sources:
        from_source = {
            name: entry["version"]
            for name, entry in entries.items()
            if source_tag(source) in entry["via"]
        }
        assert from_source == declared(source), f"{lock} is stale for {source}: run make lock"
    tags = {via for entry in entries.values() for via in entry["via"] if "pyproject.toml" in via}
    assert tags == {source_tag(source) for source in sources}, f"{lock}: run make lock"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_carries_its_hashes(lock):
    unhashed = [name for name, entry in locked(lock).items() if not entry["hashes"]]
    assert unhashed == []


def test_locks_installed_together_pin_the_same_versions():
    versions = {}
    for lock in SAME_ENVIRONMENT:
        for name, entry in locked(lock).items():
            versions.setdefault(name, set()).add(entry["version"])
    assert {name: found for name, found in versions.items() if len(found) > 1} == {}

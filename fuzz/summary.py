"""Print what a schemathesis run did, from its NDJSON event report: test cases per phase and
operation (positive / negative), failed checks, and the totals.

    python fuzz/summary.py fuzz/report/events.ndjson
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict

PHASES = ("examples", "coverage", "fuzzing", "stateful")


def main(path: str) -> int:
    cases: dict[tuple[str, str], Counter] = defaultdict(Counter)
    failures: dict[tuple[str, str], Counter] = defaultdict(Counter)
    skipped: dict[tuple[str, str], str] = {}
    scenarios: Counter = Counter()
    with open(path, encoding="utf-8") as events:
        for line in events:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            phase = finished["phase"]
            recorder = finished["recorder"]
            scenarios[phase] += 1
            if finished["status"] == "skip" and not recorder.get("cases"):
                skipped[(phase, recorder["label"])] = finished.get("skip_reason") or "skipped"
                continue
            for case_id, node in recorder.get("cases", {}).items():
                value = node["value"]
                # Stateful scenarios chain operations: count each step under its own operation.
                label = (
                    f"{value['method']} {value['path']}"
                    if phase == "stateful"
                    else recorder["label"]
                )
                mode = ((value.get("meta") or {}).get("generation") or {}).get("mode", "?")
                cases[(phase, label)][mode] += 1
                for check in recorder.get("checks", {}).get(case_id, []):
                    if check["status"] == "failure":
                        failures[(phase, label)][check["name"]] += 1

    labels = sorted({label for _, label in cases} | {label for _, label in skipped})
    width = max([len(label) for label in labels] + [9])
    print()
    print("Test cases per phase and operation (positive+negative; failed checks)")
    header = f"  {'operation':<{width}}" + "".join(f" {phase:>18}" for phase in PHASES)
    print(header)
    totals: Counter = Counter()
    total_failed = 0
    for label in labels:
        row = f"  {label:<{width}}"
        for phase in PHASES:
            counted = cases.get((phase, label))
            if counted:
                total = sum(counted.values())
                totals[phase] += total
                cell = f"{total} ({counted['positive']}+{counted['negative']})"
            elif (phase, label) in skipped:
                cell = "skip"
            else:
                cell = "-"
            row += f" {cell:>18}"
        print(row)
    print(f"  {'total':<{width}}" + "".join(f" {totals[phase]:>18}" for phase in PHASES))
    print(f"  stateful scenarios: {scenarios['stateful']}")
    if failures:
        print("\nFailed checks (phase, operation: check x responses)")
        for (phase, label), counted in sorted(failures.items()):
            total_failed += sum(counted.values())
            checks = ", ".join(f"{name} x{count}" for name, count in sorted(counted.items()))
            print(f"  {phase:<9} {label:<{width}}  {checks}")
    print(f"\n{sum(totals.values())} test cases, {total_failed} failed check results")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

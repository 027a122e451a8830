"""The fault-and-fuzz suite's figures (issue 17): what the `fault` tests record, and the summary
that `make test` prints at its end and `scripts/fault_suite.py` prints and judges.

A record is one JSON object per line: `{"test": nodeid, "figures": {name: int}}` for what a test
measured, `{"test": nodeid, "outcome": "passed" | "failed" | "skipped" | "xfailed"}` for how it ended
(an xfailed test is a known failure: its figures still count against the goals). The
figures are recorded before the test's assertions, so a failing test still reports what it saw.
Standard library only: the script loads this file without pytest.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORD_ENV = "FLUXORA_FAULT_RECORD"  # a file the records are appended to (JSON lines)
SUMMARY_ENV = "FLUXORA_FAULT_SUMMARY"  # "0": pytest prints no summary (the script prints its own)

# figure -> (the most it may add up to over the suite, the goal in the words)
GOALS: dict[str, tuple[int, str]] = {
    "responses_5xx": (0, "0 responses with a 5xx other than 503 (503: a dependency is down)"),
    "tracebacks": (0, "0 tracebacks in response bodies"),
    "out_of_scope": (0, "0 requests answered beyond what the caller's credentials allow"),
    "duplicate_versions": (0, "0 duplicate versions from concurrent or repeated runs"),
    "rows_lost_clean": (0, "0 forecast-log rows lost on a clean shutdown"),
    # docs/operations.md: a process kill loses no row of a forecast whose response was sent.
    "rows_lost_hard_kill": (0, "forecast-log rows lost on a hard kill: at most the documented bound (0)"),
    "rows_duplicated": (0, "0 forecast-log rows written twice by a replay"),
    "not_recovered": (0, "recovery from an outage without a restart"),
    "orphaned_servers": (0, "0 servers left running by a killed process"),
}
# Figures that count work done, not harm: shown, never judged.
COUNTS = ("cases",)


class FaultRecorder:
    """What one test measured; the `fault_record` fixture writes it once, when the test ends."""

    def __init__(self) -> None:
        self.figures: Counter[str] = Counter()

    def __call__(self, **figures: int) -> None:
        self.figures.update({name: int(value) for name, value in figures.items()})

    def responses(self, *responses: Any, refused: bool = False) -> None:
        """HTTP answers (anything with `status_code` and `text`): one case each, a 5xx other than
        503 (the documented answer while a dependency is down), a traceback in the body; with
        `refused`, every 2xx is an answer the credentials did not allow (`out_of_scope`)."""
        for r in responses:
            code, text = int(r.status_code), str(r.text)
            self(cases=1, responses_5xx=code >= 500 and code != 503, tracebacks="Traceback" in text)
            if refused:
                self(out_of_scope=200 <= code < 300)


def append(path: Path, record: Mapping[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def load(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class _Test:
    outcomes: Counter[str] = field(default_factory=Counter)
    figures: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Summary:
    text: str
    broken: list[str]  # the goals not met, and the tests that failed
    tests: int

    @property
    def ok(self) -> bool:
        return not self.broken


def _function(nodeid: str) -> str:
    """`tests/api/test_auth.py::test_x[a-b]` -> `api/test_auth.py::test_x` (parameters pooled)."""
    return nodeid.split("[", 1)[0].removeprefix("tests/")


def summarize(records: Iterable[Mapping[str, Any]]) -> Summary:
    """One block: per test function its outcomes and figures, then each goal with its total."""
    tests: dict[str, _Test] = defaultdict(_Test)
    for r in records:
        t = tests[_function(str(r["test"]))]
        if "outcome" in r:
            t.outcomes[str(r["outcome"])] += 1
        t.figures.update({k: int(v) for k, v in r.get("figures", {}).items()})
    totals: Counter[str] = Counter()
    for t in tests.values():
        totals.update(t.figures)
    counted = sum(sum(t.outcomes.values()) for t in tests.values())
    outcome_totals = Counter[str]()
    for t in tests.values():
        outcome_totals.update(t.outcomes)

    width = max([len(name) for name in tests] + [4])
    lines = [
        f"fault and fuzz suite: {counted} tests in {len(tests)} functions "
        f"({outcome_totals['passed']} passed, {outcome_totals['failed']} failed, {outcome_totals['skipped']} skipped, "
        f"{outcome_totals['xfailed']} known failures marked xfail)",
        f"{'test':<{width}}  pass  fail  skip  xfail  figures",
    ]
    for name in sorted(tests):
        t = tests[name]
        figures = " ".join(f"{k}={v}" for k, v in sorted(t.figures.items())) or "-"
        o = t.outcomes
        lines.append(
            f"{name:<{width}}  {o['passed']:>4}  {o['failed']:>4}  {o['skipped']:>4}  {o['xfailed']:>5}  {figures}"
        )
    broken = [f"test failed: {name}" for name in sorted(tests) if tests[name].outcomes["failed"]]
    lines.append(f"{'figure':<20}  {'total':>7}  {'bound':>5}  {'verdict':<8}  goal")
    for name in COUNTS:
        lines.append(f"{name:<20}  {totals[name]:>7}  {'-':>5}  {'-':<8}  work done, not judged")
    for name, (bound, goal) in GOALS.items():
        if name not in totals:
            lines.append(f"{name:<20}  {'-':>7}  {bound:>5}  {'-':<8}  {goal} (no test that ran measures it)")
            continue
        verdict = "ok" if totals[name] <= bound else "BROKEN"
        if verdict == "BROKEN":
            broken.append(f"{goal}: {totals[name]}")
        lines.append(f"{name:<20}  {totals[name]:>7}  {bound:>5}  {verdict:<8}  {goal}")
    lines.append("all goals met" if not broken else "BROKEN: " + "; ".join(broken))
    return Summary("\n".join(lines), broken, counted)

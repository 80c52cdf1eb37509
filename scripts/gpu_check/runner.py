"""Run the GPU checks' steps one after another, each timed and guarded.

Every step is a command in its own process with its own time limit, so a crash, an exception
or a hang in one step is recorded and the next step still runs. A step reports its figures by
writing a JSON object to the file named by ``$STEP_RESULT``. Steps can need an earlier step
(``needs``): when that one failed they are skipped, with the reason. The whole run also has a
time budget: a step that would not fit in what is left is skipped rather than cut off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TextIO


@dataclass
class Step:
    """One check: a command, its time limit, and the steps it needs."""

    name: str
    command: list[str]
    timeout_s: float
    """The step is stopped after this many seconds."""
    min_s: float = 0.0
    """Skip the step when less than this is left of the run's budget."""
    needs: tuple[str, ...] = ()
    """Steps that must have passed first."""
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class StepResult:
    """What one step did."""

    name: str
    status: str
    """passed, failed, timeout or skipped."""
    seconds: float = 0.0
    returncode: Optional[int] = None
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_step(step: Step, log: TextIO, cwd: Path, timeout_s: float) -> StepResult:
    """Run ``step`` with its output appended to ``log``; never raises for the step's own failure."""
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        env = {**os.environ, **step.env, "STEP_RESULT": str(result_file)}
        log.write(f"\n===== {step.name}: {' '.join(step.command)}\n")
        log.flush()
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                step.command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s
            )
            status = "passed" if proc.returncode == 0 else "failed"
            code: Optional[int] = proc.returncode
            reason = "" if code == 0 else f"exit status {code}"
        except subprocess.TimeoutExpired:
            status, code, reason = "timeout", None, f"stopped after {timeout_s:.0f} s"
        except OSError as exc:
            status, code, reason = "failed", None, f"could not start: {exc}"
        seconds = time.perf_counter() - start
        figures: dict[str, Any] = {}
        if result_file.is_file():
            try:
                figures = json.loads(result_file.read_text())
            except ValueError as exc:
                reason = (reason + "; " if reason else "") + f"unreadable result: {exc}"
        if status == "passed" and isinstance(figures, dict) and figures.get("error"):
            status, reason = "failed", str(figures["error"])
    log.write(f"===== {step.name}: {status} in {seconds:.1f} s{(' (' + reason + ')') if reason else ''}\n")
    log.flush()
    return StepResult(step.name, status, round(seconds, 2), code, reason, figures)


def run_steps(
    steps: list[Step],
    log: TextIO,
    cwd: Path,
    budget_s: float,
    echo: Optional[TextIO] = sys.stderr,
    on_result: Optional[Callable[[list[StepResult]], None]] = None,
) -> list[StepResult]:
    """Run every step in order (see module docstring); returns one result per step.

    ``log`` must be a real file (the steps write into it directly). ``on_result`` gets the results
    so far after every step, so a run cut off from outside still leaves its report.
    """
    deadline = time.monotonic() + budget_s
    results: list[StepResult] = []
    passed: set[str] = set()
    for step in steps:
        left = deadline - time.monotonic()
        missing = [n for n in step.needs if n not in passed]
        if missing:
            result = StepResult(step.name, "skipped", reason=f"needs {', '.join(missing)}, which did not pass")
        elif left < max(step.min_s, 1.0):
            result = StepResult(step.name, "skipped", reason=f"only {left:.0f} s of the budget left")
        else:
            result = run_step(step, log, cwd, min(step.timeout_s, left))
        if result.status == "passed":
            passed.add(step.name)
        results.append(result)
        if echo is not None:
            extra = f" ({result.reason})" if result.reason else ""
            echo.write(f"[gpu-check] {step.name}: {result.status} in {result.seconds:.1f} s{extra}\n")
            echo.flush()
        if on_result is not None:
            on_result(results)
    return results


def write_report(path: Path, results: list[StepResult], context: dict[str, Any]) -> dict[str, Any]:
    """The JSON report of a run: context (machine, versions, options) and every step's result."""
    report = {
        **context,
        "passed": sum(r.status == "passed" for r in results),
        "failed": sum(r.status in ("failed", "timeout") for r in results),
        "skipped": sum(r.status == "skipped" for r in results),
        "steps": [asdict(r) for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report

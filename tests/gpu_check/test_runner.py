"""Control flow of the GPU checks' run script, with fake steps (no GPU, no network)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import run
from runner import Step, run_steps

PY = sys.executable


def fake(name: str, code: str, timeout: float = 30, needs: tuple[str, ...] = (), min_s: float = 0) -> Step:
    return Step(name, [PY, "-c", code], timeout, min_s, needs)


REPORT = "import json, os; open(os.environ['STEP_RESULT'], 'w').write(json.dumps({'figure': 3}))"


def test_a_failing_step_is_reported_and_the_next_ones_still_run(tmp_path: Path) -> None:
    steps = [
        fake("ok", REPORT),
        fake("crash", "raise RuntimeError('kernel exploded')"),
        fake("after_crash", "print('still running')"),
        fake("hang", "import time; time.sleep(30)", timeout=1),
        fake("needs_crash", "print('never')", needs=("crash",)),
        fake("needs_ok", REPORT, needs=("ok",)),
        fake("error_in_result", "import json, os; open(os.environ['STEP_RESULT'], 'w').write(json.dumps({'error': 'no CUDA'}))"),
    ]
    with open(tmp_path / "log.txt", "w") as log:
        results = {r.name: r for r in run_steps(steps, log, tmp_path, budget_s=60, echo=None)}
    assert results["ok"].status == "passed" and results["ok"].figures == {"figure": 3}
    assert results["crash"].status == "failed" and results["crash"].returncode == 1
    assert results["after_crash"].status == "passed"
    assert results["hang"].status == "timeout"
    assert results["needs_crash"].status == "skipped" and "crash" in results["needs_crash"].reason
    assert results["needs_ok"].status == "passed"
    assert results["error_in_result"].status == "failed" and results["error_in_result"].reason == "no CUDA"
    text = (tmp_path / "log.txt").read_text()
    assert "kernel exploded" in text and "still running" in text and "never" not in text


def test_a_step_that_does_not_fit_the_budget_is_skipped_and_later_ones_run(tmp_path: Path) -> None:
    steps = [fake("big", "print(1)", min_s=1000), fake("small", "print(2)")]
    with open(tmp_path / "log.txt", "w") as log:
        results = run_steps(steps, log, tmp_path, budget_s=30, echo=None)
    assert [r.status for r in results] == ["skipped", "passed"]
    assert "budget" in results[0].reason


def test_run_writes_the_report_and_log_under_out(tmp_path: Path, monkeypatch) -> None:
    steps = [fake("install", REPORT), fake("gsplat_compile", "import sys; sys.exit(3)"),
             fake("gsplat_parity", "print(1)", needs=("gsplat_compile",)), fake("tracker_sam", "")]  # fmt: skip
    out = tmp_path / "out"
    # The report so far is on disk before each later step starts (a run cut off from outside keeps it).
    steps[-1].command[-1] = (
        f"import json; r = json.load(open({str(out / 'gpu_check.json')!r})); "
        "assert len(r['steps']) == 3 and not r['complete']"
    )
    monkeypatch.setattr(run, "plan", lambda args, python: steps)
    code = run.main(["--out", str(out), "--work-dir", str(tmp_path / "work"), "--budget-s", "60"])
    assert code == 1
    report = json.loads((out / "gpu_check.json").read_text())
    assert [(s["name"], s["status"]) for s in report["steps"]] == [
        ("install", "passed"), ("gsplat_compile", "failed"), ("gsplat_parity", "skipped"), ("tracker_sam", "passed")
    ]  # fmt: skip
    assert report["passed"] == 2 and report["failed"] == 1 and report["skipped"] == 1 and report["complete"]
    assert "exit status 3" in report["steps"][1]["reason"]
    assert "===== tracker_sam" in (out / "gpu_check.log").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.log"]


def test_the_plan_orders_every_step_and_only_keeps_the_chosen_ones(tmp_path: Path) -> None:
    args = run.main.__globals__["argparse"].Namespace(
        work_dir=tmp_path, target=tmp_path / "site", bundle=tmp_path / "wheels", frames=4, steps=10,
        segmenter="simulated", sam_frames=1, sam_models="vit_b", sam_points_per_side=4, lift_views=3, lift_gaussians=1000, only="", installed=False,
    )  # fmt: skip
    names = [s.name for s in run.plan(args, "python3")]
    assert tuple(names) == run.STEP_NAMES
    args.only = "scene,train_mastsam"
    steps = run.plan(args, "python3")
    assert [s.name for s in steps] == ["scene", "train_mastsam"]
    assert steps[1].needs == ("scene",)
    args.only, args.installed = "", True
    steps = run.plan(args, "python3")
    assert "install" not in [s.name for s in steps] and not any("install" in s.needs for s in steps)
    assert str(tmp_path / "site") not in steps[0].env["PYTHONPATH"]

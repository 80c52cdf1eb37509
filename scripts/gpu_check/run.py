"""The GPU checks of mastsam-splat in one command (see README, "Checks on a GPU").

On the GPU machine (Python 3.12, torch with CUDA, no network)::

    bash scripts/gpu_check/run.sh            # the bundle folder .gpu_check/wheels carried along

installs the wheel bundle into a target folder, compiles gsplat's CUDA kernels once, and runs
every check as its own timed, guarded step (runner.py): a failing step is reported and the next
ones still run. The figures of all steps go to ``$OUT/gpu_check.json``, every step's output to
``$OUT/gpu_check.log``.

On a CPU machine, ``--dry-run`` proves the bundle first: every wheel present and intact, tree and
bundle within the transfer limit, and the project importing from the bundle in a clean Python 3.12
venv that holds only the GPU machine's preinstalled packages (machine-packages.txt); then prints
the plan.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bundle import DEFAULT_BUNDLE, MACHINE_PACKAGES, REPO, check_bundle, read_requirements
from runner import Step, run_steps, write_report

STEPS_DIR = Path(__file__).resolve().parent / "steps"
STEP_NAMES = ("install", "environment", "gsplat_compile", "gsplat_parity", "scene", "train_mastsam",
              "train_splatfacto", "tracker_sam", "lift_scene", "lift")  # fmt: skip


def plan(args: argparse.Namespace, python: str) -> list[Step]:
    """Every step of a GPU run, in order, with its time limit and the steps it needs."""
    work = args.work_dir
    paths = [str(REPO)] + ([] if args.installed else [str(args.target)])
    env = {
        "PYTHONPATH": os.pathsep.join(paths),
        # the bundle's console scripts: ninja, which gsplat's kernel build runs
        "PATH": os.pathsep.join([str(args.target / "bin"), os.environ.get("PATH", "/usr/bin:/bin")]),
        "GPU_CHECK_WORK": str(work),
        "TORCH_EXTENSIONS_DIR": str(work / "torch_extensions"),
        "PYTHONWARNINGS": "ignore",
        "PYTHONUNBUFFERED": "1",
    }

    def step(name: str, script: str, *options: str, timeout: float, min_s: float = 0.0, needs=()) -> Step:
        return Step(name, [python, str(STEPS_DIR / script), *options], timeout, min_s, tuple(needs), env)

    scene = work / f"scene_{args.frames}_640x480"
    lift_scene = work / f"scene_{args.lift_views}_320x240"
    compiled = ("install", "gsplat_compile")
    steps = [
        step("install", "install.py", "--bundle", str(args.bundle), "--target", str(args.target), timeout=120),
        step("environment", "environment.py", timeout=120, needs=["install"]),
        step("gsplat_compile", "gsplat_compile.py", timeout=420, min_s=60, needs=["install"]),
        step("gsplat_parity", "parity.py", timeout=180, min_s=20, needs=compiled),
        step("scene", "scene.py", "--output", str(scene), "--frames", str(args.frames), timeout=240, min_s=30,
             needs=["install"]),
        step("train_mastsam", "ns_train.py", "mastsam-splat", "--data", str(scene), "--steps", str(args.steps),
             "--output-dir", str(work / "runs"), "--", "--pipeline.datamanager.tracking.segmenter", args.segmenter,
             timeout=300, min_s=60, needs=[*compiled, "scene"]),
        step("train_splatfacto", "ns_train.py", "splatfacto", "--data", str(scene), "--steps", str(args.steps),
             "--output-dir", str(work / "runs"), timeout=240, min_s=45, needs=[*compiled, "scene"]),
        step("tracker_sam", "tracker_sam.py", "--scene", str(scene), "--frames", str(args.sam_frames),
             "--model-types", args.sam_models, "--points-per-side", str(args.sam_points_per_side),
             timeout=240, min_s=45, needs=["install", "scene"]),
        step("lift_scene", "scene.py", "--output", str(lift_scene), "--frames", str(args.lift_views),
             "--width", "320", "--height", "240", timeout=180, min_s=20, needs=["install"]),
        step("lift", "lift.py", "--scene", str(lift_scene), "--gaussians", str(args.lift_gaussians),
             timeout=240, min_s=30, needs=[*compiled, "lift_scene"]),
    ]  # fmt: skip
    if args.installed:  # the packages are installed in this environment: no bundle
        steps = [s for s in steps if s.name != "install"]
        for s in steps:
            s.needs = tuple(n for n in s.needs if n != "install")
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(STEP_NAMES)
        if unknown:
            raise SystemExit(f"unknown steps: {', '.join(sorted(unknown))}; steps: {', '.join(STEP_NAMES)}")
        steps = [s for s in steps if s.name in wanted]
        for s in steps:
            s.needs = tuple(n for n in s.needs if n in wanted)
    return steps


def print_plan(steps: list[Step], budget_s: float, out: Path) -> None:
    print(f"plan: {len(steps)} steps within {budget_s:.0f} s; results in {out}/gpu_check.json and gpu_check.log")
    for s in steps:
        needs = f" (needs {', '.join(s.needs)})" if s.needs else ""
        print(f"  {s.name:<17} <= {s.timeout_s:4.0f} s{needs}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(s.command))}")


def find_python312() -> str | None:
    """A working ``python3.12`` (on PATH, or a pyenv version), or None."""
    candidates = [shutil.which("python3.12"), *map(str, sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
            return candidate
    return None


def machine_venv(python312: str, venv: Path, fresh: bool) -> Path:
    """A Python 3.12 venv holding exactly the GPU machine's preinstalled packages; its python."""
    marker = venv / "machine-packages.sha256"
    digest = hashlib.sha256(MACHINE_PACKAGES.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if fresh or not marker.is_file() or marker.read_text() != digest:
        if venv.exists():
            shutil.rmtree(venv)
        subprocess.run([python312, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(MACHINE_PACKAGES)], check=True)  # fmt: skip
        marker.write_text(digest)
    return python


def venv_extras(python: Path) -> list[str]:
    """Packages in the venv beyond the machine's list (and pip itself): a venv that is not clean."""
    frozen = subprocess.run([str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    wanted = {line.split("==")[0].lower() for line in MACHINE_PACKAGES.read_text().splitlines()
              if line and not line.startswith("#")}  # fmt: skip
    return [p for p in frozen if p.split("==")[0].lower() not in wanted | {"pip"}]


def dry_run(args: argparse.Namespace) -> int:
    """Prove the bundle on a CPU machine (see module docstring); 0 when everything holds."""
    problems: list[str] = []
    reqs = read_requirements()
    check = check_bundle(args.bundle, reqs)
    print(
        f"bundle: {check.wheels} wheels ({len(reqs)} pinned), {check.wheel_bytes / 2**20:.1f} MiB; working tree "
        f"{check.tree_bytes / 2**20:.1f} MiB; together {check.total_bytes / 2**20:.1f} MiB of 64 MiB"
    )
    problems += check.problems
    python312 = args.python or find_python312()
    if python312 is None:
        problems.append("no python3.12 here (pass --python PATH)")
    elif check.ok:
        python = machine_venv(python312, args.venv, args.fresh_venv)
        extras = venv_extras(python)
        if extras:
            problems.append(f"the machine venv holds packages the GPU machine lacks: {', '.join(extras)}")
        with tempfile.TemporaryDirectory() as tmp:
            args.target = Path(tmp) / "site"
            args.work_dir = Path(tmp) / "work"
            steps = [s for s in plan(args, str(python)) if s.name in ("install", "environment")]
            log_path = args.out / "gpu_check_dry_run.log"
            args.out.mkdir(parents=True, exist_ok=True)
            with open(log_path, "w") as log:
                results = run_steps(steps, log, REPO, budget_s=600)
            for r in results:
                if r.status != "passed":
                    problems.append(f"{r.name} {r.status}: {r.reason} (see {log_path})")
            env = results[-1].figures
            if env.get("versions"):
                v = env["versions"]
                print(
                    f"clean venv: Python {env['python']}, torch {v['torch']}, numpy {v['numpy']}; bundle installed "
                    f"({results[0].figures.get('method')}), {env.get('imported')} modules imported, "
                    f"Nerfstudio methods {env.get('nerfstudio_methods')}"
                )
    args.target, args.work_dir = args.target_default, args.work_default
    print_plan(plan(args, "python3"), args.budget_s, args.out)
    for p in problems:
        print(f"problem: {p}")
    print("dry run: " + ("passed" if not problems else f"FAILED ({len(problems)} problems)"))
    return 0 if not problems else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="check the bundle on a CPU machine and print the plan")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--work-dir", type=Path, default=REPO / ".gpu_check" / "work",
                        help="scenes, runs, compiled kernels (kept between runs on the same machine)")  # fmt: skip
    parser.add_argument("--target", type=Path, default=None, help="where the bundle is installed (default: WORK/site)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or REPO / ".gpu_check" / "out"))
    parser.add_argument("--installed", action="store_true",
                        help="use the packages installed in this environment (pip install -e .) instead of the bundle")  # fmt: skip
    parser.add_argument("--budget-s", type=float, default=560, help="time for all steps together")
    parser.add_argument("--only", default="", help=f"comma-separated steps to run, of: {', '.join(STEP_NAMES)}")
    parser.add_argument("--steps", type=int, default=3000, help="training steps of both ns-train runs")
    parser.add_argument("--frames", type=int, default=60, help="views of the 640x480 training scene")
    parser.add_argument("--segmenter", default="simulated", help="tracker segmenter of the mastsam-splat run")
    parser.add_argument("--sam-frames", type=int, default=4, help="frames tracked with each random SAM")
    parser.add_argument("--sam-models", default="vit_h,vit_b", help="SAM model types the tracker runs with")
    parser.add_argument("--sam-points-per-side", type=int, default=32, help="SAM automatic-mask grid")
    parser.add_argument("--lift-views", type=int, default=100)
    parser.add_argument("--lift-gaussians", type=int, default=1_000_000)
    parser.add_argument("--python", default=None, help="dry run: the python3.12 to build the clean venv with")
    parser.add_argument("--venv", type=Path, default=REPO / ".gpu_check" / "machine-py312")
    parser.add_argument("--fresh-venv", action="store_true", help="dry run: rebuild the clean venv")
    args = parser.parse_args(argv)
    args.target = args.target or args.work_dir / "site"
    args.target_default, args.work_default = args.target, args.work_dir
    if args.dry_run:
        return dry_run(args)
    steps = plan(args, sys.executable)
    print_plan(steps, args.budget_s, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    context = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)), "options": {
        k: str(v) for k, v in vars(args).items() if k not in ("target_default", "work_default")}}  # fmt: skip
    report_path = args.out / "gpu_check.json"
    with open(args.out / "gpu_check.log", "w") as log:
        results = run_steps(steps, log, REPO, args.budget_s, on_result=lambda so_far: write_report(
            report_path, so_far, {**context, "complete": False}))  # fmt: skip
    report = write_report(report_path, results, {**context, "complete": True})
    print(json.dumps({r["name"]: r["status"] for r in report["steps"]}))
    return 0 if report["failed"] == 0 and report["skipped"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

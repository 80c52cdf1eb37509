#!/usr/bin/env python
"""Benchmark of the MastSAM tracker against per-view segmentation (``independent`` mode).

(a) synthetic scenes (``mastsam_splat.synthetic.make_scene``), an orbit and a forward walk over
    several seeds, the classical segmenter or the simulated SAM (``--segmenter simulated``: the
    ground truth re-cut per view like SAM) + geometric matcher, scored against ground truth at
    object level (the tracker's object ids: its ids grouped as ``tracks.json`` groups them) and part
    level (its ids, ``masks/`` of ``mastsam track``): per-view mIoU, consistent mIoU, id switches, IDC, PSC, coverage,
    granularity; ``--shuffle`` gives the tracker the frames in a random order (labels are scored
    in the original order);
(b) real opencv-doc sequences, classical segmenter + SIFT matcher: the aloe stereo pair (reference
    correspondences from its ground-truth disparity) and frames of tree.avi and Megamind.avi
    (reference correspondences from forward-backward-checked DIS optical flow), scored with
    coverage, IDC and PSC;
plus the wall time per frame of each mode. Prints a table of medians and writes every number to JSON.

``--no-depth`` gives the tracker the synthetic frames with their cameras but without depth maps (as frames
posed by SfM): the matcher still finds exact correspondences from the scene's depth, but returns no 3D points,
so the tracker's 3D points are those correspondences triangulated with the known cameras (point source
``triangulated``) and the steps run only on frames without depth (``--tracker.anchor.footprint``,
``reassign``, ``retroactive``) take part; ``--match-keep`` and ``--match-noise-px`` (with or without depth maps) thin and perturb the
correspondences like a sparser, noisier matcher. ``--sfm-tracks`` gives it the frames without depth and, as
correspondences and 3D points, the tracks of a COLMAP model made from the scene's ground truth (the ``sfm``
matcher and point source of a dataset from ``mastsam prepare``). Scoring against ground truth is unchanged. Every tracker option
passes through as ``--tracker.*`` (``--anchor``, ``--order``, ``--refine`` override it).

    .venv/bin/python scripts/bench_tracker.py [--seeds 0 1 2] [--frames 40] [--out outputs/bench_tracker.json]
    .venv/bin/python scripts/bench_tracker.py --segmenter simulated --skip-real --seeds 0 --frames 24 \
        --width 160 --height 120 [--shuffle] [--order sequence]
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_tracker.py --segmenter simulated --skip-real --trajectories orbit \
        --seeds 8 --modes mastsam --explain-switches
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_tracker.py --seeds 0 1 2 --frames 40 --width 320 --height 240 \
        --skip-real --segmenter simulated --no-depth [--match-keep 0.05 --match-noise-px 1] [--modes mastsam] \
        [--tracker.anchor.no-retroactive]
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Optional

import cv2
import numpy as np
import tyro

from mastsam_splat.tracker import TrackerConfig
from mastsam_splat.types import Frame, Matches

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


@dataclass
class BenchOptions:
    """Options of the tracker benchmark."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the synthetic scenes."""
    trajectories: tuple[Literal["orbit", "forward"], ...] = ("orbit", "forward")
    """Camera paths of the synthetic scenes."""
    frames: int = 40
    """Frames per synthetic scene."""
    width: int = 320
    """Width of the synthetic scenes."""
    height: int = 240
    """Height of the synthetic scenes."""
    real_frames: int = 30
    """Frames taken from each video."""
    real_sets: tuple[Literal["aloe", "tree", "megamind"], ...] = ("aloe", "tree", "megamind")
    """Real sequences to run."""
    skip_synthetic: bool = False
    """Leave out the synthetic scenes."""
    skip_real: bool = False
    """Leave out the real sequences."""
    workdir: str = "outputs/bench_tracker_data"
    """Where synthetic scenes are rendered (reused)."""
    out: str = "outputs/bench_tracker.json"
    """JSON file with every number."""
    segmenter: Literal["classical", "simulated"] = "classical"
    """Segmenter of the synthetic scenes (the real sequences always use the classical one)."""
    sim_seed: int = 0
    """Seed of the simulated SAM."""
    sim_split_probability: float = 0.5
    sim_merge_probability: float = 0.2
    sim_jitter_px: int = 2
    shuffle: bool = False
    """Give the tracker the synthetic frames in a random (seeded) order."""
    shuffle_seed: int = 0
    order: Optional[Literal["sequence", "view_graph"]] = None
    """Tracker view order (default: the tracker's default)."""
    anchor: bool = True
    """The tracker's 3D-anchored association."""
    refine: Optional[bool] = None
    """The tracker's granularity refinement (default: the tracker's default)."""
    object_ids: bool = True
    """Score the object level with the tracker's object ids (ids split from one id grouped again); off: with
    the ids themselves."""
    no_depth: bool = False
    """Give the tracker the synthetic frames without depth maps (cameras kept); its 3D points are then the
    matcher's correspondences triangulated with the cameras."""
    match_keep: float = 1.0
    """Fraction of the exact correspondences kept (at random), to mimic sparser matchers (with depth maps too:
    the tracker's 3D points still come from them)."""
    match_noise_px: float = 0.0
    """Standard deviation (pixels) of Gaussian noise added to the correspondences in frame b."""
    sfm_tracks: bool = False
    """Give the tracker the synthetic frames without depth maps (cameras kept) and, as its correspondences and 3D
    points, the tracks of the scene's COLMAP model made from its ground truth (``sparse/0``, written when missing):
    the ``sfm`` matcher and point source a dataset from ``mastsam prepare`` gets."""
    modes: tuple[Literal["mastsam", "independent"], ...] = ("mastsam", "independent")
    """Tracker modes to run on the synthetic scenes."""
    explain_switches: bool = False
    """Print, for every ground-truth id with an id switch, its best-matching id in every view (plain: IoU at least
    the switch threshold; in parentheses: lower; ``.``: hidden or too small; ``-``: no id on it) and, per view, the
    view it was matched with (``parent``, ``*`` for the first visited): where an id changed and along which branch
    of the view graph."""
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    """Tracker parameters (--tracker.mode is set by --modes)."""


class DepthOracleMatcher:
    """Exact correspondences: the geometric matcher run on the frames with their depth maps (looked up by name,
    so the tracker's frames may lack them), returned without 3D points; optionally thinned to a random ``keep``
    fraction and with Gaussian noise of ``noise_px`` pixels in frame b (seeded by the pair)."""

    def __init__(self, frames: list[Frame], keep: float = 1.0, noise_px: float = 0.0):
        from mastsam_splat.matchers.geometric import GeometricMatcher

        self.matcher = GeometricMatcher()
        self.by_name = {f.name: f for f in frames}
        self.keep = keep
        self.noise_px = noise_px

    def match(self, frame_a: Frame, frame_b: Frame) -> Matches:
        m = self.matcher.match(self.by_name[frame_a.name], self.by_name[frame_b.name])
        rng = np.random.default_rng([frame_a.index, frame_b.index])
        chosen = rng.random(len(m)) < self.keep
        xy_b = m.xy_b[chosen] + rng.normal(0.0, self.noise_px, (int(chosen.sum()), 2)) if self.noise_px > 0 else m.xy_b[chosen]
        return Matches(m.xy_a[chosen], xy_b, m.confidence[chosen])


def without_depth(frames: list[Frame]) -> list[Frame]:
    """The frames with their cameras but no depth maps."""
    return [replace(f, depth=None) for f in frames]


def with_model_tracks(folder: Path, frames: list[Frame]) -> list[Frame]:
    """The frames without depth maps, with the points of the scene's ground-truth COLMAP model they observed."""
    from mastsam_splat.synthetic.sfm import write_scene_sfm_model
    from mastsam_splat.tracker.job import with_sfm_points

    if not (folder / "sparse" / "0").is_dir():
        write_scene_sfm_model(folder)
    return with_sfm_points(without_depth(frames), folder, "sfm")


# ----------------------------------------------------------------------------- helpers
def run_tracker(
    frames: list,
    mode: str,
    matcher_name: str,
    tracker_config: Any,
    segmenter_name: str = "classical",
    segmenter_config: Any = None,
    permutation: Optional[np.ndarray] = None,
    matcher: Any = None,
) -> tuple[list[np.ndarray], float, Any]:
    """Labels of every frame (in the given order) and seconds per frame (tracker wall time, backends included).

    With ``permutation`` the tracker sees ``frames[permutation[k]]`` as its k-th frame; ``matcher`` replaces
    the one built from ``matcher_name`` (which still names it to the tracker).
    """
    from mastsam_splat.matchers import make_matcher
    from mastsam_splat.segmenters import make_segmenter
    from mastsam_splat.tracker import MastSAMTracker

    segmenter = make_segmenter(segmenter_name, segmenter_config)
    matcher = make_matcher(matcher_name) if matcher is None else matcher
    tracker = MastSAMTracker(replace(tracker_config, mode=mode), segmenter, matcher, matcher_name=matcher_name)
    given = frames if permutation is None else [frames[i] for i in permutation]
    start = time.perf_counter()
    result = tracker.run(given)
    seconds = time.perf_counter() - start
    labels = result.labels
    if permutation is not None:
        labels = [None] * len(frames)
        for k, i in enumerate(permutation):
            labels[i] = result.labels[k]
    return labels, seconds / len(frames), result


def flow_correspondences(frames: list, gaps: tuple[int, ...], step: int = 4, max_error: float = 1.0) -> list:
    """Reference correspondences from DIS optical flow, kept where forward and backward flow agree."""
    from mastsam_splat.metrics import Correspondences

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [cv2.cvtColor(f.image, cv2.COLOR_RGB2GRAY) for f in frames]
    h, w = grey[0].shape
    cols, rows = np.meshgrid(np.arange(0, w, step), np.arange(0, h, step))
    out = []
    for gap in gaps:
        for a in range(len(frames) - gap):
            b = a + gap
            fwd = dis.calc(grey[a], grey[b], None)
            bwd = dis.calc(grey[b], grey[a], None)
            flow = fwd[rows, cols]  # [h', w', 2]
            xb = cols + flow[..., 0]
            yb = rows + flow[..., 1]
            back = cv2.remap(bwd, xb.astype(np.float32), yb.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
            error = np.linalg.norm(flow + back, axis=-1)
            inside = (xb >= 0) & (xb <= w - 1) & (yb >= 0) & (yb <= h - 1)
            ok = inside & np.isfinite(error) & (error < max_error)
            xy_a = np.stack([cols[ok] + 0.5, rows[ok] + 0.5], axis=1)
            xy_b = np.stack([xb[ok] + 0.5, yb[ok] + 0.5], axis=1)
            out.append(Correspondences(a=a, b=b, xy_a=xy_a, xy_b=xy_b))
    return out


def disparity_correspondences(disparity: np.ndarray, step: int = 2) -> list:
    """Left -> right correspondences of a rectified pair from a disparity map in pixels (0 = unknown)."""
    from mastsam_splat.metrics import Correspondences

    rows, cols = np.nonzero(disparity[::step, ::step] > 0)
    rows, cols = rows * step, cols * step
    d = disparity[rows, cols].astype(np.float64)
    xy_a = np.stack([cols + 0.5, rows + 0.5], axis=1)
    xy_b = np.stack([cols + 0.5 - d, rows + 0.5], axis=1)
    return [Correspondences(a=0, b=1, xy_a=xy_a, xy_b=xy_b)]


def read_video(path: Path, start: int, stride: int, count: int) -> list:
    from mastsam_splat.types import Frame

    capture = cv2.VideoCapture(str(path))
    frames, index = [], 0
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        if index >= start and (index - start) % stride == 0:
            frames.append(Frame(image=np.ascontiguousarray(bgr[:, :, ::-1]), name=f"frame_{index:05d}", index=len(frames), file=path))
        index += 1
    capture.release()
    return frames


def synthetic_scene(root: Path, trajectory: str, seed: int, frames: int, width: int, height: int) -> Path:
    """The scene folder, rendered once and reused when its settings match."""
    from mastsam_splat.synthetic import make_scene

    folder = root / f"{trajectory}_s{seed}_{frames}f_{width}x{height}"
    meta = folder / "scene.json"
    if meta.is_file():
        settings = json.loads(meta.read_text()).get("settings", {})
        if (settings.get("frames"), settings.get("seed"), settings.get("trajectory")) == (frames, seed, trajectory):
            return folder
    return make_scene(folder, frames=frames, width=width, height=height, seed=seed, trajectory=trajectory, progress=False)


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else round(float(value), 4)


# ----------------------------------------------------------------------------- benchmarks
def bench_synthetic(args: BenchOptions, tracker_config: Any) -> list[dict[str, Any]]:
    from mastsam_splat.io import load_scene, read_label_dir
    from mastsam_splat.metrics import MetricsConfig, evaluate, geometric_correspondences, view_pairs
    from mastsam_splat.io.labels import map_ids

    rows = []
    metrics_config = MetricsConfig(pair_gaps=(1, 2, 4))
    for trajectory in args.trajectories:
        for seed in args.seeds:
            folder = synthetic_scene(Path(args.workdir), trajectory, seed, args.frames, args.width, args.height)
            scene = load_scene(folder)
            names = [f.name for f in scene.frames]
            gt = {level: read_label_dir(folder / level, names) for level in ("instances", "parts")}
            pairs = view_pairs(len(names), metrics_config.pair_gaps)
            corr = geometric_correspondences(scene.frames, pairs, step=metrics_config.correspondence_step)
            segmenter_config = None
            if args.segmenter == "simulated":
                from mastsam_splat.segmenters.simulated import SimulatedSamConfig

                segmenter_config = SimulatedSamConfig(
                    data=folder,
                    seed=args.sim_seed,
                    split_probability=args.sim_split_probability,
                    merge_probability=args.sim_merge_probability,
                    jitter_px=args.sim_jitter_px,
                )
            permutation = None
            if args.shuffle:
                permutation = np.random.default_rng(args.shuffle_seed + 1000 * seed).permutation(len(names))
            frames, matcher, expected = scene.frames, None, "depth"
            matcher_name = "geometric"
            if args.no_depth or args.match_keep < 1.0 or args.match_noise_px > 0.0:
                matcher = DepthOracleMatcher(scene.frames, args.match_keep, args.match_noise_px)
            if args.no_depth:
                frames, expected = without_depth(scene.frames), "triangulated"
            if args.sfm_tracks:
                frames, matcher_name, expected = with_model_tracks(folder, scene.frames), "sfm", "sfm"
            for mode in args.modes:
                labels, per_frame, result = run_tracker(
                    frames, mode, matcher_name, tracker_config, args.segmenter, segmenter_config, permutation, matcher
                )
                if result.points_source != expected:
                    raise RuntimeError(f"{folder.name}: 3D points from {result.points_source!r}, expected {expected!r}")
                for level, gt_maps in gt.items():
                    scored = labels
                    if level == "instances" and args.object_ids:
                        scored = map_ids(labels, result.object_of)
                    r = evaluate(scored, gt_maps, corr, metrics_config)
                    num_objects = len({int(i) for g in gt_maps for i in np.unique(g) if i > 0})
                    row = {
                        "set": f"synthetic-{trajectory}",
                        "scene": folder.name,
                        "seed": seed,
                        "mode": mode,
                        "level": "object" if level == "instances" else "part",
                        "per_view_miou": _round(r.per_view_miou),
                        "consistent_miou": _round(r.consistent_miou),
                        "id_switches": r.id_switches,
                        "id_switches_per_object": _round(r.id_switches / max(num_objects, 1)),
                        "idc": _round(r.idc),
                        "psc": _round(r.psc),
                        "coverage": _round(r.coverage),
                        "segments_per_frame": _round(r.segments_per_frame),
                        "gt_segments_per_frame": _round(r.gt_segments_per_frame),
                        "mean_segment_area": _round(r.mean_segment_area),
                        "seconds_per_frame": _round(per_frame),
                        "frames": len(names),
                        "points_source": result.points_source,
                    }
                    rows.append(row)
                    _progress(row)
                    if args.explain_switches and mode == "mastsam":
                        print_switches(f"{folder.name} {level}", scored, gt_maps, result.reports, metrics_config, permutation)
    return rows


def switch_rows(
    labels: list[np.ndarray],
    gt_maps: list[np.ndarray],
    reports: list[Any],
    min_iou: float,
    min_gt_area: int,
    permutation: Optional[np.ndarray] = None,
) -> list[str]:
    """Text rows of ``--explain-switches``: the parent of every view, then one row per ground-truth id that switched
    (views in the scene's order; ``permutation``: the order the tracker was given them in, as ``run_tracker``'s)."""
    from mastsam_splat.metrics import best_matches, overlap_table, switches_of

    table = overlap_table(labels, gt_maps)
    best = best_matches(table, min_gt_area)
    switches = switches_of(best, min_iou)
    view = (lambda k: k) if permutation is None else (lambda k: int(permutation[k]))
    parent = {view(r.index): None if r.parent is None else view(r.parent) for r in reports}
    out = ["view      " + "".join(f"{v:4d}" for v in range(table.num_views))]
    out.append("parent    " + "".join(f"{'*' if parent.get(v) is None else parent[v]:>4}" for v in range(table.num_views)))
    for row, gt_id in enumerate(best.gt_ids.tolist()):
        count = switches.per_object.get(int(gt_id), 0)
        if count == 0:
            continue
        cells = []
        for pred, iou, shown in zip(best.pred[row].tolist(), best.iou[row].tolist(), best.shown[row].tolist()):
            cells.append("   ." if not shown else "   -" if pred == 0 else f"{pred:4d}" if iou >= min_iou else f"({pred:2d})")
        out.append(f"{int(gt_id):4d} sw {count:<2d}" + "".join(cells))
    return out


def print_switches(
    title: str,
    labels: list[np.ndarray],
    gt_maps: list[np.ndarray],
    reports: list[Any],
    config: Any,
    permutation: Optional[np.ndarray] = None,
) -> None:
    rows = switch_rows(labels, gt_maps, reports, config.id_switch_min_iou, config.id_switch_min_area, permutation)
    if len(rows) == 2:  # (the view and parent rows only)
        print(f"\n{title}: no id switches", flush=True)
        return
    print(f"\n{title}: id switches", *rows, sep="\n", flush=True)


def bench_real(args: BenchOptions, tracker_config: Any) -> list[dict[str, Any]]:
    from mastsam_splat.io.scene import read_image
    from mastsam_splat.metrics import consistency_scores, granularity
    from mastsam_splat.types import Frame

    if not OPENCV_DATA.is_dir():
        print(f"skipping real sequences: {OPENCV_DATA} not found (apt-get install opencv-doc)", file=sys.stderr)
        return []
    sequences = []
    if "aloe" in args.real_sets and (OPENCV_DATA / "aloeL.jpg").is_file():
        frames = [
            Frame(image=read_image(OPENCV_DATA / "aloeL.jpg"), name="aloeL", index=0, file=OPENCV_DATA / "aloeL.jpg"),
            Frame(image=read_image(OPENCV_DATA / "aloeR.jpg"), name="aloeR", index=1, file=OPENCV_DATA / "aloeR.jpg"),
        ]
        disparity = cv2.imread(str(OPENCV_DATA / "aloeGT.png"), cv2.IMREAD_UNCHANGED)
        sequences.append(("aloe", frames, disparity_correspondences(disparity)))
    for name, start, stride, count in (("tree.avi", 0, 2, args.real_frames), ("Megamind.avi", 10, 3, args.real_frames)):
        path = OPENCV_DATA / name
        if name.split(".")[0].lower() in args.real_sets and path.is_file():
            frames = read_video(path, start, stride, count)
            sequences.append((name, frames, flow_correspondences(frames, (1, 2, 4))))
    rows = []
    for name, frames, corr in sequences:
        for mode in ("mastsam", "independent"):
            try:
                labels, per_frame, _ = run_tracker(frames, mode, "sift", tracker_config)
            except Exception as exc:  # a backend failure on one sequence is reported, the others still run
                row = {"set": "real", "scene": name, "mode": mode, "level": "-", "error": f"{type(exc).__name__}: {exc}"}
                rows.append(row)
                print(f"  {name:32s} {mode:11s} FAILED {row['error']}", file=sys.stderr, flush=True)
                continue
            scores = consistency_scores(labels, corr)
            grain = granularity(labels)
            row = {
                "set": "real",
                "scene": name,
                "mode": mode,
                "level": "-",
                "idc": _round(scores.idc),
                "psc": _round(scores.psc),
                "coverage": _round(scores.coverage),
                "segments_per_frame": _round(grain.segments_per_frame),
                "mean_segment_area": _round(grain.mean_segment_area),
                "seconds_per_frame": _round(per_frame),
                "frames": len(frames),
                "correspondences": scores.num_correspondences,
            }
            rows.append(row)
            _progress(row)
    return rows


def _progress(row: dict[str, Any]) -> None:
    keys = ("per_view_miou", "consistent_miou", "id_switches", "idc", "psc", "coverage", "segments_per_frame", "seconds_per_frame")
    text = " ".join(f"{k}={row[k]}" for k in keys if k in row)
    print(f"  {row['scene']:32s} {row['mode']:11s} {row['level']:6s} {text}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- summary
def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians over seeds / scenes per (set, scene group, mode, level)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        scene = row["scene"] if row["set"] == "real" else row["set"]
        groups.setdefault((row["set"], scene, row["level"], row["mode"]), []).append(row)
    out = []
    metrics = ("per_view_miou", "consistent_miou", "id_switches_per_object", "idc", "psc", "coverage", "segments_per_frame", "seconds_per_frame")
    for (set_name, scene, level, mode), members in sorted(groups.items()):
        errors = [r["error"] for r in members if "error" in r]
        members = [r for r in members if "error" not in r]
        entry = {"set": set_name, "scene": scene, "level": level, "mode": mode, "runs": len(members), "errors": errors}
        for m in metrics:
            values = [r[m] for r in members if r.get(m) is not None]
            entry[m] = round(float(np.median(values)), 4) if values else None
        out.append(entry)
    return out


def print_table(summary: list[dict[str, Any]]) -> None:
    header = f"{'set':22s} {'level':6s} {'mode':11s} {'runs':>4s} {'pvIoU':>6s} {'cIoU':>6s} {'sw/obj':>6s} {'IDC':>6s} {'PSC':>6s} {'cov':>6s} {'seg/f':>6s} {'s/frame':>7s}"
    print(header)
    print("-" * len(header))

    def fmt(v: Any, width: int = 6) -> str:
        return f"{v:{width}.3f}" if isinstance(v, float) else f"{'-':>{width}s}"

    for e in summary:
        name = e["scene"]
        if e["errors"] and not e["runs"]:
            print(f"{name:22s} {e['level']:6s} {e['mode']:11s} failed: {e['errors'][0][:80]}")
            continue
        print(
            f"{name:22s} {e['level']:6s} {e['mode']:11s} {e['runs']:4d} {fmt(e['per_view_miou'])} {fmt(e['consistent_miou'])} "
            f"{fmt(e['id_switches_per_object'])} {fmt(e['idc'])} {fmt(e['psc'])} {fmt(e['coverage'])} {fmt(e['segments_per_frame'])} "
            f"{fmt(e['seconds_per_frame'], 7)}"
        )


def main(argv: Optional[list[str]] = None) -> int:
    args = tyro.cli(BenchOptions, args=argv, description=__doc__)

    tracker_config = args.tracker
    tracker_config.anchor.enabled = args.anchor
    if args.order is not None:
        tracker_config.view_order.order = args.order
    if args.refine is not None:
        tracker_config.refine.enabled = args.refine
    rows: list[dict[str, Any]] = []
    if not args.skip_synthetic:
        rows += bench_synthetic(args, tracker_config)
    if not args.skip_real:
        rows += bench_real(args, tracker_config)
    summary = summarise(rows)
    print_table(summary)
    ratios = {}
    for e in summary:
        if e["mode"] == "mastsam":
            base = next((b for b in summary if b["mode"] == "independent" and b["scene"] == e["scene"] and b["level"] == e["level"]), None)
            if base and base["seconds_per_frame"] and e["seconds_per_frame"]:
                ratios[f"{e['scene']}/{e['level']}"] = round(e["seconds_per_frame"] / base["seconds_per_frame"], 3)
    print("\nwall time mastsam / independent:", ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"args": asdict(args), "tracker_config": asdict(tracker_config), "rows": rows, "summary": summary, "time_ratio": ratios}
    out.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

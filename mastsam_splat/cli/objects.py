"""``mastsam export`` and ``mastsam lift``: per-object Gaussians from a trained or labelled scene."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np
import tyro
from rich.markup import escape

from mastsam_splat.cli.track import TrackCommand, run_track
from mastsam_splat.errors import InputError
from mastsam_splat.io import load_scene
from mastsam_splat.io.destinations import check_writable_dir
from mastsam_splat.io.scene import check_downscale, input_image_folders
from mastsam_splat.io.labels import read_label_image
from mastsam_splat.io.ply import read_gaussians_ply
from mastsam_splat.matchers import MatcherName
from mastsam_splat.objects.export import check_destination, export_objects, parse_object_selection
from mastsam_splat.objects.filters import ObjectFilter
from mastsam_splat.objects.lift import LiftConfig, LiftView, lift_labels
from mastsam_splat.objects.run import dataset_to_run_frame, load_run_gaussians, open_run
from mastsam_splat.segmenters import SegmenterName
from mastsam_splat.threads import cpu_threads
from mastsam_splat.tracker.job import BackendOptions
from mastsam_splat.tracker.outputs import CONTACT_SHEET, MASKS_DIR, TRACKS_FILE

VIEWER_DIR = "nerfstudio"
"""Subfolder of a lift's output holding the mastsam-splat run for the viewer."""
DEFAULT_TRACK_CACHE = Path("mastsam") / "lift-views"
"""Tracker output folder, relative to the dataset, when ``mastsam lift`` runs the tracker itself."""


def _console(quiet: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


def _print_objects(console: Any, index: dict[str, Any], limit: int = 20) -> None:
    from rich.table import Table

    table = Table(title=f"{index['num_gaussians']} Gaussians", show_lines=False)
    for name in ("id", "Gaussians", "bbox min", "bbox max", "colour"):
        table.add_column(name)
    for entry in index["objects"][:limit]:
        fmt = lambda v: "-" if v is None else "(" + ", ".join(f"{x:.2f}" for x in v) + ")"  # noqa: E731
        label = str(entry["id"]) if entry["kind"] == "object" else entry["kind"]
        table.add_row(
            label,
            str(entry["num_gaussians"]),
            fmt(entry["bbox_min"]),
            fmt(entry["bbox_max"]),
            f"[{entry['mean_color_hex']}]■[/] {entry['mean_color_hex']}",
        )
    console.print(table)
    if len(index["objects"]) > limit:
        console.print(f"... and {len(index['objects']) - limit} more (see objects.json)")


@dataclass
class ExportCommand:
    """Export a segmented scene: one PLY per object, the whole scene with an instance_id field, and an index."""

    output_dir: Path
    """Folder for scene.ply, objects/*.ply and objects.json (new, empty, or an earlier export)."""
    load_config: Optional[Path] = None
    """config.yml of a mastsam-splat run (its Gaussians' ids come from the instance head)."""
    ply: Optional[Path] = None
    """Instead of a run: a 3DGS PLY with an instance_id field (e.g. written by `mastsam lift`)."""
    objects: str = "all"
    """Objects to write files for: 'all' or comma-separated ids (background / unlabelled accepted)."""
    points: bool = False
    """Also write points.ply: Gaussian centres with colour and instance_id, for tools that take points."""
    load_step: Optional[int] = None
    """Checkpoint step to read (default: the latest)."""
    quiet: bool = False
    """No summary table."""
    object_filter: tyro.conf.OmitArgPrefixes[ObjectFilter] = field(default_factory=ObjectFilter)
    """Per-object files leave out nearly transparent Gaussians and 3D outliers (scene.ply keeps all)."""

    def main(self) -> None:
        run_export(self)


def run_export(cmd: ExportCommand) -> Any:
    """Load, check and export; returns the :class:`ExportResult`."""

    console = _console(cmd.quiet)
    if (cmd.load_config is None) == (cmd.ply is None):
        raise InputError("pass exactly one of --load-config (a Nerfstudio run) or --ply (a labelled 3DGS PLY)")
    check_writable_dir(cmd.output_dir, "--output-dir", staged=True)
    selection = parse_object_selection(cmd.objects)
    if cmd.load_config is not None:
        gaussians, run = load_run_gaussians(cmd.load_config, cmd.load_step)
        if gaussians.instance_ids is None:
            raise InputError(
                f"this {run.method_name} run has no instance features, so its Gaussians have no object ids; "
                f"label them without retraining: mastsam lift --load-config {cmd.load_config} --output-dir DIR "
                "(then export from DIR/scene.ply with --ply if you need other objects)",
                cmd.load_config,
            )
        metadata = {
            "source": str(Path(cmd.load_config).resolve()),
            "checkpoint": str(run.checkpoint.resolve()),
            "step": run.step,
            "frame": "nerfstudio run (dataparser-normalised)",
            "labels": "instance head",
        }
    else:
        gaussians = read_gaussians_ply(cmd.ply)
        if gaussians.instance_ids is None:
            raise InputError(
                "this PLY has no instance_id field; label its Gaussians first: "
                f"mastsam lift --ply {cmd.ply} --data DATASET --output-dir DIR",
                cmd.ply,
            )
        metadata = {"source": str(Path(cmd.ply).resolve()), "frame": "as in the source PLY", "labels": "instance_id"}
    result = export_objects(
        gaussians, cmd.output_dir, selection, points=cmd.points, metadata=metadata, object_filter=cmd.object_filter
    )
    _print_objects(console, result.index)
    console.print(
        f"wrote {len(result.object_files)} object files and {result.scene_file.name} "
        f"to {escape(str(result.output_dir))}"
    )
    return result


@dataclass
class LiftCommand(BackendOptions):
    """Label the Gaussians of an existing scene (3DGS PLY or Nerfstudio run) without training: render every
    view, vote each label image onto the Gaussians that produced its pixels, and export per-object PLYs."""

    output_dir: Path
    """Folder for scene.ply (with instance_id), objects/*.ply and objects.json."""
    data: Optional[Path] = None
    """Nerfstudio dataset with cameras (folder or transforms.json); default for --load-config: the run's dataset."""
    ply: Optional[Path] = None
    """3DGS PLY (any tool, any SH degree) in the world frame of the dataset's transforms.json."""
    load_config: Optional[Path] = None
    """config.yml of a Nerfstudio run (splatfacto or mastsam-splat); its dataparser transform maps the cameras."""
    load_step: Optional[int] = None
    """Checkpoint step of --load-config (default: the latest)."""
    masks: Optional[Path] = None
    """Folder of label images <frame_stem>.png (uint16, frame size) or a `mastsam track` output folder;
    default: run the MastSAM tracker on the dataset's images (cached)."""
    skip_views_without_masks: bool = False
    """Lift from the views that have a label image instead of stopping when some are missing."""
    stride: int = 1
    """Use every n-th view."""
    max_frames: Optional[int] = None
    """Use at most this many views (after --stride)."""
    downscale: int = 1
    """Render and vote at 1/downscale of the image size (labels resized by nearest neighbour)."""
    points: bool = False
    """Also write points.ply: Gaussian centres with colour and instance_id."""
    segmenter: SegmenterName = "classical"
    """Tracker segmenter when --masks is not given (sam needs --sam-checkpoint)."""
    matcher: Union[Literal["auto"], MatcherName] = "auto"
    """Tracker matcher when --masks is not given; auto = geometric with depth maps and cameras, sfm (the tracks of
    the dataset's COLMAP model) with one, else sift (mast3r needs --mast3r-checkpoint)."""
    viewer_run: bool = True
    """With --load-config: also write a mastsam-splat run of the labelled Gaussians under <output-dir>/nerfstudio,
    so `ns-viewer --load-config` on it offers click-to-select (also for a plain splatfacto run)."""
    track_cache: Optional[Path] = None
    """Tracker output folder (default: <dataset>/mastsam/lift-views); reused while inputs and settings match."""
    quiet: bool = False
    """No progress bar or summary."""
    lift: tyro.conf.OmitArgPrefixes[LiftConfig] = field(default_factory=LiftConfig)
    """Vote settings."""
    object_filter: tyro.conf.OmitArgPrefixes[ObjectFilter] = field(default_factory=ObjectFilter)
    """Per-object files leave out nearly transparent Gaussians and 3D outliers (scene.ply keeps all)."""

    def main(self) -> None:
        run_lift(self)


def _load_source(cmd: LiftCommand) -> tuple[Any, Path, Any, dict[str, Any]]:
    """Gaussians, dataset path, camera mapping (None = identity) and index metadata."""

    if (cmd.ply is None) == (cmd.load_config is None):
        raise InputError("pass exactly one of --ply (a 3DGS PLY) or --load-config (a Nerfstudio run's config.yml)")
    if cmd.ply is not None:
        if cmd.data is None:
            raise InputError("--ply needs --data: the dataset (transforms.json) whose cameras see the scene")
        gaussians = read_gaussians_ply(cmd.ply)
        meta = {"source": str(Path(cmd.ply).resolve()), "frame": "transforms.json of the dataset"}
        return gaussians, Path(cmd.data), None, meta
    run, config = open_run(cmd.load_config, cmd.load_step)
    data = Path(cmd.data) if cmd.data is not None else run.resolve_data()
    if data is None:
        raise InputError(f"cannot find the run's dataset ({run.data}); pass it with --data", cmd.load_config)
    frame = dataset_to_run_frame(run.run_dir, data)
    gaussians, run = load_run_gaussians(cmd.load_config, cmd.load_step)
    model = config.get("pipeline", {}).get("model", {})
    if model.get("rasterize_mode") in ("classic", "antialiased"):
        cmd.lift.rasterize_mode = model["rasterize_mode"]
    meta = {
        "source": str(Path(cmd.load_config).resolve()),
        "checkpoint": str(run.checkpoint.resolve()),
        "step": run.step,
        "method": run.method_name,
        "frame": "nerfstudio run (dataparser-normalised)",
    }
    return gaussians, data, frame, meta


def _masks_folder(path: Path) -> Path:
    """The label images: ``path`` itself, or the ``masks/`` of a `mastsam track` output folder."""
    if not path.is_dir():
        raise InputError("masks folder not found", path)
    masks = path / MASKS_DIR
    if masks.is_dir():
        track_output = (path / TRACKS_FILE).is_file() or all(p.name == CONTACT_SHEET for p in path.glob("*.png"))
        if track_output:
            return masks
    return path


def _track(cmd: LiftCommand, data: Path, console: Any) -> Path:
    """Run (or reuse) the MastSAM tracker on the dataset's images; returns its masks folder."""

    cache = track_cache(cmd, data)
    console.print(
        f"no --masks: labelling the views with the MastSAM tracker ({cmd.segmenter} + {cmd.matcher} matcher) "
        f"-> {escape(str(cache))}"
    )
    track = TrackCommand(
        data=data,
        output_dir=cache,
        segmenter=cmd.segmenter,
        matcher=cmd.matcher,
        **{option.name: getattr(cmd, option.name) for option in fields(BackendOptions)},
        stride=cmd.stride,
        max_frames=cmd.max_frames,
        quiet=cmd.quiet,
    )
    run_track(track)
    return cache / MASKS_DIR


def dataset_root(data: Path) -> Path:
    """The dataset folder of ``data`` (a folder, or its transforms.json)."""
    return data.parent if data.suffix.lower() == ".json" else data


def track_cache(cmd: LiftCommand, data: Path) -> Path:
    """Where the tracker's labels go when ``--masks`` is not given."""
    return Path(cmd.track_cache) if cmd.track_cache is not None else dataset_root(data) / DEFAULT_TRACK_CACHE


def check_lift_destinations(cmd: LiftCommand, data: Path) -> None:
    """The output folder and, without ``--masks``, the tracker's cache can be written (and are not
    the input images' folder)."""
    inputs = input_image_folders(data) if data.exists() else []
    check_writable_dir(cmd.output_dir, "--output-dir", inputs=inputs, staged=True)
    if cmd.masks is None:
        given = cmd.track_cache is not None
        check_writable_dir(
            track_cache(cmd, data),
            "--track-cache" if given else "the tracker's cache (default of --track-cache)",
            inputs=inputs,
            hint="" if given else "pass --track-cache DIR to keep the tracker's labels elsewhere, or --masks DIR",
        )


def downscale_labels(labels: np.ndarray, factor: int, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour label map [H, W] -> ``size`` (w, h): each low-res pixel takes the full-res pixel
    holding its centre, ``(i + 0.5) * factor`` (matching ``Camera.scaled(1 / factor)``)."""
    rows = np.minimum(np.arange(size[1]) * factor + factor // 2, labels.shape[0] - 1)
    cols = np.minimum(np.arange(size[0]) * factor + factor // 2, labels.shape[1] - 1)
    return labels[np.ix_(rows, cols)]


def build_views(scene: Any, masks: Path, frame: Any, downscale: int, skip_missing: bool) -> list:
    """One :class:`LiftView` per frame that has cameras and (unless skipped) a label image."""
    import cv2


    missing = [f.name for f in scene.frames if not (masks / f"{f.name}.png").is_file()]
    if missing and (not skip_missing or len(missing) == len(scene.frames)):
        raise InputError(
            f"no label image for {len(missing)} of {len(scene.frames)} frames (e.g. {', '.join(missing[:3])}.png); "
            "the masks must be named after the dataset's image files"
            + ("" if skip_missing else " (or pass --skip-views-without-masks)"),
            masks,
        )
    views = []
    for f in scene.frames:
        path = masks / f"{f.name}.png"
        if not path.is_file():
            continue
        camera = f.camera if frame is None else frame.camera_to_run(f.camera)
        image = f.image
        if downscale > 1:
            camera = camera.scaled(1.0 / downscale)
            size = (camera.width, camera.height)

            def labels(path: Path = path, shape: tuple = f.image.shape[:2], size: tuple = size) -> np.ndarray:
                return downscale_labels(read_label_image(path, expected_shape=shape), downscale, size)

            image = cv2.resize(f.image, size, interpolation=cv2.INTER_AREA)
        else:

            def labels(path: Path = path, shape: tuple = f.image.shape[:2]) -> np.ndarray:
                return read_label_image(path, expected_shape=shape)

        views.append(LiftView(name=f.name, camera=camera, labels=labels, image=image, source=str(path)))
    return views


def run_lift(cmd: LiftCommand) -> dict[str, Any]:
    """Load the scene and views, vote, export; returns a summary."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )


    console = _console(cmd.quiet)
    t0 = time.perf_counter()
    if cmd.downscale < 1:
        raise InputError(f"--downscale must be >= 1, got {cmd.downscale}")
    check_destination(Path(cmd.output_dir))
    check_writable_dir(cmd.output_dir, "--output-dir", staged=True)
    gaussians, data, frame, meta = _load_source(cmd)
    check_lift_destinations(cmd, Path(data))
    gaussians.check_finite()
    scene = load_scene(data, stride=cmd.stride, max_frames=cmd.max_frames)
    if not scene.has_cameras:
        raise InputError("the dataset has no cameras; lifting needs a Nerfstudio dataset (transforms.json)", data)
    check_downscale(scene, cmd.downscale)
    masks = _masks_folder(Path(cmd.masks)) if cmd.masks is not None else _track(cmd, data, console)
    views = build_views(scene, masks, frame, cmd.downscale, cmd.skip_views_without_masks)
    load_s = time.perf_counter() - t0

    columns = (
        TextColumn("[bold]lift[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("views"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=console.quiet) as progress, cpu_threads():
        task = progress.add_task("lift", total=len(views))
        result = lift_labels(gaussians, views, cmd.lift, on_view=lambda i, v: progress.update(task, advance=1))
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")

    labelled = gaussians.with_ids(result.instance_ids)
    metadata = {
        **meta,
        "dataset": str(Path(data).resolve()),
        "masks": str(Path(masks).resolve()),
        "labels": "lift (training-free vote)",
        "lift": {
            "views": result.num_views,
            "downscale": cmd.downscale,
            "settings": asdict(cmd.lift),
            "seen_fraction": round(result.seen_fraction, 4),
            "agreement": round(result.agreement, 4),
            "median_coverage": round(float(np.median(list(result.coverage.values()))), 4),
            "warnings": result.warnings,
            "counts": result.counts(),
            "psnr_check": result.psnr,
            "timing": {k: round(v, 3) for k, v in {"load_s": load_s, **result.timing}.items()},
        },
    }
    extra = None
    if cmd.load_config is not None and cmd.viewer_run:
        from nerfstudio_plugin.viewer_run import write_viewer_run

        def extra(staging: Path, final: Path) -> dict[str, Any]:
            config = write_viewer_run(
                cmd.load_config, result.instance_ids, staging / VIEWER_DIR, final / VIEWER_DIR, cmd.load_step
            )
            return {"viewer_config": str(config)}

    export = export_objects(
        labelled, cmd.output_dir, None, points=cmd.points, metadata=metadata, extra=extra, object_filter=cmd.object_filter
    )
    if "viewer_config" in export.index:
        console.print(f"open it in the viewer: ns-viewer --load-config {escape(export.index['viewer_config'])}")
    counts = result.counts()
    _print_objects(console, export.index)
    console.print(
        f"{counts['objects']} objects over {counts['labelled']} Gaussians, {counts['background']} background, "
        f"{counts['unlabelled']} unseen; {result.num_views} views in {result.timing['total_s']:.1f} s "
        f"({result.timing['per_view_s']:.2f} s/view) -> {escape(str(export.output_dir))}"
    )
    return {"result": result, "export": export, "metadata": metadata}

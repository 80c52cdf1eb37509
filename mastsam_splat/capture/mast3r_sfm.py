"""Structure from motion with MASt3R's sparse global alignment (``--sfm mast3r``).

Every frame is resized and cropped to MASt3R's input (``io.mast3r.Mast3rInputTransform``, 512
pixels by default); pairs of frames (all pairs for short captures, a sliding window along longer
sequences) go through the network, and ``mast3r.cloud_opt.sparse_ga.sparse_global_alignment``
aligns them into focal lengths (one shared by default: the frames of a capture come from one
camera), camera-to-world poses and depth maps, the reconstruction of the MASt3R paper.

The result becomes a COLMAP reconstruction in the pixels of the written images, so
``capture.writer`` writes it like a COLMAP run: PINHOLE cameras (MASt3R models no distortion),
the poses, and 3D points whose tracks are MASt3R's reciprocal correspondences chained across
pairs, one observation per point and image (its most confident pixel). Pixels whose aligned 3D
point is less confident than ``min_conf`` take no part; a point sits at the confidence-weighted
mean of MASt3R's aligned 3D points at its observations; observations farther than
``max_reprojection_error`` from their point's projection are then left out, and points seen in
fewer than two images dropped. MASt3R assigns a pose to every frame, so all frames register.

MASt3R's pixel coordinates are pixel indices (the centre of the top-left pixel at ``(0, 0)``);
this project's put it at ``(0.5, 0.5)``, the shift applied before mapping back to the written
images. MASt3R (and torch) are imported only here, when the backend runs.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from mastsam_splat.capture.sfm import MIN_REGISTERED, SfmResult
from mastsam_splat.errors import InputError
from mastsam_splat.io.checkpoints import check_checkpoint_file
from mastsam_splat.io.colmap import write_sparse_model
from mastsam_splat.io.images import read_image_file
from mastsam_splat.io.mast3r import (
    CHECKPOINT_HELP,
    INSTALL_HELP,
    Mast3rInputTransform,
    import_mast3r,
    load_mast3r_model,
    network_view,
    patch_size,
)
from mastsam_splat.types import Camera

SCENE_GRAPH = re.compile(r"^(auto|complete|(swin|logwin)(-\d+)?(-noncyclic)?|oneref(-\d+)?)$")
"""Pair graphs of ``mast3r.image_pairs.make_pairs`` that need no retrieval model."""


@dataclass
class Mast3rSfmOptions:
    """Settings of the MASt3R backend (MASt3R demo's defaults where not said otherwise)."""

    repo: Optional[str] = None
    """Clone of github.com/naver/mast3r (with its dust3r submodule), when it is not on PYTHONPATH."""
    image_size: int = 512
    """Long side of the network input in pixels (512: the checkpoint's training resolution)."""
    scene_graph: str = "auto"
    """Frame pairs run through the network, as MASt3R names them: ``complete``, ``swin-N[-noncyclic]``,
    ``logwin-N[-noncyclic]``, ``oneref-I``; ``auto``: complete up to ``complete_limit`` frames, else
    ``swin-<window>-noncyclic`` plus ``logwin`` pairs reaching farther along the sequence."""
    complete_limit: int = 20
    """``auto``: captures of at most this many frames pair every frame with every other one."""
    window: int = 5
    """``auto`` on longer captures: successors each frame is paired with."""
    shared_intrinsics: bool = True
    """One focal length and principal point for all frames (one camera); False: one per frame."""
    niter1: int = 300
    """Iterations of the coarse alignment (3D matching loss)."""
    lr1: float = 0.07
    niter2: int = 300
    """Iterations of the refinement (2D reprojection loss, depth maps optimised too); 0: coarse only."""
    lr2: float = 0.01
    matching_conf_thr: float = 0.0
    """Pairs whose best match confidence is at most this fall back to MASt3R's pointmap regression loss
    and give no tracks."""
    subsample: int = 8
    """Correspondences start from every n-th network pixel (MASt3R's anchor grid)."""
    min_conf: float = 1.5
    """Observations whose aligned 3D point is less confident than this are left out of the tracks
    (MASt3R's demo keeps points above 1.5; confidences are > 1)."""
    max_reprojection_error: Optional[float] = 4.0
    """Observations farther than this (pixels at the network's resolution) from the projection of
    their track's point are left out; None keeps all."""
    device: str = "auto"
    """Torch device; "auto" picks CUDA when available."""


@dataclass
class Alignment:
    """MASt3R's alignment at the network's resolution (all frames one size, ``Mast3rInputTransform`` ``tf``).

    Pixel coordinates are MASt3R's pixel indices (x, y); dense maps are row-major ``[h * w, ...]``.
    """

    tf: Mast3rInputTransform
    K: np.ndarray
    """[N, 3, 3] intrinsics in network pixel indices."""
    cam_to_world: np.ndarray
    """[N, 4, 4] OpenCV camera-to-world poses."""
    points: list[np.ndarray]
    """Per frame, [h * w, 3] aligned world points of every network pixel."""
    confidence: list[np.ndarray]
    """Per frame, [h * w] confidence of those points."""
    colors: list[np.ndarray]
    """Per frame, [h * w, 3] uint8 RGB of the network input."""
    matches: list[tuple[int, int, np.ndarray, np.ndarray]]
    """Correspondences ``(i, j, px_i [M, 2], px_j [M, 2])`` between frames i and j (integer pixels)."""


def check_mast3r(checkpoint: Optional[Path], options: Mast3rSfmOptions) -> None:
    """Refuse settings the backend cannot run with, before any work: no or no such checkpoint, no MASt3R code."""
    if checkpoint is None:
        raise InputError(f"--sfm mast3r needs --mast3r-checkpoint PATH: {CHECKPOINT_HELP}; {INSTALL_HELP}")
    check_checkpoint_file(checkpoint, "MASt3R checkpoint", CHECKPOINT_HELP)
    if options.image_size < 16:
        raise InputError(f"MASt3R image size must be at least one 16-pixel patch, got {options.image_size}")
    if not SCENE_GRAPH.match(options.scene_graph):
        raise InputError(
            f"unknown MASt3R scene graph {options.scene_graph!r}; use auto, complete, swin-N[-noncyclic], "
            "logwin-N[-noncyclic] or oneref-I"
        )
    import_mast3r(None if options.repo is None else Path(options.repo))
    try:
        import mast3r.cloud_opt.sparse_ga  # noqa: F401
        import mast3r.image_pairs  # noqa: F401
    except ImportError as exc:
        raise InputError(
            f"MASt3R's global alignment could not be imported ({exc}); it needs `pip install roma` besides the "
            f"matcher's packages; {INSTALL_HELP}"
        ) from exc


def pair_graphs(count: int, options: Mast3rSfmOptions) -> list[str]:
    """MASt3R scene-graph names whose pairs together are run through the network."""
    if options.scene_graph != "auto":
        return [options.scene_graph]
    if count <= options.complete_limit:
        return ["complete"]
    reach = max(1, int(np.ceil(np.log2(max(count, 2)))))
    return [f"swin-{options.window}-noncyclic", f"logwin-{reach}-noncyclic"]


def frame_pairs(views: Sequence[dict], options: Mast3rSfmOptions) -> list[tuple[dict, dict]]:
    """Both orders of each distinct pair of the chosen graphs, as ``sparse_global_alignment`` takes them."""
    from mast3r.image_pairs import make_pairs

    seen: set[tuple[int, int]] = set()
    pairs: list[tuple[dict, dict]] = []
    for graph in pair_graphs(len(views), options):
        for a, b in make_pairs(list(views), scene_graph=graph, prefilter=None, symmetrize=False):
            key = (min(a["idx"], b["idx"]), max(a["idx"], b["idx"]))
            if key[0] != key[1] and key not in seen:
                seen.add(key)
                pairs.append((a, b))
    return pairs + [(b, a) for a, b in pairs]


@contextlib.contextmanager
def _quiet(progress: bool) -> Iterator[None]:
    """Silence MASt3R's prints (and its progress bars unless ``progress``)."""
    with contextlib.redirect_stdout(io.StringIO()):
        if progress:
            yield
        else:
            with contextlib.redirect_stderr(io.StringIO()):
                yield


def align(
    image_dir: Path,
    names: Sequence[str],
    work_dir: Path,
    checkpoint: Path,
    options: Mast3rSfmOptions,
    progress: bool,
) -> Alignment:
    """Run the network on the frame pairs and MASt3R's sparse global alignment; see :class:`Alignment`."""
    import torch

    net = load_mast3r_model(checkpoint, None if options.repo is None else Path(options.repo))
    device = options.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    net.to(device)
    from mast3r.cloud_opt.sparse_ga import forward_mast3r, load_corres, sparse_global_alignment

    patch = patch_size(net)
    views, tf = [], None
    for i, name in enumerate(names):
        image = read_image_file(image_dir / name, 1)[:, :, ::-1]
        if tf is None:
            tf = Mast3rInputTransform.for_image(
                image.shape[1], image.shape[0], options.image_size, patch, bool(getattr(net, "square_ok", False))
            )
            if min(tf.network_size) < patch:
                raise InputError(
                    f"a {image.shape[1]}x{image.shape[0]} frame becomes {tf.network_size[0]}x{tf.network_size[1]} "
                    f"at MASt3R's resolution, smaller than one {patch}-pixel patch",
                    image_dir / name,
                )
        views.append(network_view(image, tf, i, name))
    assert tf is not None
    pairs = frame_pairs(views, options)
    cache = str(work_dir / "mast3r")
    with _quiet(progress):
        scene = sparse_global_alignment(
            list(names), pairs, cache, net, subsample=options.subsample, device=device,
            shared_intrinsics=options.shared_intrinsics, lr1=options.lr1, niter1=options.niter1, lr2=options.lr2,
            niter2=options.niter2, opt_depth=True, matching_conf_thr=options.matching_conf_thr,
        )  # fmt: skip
        points, _, confidence = scene.get_dense_pts3d(clean_depth=True)
        corres, _ = forward_mast3r(pairs, None, cache, subsample=options.subsample, device=device)
    index = {name: i for i, name in enumerate(names)}
    matches = []
    for (a, b), (_, path) in corres.items():
        i, j = index[a], index[b]
        if i > j:
            continue
        _, (xy_i, xy_j, conf) = load_corres(path, "cpu", 0)
        if len(conf) and float(conf.max()) > options.matching_conf_thr:  # the pairs the alignment matched
            matches.append((i, j, _numpy(xy_i).astype(np.int64), _numpy(xy_j).astype(np.int64)))
    colors = [np.round(_numpy(v["img"][0]).transpose(1, 2, 0) * 127.5 + 127.5).clip(0, 255) for v in views]
    return Alignment(
        tf=tf,
        K=np.stack([_numpy(k) for k in scene.intrinsics]).astype(np.float64),
        cam_to_world=_numpy(scene.cam2w).astype(np.float64),
        points=[_numpy(p).reshape(-1, 3).astype(np.float32) for p in points],
        confidence=[_numpy(c).reshape(-1).astype(np.float32) for c in confidence],
        colors=[c.astype(np.uint8).reshape(-1, 3) for c in colors],
        matches=matches,
    )


def _numpy(value: Any) -> np.ndarray:
    detach = getattr(value, "detach", None)
    return np.asarray(detach().cpu().numpy() if detach is not None else value)


def original_intrinsics(K: np.ndarray, tf: Mast3rInputTransform) -> np.ndarray:
    """[3, 3] intrinsics in the original image's pixels of MASt3R's ``K`` (network pixel indices)."""
    centre = np.asarray(K[:2, 2], dtype=np.float64) + 0.5
    focal = np.array([K[0, 0], K[1, 1]], dtype=np.float64)
    pp, corner = tf.to_original(np.stack([centre, centre + focal]))
    out = np.eye(3)
    out[0, 0], out[1, 1] = corner - pp
    out[:2, 2] = pp
    return out


def alignment_cameras(alignment: Alignment) -> list[Camera]:
    """The aligned cameras in the original images' pixels."""
    width, height = alignment.tf.original_size
    return [
        Camera(K=original_intrinsics(K, alignment.tf), world_to_cam=np.linalg.inv(c2w), width=width, height=height)
        for K, c2w in zip(alignment.K, alignment.cam_to_world)
    ]


@dataclass
class Tracks:
    """3D points and their observations (flat rows, as ``io.colmap.write_sparse_model`` takes them)."""

    points: np.ndarray
    """[P, 3] world positions."""
    colors: np.ndarray
    """[P, 3] uint8 RGB."""
    track_point: np.ndarray
    """[O] point index of each observation."""
    track_image: np.ndarray
    """[O] frame index."""
    track_xy: np.ndarray
    """[O, 2] keypoints in the original images' pixels."""


def chain_tracks(alignment: Alignment, cameras: Sequence[Camera], options: Mast3rSfmOptions) -> Tracks:
    """Tracks of the correspondences chained across pairs, filtered as the module docstring says."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    net_w, net_h = alignment.tf.network_size
    per_image = net_w * net_h
    ends = [
        np.stack([i * per_image + a[:, 1] * net_w + a[:, 0], j * per_image + b[:, 1] * net_w + b[:, 0]])
        for i, j, a, b in alignment.matches
    ]
    edges = np.concatenate(ends, axis=1).astype(np.int64) if ends else np.zeros((2, 0), dtype=np.int64)
    sure = [_gather(alignment.confidence, end, per_image) > options.min_conf for end in edges]
    edges = edges[:, sure[0] & sure[1]]
    if edges.shape[1] == 0:
        return Tracks(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), *(np.zeros(0, np.int64),) * 2, np.zeros((0, 2)))
    nodes, inverse = np.unique(edges, return_inverse=True)
    inverse = inverse.reshape(2, -1)
    graph = coo_matrix((np.ones(edges.shape[1]), (inverse[0], inverse[1])), shape=(len(nodes), len(nodes)))
    component = connected_components(graph, directed=False)[1]
    image = nodes // per_image
    # One observation per point and image: its most confident pixel.
    order = np.lexsort((-_gather(alignment.confidence, nodes, per_image), image, component))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (component[order][1:] != component[order][:-1]) | (image[order][1:] != image[order][:-1])
    obs = order[first]
    point_of = np.unique(component[obs], return_inverse=True)[1].reshape(-1)
    points, colors = _place(alignment, nodes[obs], point_of, per_image)
    xy = _keypoints(alignment.tf, nodes[obs] % per_image, net_w)
    keep = np.ones(len(obs), dtype=bool)
    if options.max_reprojection_error is not None:
        limit = options.max_reprojection_error * alignment.tf.original_size[0] / alignment.tf.resized_size[0]
        keep = _reprojection_error(cameras, image[obs], points[point_of], xy) <= limit
    keep &= np.bincount(point_of[keep], minlength=len(points))[point_of] >= 2
    kept_points, point_of = np.unique(point_of[keep], return_inverse=True)
    return Tracks(
        points[kept_points], colors[kept_points], point_of.reshape(-1).astype(np.int64),
        image[obs][keep].astype(np.int64), xy[keep],
    )  # fmt: skip


def _gather(maps: Sequence[np.ndarray], nodes: np.ndarray, per_image: int) -> np.ndarray:
    """Rows ``nodes`` (``frame * per_image + pixel``) of the frames' dense maps, as float64."""
    out = np.empty((len(nodes), *maps[0].shape[1:]), dtype=np.float64)
    image, pixel = np.divmod(nodes, per_image)
    for i in np.unique(image):
        rows = image == i
        out[rows] = maps[i][pixel[rows]]
    return out


def _place(
    alignment: Alignment, nodes: np.ndarray, point_of: np.ndarray, per_image: int
) -> tuple[np.ndarray, np.ndarray]:
    """Confidence-weighted mean position and mean colour of each point's observations."""
    xyz = _gather(alignment.points, nodes, per_image)
    rgb = _gather(alignment.colors, nodes, per_image)
    weight = _gather(alignment.confidence, nodes, per_image)
    count = int(point_of.max()) + 1
    total = np.bincount(point_of, weight, count)
    points = np.stack([np.bincount(point_of, weight * xyz[:, k], count) for k in range(3)], axis=1) / total[:, None]
    colors = np.stack([np.bincount(point_of, rgb[:, k], count) for k in range(3)], axis=1)
    colors /= np.bincount(point_of, minlength=count)[:, None]
    return points, np.round(colors).clip(0, 255).astype(np.uint8)


def _keypoints(tf: Mast3rInputTransform, pixel: np.ndarray, net_w: int) -> np.ndarray:
    """Original-image coordinates of network pixel indices (row-major ``pixel``)."""
    px = np.stack([pixel % net_w, pixel // net_w], axis=1).astype(np.float64)
    return tf.to_original(px + 0.5)


def _reprojection_error(cameras: Sequence[Camera], image: np.ndarray, points: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Pixel distance of each observation from its point's projection (inf behind the camera)."""
    error = np.full(len(image), np.inf)
    for i in np.unique(image):
        rows = np.flatnonzero(image == i)
        cam = cameras[i]
        local = points[rows] @ cam.world_to_cam[:3, :3].T + cam.world_to_cam[:3, 3]
        front = local[:, 2] > 0
        proj = local @ cam.K.T
        uv = proj[:, :2] / np.where(front, proj[:, 2], 1.0)[:, None]
        error[rows[front]] = np.linalg.norm(uv[front] - xy[rows[front]], axis=1)
    return error


def reconstruction(names: Sequence[str], cameras: Sequence[Camera], tracks: Tracks, work_dir: Path) -> Any:
    """A ``pycolmap.Reconstruction`` of the frames ``names`` with these cameras and tracks (coloured points)."""
    import pycolmap

    folder = write_sparse_model(
        work_dir / "model", names, cameras, tracks.points, tracks.track_point, tracks.track_image, tracks.track_xy
    )
    recon = pycolmap.Reconstruction(str(folder))
    for p, point_id in enumerate(sorted(recon.points3D)):
        recon.points3D[point_id].color = tracks.colors[p]
    return recon


def run_mast3r_sfm(
    image_dir: Path,
    names: Sequence[str],
    work_dir: Path,
    checkpoint: Optional[Path],
    options: Optional[Mast3rSfmOptions] = None,
    progress: bool = True,
) -> SfmResult:
    """Reconstruct the images ``names`` of ``image_dir`` (one size) with MASt3R, working in ``work_dir``."""
    options = options or Mast3rSfmOptions()
    check_mast3r(checkpoint, options)
    if len(names) < MIN_REGISTERED:
        raise InputError(f"{len(names)} frames; a capture needs at least {MIN_REGISTERED}", image_dir)
    names = sorted(names)
    alignment = align(image_dir, names, work_dir, Path(checkpoint), options, progress)  # type: ignore[arg-type]
    cameras = alignment_cameras(alignment)
    tracks = chain_tracks(alignment, cameras, options)
    if len(tracks.points) == 0:
        raise InputError(
            "MASt3R's alignment left no 3D point seen in two frames (every correspondence was less confident than "
            "--mast3r.min-conf or off its projection by more than --mast3r.max-reprojection-error): the frames need "
            "more overlap",
            image_dir,
        )
    return SfmResult(reconstruction(names, cameras, tracks, work_dir), list(names), [])

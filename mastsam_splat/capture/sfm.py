"""Structure from motion on CPU with pycolmap: SIFT features, matching, incremental mapping.

Matching pairs every image with every other one while the pairs fit a budget (``exhaustive_pairs``:
50 images at 8192 features) and, for larger captures, each image with its ``sequential_overlap``
successors plus quadratically spaced ones, plus the images that look most alike farther away
(visual-word retrieval, which closes loops).

Mapping is repeated until two runs agree (``mapping_trials`` runs at most), and the
reconstruction explaining the most verified matches (``capture.consistency``) is kept; images
outside it are reported as unregistered. Incremental mapping can fold on a capture that leaves
its poses ambiguous (a forward walk over a flat, repeatedly textured ground): the tail of the
walk is registered with a wrong rotation and focal length that still explain most of its
verified matches (every verified pair there agrees with the true cameras: the fold is not made
of false pairs, so no pair is dropped). Runs with other seeds fold differently or not at all,
while a correct model is found again and again and explains more of the verified matches. So
after the first run, mapping stops once a run registers as many images as the best model before
it and explains as many verified matches within ``agreement`` of the verified matches; runs that
disagree go on, the third with COLMAP's global mapper (rotation averaging and global
positioning, which folds differently from incremental registration), the others incremental
with the next seeds. Mapping starts from an image pair seen under ``init_min_tri_angle``, lower
than COLMAP's, which leaves forward walks fewer weakly matched starting pairs. Each stage shows
a progress bar. pycolmap is imported only here, when SfM runs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Sequence

from mastsam_splat.capture.consistency import Support, model_support
from mastsam_splat.capture.retrieval import retrieval_pairs
from mastsam_splat.errors import InputError

CameraModel = Literal["SIMPLE_RADIAL", "RADIAL", "OPENCV", "PINHOLE", "SIMPLE_PINHOLE"]
MIN_REGISTERED = 3
"""Fewest registered images a capture needs."""
EXTRACTION_IMAGES_PER_THREAD = 4
BUDGET_FEATURES = 8192
"""Features per image the exhaustive-matching budget is counted at."""


@dataclass
class SfmOptions:
    """Settings of the SfM run (COLMAP's defaults where not said otherwise)."""

    camera_model: CameraModel = "SIMPLE_RADIAL"
    """One shared camera of this COLMAP model for all images (its distortion goes into transforms.json)."""
    max_features: int = 8192
    """SIFT features per image."""
    sift_image_size: int = 1600
    """Longer side (pixels) images are reduced to for feature extraction."""
    peak_threshold: float = 0.004
    """SIFT contrast threshold (COLMAP: 0.0067); lower finds more features on small or smooth images."""
    domain_size_pooling: bool = False
    """DSP-SIFT: descriptors pooled over several scales (more matches across wide baselines, slower)."""
    estimate_affine_shape: bool = False
    """Affine-adapted SIFT frames (more matches under strong viewpoint change, slower)."""
    guided_matching: bool = False
    """Second matching pass guided by each pair's verified epipolar geometry."""
    match_max_ratio: float = 0.8
    """SIFT ratio test of matching; lower rejects more ambiguous matches (repeated patterns)."""
    exhaustive_pairs: int = 1225
    """Matching budget: every image pair is matched while pairs x ``max_features`` stays within this
    many pairs at 8192 features (1225: 50 images; matching time grows with both); larger captures
    match along the sequence plus retrieval."""
    sequential_overlap: int = 10
    """Successors each image is matched with in sequential matching."""
    retrieval_neighbours: int = 5
    """Sequential matching: also match each image with this many look-alike images farther away
    in the sequence (visual-word retrieval, ``capture.retrieval``); 0: off."""
    init_min_num_inliers: int = 30
    """Inlier matches the first image pair needs (COLMAP: 100; wide baselines between few
    views leave neighbouring images with a few dozen)."""
    init_min_tri_angle: float = 8.0
    """Degrees: median triangulation angle the first image pair needs (COLMAP: 16). On a forward
    walk only images far apart see the scene under 16 degrees, and mapping started from such a
    weakly matched pair often folds (a synthetic 24-frame walk: 19 of 24 runs folded at 16
    degrees, 1 of 24 at 8); orbits map as well from either."""
    abs_pose_min_num_inliers: int = 10
    """2D-3D inliers an image needs to register (COLMAP: 30)."""
    max_reprojection_error: float = 2.0
    """Pixels: 3D points observed farther off are filtered out during mapping (COLMAP: 4); a
    tighter bound keeps mismatched points from bending the poses."""
    agreement: float = 0.0005
    """Two mapping runs agree when they register as many images and the verified matches their
    models explain differ by at most this fraction of the verified matches (correct models of
    one capture differ by 0.02% or less; folds differ from them by 0.8% or more)."""
    num_threads: int = -1
    """CPU threads (-1: all)."""
    seed: int = 0
    """Random seed of the first mapping run."""
    mapping_trials: int = 4
    """Mapping runs at most, until one agrees with the best before it (``agreement``): on weakly
    textured, forward-moving or repetitive captures a run can start from a wrong initial pair or
    fold. The model explaining the most verified matches is kept (ties: the lower mean
    reprojection error)."""
    global_trial: Optional[int] = 2
    """The mapping run (from 0) done with COLMAP's global mapper instead of incremental mapping
    (None: all incremental). It comes after two runs that disagreed: it folds differently from
    incremental registration, and on captures whose incremental runs agree it is never needed
    (it can be slower than incremental mapping on large images)."""
    focal_length_px: Optional[float] = field(default=None)
    """Initial focal length (pixels of the input images), e.g. from EXIF; None: COLMAP's guess."""


@dataclass
class SfmResult:
    """The kept reconstruction and which images it registered."""

    reconstruction: Any
    """A ``pycolmap.Reconstruction`` holding only registered images."""
    registered: list[str]
    unregistered: list[str]
    mapping_runs: int = 0
    """COLMAP mapping runs made (0: the model came from elsewhere, e.g. MASt3R)."""


def _progress(description: str, total: Optional[int], enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="image", disable=not enabled, leave=True)


@contextlib.contextmanager
def _quiet_pycolmap() -> Iterator[None]:
    import pycolmap

    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = level


def _reader_options(options: SfmOptions) -> Any:
    import pycolmap

    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = options.camera_model
    return reader


def _camera_params(options: SfmOptions, width: int, height: int) -> Optional[str]:
    """COLMAP's initial parameter string for ``options.camera_model`` from a known focal length."""
    if options.focal_length_px is None:
        return None
    f, cx, cy = options.focal_length_px, width / 2.0, height / 2.0
    values = {
        "SIMPLE_PINHOLE": [f, cx, cy],
        "PINHOLE": [f, f, cx, cy],
        "SIMPLE_RADIAL": [f, cx, cy, 0.0],
        "RADIAL": [f, cx, cy, 0.0, 0.0],
        "OPENCV": [f, f, cx, cy, 0.0, 0.0, 0.0, 0.0],
    }[options.camera_model]
    return ",".join(f"{v:.6g}" for v in values)


def extraction_batch(num_threads: int) -> int:
    """Images per extraction call: COLMAP's CPU extractor works on one image per thread, so a call
    needs several images per thread to keep them busy; one call per image would leave one thread."""
    threads = num_threads if num_threads > 0 else (os.cpu_count() or 1)
    return EXTRACTION_IMAGES_PER_THREAD * threads


def extract_features(
    database: Path, image_dir: Path, names: Sequence[str], size: tuple[int, int], options: SfmOptions, progress: bool
) -> None:
    """SIFT features of each image into ``database``; the images are imported first with one shared
    camera, then extracted a few per call (``extraction_batch``: every thread busy, the progress bar moving)."""
    import pycolmap

    reader = _reader_options(options)
    params = _camera_params(options, *size)
    if params is not None:
        reader.camera_params = params
    pycolmap.Database.open(database).close()
    pycolmap.import_images(
        database, image_dir, camera_mode=pycolmap.CameraMode.SINGLE, image_names=list(names), options=reader
    )
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.use_gpu = False
    extraction.num_threads = options.num_threads
    extraction.max_image_size = options.sift_image_size
    extraction.sift.max_num_features = options.max_features
    extraction.sift.peak_threshold = options.peak_threshold
    extraction.sift.domain_size_pooling = options.domain_size_pooling
    extraction.sift.estimate_affine_shape = options.estimate_affine_shape
    batch = extraction_batch(options.num_threads)
    with _progress("SfM: features", len(names), progress) as bar:
        for start in range(0, len(names), batch):
            chunk = list(names[start : start + batch])
            pycolmap.extract_features(
                database,
                image_dir,
                image_names=chunk,
                camera_mode=pycolmap.CameraMode.SINGLE,
                reader_options=reader,
                extraction_options=extraction,
                device=pycolmap.Device.cpu,
            )
            bar.update(len(chunk))


def matches_all_pairs(count: int, options: SfmOptions) -> bool:
    """Whether ``count`` images fit the exhaustive-matching budget (``SfmOptions.exhaustive_pairs``)."""
    pairs = count * (count - 1) // 2
    return pairs * options.max_features <= options.exhaustive_pairs * BUDGET_FEATURES


def match_features(database: Path, count: int, options: SfmOptions, progress: bool) -> None:
    """Match and geometrically verify image pairs (exhaustive for small captures, else sequential)."""
    import pycolmap

    matching = pycolmap.FeatureMatchingOptions()
    matching.use_gpu = False
    matching.num_threads = options.num_threads
    matching.sift.max_ratio = options.match_max_ratio
    matching.guided_matching = options.guided_matching
    exhaustive = matches_all_pairs(count, options)
    label = "SfM: matching all pairs" if exhaustive else "SfM: matching along the sequence"
    with _progress(label, 1, progress) as bar:
        if exhaustive:
            pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)
        else:
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = options.sequential_overlap
            pairing.quadratic_overlap = True
            pycolmap.match_sequential(
                database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu
            )
            if options.retrieval_neighbours > 0:
                match_retrieved(database, matching, options)
        bar.update(1)


def match_retrieved(database: Path, matching: Any, options: SfmOptions) -> None:
    """Match the look-alike image pairs retrieval finds beyond the sequential overlap."""
    import pycolmap

    pairs = retrieval_pairs(database, options.retrieval_neighbours, options.sequential_overlap + 1)
    if not pairs:
        return
    pairs_file = database.with_name("retrieval_pairs.txt")
    pairs_file.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    pairing = pycolmap.ImportedPairingOptions()
    pairing.match_list_path = str(pairs_file)
    pycolmap.match_image_pairs(database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu)


def _incremental_options(options: SfmOptions, seed: int) -> Any:
    import pycolmap

    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.min_model_size = MIN_REGISTERED
    mapping.num_threads = options.num_threads
    mapping.random_seed = seed
    mapping.mapper.init_min_num_inliers = options.init_min_num_inliers
    mapping.mapper.init_min_tri_angle = options.init_min_tri_angle
    mapping.mapper.abs_pose_min_num_inliers = options.abs_pose_min_num_inliers
    mapping.mapper.filter_max_reproj_error = options.max_reprojection_error
    return mapping


def _map_once(
    database: Path, image_dir: Path, folder: Path, trial: int, count: int, options: SfmOptions, progress: bool
) -> dict[int, Any]:
    """The models of mapping run ``trial``: global for ``options.global_trial``, else incremental."""
    import pycolmap

    seed = options.seed + trial
    if trial == options.global_trial:
        mapping = pycolmap.GlobalPipelineOptions()
        mapping.min_model_size = MIN_REGISTERED
        mapping.num_threads = options.num_threads
        mapping.random_seed = seed
        with _progress(f"SfM: global mapping (run {trial + 1})", 1, progress) as bar:
            models = pycolmap.global_mapping(database, image_dir, folder, options=mapping)
            bar.update(1)
        return dict(models)
    label = "SfM: registering" + (f" (run {trial + 1})" if trial else "")
    with _progress(label, count, progress) as bar:
        models = pycolmap.incremental_mapping(
            database,
            image_dir,
            folder,
            options=_incremental_options(options, seed),
            initial_image_pair_callback=lambda: bar.update(2),
            next_image_callback=lambda: bar.update(1),
        )
    return dict(models)


@dataclass
class MappingRun:
    """The model of one mapping run that explains the most verified matches."""

    model: Any
    registered: int
    support: Support

    @property
    def key(self) -> tuple[int, float]:
        return (self.support.explained, -self.model.compute_mean_reprojection_error())


def runs_agree(a: MappingRun, b: MappingRun, agreement: float) -> bool:
    """Whether two mapping runs found the same reconstruction, judged by their support."""
    total = max(a.support.total, b.support.total, 1)
    return a.registered == b.registered and abs(a.support.explained - b.support.explained) <= agreement * total


def map_images(
    database: Path, image_dir: Path, output: Path, count: int, options: SfmOptions, progress: bool
) -> tuple[Any, int]:
    """Mapping runs until one agrees with the best before it (``mapping_trials`` at most): the
    model explaining the most verified matches (then the lowest reprojection error) or None, and
    the number of runs made."""
    best: Optional[MappingRun] = None
    runs_made = 0
    for trial in range(max(1, options.mapping_trials)):
        runs_made += 1
        folder = output / str(trial)
        folder.mkdir(parents=True, exist_ok=True)
        runs = [
            MappingRun(model, model.num_reg_images(), model_support(database, model))
            for model in _map_once(database, image_dir, folder, trial, count, options, progress).values()
        ]
        run = max(runs, key=lambda r: r.key, default=None)
        if run is None:
            continue
        previous = best
        if best is None or run.key > best.key:
            best = run
        if previous is not None and runs_agree(run, previous, options.agreement):
            break
    return (None if best is None else best.model), runs_made


def run_sfm(
    image_dir: Path,
    names: Sequence[str],
    size: tuple[int, int],
    work_dir: Path,
    options: Optional[SfmOptions] = None,
    progress: bool = True,
) -> SfmResult:
    """Reconstruct the images ``names`` of ``image_dir`` (all ``size`` = (width, height)) in ``work_dir``.

    Raises :class:`InputError` when fewer than ``MIN_REGISTERED`` images register.
    """
    options = options or SfmOptions()
    database = work_dir / "database.db"
    with _quiet_pycolmap():
        extract_features(database, image_dir, names, size, options, progress)
        match_features(database, len(names), options, progress)
        model, mapping_runs = map_images(database, image_dir, work_dir / "sparse", len(names), options, progress)
    registered = [] if model is None else sorted(model.images[i].name for i in model.reg_image_ids())
    if len(registered) < MIN_REGISTERED:
        raise InputError(
            f"structure from motion registered {len(registered)} of {len(names)} images (at least "
            f"{MIN_REGISTERED} are needed): the photos need more overlap (about 2/3 between neighbours), "
            "more texture, or more of them",
            image_dir,
        )
    done = set(registered)
    return SfmResult(model, registered, [n for n in names if n not in done], mapping_runs=mapping_runs)

"""Input checks run before anything is trained, and a clean exit for the user's mistakes.

Nerfstudio would otherwise fail late (after caching images or running the tracker) with a
library traceback: an ``assert`` in the dataparser, a ``FileNotFoundError`` or truncated-file
``OSError`` from PIL, an ``IndexError`` from ``os.listdir`` on an empty checkpoint folder, a
NaN pose reaching scikit-learn after the tracker ran, a ``PermissionError`` when the tracker's
cache cannot be written.

The tracker's cache defaults to ``<dataset>/mastsam/training-views``. When the dataset is
read-only the run stops before the tracker with a message asking for
``--pipeline.datamanager.tracking.cache-dir`` (a cache elsewhere is never chosen silently, so
reruns always find their labels in the one place the user named).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Iterator, List, Optional

from mastsam_splat.errors import InputError
from mastsam_splat.io.destinations import check_writable_dir
from mastsam_splat.io.images import check_image_file
from mastsam_splat.io.scene import check_transforms

CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.ckpt$")
REQUIRED_INTRINSICS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
"""Keys Nerfstudio's parser asserts on, in transforms.json or in every frame."""
ALL_OR_NONE = ("depth_file_path", "mask_path")
"""Per-frame keys Nerfstudio's parser needs in every frame or in none."""


def print_input_error(exc: InputError) -> None:
    """``error: <message>`` on Nerfstudio's console, the message taken literally (no markup)."""
    from nerfstudio.utils.rich_utils import CONSOLE
    from rich.text import Text

    CONSOLE.print(Text.assemble(("error:", "bold red"), " ", str(exc)), highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an :class:`InputError` into a one-line message and exit status 2 (no traceback)."""
    try:
        yield
    except InputError as exc:
        print_input_error(exc)
        raise SystemExit(2) from exc


def install_input_error_hook() -> None:
    """Report an :class:`InputError` that escapes Nerfstudio's entry point as :func:`user_errors` does.

    ``ns-train`` parses its options before any plugin code runs, so an option out of range (checked
    in the config dataclasses' ``__post_init__``) would otherwise end in a traceback. Other
    exceptions go to the previous hook unchanged.
    """
    previous = sys.excepthook
    if getattr(previous, "reports_input_errors", False):
        return

    def hook(kind, exc, traceback) -> None:  # noqa: ANN001
        if not isinstance(exc, InputError):
            previous(kind, exc, traceback)
            return
        print_input_error(exc)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)  # an exception hook cannot set the exit status otherwise

    hook.reports_input_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def transforms_file(data: Path) -> Path:
    """The transforms.json of a Nerfstudio dataset given its folder or the file itself."""
    return data if data.suffix == ".json" else data / "transforms.json"


def check_nerfstudio_dataset(data: Optional[Path]) -> None:
    """A Nerfstudio dataset folder whose transforms.json has fields of the right types (finite
    intrinsics and poses) and whose frames point at existing, complete images."""
    if data is None or str(data) in ("", "."):
        raise InputError("no dataset given; pass --data <folder with transforms.json>")
    data = Path(data)
    if not data.exists():
        raise InputError("dataset not found", data)
    transforms = transforms_file(data)
    if not transforms.is_file():
        raise InputError(
            "not a Nerfstudio dataset (no transforms.json); make one with `ns-process-data` or `mastsam synth`", data
        )
    try:
        meta = json.loads(transforms.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", transforms) from None
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames:
        raise InputError("the dataset has no images ('frames' is missing or empty)", transforms)
    check_transforms(meta, transforms)
    for i, frame in enumerate(frames):
        absent = [key for key in REQUIRED_INTRINSICS if key not in frame and key not in meta]
        if absent:
            raise InputError(
                f"frame {i} has no {', '.join(absent)} (neither in the frame nor at the top level)", transforms
            )
    for key in ALL_OR_NONE:
        having = [key in frame for frame in frames]
        if any(having) and not all(having):
            raise InputError(
                f"frame {having.index(False)} has no {key!r} but other frames do; give it for every frame or none",
                transforms,
            )
    root = transforms.parent
    missing: List[str] = [str(f["file_path"]) for f in frames if not (root / f["file_path"]).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise InputError(f"{len(missing)} of {len(frames)} images listed in transforms.json are missing: {shown}", root)
    for frame in frames:
        check_image_file(root / frame["file_path"])


def check_tracking_cache(cache_dir: Path, given: bool, image_folders: List[Path]) -> None:
    """The tracker's cache folder can be written and is not a folder of input images.

    ``given``: the user named it (``--pipeline.datamanager.tracking.cache-dir``); otherwise it is
    the default inside the dataset, and a read-only dataset asks for the option.
    """
    option = "--pipeline.datamanager.tracking.cache-dir"
    check_writable_dir(
        cache_dir,
        option if given else f"the tracker's cache (default of {option})",
        inputs=image_folders,
        hint="" if given else f"the dataset is read-only: pass {option} DIR to keep the tracker's labels elsewhere",
    )


def latest_checkpoint(load_dir: Path, load_step: Optional[int] = None) -> Path:
    """The checkpoint ``--load-dir`` (+ ``--load-step``) names, checked to exist."""
    load_dir = Path(load_dir)
    if not load_dir.is_dir():
        raise InputError("checkpoint folder not found (--load-dir)", load_dir)
    steps = sorted(int(m.group(1)) for p in load_dir.iterdir() if (m := CHECKPOINT_NAME.match(p.name)))
    if not steps:
        raise InputError("no step-*.ckpt checkpoint in this folder (--load-dir)", load_dir)
    step = steps[-1] if load_step is None else int(load_step)
    path = load_dir / f"step-{step:09d}.ckpt"
    if not path.is_file():
        raise InputError(f"no checkpoint for step {step}; found steps {steps}", load_dir)
    return path


def check_resume_paths(load_dir: Optional[Path], load_step: Optional[int], load_checkpoint: Optional[Path]) -> None:
    """``--load-dir`` / ``--load-checkpoint`` name existing checkpoints."""
    if load_dir is not None:
        latest_checkpoint(load_dir, load_step)
    elif load_checkpoint is not None and not Path(load_checkpoint).is_file():
        raise InputError("checkpoint not found (--load-checkpoint)", load_checkpoint)

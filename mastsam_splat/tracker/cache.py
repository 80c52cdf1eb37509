"""Result caching for tracking runs: rerunning with the same inputs and config reuses the outputs.

The output folder holds ``cache.json``, a manifest with the source path, a fingerprint of
the input frames (pixels, cameras, depth), a fingerprint of the config, the list of files the
run writes and whether writing finished. The config fingerprint covers the content of model
files (size, modification time and a hash of a few blocks, see :func:`file_fingerprint`) and
the backend code (:func:`code_fingerprint`), so replacing a checkpoint at the same path or
updating a backend recomputes. On the next run:
- same source, input and config, complete, every file present: the results are reused;
- an unfinished run: its listed files are removed and everything is recomputed;
- same source but changed input or config: everything is recomputed, and the new files
  replace the listed ones when they are published (:attr:`CacheDecision.replace`), so an
  interrupted run leaves the earlier results;
- another source, or our output files without a manifest: refused (never mixed), unless
  ``overwrite`` is set, in which case those files are replaced the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_write_text
from mastsam_splat.types import Frame

MANIFEST = "cache.json"
MANIFEST_VERSION = 1


def input_fingerprint(frames: Sequence[Frame]) -> str:
    """Hash of everything the tracker reads from the frames: names, pixels, cameras, depth, observed SfM points."""
    h = hashlib.blake2b(digest_size=20)
    for frame in frames:
        h.update(frame.name.encode())
        h.update(np.asarray(frame.image.shape, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(frame.image).tobytes())
        if frame.camera is not None:
            h.update(b"camera")
            h.update(np.round(frame.camera.K, 9).tobytes())
            h.update(np.round(frame.camera.world_to_cam, 9).tobytes())
        if frame.depth is not None:
            h.update(b"depth")
            h.update(np.ascontiguousarray(frame.depth, dtype=np.float32).tobytes())
        if frame.observed is not None:
            h.update(b"observed")
            h.update(np.ascontiguousarray(frame.observed.xy, dtype=np.float64).tobytes())
            h.update(np.round(frame.observed.xyz, 9).tobytes())
    return h.hexdigest()


FINGERPRINT_BLOCK = 1 << 16
"""Bytes hashed at the start, middle and end of a model file."""


def file_fingerprint(path: Path | str) -> dict[str, Any]:
    """Size, modification time and a hash of the first, middle and last block of a file.

    Reading three blocks keeps this instant for multi-gigabyte checkpoints while still telling
    apart two files of the same size; the modification time catches edits in between. A missing
    file gives ``{"missing": True}``; a folder (a code checkout) gives the fingerprints of the
    Python files in its first two levels.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return {"missing": True}
    if path.is_dir():
        files = sorted(p for pattern in ("*.py", "*/*.py", "*/*/*.py") for p in path.glob(pattern))
        h = hashlib.blake2b(digest_size=16)
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return {"folder": True, "files": len(files), "hash": h.hexdigest()}
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as fh:
            for offset in sorted({0, max(0, stat.st_size // 2 - FINGERPRINT_BLOCK // 2), max(0, stat.st_size - FINGERPRINT_BLOCK)}):
                fh.seek(offset)
                h.update(fh.read(FINGERPRINT_BLOCK))
    except OSError:
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "unreadable": True}
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "blocks": h.hexdigest()}


def code_fingerprint(module_name: str) -> str:
    """Hash of a module's source file (the backend code that produced the results)."""
    spec = importlib.util.find_spec(module_name)
    origin = getattr(spec, "origin", None) if spec is not None else None
    if not origin or not os.path.isfile(origin):
        return "unknown"
    with open(origin, "rb") as fh:
        return hashlib.blake2b(fh.read(), digest_size=16).hexdigest()


def paths_in(config: Any) -> dict[str, Path]:
    """The path-valued fields of a dataclass config (model files, code checkouts), by field name."""
    fields = getattr(config, "__dataclass_fields__", {})
    found = {}
    for name in fields:
        value = getattr(config, name, None)
        if isinstance(value, Path):
            found[name] = value
    return found


def config_fingerprint(config: dict[str, Any]) -> str:
    """Hash of a JSON-able config (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


@dataclass
class CacheDecision:
    """What to do with an output folder."""

    action: Literal["reuse", "compute"]
    reason: str
    replace: list[str] = field(default_factory=list)
    """Files (relative to the output folder) of earlier results the new results replace."""


@dataclass
class ResultCache:
    """The manifest of one output folder."""

    output_dir: Path
    source: str
    input_hash: str
    config_hash: str

    @property
    def manifest_path(self) -> Path:
        return self.output_dir / MANIFEST

    def _read(self) -> Optional[dict[str, Any]]:
        path = self.manifest_path
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            return None
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
            return None
        return data

    def decide(self, output_names: Sequence[str], overwrite: bool = False, recompute: bool = False) -> CacheDecision:
        """Reuse, or recompute (replacing earlier results); raises :class:`InputError` for results of another input.

        ``recompute``: never reuse (earlier results of this source are replaced).
        """
        if not self.output_dir.exists():
            return CacheDecision("compute", "new output folder")
        if not self.output_dir.is_dir():
            raise InputError("the output path exists and is not a folder", self.output_dir)
        manifest = self._read()
        if manifest is None:
            ours = [n for n in output_names if (self.output_dir / n).exists()]
            if self.manifest_path.exists():
                ours.append(MANIFEST)
            if not ours:
                return CacheDecision("compute", "no earlier results")
            if not overwrite:
                raise InputError(
                    f"holds {', '.join(ours)} of unknown origin (no valid {MANIFEST}); "
                    "choose an empty output folder or pass --overwrite to replace them",
                    self.output_dir,
                )
            return CacheDecision("compute", "replaced results of unknown origin", ours)
        listed = [str(f) for f in manifest.get("files", [])] + [MANIFEST]
        if manifest.get("source") != self.source:
            if not overwrite:
                raise InputError(
                    f"holds results of another input ({manifest.get('source')}); choose another output folder "
                    "or pass --overwrite to replace them",
                    self.output_dir,
                )
            return CacheDecision("compute", "replaced results of another input", listed)
        if not manifest.get("complete"):
            self._remove_listed(manifest)
            return CacheDecision("compute", "earlier run incomplete")
        files = listed[:-1]
        same = manifest.get("input") == self.input_hash and manifest.get("config") == self.config_hash
        if recompute:
            return CacheDecision("compute", "recompute requested", listed)
        if same and files and all((self.output_dir / f).is_file() for f in files):
            return CacheDecision("reuse", "same input and config")
        if manifest.get("input") != self.input_hash:
            reason = "input changed"
        elif manifest.get("config") != self.config_hash:
            reason = "config changed"
        else:
            reason = "earlier results incomplete"
        return CacheDecision("compute", reason, listed)

    def begin(self, planned_files: Sequence[str]) -> None:
        """Record that a run is writing ``planned_files`` (so an interrupted run gets cleaned up)."""
        self._write(list(planned_files), complete=False, extra={})

    def finish(self, files: Sequence[str], extra: Optional[dict[str, Any]] = None, folder: Optional[Path] = None) -> None:
        """Record that every file of the run is written (into ``folder`` when it is staged elsewhere)."""
        self._write(list(files), complete=True, extra=extra or {}, folder=folder)

    def _write(self, files: list[str], complete: bool, extra: dict[str, Any], folder: Optional[Path] = None) -> None:
        payload = {
            "version": MANIFEST_VERSION,
            "source": self.source,
            "input": self.input_hash,
            "config": self.config_hash,
            "complete": complete,
            "files": files,
            **extra,
        }
        path = self.manifest_path if folder is None else Path(folder) / MANIFEST
        atomic_write_text(path, json.dumps(payload, indent=1) + "\n")

    def _remove_listed(self, manifest: dict[str, Any]) -> None:
        root = self.output_dir.resolve()
        for rel in manifest.get("files", []):
            path = (self.output_dir / str(rel)).resolve()
            if root in path.parents and path.is_file():
                path.unlink()
        for sub in {Path(str(rel)).parent for rel in manifest.get("files", [])}:
            folder = self.output_dir / sub
            if sub != Path(".") and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        self.manifest_path.unlink(missing_ok=True)

"""Nerfstudio checkpoints (numpy scalars in optimizer state) load with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mastsam_splat.io.checkpoints import allow_numpy_scalars_in_checkpoints


def test_numpy_scalars_load_and_stay_allowed(tmp_path: Path) -> None:
    path = tmp_path / "step-000000001.ckpt"
    torch.save({"pipeline": {"w": torch.ones(2)}, "schedulers": {"lr": np.float64(0.5)}}, path)
    # torch's scoped ``safe_globals`` removes its globals on exit, even ones registered before it;
    # registering again right before a load (what the run loader does) recovers from that.
    with torch.serialization.safe_globals([np.dtype]):
        pass
    allow_numpy_scalars_in_checkpoints()
    allow_numpy_scalars_in_checkpoints()
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["schedulers"]["lr"] == 0.5

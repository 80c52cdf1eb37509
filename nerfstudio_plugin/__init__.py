"""Nerfstudio method plugin for mastsam-splat: ``ns-train mastsam-splat --data <scene>``.

Importing the package (Nerfstudio does so while discovering methods, before any checkpoint is
read) lets ``torch.load`` accept the numpy scalars that Nerfstudio 1.1.5 stores in optimizer and
scheduler state; torch >= 2.6 loads with ``weights_only=True`` and would refuse them, which
breaks ``--load-dir``, ``ns-viewer``, ``ns-eval`` and ``ns-export``.
"""

from mastsam_splat.io.checkpoints import allow_numpy_scalars_in_checkpoints

allow_numpy_scalars_in_checkpoints()

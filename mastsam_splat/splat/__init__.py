"""3D Gaussians that know their objects: renderers, parameters, instance features, training.

Modules (import them directly; this package imports nothing heavy):

- ``rendering``: ``rasterize`` (gsplat's ``rasterization`` on the chosen backend: gsplat on
  CUDA, the torch reference rasterizer elsewhere), ``render`` (RGB + instance features + depth
  in one pass), ``accumulate_label_weights`` (per-Gaussian compositing weight per label).
- ``torch_rasterizer``: the CPU rasterizer with gsplat 1.4.0's conventions and outputs.
- ``gsplat_backend``: the CUDA path (imports gsplat's kernels only when called).
- ``params``: Splatfacto-layout parameter dicts, activation, optimizers.
- ``instance`` / ``config``: label space, classifier head, losses, kNN regulariser, object ids.
- ``init``: initial Gaussians from a labelled point cloud (read with ``mastsam_splat.io.ply``).
- ``trainer``: the standalone trainer and its command-line config ``SplatTrainConfig``.
- ``train_step``: the trainer's state (``make_train_state``) and one optimisation step (``train_step``).
"""

"""Shared test data and reference implementations, importable as ``support`` from every test.

- ``analytic_views``: ray-cast wall-and-box views with analytic depth (geometry and matcher tests).
- ``planar_scene``: flat objects on a plane seen by a sliding camera (tracker tests).
- ``splat_reference``: brute-force Gaussian renderer (rasterizer tests).
- ``gaussian_factories``: random Gaussians and Gaussians seeded on a synthetic scene (object tests).
- ``object_scene``: fixtures of a tiny synthetic scene and Gaussians seeded on it (object and CLI tests).
- ``label_maps``: pixel grids and id renumbering of label maps (metric tests).
- ``synthetic_scenes``: readers and surface distances of generated synthetic scenes (synthetic tests).
"""

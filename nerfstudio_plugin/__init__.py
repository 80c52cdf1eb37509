"""Nerfstudio method plugin for mastsam-splat."""

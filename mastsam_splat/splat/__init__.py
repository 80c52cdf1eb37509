"""Gaussians with instance features: renderers, parameters, losses, initialisation, training, PLY."""

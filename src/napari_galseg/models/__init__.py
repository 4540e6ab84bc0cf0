"""Torch network definitions (no training or I/O here: see napari_galseg.training)."""

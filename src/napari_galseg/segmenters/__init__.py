"""Segmenters: one module per method behind the interface in :mod:`.base`, found by name."""
from .base import ModelFolderError, ProgressCallback, Segmenter, available, coerce_params, get, register

__all__ = ["Segmenter", "ProgressCallback", "ModelFolderError", "available", "get", "register", "coerce_params"]

"""Segmenters: one module per method behind the contract in :mod:`.base`, found by name in
:mod:`.registry` (a method's module is imported only when it is asked for)."""
from ..settings import RunOptions, SettingError, TrainConfig
from .base import Capabilities, ModelFolderError, Segmentation, Segmenter
from .registry import available, get, register

__all__ = ["Capabilities", "ModelFolderError", "RunOptions", "Segmentation", "Segmenter", "SettingError",
           "TrainConfig", "available", "get", "register"]

"""Segmenters by name, imported only when asked for.

Built-in names map to ``module:Class`` strings, so ``get("photutils")`` imports the photutils
pipeline and nothing else (no torch). Other packages add methods through the entry-point group
``napari_galseg.segmenters`` (``name = "package.module:Class"``); ``register`` adds a class defined
at run time (tests, notebooks).
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .base import Segmenter

ENTRY_POINT_GROUP = "napari_galseg.segmenters"


@dataclass(frozen=True)
class Entry:
    target: str  # "package.module:Class"
    requires: tuple[str, ...] = ()  # top-level packages the method needs (checked without importing)

    def installed(self) -> bool:
        return all(importlib.util.find_spec(name) is not None for name in self.requires)


BUILTIN: dict[str, Entry] = {
    "photutils": Entry("napari_galseg.segmenters.photutils:PhotutilsSegmenter", ("photutils",)),
    "kmeans": Entry("napari_galseg.segmenters.kmeans:KMeansSegmenter", ("sklearn",)),
    "forest": Entry("napari_galseg.segmenters.forest:ForestSegmenter", ("sklearn",)),
    "unet": Entry("napari_galseg.segmenters.unet:UNetSegmenter", ("torch", "safetensors")),
    "maskrcnn": Entry("napari_galseg.segmenters.maskrcnn:MaskRCNNSegmenter", ("torch", "torchvision", "safetensors")),
    "detr": Entry("napari_galseg.segmenters.detr:DetrSegmenter", ("torch", "transformers", "safetensors")),
}

_RUNTIME: dict[str, type[Segmenter]] = {}


def _entries() -> dict[str, Entry]:
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, Entry(ep.value))
    return found


def register(cls: type[Segmenter]) -> type[Segmenter]:
    """Class decorator: make a segmenter defined at run time available by its ``name``."""
    _RUNTIME[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of the segmenters whose requirements are installed (nothing is imported)."""
    names = {name for name, entry in _entries().items() if entry.installed()}
    return sorted(names | set(_RUNTIME))


def get(name: str) -> type[Segmenter]:
    """The segmenter class called ``name``, importing only its module; a clear error otherwise."""
    if name in _RUNTIME:
        return _RUNTIME[name]
    entry = _entries().get(name)
    if entry is None:
        raise KeyError(f"unknown segmenter {name!r}; choose one of: {', '.join(available())}")
    missing = [req for req in entry.requires if importlib.util.find_spec(req) is None]
    if missing:
        raise KeyError(f"segmenter {name!r} needs {', '.join(missing)}, which is not installed "
                       f"(pip install 'napari-galseg[deep]' for the deep-learning methods)")
    module_name, _, class_name = entry.target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)

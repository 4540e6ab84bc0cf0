"""The one small interface every segmenter shares, and the registry that finds them by name.

A segmenter turns an image (numpy, memmap or dask array; optionally its rms map) into an int32
instance label image (0 = sky). Parameters live in a dataclass per method, so the widget, the CLI
(`--set key=value`) and a saved model folder all read the same fields.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from .. import __version__
from .._atomic import atomic_write_text

#: progress(done, total, message) — called from worker threads; must be cheap.
ProgressCallback = Callable[[int, int, str], None]

CONFIG_NAME = "config.json"

_REGISTRY: dict[str, type["Segmenter"]] = {}


class ModelFolderError(ValueError):
    """A model folder that cannot be loaded, with a message that says what to do."""


def register(cls: type["Segmenter"]) -> type["Segmenter"]:
    """Class decorator: make a segmenter available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _import_builtin_segmenters() -> None:
    # Imported lazily so `import napari_galseg.segmenters` stays cheap and optional
    # dependencies (torch) are only needed by the methods that use them.
    import importlib

    for module in ("photutils_pipeline", "kmeans", "forest", "unet"):
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ImportError as exc:  # a module not written yet, or an optional dependency missing
            if exc.name and (exc.name.endswith(module) or exc.name.split(".")[0] in {"torch", "torchvision", "safetensors"}):
                continue
            raise


def available() -> list[str]:
    """Names of the segmenters that can run in this environment."""
    _import_builtin_segmenters()
    return sorted(_REGISTRY)


def get(name: str) -> type["Segmenter"]:
    """The segmenter class registered as ``name``; a clear error listing the choices otherwise."""
    _import_builtin_segmenters()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown segmenter {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}") from None


def coerce_params(params_cls: type, overrides: dict[str, str | Any]) -> Any:
    """Build a parameter dataclass from ``key=value`` strings (CLI ``--set``) or typed values.

    Strings are parsed as JSON where possible (``3``, ``1.5``, ``true``, ``[1,2]``), else kept as text.
    Unknown keys raise with the list of valid ones.
    """
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(f"unknown parameter {key!r} for {params_cls.__name__}; valid: {', '.join(fields)}")
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        values[key] = value
    return params_cls(**values)


class Segmenter:
    """Base class: subclasses set ``name`` and ``Params`` and implement ``predict`` (and ``fit``)."""

    name: ClassVar[str] = ""
    Params: ClassVar[type] = object
    #: True when ``fit`` learns something (the CLI then requires --model or training data).
    trainable: ClassVar[bool] = False

    def __init__(self, params: Any | None = None, **overrides: Any):
        if params is None:
            params = coerce_params(self.Params, overrides) if overrides else self.Params()
        elif overrides:
            params = dataclasses.replace(params, **overrides)
        self.params = params
        #: preprocessing recipe (a dict, see napari_galseg.preprocess) applied before fit/predict
        self.recipe: dict | None = None
        self.provenance: dict = {}

    def fit(self, image, truth, rms=None, progress: ProgressCallback | None = None) -> "Segmenter":
        return self

    def predict(self, image, rms=None, progress: ProgressCallback | None = None) -> np.ndarray:
        raise NotImplementedError

    # -- model folders -------------------------------------------------------------------------
    def config(self) -> dict:
        return {
            "method": self.name,
            "params": dataclasses.asdict(self.params),
            "recipe": self.recipe,
            "provenance": self.provenance,
            "package": "napari-galseg",
            "version": __version__,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the model folder (config.json plus whatever ``_save_state`` adds)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save_state(path)
        atomic_write_text(path / CONFIG_NAME, json.dumps(self.config(), indent=2, default=str))

    def _save_state(self, path: Path) -> None:
        """Subclasses with learned state write it here (weights, arrays; never pickles)."""

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Segmenter":
        config = read_model_config(path, expect_method=cls.name or None)
        target = cls if cls.name else get(config["method"])
        params = coerce_params(target.Params, config.get("params") or {})
        model = target(params)
        model.recipe = config.get("recipe")
        model.provenance = config.get("provenance") or {}
        model._load_state(Path(path), config)
        return model

    def _load_state(self, path: Path, config: dict) -> None:
        """Subclasses with learned state read it here."""


def read_model_config(path: str | os.PathLike, expect_method: str | None = None) -> dict:
    """Read and check a model folder's config.json; say plainly what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"{path} is not a model folder (expected a directory holding {CONFIG_NAME})")
    cfg_path = path / CONFIG_NAME
    if not cfg_path.exists():
        raise ModelFolderError(
            f"{path} has no {CONFIG_NAME}: it was not saved by napari-galseg (save a model with `galseg train` or Segmenter.save)"
        )
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{cfg_path} is not valid JSON ({exc}); the folder is damaged") from None
    if not isinstance(config, dict) or config.get("package") != "napari-galseg" or "method" not in config:
        raise ModelFolderError(f"{cfg_path} is not a napari-galseg model config (no 'package: napari-galseg' / 'method')")
    if expect_method and config["method"] != expect_method:
        raise ModelFolderError(
            f"{path} holds a {config['method']!r} model, not {expect_method!r}; use `galseg segment {config['method']} ...`"
        )
    return config

"""The contract every segmenter shares: declared capabilities, settings in three layers, one result.

A segmenter turns an image (numpy, memmap or dask array; optionally its rms map) into a
:class:`Segmentation`: int32 instance labels (0 = sky) plus what the method knows about each
instance (scores, classes, a catalog) and optional per-pixel maps. What a method can do is declared
in :class:`Capabilities` on the class — widgets, the CLI and job runners read it instead of
inspecting signatures. Subclasses implement ``_predict`` (and ``_fit``); the public ``predict`` /
``fit`` handle regions, progress and cancel the same way for every method.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import __version__
from .._atomic import atomic_write_text
from ..model_folder import CONFIG_NAME, ModelFolderError, read_model_config
from ..progress import Cancelled, ProgressCallback, dask_progress, reporter
from ..settings import RunOptions, SettingError, TrainConfig, build, split_settings
from ..window import Window


@dataclass(frozen=True)
class Capabilities:
    """What a method can do; read by widgets, the CLI and job runners."""

    #: ``fit(image, truth)`` learns from a truth image; predicting needs a trained model
    trainable: bool = False
    #: ``predict(region=...)`` reads context around the window itself (otherwise the window is cut
    #: out and segmented on its own)
    region_with_context: bool = False
    #: ... and the result is exactly the crop of the whole-image prediction (tiles on the frame's grid)
    region_equals_crop: bool = False
    #: ``predict_to_fits`` writes a frame of any size in bounded memory
    streams_to_fits: bool = False
    #: ... and streams the scored catalog beside it, as ECSV, to its ``catalog_path``
    streams_catalog: bool = False
    #: ``Segmentation.scores`` holds a score per instance
    scored: bool = False
    #: the method cannot run without an rms map
    needs_rms: bool = False
    #: ``RunOptions.device`` chooses where it runs (torch)
    uses_device: bool = False
    #: ``Segmentation.catalog`` holds a source table
    catalog: bool = False
    #: a preprocessing recipe (``--recipe``) shapes its input channels
    uses_recipe: bool = False
    #: training keeps checkpoints in ``checkpoint_dir`` and continues with ``resume``
    resumable: bool = False


@dataclass
class Segmentation:
    """What every segmenter returns."""

    #: int32 instance labels, 0 = sky (a dask array for huge frames)
    labels: Any
    #: a score per instance, indexed by label id (``scores[0]`` is unused and NaN)
    scores: np.ndarray | None = None
    #: a class per instance, indexed by label id
    classes: np.ndarray | None = None
    #: a source table (astropy Table), one row per label, ``label`` column = id
    catalog: Any = None
    #: per-pixel maps of the same area, e.g. ``"probability"``
    maps: dict[str, Any] = field(default_factory=dict)

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(segmentation)`` gives the labels (scripts written for label arrays keep working)."""
        labels = np.asarray(self.labels)
        return labels.astype(dtype) if dtype is not None else labels

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.labels.shape)

    def crop(self, window: Window, outer: Window) -> Segmentation:
        """The part inside ``window`` of a segmentation of ``outer``, ids renumbered 1..n."""
        from skimage.segmentation import relabel_sequential

        part = np.asarray(self.labels)[window.within(outer)]
        labels, forward, _ = relabel_sequential(part)
        old = np.unique(part)
        old = old[old > 0]
        new = np.asarray(forward[old])

        def keep(per_id):
            if per_id is None:
                return None
            out = np.full(len(old) + 1, np.nan if per_id.dtype.kind == "f" else 0, per_id.dtype)
            out[new] = per_id[old]
            return out

        catalog = self.catalog
        if catalog is not None and "label" in catalog.colnames:
            catalog = catalog[np.isin(np.asarray(catalog["label"]), old)]
            catalog["label"] = np.asarray(forward[np.asarray(catalog["label"])])
        maps = {k: np.asarray(v)[window.within(outer)] for k, v in self.maps.items()}
        return Segmentation(labels.astype(np.int32), keep(self.scores), keep(self.classes), catalog, maps)


def scores_by_id(ids, values, n_labels: int) -> np.ndarray:
    """A per-id score array (index 0 unused, NaN where an id has no value)."""
    out = np.full(int(n_labels) + 1, np.nan, np.float64)
    if len(ids):
        out[np.asarray(ids, np.int64)] = np.asarray(values, np.float64)
    return out


class Segmenter:
    """Base class: subclasses set ``name``, ``Params``, ``capabilities`` and implement ``_predict``."""

    name: ClassVar[str] = ""
    Params: ClassVar[type] = object
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: the run options this method reads (others are refused by ``--set`` and hidden in widgets)
    run_fields: ClassVar[tuple[str, ...]] = ()
    #: the shared training settings a trainable method reads (None = all of TrainConfig)
    train_fields: ClassVar[tuple[str, ...] | None] = None
    #: this method's defaults for run options and training settings, where they differ from the shared ones
    run_defaults: ClassVar[dict[str, Any]] = {}
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: Any | None = None, *, train: TrainConfig | None = None,
                 run: RunOptions | None = None, **settings: Any):
        """``Segmenter(params, train=..., run=...)`` or by name: ``Segmenter(nsigma=2, tile_size=1024)``."""
        layers = self.split(settings)
        if params is None:
            params = build(self.Params, values=layers["params"])
        elif layers["params"]:
            params = dataclasses.replace(params, **layers["params"])
        self.params = params
        self.train_config: TrainConfig | None = None
        if self.capabilities.trainable and self.train_fields != ():
            base = train if train is not None else build(TrainConfig, self.train_defaults)
            self.train_config = dataclasses.replace(base, **layers["train"]) if layers["train"] else base
        base_run = run if run is not None else build(RunOptions, self.run_defaults)
        self.run_options: RunOptions = dataclasses.replace(base_run, **layers["run"]) if layers["run"] else base_run
        #: preprocessing recipe (a dict, see napari_galseg.preprocess) applied before fit/predict
        self.recipe: dict | None = None
        self.provenance: dict = {}
        #: the band names, in order, of a model trained on several bands of one field (its input is a
        #: frames.bands.BandStack); None for a model of one image
        self.bands: tuple[str, ...] | None = None

    @classmethod
    def split(cls, settings: dict[str, Any], legacy: bool = False) -> dict[str, dict[str, Any]]:
        """Route and check ``{name: value}`` settings (typed values or ``--set`` text) by layer."""
        return split_settings(cls.Params, settings, method=cls.name, allowed_run=cls.run_fields,
                              allowed_train=cls.train_fields if cls.capabilities.trainable else (), legacy=legacy)

    def configure(self, **settings: Any) -> Segmenter:
        """Change settings by name (any layer), checked like ``--set``; returns self."""
        layers = self.split(settings)
        if layers["params"]:
            try:
                self.params = dataclasses.replace(self.params, **layers["params"])
            except (ValueError, TypeError) as exc:
                raise SettingError(str(exc)) from None
        if layers["train"]:
            self.train_config = dataclasses.replace(self.train_config, **layers["train"])
        if layers["run"]:
            self.run_options = dataclasses.replace(self.run_options, **layers["run"])
        return self

    def settings(self) -> dict[str, Any]:
        """The three layers this method shows: ``{"params": obj, "train": obj|None, "run": {...}}``."""
        run = {name: getattr(self.run_options, name) for name in self.run_fields}
        return {"params": self.params, "train": self.train_config, "run": run}

    # -- the calls -------------------------------------------------------------------------------
    def fit(self, image, truth, rms=None, *, progress: ProgressCallback | None = None,
            cancel: threading.Event | None = None, checkpoint_dir: str | os.PathLike | None = None,
            resume: bool = False, callback=None) -> Segmenter:
        """Learn from ``truth`` (instance or binary labels); trainable methods only.

        ``checkpoint_dir``/``resume`` keep and continue training state where the method has it;
        ``callback`` receives the method's training reports (loss curves).
        """
        if not self.capabilities.trainable:
            return self
        if truth is None:
            raise ValueError(f"{self.name} needs a truth label image to train on (--truth)")
        if resume and not self.capabilities.resumable:
            raise ValueError(f"{self.name} keeps no checkpoints to resume from")
        self._check_rms(rms)
        self._fit(image, truth, rms, reporter(progress, cancel), cancel=cancel,
                  checkpoint_dir=checkpoint_dir, resume=resume, callback=callback)
        return self

    def predict(self, image, rms=None, *, region=None, progress: ProgressCallback | None = None,
                cancel: threading.Event | None = None) -> Segmentation:
        """Segment ``image`` (or only ``region``: a :class:`Window`, ``(y0, y1, x0, x1)`` or slices)."""
        self._check_rms(rms)
        report = reporter(progress, cancel)
        with self.on_cluster():
            if region is None:
                return self._predict(image, rms, None, report)
            window = Window.of(region).clip(np.shape(image))
            if self.capabilities.region_with_context:
                return self._predict(image, rms, window, report)
            crop_rms = rms[window.slices] if rms is not None else None
            return self._predict(image[window.slices], crop_rms, None, report)

    def on_cluster(self):
        """A context in which the tiled passes run on ``run_options.scheduler`` (a dask scheduler
        address; empty = here): :func:`napari_galseg.cluster.use_scheduler`."""
        from ..cluster import use_scheduler

        return use_scheduler(getattr(self.run_options, "scheduler", "") if "scheduler" in self.run_fields else "")

    def predict_to_fits(self, image, path: str | os.PathLike, rms=None, *, header=None, overwrite: bool = False,
                        progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> Segmentation:
        """Segment and write the labels to ``path`` (int32 FITS, atomic), tile by tile for lazy results."""
        from ..arrays import is_dask
        from ..cluster import current_client
        from ..io.write import write_labels

        with self.on_cluster():
            result = self.predict(image, rms, progress=progress, cancel=cancel)
            client = current_client()
            if client is not None and is_dask(result.labels):  # the blocks are computed by the cluster's workers
                write_labels(path, result.labels, like=header, overwrite=overwrite, scheduler=client)
            elif is_dask(result.labels):  # computed block by block as it is written
                with dask_progress(reporter(progress, cancel)):
                    write_labels(path, result.labels, like=header, overwrite=overwrite)
            else:
                write_labels(path, result.labels, like=header, overwrite=overwrite)
        return result

    def _check_rms(self, rms) -> None:
        if rms is None and self.capabilities.needs_rms:
            raise ValueError(f"{self.name} needs an rms map (--rms)")

    def _fit(self, image, truth, rms, progress: ProgressCallback, **kwargs) -> None:
        raise NotImplementedError

    def _predict(self, image, rms, region: Window | None, progress: ProgressCallback) -> Segmentation:
        raise NotImplementedError

    # -- model folders -------------------------------------------------------------------------
    def config(self) -> dict:
        return {
            "method": self.name,
            "params": dataclasses.asdict(self.params),
            "train": dataclasses.asdict(self.train_config) if self.train_config is not None else None,
            "run": {k: v for k, v in dataclasses.asdict(self.run_options).items() if k != "scheduler"},  # where, not what
            "recipe": self.recipe,
            "provenance": self.provenance,
            **({"bands": list(self.bands)} if self.bands else {}),
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
    def load(cls, path: str | os.PathLike) -> Segmenter:
        from .registry import get

        config = read_model_config(path, expect_method=cls.name or None)
        target = cls if cls.name else get(config["method"])
        model = target.from_config(config, path)
        model._load_state(Path(path), config)
        return model

    @classmethod
    def from_config(cls, config: dict, path="") -> Segmenter:
        """A segmenter with the settings of a model folder's config (old flat ``params`` too)."""
        saved: dict[str, Any] = {}
        for layer in ("params", "train", "run"):
            section = config.get(layer) or {}
            if not isinstance(section, dict):
                raise ModelFolderError(f"{path}/{CONFIG_NAME}: {layer!r} is not a table of settings; the folder is damaged")
            saved.update(section)
        try:
            layers = cls.split(saved, legacy=True)
            model = cls(**layers["params"], **layers["train"], **layers["run"])
        except SettingError as exc:
            raise ModelFolderError(f"{path}/{CONFIG_NAME}: {exc}") from None
        model.recipe = config.get("recipe")
        model.provenance = config.get("provenance") or {}
        bands = config.get("bands")
        if bands is not None and (not isinstance(bands, list) or not bands or not all(isinstance(b, str) for b in bands)):
            raise ModelFolderError(f"{path}/{CONFIG_NAME}: 'bands' is not a list of band names; the folder is damaged")
        model.bands = tuple(bands) if bands else None
        return model

    def _load_state(self, path: Path, config: dict) -> None:
        """Subclasses with learned state read it here."""


__all__ = ["Cancelled", "Capabilities", "ModelFolderError", "Segmentation", "Segmenter", "read_model_config",
           "scores_by_id"]

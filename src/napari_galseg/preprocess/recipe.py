"""A preprocessing recipe: the ordered output channels, each one step with its parameters.

The same recipe is applied at training and inference time and is saved with every model. Fitting
(``Recipe.fit``) replaces interval choices by the numbers they give on one image (``vmin``,
``vmax``, ``black``, ``white``, histogram levels), estimated from a reproducible sample of the whole
image. A fitted recipe maps each pixel value to the same output whether it is applied to the whole
image, a tile or a 256² patch. ``apply`` on an unfitted recipe fits it on its own input first, so
to cut patches, fit on the whole image once and apply the fitted recipe to each patch.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._sampling import check_2d, check_same_shape, is_dask
from .normalise import NormaliseParams, fit_normalise, normalise_block
from .rms import RmsParams, check_rms_values, fit_rms_channel, no_data, rms_block
from .snr import SnrParams, fit_snr, snr_block
from .stretch import StretchParams, fit_level_stretch, level_stretch_block

FORMAT = "napari-galseg/recipe"
VERSION = 1
SOURCES = ("image", "rms")
#: step name → (parameter dataclass, default source)
STEPS: dict[str, tuple[type, str]] = {
    "normalise": (NormaliseParams, "image"),
    "stretch": (StretchParams, "image"),
    "rms": (RmsParams, "rms"),
    "snr": (SnrParams, "image"),  # reads the rms map too
}


def params_from_dict(step: str, values: dict | None):
    """Build the parameter dataclass of ``step``; unknown keys give a clear error."""
    if step not in STEPS:
        raise ValueError(f"unknown preprocessing step {step!r}; choose one of {', '.join(STEPS)}")
    cls = STEPS[step][0]
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for step {step!r}; valid: {sorted(names)}")
    params = cls(**values)
    params._check() if hasattr(params, "_check") else params._check_interval()
    return params


@dataclass
class Channel:
    """One output channel: ``step`` applied to ``source`` ("image" or "rms") with ``params``."""

    step: str
    params: Any = None
    source: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.step not in STEPS:
            raise ValueError(f"unknown preprocessing step {self.step!r}; choose one of {', '.join(STEPS)}")
        cls, default_source = STEPS[self.step]
        if self.params is None:
            self.params = cls()
        elif isinstance(self.params, dict):
            self.params = params_from_dict(self.step, self.params)
        elif not isinstance(self.params, cls):
            raise TypeError(f"step {self.step!r} takes {cls.__name__}, got {type(self.params).__name__}")
        self.source = self.source or default_source
        if self.source not in SOURCES:
            raise ValueError(f"channel source must be one of {SOURCES}, got {self.source!r}")
        if self.step == "rms" and self.source != "rms":
            raise ValueError("the 'rms' step reads the rms map: its source must be 'rms'")
        if self.step == "snr" and self.source != "image":
            raise ValueError("the 'snr' step divides the image by the rms map: its source must be 'image'")
        self.name = self.name or self.step

    @property
    def fitted(self) -> bool:
        return self.params.fitted

    def to_dict(self) -> dict:
        return {"name": self.name, "step": self.step, "source": self.source,
                "params": dataclasses.asdict(self.params)}


class Recipe:
    """Ordered output channels; ``apply(image, rms)`` gives a float32 ``(C, ny, nx)`` array."""

    def __init__(self, channels: list[Channel | dict], name: str = ""):
        self.channels: list[Channel] = [c if isinstance(c, Channel) else _channel_from_dict(c) for c in channels]
        if not self.channels:
            raise ValueError("a recipe needs at least one channel")
        self.name = name

    # ---- description
    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    @property
    def needs_rms(self) -> bool:
        return any(c.source == "rms" or c.step == "snr" for c in self.channels)

    @property
    def is_fitted(self) -> bool:
        return all(c.fitted for c in self.channels)

    def __repr__(self) -> str:
        steps = ", ".join(f"{c.name}={c.step}({c.source})" for c in self.channels)
        return f"Recipe([{steps}]{', fitted' if self.is_fitted else ''})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Recipe) and self.to_dict() == other.to_dict()

    def copy(self) -> Recipe:
        return Recipe.from_dict(self.to_dict())

    def unfitted(self) -> Recipe:
        """The same recipe with the fitted numbers removed (to re-fit on another image)."""
        return Recipe([dataclasses.replace(c, params=c.params.unfitted()) for c in self.channels], self.name)

    # ---- fitting and applying
    def _check_inputs(self, image, rms) -> None:
        check_2d(image, "image")
        if rms is not None:
            check_2d(rms, "rms")
            check_same_shape(image, rms)
        elif self.needs_rms:
            needing = [c.name for c in self.channels if c.source == "rms" or c.step == "snr"]
            raise ValueError(f"this recipe needs an rms map for channel(s) {needing}: pass rms=... "
                             "(--rms on the command line) or use a recipe without rms channels")

    def fit(self, image, rms=None) -> Recipe:
        """A copy with every unfitted channel fitted on a reproducible sample of ``image``/``rms``.

        Channels already fitted (numbers set by hand or by an earlier fit) are kept as they are.
        """
        self._check_inputs(image, rms)
        channels = []
        for c in self.channels:
            if c.fitted:
                channels.append(c)
                continue
            src = image if c.source == "image" else rms
            if c.step == "normalise":
                params = fit_normalise(src, c.params)
            elif c.step == "stretch":
                params = fit_level_stretch(src, c.params, c.params.background(src), what=c.source)
            elif c.step == "snr":
                params = fit_snr(src, c.params)
            else:
                params = fit_rms_channel(src, c.params)
            channels.append(dataclasses.replace(c, params=params))
        return Recipe(channels, self.name)

    def apply(self, image, rms=None, *, warn: bool = True):
        """Apply to a 2-D ``image`` (and ``rms`` if the recipe needs it): float32 ``(C, ny, nx)``.

        numpy in → numpy out; any dask input → a lazy dask array computed chunk by chunk with the
        image's chunks. An unfitted recipe is fitted on this input first (see the module docstring).
        ``warn=False``: no BadRmsWarning for bad rms pixels (a caller that treats them as no data).
        """
        self._check_inputs(image, rms)
        recipe = self if self.is_fitted else self.fit(image, rms)
        backgrounds = [c.params.background(image if c.source == "image" else rms)
                       if c.step == "stretch" else None for c in recipe.channels]
        lazy = is_dask(image) or (rms is not None and is_dask(rms))
        uses_rms = recipe.needs_rms
        if not lazy:
            if uses_rms and warn:
                for c in recipe.channels:
                    if c.step == "rms" and c.params.bad_rms == "mask":
                        check_rms_values(rms, "mask", "in this array")
            return recipe._apply_block(image, rms if uses_rms else None, (0, 0), backgrounds)

        import dask.array as da

        if not is_dask(image):
            image = da.from_array(image, chunks=rms.chunks)
        args = [image]
        if uses_rms:
            rms = da.from_array(rms, chunks=image.chunks) if not is_dask(rms) else rms.rechunk(image.chunks)
            args.append(rms)

        def block_fn(img_block, rms_block_=None, block_info=None):
            (y0, _), (x0, _) = block_info[0]["array-location"]
            return recipe._apply_block(img_block, rms_block_, (y0, x0), backgrounds)

        return da.map_blocks(block_fn, *args, new_axis=0, chunks=((recipe.n_channels,),) + image.chunks,
                             dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))

    @property
    def fills(self) -> np.ndarray:
        """Each channel's value at a pixel without data: its step's ``fill`` (float32, (C,))."""
        return np.array([float(getattr(c.params, "fill", 0.0)) for c in self.channels], np.float32)

    def network_input(self, image: np.ndarray, rms: np.ndarray | None = None,
                      missing: np.ndarray | None = None) -> np.ndarray:
        """What a network reads of an in-memory block, at training and inference alike: the
        channels, with every channel at its ``fill`` where the block holds no data (``missing``,
        else :func:`~napari_galseg.preprocess.rms.no_data` of the block) — one value per channel for
        "no data", whichever input was missing — and any value left non-finite at 0."""
        # no warning about bad rms pixels: they are no data, filled here (bad_rms="error" still raises)
        out = np.nan_to_num(np.asarray(self.apply(image, rms, warn=False), np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        missing = no_data(image, rms) if missing is None else missing
        if missing.any():
            out[:, missing] = self.fills[:, None]
        return out

    def _apply_block(self, img_block, rms_blk, offset, backgrounds) -> np.ndarray:
        ny, nx = img_block.shape
        out = np.empty((self.n_channels, ny, nx), dtype=np.float32)
        for i, c in enumerate(self.channels):
            src = img_block if c.source == "image" else rms_blk
            if c.step == "normalise":
                out[i] = normalise_block(src, c.params)
            elif c.step == "stretch":
                bg = backgrounds[i]
                bg = None if bg is None else bg.region(offset[0], offset[0] + ny, offset[1], offset[1] + nx)
                out[i] = level_stretch_block(src, c.params, background=bg)
            elif c.step == "snr":
                out[i] = snr_block(img_block, rms_blk, c.params)
            else:
                out[i] = rms_block(src, c.params)
        return out

    # ---- serialisation
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "name": self.name,
                "channels": [c.to_dict() for c in self.channels]}

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        if isinstance(data, Recipe):
            return data.copy()
        if not isinstance(data, dict) or "channels" not in data:
            raise ValueError("a recipe is a mapping with a 'channels' list (see docs/preprocessing.md)")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"not a napari-galseg recipe (format {fmt!r})")
        version = int(data.get("version", VERSION))
        if version > VERSION:
            raise ValueError(f"recipe version {version} is newer than this napari-galseg understands "
                             f"({VERSION}); upgrade napari-galseg")
        return cls(list(data["channels"]), name=data.get("name", ""))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> Recipe:
        import yaml

        return cls.from_dict(yaml.safe_load(text))

    def save(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write JSON (``.json``) or YAML (anything else) atomically."""
        from .._atomic import atomic_write_text

        path = Path(path)
        text = self.to_json() if path.suffix.lower() == ".json" else self.to_yaml()
        atomic_write_text(path, text, overwrite=overwrite)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recipe:
        """Read a recipe saved as JSON or YAML."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"recipe file {path} not found")
        try:
            data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid JSON/YAML: {exc}") from exc
        return cls.from_dict(data)


def _channel_from_dict(data: dict) -> Channel:
    if not isinstance(data, dict) or "step" not in data:
        raise ValueError(f"each recipe channel needs a 'step' ({', '.join(STEPS)}); got {data!r}")
    unknown = sorted(set(data) - {"step", "params", "source", "name"})
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in recipe channel {data.get('name', data['step'])!r}")
    return Channel(step=data["step"], params=data.get("params"), source=data.get("source"),
                   name=data.get("name", ""))


def default_recipe() -> Recipe:
    """The study's best input: normalised image, asinh-stretched image, log-stretched rms.

    - ``normalised``: linear between the 0.05 and 99.95 percentiles (astropy ``PercentileInterval(99.9)``).
    - ``stretched``: FITS-Liberator-like asinh (softening 0.05), black level at the 84th percentile
      (about sky + 1 sigma in a sparse field: the noise goes dark) and white at the 99.9th percentile.
      Chosen by a 2-cluster KMeans IoU against the truth of synthetic fields (docs/preprocessing.md,
      benchmarks/bench_preprocess.py --levels); the study tuned this step by hand in FITS Liberator.
    - ``rms``: log-stretched rms (``LogStretch(a=1000)``) between its min and max.
    """
    return Recipe([
        Channel("normalise", NormaliseParams(interval="percentile", percentile=99.9), "image", "normalised"),
        Channel("stretch", StretchParams(stretch="asinh", a=0.05, interval="asymmetric_percentile",
                                         lower_percentile=84.0, upper_percentile=99.9), "image", "stretched"),
        Channel("rms", RmsParams(), "rms", "rms"),
    ], name="default")


def snr_recipe() -> Recipe:
    """:func:`default_recipe` plus the signal-to-noise channel (``snr``: asinh of (image − sky) /
    rms), the U-Net's default input: the study's channels squeeze or clip the faint end that the
    snr channel keeps linear (docs/results.md)."""
    return Recipe(default_recipe().channels + [Channel("snr", SnrParams(), "image", "snr")], name="default+snr")


def image_only_recipe() -> Recipe:
    """Like :func:`default_recipe` without the rms channel (for images that have no rms map)."""
    full = default_recipe()
    return Recipe([c for c in full.channels if c.source == "image"], name="image-only")


def snr_only_recipe() -> Recipe:
    """The signal-to-noise channel alone: free of the frame's units, zero point and depth (it is in
    units of the noise), so a model trained on it applies to frames it has never seen — the
    built-in models' input. Needs an rms map, given or estimated."""
    return Recipe([Channel("snr", SnrParams(), "image", "snr")], name="snr")


NAMED_RECIPES = {"default": default_recipe, "default+snr": snr_recipe, "image-only": image_only_recipe,
                 "snr": snr_only_recipe}


def as_recipe(recipe) -> Recipe | None:
    """None, a Recipe, a dict, a JSON/YAML path or a name (``"default"``, ``"default+snr"``,
    ``"image-only"``) → Recipe; a band recipe's dict → :class:`~.bands.BandRecipe`."""
    from .bands import BandRecipe, is_band_recipe

    if recipe is None or isinstance(recipe, (Recipe, BandRecipe)):
        return recipe
    if is_band_recipe(recipe):  # a model trained on bands (preprocess.bands)
        return BandRecipe.from_dict(recipe)
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    if isinstance(recipe, str) and recipe in NAMED_RECIPES:
        return NAMED_RECIPES[recipe]()
    if isinstance(recipe, (str, os.PathLike)):
        return Recipe.load(recipe)
    raise TypeError(f"cannot make a recipe from {type(recipe).__name__}")

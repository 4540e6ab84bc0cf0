"""The models that ship with the plugin: a U-Net and a forest that segment a frame nobody labelled.

Each is a model folder inside the package (``config.json`` + safetensors weights or plain arrays,
never a pickle) plus a ``card.json``: what it was trained on, the range of conditions it is valid
for, and its scores on fields it never saw (docs/models.md). Nothing is downloaded at run time;
``scripts/build_builtin_models.py`` rebuilds them.

A model is named the same way everywhere (``--model NAME``, the widgets' model lists): a built-in
name, a model of the user's models folder (:mod:`napari_galseg.model_registry`), or a path.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..model_folder import CONFIG_NAME, ModelFolderError, read_model_config

BUILTIN_DIR = Path(__file__).parent
CARD_NAME = "card.json"
#: the window a model's range check measures (the central part of a frame) and the point sources
#: it fits: on GalSim fields of 1.5-6 px FWHM the PSF reads within 6.2 % (2.2 % with describe's 2048²
#: and 150 fits) in 0.3 s of CPU instead of 2-3 s; a warning only needs to tell 1.5 from 6 px
RANGE_CHECK_PIXELS = 1024**2
RANGE_CHECK_FITS = 40
#: the built-in model a trainable method uses when no --model is given
DEFAULTS = {"unet": "unet-general", "forest": "forest-general"}


@dataclass
class BuiltinModel:
    """One built-in model: its folder and its card."""

    name: str
    method: str
    path: Path
    card: dict = field(default_factory=dict)

    @property
    def valid_range(self) -> dict:
        return self.card.get("valid_range") or {}

    def label(self) -> str:
        return f"{self.name} (built-in)"


def _read(path: Path) -> BuiltinModel:
    config = read_model_config(path)
    try:
        card = json.loads((path / CARD_NAME).read_text())
    except (OSError, ValueError):
        card = {}
    return BuiltinModel(path.name, str(config["method"]), path, card if isinstance(card, dict) else {})


def list_builtins(method: str | None = None) -> list[BuiltinModel]:
    """The built-in models (of ``method`` only, when given), by name. A folder that is not a
    readable model folder is left out here; :func:`builtin_model` says what is wrong with it."""
    found = []
    for path in sorted(BUILTIN_DIR.iterdir()):
        if not path.is_dir() or path.name.startswith((".", "_")) or not (path / CONFIG_NAME).exists():
            continue
        try:
            model = _read(path)
        except (ModelFolderError, OSError):
            continue
        if method is None or model.method == method:
            found.append(model)
    return found


def builtin_model(name: str) -> BuiltinModel | None:
    """The built-in model ``name``, None when there is no such name; a damaged one says so."""
    path = BUILTIN_DIR / name
    if not name or "/" in name or os.sep in name or not (path / CONFIG_NAME).exists():
        return None
    try:
        return _read(path)
    except ModelFolderError as exc:
        raise ModelFolderError(f"the built-in model {name} is damaged ({exc}); reinstall napari-galseg") from None


def default_model(method: str) -> BuiltinModel | None:
    """The built-in model ``method`` falls back on when no model is named, if it has one."""
    name = DEFAULTS.get(method)
    return builtin_model(name) if name else None


def resolve_model(spec: str | os.PathLike, method: str | None = None) -> Path:
    """A model named by the user — a built-in name, a name in the models folder, or a path — as
    its folder. Paths win over names (``./unet-general`` is the user's folder)."""
    from ..model_registry import models_root

    text = str(spec)
    path = Path(text).expanduser()
    if path.exists() or text.startswith((".", "/", "~")) or os.sep in text:
        return path
    builtin = builtin_model(text)
    if builtin is not None:
        return builtin.path
    user = models_root() / text
    if (user / CONFIG_NAME).exists():
        return user
    names = [m.name for m in list_builtins(method)]
    raise ModelFolderError(f"no model folder or model named {text!r}: give a folder path, a name from "
                           f"`galseg models list`" + (f" (built-in: {', '.join(names)})" if names else ""))


def range_warnings(model_config_or_card: dict, conditions) -> list[str]:
    """Lines saying where a frame's measured conditions fall outside a model's recorded range
    (empty when inside, or when the model records no range: an older folder gets no warning)."""
    valid = (model_config_or_card.get("valid_range")
             or (model_config_or_card.get("provenance") or {}).get("valid_range") or {})
    lines = []
    for key, bounds in valid.items():
        value = getattr(conditions, key, None)
        if value is None or not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            continue
        lo, hi = bounds
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            lines.append(f"this frame's {key} = {value:.3g} is outside the range the model was made for "
                         f"({lo}–{hi}); its results may be poor: train one like this frame (galseg train METHOD --like IMG)")
    return lines


def range_notes(segmenter, image, rms=None, *, header=None, wcs=None) -> list[str]:
    """The :func:`range_warnings` of a loaded model on a frame: its conditions are measured only
    when the model records a range (a model that records none — an older folder — is not checked)."""
    valid = (getattr(segmenter, "provenance", None) or {}).get("valid_range")
    if not valid:
        return []
    from ..synth.conditions import measure_conditions

    try:
        # the PSF of a central window: what the range needs, in a fraction of a second on any frame
        conditions = measure_conditions(image, rms, header=header, wcs=wcs, max_pixels=RANGE_CHECK_PIXELS,
                                        matched=False, max_fits=RANGE_CHECK_FITS)
    except ValueError as exc:  # too small or too empty to measure: say so, segment anyway
        return [f"the frame's conditions could not be measured ({' '.join(str(exc).split())}); "
                "the model's range was not checked"]
    return range_warnings({"valid_range": valid}, conditions)

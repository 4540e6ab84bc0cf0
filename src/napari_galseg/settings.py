"""A segmenter's settings in three layers, and the one place where setting values are checked.

- the method's own ``Params`` (what the algorithm does: thresholds, architecture, features);
- :class:`TrainConfig`, how a trainable method learns (shared by every trainable method);
- :class:`RunOptions`, how a run uses the machine (tiles, threads, workers, device) — never
  changes what is computed, only how fast and in how much memory.

Field names are unique across the three layers, so ``--set key=value`` (CLI), a widget field and a
model folder's ``config.json`` all address a setting by its name alone. :func:`parse_value` checks
each value against the field's type and allowed choices, with the same message everywhere. Each
field's description is the ``#:`` comment above it (or the ``#`` comment beside it) in the source:
``--params`` prints it and the widgets show it as the tooltip.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal


class SettingError(ValueError):
    """A setting that does not exist or a value of the wrong type, said in one line."""


@dataclass
class TrainConfig:
    """How a trainable method learns: optimisation, patches, validation split and time budget."""

    #: maximum number of passes over the training patches
    epochs: int = 30
    #: stop training (after a last validation) after this many minutes; 0 = no time budget
    max_minutes: float = 0.0
    #: patches per optimisation step
    batch_size: int = 8
    #: peak learning rate of the schedule (AdamW)
    lr: float = 2e-3
    #: AdamW weight decay
    weight_decay: float = 1e-4
    #: learning-rate schedule
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    #: share of the steps spent warming the learning rate up
    warmup_fraction: float = 0.1
    #: epochs without validation improvement before stopping early; 0 = never
    patience: int = 6
    #: smallest validation-loss drop that counts as an improvement
    min_delta: float = 1e-4
    #: maximum gradient norm; 0 = no clipping
    grad_clip: float = 1.0
    #: end with the weights of the best validation epoch rather than the last
    restore_best: bool = True
    #: side of the square training patches, in pixels
    patch_size: int = 256
    #: training patches drawn per epoch
    patches_per_epoch: int = 512
    #: share of training patches centred near a galaxy
    positive_fraction: float = 0.7
    #: share of the field (in blocks) kept for validation
    val_fraction: float = 0.15
    #: share of the field (in blocks) kept for a final test score
    test_fraction: float = 0.1
    #: side of the blocks of the spatial train/validation/test split; 0 = automatic
    block_size: int = 0
    #: most validation patches scored per epoch
    val_max_patches: int = 64
    #: random flips, rotations, extra noise and flux scaling of the training patches
    augment: bool = True
    #: extra noise of up to this many rms added to training patches
    noise_augment: float = 0.3
    #: source flux scaled within [1/x, x] in training patches
    flux_augment: float = 1.25
    #: data-loading worker processes (0 = in the training process)
    num_workers: int = 0
    #: seed of the split, the patch draws and the weight initialisation
    seed: int = 0


@dataclass
class RunOptions:
    """How a run uses the machine; the labels do not depend on these."""

    #: tile side in pixels for images processed piece by piece
    tile_size: int = 512
    #: pixels shared by neighbouring inference tiles (blended)
    tile_overlap: int = 64
    #: tiles per network call
    tile_batch: int = 4
    #: rows of context when labelling strips of a streamed frame
    halo: int = 96
    #: threads for the per-tile passes; 0 = all cores this process may use
    n_threads: int = 0
    #: worker processes (forked, POSIX only; keep 1 inside napari); 0 = one per CPU
    n_workers: int = 1
    #: torch device: auto, cpu, cuda, cuda:N or mps
    device: str = "auto"
    #: bfloat16 arithmetic: auto (where native), true or false
    bf16: Literal["auto", True, False] = "auto"
    #: channels-last memory layout: auto, true or false
    channels_last: Literal["auto", True, False] = "auto"
    #: dask scheduler address (tcp://host:8786) whose workers run the tiles; empty = here
    scheduler: str = ""


#: names of settings in model folders saved before the three layers existed
LEGACY_NAMES = {"n_jobs": "n_threads", "threads": "n_threads", "tile": "tile_size"}


# -- descriptions ---------------------------------------------------------------------------------
@functools.cache
def descriptions(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``#:`` comment lines above each field (or the ``#``
    comment on its line) in the dataclass's source; empty where there is none."""
    out: dict[str, str] = {}
    for base in cls.__mro__[1:]:  # fields inherited from a parent dataclass keep their descriptions
        if dataclasses.is_dataclass(base):
            out.update(descriptions(base))
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return out
    pending: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        m = re.match(r"(\w+)\s*:[^=]*=?.*?(?:#\s*(.*))?$", stripped)
        if m and m.group(1) in {f.name for f in dataclasses.fields(cls)}:
            text = " ".join(pending) or (m.group(2) or "")
            out[m.group(1)] = text.strip()
        if not stripped.startswith("#"):
            pending = []
    return out


# -- values ---------------------------------------------------------------------------------------
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"", "none", "null", "auto"}


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        text = " or ".join(_type_name(a) for a in args if a is not type(None))
        return f"{text}, or empty for auto" if type(None) in args else text
    if origin in (list, tuple):
        return "a list"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(annotation, str(annotation))


def _convert(value: Any, annotation) -> Any:
    """``value`` (a typed value or the text of ``--set``) as ``annotation``; ValueError if it is not."""
    origin = typing.get_origin(annotation)
    text = value.strip() if isinstance(value, str) else None
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if type(None) in args and (value is None or (text is not None and text.lower() in _NONE)):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg)
            except (ValueError, TypeError):
                pass
        raise ValueError
    if origin is Literal:
        for choice in typing.get_args(annotation):
            if isinstance(choice, bool):
                if value is choice or (text is not None and text.lower() in (_TRUE if choice else _FALSE)):
                    return choice
            elif value == choice or (text is not None and text == str(choice)):
                return choice
        raise ValueError
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError
    if annotation is int:
        if isinstance(value, bool):
            raise ValueError
        number = value if text is None else float(text) if re.fullmatch(r"[+-]?\d+(\.0*)?([eE]\+?\d+)?", text) else None
        if isinstance(number, (int, float)) and math.isfinite(number) and float(number).is_integer():
            return int(number)
        raise ValueError
    if annotation is float:
        if isinstance(value, bool):
            raise ValueError
        number = float(text) if text is not None else float(value)
        if not math.isfinite(number):
            raise ValueError
        return number
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError
    if origin in (list, tuple):
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        if text is not None:
            if text.lower() in ("", "[]"):
                return []
            items = json.loads(text) if text.startswith("[") else text.split(",")
        else:
            items = value
        if not isinstance(items, (list, tuple)):
            raise ValueError
        return [_convert(v, item) if item is not Any else v for v in items]
    return value


def parse_value(cls: type, name: str, value: Any) -> Any:
    """Check ``value`` for field ``name`` of the settings dataclass ``cls``; returns the typed value."""
    hints = typing.get_type_hints(cls)
    try:
        return _convert(value, hints[name])
    except (ValueError, TypeError, json.JSONDecodeError):
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        raise SettingError(f"{name}={shown} is not valid: {name} takes {_type_name(hints[name])}") from None


def layer_classes(params_cls: type) -> dict[str, type]:
    return {"params": params_cls, "train": TrainConfig, "run": RunOptions}


def split_settings(params_cls: type, values: dict[str, Any], *, method: str = "",
                   allowed_run: tuple[str, ...] | None = None, allowed_train: tuple[str, ...] | None = None,
                   legacy: bool = False) -> dict[str, dict[str, Any]]:
    """Route ``{name: value}`` to the layer each name belongs to, checking every value.

    An unknown name (or a run option / training setting this method does not use) is a
    :class:`SettingError` listing the valid names (``allowed_run``/``allowed_train``: the run options
    and training settings the method reads, None = all); with ``legacy`` (model folders of older versions)
    unknown names are dropped and old names renamed instead.
    """
    layers = layer_classes(params_cls)
    owner = {}
    for layer, cls in layers.items():
        for f in dataclasses.fields(cls):
            if layer == "run" and allowed_run is not None and f.name not in allowed_run:
                continue
            if layer == "train" and allowed_train is not None and f.name not in allowed_train:
                continue
            owner.setdefault(f.name, layer)
    out: dict[str, dict[str, Any]] = {layer: {} for layer in layers}
    for name, value in values.items():
        if legacy:
            name = LEGACY_NAMES.get(name, name)
        layer = owner.get(name)
        if layer is None:
            if legacy:
                continue
            valid = ", ".join(sorted(owner))
            raise SettingError(f"unknown setting {name!r} for {method or params_cls.__name__}; valid: {valid}")
        out[layer][name] = parse_value(layers[layer], name, value)
    return out


def build(cls: type, defaults: dict[str, Any] | None = None, values: dict[str, Any] | None = None):
    """``cls(**defaults, **values)`` with the dataclass's own checks turned into a SettingError."""
    try:
        return cls(**{**(defaults or {}), **(values or {})})
    except (ValueError, TypeError) as exc:
        raise SettingError(str(exc)) from None


def describe(instance) -> list[tuple[str, Any, str]]:
    """``(name, value, description)`` of every field of a settings dataclass instance."""
    docs = descriptions(type(instance))
    return [(f.name, getattr(instance, f.name), docs.get(f.name, "")) for f in dataclasses.fields(instance)]


__all__ = ["RunOptions", "SettingError", "TrainConfig", "build", "describe", "descriptions", "parse_value",
           "split_settings"]

"""Dock widgets for the preprocessing steps: normalise, stretch, rms channel, composite.

Each widget only collects a layer and parameters, calls :mod:`napari_galseg.preprocess`, and puts
the result into a layer:

- **live preview** (debounced) of the visible region, at most ``PREVIEW_SIDE`` px per side, in a
  layer named ``preview``; the levels are fitted on the *whole* image (a reproducible sample, cached)
  so the preview shows exactly what "Apply" gives;
- **Apply** adds (or refreshes) a layer ``"<input> [<step>]"``; dask and multiscale inputs give lazy
  results (for point-wise steps on a pyramid, every level is processed with the same fitted levels);
- **Display only** sets the input layer's contrast limits (and gamma for power/sqrt/squared
  stretches) instead of creating data, where the stretch allows it;
- **Save recipe… / Load recipe…** write and read the recipe (YAML/JSON) that the CLI, the
  segmenters and saved models use.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    Label,
    PushButton,
    create_widget,
)
from napari.layers import Image
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QPlainTextEdit, QVBoxLayout, QWidget

from ..arrays import is_dask
from ..preprocess import (
    INTERVALS,
    STRETCHES,
    Channel,
    NormaliseParams,
    Recipe,
    RmsParams,
    StretchParams,
    as_recipe,
    default_recipe,
)
from ..preprocess.normalise import normalise
from ..preprocess.rms import rms_channel
from ..preprocess.stretch import stretch
from ._fit import install_docking
from ._layers import camera, level0, visible_region
from ._settings_form import SettingsForm

#: the preview is computed on at most this many pixels per side (the visible region is subsampled)
PREVIEW_SIDE = 1024
#: milliseconds to wait after the last change before the preview is recomputed
PREVIEW_DELAY_MS = 250
PREVIEW_LAYER = "preview"
RECIPE_FILTER = "Recipes (*.yaml *.yml *.json);;All files (*)"

#: fields that are fitted (or typed in by hand); empty means "fit from the interval"
_LEVEL_FIELDS = ("vmin", "vmax", "black", "white")
#: fields not shown in the form (stored numbers, sampling internals)
_HIDDEN_FIELDS = ("histeq_levels", "max_sample", "zscale_samples", "fill")
_CHOICES = {"interval": list(INTERVALS), "stretch": list(STRETCHES), "bad_rms": ["mask", "error"]}
#: which interval fields matter for which interval
_INTERVAL_FIELDS = {
    "percentile": ("percentile",),
    "lower_percentile": ("asymmetric_percentile",),
    "upper_percentile": ("asymmetric_percentile",),
    "zscale_contrast": ("zscale",),
}


def _bounds(cls) -> dict:
    """Counts are positive; percentiles, contrasts and stretch factors lie in 0..100."""
    hints = typing.get_type_hints(cls)
    return {f.name: (1, 10**9) if hints[f.name] is int else (0.0, 100.0)
            for f in dataclasses.fields(cls) if hints[f.name] in (int, float)}


class _PreprocessWidget(QWidget):
    """Shared layout and behaviour; subclasses say which step, which layer and how to compute."""

    step = ""
    title = ""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        install_docking(napari_viewer)
        self._fit_cache: dict = {}
        self.input_combo = create_widget(annotation=Image, label=self.source_label, name="input")
        self.preview_check = CheckBox(text="live preview of the visible region", value=False)
        self.apply_button = PushButton(text="Apply (new layer)")
        self.save_button = PushButton(text="Save recipe…")
        self.load_button = PushButton(text="Load recipe…")
        self.status = Label(value="")
        self.form = Container(widgets=[self.input_combo, *self._extra_widgets(), self.preview_check,
                                       self.apply_button, *self._more_buttons(), self.save_button,
                                       self.load_button, self.status])
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        self._add_native_widgets(layout)
        layout.addStretch(1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self._preview_if_enabled)
        self.apply_button.changed.connect(lambda: self._report(self.apply))
        self.save_button.changed.connect(lambda: self._report(self.save_recipe))
        self.load_button.changed.connect(lambda: self._report(self.load_recipe))
        self.preview_check.changed.connect(self._on_preview_toggled)
        self.form.changed.connect(self.schedule_preview)
        view = camera(self.viewer)
        view.events.zoom.connect(self.schedule_preview)
        view.events.center.connect(self.schedule_preview)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(lambda e: self.form.reset_choices())
        self.form.reset_choices()

    source_label = "image"

    # -- hooks for subclasses --------------------------------------------------------------------
    def _extra_widgets(self) -> list:
        return []

    def _more_buttons(self) -> list:
        return []

    def _add_native_widgets(self, layout) -> None:
        pass

    def recipe(self, fitted: bool = True) -> Recipe:
        raise NotImplementedError

    def _compute(self, data, recipe: Recipe):
        """The step's output on ``data`` (a 2-D array) with a fitted recipe."""
        raise NotImplementedError

    # -- common behaviour -----------------------------------------------------------------------
    def _report(self, action):
        """Run a button action; a user error goes to the status line instead of a traceback."""
        try:
            return action()
        except (ValueError, FileNotFoundError, FileExistsError, OSError) as exc:
            self.status.value = f"error: {exc}"
            return None

    def _input_layer(self):
        layer = self.input_combo.value
        if layer is None:
            raise ValueError(f"choose an {self.source_label} layer")
        if level0(layer).ndim != 2:
            raise ValueError(f"layer {layer.name!r} is not a 2-D image (shape {level0(layer).shape})")
        return layer

    def _fitted(self, recipe: Recipe, data, rms=None) -> Recipe:
        """``recipe`` fitted on the whole ``data`` (cached: fitting reads a sample of a huge image)."""
        if recipe.is_fitted:
            return recipe
        key = (id(data), id(rms), recipe.to_json(indent=None))
        if key not in self._fit_cache:
            self._fit_cache.clear()
            self._fit_cache[key] = recipe.fit(data, rms)
        return self._fit_cache[key]

    def _on_preview_toggled(self, on: bool) -> None:
        if on:
            self.schedule_preview()
        elif PREVIEW_LAYER in self.viewer.layers:
            self.viewer.layers.remove(PREVIEW_LAYER)

    def schedule_preview(self, *_):
        if self.preview_check.value:
            self._timer.start()

    def _preview_if_enabled(self):
        if self.preview_check.value:
            self._report(self.update_preview)

    def update_preview(self):
        """Compute the visible region (subsampled to ``PREVIEW_SIDE``) into the ``preview`` layer."""
        layer = self._input_layer()
        rows, cols = visible_region(layer)
        step = max(1, int(np.ceil(max(rows.stop - rows.start, cols.stop - cols.start) / PREVIEW_SIDE)))
        out = self._compute_region(layer, (slice(rows.start, rows.stop, step), slice(cols.start, cols.stop, step)))
        out = np.asarray(out)
        scale = np.asarray(layer.scale[-2:]) * step
        translate = np.asarray(layer.translate[-2:]) + np.asarray(layer.scale[-2:]) * [rows.start, cols.start]
        if out.ndim == 3:
            scale, translate = np.r_[1.0, scale], np.r_[0.0, translate]
        if PREVIEW_LAYER in self.viewer.layers and self.viewer.layers[PREVIEW_LAYER].ndim == out.ndim:
            preview = self.viewer.layers[PREVIEW_LAYER]
            preview.data, preview.scale, preview.translate = out, scale, translate
        else:
            if PREVIEW_LAYER in self.viewer.layers:
                self.viewer.layers.remove(PREVIEW_LAYER)
            preview = self.viewer.add_image(out, name=PREVIEW_LAYER, scale=scale, translate=translate,
                                            contrast_limits=(0.0, 1.0), colormap="gray")
        self.status.value = f"preview of rows {rows.start}:{rows.stop}, columns {cols.start}:{cols.stop}" + (
            f" (every {step}th pixel)" if step > 1 else "")
        return preview

    def _compute_region(self, layer, region):
        raise NotImplementedError

    def _output_name(self, layer) -> str:
        return f"{layer.name} [{self.step}]"

    def _add_or_update(self, name, data, layer, multiscale, extra_dims: int = 0, metadata=None):
        scale = np.r_[[1.0] * extra_dims, np.asarray(layer.scale[-2:])]
        translate = np.r_[[0.0] * extra_dims, np.asarray(layer.translate[-2:])]
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        return self.viewer.add_image(data, name=name, multiscale=multiscale, contrast_limits=(0.0, 1.0),
                                     scale=scale, translate=translate, colormap="gray", metadata=metadata or {})

    # -- recipes ------------------------------------------------------------------------------
    def save_recipe(self, path: str | Path | None = None, fitted: bool = True) -> Path | None:
        """Write the current recipe (with the levels fitted on the chosen layer, if any)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save recipe", "recipe.yaml", RECIPE_FILTER)
            if not path:
                return None
        recipe = self.recipe(fitted=fitted and self.input_combo.value is not None)
        saved = recipe.save(path, overwrite=True)  # the file dialog already asked about replacing
        self.status.value = f"saved {saved.name}"
        return saved

    def load_recipe(self, path: str | Path | None = None) -> Recipe | None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load recipe", "", RECIPE_FILTER)
            if not path:
                return None
        recipe = Recipe.load(path)
        self._use_recipe(recipe)
        self.status.value = f"loaded {Path(path).name}"
        self.schedule_preview()
        return recipe

    def _use_recipe(self, recipe: Recipe) -> None:
        raise NotImplementedError


class _StepWidget(_PreprocessWidget):
    """One step (normalise, stretch or rms) with its parameter dataclass as a form."""

    params_cls: type = NormaliseParams
    function = staticmethod(normalise)
    source = "image"

    def _extra_widgets(self) -> list:
        fields = [f.name for f in dataclasses.fields(self.params_cls) if f.name not in _HIDDEN_FIELDS]
        self.params = SettingsForm(self.params_cls(), fields=fields, choices=_CHOICES,
                                   bounds=_bounds(self.params_cls), label="parameters")
        self.params.changed.connect(self._update_visibility)
        self._update_visibility()
        return [self.params]

    def _update_visibility(self, *_):
        interval = self.params.interval.value
        for name, intervals in _INTERVAL_FIELDS.items():
            if hasattr(self.params, name):
                getattr(self.params, name).visible = interval in intervals
        if hasattr(self.params, "stretch") and hasattr(self.params, "a"):
            self.params.a.visible = self.params.stretch.value in ("log", "asinh", "sinh", "power")
        for name in ("background_box", "background_filter", "background_max_side"):
            if hasattr(self.params, name):
                getattr(self.params, name).visible = bool(self.params.flatten_background.value)

    def current_params(self):
        """The parameter dataclass as the form shows it (levels left empty are fitted later)."""
        params = self.params_cls(**self.params.values())
        params._check() if hasattr(params, "_check") else params._check_interval()
        return params

    def set_params(self, params) -> None:
        self.params.set_values(params)

    def recipe(self, fitted: bool = True) -> Recipe:
        recipe = Recipe([Channel(self.step, self.current_params(), self.source, self.step)], name=self.step)
        if fitted:
            data = level0(self._input_layer())
            recipe = self._fitted(recipe, data)
        return recipe

    def _fitted(self, recipe, data, rms=None):
        if recipe.is_fitted:
            return recipe
        key = (id(data), recipe.to_json(indent=None))
        if key not in self._fit_cache:
            from ..preprocess import fit_normalise, fit_rms_channel, fit_stretch

            fit = {"normalise": fit_normalise, "stretch": fit_stretch, "rms": fit_rms_channel}[self.step]
            self._fit_cache.clear()
            params = fit(data, recipe.channels[0].params)
            self._fit_cache[key] = Recipe([dataclasses.replace(recipe.channels[0], params=params)], recipe.name)
        return self._fit_cache[key]

    def fitted_params(self):
        return self.recipe(fitted=True).channels[0].params

    def _compute_region(self, layer, region):
        params = self.fitted_params()
        return self.function(np.asarray(level0(layer)[region]), params)

    def apply(self):
        """Add (or refresh) the layer ``"<input> [<step>]"``; lazy for dask and multiscale inputs."""
        layer = self._input_layer()
        params = self.fitted_params()
        recipe = Recipe([Channel(self.step, params, self.source, self.step)], name=self.step)
        pointwise = not getattr(params, "flatten_background", False)
        if layer.multiscale and pointwise:
            data = [self.function(level, params) for level in layer.data]
            multiscale = True
        else:
            data = self.function(level0(layer), params)
            multiscale = False
        out = self._add_or_update(self._output_name(layer), data, layer, multiscale,
                                  metadata={"galseg_recipe": recipe.to_dict(), "galseg_source": layer.name})
        self.status.value = f"{out.name}: {self._levels_text(params)}" + (" (lazy)" if is_dask(level0(out)) else "")
        return out

    def _levels_text(self, params) -> str:
        if hasattr(params, "vmin"):
            return f"vmin={params.vmin:.6g}, vmax={params.vmax:.6g}"
        return f"black={params.black:.6g}, white={params.white:.6g}"

    def _use_recipe(self, recipe: Recipe) -> None:
        matching = [c for c in recipe.channels if c.step == self.step]
        if not matching:
            raise ValueError(f"the recipe has no {self.step!r} channel (it has {[c.step for c in recipe.channels]}); "
                             "load it in the Composite widget instead")
        self.set_params(matching[0].params)


class NormaliseWidget(_StepWidget):
    """Normalise an image to [0, 1] with an astropy interval (MinMax, Percentile, ZScale…)."""

    step = "normalise"
    params_cls = NormaliseParams
    function = staticmethod(normalise)

    def _more_buttons(self) -> list:
        self.display_button = PushButton(text="Display only (set contrast limits)")
        self.display_button.changed.connect(lambda: self._report(self.display_only))
        return [self.display_button]

    def display_only(self) -> bool:
        """Set the input layer's contrast limits to the fitted interval instead of creating data."""
        layer = self._input_layer()
        p = self.fitted_params()
        _set_display(layer, p.vmin, p.vmax, 1.0)
        self.status.value = f"{layer.name}: contrast limits {p.vmin:.6g} .. {p.vmax:.6g}"
        return True


class StretchWidget(_StepWidget):
    """FITS-Liberator-like contrast stretch: black/white levels, stretch function, background flattening."""

    step = "stretch"
    params_cls = StretchParams
    function = staticmethod(stretch)

    def _more_buttons(self) -> list:
        self.display_button = PushButton(text="Display only (contrast limits + gamma)")
        self.display_button.changed.connect(lambda: self._report(self.display_only))
        return [self.display_button]

    def display_only(self) -> bool:
        """Show the stretch through the layer's contrast limits and gamma when napari can.

        napari displays ``((x - lo) / (hi - lo)) ** gamma``: that is the linear, sqrt (gamma 0.5),
        squared (2) and power (``a``) stretches without background flattening. The others need
        data (use Apply); then this returns False and says so.
        """
        layer = self._input_layer()
        p = self.fitted_params()
        gamma = {"linear": 1.0, "sqrt": 0.5, "squared": 2.0, "power": p.stretch_a()}.get(p.stretch)
        if gamma is None or p.flatten_background:
            why = "background flattening" if p.flatten_background else f"the {p.stretch} stretch"
            self.status.value = f"{why} cannot be shown by contrast limits and gamma: use Apply"
            return False
        _set_display(layer, p.black, p.white, gamma)
        self.status.value = f"{layer.name}: contrast limits {p.black:.6g} .. {p.white:.6g}, gamma {gamma:g}"
        return True


class RmsChannelWidget(_StepWidget):
    """The study's rms channel: the rms map log-stretched to [0, 1] (zero/negative rms masked)."""

    step = "rms"
    params_cls = RmsParams
    function = staticmethod(rms_channel)
    source = "rms"
    source_label = "rms"

    def _output_name(self, layer) -> str:
        return f"{layer.name} [rms channel]"


class CompositeWidget(_PreprocessWidget):
    """Stack the recipe's channels (by default: normalised, stretched, rms) into one (C, ny, nx) layer."""

    step = "composite"

    def _extra_widgets(self) -> list:
        self.rms_combo = create_widget(annotation=typing.Optional[Image], label="rms (optional)", name="rms")
        self.preset = ComboBox(label="recipe", choices=["default", "default+snr", "image-only", "custom"], value="default")
        self.preset.changed.connect(self._on_preset)
        return [self.rms_combo, self.preset]

    def _add_native_widgets(self, layout) -> None:
        self.recipe_text = QPlainTextEdit()
        self.recipe_text.setToolTip("the recipe as YAML: edit it freely (the preset switches to 'custom')")
        self.recipe_text.setPlainText(default_recipe().to_yaml())
        self.recipe_text.textChanged.connect(self._on_text_edited)
        layout.addWidget(self.recipe_text)
        self._setting_text = False

    def _on_preset(self, value: str) -> None:
        if value == "custom":
            return
        self._set_text(as_recipe(value).to_yaml())

    def _set_text(self, text: str) -> None:
        self._setting_text = True
        try:
            self.recipe_text.setPlainText(text)
        finally:
            self._setting_text = False
        self.schedule_preview()

    def _on_text_edited(self) -> None:
        if not self._setting_text and self.preset.value != "custom":
            self.preset.value = "custom"
        self.schedule_preview()

    def current_recipe(self) -> Recipe:
        return Recipe.from_yaml(self.recipe_text.toPlainText())

    def _inputs(self):
        layer = self._input_layer()
        image = level0(layer)
        rms_layer = self.rms_combo.value
        rms = level0(rms_layer) if rms_layer is not None else None
        recipe = self.current_recipe()
        if recipe.needs_rms and rms is None:
            raise ValueError("this recipe has an rms channel: choose an rms layer (or the 'image-only' recipe)")
        if rms is not None and tuple(rms.shape) != tuple(image.shape):
            raise ValueError(f"rms layer {rms_layer.name!r} has shape {tuple(rms.shape)}, the image "
                             f"{tuple(image.shape)}: choose layers that cover the same pixels")
        return layer, image, (rms if recipe.needs_rms else None), recipe

    def recipe(self, fitted: bool = True) -> Recipe:
        if not fitted:
            return self.current_recipe()
        _, image, rms, recipe = self._inputs()
        return self._fitted(recipe, image, rms)

    def _compute_region(self, layer, region):
        _, image, rms, recipe = self._inputs()
        fitted = self._fitted(recipe, image, rms)
        return fitted.apply(np.asarray(image[region]), None if rms is None else np.asarray(rms[region]))

    def apply(self):
        """Add (or refresh) a ``(C, ny, nx)`` layer ``"<input> [composite]"`` (lazy for dask inputs)."""
        layer, image, rms, recipe = self._inputs()
        fitted = self._fitted(recipe, image, rms)
        data = fitted.apply(image, rms)
        out = self._add_or_update(self._output_name(layer), data, layer, multiscale=False, extra_dims=1,
                                  metadata={"galseg_recipe": fitted.to_dict(), "galseg_source": layer.name,
                                            "channel_names": fitted.channel_names})
        self.status.value = f"{out.name}: channels {', '.join(fitted.channel_names)}" + (
            " (lazy)" if is_dask(data) else "")
        return out

    def _use_recipe(self, recipe: Recipe) -> None:
        self.preset.value = "custom"
        self._set_text(recipe.to_yaml())


def _set_display(layer, lo: float, hi: float, gamma: float) -> None:
    """Contrast limits (widening the slider range when needed) and gamma of an image layer."""
    if hi <= lo:
        raise ValueError(f"the fitted levels are equal ({lo:g}): the image looks flat in this interval")
    rlo, rhi = layer.contrast_limits_range
    layer.contrast_limits_range = (min(rlo, lo), max(rhi, hi))
    layer.contrast_limits = (lo, hi)
    layer.gamma = gamma


__all__ = ["CompositeWidget", "NormaliseWidget", "RmsChannelWidget", "StretchWidget"]

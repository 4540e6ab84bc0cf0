"""A form for a settings dataclass: one widget per field, its description as the tooltip.

The one dataclass-to-form builder of the widgets (segmenters and preprocessing steps). Choices
(``Literal`` fields, or ``choices=``) are dropdowns, booleans checkboxes, numbers spin boxes;
optional values and lists are text fields where empty means "auto". Values are read back through
:func:`napari_galseg.settings.parse_value`, so a form refuses exactly what ``--set`` refuses, with
the same message.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox

from ..settings import descriptions, parse_value

AUTO_HINT = "empty = auto"


def _is_optional(annotation) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def field_widget(name: str, annotation, value, *, tooltip: str = "", choices: list | None = None,
                 bounds: tuple[float, float] | None = None):
    """The widget for one field (named ``name``, so a form's widgets are reachable by field name)."""
    label = name.replace("_", " ")
    if choices is None and typing.get_origin(annotation) is Literal:
        choices = list(typing.get_args(annotation))
    if choices is not None:
        pairs = [(str(c).lower() if isinstance(c, bool) else str(c), c) for c in choices]
        widget = ComboBox(name=name, label=label, choices=pairs, value=value)
    elif annotation is bool:
        widget = CheckBox(name=name, label=label, value=bool(value))
    elif annotation is int:
        low, high = bounds or (-(2**31), 2**31 - 1)
        widget = SpinBox(name=name, label=label, value=int(value), min=int(low), max=int(high))
    elif annotation is float:
        low, high = bounds or (-1e12, 1e12)
        # the step sets the shown decimals: set it before the value, or 0.001 would round to 0.0
        value = float(value)
        step = 10.0 ** (np.floor(np.log10(abs(value))) - 1) if value else 0.1
        widget = FloatSpinBox(name=name, label=label, min=low, max=high, step=min(step, 0.1))
        widget.value = value
    else:  # text, optional values, lists: typed as --set would take them
        widget = LineEdit(name=name, label=label, value=_text(value))
        if _is_optional(annotation) or typing.get_origin(annotation) in (list, tuple):
            tooltip = f"{tooltip} ({AUTO_HINT})" if tooltip else AUTO_HINT
    widget.tooltip = tooltip or None
    return widget


class SettingsForm(Container):
    """The fields of one settings dataclass instance as a form; :meth:`values` reads them back."""

    def __init__(self, instance, *, fields: typing.Iterable[str] | None = None, choices: dict | None = None,
                 bounds: dict | None = None, label: str = ""):
        cls = type(instance)
        self.settings_cls = cls
        hints = typing.get_type_hints(cls)
        docs = descriptions(cls)
        names = list(fields) if fields is not None else [f.name for f in dataclasses.fields(cls)]
        widgets = [field_widget(n, hints[n], getattr(instance, n), tooltip=docs.get(n, ""),
                                choices=(choices or {}).get(n), bounds=(bounds or {}).get(n)) for n in names]
        super().__init__(widgets=widgets, label=label)

    def values(self) -> dict[str, Any]:
        """``{field: typed value}``; a :class:`~napari_galseg.settings.SettingError` for a bad entry."""
        return {w.name: parse_value(self.settings_cls, w.name, w.value) for w in self}

    def set_values(self, instance) -> None:
        for w in self:
            value = getattr(instance, w.name)
            w.value = _text(value) if isinstance(w, LineEdit) else value

"""The noise and mask inputs every segmenting widget shares: a noise layer and what it holds
(rms, variance or inverse-variance weight), and an optional bit mask with its bad bits.

The choice is the CLI's ``--rms/--variance/--weight`` and ``--mask FILE:BITS``; the conversion is
:func:`napari_galseg.frames.frame_arrays`'s (window by window), so "no data" means in napari what
it means in ``galseg segment``.
"""
from __future__ import annotations

import typing

from magicgui.widgets import ComboBox, LineEdit, create_widget
from napari.layers import Labels

from ..frames import KINDS

#: the noise kinds as the widgets show them (label, value)
KIND_CHOICES = [("rms (1σ)", "rms"), ("variance", "variance"), ("weight (inverse variance)", "weight")]
BITS_TOOLTIP = ("which mask bits are bad: names from the mask's MP_* header cards (BAD,SAT,EDGE), bit numbers (0,3) "
                "or a hex value (0x9); empty: the usual bad planes where the header names them, else any set bit")


def kind_combo(**kwargs) -> ComboBox:
    """What the noise map holds (the CLI's --rms / --variance / --weight)."""
    return ComboBox(label="noise is", choices=KIND_CHOICES, value="rms",
                    tooltip="what the noise layer holds: a 1σ map, a variance, or an inverse-variance weight (DES WGT, "
                            "HST WHT, Legacy Surveys invvar); zero weight or infinite variance = no data, never "
                            "detected", **kwargs)


def bits_edit(**kwargs) -> LineEdit:
    return LineEdit(label="mask bits", value="", tooltip=BITS_TOOLTIP, **kwargs)


def mask_combo(label: str = "mask (optional)"):
    return create_widget(annotation=typing.Optional[Labels], label=label,
                         options={"tooltip": "a bit mask (a coadd's MASK/MSK plane, a FLAG image): pixels with a bad "
                                             "bit set are never detected nor labelled"})


def kind_of(layer) -> str:
    """The noise kind a reader gave a coadd's noise plane (``galseg_noise_kind``), else rms."""
    kind = (getattr(layer, "metadata", None) or {}).get("galseg_noise_kind")
    return kind if kind in KINDS else "rms"


def preselect_mask(combo, layers, image) -> None:
    """Choose the reader's mask plane (``galseg_plane == "mask"``) of the image's shape, where none is chosen."""
    if combo.value is not None or image is None:
        return
    for layer in reversed(layers):
        if (isinstance(layer, Labels) and layer.metadata.get("galseg_plane") == "mask"
                and tuple(layer.data.shape if not getattr(layer, "multiscale", False) else layer.data[0].shape)
                == tuple(image.data.shape if not getattr(image, "multiscale", False) else image.data[0].shape)):
            combo.value = layer
            return


class FrameInputs:
    """``(image, rms)`` from layers through :func:`~napari_galseg.frames.frame_arrays`, the last
    conversion kept (one per frame, noise, kind and mask: a field-of-view run after another does not
    convert the frame again)."""

    def __init__(self):
        self._kept: tuple | None = None

    def convert(self, image, noise, kind: str, mask=None, bits: str = "", mask_header=None,
                names: tuple[str, str, str] = ("the image", "the noise layer", "the mask layer")):
        from ..frames import frame_arrays

        if noise is None and mask is None:
            return image, None
        key = (id(image), id(noise), kind, id(mask), bits.strip())
        if self._kept is None or self._kept[0] != key or self._kept[1] is not image:
            converted = frame_arrays(image, noise, kind, mask=mask, mask_bits=bits.strip() or None,
                                     mask_header=mask_header, names=names)
            self._kept = (key, image, converted)
        return self._kept[2]


__all__ = ["KIND_CHOICES", "FrameInputs", "bits_edit", "kind_combo", "kind_of", "mask_combo", "preselect_mask"]

"""What a frame looks like: the conditions simulations are matched to and models are checked against.

:class:`FrameConditions` is measured once from a frame (:func:`measure_conditions`) and travels
with it: ``galseg describe`` prints it, ``galseg synth --like`` makes fields with it, a model
folder records the conditions it was trained for, and a built-in model's validity range is
checked against it. Its JSON keys are part of the CLI's interface (docs/synth.md): keep them.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

#: how the PSF was measured (``psf_flag``)
PSF_FLAGS = ("stars", "narrowest", "given", "default")


@dataclass
class FrameConditions:
    """Measured conditions of one frame; every length in pixels of that frame."""

    #: (ny, nx) of the frame
    shape: tuple[int, int]
    #: PSF FWHM (px), how it was measured (one of PSF_FLAGS), from how many sources
    psf_fwhm_px: float
    psf_flag: str = "stars"
    psf_n_sources: int = 0
    #: PSF ellipticity 1 - b/a and profile: "moffat" (with its β) or "kolmogorov"
    psf_ellipticity: float = 0.0
    psf_kind: str = "moffat"
    psf_moffat_beta: float | None = None
    #: sky level and the median 1σ noise, in image units; whether the noise came from a given map
    sky: float = 0.0
    noise_rms: float = 1.0
    noise_from_map: bool = False
    #: arcsec per pixel from the WCS (None: no WCS, lengths in pixels only)
    pixel_scale_arcsec: float | None = None
    #: header values where present (SATURATE / MAGZERO-like cards), else None
    saturation: float | None = None
    zero_point: float | None = None
    #: sources detected per million pixels (5σ, minarea 5) and their flux distribution:
    #: histogram edges (image units) and counts, and the fitted slope of dN/dF ∝ F^-slope
    density_per_mpix: float = 0.0
    flux_edges: list[float] = field(default_factory=list)
    flux_counts: list[int] = field(default_factory=list)
    flux_slope: float | None = None
    #: one line per thing worth knowing (no WCS, few stars, ...), in the order found
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        return d

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict) -> FrameConditions:
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in d.items() if k in names}
        kept["shape"] = tuple(int(s) for s in kept.get("shape", (0, 0)))
        return cls(**kept)

"""Parameters of the photutils pipeline: what it detects and how it splits (``--set key=value``).

How a run uses the machine (``tile_size``, ``n_threads``, ``n_workers``) is not here: those are
:class:`~napari_galseg.settings.RunOptions` and never change the labels.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np


@dataclasses.dataclass
class PhotutilsParams:
    """Parameters of the photutils pipeline (the CLI's ``--set key=value`` reads these names)."""

    #: detection threshold in units of the noise (of the smoothed image unless threshold_mode="study");
    #: 2.5 with min_snr=6: footprints out to the faint isophote, noise peaks rejected afterwards
    nsigma: float = 2.5
    #: "filtered": nsigma × noise of the smoothed image (correct); "study": nsigma × unsmoothed rms
    threshold_mode: Literal["filtered", "study"] = "filtered"
    #: Gaussian smoothing kernel FWHM and size in pixels (size odd); fwhm=0 disables smoothing
    fwhm: float = 3.0
    kernel_size: int = 5
    #: a separable smoothing kernel given by its 1-D factor (odd length; the 2-D kernel is its outer
    #: product with itself, normalised), replacing the Gaussian — e.g. a SExtractor .conv filter
    kernel: list[float] | None = None
    #: minimum object area in pixels (photutils' n_pixels)
    n_pixels: int = 10
    connectivity: int = 8
    #: Background2D mesh: box size, median filter size (boxes), excluded-pixel percentage per box
    box_size: int = 64
    filter_size: int = 3
    exclude_percentile: float = 10.0
    #: deblending (photutils deblend_sources)
    deblend: bool = True
    n_levels: int = 32
    #: least flux fraction of a deblended child (photutils' default 0.001 splits galaxies' own
    #: structure into fragments; SExtractor's default is 0.005)
    contrast: float = 0.02
    deblend_mode: Literal["exponential", "linear", "sinh"] = "exponential"
    #: spurious-segment rejection: final segments whose S/N (segment flux / its error, from the rms)
    #: is below this are dropped (0 keeps all). A low threshold finds the faint isophote that the
    #: truth reaches; this removes the noise peaks it lets through (docs/results.md)
    min_snr: float = 6.0
    #: source catalog beside the labels: "basic" (centroid, bbox, area, ellipse, flux and error,
    #: min/max — SourceCatalog's definitions, computed vectorised during detection: ~free), "full"
    #: (photutils' SourceCatalog itself, adding the Kron radius and Kron flux: ~1 ms per source) or
    #: "none". True means "basic", False "none"
    catalog: Literal["basic", "full", "none"] = "basic"

    def __post_init__(self) -> None:
        if isinstance(self.catalog, (bool, np.bool_)):
            self.catalog = "basic" if self.catalog else "none"
        if self.catalog not in ("basic", "full", "none"):
            raise ValueError(f"catalog must be 'basic', 'full' or 'none' (or true/false), got {self.catalog!r}")
        if self.threshold_mode not in ("filtered", "study"):
            raise ValueError(f"threshold_mode must be 'filtered' or 'study', got {self.threshold_mode!r}")
        if not self.nsigma > 0:
            raise ValueError(f"nsigma must be > 0, got {self.nsigma}")
        if self.fwhm < 0:
            raise ValueError(f"fwhm must be >= 0, got {self.fwhm}")
        if self.fwhm > 0 and (int(self.kernel_size) < 1 or int(self.kernel_size) % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd integer, got {self.kernel_size}")
        if self.kernel is not None:
            k = np.asarray(self.kernel, dtype=np.float64)
            if k.ndim != 1 or len(k) % 2 == 0 or not np.all(np.isfinite(k)) or not k.sum() > 0:
                raise ValueError(f"kernel must be an odd-length list of numbers with a positive sum, got {self.kernel}")
            self.kernel = [float(v) for v in k]
        if int(self.n_pixels) < 1:
            raise ValueError(f"n_pixels must be >= 1, got {self.n_pixels}")
        if self.connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {self.connectivity}")
        if int(self.box_size) < 4:
            raise ValueError(f"box_size must be >= 4 pixels, got {self.box_size}")
        if int(self.filter_size) < 1 or int(self.filter_size) % 2 == 0:
            raise ValueError(f"filter_size must be a positive odd integer, got {self.filter_size}")
        if not 0 <= self.exclude_percentile <= 100:
            raise ValueError(f"exclude_percentile must be in [0, 100], got {self.exclude_percentile}")
        if self.deblend_mode not in ("exponential", "linear", "sinh"):
            raise ValueError(f"deblend_mode must be 'exponential', 'linear' or 'sinh', got {self.deblend_mode!r}")
        if not 0 <= self.contrast <= 1:
            raise ValueError(f"contrast must be in [0, 1], got {self.contrast}")
        if not self.min_snr >= 0:
            raise ValueError(f"min_snr must be >= 0 (0 keeps every segment), got {self.min_snr}")
        if int(self.n_levels) < 1:
            raise ValueError(f"n_levels must be >= 1, got {self.n_levels}")


def check_run(tile_size: int, n_threads: int, n_workers: int) -> None:
    """The run options the pipeline reads (tile side rounded up to whole background boxes;
    threads for the per-tile passes; forked processes for deblending and the full catalog)."""
    if int(tile_size) < 16:
        raise ValueError(f"tile_size must be >= 16, got {tile_size}")
    if int(n_threads) < 0:
        raise ValueError(f"n_threads must be >= 0 (0 = one per CPU), got {n_threads}")
    if int(n_workers) < 0:
        raise ValueError(f"n_workers must be >= 0 (0 = one per CPU), got {n_workers}")


#: the study's literal setting: 1.5 × the unsmoothed rms, photutils' deblending contrast, no rejection
STUDY_PRESET = {"threshold_mode": "study", "nsigma": 1.5, "contrast": 0.001, "min_snr": 0.0}
#: the defaults before the rejection step (3σ of the smoothed noise, contrast 0.001, nothing rejected)
FILTERED_PRESET = {"threshold_mode": "filtered", "nsigma": 3.0, "contrast": 0.001, "min_snr": 0.0}

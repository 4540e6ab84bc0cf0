"""SExtractor configuration files (``.sex``) and filter kernels (``.conv``) for the photutils pipeline.

Astronomers tune SExtractor with a ``.sex`` file; :func:`read_sextractor_config` reads one and maps
the keys that decide *which pixels belong to which object* onto
:class:`~napari_galseg.segmenters.photutils.PhotutilsParams`, with SExtractor's own
defaults for the keys a file leaves out (a ``.sex`` file means "SExtractor's defaults, except …").
Everything else is sorted and reported, never silently dropped:

- ``honoured``: mapped exactly (e.g. DETECT_MINAREA → ``n_pixels``);
- ``approximated``: mapped with a stated difference (a non-separable filter kernel replaced by the
  pipeline's closest Gaussian, a relative weight map read as inverse variance);
- ``not_honoured``: keys that would change the segmentation in SExtractor and do nothing here
  (CLEAN Y, an ABSOLUTE threshold, a MANUAL background, …) — the reason is given for each;
- ``ignored``: keys that only change SExtractor's catalog or output files (photometry, check-images,
  memory), so they cannot change the labels.

Conventions that make the mapping exact: SExtractor (and SEP with ``filter_type="conv"``, tested)
thresholds the *normalised-kernel-filtered* image at DETECT_THRESH × the rms of the *unfiltered*
image — the pipeline's ``threshold_mode="study"``; a ``CONV NONORM`` kernel is not divided by its
sum, so it maps to the normalised kernel with the threshold divided by that sum. Connectivity is 8
and the multi-threshold levels exponential, as in SExtractor.

>>> cfg = read_sextractor_config("default.sex")          # doctest: +SKIP
>>> seg = PhotutilsSegmenter(cfg.params())
>>> print(cfg.report())
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...sextractor.files import (
    DEFAULT_CONV,
    SExtractorConfigError,
    parse_sex,
    parse_sex_lines,
    read_conv,
    read_sex_text,
)

__all__ = [
    "DEFAULT_CONV",
    "SExtractorConfig",
    "SExtractorConfigError",
    "parse_sex",
    "parse_sex_lines",
    "read_conv",
    "read_sextractor_config",
    "weighted_inputs",
]


#: SExtractor's built-in defaults of the keys that decide the segmentation (SExtractor 2.25 ``-dd``)
SEXTRACTOR_DEFAULTS: dict[str, list[str]] = {
    "DETECT_TYPE": ["CCD"],
    "THRESH_TYPE": ["RELATIVE"],
    "DETECT_THRESH": ["1.5"],
    "DETECT_MINAREA": ["5"],
    "FILTER": ["Y"],
    "FILTER_NAME": ["default.conv"],
    "DEBLEND_NTHRESH": ["32"],
    "DEBLEND_MINCONT": ["0.005"],
    "CLEAN": ["Y"],
    "BACK_TYPE": ["AUTO"],
    "BACK_SIZE": ["64"],
    "BACK_FILTERSIZE": ["3"],
    "BACKPHOTO_TYPE": ["GLOBAL"],
    "WEIGHT_TYPE": ["NONE"],
}

#: keys that only change SExtractor's catalog, photometry or output files: they cannot change labels
OUTPUT_ONLY_KEYS = frozenset((
    "ANALYSIS_THRESH", "ASSOCCOORD_TYPE", "ASSOCSELEC_TYPE", "ASSOC_DATA", "ASSOC_NAME", "ASSOC_PARAMS",
    "ASSOC_RADIUS", "ASSOC_TYPE", "BACKPHOTO_THICK", "CATALOG_NAME", "CATALOG_TYPE", "CHECKIMAGE_NAME",
    "CHECKIMAGE_TYPE", "FITS_UNSIGNED", "FLAG_IMAGE", "FLAG_TYPE", "GAIN", "GAIN_KEY", "HEADER_SUFFIX",
    "MAG_GAMMA", "MAG_ZEROPOINT", "MASK_TYPE", "MEMORY_BUFSIZE", "MEMORY_OBJSTACK", "MEMORY_PIXSTACK",
    "NTHREADS", "PARAMETERS_NAME", "PATTERN_TYPE", "PHOT_APERTURES", "PHOT_AUTOAPERS", "PHOT_AUTOPARAMS",
    "PHOT_FLUXFRAC", "PHOT_PETROPARAMS", "PIXEL_SCALE", "PSFDISPLAY_TYPE", "PSF_NAME", "PSF_NMAX",
    "SATUR_KEY", "SATUR_LEVEL", "SEEING_FWHM", "SOM_NAME", "STARNNW_NAME", "VERBOSE_TYPE", "WEIGHT_GAIN",
    "WRITE_XML", "XML_NAME", "XSL_URL",
))

#: keys that change SExtractor's segmentation and that the pipeline does not model (unless at the value given)
UNMODELLED_KEYS = {
    "DETECT_MAXAREA": ("0", "objects above a maximum area are not removed"),
    "FILTER_THRESH": (None, "no thresholds on the filtered values are applied"),
    "CLEAN": ("N", "spurious detections near bright objects are not cleaned (CLEAN Y merges them in SExtractor)"),
    "CLEAN_PARAM": (None, "no cleaning is done (see CLEAN)"),
    "BACK_FILTTHRESH": ("0", "the background mesh is median-filtered everywhere, not only above a threshold"),
    "WEIGHT_THRESH": (None, "weights are not thresholded; set bad pixels to NaN in the image instead"),
    "RESCALE_WEIGHTS": (None, "weight maps are used as given, never rescaled to the measured noise"),
    "INTERP_MAXXLAG": (None, "gaps in the weight map are not interpolated"),
    "INTERP_MAXYLAG": (None, "gaps in the weight map are not interpolated"),
    "INTERP_TYPE": ("NONE", "gaps in the weight map are not interpolated"),
    "BACK_VALUE": (None, "the background is always estimated from the image (BACK_TYPE AUTO)"),
}


@dataclasses.dataclass
class SExtractorConfig:
    """A ``.sex`` file read and mapped (see the module docstring)."""

    path: Path | None
    #: every key as read (upper case) with its values; SExtractor's defaults filled in for the mapped keys
    keys: dict[str, list[str]]
    #: PhotutilsParams fields set by the file
    overrides: dict[str, Any]
    #: the filter kernel as read from the .conv file (before normalisation); None with FILTER N
    kernel: np.ndarray | None = None
    kernel_path: Path | None = None
    weight_type: str = "NONE"
    weight_image: Path | None = None
    honoured: dict[str, str] = dataclasses.field(default_factory=dict)
    approximated: dict[str, str] = dataclasses.field(default_factory=dict)
    not_honoured: dict[str, str] = dataclasses.field(default_factory=dict)
    ignored: list[str] = dataclasses.field(default_factory=list)
    unknown: list[str] = dataclasses.field(default_factory=list)

    def params(self, base=None, **more):
        """PhotutilsParams with the file's settings over ``base`` (default: the pipeline's defaults)."""
        from .params import PhotutilsParams

        base = base if base is not None else PhotutilsParams()
        return dataclasses.replace(base, **{**self.overrides, **more})

    def report(self) -> str:
        """A few lines for a person: what was mapped, approximated, left out."""
        lines = []
        name = self.path.name if self.path else "configuration"
        if self.honoured:
            lines.append(f"{name}: mapped " + ", ".join(f"{k} ({v})" for k, v in self.honoured.items()))
        for key, why in self.approximated.items():
            lines.append(f"  approximated {key}: {why}")
        for key, why in self.not_honoured.items():
            lines.append(f"  not honoured {key}: {why}")
        if self.ignored:
            lines.append("  ignored (catalog/output only, labels unaffected): " + ", ".join(self.ignored))
        if self.unknown:
            lines.append("  unknown keys (not SExtractor's): " + ", ".join(self.unknown))
        return "\n".join(lines)


# -- reading files --------------------------------------------------------------------------------


def _find(name: str, sex_dir: Path | None) -> Path | None:
    """A file named in a .sex file: as given (relative to the working directory, as SExtractor
    reads it), else beside the .sex file."""
    p = Path(name).expanduser()
    if p.exists():
        return p
    if sex_dir is not None and not p.is_absolute() and (sex_dir / p).exists():
        return sex_dir / p
    return None


# -- mapping --------------------------------------------------------------------------------------


def _number(key: str, values: list[str], kind=float):
    try:
        return kind(values[0])
    except (IndexError, ValueError):
        raise SExtractorConfigError(f"{key} needs a number, got {' '.join(values) or 'nothing'!r}") from None


def _flag(key: str, values: list[str]) -> bool:
    v = (values or ["?"])[0].upper()
    if v not in ("Y", "N"):
        raise SExtractorConfigError(f"{key} must be Y or N, got {' '.join(values)!r}")
    return v == "Y"


def gaussian_for_kernel(kernel: np.ndarray) -> tuple[float, int, float]:
    """The pipeline's Gaussian (fwhm, kernel_size) closest to a normalised ``kernel``, and the largest
    absolute difference between the two normalised kernels."""
    from .smoothing import gaussian_kernel_1d

    k = kernel / kernel.sum()
    size = int(max(k.shape))
    best = (math.inf, 0.0)
    for fwhm in np.arange(0.5, 3.0 * size, 0.01):
        k1 = gaussian_kernel_1d(float(fwhm), size)
        g = np.outer(k1, k1)
        pad_y, pad_x = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
        kk = np.pad(k, ((pad_y, pad_y), (pad_x, pad_x)))
        err = float(np.abs(g - kk).max())
        if err < best[0]:
            best = (err, float(fwhm))
    return round(best[1], 2), size, best[0]


def map_config(keys: dict[str, list[str]], path: Path | None = None) -> SExtractorConfig:
    """Map parsed ``.sex`` keys onto the pipeline's parameters (see the module docstring)."""
    given = dict(keys)
    full = {**SEXTRACTOR_DEFAULTS, **given}
    sex_dir = path.parent if path is not None else None
    # SExtractor keeps every detection of DETECT_MINAREA pixels: no S/N rejection (min_snr=0)
    cfg = SExtractorConfig(path=path, keys=full, overrides={"threshold_mode": "study", "connectivity": 8,
                                                            "deblend_mode": "exponential", "min_snr": 0.0})
    o = cfg.overrides

    detect_type = full["DETECT_TYPE"][0].upper()
    if detect_type != "CCD":
        cfg.not_honoured["DETECT_TYPE"] = f"{detect_type}: photographic-plate response is not modelled (CCD assumed)"
    else:
        cfg.honoured["DETECT_TYPE"] = "CCD"

    thresh = full["DETECT_THRESH"]
    thresh_type = full["THRESH_TYPE"][0].upper()
    if len(thresh) > 1:
        cfg.not_honoured["DETECT_THRESH"] = (f"{','.join(thresh)}: a surface-brightness threshold (mag/arcsec², ZP) "
                                             "is not supported; give it in units of sigma")
    elif thresh_type != "RELATIVE":
        cfg.not_honoured["THRESH_TYPE"] = f"{thresh_type}: only RELATIVE (units of the background rms) is supported"
    else:
        o["nsigma"] = _number("DETECT_THRESH", thresh)
        cfg.honoured["DETECT_THRESH"] = f"nsigma={o['nsigma']:g} × the unfiltered rms"
        cfg.honoured["THRESH_TYPE"] = "RELATIVE"

    o["n_pixels"] = _number("DETECT_MINAREA", full["DETECT_MINAREA"], int)
    cfg.honoured["DETECT_MINAREA"] = f"n_pixels={o['n_pixels']}"

    if _flag("FILTER", full["FILTER"]):
        _map_filter(cfg, full, given, sex_dir)
    else:
        o["fwhm"] = 0.0
        cfg.honoured["FILTER"] = "N: no smoothing (fwhm=0)"

    o["n_levels"] = _number("DEBLEND_NTHRESH", full["DEBLEND_NTHRESH"], int)
    o["contrast"] = _number("DEBLEND_MINCONT", full["DEBLEND_MINCONT"])
    o["deblend"] = o["contrast"] < 1.0
    cfg.honoured["DEBLEND_NTHRESH"] = f"n_levels={o['n_levels']}"
    cfg.honoured["DEBLEND_MINCONT"] = f"contrast={o['contrast']:g}" + ("" if o["deblend"] else " (no deblending)")

    back_type = full["BACK_TYPE"][0].upper()
    if back_type != "AUTO":
        cfg.not_honoured["BACK_TYPE"] = f"{back_type}: the background is always estimated (AUTO)"
    else:
        cfg.honoured["BACK_TYPE"] = "AUTO"
    size = [_number("BACK_SIZE", [v], int) for v in full["BACK_SIZE"]]
    o["box_size"] = size[0]
    cfg.honoured["BACK_SIZE"] = f"box_size={size[0]}"
    if len(size) > 1 and size[1] != size[0]:
        cfg.approximated["BACK_SIZE"] = f"{size[0]}x{size[1]} boxes: square boxes of {size[0]} px are used"
    fsize = [_number("BACK_FILTERSIZE", [v], int) for v in full["BACK_FILTERSIZE"]]
    o["filter_size"] = fsize[0] if fsize[0] % 2 else fsize[0] + 1
    cfg.honoured["BACK_FILTERSIZE"] = f"filter_size={o['filter_size']}"
    if len(fsize) > 1 and fsize[1] != fsize[0] or o["filter_size"] != fsize[0]:
        cfg.approximated["BACK_FILTERSIZE"] = f"{','.join(full['BACK_FILTERSIZE'])}: a square odd filter of {o['filter_size']} boxes is used"

    backphoto = full["BACKPHOTO_TYPE"][0].upper()
    if backphoto == "GLOBAL":
        cfg.honoured["BACKPHOTO_TYPE"] = "GLOBAL (catalog fluxes above the background map)"
    else:
        cfg.not_honoured["BACKPHOTO_TYPE"] = f"{backphoto}: catalog fluxes use the global background map, not a local annulus"

    _map_weight(cfg, full, sex_dir)

    for key, values in given.items():
        if key in cfg.honoured or key in cfg.approximated or key in cfg.not_honoured or key in SEXTRACTOR_DEFAULTS:
            continue
        if key in UNMODELLED_KEYS:
            neutral, why = UNMODELLED_KEYS[key]
            if neutral is not None and [v.upper() for v in values] == [neutral]:
                cfg.honoured[key] = neutral
            else:
                cfg.not_honoured[key] = f"{' '.join(values)}: {why}"
        elif key in OUTPUT_ONLY_KEYS:
            cfg.ignored.append(key)
        else:
            cfg.unknown.append(key)
    if _flag("CLEAN", full["CLEAN"]) and "CLEAN" not in cfg.not_honoured:
        cfg.not_honoured["CLEAN"] = ("Y" + ("" if "CLEAN" in given else " (SExtractor's default)") + ": "
                                     + UNMODELLED_KEYS["CLEAN"][1])
    elif "CLEAN" not in cfg.not_honoured:
        cfg.honoured["CLEAN"] = "N"
    return cfg


def _map_filter(cfg: SExtractorConfig, full: dict, given: dict, sex_dir: Path | None) -> None:
    name = full["FILTER_NAME"][0] if full["FILTER_NAME"] else "default.conv"
    found = _find(name, sex_dir)
    if found is None:
        if "FILTER_NAME" in given and Path(name).name != "default.conv":
            raise SExtractorConfigError(f"FILTER_NAME {name}: no such file (looked in the working directory"
                                        + (f" and in {sex_dir}" if sex_dir else "") + "); give its path or set FILTER N")
        kernel, normalise = DEFAULT_CONV.copy(), True
        cfg.honoured["FILTER_NAME"] = "SExtractor's default.conv (built in)"
    else:
        kernel, normalise = read_conv(found)
        cfg.kernel_path = found
        cfg.honoured["FILTER_NAME"] = f"{found.name} ({'NORM' if normalise else 'NONORM'})"
    total = float(kernel.sum())
    if not total > 0:
        cfg.not_honoured["FILTER_NAME"] = (f"{name}: a kernel summing to {total:g} (e.g. a Mexican hat) cannot be used; "
                                           "smoothing is switched off")
        cfg.overrides["fwhm"] = 0.0
        return
    cfg.kernel = kernel
    if not normalise and "nsigma" in cfg.overrides:
        # SExtractor filters with the raw kernel: the same as the normalised kernel at threshold / sum
        cfg.overrides["nsigma"] = cfg.overrides["nsigma"] / total
        cfg.honoured["DETECT_THRESH"] += f" (NONORM kernel of sum {total:g}: nsigma={cfg.overrides['nsigma']:g} on the normalised kernel)"
    _set_kernel(cfg, kernel)
    cfg.honoured["FILTER"] = "Y"


def separable_factor(kernel: np.ndarray) -> np.ndarray | None:
    """The 1-D ``k`` with ``outer(k, k)`` equal to the normalised ``kernel`` (to 1e-4 of its peak),
    or None when the kernel is not such a symmetric product (most SExtractor kernels are)."""
    k = kernel / kernel.sum()
    if k.shape[0] != k.shape[1]:
        return None
    u, sv, vt = np.linalg.svd(k)
    a, b = u[:, 0] * np.sqrt(sv[0]), vt[0] * np.sqrt(sv[0])
    if a.sum() < 0:
        a, b = -a, -b
    if not np.allclose(a, b, atol=1e-4 * np.abs(k).max()) or not np.allclose(np.outer(a, a), k, atol=1e-4 * np.abs(k).max()):
        return None
    return a / a.sum()


def _set_kernel(cfg: SExtractorConfig, kernel: np.ndarray) -> None:
    """Give the pipeline the kernel: exactly when it is a symmetric separable product (the pipeline
    smooths separably), else the closest Gaussian, reported."""
    factor = separable_factor(kernel)
    if factor is not None:
        cfg.overrides["kernel"] = factor.tolist()
        return
    fwhm, size, err = gaussian_for_kernel(kernel)
    cfg.overrides["fwhm"], cfg.overrides["kernel_size"] = fwhm, size
    cfg.approximated["FILTER_NAME"] = (f"{kernel.shape[0]}x{kernel.shape[1]} kernel is not a separable product: replaced by "
                                       f"the pipeline's Gaussian fwhm={fwhm:g}, size {size} (largest difference {err:.3f} of "
                                       "the normalised weights)")


def _map_weight(cfg: SExtractorConfig, full: dict, sex_dir: Path | None) -> None:
    types = [t.upper() for t in full["WEIGHT_TYPE"]]
    wtype = types[0] if types else "NONE"
    if len(types) > 1:
        cfg.approximated["WEIGHT_TYPE"] = f"{','.join(types)}: the detection image's {wtype} is used for both images"
    cfg.weight_type = wtype
    if wtype in ("NONE", "BACKGROUND"):
        cfg.honoured["WEIGHT_TYPE"] = f"{wtype}: noise from the background mesh"
        if full.get("WEIGHT_IMAGE"):
            cfg.ignored.append("WEIGHT_IMAGE")
        return
    if wtype not in ("MAP_RMS", "MAP_VAR", "MAP_WEIGHT"):
        raise SExtractorConfigError(f"WEIGHT_TYPE {wtype}: expected NONE, BACKGROUND, MAP_RMS, MAP_VAR or MAP_WEIGHT")
    names = full.get("WEIGHT_IMAGE") or []
    if not names:
        raise SExtractorConfigError(f"WEIGHT_TYPE {wtype} needs WEIGHT_IMAGE (the map's FITS file)")
    found = _find(names[0], sex_dir)
    if found is None:
        raise SExtractorConfigError(f"WEIGHT_IMAGE {names[0]}: no such file (looked in the working directory"
                                    + (f" and in {sex_dir}" if sex_dir else "") + ")")
    cfg.weight_image = found
    cfg.honoured["WEIGHT_IMAGE"] = str(found)
    if wtype == "MAP_RMS":
        cfg.honoured["WEIGHT_TYPE"] = "MAP_RMS: the rms map"
    elif wtype == "MAP_VAR":
        cfg.honoured["WEIGHT_TYPE"] = "MAP_VAR: rms = sqrt(variance)"
    else:
        cfg.approximated["WEIGHT_TYPE"] = ("MAP_WEIGHT: rms = 1/sqrt(weight), the weights taken as inverse variance "
                                           "(SExtractor rescales relative weights to the measured noise)")


def weighted_inputs(cfg: SExtractorConfig, image, weight):
    """``(image, rms)`` from the image and the configuration's weight map (numpy or dask).

    Pixels of zero weight (or infinite variance/rms) carry no information: they become NaN in the
    image, which the pipeline treats as masked, and get rms 1 so the map stays valid.
    """
    if weight is None or cfg.weight_type in ("NONE", "BACKGROUND"):
        return image, None
    lazy = type(image).__module__.startswith("dask.") or type(weight).__module__.startswith("dask.")
    xp = __import__("dask.array", fromlist=["array"]) if lazy else np
    w = weight.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        if cfg.weight_type == "MAP_RMS":
            rms = w
        elif cfg.weight_type == "MAP_VAR":
            rms = xp.sqrt(w)
        else:
            rms = 1.0 / xp.sqrt(w)
    good = xp.isfinite(rms) & (rms > 0)
    return xp.where(good, image, np.float32(np.nan)), xp.where(good, rms, np.float32(1.0))


def read_sextractor_config(path: str | os.PathLike) -> SExtractorConfig:
    """Read and map a ``.sex`` file (see the module docstring); clear errors for unusable files."""
    path = Path(path)
    return map_config(parse_sex(read_sex_text(path)), path)

"""The rms channel of the study: the noise (rms) map, log-stretched and mapped to [0, 1].

Pixels whose rms is zero, negative or not finite carry no noise estimate (typically outside the
survey footprint). By default they are *masked*: they get ``fill`` (0) in the output and a
:class:`BadRmsWarning` says how many were seen in the fitting sample. With ``bad_rms="error"`` they
raise a ``ValueError`` instead (checked on the sample at fit time and on every block at apply time).
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np

from ._sampling import check_2d, is_dask, strided_sample
from .stretch import LevelStretchParams, fit_level_stretch, level_stretch_block

BAD_RMS_POLICIES = ("mask", "error")


class BadRmsWarning(UserWarning):
    """Some rms pixels are zero, negative or not finite and were masked."""


@dataclass
class RmsParams(LevelStretchParams):
    """Log stretch of the rms map between its sampled min and max (astropy ``LogStretch(a=1000)``)."""

    interval: str = "minmax"
    stretch: str = "log"
    bad_rms: str = "mask"

    def _check(self) -> None:
        super()._check()
        if self.bad_rms not in BAD_RMS_POLICIES:
            raise ValueError(f"bad_rms must be one of {BAD_RMS_POLICIES}, got {self.bad_rms!r}")


def valid_rms(values: np.ndarray) -> np.ndarray:
    """Pixels with a usable noise estimate: finite and strictly positive."""
    values = np.asarray(values)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values > 0)


def no_data(image: np.ndarray, rms: np.ndarray | None = None) -> np.ndarray:
    """Pixels of a block that hold no data: the image is not finite (a frame's NaN: zero weight,
    masked bits, BLANK), or — where an rms map is given — its rms is not finite and positive."""
    bad = ~np.isfinite(np.asarray(image))
    if rms is not None:
        bad |= ~valid_rms(rms)
    return bad


def check_rms_values(values: np.ndarray, policy: str, where: str) -> None:
    """Warn (``mask``) or raise (``error``) about rms pixels that are <= 0 or not finite."""
    bad = ~valid_rms(values)
    n_bad = int(bad.sum())
    if not n_bad:
        return
    message = (f"{n_bad} of {bad.size} rms pixels {where} are zero, negative or not finite")
    if policy == "error":
        raise ValueError(message + "; fix the rms map or use bad_rms='mask' to give them 0")
    warnings.warn(message + "; they are masked (output 0)", BadRmsWarning, stacklevel=3)


def fit_rms_channel(rms, params: RmsParams | None = None, **changes) -> RmsParams:
    """Fit the levels of the rms channel on a reproducible sample of ``rms`` (bad pixels ignored)."""
    params = dataclasses.replace(params or RmsParams(), **changes)
    params._check()
    check_2d(rms, "rms")
    sample, _, _ = strided_sample(rms, params.max_sample)
    check_rms_values(sample, params.bad_rms, "in the fitting sample")
    fitted = fit_level_stretch(sample, dataclasses.replace(params, max_sample=max(1, sample.size)),
                               valid_fn=valid_rms, what="rms (no positive finite pixel)")
    return dataclasses.replace(fitted, max_sample=params.max_sample)


def rms_block(block: np.ndarray, params: RmsParams) -> np.ndarray:
    """The rms channel of one in-memory block with fitted ``params`` (float32)."""
    block = np.asarray(block, dtype=np.float64)
    if params.bad_rms == "error":
        check_rms_values(block, "error", "in this block")
    return level_stretch_block(block, params, valid=valid_rms(block))


def rms_channel(rms, params: RmsParams | None = None, **changes):
    """Log-stretched rms in [0, 1] (float32); numpy in → numpy out, dask in → lazy dask out."""
    params = dataclasses.replace(params or RmsParams(), **changes)
    params._check()
    check_2d(rms, "rms")
    if not params.fitted:
        params = fit_rms_channel(rms, params)
    elif not is_dask(rms) and params.bad_rms == "mask":
        check_rms_values(rms, "mask", "in this array")
    if is_dask(rms):
        return rms.map_blocks(rms_block, params, dtype=np.float32)
    return rms_block(rms, params)

"""The per-detection isophotal measurements SExtractor mode made before they were batched
(``isophotal_row``, numpy): the reference ``napari_galseg.sextractor.isophotal.isophotal_rows`` is
checked against, key by key and bit for bit."""
from __future__ import annotations

import dataclasses

import numpy as np

from napari_galseg.sextractor.classstar import iso_areas
from napari_galseg.sextractor.deblend import moments
from napari_galseg.sextractor.isophotal import OBJ_TRUNC, PI, _error_sums, _mthresh


@dataclasses.dataclass
class _Weighted:
    """One detection's per-pixel detection thresholds and variances, in pixel-list order."""

    pthr: np.ndarray
    pvar: np.ndarray
    gainflag: bool
    threshfac: float

    def take(self, idx) -> _Weighted:
        return _Weighted(self.pthr[idx], self.pvar[idx], self.gainflag, self.threshfac)


def isophotal_row(cid, ys, xs, val, cval, dthresh, thresh, var, gain, h, w, minarea, center=None,
                  opt: _Weighted | None = None) -> dict:
    """preanalyse(ANALYSE_FULL|ANALYSE_ROBUST) and examineiso() of one detection; ``center``: the
    core centre of a deblended branch (its moments are taken about it). With a weight map
    (``opt``) the detection threshold is the lowest of its pixels', the analysis threshold and the
    isophotal flux error follow each pixel's variance. The reference :func:`isophotal_rows` keeps."""
    pdthresh = dthresh
    if opt is not None:
        dthresh = float(opt.pthr.min())
        pdthresh = opt.pthr
    mo = moments(xs, ys, cval, val, dthresh, center)
    rv = mo["rv"]
    mx, my, xm2, ym2, xym, a, b = mo["mx"], mo["my"], mo["xm2"], mo["ym2"], mo["xym"], mo["a"], mo["b"]
    singu, theta = mo["singu"], mo["theta"]
    temp2 = xm2 * ym2 - xym * xym
    xmin, ymin = int(xs.min()), int(ys.min())
    pvar = np.zeros(0, np.float32) if opt is None else opt.pvar
    flux, sigtv, sxx, syy, sxy, serr = _error_sums(xs, ys, cval, val, float(mx), float(my), float(var), float(gain),
                                                   pvar, opt is not None and opt.gainflag)
    athresh = np.float32(thresh)
    if opt is None:
        above = val > athresh
    else:
        pa = (opt.threshfac * np.sqrt(opt.pvar.astype(np.float64))).astype(np.float32)
        athresh = pa.min()
        above = val > pa
    # position errors (examineiso, errflag)
    fdflux2 = float(np.float32(rv)) ** 2
    emx2 = sxx / fdflux2
    emy2 = syy / fdflux2
    emxy = sxy / fdflux2
    esum = serr * 0.08333 / fdflux2
    if singu and emx2 * emy2 - emxy * emxy < esum * esum:
        emx2 += esum
        emy2 += esum
    peak = float(val.max())
    abcor = float(np.float32(mo["abcor"]))
    flag = OBJ_TRUNC if (xs.min() == 0 or xs.max() == w - 1 or ys.min() == 0 or ys.max() == h - 1) else 0
    last = ys == ys.max()
    return {
        "_cid": cid, "_ys": ys, "_xs": xs, "_ymax": int(ys.max()), "_xend": int(xs[last].max()),
        "_mx": mx, "_my": my, "_flag": flag, "_fdflux": float(np.float32(rv)), "_fdnpix": len(val),
        "_abcor": abcor, "_iso": iso_areas(val, peak, float(athresh)), "_dthresh": dthresh,
        "_mthresh": float(_mthresh(cval, np.atleast_1d(np.asarray(pdthresh, np.float32)), minarea)), "_fluxvar": sigtv,
        "X_IMAGE": mx + 1.0, "Y_IMAGE": my + 1.0,
        "X2_IMAGE": xm2, "Y2_IMAGE": ym2, "XY_IMAGE": xym,
        "ERRX2_IMAGE": emx2, "ERRY2_IMAGE": emy2, "ERRXY_IMAGE": emxy,
        "A_IMAGE": a, "B_IMAGE": b, "THETA_IMAGE": float(np.float32(theta * 180.0 / PI)),
        "CXX_IMAGE": float(np.float32(ym2 / temp2)), "CYY_IMAGE": float(np.float32(xm2 / temp2)),
        "CXY_IMAGE": float(np.float32(-2 * xym / temp2)),
        "ELONGATION": a / b if b > 0 else 0.0, "ELLIPTICITY": 1 - b / a if a > 0 else 0.0,
        "ISOAREA_IMAGE": int(above.sum()), "ISOAREAF_IMAGE": int(len(val)),
        "FLUX_ISO": flux, "FLUX_MAX": peak,
        "THRESHOLD": float(np.float32(dthresh)),
        "XMIN_IMAGE": xmin + 1, "YMIN_IMAGE": ymin + 1, "XMAX_IMAGE": int(xs.max()) + 1, "YMAX_IMAGE": int(ys.max()) + 1,
        "XPEAK_IMAGE": int(xs[np.argmax(cval)]) + 1, "YPEAK_IMAGE": int(ys[np.argmax(cval)]) + 1,
    }

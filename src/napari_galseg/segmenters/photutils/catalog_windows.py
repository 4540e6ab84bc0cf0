"""The ``"full"`` catalog of the tiled pipeline: photutils' SourceCatalog in windows that hold
every Kron aperture, so the tiled catalog equals the untiled one."""
from __future__ import annotations

import warnings

import numpy as np

from ...catalog import to_table


def _window_for(pipe, centers_x, centers_y, radii, base):
    ny, nx = pipe.shape
    y0 = min(base[0].start, int(np.floor(np.min(centers_y - radii))))
    y1 = max(base[0].stop, int(np.ceil(np.max(centers_y + radii))) + 1)
    x0 = min(base[1].start, int(np.floor(np.min(centers_x - radii))))
    x1 = max(base[1].stop, int(np.ceil(np.max(centers_x + radii))) + 1)
    return (slice(max(0, y0), min(ny, y1)), slice(max(0, x0), min(nx, x1)))


def _contains(outer, inner) -> bool:
    return all(o.start <= i.start and i.stop <= o.stop for o, i in zip(outer, inner))


def build_catalog_window(pipe, final, finals, parent_of, bboxes):
    """Catalog rows of the segments ``finals`` measured in a window large enough for their Kron
    apertures (used by the tiled photutils pipeline; the result equals an untiled catalog).

    The window grows in two steps: first to hold each segment's 6×semimajor measurement ellipse
    (where the Kron radius is measured), then to hold the Kron aperture itself
    (kron_params[0] × Kron radius × semimajor axis); apertures past the image edge are clipped the
    same way in a tiled and an untiled run.
    """
    from photutils.segmentation import SegmentationImage, SourceCatalog

    finals = np.asarray(finals)
    base = (slice(int(bboxes[:, 0].min()), int(bboxes[:, 1].max())), slice(int(bboxes[:, 2].min()), int(bboxes[:, 3].max())))
    window = base
    table = None
    for step in range(4):
        data, conv, _, rms, valid = pipe.prepare(window)
        seg = final.window(window)
        cat = SourceCatalog(data, SegmentationImage(seg), convolved_data=conv, error=rms, mask=~valid)
        cat = cat.select_labels(finals)
        a = np.atleast_1d(cat.semimajor_axis.value)
        xc = np.atleast_1d(cat.x_centroid) + window[1].start
        yc = np.atleast_1d(cat.y_centroid) + window[0].start
        ok = np.isfinite(a) & np.isfinite(xc) & np.isfinite(yc)
        if step == 0:
            needed_r = 6.0 * a + 3.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kron = np.atleast_1d(cat.kron_radius.value)
            kron = np.where(np.isfinite(kron), kron, 0.0)
            needed_r = np.maximum(6.0, float(cat.kron_params[0]) * np.maximum(kron, 1.4)) * a + 3.0
        if ok.any():
            needed = _window_for(pipe, xc[ok], yc[ok], needed_r[ok], base)
        else:
            needed = base
        if _contains(window, needed) and step > 0:
            table = to_table(cat, (window[0].start, window[1].start))
            break
        window = (slice(min(window[0].start, needed[0].start), max(window[0].stop, needed[0].stop)),
                  slice(min(window[1].start, needed[1].start), max(window[1].stop, needed[1].stop)))
    if table is None:  # pragma: no cover - the window converges in two steps
        table = to_table(cat, (window[0].start, window[1].start))
    parent_lookup = dict(zip(finals.tolist(), np.asarray(parent_of).tolist()))
    table.add_column([parent_lookup[int(v)] for v in table["label"]], name="parent", index=1)
    return table

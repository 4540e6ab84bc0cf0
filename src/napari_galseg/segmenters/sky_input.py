"""The sky-subtracted input the network segmenters (U-Net, Mask R-CNN, DETR) read."""
from __future__ import annotations

import os

import numpy as np

from ..background import SkySubtracted, estimate_mesh


class SkySubtractedInput:
    """Mixin for segmenters whose ``params`` have ``subtract_background`` and ``background_box``.

    :meth:`input_image` is the image less its sky (photutils' Background2D model, a lazy
    array-like), or the image itself; the background mesh of the last image is kept, so repeated
    field-of-view runs on one frame estimate it once.
    """

    _sky_cache: tuple | None = None

    def input_image(self, image):
        p = self.params
        if not p.subtract_background:
            return image
        key = (id(image), tuple(np.shape(image)), int(p.background_box))
        cached = self._sky_cache
        if cached is None or cached[0] != key or cached[1] is not image:
            mesh = estimate_mesh(image, p.background_box, n_threads=self.run_options.n_threads or (os.cpu_count() or 1))
            cached = self._sky_cache = (key, image, SkySubtracted(image, mesh))
        return cached[2]

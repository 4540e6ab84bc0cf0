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
    _rms_cache: tuple | None = None
    #: one line when the last call estimated the noise map because none was given (the CLI and the
    #: widgets say it), else None
    noise_note: str | None = None

    def noise_map(self, image, rms):
        """``rms``, or — when none was given — the noise map estimated from ``image`` (lazy, kept
        for repeated calls on one frame), with :attr:`noise_note` saying so."""
        if rms is not None:
            self.noise_note = None
            return rms
        from ..background import estimate_rms_map
        from ..frames.bands import BandStack

        if isinstance(image, BandStack):  # each band's own noise
            estimate = self._per_image("_rms_cache", image, (), lambda threads: image.map(
                lambda plane: estimate_rms_map(plane, n_threads=threads)))
            self.noise_note = ("no rms maps given: each band's noise was estimated from the band (median 1σ = "
                               + ", ".join(f"{n} {e.mesh.rms_median:.4g}" for n, e in zip(image.names, estimate.planes))
                               + ")")
            return estimate

        estimate = self._per_image("_rms_cache", image, (), lambda threads: estimate_rms_map(image, n_threads=threads))
        self.noise_note = ("no rms map given: the noise was estimated from the image "
                           f"(median 1σ = {estimate.mesh.rms_median:.4g})")
        return estimate

    def input_image(self, image):
        p = self.params
        if not p.subtract_background:
            return image
        box = int(p.background_box)
        from ..frames.bands import BandStack

        if isinstance(image, BandStack):  # each band less its own sky
            return self._per_image("_sky_cache", image, (box,), lambda threads: image.map(
                lambda plane: SkySubtracted(plane, estimate_mesh(plane, box, n_threads=threads))))
        return self._per_image("_sky_cache", image, (box,),
                               lambda threads: SkySubtracted(image, estimate_mesh(image, box, n_threads=threads)))

    def _per_image(self, slot: str, image, extra: tuple, make):
        """``make(n_threads)`` for ``image``, kept in ``slot`` for the next call on the same image
        (repeated field-of-view runs on one frame estimate its meshes once)."""
        key = (id(image), tuple(np.shape(image)), *extra)
        cached = getattr(self, slot)
        if cached is None or cached[0] != key or cached[1] is not image:
            cached = (key, image, make(self.run_options.n_threads or (os.cpu_count() or 1)))
            setattr(self, slot, cached)
        return cached[2]

    def drop_image_caches(self) -> None:
        """Forget the kept meshes (they hold the image): before a copy is sent elsewhere."""
        self._sky_cache = self._rms_cache = None

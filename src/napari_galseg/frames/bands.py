"""Several bands of one field combined into one detection image, lazily, window by window.

Two combinations, each per pixel over the bands with data there (sky subtracted per band, by the
same background mesh the photutils pipeline uses):

- ``"snr"``: the inverse-variance weighted sum, Σ fᵦ/σᵦ² / √(Σ 1/σᵦ²) — a signal-to-noise image
  with unit noise, the optimal detection image for a source of flat spectrum;
- ``"chi2"``: Szalay, Connolly & Szokoly's (1999) χ² = Σ (fᵦ/σᵦ)², which finds sources of any
  colour, made Gaussian by the Wilson–Hilferty transform z = ((χ²/n)^⅓ − (1 − 2/9n)) / √(2/9n)
  (n = bands with data at the pixel): its sky is then N(0, 1) like the S/N image's, so the
  pipeline's nσ threshold means the same false-detection rate for both.

Bands must be on the same pixel grid: a different shape or WCS is refused (reproject first).
"""
from __future__ import annotations

import numpy as np

COMBINATIONS = ("snr", "chi2")


class DetectionImage:
    """The combined detection image of ``bands`` (sky-subtracted array-likes) and their 1σ maps."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, bands, rms_maps, combination: str = "snr"):
        if combination not in COMBINATIONS:
            raise ValueError(f"unknown detection image {combination!r}: choose {' or '.join(COMBINATIONS)}")
        if len(bands) < 2 or len(bands) != len(rms_maps):
            raise ValueError("a detection image needs two or more bands, each with its noise map")
        self.bands, self.rms_maps, self.combination = list(bands), list(rms_maps), combination
        self.shape = tuple(int(s) for s in np.shape(bands[0]))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        from ..background import read_float32

        total = weight = None
        for band, rms in zip(self.bands, self.rms_maps):
            flux = read_float32(band, key).astype(np.float64)
            sigma = read_float32(rms, key).astype(np.float64)
            ok = np.isfinite(flux) & np.isfinite(sigma) & (sigma > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                if self.combination == "snr":
                    term, w = np.where(ok, flux / sigma ** 2, 0.0), np.where(ok, 1 / sigma ** 2, 0.0)
                else:  # χ² and the number of bands in it
                    term, w = np.where(ok, (flux / sigma) ** 2, 0.0), ok.astype(np.float64)
            total = term if total is None else total + term
            weight = w if weight is None else weight + w
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.combination == "snr":
                out = total / np.sqrt(weight)
            else:
                spread = 2.0 / (9.0 * weight)
                out = (np.cbrt(total / weight) - (1.0 - spread)) / np.sqrt(spread)
        out[weight == 0] = np.nan  # no band has data here
        return out.astype(np.float32)

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


def check_same_grid(frames, names) -> None:
    """Refuse bands of different shapes or WCS (compared at the corners to 0.01 px)."""
    first = frames[0]
    for frame, name in zip(frames[1:], names[1:]):
        if tuple(frame.shape) != tuple(first.shape):
            raise ValueError(f"band {name} has shape {tuple(frame.shape)} but band {names[0]} has {tuple(first.shape)}; "
                             "bands must share one pixel grid: reproject them first (e.g. the `reproject` package)")
        if (frame.wcs is None) != (first.wcs is None):
            raise ValueError(f"band {name} {'has no' if frame.wcs is None else 'has a'} WCS but band {names[0]} "
                             f"{'has one' if frame.wcs is None else 'has none'}; give bands of one pixel grid")
        if frame.wcs is not None:
            ny, nx = first.shape
            corners = np.array([[0, 0], [nx - 1, 0], [0, ny - 1], [nx - 1, ny - 1]], float)
            sky = first.wcs.pixel_to_world_values(corners[:, 0], corners[:, 1])
            back = np.column_stack(frame.wcs.world_to_pixel_values(*sky))
            shift = float(np.max(np.abs(back - corners)))
            if not shift < 0.01:
                raise ValueError(f"band {name}'s WCS differs from band {names[0]}'s by up to {shift:.3g} px; bands must "
                                 "share one pixel grid: reproject them first (e.g. the `reproject` package)")


def sky_subtracted(image, box_size: int = 64):
    """``image`` less its background mesh (lazy), and the mesh's rms map (for bands without one)."""
    from ..background import MeshMap, SkySubtracted, estimate_mesh

    mesh = estimate_mesh(image, box_size=box_size)
    return SkySubtracted(image, mesh), MeshMap(mesh, "rms")


def detection_image(images, rms_maps, combination: str = "snr") -> tuple[DetectionImage, list[bool]]:
    """The :class:`DetectionImage` of bands given as array-likes of one grid, each sky subtracted
    here; a band whose noise map is None gets its background mesh's rms. Returns the image and,
    per band, whether its noise was estimated (what the CLI and the photutils dock say)."""
    skies, sigmas, estimated = [], [], []
    for image, rms in zip(images, rms_maps):
        sky, mesh_rms = sky_subtracted(image)
        skies.append(sky)
        sigmas.append(rms if rms is not None else mesh_rms)
        estimated.append(rms is None)
    return DetectionImage(skies, sigmas, combination), estimated


#: filters from blue to red: how an RGB composite orders the bands it is given
FILTER_ORDER = ("u", "g", "r", "i", "z", "y", "j", "h", "k", "ks")
#: header cards that name a band's filter (HSC/LSST, DES, SDSS, HST)
FILTER_CARDS = ("FILTER", "BAND", "FILTNAM1", "FILTER1")


def filter_of(name: str, header=None) -> str | None:
    """The filter of a band (one of :data:`FILTER_ORDER`), or None: the header's FILTER/BAND card
    (``HSC-I``, ``g``, ``DECam r``), else a filter letter standing alone in the name
    (``field_g``, ``calexp-HSC-I``, ``tile.r.fits``)."""
    import re

    texts = [str(header.get(card, "")) for card in FILTER_CARDS if header is not None and card in header]
    texts.append(str(name))
    for text in texts:
        words = [w.lower() for w in re.split(r"[^A-Za-z]+", re.sub(r"\.(fits?|fts|fz|gz)$", "", text.strip(), flags=re.I)) if w]
        for word in reversed(words):  # the last word is the filter in 'HSC-I', 'field_g'
            if word in FILTER_ORDER:
                return word
    return None


def rgb_order(names, headers=None) -> list[int]:
    """Which of three bands goes to red, green and blue: by wavelength when every band's filter is
    known (the reddest is red), else as given (red, green, blue)."""
    if len(names) != 3:
        raise ValueError(f"an RGB composite takes three bands, got {len(names)}")
    filters = [filter_of(n, h) for n, h in zip(names, headers or [None] * 3)]
    if None in filters or len(set(filters)) < 3:
        return [0, 1, 2]
    return sorted(range(3), key=lambda i: -FILTER_ORDER.index(filters[i]))


def rgb_of_bands(planes, names, headers=None, wcs=None, Q: float = 8.0, stretch: float | None = None):
    """``(rgb, order)``: the lazy Lupton RGB (:func:`rgb_composite`) of three bands of one field,
    red to blue by filter (:func:`rgb_order`), and the bands' indices in that order. Bands of other
    shapes or WCS are refused (reproject first), as for detection."""
    from types import SimpleNamespace

    order = rgb_order(list(names), headers)
    frames = [SimpleNamespace(shape=tuple(np.shape(p)), wcs=(wcs or [None] * 3)[i]) for i, p in enumerate(planes)]
    if any(len(f.shape) != 2 for f in frames):
        raise ValueError("an RGB composite takes three 2-D bands; got shapes " + ", ".join(str(f.shape) for f in frames))
    check_same_grid(frames, list(names))
    return rgb_composite(*(planes[i] for i in order), Q=Q, stretch=stretch), order


def rgb_composite(red, green, blue, Q: float = 8.0, stretch: float | None = None):
    """A lazy (ny, nx, 3) uint8 Lupton asinh composite (astropy's ``make_lupton_rgb``) of three
    bands on one grid, block by block. Every parameter is fixed from a sample first — per band the
    sky level (median) is black and the same span above it is full scale (4× the brightest sampled
    pixel), ``stretch`` (data units) defaults to 20× the sky scatter of the mean intensity — so the
    asinh mapping acts pixel by pixel and blocks join without seams (astropy's default would scale
    each block by its own maximum)."""
    import dask.array as da
    from astropy.visualization import ManualInterval, make_lupton_rgb

    from ..background import direct_source, read_float32

    planes = [p if hasattr(p, "chunks") else da.from_array(p, chunks=2048) for p in (red, green, blue)]
    if len({tuple(p.shape) for p in planes}) != 1:
        raise ValueError("an RGB composite needs three bands of one shape")
    # a regular grid of pixels: the same sample however a band is chunked
    ny, nx = planes[0].shape
    step = max(1, int(np.sqrt(ny * nx / 20_000)))
    samples = [np.asarray(read_float32(direct_source(p), (slice(None, None, step), slice(None, None, step))),
                          np.float64).ravel() for p in planes]
    sky = [float(np.nanmedian(x)) for x in samples]
    above = [x - m for x, m in zip(samples, sky)]
    span = 4.0 * max(float(np.nanmax(a)) for a in above)
    if stretch is None:
        mean = np.nanmean(above, axis=0)
        scatter = 1.4826 * float(np.nanmedian(np.abs(mean - np.nanmedian(mean))))
        stretch = 20.0 * scatter if scatter > 0 else span / 100
    interval = [ManualInterval(vmin=m, vmax=m + span) for m in sky]

    def block(r, g, b):
        images = (np.nan_to_num(x.astype(np.float64), nan=m) for x, m in zip((r, g, b), sky))
        return make_lupton_rgb(*images, interval=interval, stretch=float(stretch) / span, Q=float(Q))

    return da.map_blocks(block, *planes, dtype=np.uint8, new_axis=2, chunks=planes[0].chunks + ((3,),))


class BandStack:
    """Several bands of one field as one input of a model that takes bands as channels: a 2-D pixel
    grid (``shape`` is the bands' (ny, nx)) whose windows are ``(bands, h, w)`` float32 arrays, read
    band by band — so the U-Net's tiles and the forest's tiles read every band of a window at once.
    ``planes`` are the bands' own 2-D array-likes (numpy, memmap, dask or lazy frames)."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, planes, names):
        self.planes, self.names = list(planes), tuple(str(n) for n in names)
        if len(self.planes) != len(self.names) or not self.planes:
            raise ValueError(f"{len(self.planes)} band image(s) but {len(self.names)} band name(s)")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"two bands have the same name ({', '.join(self.names)}): name each band once")
        shapes = [tuple(int(s) for s in np.shape(p)) for p in self.planes]
        for shape, name in zip(shapes, self.names):
            if len(shape) != 2 or shape != shapes[0]:
                raise ValueError(f"band {name} has shape {shape} but band {self.names[0]} has {shapes[0]}; bands "
                                 "must share one pixel grid: reproject them first (e.g. the `reproject` package)")
        self.shape = shapes[0]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        blocks = []
        for plane in self.planes:
            block = plane[key]
            if hasattr(block, "compute") and not isinstance(block, np.ndarray):
                block = block.compute(scheduler="sync")  # in this thread (see training.patches.read_window)
            blocks.append(np.asarray(block, dtype=np.float32))
        return np.stack(blocks)

    def map(self, function) -> BandStack:
        """The stack of ``function(plane)`` for each band, under the same names."""
        return BandStack([function(p) for p in self.planes], self.names)


def band_name(path, header=None) -> str:
    """A band's name: its header's FILTER (or BAND) card, else the file's name without .fits."""
    for card in ("FILTER", "BAND"):
        value = header.get(card) if header is not None else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    from pathlib import Path

    name = Path(path).name
    for suffix in (".fits.gz", ".fits.fz", ".fits", ".fit", ".fts", ".fz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def check_bands(model_bands, image, method: str = "this model") -> None:
    """Refuse, in one line, an input whose bands are not those the model was trained on (names and order)."""
    given = image.names if isinstance(image, BandStack) else None
    if model_bands is None and given is None:
        return
    wanted = ", ".join(model_bands) if model_bands else ""
    if given is None:
        raise ValueError(f"{method} was trained on {len(model_bands)} bands ({wanted}, in that order) but got one "
                         f"image: give every band, e.g. galseg segment ... {' '.join(f'{b}.fits' for b in model_bands)} "
                         "--bands")
    if model_bands is None:
        raise ValueError(f"{method} was trained on one image, not on bands: --bands needs a model trained on bands "
                         "(galseg train METHOD --bands ...)")
    if tuple(model_bands) != tuple(given):
        raise ValueError(f"{method} was trained on bands {wanted} (in that order) but got {', '.join(given)}: give the "
                         "same bands in the same order (a band's name is its FILTER card, else its file name)")

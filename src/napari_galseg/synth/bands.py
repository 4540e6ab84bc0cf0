"""One synthetic field seen in several bands: the same galaxies, each with its own colour, a PSF
and independent noise per band — for testing, training and measuring multi-band methods.

Two colour models:

- :func:`make_bands` (the detection benchmark's): each galaxy is bright (flux × 1) in one band
  chosen at random and ``faint`` × as bright in the others, so a galaxy can be near the threshold
  in every band but one. The truth is the first band's.
- :func:`make_band_field` (``galseg synth OUT --bands g,r,i``): two populations, red
  (mostly bulge-like, high Sérsic index) and blue (mostly disk-like), each galaxy with its own
  power-law SED f ∝ λ^α drawn from its population, normalised to 1 in its brightest band; the
  PSF FWHM scales as λ^-0.2 (seeing) and the sky (hence the noise) differs per band. Objects are
  those of the single-band generator (:func:`~napari_galseg.synth.make_field`), rendered band by
  band with their band's flux and an independent noise stream; the truth is each object's footprint
  at its brightest band's flux (the reference band's PSF and noise), shared by every band.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BandField:
    """``images[band]``, ``rms[band]`` (float32), the instance ``truth`` and each galaxy's
    brightest band (``favourite[id]``, an index into ``bands``)."""

    bands: tuple[str, ...]
    images: dict
    rms: dict
    truth: np.ndarray
    favourite: np.ndarray
    #: :func:`make_band_field` only: the objects with a flux per band, and each band's PSF FWHM (px)
    catalog: object = None
    psf_fwhm: dict | None = None
    seed: int = 0


def make_bands(size: int = 512, seed: int = 0, bands=("g", "r", "i"), faint: float = 0.25,
               psf_fwhm: dict | None = None, sky: float = 10.0) -> BandField:
    """The field of :func:`~napari_galseg.synth.make_field` (``size``, ``seed``) in ``bands``;
    ``psf_fwhm`` maps a band to its PSF FWHM in pixels (default: the field's for every band)."""
    from scipy import ndimage

    from .builtin import make_field

    bands = tuple(bands)
    if len(set(bands)) != len(bands) or not bands:
        raise ValueError(f"bands must be distinct names, got {bands}")
    rng = np.random.default_rng([int(seed), 28])
    images, rms, truth, favourite, owner = {}, {}, None, None, None
    for b, name in enumerate(bands):
        options = {"psf_fwhm": float(psf_fwhm[name])} if psf_fwhm and name in psf_fwhm else {}
        f = make_field(size, seed=seed, **options)
        if truth is None:
            truth = f.truth
            favourite = rng.integers(0, len(bands), int(truth.max()) + 1)
            _, (iy, ix) = ndimage.distance_transform_edt(truth == 0, return_indices=True)
            owner = truth[iy, ix]  # each pixel's light takes the colour of the nearest true galaxy
        scale = np.where(favourite == b, 1.0, float(faint))[owner]
        images[name] = (f.noiseless * scale + rng.normal(0.0, 1.0, f.image.shape) * f.rms + sky).astype(np.float32)
        rms[name] = f.rms
    return BandField(bands, images, rms, truth, favourite)


#: central wavelengths (nm) of the bands :func:`make_band_field` knows (SDSS/LSST-like filters)
WAVELENGTH_NM = {"u": 365.0, "g": 480.0, "r": 620.0, "i": 760.0, "z": 900.0, "y": 1000.0}
#: sky level (electrons per pixel per unit exposure) per band: the sky is brighter in the red
SKY_LEVEL = {"u": 60.0, "g": 120.0, "r": 200.0, "i": 300.0, "z": 420.0, "y": 500.0}
#: the band whose PSF FWHM ``psf_fwhm=<number>`` gives (the others scale as λ^-0.2)
REFERENCE_BAND = "r"
#: spectral slope α of f_ν ∝ λ^α per population (mean, spread): red galaxies brighten to the red
POPULATIONS = {"red": (3.0, 0.6), "blue": (-2.0, 0.6)}


def parse_bands(text) -> tuple[str, ...]:
    """``"g,r,i"`` (or a sequence) → ``("g", "r", "i")``; unknown or repeated names are refused."""
    names = [b.strip() for b in (text.split(",") if isinstance(text, str) else text)]
    if not names or any(not b for b in names):
        raise ValueError(f"bands must be names separated by commas, like g,r,i; got {text!r}")
    unknown = [b for b in names if b not in WAVELENGTH_NM]
    if unknown:
        raise ValueError(f"unknown band(s) {', '.join(unknown)}: choose among {', '.join(WAVELENGTH_NM)}")
    repeated = sorted({b for b in names if names.count(b) > 1})
    if repeated:
        raise ValueError(f"band(s) {', '.join(repeated)} given twice: each band once, like g,r,i")
    return tuple(names)


def band_psf_fwhm(bands, psf_fwhm=None) -> dict[str, float]:
    """Each band's PSF FWHM (px): ``psf_fwhm`` a number (the reference band's, others scaled as
    λ^-0.2 like seeing), a mapping band → FWHM (bands left out scaled from the reference), or None
    (2.5 px in the reference band)."""
    given = dict(psf_fwhm) if isinstance(psf_fwhm, dict) else {}
    extra = sorted(set(given) - set(bands))
    if extra:
        raise ValueError(f"a PSF FWHM is given for band(s) {', '.join(extra)} that are not among {', '.join(bands)}")
    reference = float(psf_fwhm) if psf_fwhm is not None and not isinstance(psf_fwhm, dict) else 2.5
    out = {}
    for b in bands:
        fwhm = float(given.get(b, reference * (WAVELENGTH_NM[b] / WAVELENGTH_NM[REFERENCE_BAND]) ** -0.2))
        if not 0.5 <= fwhm <= 50:
            raise ValueError(f"PSF FWHM of band {b} must be between 0.5 and 50 px, got {fwhm:g}")
        out[b] = fwhm
    return out


def _seds(cat: dict, bands, rng) -> tuple[np.ndarray, np.ndarray]:
    """Each object's flux ratio per band (max 1) and its population (red, blue or star)."""
    n = len(cat["flux"])
    star = cat["is_star"]
    # bulge-like galaxies (Sérsic n ≥ 2) are mostly red, disk-like ones mostly blue
    red = rng.random(n) < np.where(cat["sersic_n"] >= 2.0, 0.75, 0.2)
    alpha = np.where(red, rng.normal(*POPULATIONS["red"], n), rng.normal(*POPULATIONS["blue"], n))
    alpha = np.where(star, rng.uniform(-2.0, 3.0, n), alpha)
    lam = np.array([WAVELENGTH_NM[b] for b in bands]) / WAVELENGTH_NM[REFERENCE_BAND]
    sed = lam[None, :] ** alpha[:, None]
    sed /= sed.max(axis=1, keepdims=True)
    population = np.where(star, "star", np.where(red, "red", "blue"))
    return sed, population


def make_band_field(size: int = 512, seed: int = 0, bands=("g", "r", "i"), psf_fwhm=None,
                    **options) -> BandField:
    """A field of the single-band generator seen in ``bands`` with per-galaxy colours (see the
    module docstring); ``psf_fwhm`` as in :func:`band_psf_fwhm`, ``options`` override
    :class:`~napari_galseg.synth.FieldOptions` (``galaxy_density=…``) in every band."""
    import dataclasses

    from .builtin import FieldOptions, _Renderer

    bands = parse_bands(bands)
    fwhm = band_psf_fwhm(bands, psf_fwhm)
    if "psf_fwhm" in options or "sky_level" in options:
        raise ValueError("the PSF and the sky are set per band: give psf_fwhm= (a number or band → FWHM)")
    shape = (size, size) if np.isscalar(size) else tuple(size)
    base = dataclasses.replace(FieldOptions(), **options)
    reference = REFERENCE_BAND if REFERENCE_BAND in bands else bands[len(bands) // 2]
    truth_opt = dataclasses.replace(base, psf_fwhm=fwhm[reference], sky_level=SKY_LEVEL[reference])
    truth_renderer = _Renderer(shape, seed, truth_opt)
    sed, population = _seds(truth_renderer.cat, bands, np.random.default_rng([int(seed), 0xC010]))
    truth = np.empty(shape, np.int32)
    for y0, y1, x0, x1 in truth_renderer.blocks():
        truth[y0:y1, x0:x1] = truth_renderer.render(y0, y1, x0, x1)["truth"]
    images, rms = {}, {}
    for b, name in enumerate(bands):
        opt = dataclasses.replace(base, psf_fwhm=fwhm[name], sky_level=SKY_LEVEL[name])
        renderer = _Renderer(shape, seed, opt, noise_key=(b + 1,))
        renderer.cat["flux"] = truth_renderer.cat["flux"] * sed[:, b]
        images[name], rms[name] = np.empty(shape, np.float32), np.empty(shape, np.float32)
        for y0, y1, x0, x1 in renderer.blocks():
            block = renderer.render(y0, y1, x0, x1)
            images[name][y0:y1, x0:x1] = block["image"]
            rms[name][y0:y1, x0:x1] = block["rms"]
    catalog = truth_renderer.catalog()
    catalog["flux"].description = "total noiseless flux in the object's brightest band (image units)"
    catalog["population"] = population
    catalog["population"].description = "red or blue galaxy (its SED slope drawn from that population), or star"
    for b, name in enumerate(bands):
        catalog[f"flux_{name}"] = truth_renderer.cat["flux"] * sed[:, b]
        catalog[f"flux_{name}"].description = f"total noiseless flux in band {name} (image units)"
    catalog.meta.update({"bands": list(bands), "psf_fwhm": fwhm, "reference_band": reference,
                         "sky_level": {b: SKY_LEVEL[b] for b in bands}})
    return BandField(bands, images, rms, truth, np.concatenate([[0], np.argmax(sed, axis=1)]), catalog, fwhm,
                     int(seed))


def band_files(bands) -> dict[str, str]:
    """The file names of a multi-band field: img_<band>.fits, rms_<band>.fits, true.fits, catalog.ecsv."""
    files = {}
    for b in bands:
        files[f"image_{b}"], files[f"rms_{b}"] = f"img_{b}.fits", f"rms_{b}.fits"
    return {**files, "truth": "true.fits", "catalog": "catalog.ecsv"}


def write_band_field(out_dir, size: int = 512, seed: int = 0, bands=("g", "r", "i"), psf_fwhm=None,
                     overwrite: bool = False, **options) -> dict:
    """:func:`make_band_field` written to ``out_dir`` (atomically; existing files refused unless
    ``overwrite``): the paths by role (``image_g``, ``rms_g``, …, ``truth``, ``catalog``)."""
    import dataclasses
    from contextlib import ExitStack
    from pathlib import Path

    from astropy.io import fits

    from .._atomic import atomic_path
    from .builtin import FieldOptions, field_header

    bands = parse_bands(bands)
    out_dir = Path(out_dir)
    targets = {role: out_dir / name for role, name in band_files(bands).items()}
    if not overwrite:
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing:
            raise FileExistsError(f"{', '.join(existing)} already exist; pick an empty folder or pass --overwrite")
    field = make_band_field(size, seed, bands, psf_fwhm, **options)
    out_dir.mkdir(parents=True, exist_ok=True)
    opt = dataclasses.replace(FieldOptions(), **options)
    shape = field.truth.shape
    with ExitStack() as stack:
        for b in bands:
            header = field_header(shape, seed, dataclasses.replace(opt, psf_fwhm=field.psf_fwhm[b]))
            header["FILTER"] = (b, "band")
            for role, data, content in ((f"image_{b}", field.images[b], "image"), (f"rms_{b}", field.rms[b], "rms")):
                h = header.copy()
                h["CONTENT"] = content
                fits.PrimaryHDU(data, h).writeto(stack.enter_context(atomic_path(targets[role], overwrite=overwrite)))
        header = field_header(shape, seed, opt)
        header["CONTENT"] = ("segmentation", "true labels of every band, 0 = sky")
        header["BANDS"] = (",".join(bands), "bands of the field")
        fits.PrimaryHDU(field.truth, header).writeto(stack.enter_context(atomic_path(targets["truth"], overwrite=overwrite)))
        field.catalog.write(stack.enter_context(atomic_path(targets["catalog"], overwrite=overwrite)), format="ascii.ecsv")
    return targets

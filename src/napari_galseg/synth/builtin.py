"""Synthetic galaxy fields with exact truth, at any size up to survey frames.

A field is: Sérsic galaxies and point sources, convolved with a Moffat (or Gaussian) PSF, on a sky
with a gradient, observed with Poisson + read noise under a smoothly varying exposure (depth) map.

Outputs, all deterministic for a given seed and size:

- ``image``  — observed pixels (sky included), float32, flux units per unit exposure;
- ``rms``    — per-pixel background noise (sky + read noise; what a survey's rms map holds), float32;
- ``truth``  — int32 instance map: each pixel belongs to the object with the largest *noiseless*
  flux there, if that flux exceeds ``truth_fraction`` × the local rms; 0 = sky;
- ``catalog`` — one row per true object (position, flux, shape, kind, truth area).

Rendering runs block by block (``BLOCK`` px squares, each with its own random stream keyed by its
position), so a 25000² field streams to FITS holding only a few blocks of float64 in memory, and a
field made in memory equals the same field written to disk.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import special
from scipy.signal import fftconvolve

#: side of the blocks the field is rendered in; part of the definition of a field (noise streams)
BLOCK = 1024


@dataclass(frozen=True)
class FieldOptions:
    """What a synthetic field looks like. Defaults resemble a deep ground-based optical survey."""

    #: galaxies per million pixels (a power-law flux distribution: most are faint and small)
    galaxy_density: float = 700.0
    #: point sources per million pixels
    star_density: float = 30.0
    #: faintest and brightest total galaxy flux, and the slope of dN/dF ∝ F^-slope
    flux_min: float = 150.0
    flux_max: float = 2.0e6
    flux_slope: float = 1.8
    #: effective radius (px) of a galaxy of flux ``size_flux_pivot``; r_eff ∝ F^size_flux_index
    size_pivot: float = 1.8
    size_flux_pivot: float = 300.0
    size_flux_index: float = 0.28
    size_scatter_dex: float = 0.15
    sersic_n_range: tuple[float, float] = (0.5, 4.0)
    axis_ratio_range: tuple[float, float] = (0.25, 1.0)
    star_flux_min: float = 300.0
    star_flux_max: float = 5.0e6
    star_flux_slope: float = 1.7
    #: PSF: "moffat" (beta 3) or "gaussian", FWHM in px
    psf: str = "moffat"
    psf_fwhm: float = 2.5
    moffat_beta: float = 3.0
    #: sky in electrons per pixel per unit exposure, its relative linear gradient across the field
    sky_level: float = 200.0
    sky_gradient: float = 0.08
    read_noise: float = 5.0
    #: relative exposure varies smoothly between 1 - depth_variation and 1 + depth_variation
    depth_variation: float = 0.45
    #: a truth pixel needs noiseless flux above this fraction of the local rms
    truth_fraction: float = 0.5
    #: world coordinates of the field centre and the pixel scale (a TAN projection)
    ra_center: float = 150.1
    dec_center: float = 2.2
    pixel_scale_arcsec: float = 0.2


@dataclass
class SyntheticField:
    """A synthetic field held in memory (see :func:`make_field`)."""

    image: np.ndarray
    rms: np.ndarray
    truth: np.ndarray
    noiseless: np.ndarray
    catalog: astropy.table.Table  # noqa: F821
    seed: int
    options: FieldOptions = field(default_factory=FieldOptions)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape

    def header(self) -> astropy.io.fits.Header:  # noqa: F821
        return field_header(self.shape, self.seed, self.options)


# ------------------------------------------------------------------------------------------------
# catalog of true objects


def _object_catalog(shape: tuple[int, int], seed: int, opt: FieldOptions) -> dict[str, np.ndarray]:
    """Draw every object of the field (positions, fluxes, shapes) from one seeded stream."""
    ny, nx = shape
    rng = np.random.default_rng([seed, 0x5EED])
    mpix = nx * ny / 1e6
    n_gal = rng.poisson(opt.galaxy_density * mpix)
    n_star = rng.poisson(opt.star_density * mpix)

    def power_law(n, lo, hi, slope):
        # inverse-CDF sampling of dN/dF ∝ F^-slope between lo and hi
        a = 1.0 - slope
        u = rng.random(n)
        return (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)

    g_flux = power_law(n_gal, opt.flux_min, opt.flux_max, opt.flux_slope)
    g_reff = (
        opt.size_pivot
        * (g_flux / opt.size_flux_pivot) ** opt.size_flux_index
        * 10 ** rng.normal(0.0, opt.size_scatter_dex, n_gal)
    )
    g_reff = np.clip(g_reff, 0.6, 60.0)
    g_n = rng.uniform(*opt.sersic_n_range, n_gal)
    g_q = rng.uniform(*opt.axis_ratio_range, n_gal)
    g_theta = rng.uniform(0, np.pi, n_gal)
    s_flux = power_law(n_star, opt.star_flux_min, opt.star_flux_max, opt.star_flux_slope)

    n = n_gal + n_star
    cat = {
        "x": rng.uniform(-0.5, nx - 0.5, n),
        "y": rng.uniform(-0.5, ny - 0.5, n),
        "flux": np.concatenate([g_flux, s_flux]),
        "r_eff": np.concatenate([g_reff, np.zeros(n_star)]),
        "sersic_n": np.concatenate([g_n, np.zeros(n_star)]),
        "q": np.concatenate([g_q, np.ones(n_star)]),
        "theta": np.concatenate([g_theta, np.zeros(n_star)]),
        "is_star": np.concatenate([np.zeros(n_gal, bool), np.ones(n_star, bool)]),
    }
    # brightest first: ids then say something, and large stamps are rendered once per block early
    order = np.argsort(-cat["flux"], kind="stable")
    cat = {k: v[order] for k, v in cat.items()}
    cat["id"] = np.arange(1, n + 1, dtype=np.int32)
    cat["radius"] = _stamp_radius(cat, opt)
    return cat


def _sersic_bn(n: np.ndarray | float) -> np.ndarray:
    """b_n such that r_eff encloses half the light of a Sérsic profile."""
    return special.gammaincinv(2.0 * np.asarray(n), 0.5)


def _sersic_ie(flux, r_eff, n, q):
    """Surface brightness at r_eff for a Sérsic profile of total ``flux``."""
    bn = _sersic_bn(n)
    return flux * bn ** (2 * n) / (2 * np.pi * q * r_eff**2 * n * np.exp(bn) * special.gamma(2 * n))


def _moffat_alpha(opt: FieldOptions) -> float:
    return opt.psf_fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / opt.moffat_beta) - 1.0))


def _stamp_radius(cat: dict[str, np.ndarray], opt: FieldOptions) -> np.ndarray:
    """Half-size of each object's stamp: out to where its profile falls below ~1 % of the faintest rms."""
    floor = 0.01 * math.sqrt(opt.sky_level * (1 - opt.depth_variation) + opt.read_noise**2) / (1 + opt.depth_variation)
    psf_pad = 2.0 * opt.psf_fwhm
    radius = np.empty(len(cat["flux"]))
    gal = ~cat["is_star"]
    n, re, q, f = cat["sersic_n"][gal], cat["r_eff"][gal], cat["q"][gal], cat["flux"][gal]
    ie = _sersic_ie(f, re, n, q)
    bn = _sersic_bn(n)
    ratio = np.maximum(np.log(np.maximum(ie / floor, 1.0)) / bn + 1.0, 1.0)
    radius[gal] = np.minimum(re * ratio**n, 8.0 * re) + psf_pad
    # Moffat: I(r) = F (beta-1)/(pi alpha^2) (1 + (r/alpha)^2)^-beta  < floor
    alpha, beta = _moffat_alpha(opt), opt.moffat_beta
    i0 = cat["flux"][~gal] * (beta - 1) / (np.pi * alpha**2)
    radius[~gal] = alpha * np.sqrt(np.maximum((i0 / floor) ** (1 / beta) - 1.0, 1.0))
    return np.clip(np.ceil(radius), 6, 600).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# rendering


def psf_kernel(opt: FieldOptions) -> np.ndarray:
    """The PSF on the pixel grid (odd size, unit sum), oversampled ×5 then binned."""
    half = int(math.ceil(3.0 * opt.psf_fwhm)) + 2
    os_ = 5
    coords = (np.arange(-half * os_, (half + 1) * os_) + 0.5 - os_ / 2) / os_
    coords = coords[: (2 * half + 1) * os_]
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    r2 = xx**2 + yy**2
    if opt.psf == "moffat":
        alpha = _moffat_alpha(opt)
        prof = (1.0 + r2 / alpha**2) ** (-opt.moffat_beta)
    elif opt.psf == "gaussian":
        sigma = opt.psf_fwhm / 2.3548200450309493
        prof = np.exp(-0.5 * r2 / sigma**2)
    else:
        raise ValueError(f"unknown PSF {opt.psf!r}; use 'moffat' or 'gaussian'")
    k = prof.reshape(2 * half + 1, os_, 2 * half + 1, os_).sum(axis=(1, 3))
    return k / k.sum()


def _render_stamp(i: int, cat: dict[str, np.ndarray], opt: FieldOptions, psf: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Noiseless, PSF-convolved image of object ``i``; returns (stamp, y0, x0) of its corner."""
    r = int(cat["radius"][i])
    xc, yc = cat["x"][i], cat["y"][i]
    ix, iy = int(round(xc)), int(round(yc))
    size = 2 * r + 1
    if cat["is_star"][i]:
        # a point source is the PSF itself, shifted to its sub-pixel position
        os_ = 3
        off = (np.arange(size * os_) + 0.5) / os_ - 0.5 - r
        dx, dy = xc - ix, yc - iy
        yy, xx = np.meshgrid(off - dy, off - dx, indexing="ij")
        r2 = xx**2 + yy**2
        if opt.psf == "moffat":
            prof = (1.0 + r2 / _moffat_alpha(opt) ** 2) ** (-opt.moffat_beta)
        else:
            prof = np.exp(-0.5 * r2 / (opt.psf_fwhm / 2.3548200450309493) ** 2)
        stamp = prof.reshape(size, os_, size, os_).sum(axis=(1, 3))
    else:
        re, n, q, th = cat["r_eff"][i], cat["sersic_n"][i], cat["q"][i], cat["theta"][i]
        os_ = 5 if re < 3 else (3 if re < 8 else 1)  # the centre of a small galaxy needs sub-pixels
        off = (np.arange(size * os_) + 0.5) / os_ - 0.5 - r
        yy, xx = np.meshgrid(off - (yc - iy), off - (xc - ix), indexing="ij")
        c, s = math.cos(th), math.sin(th)
        xm = xx * c + yy * s
        ym = -xx * s + yy * c
        rad = np.sqrt(xm**2 + (ym / q) ** 2)
        rmax = r - 2.0 * opt.psf_fwhm
        prof = np.exp(-_sersic_bn(n) * ((rad / re) ** (1.0 / n) - 1.0))
        prof[rad > max(rmax, re)] = 0.0
        if os_ > 1:
            prof = prof.reshape(size, os_, size, os_).sum(axis=(1, 3))
        stamp = fftconvolve(prof, psf, mode="same")
        np.maximum(stamp, 0.0, out=stamp)
    total = stamp.sum()
    stamp *= cat["flux"][i] / total if total > 0 else 0.0
    return stamp, iy - r, ix - r


def _exposure(yy: np.ndarray, xx: np.ndarray, shape, seed: int, opt: FieldOptions) -> np.ndarray:
    """Smooth relative exposure map (depth variation), evaluated analytically anywhere."""
    rng = np.random.default_rng([seed, 0xDE97])
    ny, nx = shape
    scale = max(ny, nx)
    acc = np.zeros(np.broadcast_shapes(yy.shape, xx.shape))
    for _ in range(4):
        kx, ky = rng.uniform(0.5, 2.5, 2) * 2 * np.pi / scale
        phase = rng.uniform(0, 2 * np.pi)
        acc += np.cos(kx * xx + ky * yy + phase)
    return 1.0 + opt.depth_variation * acc / 4.0


def _sky(yy, xx, shape, seed: int, opt: FieldOptions) -> np.ndarray:
    """Sky in electrons per unit exposure: a level with a linear gradient in a seeded direction."""
    rng = np.random.default_rng([seed, 0x5C1])
    ang = rng.uniform(0, 2 * np.pi)
    ny, nx = shape
    u = (np.cos(ang) * (xx / max(nx - 1, 1) - 0.5) + np.sin(ang) * (yy / max(ny - 1, 1) - 0.5))
    return opt.sky_level * (1.0 + opt.sky_gradient * u)


class _Renderer:
    """Renders blocks of a field; holds the catalog and the PSF, not the pixels."""

    def __init__(self, shape: tuple[int, int], seed: int, opt: FieldOptions, noise_key: tuple[int, ...] = ()):
        self.noise_key = tuple(int(k) for k in noise_key)  # another noise stream over the same objects (bands)
        self.shape = (int(shape[0]), int(shape[1]))
        if min(self.shape) < 16:
            raise ValueError(f"a synthetic field needs at least 16 px a side, got {self.shape}")
        self.seed, self.opt = int(seed), opt
        self.cat = _object_catalog(self.shape, self.seed, opt)
        self.psf = psf_kernel(opt)
        r = self.cat["radius"]
        self._bbox = (
            np.round(self.cat["y"]).astype(np.int64) - r,
            np.round(self.cat["y"]).astype(np.int64) + r + 1,
            np.round(self.cat["x"]).astype(np.int64) - r,
            np.round(self.cat["x"]).astype(np.int64) + r + 1,
        )
        self.truth_area = np.zeros(len(r) + 1, dtype=np.int64)

    def blocks(self) -> Iterator[tuple[int, int, int, int]]:
        ny, nx = self.shape
        for y0 in range(0, ny, BLOCK):
            for x0 in range(0, nx, BLOCK):
                yield y0, min(y0 + BLOCK, ny), x0, min(x0 + BLOCK, nx)

    def render(self, y0: int, y1: int, x0: int, x1: int) -> dict[str, np.ndarray]:
        """Image, rms, truth and noiseless flux of one block (which must be a BLOCK-grid cell)."""
        opt = self.opt
        h, w = y1 - y0, x1 - x0
        noiseless = np.zeros((h, w))
        best = np.zeros((h, w))
        best_id = np.zeros((h, w), dtype=np.int32)
        by0, by1, bx0, bx1 = self._bbox
        hits = np.nonzero((by0 < y1) & (by1 > y0) & (bx0 < x1) & (bx1 > x0))[0]
        for i in hits:
            stamp, sy, sx = _render_stamp(int(i), self.cat, opt, self.psf)
            ya, yb = max(sy, y0), min(sy + stamp.shape[0], y1)
            xa, xb = max(sx, x0), min(sx + stamp.shape[1], x1)
            if ya >= yb or xa >= xb:
                continue
            part = stamp[ya - sy : yb - sy, xa - sx : xb - sx]
            region = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
            noiseless[region] += part
            brighter = part > best[region]
            best[region][brighter] = part[brighter]
            best_id[region][brighter] = self.cat["id"][i]

        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        exposure = _exposure(yy, xx, self.shape, self.seed, opt)
        sky = _sky(yy, xx, self.shape, self.seed, opt)
        rms = np.sqrt(sky * exposure + opt.read_noise**2) / exposure
        rng = np.random.default_rng([self.seed, y0 // BLOCK, x0 // BLOCK, *self.noise_key])
        electrons = rng.poisson((sky + np.maximum(noiseless, 0.0)) * exposure).astype(np.float64)
        electrons += rng.normal(0.0, opt.read_noise, (h, w))
        image = electrons / exposure

        truth = np.where(best > opt.truth_fraction * rms, best_id, 0).astype(np.int32)
        self.truth_area += np.bincount(truth.ravel(), minlength=len(self.truth_area))[: len(self.truth_area)]
        return {
            "image": image.astype(np.float32),
            "rms": rms.astype(np.float32),
            "truth": truth,
            "noiseless": noiseless.astype(np.float32),
        }

    def catalog(self) -> astropy.table.Table:  # noqa: F821
        from astropy.table import Table

        cat = self.cat
        wcs = field_wcs(self.shape, self.opt)
        ra, dec = wcs.wcs_pix2world(cat["x"], cat["y"], 0)
        table = Table(
            {
                "id": cat["id"],
                "x": cat["x"],
                "y": cat["y"],
                "ra": ra,
                "dec": dec,
                "flux": cat["flux"],
                "r_eff": cat["r_eff"],
                "sersic_n": cat["sersic_n"],
                "q": cat["q"],
                "theta": cat["theta"],
                "kind": np.where(cat["is_star"], "star", "galaxy"),
                "truth_area": self.truth_area[1:],
            }
        )
        table["x"].description = "column of the centre, 0-based pixels"
        table["y"].description = "row of the centre, 0-based pixels"
        table["flux"].description = "total noiseless flux (image units)"
        table["r_eff"].description = "Sersic half-light radius along the major axis, px (0 for stars)"
        table["theta"].description = "major-axis angle from +x towards +y, radians"
        table["truth_area"].description = "pixels the object owns in true.fits"
        table.meta.update(
            {"seed": self.seed, "shape": list(self.shape), "options": dataclasses.asdict(self.opt)}
        )
        return table


# ------------------------------------------------------------------------------------------------
# public API


def field_wcs(shape: tuple[int, int], opt: FieldOptions = FieldOptions()):
    """A TAN WCS centred on the field, north up, east left."""
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    w.wcs.crval = [opt.ra_center, opt.dec_center]
    scale = opt.pixel_scale_arcsec / 3600.0
    w.wcs.cdelt = [-scale, scale]
    w.wcs.cunit = ["deg", "deg"]
    return w


def field_header(shape, seed: int, opt: FieldOptions = FieldOptions()):
    """FITS header (WCS and provenance) shared by a field's img, rms and true files."""
    header = field_wcs(shape, opt).to_header()
    header["ORIGIN"] = ("napari-galseg synth", "synthetic galaxy field")
    header["SYNSEED"] = (int(seed), "seed of napari_galseg.synth")
    header["PSFFWHM"] = (opt.psf_fwhm, "PSF FWHM [px]")
    header["PSFTYPE"] = (opt.psf, "PSF profile")
    return header


def make_field(size: int | tuple[int, int] = 512, seed: int = 0, **options) -> SyntheticField:
    """Make a synthetic field in memory (use :func:`write_field` for frames that do not fit).

    ``size`` is the side of a square field or a ``(ny, nx)`` shape; ``options`` override
    :class:`FieldOptions` fields (e.g. ``psf_fwhm=3.0``, ``galaxy_density=100``).
    """
    shape = (size, size) if np.isscalar(size) else tuple(size)
    opt = dataclasses.replace(FieldOptions(), **options)
    renderer = _Renderer(shape, seed, opt)
    out = {
        "image": np.empty(shape, np.float32),
        "rms": np.empty(shape, np.float32),
        "truth": np.empty(shape, np.int32),
        "noiseless": np.empty(shape, np.float32),
    }
    for y0, y1, x0, x1 in renderer.blocks():
        for key, block in renderer.render(y0, y1, x0, x1).items():
            out[key][y0:y1, x0:x1] = block
    return SyntheticField(catalog=renderer.catalog(), seed=int(seed), options=opt, **out)


FIELD_FILES = {"image": "img.fits", "rms": "rms.fits", "truth": "true.fits"}


def write_field(
    out_dir: str | os.PathLike,
    size: int | tuple[int, int] = 2048,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    **options,
) -> dict[str, Path]:
    """Stream a synthetic field to ``out_dir`` as img.fits, rms.fits, true.fits and catalog.ecsv.

    Blocks are rendered one at a time into memory-mapped files, so memory stays at a few blocks
    whatever the size. Files appear atomically (temporary names, renamed at the end); existing
    files are refused unless ``overwrite``.
    """
    from astropy.io import fits

    from .._atomic import atomic_path

    shape = (size, size) if np.isscalar(size) else tuple(size)
    opt = dataclasses.replace(FieldOptions(), **options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {k: out_dir / v for k, v in FIELD_FILES.items()}
    targets["catalog"] = out_dir / "catalog.ecsv"
    if not overwrite:
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing:
            raise FileExistsError(f"{', '.join(existing)} already exist; pick an empty folder or pass --overwrite")

    renderer = _Renderer(shape, seed, opt)
    base = field_header(shape, seed, opt)
    kinds = {
        "image": (np.float32, "image", "observed image (sky included)"),
        "rms": (np.float32, "rms", "background noise rms per pixel"),
        "truth": (np.int32, "segmentation", "true instance labels, 0 = sky"),
    }
    from contextlib import ExitStack

    with ExitStack() as stack:
        tmp_paths = {k: stack.enter_context(atomic_path(targets[k], overwrite=overwrite)) for k in FIELD_FILES}
        arrays = {}
        for key, tmp in tmp_paths.items():
            dtype, content, comment = kinds[key]
            header = _preallocate_fits(tmp, shape, dtype, base)
            hdul = stack.enter_context(fits.open(tmp, mode="update", memmap=True))
            hdul[0].header["CONTENT"] = (content, comment)
            hdul[0].header.update({k: header[k] for k in base})
            arrays[key] = hdul[0].data
        blocks = list(renderer.blocks())
        for n, (y0, y1, x0, x1) in enumerate(blocks):
            rendered = renderer.render(y0, y1, x0, x1)
            for key, arr in arrays.items():
                arr[y0:y1, x0:x1] = rendered[key]
            if progress:
                progress(n + 1, len(blocks), f"block {n + 1}/{len(blocks)}")
        del arrays
        with atomic_path(targets["catalog"], overwrite=overwrite) as tmp:
            renderer.catalog().write(tmp, format="ascii.ecsv")
    return targets


def _preallocate_fits(path: Path, shape, dtype, base_header):
    """Create a FITS file of the right size without holding its data: header, then a sparse tail."""
    from astropy.io import fits

    header = fits.PrimaryHDU(data=np.zeros((1, 1), dtype=dtype)).header
    header["NAXIS1"], header["NAXIS2"] = shape[1], shape[0]
    header.update(base_header)
    header.tofile(path)
    nbytes = shape[0] * shape[1] * np.dtype(dtype).itemsize
    padded = ((nbytes + 2879) // 2880) * 2880
    with open(path, "rb+") as fh:
        fh.seek(len(header.tostring()) + padded - 1)
        fh.write(b"\0")
    return header

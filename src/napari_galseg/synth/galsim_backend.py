"""Synthetic galaxy fields made by GalSim, the field's standard simulator (optional extra ``galsim``).

Quality numbers measured only on fields of our own generator (:mod:`napari_galseg.synth`) could be
tuned to its quirks. This backend draws fields the way weak-lensing image simulations do:

- galaxies are a **bulge + disk**: an exponential disk and a de Vaucouleurs bulge (Sérsic 1 and 4)
  with a bulge fraction between 0 and 1 (most galaxies disk-dominated), the bulge smaller than the
  disk, sheared to an axis ratio drawn from a Rayleigh ellipticity distribution and rotated;
- **sizes and fluxes**: fluxes from a power law (many faint, few bright), half-light radii growing
  with flux with a log-normal scatter (a size–magnitude relation);
- **blends**: a fraction of the galaxies (``blend_fraction``) is placed as a close companion of
  another, one to three half-light radii away;
- point sources (stars) drawn as the PSF;
- the **PSF** is a Moffat (``psf="moffat"``, β = ``moffat_beta``) or a Kolmogorov profile
  (``psf="kolmogorov"``: atmospheric seeing, broader wings than a Gaussian core suggests), of
  FWHM ``psf_fwhm`` pixels; GalSim integrates every profile over the pixel;
- sky with a gradient, Poisson and read noise under a smoothly varying exposure map — the same
  noise model and **exact truth** definition as the built-in generator: a pixel belongs to the
  object with the largest noiseless flux there if that flux exceeds ``truth_fraction`` × the rms.

Outputs are those of :func:`napari_galseg.synth.make_field` / ``write_field``: image, rms, truth,
noiseless and a catalog (id, x, y, ra, dec, flux, r_eff = half-light radius, bulge_fraction, q,
theta, kind, morphology, truth_area). Rendering is in memory, one postage stamp per object: meant for evaluation
fields up to a few thousand pixels a side (a 2048² field of ~3000 galaxies takes tens of seconds).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .builtin import FIELD_FILES, FieldOptions, SyntheticField, _exposure, _sky, field_header, field_wcs

PSFS = ("moffat", "kolmogorov")


@dataclass(frozen=True)
class GalSimOptions:
    """What a GalSim field looks like (defaults: a ground-based survey with ~0.8" seeing)."""

    galaxy_density: float = 600.0
    star_density: float = 25.0
    #: total galaxy flux range and the slope of dN/dF ∝ F^-slope
    flux_min: float = 200.0
    flux_max: float = 1.0e6
    flux_slope: float = 1.9
    #: disk half-light radius (px) at flux ``size_flux_pivot``, ∝ F^size_flux_index, log-normal scatter
    size_pivot: float = 2.0
    size_flux_pivot: float = 500.0
    size_flux_index: float = 0.3
    size_scatter_dex: float = 0.2
    #: bulge half-light radius as a fraction of the disk's
    bulge_size_ratio: float = 0.4
    #: rms of each ellipticity component (|e| capped at 0.8)
    ellipticity_sigma: float = 0.25
    #: fraction of galaxies placed next to another one (blends)
    blend_fraction: float = 0.15
    star_flux_min: float = 300.0
    star_flux_max: float = 3.0e6
    star_flux_slope: float = 1.7
    psf: str = "moffat"
    psf_fwhm: float = 3.0
    moffat_beta: float = 3.5
    #: PSF ellipticity (1 - b/a), along x
    psf_ellipticity: float = 0.0
    sky_level: float = 200.0
    sky_gradient: float = 0.05
    read_noise: float = 5.0
    depth_variation: float = 0.3
    truth_fraction: float = 0.5
    ra_center: float = 150.1
    dec_center: float = 2.2
    pixel_scale_arcsec: float = 0.2
    #: fractions of the galaxies drawn with each morphology beyond the smooth bulge + disk (the
    #: rest): "knotty" (a disk whose light is partly in RandomKnots star-forming clumps, its bulge
    #: off-centre), "irregular" (a few offset clumps and knots, no bulge: lopsided, no symmetry) and
    #: "merger" (two bulge + disk systems overlapping, one object in the truth)
    knotty_fraction: float = 0.0
    irregular_fraction: float = 0.0
    merger_fraction: float = 0.0
    #: share of a knotty disk's light in its knots, and knots per galaxy
    knot_flux_fraction: tuple[float, float] = (0.2, 0.5)
    knots: tuple[int, int] = (5, 40)

    def __post_init__(self):
        fractions = (self.knotty_fraction, self.irregular_fraction, self.merger_fraction)
        if min(fractions) < 0 or sum(fractions) > 1:
            raise ValueError("knotty_fraction, irregular_fraction and merger_fraction must be >= 0 and add up to at "
                             f"most 1, got {fractions}")
        if self.psf not in PSFS:
            raise ValueError(f"psf must be one of {', '.join(PSFS)} for the GalSim backend, got {self.psf!r}")
        if not self.psf_fwhm > 0:
            raise ValueError(f"psf_fwhm must be > 0 pixels, got {self.psf_fwhm}")
        if not 0 <= self.blend_fraction < 1:
            raise ValueError(f"blend_fraction must be in [0, 1), got {self.blend_fraction}")


def _require_galsim():
    try:
        import galsim
    except ImportError:
        raise ImportError("the GalSim backend needs GalSim: pip install 'napari-galseg[galsim]' (or pip install galsim)") from None
    return galsim


def _catalog(shape, seed: int, opt: GalSimOptions) -> dict[str, np.ndarray]:
    ny, nx = shape
    rng = np.random.default_rng([seed, 0x6A15])
    mpix = nx * ny / 1e6
    n_gal, n_star = rng.poisson(opt.galaxy_density * mpix), rng.poisson(opt.star_density * mpix)

    def power_law(n, lo, hi, slope):
        a = 1.0 - slope
        return (lo**a + rng.random(n) * (hi**a - lo**a)) ** (1.0 / a)

    flux = power_law(n_gal, opt.flux_min, opt.flux_max, opt.flux_slope)
    hlr = opt.size_pivot * (flux / opt.size_flux_pivot) ** opt.size_flux_index * 10 ** rng.normal(0, opt.size_scatter_dex, n_gal)
    hlr = np.clip(hlr, 0.5, 40.0)
    bulge = rng.beta(1.0, 3.0, n_gal)  # mostly disk-dominated
    e = np.minimum(np.hypot(*rng.normal(0, opt.ellipticity_sigma, (2, n_gal))), 0.8)
    q = (1 - e) / (1 + e)
    theta = rng.uniform(0, np.pi, n_gal)
    x = rng.uniform(-0.5, nx - 0.5, n_gal)
    y = rng.uniform(-0.5, ny - 0.5, n_gal)
    # blends: move a fraction of the galaxies next to another galaxy
    n_blend = int(opt.blend_fraction * n_gal)
    if n_blend and n_gal > 1:
        movers = rng.choice(n_gal, n_blend, replace=False)
        hosts = rng.integers(0, n_gal, n_blend)
        sep = rng.uniform(1.0, 3.0, n_blend) * (hlr[hosts] + hlr[movers]) + opt.psf_fwhm
        ang = rng.uniform(0, 2 * np.pi, n_blend)
        x[movers] = np.clip(x[hosts] + sep * np.cos(ang), -0.5, nx - 0.5)
        y[movers] = np.clip(y[hosts] + sep * np.sin(ang), -0.5, ny - 0.5)
    s_flux = power_law(n_star, opt.star_flux_min, opt.star_flux_max, opt.star_flux_slope)
    cat = {
        "x": np.concatenate([x, rng.uniform(-0.5, nx - 0.5, n_star)]),
        "y": np.concatenate([y, rng.uniform(-0.5, ny - 0.5, n_star)]),
        "flux": np.concatenate([flux, s_flux]),
        "r_eff": np.concatenate([hlr, np.zeros(n_star)]),
        "bulge_fraction": np.concatenate([bulge, np.zeros(n_star)]),
        "q": np.concatenate([q, np.ones(n_star)]),
        "theta": np.concatenate([theta, np.zeros(n_star)]),
        "is_star": np.concatenate([np.zeros(n_gal, bool), np.ones(n_star, bool)]),
    }
    cat["morphology"] = np.concatenate([_morphologies(n_gal, seed, opt), np.full(n_star, "star")])
    order = np.argsort(-cat["flux"], kind="stable")
    cat = {k: v[order] for k, v in cat.items()}
    cat["id"] = np.arange(1, len(order) + 1, dtype=np.int32)
    return cat


MORPHOLOGIES = ("bulge_disk", "knotty", "irregular", "merger")


def _morphologies(n_gal: int, seed: int, opt: GalSimOptions) -> np.ndarray:
    """Each galaxy's morphology, from a stream of its own (fields without the new kinds are the
    same as before they existed)."""
    rng = np.random.default_rng([seed, 0x6A17])
    p = [1 - opt.knotty_fraction - opt.irregular_fraction - opt.merger_fraction, opt.knotty_fraction,
         opt.irregular_fraction, opt.merger_fraction]
    return rng.choice(np.array(MORPHOLOGIES), n_gal, p=np.clip(p, 0, 1) / sum(np.clip(p, 0, 1)))


def _galaxy(galsim, i: int, cat, opt: GalSimOptions, gsparams, seed: int):
    """The GalSim profile of galaxy ``i`` (before the PSF) and how far beyond its half-light radius
    it reaches (mergers and irregulars are spread out)."""
    flux, hlr, bf = float(cat["flux"][i]), float(cat["r_eff"][i]), float(cat["bulge_fraction"][i])
    q, beta = float(cat["q"][i]), float(cat["theta"][i]) * galsim.radians
    kind = cat["morphology"][i]
    if kind == "bulge_disk":
        disk = galsim.Exponential(half_light_radius=hlr, flux=(1 - bf) * flux, gsparams=gsparams)
        bulge = galsim.DeVaucouleurs(half_light_radius=max(0.3, opt.bulge_size_ratio * hlr), flux=bf * flux,
                                     gsparams=gsparams)
        return (disk + bulge).shear(q=q, beta=beta), 1.0
    rng = np.random.default_rng([seed, 0x6A18, i])
    deviate = galsim.BaseDeviate(int(rng.integers(1, 2**31)))
    n_knots = int(rng.integers(opt.knots[0], opt.knots[1] + 1))
    if kind == "knotty":
        f_knots = rng.uniform(*opt.knot_flux_fraction)
        disk_flux = (1 - bf) * flux
        disk = galsim.Exponential(half_light_radius=hlr, flux=(1 - f_knots) * disk_flux, gsparams=gsparams)
        knots = galsim.RandomKnots(n_knots, half_light_radius=hlr, flux=f_knots * disk_flux, rng=deviate,
                                   gsparams=gsparams)
        bulge = galsim.DeVaucouleurs(half_light_radius=max(0.3, opt.bulge_size_ratio * hlr), flux=bf * flux,
                                     gsparams=gsparams)
        off = rng.normal(0, 0.15 * hlr, 2)  # an off-centre bulge: asymmetric light
        return (disk + knots).shear(q=q, beta=beta) + bulge.shift(*off), 1.0
    if kind == "irregular":
        n_clumps = int(rng.integers(2, 5))
        weights = rng.dirichlet(np.ones(n_clumps)) * 0.6 * flux
        parts = []
        for w in weights:
            dx, dy = rng.normal(0, 0.8 * hlr, 2)
            size = hlr * rng.uniform(0.3, 0.8)
            parts.append(galsim.Exponential(half_light_radius=size, flux=float(w), gsparams=gsparams)
                         .shear(q=float(rng.uniform(0.3, 1)), beta=float(rng.uniform(0, np.pi)) * galsim.radians)
                         .shift(dx, dy))
        parts.append(galsim.RandomKnots(n_knots, half_light_radius=1.2 * hlr, flux=0.4 * flux, rng=deviate,
                                        gsparams=gsparams))
        return galsim.Add(parts).shear(q=max(q, 0.4), beta=beta), 2.0
    # a merger: two bulge + disk systems 0.5-1.5 half-light radii apart, one tidal-ish faint disk around both
    share = rng.uniform(0.3, 0.7)
    sep = rng.uniform(0.5, 1.5) * hlr
    ang = rng.uniform(0, 2 * np.pi)
    parts = []
    for s, f in ((0.5, share), (-0.5, 1 - share)):
        h = hlr * math.sqrt(f / 0.5) * 0.8
        e_q = float(rng.uniform(0.3, 1.0))
        gal = (galsim.Exponential(half_light_radius=h, flux=(1 - bf) * f * 0.9 * flux, gsparams=gsparams)
               + galsim.DeVaucouleurs(half_light_radius=max(0.3, opt.bulge_size_ratio * h), flux=bf * f * 0.9 * flux,
                                      gsparams=gsparams))
        parts.append(gal.shear(q=e_q, beta=float(rng.uniform(0, np.pi)) * galsim.radians)
                     .shift(s * sep * math.cos(ang), s * sep * math.sin(ang)))
    parts.append(galsim.Exponential(half_light_radius=1.5 * hlr + sep, flux=0.1 * flux, gsparams=gsparams)
                 .shear(q=0.5, beta=ang * galsim.radians))
    return galsim.Add(parts), 1.5 + sep / max(hlr, 0.5)


def _psf(galsim, opt: GalSimOptions):
    psf = galsim.Moffat(beta=opt.moffat_beta, fwhm=opt.psf_fwhm) if opt.psf == "moffat" else galsim.Kolmogorov(fwhm=opt.psf_fwhm)
    if opt.psf_ellipticity > 0:
        psf = psf.shear(q=1.0 - min(opt.psf_ellipticity, 0.5), beta=0.0 * galsim.radians)
    return psf


def _stamp_size(flux: float, hlr: float, opt: GalSimOptions, floor: float) -> int:
    """Odd stamp side out to where an exponential of this flux falls below ``floor`` (+ PSF wings)."""
    if hlr <= 0:  # star
        r = opt.psf_fwhm * (2.0 + 1.5 * math.log10(max(flux / floor, 10.0)))
    else:
        rd = hlr / 1.678  # exponential scale length
        i0 = flux / (2 * math.pi * rd * rd)
        r = rd * math.log(max(i0 / floor, math.e)) + 3 * opt.psf_fwhm
        r = max(r, 4 * hlr + 2 * opt.psf_fwhm)
    return int(min(2 * math.ceil(r) + 1, 401))


def make_galsim_field(size: int | tuple[int, int] = 1024, seed: int = 0, noise_map: np.ndarray | None = None,
                      **options) -> SyntheticField:
    """A GalSim field in memory (see the module docstring); ``options`` override :class:`GalSimOptions`.

    ``noise_map`` (the field's shape): a given 1σ noise map instead of the sky + read noise model
    (Gaussian noise of that map on a flat ``sky_level``): a field with a real frame's noise pattern.
    """
    galsim = _require_galsim()
    shape = (size, size) if np.isscalar(size) else tuple(int(s) for s in size)
    if min(shape) < 16:
        raise ValueError(f"a synthetic field needs at least 16 px a side, got {shape}")
    opt = dataclasses.replace(GalSimOptions(), **options)
    # the noise model and WCS of the built-in generator, with this field's settings
    noise_opt = FieldOptions(sky_level=opt.sky_level, sky_gradient=opt.sky_gradient, read_noise=opt.read_noise,
                             depth_variation=opt.depth_variation, psf=opt.psf, psf_fwhm=opt.psf_fwhm,
                             ra_center=opt.ra_center, dec_center=opt.dec_center, pixel_scale_arcsec=opt.pixel_scale_arcsec)
    cat = _catalog(shape, seed, opt)
    psf = _psf(galsim, opt)
    gsparams = galsim.GSParams(maximum_fft_size=16384)
    ny, nx = shape
    floor = 0.02 * math.sqrt(opt.sky_level * (1 - opt.depth_variation) + opt.read_noise**2) / (1 + opt.depth_variation)
    if noise_map is not None:  # stamps reach 2 % of the lowest noise of the given map
        floor = 0.02 * float(np.min(noise_map))
    noiseless = np.zeros(shape)
    best = np.zeros(shape)
    best_id = np.zeros(shape, np.int32)
    for i in range(len(cat["id"])):
        flux, hlr = float(cat["flux"][i]), float(cat["r_eff"][i])
        reach = 1.0
        if cat["is_star"][i]:
            obj = psf.withFlux(flux)
        else:
            gal, reach = _galaxy(galsim, i, cat, opt, gsparams, seed)
            obj = galsim.Convolve(gal, psf, gsparams=gsparams)
        n = _stamp_size(flux, hlr * reach, opt, floor)
        x, y = float(cat["x"][i]), float(cat["y"][i])
        cx, cy = int(round(x)), int(round(y))
        stamp = obj.drawImage(nx=n, ny=n, scale=1.0, offset=(x - cx, y - cy)).array
        y0, x0 = cy - n // 2, cx - n // 2
        ya, yb, xa, xb = max(y0, 0), min(y0 + n, ny), max(x0, 0), min(x0 + n, nx)
        if ya >= yb or xa >= xb:
            continue
        part = stamp[ya - y0 : yb - y0, xa - x0 : xb - x0]
        region = (slice(ya, yb), slice(xa, xb))
        noiseless[region] += part
        brighter = part > best[region]
        best[region][brighter] = part[brighter]
        best_id[region][brighter] = cat["id"][i]
    rng = np.random.default_rng([seed, 0x6A16])
    if noise_map is not None:
        rms = np.asarray(noise_map, np.float64)
        if rms.shape != shape:
            raise ValueError(f"noise_map has shape {rms.shape}, the field {shape}")
        image = opt.sky_level + noiseless + rng.normal(0.0, 1.0, shape) * rms
    else:
        yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
        exposure = _exposure(yy, xx, shape, seed, noise_opt)
        sky = _sky(yy, xx, shape, seed, noise_opt)
        rms = np.sqrt(sky * exposure + opt.read_noise**2) / exposure
        electrons = rng.poisson((sky + np.maximum(noiseless, 0.0)) * exposure).astype(np.float64)
        electrons += rng.normal(0.0, opt.read_noise, shape)
        image = electrons / exposure
    truth = np.where(best > opt.truth_fraction * rms, best_id, 0).astype(np.int32)
    area = np.bincount(truth.ravel(), minlength=len(cat["id"]) + 1)
    return SyntheticField(image=image.astype(np.float32), rms=rms.astype(np.float32), truth=truth,
                          noiseless=noiseless.astype(np.float32), catalog=_table(cat, area, shape, seed, opt, noise_opt),
                          seed=int(seed), options=noise_opt)


def _table(cat, area, shape, seed, opt: GalSimOptions, noise_opt: FieldOptions):
    from astropy.table import Table

    ra, dec = field_wcs(shape, noise_opt).wcs_pix2world(cat["x"], cat["y"], 0)
    table = Table({"id": cat["id"], "x": cat["x"], "y": cat["y"], "ra": ra, "dec": dec, "flux": cat["flux"],
                   "r_eff": cat["r_eff"], "bulge_fraction": cat["bulge_fraction"], "q": cat["q"], "theta": cat["theta"],
                   "kind": np.where(cat["is_star"], "star", "galaxy"), "morphology": cat["morphology"],
                   "truth_area": area[1:]})
    table["r_eff"].description = "half-light radius of the disk, px (0 for stars)"
    table["truth_area"].description = "pixels the object owns in true.fits"
    table.meta.update({"seed": int(seed), "shape": list(shape), "backend": "galsim", "options": dataclasses.asdict(opt)})
    return table


def write_galsim_field(out_dir: str | os.PathLike, size: int | tuple[int, int] = 1024, seed: int = 0,
                       overwrite: bool = False, **options) -> dict[str, Path]:
    """:func:`make_galsim_field` written as img.fits, rms.fits, true.fits and catalog.ecsv (atomic
    writes; existing files refused unless ``overwrite``)."""
    refuse_existing_field(out_dir, overwrite)
    field = make_galsim_field(size, seed, **options)
    header = field_header(field.shape, seed, field.options)
    header["SYNBACK"] = ("galsim", "napari_galseg.synth.galsim_backend")
    return save_field(field, out_dir, header, overwrite=overwrite)


def field_targets(out_dir: str | os.PathLike) -> dict[str, Path]:
    out_dir = Path(out_dir)
    targets = {k: out_dir / v for k, v in FIELD_FILES.items()}
    targets["catalog"] = out_dir / "catalog.ecsv"
    return targets


def refuse_existing_field(out_dir: str | os.PathLike, overwrite: bool) -> None:
    """Before any work: the field's files must not exist, unless ``overwrite``."""
    if not overwrite:
        existing = [str(p) for p in field_targets(out_dir).values() if p.exists()]
        if existing:
            raise FileExistsError(f"{', '.join(existing)} already exist; pick an empty folder or pass --overwrite")


def save_field(field: SyntheticField, out_dir: str | os.PathLike, header, overwrite: bool = False) -> dict[str, Path]:
    """An in-memory field as img.fits, rms.fits, true.fits and catalog.ecsv in ``out_dir`` (each
    written atomically)."""
    from astropy.io import fits

    from .._atomic import atomic_path

    targets = field_targets(out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    contents = {"image": "image", "rms": "rms", "truth": "segmentation"}
    for key in FIELD_FILES:
        hdu = fits.PrimaryHDU(getattr(field, key), header=header)
        hdu.header["CONTENT"] = contents[key]
        with atomic_path(targets[key], overwrite=overwrite) as tmp:
            hdu.writeto(tmp)
    with atomic_path(targets["catalog"], overwrite=overwrite) as tmp:
        field.catalog.write(tmp, format="ascii.ecsv")
    return targets

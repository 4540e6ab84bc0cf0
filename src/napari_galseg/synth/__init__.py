"""Synthetic galaxy fields with exact truth.

- :mod:`.builtin` — the fast streaming generator (Sérsic galaxies, any size up to survey frames);
- :mod:`.galsim_backend` — fields drawn by GalSim (bulge + disk, knots, irregular and merging
  systems, Moffat or Kolmogorov PSFs; the ``galsim`` extra);
- :mod:`.conditions` — what a given frame looks like (PSF, noise, sky, pixel scale, density);
- :mod:`.like` — fields made like a given frame, for training without a truth map.

The built-in generator's API is re-exported here (``synth.make_field``, ``synth.write_field``).
"""
from .builtin import (
    BLOCK,
    FIELD_FILES,
    FieldOptions,
    SyntheticField,
    field_header,
    field_wcs,
    make_field,
    psf_kernel,
    write_field,
)

__all__ = ["BLOCK", "FIELD_FILES", "FieldOptions", "SyntheticField", "field_header", "field_wcs", "make_field",
           "psf_kernel", "write_field"]

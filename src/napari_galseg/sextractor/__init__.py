"""SExtractor mode: SExtractor's detections and catalogue from a user's ``.sex`` and ``.param`` files.

The steps are ports of SExtractor 2.25's own (background mesh and spline, filtered-image threshold,
isophotal moments, 5×5-oversampled apertures, Kron ellipses with neighbours masked), so a
catalogue matches the real program's to float rounding where the mode reproduces it; what it
does not reproduce (BACKPHOTO_TYPE LOCAL, two weight maps, …) is said in :meth:`SexRun.report`.
Weight maps (WEIGHT_TYPE) are in ``weights``, flag maps (FLAG_IMAGE) in ``flags``.

>>> run = read_sex("default.sex")                     # doctest: +SKIP
>>> result = extract(image, run.settings)
>>> write_catalog(catalog_columns(result.columns, run.params), "out.cat", run.catalog_type)
"""
from .background import SExBackground, sextractor_background
from .catalog import catalog_columns, write_catalog
from .config import SexRun, read_sex
from .errors import SExtractorInputError
from .extract import Extraction, ExtractSettings, extract
from .run import run_frame

__all__ = [
    "ExtractSettings",
    "Extraction",
    "SExBackground",
    "SExtractorInputError",
    "SexRun",
    "catalog_columns",
    "extract",
    "read_sex",
    "run_frame",
    "sextractor_background",
    "write_catalog",
]

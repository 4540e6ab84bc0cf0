"""A ``.sex`` file read for SExtractor mode: the extraction settings, the catalogue to write, and
what this mode does not reproduce.

Every value is checked where it is read, and a bad one stops the run with one line naming the
file, the line and what to do (SExtractor itself stops on unknown keys too). Files named in the
``.sex`` (PARAMETERS_NAME, FILTER_NAME) are looked for as SExtractor does (the working
directory), then beside the ``.sex`` file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .classstar import read_nnw
from .errors import SExtractorInputError
from .extract import ExtractSettings
from .files import DEFAULT_CONV, SExtractorConfigError, parse_sex_lines, read_conv, read_sex_text
from .flags import FLAG_TYPES
from .known import KNOWN_PARAMS
from .params import ParamList, read_param
from .weights import WEIGHT_TYPES, WeightSettings

#: every keyword SExtractor 2.25 accepts (preflist.h)
KNOWN_KEYS = frozenset("""
ANALYSIS_THRESH ASSOC_DATA ASSOC_NAME ASSOC_PARAMS ASSOC_RADIUS ASSOC_TYPE ASSOCCOORD_TYPE ASSOCSELEC_TYPE
BACK_FILTERSIZE BACK_FILTTHRESH BACK_PEARSON BACKPHOTO_THICK BACKPHOTO_TYPE BACK_SIZE BACK_TYPE BACK_VALUE
CATALOG_NAME CATALOG_TYPE CHECKIMAGE_NAME CHECKIMAGE_TYPE CLEAN CLEAN_PARAM DEBLEND_MINCONT DEBLEND_NTHRESH
DETECT_MINAREA DETECT_MAXAREA DETECT_THRESH DETECT_TYPE DGEO_IMAGE DGEO_TYPE FILTER FILTER_NAME FILTER_THRESH
FITS_UNSIGNED FLAG_IMAGE FLAG_TYPE GAIN GAIN_KEY HEADER_SUFFIX INTERP_MAXXLAG INTERP_MAXYLAG INTERP_TYPE
MAG_GAMMA MAG_ZEROPOINT MASK_TYPE MEMORY_BUFSIZE MEMORY_OBJSTACK MEMORY_PIXSTACK NTHREADS PARAMETERS_NAME
PATTERN_TYPE PHOT_APERTURES PHOT_AUTOPARAMS PHOT_AUTOAPERS PHOT_FLUXFRAC PHOT_PETROPARAMS PIXEL_SCALE PSF_NAME
PSF_NMAX RESCALE_WEIGHTS SATUR_KEY SATUR_LEVEL SEEING_FWHM SOM_NAME STARNNW_NAME THRESH_TYPE VERBOSE_TYPE
WEIGHT_GAIN WEIGHT_IMAGE WEIGHT_THRESH WEIGHT_TYPE WRITE_XML XML_NAME XSL_URL
""".split())  # noqa: SIM905

#: SExtractor's own defaults (``source-extractor -dd``) of the keys this mode reads
DEFAULTS: dict[str, list[str]] = {
    "CATALOG_NAME": ["test.cat"], "CATALOG_TYPE": ["ASCII_HEAD"], "PARAMETERS_NAME": ["default.param"],
    "DETECT_TYPE": ["CCD"], "DETECT_MINAREA": ["5"], "DETECT_THRESH": ["1.5"], "ANALYSIS_THRESH": ["1.5"],
    "THRESH_TYPE": ["RELATIVE"], "FILTER": ["Y"], "FILTER_NAME": ["default.conv"],
    "DEBLEND_NTHRESH": ["32"], "DEBLEND_MINCONT": ["0.005"], "CLEAN": ["Y"], "CLEAN_PARAM": ["1.0"],
    "MASK_TYPE": ["CORRECT"], "WEIGHT_TYPE": ["NONE"], "PHOT_APERTURES": ["5"], "PHOT_AUTOPARAMS": ["2.5", "3.5"],
    "PHOT_AUTOAPERS": ["0.0", "0.0"], "PHOT_FLUXFRAC": ["0.5"], "SATUR_LEVEL": ["50000.0"],
    "MAG_ZEROPOINT": ["0.0"], "GAIN": ["0.0"], "PIXEL_SCALE": ["1.0"], "BACK_TYPE": ["AUTO"], "BACK_VALUE": ["0.0"],
    "BACK_SIZE": ["64"], "BACK_FILTERSIZE": ["3"], "BACK_FILTTHRESH": ["0.0"], "BACKPHOTO_TYPE": ["GLOBAL"],
    "SEEING_FWHM": ["1.2"], "STARNNW_NAME": ["default.nnw"], "MEMORY_OBJSTACK": ["3000"],
    "MEMORY_BUFSIZE": ["1024"], "DETECT_MAXAREA": ["0"], "FLAG_IMAGE": ["flag.fits"], "CHECKIMAGE_TYPE": ["NONE"],
    "WEIGHT_IMAGE": ["weight.fits"], "RESCALE_WEIGHTS": ["Y"], "WEIGHT_GAIN": ["Y"], "INTERP_TYPE": ["ALL"],
    "INTERP_MAXXLAG": ["16"], "INTERP_MAXYLAG": ["16"], "FLAG_TYPE": ["OR"],
}

CATALOG_TYPES = ("NONE", "ASCII_HEAD", "ASCII", "FITS_1.0", "FITS_LDAC")


@dataclasses.dataclass
class SexRun:
    """A ``.sex`` file ready to run: settings, the catalogue's type, name and columns."""

    path: Path | None
    settings: ExtractSettings
    catalog_type: str
    catalog_name: str
    params: ParamList
    kernel_path: Path | None
    #: keys whose values SExtractor would honour and this mode does not (key → why)
    not_reproduced: dict[str, str]
    #: header keywords that override GAIN and SATUR_LEVEL when the frame has them (GAIN_KEY, SATUR_KEY)
    gain_key: str = "GAIN"
    satur_key: str = "SATURATE"

    def report(self) -> str:
        """A few lines for a person: the columns left out and what is not reproduced."""
        name = self.path.name if self.path else "configuration"
        lines = [f"{name}: SExtractor mode, {len(self.params.columns)} catalogue columns ({self.catalog_type})"]
        if self.params.left_out:
            lines.append("  parameters not computed, left out: " + ", ".join(self.params.left_out))
        for key, why in self.not_reproduced.items():
            lines.append(f"  not reproduced {key}: {why}")
        return "\n".join(lines)


class _Reader:
    def __init__(self, path: Path | None, keys: dict[str, tuple[list[str], int]]):
        self.path, self.keys = path, keys
        self.name = str(path) if path else ".sex"

    def where(self, key: str) -> str:
        if key in self.keys:
            return f"{self.name} line {self.keys[key][1]}: {key}"
        return f"{self.name}: {key} (SExtractor's default)"

    def values(self, key: str) -> list[str]:
        return self.keys[key][0] if key in self.keys else DEFAULTS.get(key, [])

    def numbers(self, key: str, kind=float, n: tuple[int, int] = (1, 1), positive=False) -> list:
        vals = self.values(key)
        if not n[0] <= len(vals) <= n[1]:
            want = str(n[0]) if n[0] == n[1] else f"{n[0]} to {n[1]}"
            raise SExtractorInputError(f"{self.where(key)} needs {want} value(s), got {len(vals)} "
                                       f"({' '.join(vals) or 'nothing'}); correct the line")
        try:
            out = [kind(v) for v in vals]
        except ValueError:
            raise SExtractorInputError(f"{self.where(key)}: {' '.join(vals)!r} is not "
                                       f"{'an integer' if kind is int else 'a number'}; correct the line") from None
        if positive and any(v <= 0 for v in out):
            raise SExtractorInputError(f"{self.where(key)}: {' '.join(vals)} must be > 0; correct the line")
        return out

    def word(self, key: str, choices: tuple[str, ...]) -> str:
        vals = self.values(key)
        v = vals[0].upper() if vals else ""
        if v not in choices:
            raise SExtractorInputError(f"{self.where(key)}: {' '.join(vals) or 'nothing'!r} is not one of "
                                       f"{', '.join(choices)}; correct the line")
        return v

    def words(self, key: str, choices: tuple[str, ...], n: tuple[int, int]) -> list[str]:
        vals = [v.upper() for v in self.values(key)]
        if not n[0] <= len(vals) <= n[1] or any(v not in choices for v in vals):
            raise SExtractorInputError(f"{self.where(key)}: {' '.join(self.values(key)) or 'nothing'!r} is not "
                                       f"one of {', '.join(choices)} (up to {n[1]} values, comma-separated); "
                                       "correct the line")
        return vals

    def file(self, key: str, name: str | None = None) -> Path:
        vals = self.values(key)
        name = name if name is not None else (vals[0] if vals else "")
        p = Path(name).expanduser()
        if p.is_file():
            return p
        if self.path is not None and not p.is_absolute() and (self.path.parent / p).is_file():
            return self.path.parent / p
        raise SExtractorInputError(f"{self.where(key)} {name}: no such file (looked in the working directory"
                                   + (f" and in {self.path.parent}" if self.path else "") + "); give its path")


def read_sex(path) -> SexRun:
    """Read a ``.sex`` file for SExtractor mode (see the module docstring)."""
    path = Path(path)
    try:
        keys = parse_sex_lines(read_sex_text(path), str(path))
    except SExtractorConfigError as exc:
        raise SExtractorInputError(str(exc)) from None
    return sex_from_keys(keys, path)


def sex_from_keys(keys: dict[str, tuple[list[str], int]], path: Path | None = None) -> SexRun:
    r = _Reader(path, keys)
    for key, (_values, line) in keys.items():
        if key not in KNOWN_KEYS:
            raise SExtractorInputError(f"{r.name} line {line}: {key} is not a SExtractor keyword; remove the line "
                                       "or correct its spelling (source-extractor -dd lists them)")
    s = ExtractSettings()
    nr: dict[str, str] = {}
    thresh_type = r.word("THRESH_TYPE", ("RELATIVE", "ABSOLUTE"))
    s.thresh_absolute = thresh_type == "ABSOLUTE"
    s.detect_thresh = r.numbers("DETECT_THRESH", n=(1, 2), positive=True)[0]
    s.analysis_thresh = r.numbers("ANALYSIS_THRESH", n=(1, 2), positive=True)[0]
    for key in ("DETECT_THRESH", "ANALYSIS_THRESH"):
        if len(r.values(key)) == 2:
            raise SExtractorInputError(f"{r.where(key)}: a surface-brightness threshold (mag/arcsec², ZP) is not "
                                       "supported in SExtractor mode; give it in units of the background rms")
    s.minarea = r.numbers("DETECT_MINAREA", int, positive=True)[0]
    if r.word("FILTER", ("Y", "N")) == "Y":
        found = None
        try:
            found = r.file("FILTER_NAME")
        except SExtractorInputError:
            if "FILTER_NAME" in keys and Path(r.values("FILTER_NAME")[0]).name != "default.conv":
                raise
        if found is None:  # SExtractor's default.conv, built in
            s.kernel, s.kernel_normalise = DEFAULT_CONV.copy(), True
        else:
            try:
                s.kernel, s.kernel_normalise = read_conv(found)
            except SExtractorConfigError as exc:
                raise SExtractorInputError(f"{r.where('FILTER_NAME')}: {exc}") from None
    else:
        s.kernel, found = None, None
    s.back_type = r.word("BACK_TYPE", ("AUTO", "MANUAL"))
    s.back_value = r.numbers("BACK_VALUE", n=(1, 2))[0]
    size = r.numbers("BACK_SIZE", int, n=(1, 2), positive=True)
    s.back_size = (size[0], size[-1])
    fsize = r.numbers("BACK_FILTERSIZE", int, n=(1, 2), positive=True)
    s.back_filtersize = (fsize[0], fsize[-1])
    s.back_filtthresh = r.numbers("BACK_FILTTHRESH")[0]
    s.apertures = tuple(r.numbers("PHOT_APERTURES", n=(1, 64), positive=True))
    s.autoparams = tuple(r.numbers("PHOT_AUTOPARAMS", n=(2, 2)))
    s.autoapers = tuple(r.numbers("PHOT_AUTOAPERS", n=(2, 2)))
    s.fluxfrac = tuple(r.numbers("PHOT_FLUXFRAC", n=(1, 32), positive=True))
    s.mag_zeropoint = r.numbers("MAG_ZEROPOINT")[0]
    s.gain = r.numbers("GAIN")[0]
    s.satur_level = r.numbers("SATUR_LEVEL")[0]
    s.objstack = r.numbers("MEMORY_OBJSTACK", int, positive=True)[0]
    mask_type = r.word("MASK_TYPE", ("NONE", "BLANK", "CORRECT"))
    s.mask_correct = mask_type == "CORRECT"  # BLANK: neighbours' pixels count as 0
    if mask_type == "NONE":
        nr["MASK_TYPE"] = "NONE: neighbours' pixels are still masked (as BLANK)"
    if r.numbers("DETECT_MAXAREA", int)[0] > 0:
        nr["DETECT_MAXAREA"] = f"{r.values('DETECT_MAXAREA')[0]}: objects above a maximum area are kept"
    if r.values("FILTER_THRESH") and "FILTER_THRESH" in keys:
        nr["FILTER_THRESH"] = "thresholds on the filtered values are not applied"
    if len(r.values("THRESH_TYPE")) > 1 and r.values("THRESH_TYPE")[1].upper() != thresh_type:
        nr["THRESH_TYPE"] = f"{','.join(r.values('THRESH_TYPE'))}: the first type is used for both thresholds"
    s.deblend_mincont = r.numbers("DEBLEND_MINCONT")[0]
    s.deblend_nthresh = r.numbers("DEBLEND_NTHRESH", int, positive=True)[0]
    s.clean = r.word("CLEAN", ("Y", "N")) == "Y"
    s.clean_param = r.numbers("CLEAN_PARAM", positive=True)[0]
    s.bufsize = r.numbers("MEMORY_BUFSIZE", int, positive=True)[0]
    if r.word("DETECT_TYPE", ("CCD", "PHOTO")) == "PHOTO":
        raise SExtractorInputError(f"{r.where('DETECT_TYPE')}: PHOTO (photographic plates) is not supported; use CCD")
    s.weight = _weights(r, nr)
    if r.word("BACKPHOTO_TYPE", ("GLOBAL", "LOCAL")) == "LOCAL":
        nr["BACKPHOTO_TYPE"] = "LOCAL: fluxes are measured above the global background map"
    catalog_type = r.word("CATALOG_TYPE", CATALOG_TYPES + ("ASCII_SKYCAT", "ASCII_VOTABLE"))
    if catalog_type in ("ASCII_SKYCAT", "ASCII_VOTABLE"):
        raise SExtractorInputError(f"{r.where('CATALOG_TYPE')}: {catalog_type} is not written in SExtractor mode; "
                                   "use ASCII_HEAD, ASCII, FITS_1.0 or FITS_LDAC")
    sizes = {"PHOT_APERTURES": len(s.apertures), "PHOT_FLUXFRAC": len(s.fluxfrac),
             "FLAG_IMAGE": max(len(r.values("FLAG_IMAGE")), 1)}
    params = read_param(r.file("PARAMETERS_NAME"), KNOWN_PARAMS, sizes)
    if not params.columns:
        raise SExtractorInputError(f"{params.path}: no catalogue parameter is named (every line is commented out?); "
                                   "uncomment the columns you want, one per line")
    s.wanted = frozenset(name for name, _size in params.columns)
    if s.wanted & {"IMAFLAGS_ISO", "NIMAFLAGS_ISO"}:  # SExtractor reads the flag maps only for these columns
        types = r.words("FLAG_TYPE", FLAG_TYPES, (1, 64))
        s.flag_images = tuple(r.file("FLAG_IMAGE", name) for name in r.values("FLAG_IMAGE"))
        s.flag_types = tuple((types + ["OR"] * len(s.flag_images))[:len(s.flag_images)])
    s.pixel_scale = r.numbers("PIXEL_SCALE")[0]
    s.seeing_fwhm = r.numbers("SEEING_FWHM")[0]
    if "CLASS_STAR" in s.wanted:
        if s.seeing_fwhm <= 0.0:
            raise SExtractorInputError(f"{r.where('SEEING_FWHM')}: 0 asks for the seeing from a PSF model, which "
                                       "SExtractor mode does not fit; give the seeing FWHM in arcsec")
        s.nnw = read_nnw(r.file("STARNNW_NAME"))
    return SexRun(path=path, settings=s, catalog_type=catalog_type, catalog_name=(r.values("CATALOG_NAME") or ["test.cat"])[0],
                  params=params, kernel_path=found, not_reproduced=nr,
                  gain_key=(r.values("GAIN_KEY") or ["GAIN"])[0].upper(),
                  satur_key=(r.values("SATUR_KEY") or ["SATURATE"])[0].upper())


def _weights(r: _Reader, nr: dict[str, str]) -> WeightSettings:
    """WEIGHT_TYPE, WEIGHT_IMAGE, WEIGHT_THRESH, RESCALE_WEIGHTS, WEIGHT_GAIN and INTERP_* (prefs.c);
    read even without a weight type, so a map given on the command line uses them."""
    types = r.words("WEIGHT_TYPE", WEIGHT_TYPES, (1, 2))
    if len(types) > 1 and types[1] != types[0]:
        nr["WEIGHT_TYPE"] = f"{','.join(types)}: separate detection and measurement weights (two images) are not " \
                            f"supported; {types[0]} is used for both"
    w = WeightSettings(type=types[0])
    if "WEIGHT_THRESH" in r.keys and r.values("WEIGHT_THRESH"):
        w.thresh = r.numbers("WEIGHT_THRESH", n=(1, 2))[0]
        if w.thresh < 0:
            raise SExtractorInputError(f"{r.where('WEIGHT_THRESH')}: {w.thresh:g} must be ≥ 0; correct the line")
    w.rescale = r.words("RESCALE_WEIGHTS", ("Y", "N"), (1, 2))[0] == "Y"
    w.gain = r.word("WEIGHT_GAIN", ("Y", "N")) == "Y"
    interp = r.words("INTERP_TYPE", ("NONE", "VAR_ONLY", "ALL"), (1, 2))[0]
    w.interp = interp != "NONE"
    w.xlag = r.numbers("INTERP_MAXXLAG", int, n=(1, 2), positive=True)[0]
    w.ylag = r.numbers("INTERP_MAXYLAG", int, n=(1, 2), positive=True)[0]
    if w.on and interp == "VAR_ONLY":
        nr["INTERP_TYPE"] = "VAR_ONLY: low-weight pixels are interpolated in the image too (as ALL)"
    if w.on and w.type != "BACKGROUND":
        w.image = r.file("WEIGHT_IMAGE")
    return w

"""SExtractor .sex/.conv files: every key mapped or reported, kernels read, and SEP parity."""
import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from napari_galseg.cli import main
from napari_galseg.segmenters.photutils import PhotutilsParams, segment
from napari_galseg.segmenters.photutils.sextractor import (
    DEFAULT_CONV,
    SExtractorConfigError,
    map_config,
    parse_sex,
    read_conv,
    read_sextractor_config,
    weighted_inputs,
)
from napari_galseg.synth import make_field, write_field

# SExtractor 2.25's `sex -d` output, shortened (comments and multi-value keys kept)
DEFAULT_SEX = """\
# Default configuration file for SExtractor 2.25.0
#-------------------------------- Catalog ------------------------------------
CATALOG_NAME     test.cat       # name of the output catalog
CATALOG_TYPE     ASCII_HEAD     # NONE,ASCII,ASCII_HEAD, ASCII_SKYCAT,
PARAMETERS_NAME  default.param  # name of the file containing catalog contents
#------------------------------- Extraction ----------------------------------
DETECT_TYPE      CCD            # CCD (linear) or PHOTO (with gamma correction)
DETECT_MINAREA   7              # min. # of pixels above threshold
DETECT_THRESH    2.0            # <sigmas> or <threshold>,<ZP> in mag.arcsec-2
ANALYSIS_THRESH  1.5            # <sigmas> or <threshold>,<ZP> in mag.arcsec-2
FILTER           Y              # apply filter for detection (Y or N)?
FILTER_NAME      gauss.conv     # name of the file containing the filter
DEBLEND_NTHRESH  16             # Number of deblending sub-thresholds
DEBLEND_MINCONT  0.01           # Minimum contrast parameter for deblending
CLEAN            Y              # Clean spurious detections? (Y or N)?
CLEAN_PARAM      1.0            # Cleaning efficiency
MASK_TYPE        CORRECT        # type of detection MASKing
#------------------------------ Photometry -----------------------------------
PHOT_APERTURES   5,10           # MAG_APER aperture diameter(s) in pixels
PHOT_AUTOPARAMS  2.5, 3.5       # MAG_AUTO parameters: <Kron_fact>,<min_radius>
SATUR_LEVEL      50000.0        # level (in ADUs) at which arises saturation
MAG_ZEROPOINT    0.0            # magnitude zero-point
GAIN             0.0            # detector gain in e-/ADU
PIXEL_SCALE      1.0            # size of pixel in arcsec (0=use FITS WCS info)
SEEING_FWHM      1.2            # stellar FWHM in arcsec
STARNNW_NAME     default.nnw    # Neural-Network_Weight table filename
#------------------------------ Background -----------------------------------
BACK_SIZE        32,48          # Background mesh: <size> or <width>,<height>
BACK_FILTERSIZE  5              # Background filter: <size> or <width>,<height>
BACKPHOTO_TYPE   LOCAL          # can be GLOBAL or LOCAL
WEIGHT_TYPE      MAP_RMS        # type of WEIGHTing
WEIGHT_IMAGE     rms.fits       # weight-map filename
#------------------------------ Check Image ----------------------------------
CHECKIMAGE_TYPE  NONE           # can be NONE, BACKGROUND, BACKGROUND_RMS,
CHECKIMAGE_NAME  check.fits     # Filename for the check-image
#--------------------- Memory (change with caution!) -------------------------
MEMORY_OBJSTACK  3000           # number of objects in stack
MEMORY_PIXSTACK  300000         # number of pixels in stack
MEMORY_BUFSIZE   1024           # number of lines in buffer
VERBOSE_TYPE     NORMAL         # can be QUIET, NORMAL or FULL
MYSTERY_KEY      42
"""

GAUSS_CONV = """CONV NORM
# 5x5 convolution mask of a gaussian PSF with FWHM = 2.5 pixels.
0.034673 0.119131 0.179633 0.119131 0.034673
0.119131 0.409323 0.617200 0.409323 0.119131
0.179633 0.617200 0.930649 0.617200 0.179633
0.119131 0.409323 0.617200 0.409323 0.119131
0.034673 0.119131 0.179633 0.119131 0.034673
"""


def test_parse_sex_comments_and_multi_value_keys():
    keys = parse_sex("BACK_SIZE 32,48  # two values\n  # only a comment\n\nPHOT_AUTOPARAMS 2.5, 3.5\nfilter n\nFILTER Y\n")
    assert keys == {"BACK_SIZE": ["32", "48"], "PHOT_AUTOPARAMS": ["2.5", "3.5"], "FILTER": ["Y"]}  # last one wins
    with pytest.raises(SExtractorConfigError, match="line 1"):
        parse_sex("{not: a sex file}")


def test_read_conv_norm_and_nonorm(tmp_path):
    p = tmp_path / "gauss.conv"
    p.write_text(GAUSS_CONV)
    kernel, norm = read_conv(p)
    assert norm and kernel.shape == (5, 5) and kernel[2, 2] == pytest.approx(0.930649)
    p.write_text("CONV NONORM\n# a comment\n1 2 1\n2 4 2\n1 2 1\n")
    kernel, norm = read_conv(p)
    assert not norm and np.array_equal(kernel, DEFAULT_CONV)
    p.write_text("CONV NORM\n1 2\n3 4\n")
    with pytest.raises(SExtractorConfigError, match="odd"):
        read_conv(p)
    p.write_text("CONV NORM\n1 2 1\n2 x 2\n")
    with pytest.raises(SExtractorConfigError, match="line 3"):
        read_conv(p)


def test_every_key_mapped_or_reported(tmp_path):
    (tmp_path / "gauss.conv").write_text(GAUSS_CONV)
    (tmp_path / "rms.fits").write_bytes(b"")  # only its existence matters here
    sex = tmp_path / "field.sex"
    sex.write_text(DEFAULT_SEX)
    cfg = read_sextractor_config(sex)
    reported = set(cfg.honoured) | set(cfg.approximated) | set(cfg.not_honoured) | set(cfg.ignored) | set(cfg.unknown)
    assert set(parse_sex(DEFAULT_SEX)) <= reported
    o = cfg.overrides
    assert (o["nsigma"], o["threshold_mode"], o["n_pixels"], o["n_levels"], o["contrast"]) == (2.0, "study", 7, 16, 0.01)
    assert (o["box_size"], o["filter_size"], o["connectivity"], o["deblend_mode"]) == (32, 5, 8, "exponential")
    assert cfg.weight_type == "MAP_RMS" and cfg.weight_image == tmp_path / "rms.fits"
    assert cfg.kernel.shape == (5, 5) and cfg.kernel_path == tmp_path / "gauss.conv"
    k1 = np.asarray(o["kernel"])  # a Gaussian .conv is separable: the pipeline smooths with it exactly
    np.testing.assert_allclose(np.outer(k1, k1), cfg.kernel / cfg.kernel.sum(), atol=1e-5)
    assert {"CLEAN", "CLEAN_PARAM", "BACKPHOTO_TYPE"} <= set(cfg.not_honoured)
    assert "BACK_SIZE" in cfg.approximated  # 32x48 boxes become 32x32
    assert {"PHOT_APERTURES", "CATALOG_NAME", "ANALYSIS_THRESH"} <= set(cfg.ignored)
    assert cfg.unknown == ["MYSTERY_KEY"]
    params = cfg.params()
    assert isinstance(params, PhotutilsParams) and params.nsigma == 2.0
    assert "not honoured CLEAN" in cfg.report() and "MYSTERY_KEY" in cfg.report()


def test_sextractor_defaults_fill_missing_keys():
    cfg = map_config({})
    o = cfg.overrides
    assert (o["nsigma"], o["n_pixels"], o["n_levels"], o["contrast"], o["box_size"], o["filter_size"]) == (1.5, 5, 32, 0.005, 64, 3)
    assert cfg.kernel is not None and np.array_equal(cfg.kernel, DEFAULT_CONV)
    np.testing.assert_allclose(cfg.overrides["kernel"], [0.25, 0.5, 0.25])
    assert "CLEAN" in cfg.not_honoured  # SExtractor cleans by default; we do not
    assert map_config({"FILTER": ["N"], "CLEAN": ["N"]}).overrides["fwhm"] == 0.0


def test_a_kernel_that_is_not_separable_is_approximated_and_reported(tmp_path):
    (tmp_path / "ring.conv").write_text("CONV NORM\n1 1 1\n1 0 1\n1 1 1\n")
    cfg = map_config({"FILTER_NAME": [str(tmp_path / "ring.conv")]})
    assert "kernel" not in cfg.overrides and cfg.overrides["kernel_size"] == 3
    assert "not a separable product" in cfg.approximated["FILTER_NAME"]


def test_nonorm_kernel_scales_the_threshold(tmp_path):
    (tmp_path / "raw.conv").write_text("CONV NONORM\n1 2 1\n2 4 2\n1 2 1\n")
    cfg = map_config({"FILTER_NAME": [str(tmp_path / "raw.conv")], "DETECT_THRESH": ["8"]})
    assert cfg.overrides["nsigma"] == pytest.approx(8 / 16)


@pytest.mark.parametrize("keys, key", [
    ({"THRESH_TYPE": ["ABSOLUTE"]}, "THRESH_TYPE"),
    ({"DETECT_THRESH": ["24.5", "30.0"]}, "DETECT_THRESH"),
    ({"BACK_TYPE": ["MANUAL"], "BACK_VALUE": ["0.0"]}, "BACK_VALUE"),
    ({"DETECT_MAXAREA": ["500"]}, "DETECT_MAXAREA"),
])
def test_settings_we_cannot_follow_are_reported(keys, key):
    assert key in map_config(keys).not_honoured


def test_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(SExtractorConfigError, match="no such file"):
        map_config({"FILTER_NAME": ["nowhere.conv"]}, tmp_path / "x.sex")
    with pytest.raises(SExtractorConfigError, match="needs WEIGHT_IMAGE"):
        map_config({"WEIGHT_TYPE": ["MAP_RMS"]})
    with pytest.raises(SExtractorConfigError, match="cannot read"):
        read_sextractor_config(tmp_path / "missing.sex")


@pytest.mark.parametrize("wtype, to_map", [
    ("MAP_RMS", lambda rms: rms), ("MAP_VAR", lambda rms: rms**2), ("MAP_WEIGHT", lambda rms: 1 / rms**2)])
def test_weight_maps_become_rms_and_mask(tmp_path, wtype, to_map):
    (tmp_path / "w.fits").write_bytes(b"")
    cfg = map_config({"WEIGHT_TYPE": [wtype], "WEIGHT_IMAGE": [str(tmp_path / "w.fits")]})
    rms = np.full((4, 4), 2.0, np.float32)
    weight = to_map(rms)
    weight[0, 0] = 0.0 if wtype == "MAP_WEIGHT" else np.inf
    image = np.ones((4, 4), np.float32)
    img, got = weighted_inputs(cfg, image, weight)
    assert np.isnan(img[0, 0]) and got[0, 0] == 1.0  # a pixel without information is masked
    assert np.allclose(got.ravel()[1:], 2.0) and np.all(img.ravel()[1:] == 1.0)


def _isolated_ious(seg_a, seg_b):
    """IoU of every object that is one object in both maps (no split or merge either way)."""
    ious = []
    for i, sl in enumerate(ndimage.find_objects(seg_a), 1):
        if sl is None:
            continue
        a = seg_a[sl] == i
        ours = np.unique(seg_b[sl][a])
        ours = ours[ours > 0]
        if len(ours) != 1:
            continue
        b_full = seg_b == ours[0]
        b = seg_b[sl] == ours[0]
        if b_full.sum() != b.sum() or len(np.setdiff1d(np.unique(seg_a[b_full]), [0])) != 1:
            continue
        ious.append((a & b).sum() / (a | b).sum())
    return np.array(ious)


@pytest.mark.parametrize("seed, options", [(3, {}), (5, {"psf": "gaussian", "psf_fwhm": 3.5, "galaxy_density": 1200.0})])
def test_sep_parity_with_the_same_settings(seed, options):
    sep = pytest.importorskip("sep")
    f = make_field(512, seed=seed, **options)
    cfg = map_config({})  # SExtractor's defaults: 1.5 sigma, minarea 5, default.conv, 32 levels, 0.005
    data = f.image.astype(np.float64)
    bkg = sep.Background(data, bw=64, bh=64, fw=3, fh=3)
    objects, sep_seg = sep.extract(data - bkg.back(), 1.5, err=f.rms.astype(np.float64), minarea=5,
                                   filter_kernel=DEFAULT_CONV, filter_type="conv", deblend_nthresh=32,
                                   deblend_cont=0.005, clean=False, segmentation_map=True)
    ours = segment(f.image, rms=f.rms, params=cfg.params(catalog="none")).labels
    assert abs(int(ours.max()) - len(objects)) <= 0.05 * len(objects)  # the same detections within 5 %
    pixel_iou = ((sep_seg > 0) & (ours > 0)).sum() / ((sep_seg > 0) | (ours > 0)).sum()
    assert pixel_iou > 0.95
    ious = _isolated_ious(sep_seg, ours)
    assert len(ious) >= 0.8 * len(objects)
    assert np.median(ious) == 1.0 and (ious == 1.0).mean() > 0.6 and np.percentile(ious, 10) > 0.9


def test_cli_reads_a_sex_file_and_its_weight_map(tmp_path, capsys):
    files = write_field(tmp_path / "f", size=256, seed=4)
    sex = tmp_path / "my.sex"
    sex.write_text(f"DETECT_THRESH 2.0\nDETECT_MINAREA 8\nCLEAN N\nBACK_SIZE 32\nWEIGHT_TYPE MAP_RMS\n"
                   f"WEIGHT_IMAGE {files['rms']}\nCATALOG_NAME x.cat\n")
    out = tmp_path / "labels.fits"
    assert main(["segment", "photutils", str(files["image"]), "--sextractor-config", str(sex), "-o", str(out),
                 "--set", "catalog=none"]) == 0
    err = capsys.readouterr().err
    assert "DETECT_THRESH" in err and "CATALOG_NAME" in err and "wrote" in err
    image = fits.getdata(files["image"]).astype(np.float32)
    rms = fits.getdata(files["rms"]).astype(np.float32)
    params = read_sextractor_config(sex).params(catalog="none")
    assert np.array_equal(fits.getdata(out), segment(image, rms=rms, params=params).labels)
    # --rms and WEIGHT_IMAGE together, or a config for another method: one clear line each
    assert main(["segment", "photutils", str(files["image"]), "--sextractor-config", str(sex), "--rms",
                 str(files["rms"]), "-o", str(tmp_path / "b.fits")]) == 2
    assert "keep one" in capsys.readouterr().err
    assert main(["segment", "kmeans", str(files["image"]), "--sextractor-config", str(sex), "-o", str(tmp_path / "c.fits")]) == 2
    assert "does not apply to kmeans" in capsys.readouterr().err

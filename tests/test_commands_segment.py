"""`galseg segment`: runs a registered method on FITS files, writes labels (and a catalog) safely."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from napari_galseg.cli import main
from napari_galseg.segmenters.photutils import segment
from napari_galseg.synth import write_field


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return write_field(tmp_path_factory.mktemp("field"), size=256, seed=3)


SETS = ["--set", "box_size=32", "--set", "tile_size=64"]


def test_segment_photutils_writes_labels_and_catalog(field, tmp_path, capsys):
    out, cat = tmp_path / "labels.fits", tmp_path / "sources.ecsv"
    rc = main(["segment", "photutils", str(field["image"]), "--rms", str(field["rms"]), "-o", str(out), "--catalog", str(cat), *SETS, "--set", "catalog=full"])
    assert rc == 0
    with fits.open(out) as hdul:
        labels = hdul[0].data
        assert labels.dtype.kind == "i" and hdul[0].header["EXTNAME"] == "LABELS"
        assert "CTYPE1" in hdul[0].header  # the image's WCS is carried over
    image = fits.getdata(field["image"]).astype(np.float32)
    rms = fits.getdata(field["rms"]).astype(np.float32)
    expected = segment(image, rms=rms, box_size=32)
    assert np.array_equal(labels, expected.labels)  # tiled CLI run == untiled in-memory run
    table = Table.read(cat)
    assert len(table) == labels.max() > 0
    assert {"label", "parent", "x_centroid", "kron_flux", "ra", "dec"} <= set(table.colnames)
    assert "wrote" in capsys.readouterr().err


def test_set_parameters_and_study_mode(field, tmp_path):
    default, study = tmp_path / "a.fits", tmp_path / "b.fits"
    assert main(["segment", "photutils", str(field["image"]), "-o", str(default), *SETS, "--set", "catalog=none"]) == 0
    assert main(["segment", "photutils", str(field["image"]), "-o", str(study), *SETS, "--set", "catalog=none",
                 "--set", "threshold_mode=study", "--set", "nsigma=1.5"]) == 0
    assert (fits.getdata(study) > 0).sum() < (fits.getdata(default) > 0).sum()


def test_refuses_to_overwrite_before_any_work(field, tmp_path, capsys):
    out = tmp_path / "labels.fits"
    out.write_bytes(b"mine")
    assert main(["segment", "photutils", str(field["image"]), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"mine"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["segment", "nosuch", "IMG", "-o", "x.fits"], "unknown segmenter 'nosuch'"),
        (["segment", "photutils", "IMG", "-o", "OUT", "--set", "nsigma"], "--set expects key=value"),
        (["segment", "photutils", "IMG", "-o", "OUT", "--set", "sigma=3"], "unknown setting 'sigma'"),
        (["segment", "photutils", "IMG", "-o", "OUT", "--set", "threshold_mode=x"], "threshold_mode takes one of filtered, study"),
        (["segment", "photutils", "IMG", "-o", "OUT", "--set", "nsigma=abc"], "nsigma=abc is not valid: nsigma takes a number"),
        (["segment", "photutils", "IMG", "-o", "OUT", "--set", "nsigma=nan"], "nsigma=nan is not valid"),
        (["segment", "photutils", "IMG", "-o", "OUT", "--set", "nsigma=inf"], "nsigma=inf is not valid"),
        (["segment", "photutils", "IMG", "-o", "OUT", "--set", "deblend=maybe"], "deblend takes true or false"),
        (["segment", "photutils", "IMG", "-o", "OUT", "--set", "n_pixels=2.5"], "n_pixels takes a whole number"),
        (["segment", "photutils", "IMG", "-o", "OUT", "--set", "tile_overlap=8"], "unknown setting 'tile_overlap'"),
        (["segment", "photutils", "IMG", "-o", "OUT", "--recipe", "r.json"], "--recipe does not apply"),
        (["segment", "photutils", "IMG"], "missing -o"),
        (["segment", "photutils", "missing.fits", "-o", "OUT"], "does not exist"),
    ],
)
def test_user_errors_are_one_line(field, tmp_path, capsys, argv, message):
    argv = [str(field["image"]) if a == "IMG" else str(tmp_path / "out.fits") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_mismatched_rms_is_refused(field, tmp_path, capsys):
    small = tmp_path / "small_rms.fits"
    fits.writeto(small, np.ones((10, 10), np.float32))
    assert main(["segment", "photutils", str(field["image"]), "--rms", str(small), "-o", str(tmp_path / "o.fits")]) == 2
    assert "same pixel grid" in capsys.readouterr().err
    assert not (tmp_path / "o.fits").exists()


def test_trainable_method_without_model_says_to_train(field, tmp_path, capsys):
    from napari_galseg.segmenters import available, get

    trainable = [name for name in available() if get(name).capabilities.trainable]
    if not trainable:
        pytest.skip("no trainable segmenter registered yet")
    assert main(["segment", trainable[0], str(field["image"]), "-o", str(tmp_path / "o.fits")]) == 2
    assert "galseg train" in capsys.readouterr().err


def test_params_lists_the_dataclass_fields(capsys):
    assert main(["segment", "photutils", "--params"]) == 0
    out = capsys.readouterr().out
    assert "nsigma = 2.5" in out and "threshold_mode = filtered" in out and "min_snr = 6.0" in out
    # grouped: the method's parameters, then run options; each with its description
    assert out.index("# photutils parameters") < out.index("# run options") and "n_threads = 0" in out
    assert "# detection threshold in units of the noise" in out

"""Masks and multi-extension coadds: HSC/LSST (IMAGE, MASK, VARIANCE), DES (SCI, MSK, WGT) and HST
(SCI, WHT) files give the labels of the same field as img + rms + mask; masked pixels (a stripe,
a bright galaxy) are never labelled; plane choices by hand and bad masks are one-line errors."""
import numpy as np
import pytest
from astropy.io import fits

from napari_galseg.cli import main
from napari_galseg.frames import bad_bits, find_planes, open_frame
from napari_galseg.frames.layouts import HSC_PLANES, write_coadd
from napari_galseg.synth import make_field

SETS = ["--set", "box_size=32", "--set", "tile_size=64"]


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """A 192² field, a bad mask (a 12-row stripe and the brightest galaxy's box) and the plain files."""
    root = tmp_path_factory.mktemp("coadds")
    f = make_field(192, seed=7)
    ids, counts = np.unique(f.truth[f.truth > 0], return_counts=True)
    ys, xs = np.nonzero(f.truth == ids[np.argmax(counts)])
    bad = np.zeros(f.image.shape, bool)
    bad[100:112] = True
    bad[max(0, ys.min() - 3): ys.max() + 4, max(0, xs.min() - 3): xs.max() + 4] = True
    fits.writeto(root / "img.fits", f.image)
    fits.writeto(root / "rms.fits", f.rms)
    fits.writeto(root / "mask.fits", bad.astype(np.uint8))
    for layout in ("hsc", "des", "hst"):
        write_coadd(root / f"{layout}.fits", f.image, f.rms, layout, bad=bad)
    return root, f, bad


def _segment(image, out, *extra):
    assert main(["segment", "photutils", str(image), *extra, "-o", str(out), *SETS]) == 0
    return np.array(fits.getdata(out))


@pytest.fixture(scope="module")
def reference(field, tmp_path_factory):
    """Labels of img + rms + mask, and of img + rms alone."""
    root, _, _ = field
    out = tmp_path_factory.mktemp("ref")
    masked = _segment(root / "img.fits", out / "masked.fits", "--rms", str(root / "rms.fits"),
                      "--mask", str(root / "mask.fits"))
    plain = _segment(root / "img.fits", out / "plain.fits", "--rms", str(root / "rms.fits"))
    return masked, plain


def test_the_masked_stripe_and_galaxy_are_never_labelled(field, reference):
    _, _, bad = field
    masked, plain = reference
    assert plain[bad].any() and not masked[bad].any()
    assert masked.max() >= 5


@pytest.mark.parametrize("layout", ["hsc", "des", "hst"])
def test_a_coadd_in_one_argument_gives_the_labels_of_img_rms_mask(field, reference, tmp_path, layout, capsys):
    root, _, _ = field
    masked, _ = reference
    np.testing.assert_array_equal(_segment(root / f"{layout}.fits", tmp_path / "out.fits"), masked)
    err = capsys.readouterr().err
    assert "noise from" in err and "estimated" not in err


def test_planes_are_found_by_extname(field):
    root, _, _ = field
    hsc, des, hst = (find_planes(root / f"{n}.fits") for n in ("hsc", "des", "hst"))
    assert (hsc.science, hsc.mask, hsc.noise, hsc.noise_kind) == (1, 2, 3, "variance")
    assert (des.science, des.mask, des.noise, des.noise_kind) == (1, 2, 3, "weight")
    assert (hst.science, hst.mask, hst.noise, hst.noise_kind) == (1, None, 2, "weight")


def test_mask_bits_by_name_number_or_value(field):
    root, _, _ = field
    header = fits.getheader(root / "hsc.fits", "MASK")
    default = bad_bits(None, header)
    assert default & (1 << HSC_PLANES["BAD"]) and not default & (1 << HSC_PLANES["DETECTED"])
    assert bad_bits("MP_BAD,SAT", header) == bad_bits("0,1", header) == bad_bits("0x3", header) == 3
    assert bad_bits(None, fits.getheader(root / "des.fits", "MSK")) == -1  # no names: any set bit
    with pytest.raises(ValueError, match="'MP_FOO' is not named in the mask's header"):
        bad_bits("MP_FOO", header)


def test_choosing_only_the_detected_bit_masks_its_rows(field):
    root, _, _ = field
    frame = open_frame(root / "hsc.fits", mask_bits="DETECTED")
    valid = np.asarray(frame.valid)
    assert not valid[97].any() and valid[100:112].all()


def test_planes_by_hand_override_the_names(field, reference, tmp_path):
    root, _, _ = field
    masked, plain = reference
    np.testing.assert_array_equal(
        _segment(root / "hsc.fits", tmp_path / "a.fits", "--hdu", "IMAGE", "--noise-hdu", "VARIANCE",
                 "--mask-hdu", "2"), masked)
    # the plain science plane of a coadd with a separate rms file: --rms wins over the VARIANCE plane
    np.testing.assert_array_equal(
        _segment(root / "des.fits", tmp_path / "b.fits", "--rms", str(root / "rms.fits"),
                 "--mask", str(root / "mask.fits")), masked)


@pytest.mark.parametrize("argv, message", [
    (["--noise-hdu", "NOPE"], "has no HDU 'NOPE'"),
    (["--mask-bits", "MP_FOO"], "'MP_FOO' is not named in the mask's header"),
    (["--mask", "{root}/small.fits"], "the mask"),
    (["--weight-type", "MAP_BOGUS"], "unknown weight type 'MAP_BOGUS'"),
])
def test_bad_planes_stop_with_one_line_and_no_output(field, tmp_path, capsys, argv, message):
    root, _, _ = field
    fits.writeto(root / "small.fits", np.zeros((10, 10), np.uint8), overwrite=True)
    out = tmp_path / "out.fits"
    argv = [a.replace("{root}", str(root)) for a in argv]
    assert main(["segment", "photutils", str(root / "hsc.fits"), *argv, "-o", str(out), *SETS]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_frame_masked_everywhere_says_so(field, tmp_path, capsys):
    root, f, _ = field
    write_coadd(tmp_path / "all.fits", f.image, f.rms, "des", bad=np.ones(f.image.shape, bool))
    assert main(["segment", "photutils", str(tmp_path / "all.fits"), "-o", str(tmp_path / "o.fits"), *SETS]) == 2
    assert "every pixel of the frame is undefined (the mask" in capsys.readouterr().err


def test_many_coadds_into_a_folder_equal_their_single_runs(field, reference, tmp_path):
    root, _, _ = field
    masked, _ = reference
    out = tmp_path / "out"
    assert main(["segment", "photutils", str(root / "hsc.fits"), str(root / "des.fits"), "-o", str(out), *SETS]) == 0
    for name in ("hsc", "des"):
        np.testing.assert_array_equal(fits.getdata(out / f"{name}_labels.fits"), masked)


@pytest.mark.parametrize("layout", ["hsc", "des", "hst"])
def test_a_coadd_written_in_strips_is_the_file_written_at_once(field, tmp_path, monkeypatch, layout):
    """Survey-size coadds are streamed a strip of rows at a time from memory maps, with a broadcast
    bad-row view instead of a full-frame mask: the file is byte for byte the one-strip file."""
    from napari_galseg.frames import layouts

    root, f, _ = field
    rows = np.zeros(f.image.shape[0], bool)
    rows[100:112] = True
    bad = np.broadcast_to(rows[:, None], f.image.shape)
    image = fits.getdata(root / "img.fits", memmap=True)
    rms = fits.getdata(root / "rms.fits", memmap=True)
    write_coadd(tmp_path / "whole.fits", f.image, f.rms, layout, bad=np.array(bad))
    monkeypatch.setattr(layouts, "STRIP_PIXELS", 7 * f.image.shape[1])  # 28 strips, the last one short
    write_coadd(tmp_path / "strips.fits", image, rms, layout, bad=bad)
    assert (tmp_path / "strips.fits").read_bytes() == (tmp_path / "whole.fits").read_bytes()
    with fits.open(tmp_path / "strips.fits") as hdul:
        noise = hdul[3 if layout != "hst" else 2].data
        expected = {"hsc": f.rms.astype(np.float64) ** 2, "des": 1 / f.rms.astype(np.float64) ** 2,
                    "hst": np.where(bad, 0.0, 1 / f.rms.astype(np.float64) ** 2)}[layout]
        assert np.array_equal(noise, expected.astype(np.float32))
        if layout != "hst":
            assert np.array_equal(hdul[2].data.astype(np.int64) & 1 << (0 if layout == "hsc" else 1) != 0, bad)


def test_a_coadd_of_mismatched_planes_is_refused_in_one_line(field, tmp_path):
    _, f, _ = field
    with pytest.raises(ValueError, match="one shape"):
        write_coadd(tmp_path / "bad.fits", f.image, f.rms[:-1], "hsc")
    assert not list(tmp_path.iterdir())

"""SExtractor mode's pieces that need no SExtractor binary: they run everywhere."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage as ndi

from napari_galseg.sextractor import ExtractSettings, SExtractorInputError, catalog_columns, extract, write_catalog
from napari_galseg.sextractor.deblend import GlibcRand, pairwise_sum
from napari_galseg.sextractor.known import KNOWN_PARAMS
from napari_galseg.sextractor.lutz import lutz_lists
from napari_galseg.sextractor.params import read_param
from napari_galseg.synth import make_field


def test_glibc_rand_sequence():
    """The first values of glibc's rand() without srand(): what SExtractor's deblending draws."""
    rng = GlibcRand()
    assert [rng() for _ in range(5)] == [1804289383, 846930886, 1681692777, 1714636915, 1957747793]


def test_lutz_lists_finds_the_8_connected_components_in_completion_order():
    rng = np.random.default_rng(3)
    above = rng.random((60, 70)) > 0.6
    flat, offsets = lutz_lists(above, 1)
    lab, n = ndi.label(above, structure=np.ones((3, 3), bool))
    assert len(offsets) - 1 == n
    ymax_seen = []
    for k in range(n):
        idx = flat[offsets[k]:offsets[k + 1]]
        ys, xs = idx // 70, idx % 70
        ids = np.unique(lab[ys, xs])
        assert len(ids) == 1 and (lab == ids[0]).sum() == len(idx)  # one whole component each
        ymax_seen.append(ys.max())
    assert ymax_seen == sorted(ymax_seen)  # completed on the line after their last row


def test_pairwise_sum_is_numpys_sum_to_the_bit():
    """The compiled moments rely on it: numpy's float64 sum is pairwise, not a running sum."""
    rng = np.random.default_rng(5)
    for n in [*range(0, 300), 1000, 4097, 65537, 300001]:
        a = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 6, size=n)
        assert pairwise_sum(a, 0, n) == a.sum(), n
    a = rng.normal(size=1000)
    assert pairwise_sum(a, 100, 500) == a[100:600].sum()


def test_param_file_vectors_and_left_out(tmp_path):
    p = tmp_path / "t.param"
    p.write_text("# comment\nNUMBER\nFLUX_APER(3)\nFLUX_RADIUS(2)\nVIGNET(5,5)\nFLUX_PETRO\n\nX_IMAGE  # trailing\n")
    params = read_param(p, KNOWN_PARAMS, {"PHOT_APERTURES": 3, "PHOT_FLUXFRAC": 2})
    assert params.columns == [("NUMBER", 0), ("FLUX_APER", 3), ("FLUX_RADIUS", 2), ("X_IMAGE", 0)]
    assert params.left_out == ["VIGNET", "FLUX_PETRO"]
    with pytest.raises(SExtractorInputError, match=r"t.param line 3: FLUX_APER\(4\) asks for 4 values"):
        p.write_text("NUMBER\n\nFLUX_APER(4)\n")
        read_param(p, KNOWN_PARAMS, {"PHOT_APERTURES": 3})


def test_extraction_and_catalogue_files(tmp_path):
    image = make_field(256, 5, psf_fwhm=3.0, galaxy_density=2000).image.astype(np.float32)
    res = extract(image, ExtractSettings(apertures=(4.0, 8.0)))
    c = res.columns
    n = len(c["NUMBER"])
    assert n > 10 and list(c["NUMBER"]) == list(range(1, n + 1))
    assert set(np.unique(res.segmentation)) == set(range(n + 1))
    assert np.all((c["X_IMAGE"] >= 1) & (c["X_IMAGE"] <= 256))  # 1-based
    assert c["FLUX_APER"].shape == (n, 2) and np.all(c["FLUX_APER"][:, 1] > c["FLUX_APER"][:, 0] * 0.5)

    from napari_galseg.sextractor.params import ParamList

    params = ParamList(None, [("NUMBER", 0), ("X_IMAGE", 0), ("FLUX_APER", 2), ("FLAGS", 0)], [])
    cols = catalog_columns(c, params)
    write_catalog(cols, tmp_path / "a.cat", "ASCII_HEAD")
    lines = (tmp_path / "a.cat").read_text().splitlines()
    assert lines[0].startswith("#   1 NUMBER ") and lines[2].startswith("#   3 FLUX_APER") and lines[2].endswith("[count]")
    assert lines[3].startswith("#   5 FLAGS")  # a vector takes as many column numbers as values
    assert len(lines) == 4 + n and len(lines[4].split()) == 5
    write_catalog(cols, tmp_path / "l.cat", "FITS_LDAC", image_header=fits.Header({"OBJECT": "field"}))
    with fits.open(tmp_path / "l.cat") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "LDAC_IMHEAD", "LDAC_OBJECTS"]
        assert any(card.startswith("OBJECT") for card in hdul[1].data["Field Header Card"][0])
        assert hdul[2].columns["FLUX_APER"].format == "2E" and hdul[2].columns["NUMBER"].format == "J"
        np.testing.assert_array_equal(hdul[2].data["NUMBER"], c["NUMBER"])
    write_catalog(cols, tmp_path / "f.cat", "FITS_1.0")
    with fits.open(tmp_path / "f.cat") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "OBJECTS"] and hdul[1].columns["FLAGS"].format == "I"
    with pytest.raises(FileExistsError):
        write_catalog(cols, tmp_path / "f.cat", "FITS_1.0", overwrite=False)  # never replaced silently


def test_cli_all_nan_frame_is_one_line(tmp_path, monkeypatch, capsys):
    """SExtractor mode reads the frame itself (no dask): an all-NaN frame still gets one line."""
    from napari_galseg.cli import main

    fits.writeto(tmp_path / "nan.fits", np.full((64, 64), np.nan, np.float32))
    (tmp_path / "t.param").write_text("NUMBER\nX_IMAGE\n")
    (tmp_path / "t.sex").write_text("PARAMETERS_NAME t.param\nFILTER N\nCATALOG_TYPE ASCII_HEAD\n")
    monkeypatch.chdir(tmp_path)
    assert main(["segment", "photutils", "nan.fits", "--sextractor-config", "t.sex", "-o", "labels.fits",
                 "--catalog", "out.cat"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no finite pixels" in err[-1] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "labels.fits").exists()

"""The photutils widget loads a SExtractor .sex file: the form gets the mapped values, the rest is reported."""
import numpy as np
import pytest

pytestmark = pytest.mark.gui

SEX = """# a user's configuration
DETECT_THRESH    3.0
DETECT_MINAREA   12
FILTER           N
DEBLEND_MINCONT  0.01
CLEAN            Y
CATALOG_NAME     x.cat
BACK_SIZE        32
"""


def _widget(make_napari_viewer):
    from napari_galseg.widgets.segment import PhotutilsWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.float32), name="img")
    return PhotutilsWidget(viewer)


def test_a_sex_file_fills_the_form_and_says_what_it_does_not_honour(make_napari_viewer, tmp_path):
    from napari_galseg.segmenters.photutils.sextractor import read_sextractor_config

    (tmp_path / "field.sex").write_text(SEX)
    widget = _widget(make_napari_viewer)
    widget.sextractor.file.value = str(tmp_path / "field.sex")  # choosing the file loads it
    params = widget.current_params()
    assert (params.nsigma, params.n_pixels, params.fwhm, params.contrast, params.box_size) == (3.0, 12, 0.0, 0.01, 32)
    assert params == read_sextractor_config(tmp_path / "field.sex").params()  # the core reader's mapping
    report = widget.sextractor.report.value
    assert report.startswith("field.sex: set") and "not honoured: CLEAN" in report and "\n" not in report
    assert "CATALOG_NAME" in widget.sextractor.report.tooltip  # the full report on hover
    assert widget.status.value == "loaded field.sex"


def test_a_bad_sex_file_gives_one_line_and_leaves_the_form(make_napari_viewer, tmp_path):
    (tmp_path / "bad.sex").write_text("DETECT_THRESH high\n")
    (tmp_path / "nofilter.sex").write_text("FILTER Y\nFILTER_NAME nowhere.conv\n")
    widget = _widget(make_napari_viewer)
    before = widget.current_params()
    for name, message in [("bad.sex", "DETECT_THRESH needs a number"), ("nofilter.sex", "FILTER_NAME nowhere.conv: no such file")]:
        widget.sextractor.file.value = str(tmp_path / name)
        assert widget.status.value.startswith("error: ") and message in widget.status.value, widget.status.value
        assert "\n" not in widget.status.value and widget.current_params() == before

"""Dropping a survey coadd into napari gives one layer per plane, named after it (IMAGE, MASK,
VARIANCE / SCI, MSK, WGT / SCI, WHT), the mask as labels and the noise as a hidden noise map."""
import numpy as np
import pytest

from napari_galseg.frames.layouts import write_coadd
from napari_galseg.plugin.reader import get_reader
from napari_galseg.synth import make_field


@pytest.fixture(scope="module")
def coadds(tmp_path_factory):
    root = tmp_path_factory.mktemp("drop")
    f = make_field(96, seed=3)
    bad = np.zeros(f.image.shape, bool)
    bad[10:20] = True
    for layout in ("hsc", "des", "hst"):
        write_coadd(root / f"{layout}.fits", f.image, f.rms, layout, bad=bad)
    return root


@pytest.mark.parametrize("layout, expected", [
    ("hsc", [("hsc[IMAGE]", "image", "science"), ("hsc[VARIANCE]", "image", "noise"), ("hsc[MASK]", "labels", "mask")]),
    ("des", [("des[SCI]", "image", "science"), ("des[WGT]", "image", "noise"), ("des[MSK]", "labels", "mask")]),
    ("hst", [("hst[SCI]", "image", "science"), ("hst[CTX]", "image", None), ("hst[WHT]", "image", "noise")]),
])
def test_a_coadd_gives_layers_named_after_its_planes(coadds, layout, expected):
    path = str(coadds / f"{layout}.fits")
    layers = get_reader(path)(path)
    assert [(kw["name"], kind, kw["metadata"].get("galseg_plane")) for _, kw, kind in layers] == expected
    noise = next(kw for _, kw, _ in layers if kw["metadata"].get("galseg_plane") == "noise")
    assert noise["visible"] is False and noise["metadata"]["galseg_noise_kind"] == ("variance" if layout == "hsc" else "weight")


def test_viewer_open_names_the_planes(make_napari_viewer, coadds):
    viewer = make_napari_viewer()
    viewer.open(coadds / "hsc.fits", plugin="napari-galseg")
    assert [layer.name for layer in viewer.layers] == ["hsc[IMAGE]", "hsc[VARIANCE]", "hsc[MASK]"]
    assert type(viewer.layers["hsc[MASK]"]).__name__ == "Labels"

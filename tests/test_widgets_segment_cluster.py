"""The segmenter widget's "scheduler" run option: the same labels from a dask LocalCluster of worker
processes as from this process, and one clear line when the scheduler cannot be reached."""
import numpy as np
import pytest

from napari_galseg import cluster as galseg_cluster
from napari_galseg.segmenters import get
from napari_galseg.synth import make_field

pytestmark = pytest.mark.gui
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def local_cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def _photutils_widget(viewer):
    from napari_galseg.widgets.segment import SegmenterWidget

    field = make_field(size=192, seed=5)
    viewer.add_image(field.image, name="img")
    widget = SegmenterWidget(viewer, method="photutils")
    widget.run_form.tile_size.value = 64
    widget.params.box_size.value = 32
    return widget, field


def test_photutils_widget_on_a_dask_scheduler_gives_the_local_labels(make_napari_viewer, qtbot, local_cluster):
    viewer = make_napari_viewer()
    widget, field = _photutils_widget(viewer)
    assert widget.run_form.scheduler.value == ""  # empty = here
    widget.run_form.scheduler.value = local_cluster.scheduler_address
    with qtbot.waitSignal(widget.work_finished, timeout=60000):
        widget.run(field_of_view=False)
    assert widget.status.value.startswith("error") is False, widget.status.value
    local = get("photutils")(tile_size=64, box_size=32).predict(field.image).labels
    assert local.max() > 5
    np.testing.assert_array_equal(np.asarray(viewer.layers["photutils"].data), local)


def test_an_unreachable_scheduler_is_reported_in_the_widget(make_napari_viewer, qtbot, monkeypatch):
    monkeypatch.setattr(galseg_cluster, "CONNECT_TIMEOUT", 1.0)
    viewer = make_napari_viewer()
    widget, _ = _photutils_widget(viewer)
    widget.run_form.scheduler.value = "tcp://127.0.0.1:9"
    # napari's worker also re-raises a worker's error in the event loop (after the widget reported it)
    with qtbot.capture_exceptions() as raised, qtbot.waitSignal(widget.work_finished, timeout=30000):
        widget.run(field_of_view=False)
    assert "cannot reach the dask scheduler at 'tcp://127.0.0.1:9'" in widget.status.value
    assert [type(exc).__name__ for _, exc, _ in raised] in ([], ["SchedulerError"])

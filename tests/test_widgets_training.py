"""The training widget and the Jobs dock in a real viewer: real jobs, live progress and curves,
the model registered and listed by the segmenter widgets, a failure shown, the GUI never stalled."""
import time

import numpy as np
import pytest

from napari_galseg.synth import write_field

pytestmark = pytest.mark.gui

#: the longest the GUI thread may go without running its event loop while a job trains
MAX_STALL_S = 0.100


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return write_field(tmp_path_factory.mktemp("field"), size=128, seed=5)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("GALSEG_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("GALSEG_JOBS", str(tmp_path / "jobs"))
    return tmp_path


class Heartbeat:
    """A 20 ms timer on the GUI thread; ``worst`` is the longest gap between two of its ticks."""

    def __init__(self):
        from qtpy.QtCore import QTimer

        self.worst, self.last = 0.0, None
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self._tick)

    def _tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, now - self.last)
        self.last = now

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()


def _viewer_with_field(make_napari_viewer, field):
    from astropy.io import fits

    viewer = make_napari_viewer()
    viewer.add_image(fits.getdata(field["image"]).astype(np.float32), name="img")
    viewer.add_image(fits.getdata(field["rms"]).astype(np.float32), name="rms")
    viewer.add_labels(fits.getdata(field["truth"]).astype(np.int32), name="truth")
    return viewer


def _training_widget(viewer, method, runner, **settings):
    from napari_galseg.widgets.training import TrainingWidget

    widget = TrainingWidget(viewer)
    widget.method.value = method
    widget.runner.value = runner
    for form in widget.forms:
        for name, value in settings.items():
            if hasattr(form, name):
                getattr(form, name).value = value
    return widget


def _seen_progress(widget):
    values = []
    widget.progress.valueChanged.connect(values.append)
    return values


def test_a_forest_trained_from_layers_in_a_thread_lands_in_the_segmenter_model_list(make_napari_viewer, qtbot, field, folders):
    from napari_galseg.widgets.segment import ForestWidget

    viewer = _viewer_with_field(make_napari_viewer, field)
    segmenter = ForestWidget(viewer)
    builtins = [c for c in segmenter.model_choice.choices if c and "builtin_models" in c]
    assert segmenter.model_choice.choices == (*builtins, "")  # nothing registered yet: built-ins, then "none"
    widget = _training_widget(viewer, "forest", "thread", n_estimators=3)
    assert widget.inputs["truth"].layer.value is viewer.layers["truth"]  # preselected by its name
    widget.inputs["image"].layer.value = viewer.layers["img"]
    widget.inputs["rms"].layer.value = viewer.layers["rms"]
    widget.inputs["truth"].layer.value = viewer.layers["truth"]
    progress = _seen_progress(widget)

    with Heartbeat() as beat, qtbot.waitSignal(widget.job_ended, timeout=120000) as ended:
        widget.start()
    print(f"forest in a thread: GUI thread's longest stall {beat.worst * 1000:.0f} ms")
    assert ended.args == ["finished"], widget.status.value
    job = widget.job_dir
    assert job.parent == folders / "jobs" and (job / "inputs" / "image.fits").exists()  # layers saved as FITS
    assert (job / "inputs" / "truth.fits").exists() and progress and max(progress) == 2
    assert "model 'forest-" in widget.status.value and widget.registered.path.parent == folders / "models"
    # every forest widget lists it, newest first, and loads it when chosen
    choices = segmenter.model_choice.choices  # the built-ins stay first; magicgui appends new entries
    assert choices[: len(builtins)] == tuple(builtins) and str(widget.registered.path) in choices
    segmenter.model_choice.value = str(widget.registered.path)
    assert segmenter.model is not None and segmenter.model.fitted
    assert "loaded" in segmenter.status.value


def test_a_unet_in_a_process_draws_live_curves_without_stalling_the_viewer(make_napari_viewer, qtbot, field, folders):
    pytest.importorskip("torch")
    from jobs_helpers import TINY_UNET

    from napari_galseg.widgets.segment import UNetWidget

    viewer = make_napari_viewer()
    segmenter = UNetWidget(viewer)
    widget = _training_widget(viewer, "unet", "process", **{**TINY_UNET, "epochs": 4})
    widget.device.value = "cpu"
    for kind in ("image", "rms", "truth"):
        widget.inputs[kind].file.value = str(field[kind])
    progress = _seen_progress(widget)
    bars = []  # napari's activity dock shows the job too
    widget.watcher.records.connect(lambda _: bars.append(widget.activity.n if widget.activity is not None else None))

    with Heartbeat() as beat, qtbot.waitSignal(widget.job_ended, timeout=120000) as ended:
        widget.start()
    print(f"U-Net in a process: GUI thread's longest stall {beat.worst * 1000:.0f} ms")
    assert ended.args == ["finished"], widget.status.value
    assert beat.worst < MAX_STALL_S
    assert widget.curves.n_points == 4 and len(widget.curves.train_curve.getData()[0]) == 4
    assert len(widget.curves.iou_curve.getData()[1]) == 4
    assert max(progress) == 4 and widget.curves.parent() is not None  # docked in the viewer
    assert "Training curves" in viewer.window.dock_widgets
    assert max(b for b in bars if b is not None) == 4 and widget.activity is None  # activity bar, closed at the end
    models = [choice for choice in segmenter.model_choice.choices if choice and "builtin_models" not in choice]
    assert models == [str(widget.registered.path)] and widget.registered.val_iou is not None


def test_the_job_previews_the_field_of_view_after_a_validation(make_napari_viewer, qtbot, field, folders):
    """The job (in its process) segments the visible window with its model of the moment; the
    widget only shows the labels. (Showing them is a layer update: 130-850 ms of napari's drawing
    under Xvfb's software OpenGL here, which the heartbeat test above does not include: its viewer
    shows no image, so there is no field of view to preview.)"""
    pytest.importorskip("torch")
    from astropy.io import fits
    from jobs_helpers import TINY_UNET

    viewer = make_napari_viewer()
    viewer.add_image(fits.getdata(field["image"]).astype(np.float32), name="img")
    widget = _training_widget(viewer, "unet", "process", **{**TINY_UNET, "epochs": 3})
    widget.device.value = "cpu"
    for kind in ("image", "rms", "truth"):
        widget.inputs[kind].file.value = str(field[kind])
    assert widget.preview_box.value
    with qtbot.waitSignal(widget.job_ended, timeout=120000) as ended:
        widget.start()
    assert ended.args == ["finished"], widget.status.value
    preview = viewer.layers[f"training preview: {widget.job_dir.name}"]  # named after its job
    assert preview.metadata["epoch"] >= 1 and preview.data.shape == viewer.layers["img"].data.shape  # all in view
    assert (widget.job_dir / "preview.json").exists() and list(widget.job_dir.glob("preview-*.npy"))


def test_a_job_with_a_bad_input_file_ends_failed_and_the_widget_says_why(make_napari_viewer, qtbot, field, folders):
    viewer = make_napari_viewer()
    widget = _training_widget(viewer, "forest", "process")
    bad = folders / "not-fits.fits"
    bad.write_text("this is not a FITS file")
    widget.inputs["image"].file.value = str(bad)
    widget.inputs["truth"].file.value = str(field["truth"])

    with qtbot.waitSignal(widget.job_ended, timeout=60000) as ended:
        widget.start()
    assert ended.args == ["failed"]
    assert "failed: image file" in widget.status.value and "is not a readable FITS image" in widget.status.value
    assert not (folders / "models").exists() or not any((folders / "models").iterdir())


def test_settings_are_checked_before_any_job_folder_is_made(make_napari_viewer, folders):
    viewer = make_napari_viewer()
    widget = _training_widget(viewer, "forest", "thread")
    widget.inputs["image"].file.value = str(folders / "x.fits")
    assert widget.start() is None and "choose a truth layer or file" in widget.status.value
    assert not (folders / "jobs").exists()


def test_the_jobs_dock_lists_jobs_again_after_a_restart_shows_logs_and_cancels(make_napari_viewer, qtbot, field, folders):
    pytest.importorskip("torch")
    from jobs_helpers import unet_spec

    from napari_galseg.jobs import JobSpec, start_job
    from napari_galseg.widgets.jobs_dock import JobsDock

    jobs = folders / "jobs"
    failed = start_job(JobSpec(method="forest", image=str(folders / "missing.fits"), truth=str(field["truth"]),
                               output=str(folders / "m"), job_dir=str(jobs / "bad"), runner="thread")).wait(timeout=60)
    assert failed.status == "failed"
    running = start_job(unet_spec(field, jobs, name="long", runner="process", epochs=500))
    viewer = make_napari_viewer()
    dock = JobsDock(viewer)
    assert dock.status_of("bad").startswith("failed") and "missing.fits does not exist" in dock.status_of("bad")
    qtbot.waitUntil(lambda: dock.status_of("long").startswith("running, epoch"), timeout=60000)
    dock.select("long")
    dock.show_curves()
    qtbot.waitUntil(lambda: dock.curves.n_points > 0, timeout=30000)
    dock.cancel()
    qtbot.waitUntil(lambda: dock.status_of("long").startswith("cancelled"), timeout=60000)
    assert running.wait(timeout=30).status == "cancelled"
    dock.select("bad")
    text = dock.show_log().findChild(__import__("qtpy.QtWidgets", fromlist=["QPlainTextEdit"]).QPlainTextEdit).toPlainText()
    assert "missing.fits does not exist" in text and "method: forest" in text
    # napari restarts: a new dock rebuilds the list from the folders alone
    again = JobsDock(viewer)
    assert [p.name for p in again.rows] == ["bad", "long"] and again.status_of("long").startswith("cancelled")


def test_a_frame_with_no_truth_trains_like_itself_and_the_model_segments_it(make_napari_viewer, qtbot, tmp_path, folders):
    """'like this frame': no truth layer, a simulated field made like the image, a model that
    records the frame's conditions and segments the frame."""
    from astropy.io import fits

    from napari_galseg.synth.galsim_backend import write_galsim_field
    from napari_galseg.widgets.segment import ForestWidget

    frame = write_galsim_field(tmp_path / "frame", 384, seed=8, psf="kolmogorov", psf_fwhm=3.0, star_density=150.0)
    viewer = make_napari_viewer()
    viewer.add_image(fits.getdata(frame["image"]).astype(np.float32), name="frame")
    widget = _training_widget(viewer, "forest", "thread", n_estimators=3)
    widget.inputs["image"].layer.value = viewer.layers["frame"]
    assert widget.inputs["truth"].layer.value is None
    widget.start()
    assert "choose a truth layer or file (or tick 'like this frame')" in widget.status.value
    widget.like.value = True
    widget.like_size.value = 256
    with qtbot.waitSignal(widget.job_ended, timeout=300000) as ended:
        widget.start()
    assert ended.args == ["finished"], widget.status.value
    assert not (widget.job_dir / "inputs" / "truth.fits").exists()
    model = widget.registered
    assert model.provenance["conditions"]["psf_fwhm_px"] > 0 and "like" in model.provenance["training"]
    segmenter = ForestWidget(viewer)
    segmenter.model_choice.value = str(model.path)
    segmenter.image_combo.value = viewer.layers["frame"]
    with qtbot.waitSignal(segmenter.work_finished, timeout=120000):  # connected before the worker starts
        segmenter.run(field_of_view=False)
    assert "objects" in segmenter.status.value and "noise was estimated" in segmenter.status.value

"""A running job's model, shown on the field of view after each validation: see the model learn.

The viewer asks (:func:`napari_galseg.jobs.log.request_preview`) for the visible window of the
image; the job — in its own process, where the GPU and the cores are — segments that window of
its image with the weights of the moment after a validation (at most every
:data:`napari_galseg.jobs.run.PREVIEW_INTERVAL` seconds; methods that can snapshot themselves: the
U-Net) and leaves the labels beside its log. This object only writes the request and reads those
small arrays on the GUI thread: nothing is computed in napari's process, so the GUI never stalls.
One Labels layer, named after its job, shows the newest preview; each new one — of this job or of
the next one followed — replaces it, so previews never stack over the truth.
"""
from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QObject, Signal

from ..jobs import log
from ._layers import level0, offset_of, visible_region

LAYER_PREFIX = "training preview"


def layer_name(job_dir) -> str:
    """The preview layer's name: which job's model it shows."""
    return f"{LAYER_PREFIX}: {Path(job_dir).name}"


def _job_image_shape(job_dir) -> tuple[int, int] | None:
    """The shape of the job's image, from its FITS headers (cheap enough for the GUI thread), or
    None when it cannot be read."""
    from ..io import image_shape
    from ..jobs.spec import SPEC_NAME, JobSpec

    try:
        return image_shape(JobSpec.load(Path(job_dir) / SPEC_NAME).image)[-2:]
    except Exception:
        return None


class FieldOfViewPreview(QObject):
    """Asks a job for previews of the visible window of an image layer and shows them."""

    #: emitted on the GUI thread with the epoch of the preview just shown
    shown = Signal(int)

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.job_dir: Path | None = None
        self.job_shape: tuple[int, int] | None = None
        self.requested = None
        self.shown_epoch: int | None = None

    def follow(self, job_dir) -> None:
        """A new job: forget the last one's request and preview."""
        self.job_dir = Path(job_dir)
        self.job_shape, self.requested, self.shown_epoch = None, None, None

    def update(self, image_layer) -> bool:
        """Ask for the visible window of ``image_layer`` (when it shows the job's image) and show a
        preview the job made since the last call; True when a new one was shown."""
        if self.job_dir is None or image_layer is None:
            return False
        if self.job_shape is None:  # read once per job; () when it cannot be read
            self.job_shape = _job_image_shape(self.job_dir) or ()
        if not self.job_shape:
            return False
        if tuple(level0(image_layer).shape[-2:]) != self.job_shape:
            return False  # another image than the one the job trains on: nothing to compare
        rows, cols = visible_region(image_layer)
        window = (rows.start, rows.stop, cols.start, cols.stop)
        if window != self.requested:
            log.request_preview(self.job_dir, window)
            self.requested = window
        preview = log.read_preview(self.job_dir)
        if preview is None or preview["epoch"] == self.shown_epoch:
            return False
        self._show(preview, image_layer)
        return True

    def _show(self, preview: dict, image_layer) -> None:
        y0, _, x0, _ = preview["window"]
        translate = offset_of(image_layer, y0, x0)
        labels = preview["labels"]
        name = layer_name(self.job_dir)
        layer = next((lay for lay in self.viewer.layers if lay.metadata.get("galseg_role") == "preview"), None)
        if layer is not None:  # the last preview, of this job or an earlier one: replaced, renamed
            layer.data, layer.translate, layer.name = labels, translate, name
        else:
            layer = self.viewer.add_labels(labels, name=name, translate=translate, scale=image_layer.scale[-2:],
                                           opacity=0.5, metadata={"galseg_kind": "labels", "galseg_role": "preview"})
        layer.metadata["epoch"], layer.metadata["job"] = preview["epoch"], str(self.job_dir)
        self.shown_epoch = preview["epoch"]
        self.shown.emit(preview["epoch"])

"""The shared training loop: learning, reports, cancel, early stopping, exact resume, schedules."""
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_galseg.models.unet import UNet
from napari_galseg.preprocess import default_recipe
from napari_galseg.settings import RunOptions, SettingError, TrainConfig, parse_value
from napari_galseg.synth import make_field
from napari_galseg.training import device as dev
from napari_galseg.training.loop import fit, lr_at
from napari_galseg.training.patches import Augmentation, GridPatchDataset, PatchDataset, spatial_split
from napari_galseg.training.tasks import SegmentationTask


@pytest.fixture(scope="module")
def data():
    f = make_field(size=256, seed=0)
    recipe = default_recipe().fit(f.image, f.rms)
    split = spatial_split(f.image.shape, 64, block_size=128, val_fraction=0.25, test_fraction=0.0, seed=0)
    train = PatchDataset(f.image, f.truth, f.rms, recipe, split.train, 64, patches_per_epoch=16,
                         augmentation=Augmentation(), seed=0)
    val = GridPatchDataset(f.image, f.truth, f.rms, recipe, split.val, 64)
    return train, val, recipe.n_channels


def tiny(n_channels):
    torch.manual_seed(0)
    return UNet(n_channels, 2, depth=2, base_width=4)


def setup(**kw):
    """The loop's two settings: how to learn (TrainConfig) and where to run (RunOptions)."""
    base = dict(epochs=3, batch_size=8, lr=1e-2, device="cpu", bf16=False, seed=0, patience=0)
    base.update(kw)
    run_names = {"device", "bf16", "channels_last", "n_threads"}
    return {"config": TrainConfig(**{k: v for k, v in base.items() if k not in run_names}),
            "run": RunOptions(**{k: v for k, v in base.items() if k in run_names})}


def test_short_run_lowers_the_loss_and_reports(data):
    train, val, c = data
    model = tiny(c)
    reports = []
    result = fit(model, SegmentationTask(), train, val, **setup(epochs=4), callback=reports.append)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    epochs = [r for r in reports if r.kind == "epoch"]
    steps = [r for r in reports if r.kind == "step"]
    assert [r.epoch for r in epochs] == [1, 2, 3, 4]
    assert len(steps) == 4 * 2 and steps[0].n_steps == 2
    assert all(0 <= r.val_iou <= 1 and 0 <= r.val_dice <= 1 for r in epochs)
    assert "val IoU" in epochs[-1].line()
    assert result.stopped == "completed" and result.best_epoch is not None
    assert not model.training


def test_resumed_run_equals_uninterrupted_run(data, tmp_path):
    train, val, c = data
    whole = tiny(c)
    ref = fit(whole, SegmentationTask(), train, val, **setup(restore_best=False), checkpoint_dir=tmp_path / "a")

    cancel = threading.Event()

    def stop_in_epoch_2(report):
        if report.kind == "step" and report.epoch == 2:
            cancel.set()

    part = tiny(c)
    first = fit(part, SegmentationTask(), train, val, **setup(restore_best=False), checkpoint_dir=tmp_path / "b",
                callback=stop_in_epoch_2, cancel=cancel)
    assert first.stopped == "cancelled" and first.epochs_run == 1
    resumed = tiny(c)
    torch.manual_seed(123)  # the checkpoint, not the caller's RNG, decides what happens next
    second = fit(resumed, SegmentationTask(), train, val, **setup(restore_best=False), checkpoint_dir=tmp_path / "b",
                 resume=True)
    assert second.stopped == "completed" and second.epochs_run == 3
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert [h["train_loss"] for h in second.history] == pytest.approx([h["train_loss"] for h in ref.history], rel=1e-6)
    assert (tmp_path / "b" / "best.pt").exists() and (tmp_path / "b" / "last.pt").exists()


def test_resume_without_checkpoint_or_with_a_damaged_one(data, tmp_path):
    train, val, c = data
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        fit(tiny(c), SegmentationTask(), train, val, **setup(epochs=1), checkpoint_dir=tmp_path, resume=True)
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="damaged"):
        fit(tiny(c), SegmentationTask(), train, val, **setup(epochs=1), checkpoint_dir=tmp_path, resume=True)


class ToyTask:
    """A linear regression whose validation loss is constant: early stopping must trigger."""

    def loss(self, model, batch, device, channels_last):
        x, y = batch
        return ((model(x.to(device)) - y.to(device)) ** 2).mean()

    def validate(self, model, loader, device, channels_last, autocast):
        return {"loss": 1.0}


def test_early_stopping_and_time_budget():
    x = torch.randn(32, 3)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    model = torch.nn.Linear(3, 1)
    result = fit(model, ToyTask(), data, data, **setup(epochs=50, patience=3, channels_last=False))
    assert result.stopped == "early_stopping" and result.epochs_run == 4 and result.best_epoch == 1
    result = fit(torch.nn.Linear(3, 1), ToyTask(), data, data,
                 **setup(epochs=10_000, max_minutes=0.5 / 60, channels_last=False))
    assert result.stopped == "time_budget" and result.epochs_run < 10_000


def test_schedules():
    cfg = TrainConfig(lr=1.0, schedule="onecycle", warmup_fraction=0.2)
    values = [lr_at(p, cfg) for p in np.linspace(0, 1, 101)]
    assert values[0] == pytest.approx(1 / 25) and max(values) == pytest.approx(1.0)
    assert int(np.argmax(values)) == 20 and values[-1] < 1e-3
    cos = TrainConfig(lr=1.0, schedule="cosine", warmup_fraction=0.0)
    assert lr_at(0, cos) == pytest.approx(1.0) and lr_at(1, cos) == pytest.approx(0.01)
    with pytest.raises(SettingError, match="schedule takes one of onecycle, cosine, constant"):
        parse_value(TrainConfig, "schedule", "step")


def test_device_choice():
    assert dev.resolve_device("cpu").type == "cpu"
    assert dev.resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            dev.resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        dev.resolve_device("tpu")
    assert dev.use_bf16(torch.device("cpu"), False) is False
    assert dev.use_bf16(torch.device("cpu"), "auto", training=True) is False
    assert dev.configure_threads(1) == 1
    dev.configure_threads()


class SlowTask(ToyTask):
    """Steps of 20 ms: an epoch of 1000 of them (20 s) would not fit a 2 s budget even once."""

    def loss(self, model, batch, device, channels_last):
        import time

        time.sleep(0.02)
        return super().loss(model, batch, device, channels_last)


def test_a_time_budget_cuts_epochs_so_the_curves_get_ten_points():
    from napari_galseg.training.loop import BUDGET_VALIDATIONS, stop_reason

    x = torch.randn(1000, 3)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    reports = []
    result = fit(torch.nn.Linear(3, 1), SlowTask(), data, data,
                 **setup(epochs=10_000, batch_size=1, max_minutes=2.0 / 60, channels_last=False),
                 callback=reports.append)
    epochs = [r for r in reports if r.kind == "epoch"]
    assert result.stopped == "time_budget"
    assert 10 <= len(epochs) <= BUDGET_VALIDATIONS + 1, [r.step for r in epochs]
    assert all(r.step < 1000 for r in epochs)  # each epoch cut short, validated
    assert 2.0 <= result.elapsed < 3.0
    assert stop_reason(result.stopped, result.epochs_run, result.elapsed, 2.0 / 60).startswith(
        "stopped by the time budget (2.0 s)")
    # no budget: whole epochs, as before
    result = fit(torch.nn.Linear(3, 1), ToyTask(), data, None, **setup(epochs=2, batch_size=100, channels_last=False))
    assert result.epochs_run == 2 and result.global_step == 20


def test_the_stop_reason_says_when_the_epochs_cap_cut_a_budget_short():
    from napari_galseg.training.loop import stop_reason

    text = stop_reason("completed", 20, 756.0, 45.0)
    assert "epochs cap (20 epochs) after 12 min 36 s of the 45 min 00 s budget" in text and "raise epochs" in text
    assert stop_reason("completed", 3, 5.0) == "ran all 3 epochs (5.0 s)"
    assert stop_reason("early_stopping", 7, 30.0, 10.0).startswith("stopped early")

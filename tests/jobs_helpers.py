"""Shared by the job tests: a tiny U-Net job spec on a 128² synthetic field."""
from napari_galseg.jobs import JobSpec

#: a U-Net that trains in about a second per epoch on 2 CPU cores
TINY_UNET = {"depth": 2, "base_width": 4, "patch_size": 32, "block_size": 32, "epochs": 2, "patches_per_epoch": 4,
             "batch_size": 4, "val_max_patches": 2, "bf16": False, "subtract_background": False, "patience": 0}


def unet_spec(files, root, name="job", runner="thread", runner_options=None, recipe=None, **settings) -> JobSpec:
    return JobSpec(method="unet", image=str(files["image"]), rms=str(files["rms"]), truth=str(files["truth"]),
                   output=str(root / f"{name}-model"), job_dir=str(root / name), settings={**TINY_UNET, **settings},
                   device="cpu", runner=runner, recipe=recipe, runner_options=runner_options or {})

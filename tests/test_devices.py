"""Device choices for a job: from nvidia-smi and CUDA_VISIBLE_DEVICES, never by importing torch."""
import subprocess
import sys

from napari_galseg.devices import device_choices, visible_gpus

GPUS = [(0, "NVIDIA A100"), (1, "NVIDIA H100"), (2, "NVIDIA L4")]


def test_visible_gpus_follow_cuda_visible_devices_in_torch_order():
    assert visible_gpus(GPUS, None) == ["NVIDIA A100", "NVIDIA H100", "NVIDIA L4"]
    assert visible_gpus(GPUS, "2,0") == ["NVIDIA L4", "NVIDIA A100"]
    assert visible_gpus(GPUS, "") == []
    assert visible_gpus(GPUS, "1,7,0") == ["NVIDIA H100"]  # CUDA stops at the first invalid index


def test_choices_start_with_auto_and_cpu_and_do_not_import_torch():
    code = ("import sys; from napari_galseg.devices import device_choices; c = device_choices(); "
            "print(c[:2]); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[('auto', 'auto'), ('cpu', 'cpu')]" and out[1] == "False"
    assert all(device.startswith(("auto", "cpu", "cuda:", "mps")) for _, device in device_choices())

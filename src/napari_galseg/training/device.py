"""Choosing the torch device, threads, seeds and the speed switches (bf16 autocast, channels_last).

Measured on the project's 2-core AMD EPYC (Zen 4, avx512_bf16) with a depth-4, width-16 U-Net on
4x256x256 batches (benchmarks/bench_unet_inference.py): fp32 0.5 Mpix/s, channels_last fp32 1.4,
channels_last + bf16 autocast 4.3. So on a CPU with native bf16 both are on by default for inference
(training: see :func:`use_bf16`); without native bf16 it is emulated and slower, so it stays off.
"""
from __future__ import annotations

import contextlib
import os
import random
import sys

import numpy as np
import torch


def cpu_count() -> int:
    """Cores this process may use (respects taskset/cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def avoid_triton_llvm_clash() -> bool:
    """Keep torch from loading triton in a process that already holds Mesa's LLVM (napari drawing
    with llvmpipe, e.g. under Xvfb): loading libtriton then segfaults, and torch tries it on the
    first optimizer it builds. Nothing here needs triton (no torch.compile), so it is hidden from
    torch in exactly that case. Returns True when it did so."""
    if "triton" in sys.modules:
        return False
    try:
        with open("/proc/self/maps") as maps:
            if "libLLVM" not in maps.read():
                return False
    except OSError:  # not Linux: no such clash known
        return False
    sys.modules["triton"] = None  # `import triton` now raises ImportError: torch runs without it
    return True


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu; an explicit choice that is unavailable is an error."""
    avoid_triton_llvm_clash()
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but this torch has no CUDA GPU available; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but Apple MPS is not available; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; choose auto, cpu, cuda, cuda:N or mps") from None


def configure_threads(n_threads: int | None = None) -> int:
    """Use all cores this process may use (or ``n_threads``) for intra-op parallelism."""
    n = int(n_threads) if n_threads else cpu_count()
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - libraries that draw from the global RNG
    torch.manual_seed(seed)


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 natively (avx512_bf16 / AMX); emulated bf16 is slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(device: torch.device, choice: bool | str | None = "auto", training: bool = False) -> bool:
    """Resolve the ``bf16`` option: "auto" means on where it is native and faster.

    On CPU, "auto" turns bf16 on for inference only: training steps measured no reliably faster
    (width 16: 6.6 vs 7.4 s/step; width 8: 4.9 vs 4.0 s/step, batch 8x256², channels_last) and
    bf16 gradients cost precision.
    """
    if isinstance(choice, str) and choice.lower() != "auto":
        choice = choice.lower() in {"1", "true", "yes", "on"}
    if choice is True or choice is False:
        if choice and device.type == "mps":
            return False  # autocast bf16 is not supported on mps
        return choice
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16() and not training
    return False


def use_channels_last(device: torch.device, choice: bool | str | None = "auto") -> bool:
    """channels_last helps convolutions on CPU (oneDNN) and on CUDA tensor cores; not on mps."""
    if isinstance(choice, str) and choice.lower() != "auto":
        choice = choice.lower() in {"1", "true", "yes", "on"}
    if choice is True or choice is False:
        return choice
    return device.type in {"cpu", "cuda"}


def autocast(device: torch.device, enabled: bool):
    """A bf16 autocast context on ``device`` (a no-op context when disabled)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

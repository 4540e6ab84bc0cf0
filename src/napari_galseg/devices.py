"""The devices a training job can be sent to, listed without torch and without touching a GPU.

A widget asks for the choices when it opens; importing torch (seconds) or creating a CUDA context
(hundreds of MiB held by napari until it closes) just to fill a dropdown is what this avoids:
GPUs are named by ``nvidia-smi``, filtered by ``CUDA_VISIBLE_DEVICES`` and numbered as torch
numbers them; without torch installed there is nothing but the CPU.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess


def _nvidia_gpus() -> list[tuple[int, str]]:
    """(index, name) of the NVIDIA GPUs ``nvidia-smi`` sees; none when it is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index,name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        index, _, name = line.partition(",")
        if index.strip().isdigit():
            gpus.append((int(index), name.strip()))
    return gpus


def visible_gpus(gpus: list[tuple[int, str]], visible: str | None) -> list[str]:
    """The names of the GPUs torch will see, in its order (``CUDA_VISIBLE_DEVICES`` by index)."""
    names = dict(gpus)
    if visible is None:
        return [name for _, name in sorted(gpus)]
    shown = []
    for item in visible.split(","):
        item = item.strip()
        if not item.isdigit():  # UUIDs or an empty value: name what cannot be matched generically
            if item:
                shown.append(f"GPU {item}")
            else:
                break
        elif int(item) in names:
            shown.append(names[int(item)])
        else:
            break  # CUDA stops at the first invalid entry
    return shown


def device_choices() -> list[tuple[str, str]]:
    """``(label, device)`` pairs: auto, cpu, then each visible GPU by name (``cuda:N``), and mps on a Mac."""
    choices = [("auto", "auto"), ("cpu", "cpu")]
    if importlib.util.find_spec("torch") is None:
        return choices
    names = visible_gpus(_nvidia_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    choices += [(f"cuda:{i} — {name}", f"cuda:{i}") for i, name in enumerate(names)]
    if platform.system() == "Darwin":
        choices.append(("mps (Apple GPU)", "mps"))
    return choices

"""Training checkpoints (resume) and safetensors weights (model folders), written atomically.

A checkpoint (``last.pt``/``best.pt``) holds everything a resumed run needs to continue exactly
where the interrupted one stopped: weights, optimizer moments, counters, early-stopping state,
history and the torch RNG. A model folder's weights are a plain safetensors file: no pickle, so a
folder from elsewhere cannot run code when it is loaded.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .._atomic import atomic_path
from ..model_folder import ModelFolderError

WEIGHTS_NAME = "weights.safetensors"
LAST, BEST = "last.pt", "best.pt"


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a checkpoint."""
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume (drop --resume to start afresh)")
    try:
        # our own checkpoints hold only tensors, numbers, strings, lists and dicts
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise ValueError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); it is damaged") from None


def save_weights(model: torch.nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, overwrite=True) as tmp:
        save_file(state, str(tmp), metadata=metadata or {})


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load safetensors weights into ``model``; a missing, damaged or mismatched file says so plainly."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise ModelFolderError(f"{path.parent} has no {path.name}: the model folder is incomplete (re-save or re-train it)")
    try:
        state = load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError, ...
        raise ModelFolderError(f"{path} is not a readable safetensors file ({exc}); the weights are corrupted") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            detail.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if wrong:
            k = wrong[0]
            detail.append(f"shape of {k} is {tuple(state[k].shape)}, the config says {tuple(expected[k].shape)}")
        raise ModelFolderError(f"{path} does not match the architecture in config.json: " + "; ".join(detail))
    model.load_state_dict(state)

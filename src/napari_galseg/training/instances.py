"""Patches with instance targets, and the training task of instance models (Mask R-CNN, DETR).

The datasets are the U-Net's (:mod:`.patches`: same spatial split, galaxy-aware sampling and
augmentation) with one change: an item's target is the patch's instance label map itself
(int64, 0 = sky), from which each model builds its own targets (boxes and masks for Mask R-CNN,
normalised boxes and masks for DETR) on the training device.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .patches import GridPatchDataset, PatchDataset

LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


class _InstanceTargets:
    def encode(self, image, rms, truth):
        inputs = self.recipe.network_input(image, rms)  # no-data pixels at the recipe's fills, as at inference
        return inputs, np.ascontiguousarray(truth, dtype=np.int64)


class InstancePatchDataset(_InstanceTargets, PatchDataset):
    """Random training patches: ``(inputs float32 (C, p, p), labels int64 (p, p))``."""


class GridInstanceDataset(_InstanceTargets, GridPatchDataset):
    """Fixed validation / test patches with their instance labels."""


def most_objects_per_patch(dataset, max_patches: int = 64) -> int:
    """The most objects in any of (up to ``max_patches`` of) the dataset's patches: DETR's query count
    must stay above it."""
    most = 0
    for i in range(min(len(dataset), max_patches)):
        labels = dataset[i][1]
        most = max(most, int(np.unique(labels[labels > 0]).size))
    return most


class InstanceTask:
    """Training loss and validation loss of an instance model (the loop's ``TrainTask``).

    ``train_mode_loss``: torchvision detection models return losses only in training mode; their
    GroupNorm has no running statistics, so validating in training mode (under ``no_grad``) changes
    no state. DETR returns its loss in eval mode when given labels.
    """

    def __init__(self, loss_fn: LossFn, train_mode_loss: bool = False):
        self.loss_fn = loss_fn
        self.train_mode_loss = bool(train_mode_loss)

    def loss(self, model, batch, device, channels_last):
        inputs, labels = batch
        return self.loss_fn(model, inputs.to(device), labels.to(device))

    def validate(self, model, loader, device, channels_last, autocast) -> dict:
        was_training = model.training
        model.train(self.train_mode_loss)
        total, n = 0.0, 0
        try:
            for inputs, labels in loader:
                with autocast():
                    value = self.loss_fn(model, inputs.to(device), labels.to(device))
                total += float(value) * len(inputs)
                n += len(inputs)
        finally:
            model.train(was_training)
        return {"loss": total / max(n, 1)}

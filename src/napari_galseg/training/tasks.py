"""Model-specific parts of training (see :class:`napari_galseg.training.loop.TrainTask`).

:class:`SegmentationTask` trains any network whose output is (foreground logit, distance logit) per
pixel, such as the U-Net: binary cross-entropy plus soft Dice on the galaxy mask (Dice keeps the
rare galaxy pixels from being ignored), and a cross-entropy on the normalised distance map weighted
towards galaxy pixels (that map is what splits touching galaxies).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def segmentation_loss(logits: torch.Tensor, targets: torch.Tensor, distance_weight: float = 1.0) -> torch.Tensor:
    """logits/targets ``(B, 2, H, W)``: channel 0 galaxy mask, channel 1 normalised distance."""
    logits = logits.float()
    fg_logit, dist_logit = logits[:, 0], logits[:, 1]
    fg, dist = targets[:, 0], targets[:, 1]
    bce = F.binary_cross_entropy_with_logits(fg_logit, fg)
    prob = torch.sigmoid(fg_logit)
    inter = (prob * fg).sum(dim=(1, 2))
    dice = 1 - (2 * inter + 1) / (prob.sum(dim=(1, 2)) + fg.sum(dim=(1, 2)) + 1)
    weight = fg + 0.1
    dist_bce = (F.binary_cross_entropy_with_logits(dist_logit, dist, reduction="none") * weight).sum() / weight.sum()
    return bce + dice.mean() + distance_weight * dist_bce


class SegmentationTask:
    """Loss and validation scores (loss, pixel IoU and Dice of the galaxy mask) for 2-map networks."""

    def __init__(self, distance_weight: float = 1.0, threshold: float = 0.5):
        self.distance_weight = float(distance_weight)
        self.threshold = float(threshold)

    def loss(self, model, batch, device, channels_last):
        inputs, targets = batch
        logits = model(_to_device(inputs, device, channels_last))
        return segmentation_loss(logits, targets.to(device), self.distance_weight)

    def validate(self, model, loader, device, channels_last, autocast) -> dict:
        total, n = 0.0, 0
        tp = fp = fn = 0
        for inputs, targets in loader:
            targets = targets.to(device)
            with autocast():
                logits = model(_to_device(inputs, device, channels_last))
            logits = logits.float()
            total += float(segmentation_loss(logits, targets, self.distance_weight)) * len(inputs)
            n += len(inputs)
            pred = torch.sigmoid(logits[:, 0]) > self.threshold
            true = targets[:, 0] > 0.5
            tp += int((pred & true).sum())
            fp += int((pred & ~true).sum())
            fn += int((~pred & true).sum())
        denom = tp + fp + fn
        return {
            "loss": total / max(n, 1),
            "iou": tp / denom if denom else 1.0,
            "dice": 2 * tp / (2 * tp + fp + fn) if denom else 1.0,
        }

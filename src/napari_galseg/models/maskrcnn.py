"""torchvision's Mask R-CNN set up for survey patches: nothing downloaded, no resize, hundreds of objects.

What differs from ``torchvision.models.detection.maskrcnn_resnet50_fpn()`` and why:

- **Backbone**: a small residual network (BasicBlocks, GroupNorm) with configurable widths, built
  here with ``weights=None``: nothing is downloaded, and GroupNorm trains from scratch at small
  batch sizes where frozen batch norm (torchvision's default for detection) would not normalise at
  all. Its first convolution takes the preprocessing recipe's channels (image, rms, snr...).
- **No resize**: the default transform blows a 256 px patch up to 800 px (25x the pixels for
  nothing); here ``min_size = max_size = `` the patch (or tile) side, so the scale is 1.
- **Anchors** one size per FPN level, 4…64 px by default (galaxies of a deep field span a few to a
  few hundred pixels in area; ``anchor_sizes`` changes them, e.g. 8…128 for a shallower, larger-scale field).
- **Detection caps**: ``box_detections_per_img`` defaults to 600 (torchvision's 100 silently drops
  objects of crowded patches), with RPN pre/post-NMS limits and sampled proposals raised to match.
- Inputs are already normalised by the recipe: mean 0, std 1 in the transform.

``architecture()`` returns a JSON-able description saved in a model folder's config.json;
:func:`build` rebuilds the same network from it.
"""
from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

DEFAULTS: dict[str, Any] = {
    "class": "MaskRCNN",
    "in_channels": 3,
    "widths": [32, 64, 128, 256],
    "blocks": [1, 1, 1, 1],
    "fpn_channels": 64,
    "mask_layers": 2,
    "rois_per_image": 256,
    "anchor_sizes": [4, 8, 16, 32, 64],
    "aspect_ratios": [0.5, 1.0, 2.0],
    "size": 256,
    "max_detections": 600,
    "score_threshold": 0.05,
    "nms_threshold": 0.5,
}


def _norm(channels: int) -> nn.Module:
    return nn.GroupNorm(min(8, channels), channels)


class SmallResNet(nn.Module):
    """Stem (stride 4) and four stages of BasicBlocks (strides 4, 8, 16, 32), GroupNorm throughout."""

    def __init__(self, in_channels: int, widths=(32, 64, 128, 256), blocks=(1, 1, 1, 1)):
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False), _norm(widths[0]),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        inplanes = widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks), start=1):
            stride = 1 if i == 1 else 2
            layers = []
            for k in range(n):
                s = stride if k == 0 else 1
                down = None
                if s != 1 or inplanes != width:
                    down = nn.Sequential(nn.Conv2d(inplanes, width, 1, s, bias=False), _norm(width))
                layers.append(BasicBlock(inplanes, width, s, down, norm_layer=_norm))
                inplanes = width
            setattr(self, f"layer{i}", nn.Sequential(*layers))

    def forward(self, x):  # IntermediateLayerGetter calls the children in order; kept for completeness
        x = self.stem(x)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x


def build(architecture: dict | None = None, **overrides) -> nn.Module:
    """A Mask R-CNN from an architecture dict (see :data:`DEFAULTS`); returns the torchvision model
    with an ``architecture()`` method added."""
    from ..training.device import avoid_triton_llvm_clash

    avoid_triton_llvm_clash()  # torchvision's detection models import torch._dynamo, which loads triton
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    arch = {**DEFAULTS, **(architecture or {}), **overrides}
    unknown = set(arch) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown Mask R-CNN architecture fields {sorted(unknown)}")
    widths, fpn = [int(w) for w in arch["widths"]], int(arch["fpn_channels"])
    body = SmallResNet(int(arch["in_channels"]), widths, [int(b) for b in arch["blocks"]])
    backbone = BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}, widths, fpn,
                               extra_blocks=LastLevelMaxPool())
    sizes = tuple((int(s),) for s in arch["anchor_sizes"])
    if len(sizes) != 5:
        raise ValueError(f"anchor_sizes needs one size per FPN level (5), got {list(arch['anchor_sizes'])}")
    anchors = AnchorGenerator(sizes, (tuple(float(a) for a in arch["aspect_ratios"]),) * len(sizes))
    n_det = int(arch["max_detections"])
    size = int(arch["size"])
    c = int(arch["in_channels"])
    model = MaskRCNN(
        backbone, num_classes=None, min_size=size, max_size=size, image_mean=[0.0] * c, image_std=[1.0] * c,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=max(2000, 4 * n_det), rpn_post_nms_top_n_train=max(1000, 2 * n_det),
        rpn_pre_nms_top_n_test=max(1000, 4 * n_det), rpn_post_nms_top_n_test=max(1000, 2 * n_det),
        rpn_batch_size_per_image=256, box_batch_size_per_image=int(arch["rois_per_image"]),
        box_detections_per_img=n_det, box_score_thresh=float(arch["score_threshold"]),
        box_nms_thresh=float(arch["nms_threshold"]),
        box_head=TwoMLPHead(fpn * 7 * 7, 4 * fpn), box_predictor=FastRCNNPredictor(4 * fpn, 2),
        mask_head=MaskRCNNHeads(fpn, [fpn] * int(arch["mask_layers"]), 1), mask_predictor=MaskRCNNPredictor(fpn, fpn, 2),
    )
    old = model.rpn.proposal_matcher
    matcher_class = sys.modules[__name__].OverlapOnlyMatcher
    model.rpn.proposal_matcher = matcher_class(old.high_threshold, old.low_threshold, old.allow_low_quality_matches)
    model.galseg_architecture = arch
    return model


def _overlap_only_matcher_class():
    """torchvision's RPN matcher, except that an object overlapping no anchor at all gets no anchor.

    torchvision gives each object the anchors of its highest IoU even when that IoU is 0 (its
    ``allow_low_quality_matches``): then *every* anchor ties and becomes a positive for that object.
    A galaxy cut by a patch's right or bottom edge to a 1 px sliver lies beyond the anchors' reach
    (their centres stop half a stride short of those edges), so most crowded patches had one: all
    16 k anchors of the patch turned positive with regression targets dozens of anchor widths long,
    and the RPN's box loss (~5, 90 % of the total) never fell.
    """
    from ..training.device import avoid_triton_llvm_clash

    avoid_triton_llvm_clash()
    from torchvision.models.detection._utils import Matcher

    class OverlapOnlyMatcher(Matcher):
        def set_low_quality_matches_(self, matches, all_matches, match_quality_matrix):
            highest, _ = match_quality_matrix.max(dim=1)
            _, pred_idx = torch.where((match_quality_matrix == highest[:, None]) & (highest[:, None] > 0))
            matches[pred_idx] = all_matches[pred_idx]

    OverlapOnlyMatcher.__qualname__ = "OverlapOnlyMatcher"  # found by name: models pickle
    OverlapOnlyMatcher.__module__ = __name__
    return OverlapOnlyMatcher


def __getattr__(name: str):
    """``OverlapOnlyMatcher`` is made on first use: torchvision's detection package loads only then."""
    if name == "OverlapOnlyMatcher":
        cls = globals()[name] = _overlap_only_matcher_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_image_size(model: nn.Module, size: int) -> None:
    """Make the transform keep images of side ``size`` at scale 1 (tiles larger than the patches)."""
    model.transform.min_size = (int(size),)
    model.transform.max_size = int(size)


def load_initial_weights(model: nn.Module, path: str) -> int:
    """Load the tensors of a local weights file (safetensors, or a torch state dict read with
    ``weights_only``) whose names and shapes match; say plainly when nothing matches."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"init_weights {p} is not a file (a local .safetensors or .pth state dict)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"init_weights {p} is not a readable state dict ({type(exc).__name__})") from None
        state = state.get("model", state) if isinstance(state, dict) else state
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not matched:
        raise ValueError(f"init_weights {p}: none of its {len(state)} tensors matches this Mask R-CNN "
                         "(names or shapes differ); it is not a weights file of this architecture")
    model.load_state_dict(matched, strict=False)
    return len(matched)


def instance_targets(labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchvision targets (boxes x0, y0, x1, y1 exclusive; labels 1; masks uint8) of a label patch."""
    ids = torch.unique(labels)
    ids = ids[ids > 0]
    masks = labels[None] == ids[:, None, None]
    if ids.numel():
        rows, cols = masks.any(dim=2), masks.any(dim=1)
        ar_y = torch.arange(labels.shape[0], device=labels.device)
        ar_x = torch.arange(labels.shape[1], device=labels.device)
        big = labels.shape[0] + labels.shape[1]
        y0 = torch.where(rows, ar_y, big).min(dim=1).values
        y1 = torch.where(rows, ar_y, -1).max(dim=1).values + 1
        x0 = torch.where(cols, ar_x, big).min(dim=1).values
        x1 = torch.where(cols, ar_x, -1).max(dim=1).values + 1
        boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    else:
        boxes = torch.zeros((0, 4))
    return {"boxes": boxes, "labels": torch.ones(ids.numel(), dtype=torch.int64, device=labels.device),
            "masks": masks.to(torch.uint8)}


def loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of Mask R-CNN's five losses for a batch of inputs (B, C, h, w) and label patches (B, h, w)."""
    targets = [instance_targets(lab) for lab in labels]
    losses = model(list(inputs), targets)
    return sum(losses.values())


def predict(model: nn.Module, inputs: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image: (mask probabilities (N, h, w), scores (N,)), highest score first (torchvision's
    own output: every mask pasted into a full image)."""
    out = model(list(inputs))
    return [(o["masks"][:, 0], o["scores"]) for o in out]


def predict_boxed(model: nn.Module, inputs: torch.Tensor, mask_threshold: float = 0.5):
    """Per image: a :class:`~napari_galseg.instance_tiles.BoxedMasks` — each detection's mask resized
    into its own box and thresholded, exactly as torchvision pastes it (1 px of padding, bilinear),
    without pasting it into a full image (a tile of pixels per detection: most of a CPU's time)."""
    from torch.nn import functional as F
    from torchvision.models.detection.roi_heads import expand_boxes, expand_masks

    from ..instance_tiles import BoxedMasks

    sizes = [tuple(x.shape[-2:]) for x in inputs]
    images, _ = model.transform(list(inputs))
    if [tuple(s) for s in images.image_sizes] != sizes:
        raise RuntimeError(f"Mask R-CNN resized its input {sizes} to {images.image_sizes}; call set_image_size first")
    features = model.backbone(images.tensors)
    proposals, _ = model.rpn(images, features)
    detections, _ = model.roi_heads(features, proposals, images.image_sizes)
    out = []
    for det in detections:
        masks, scale = expand_masks(det["masks"], padding=1)
        boxes = expand_boxes(det["boxes"], scale).to(torch.int64).tolist()
        local = []
        for mask, (bx0, by0, bx1, by1) in zip(masks, boxes):
            size = (max(by1 - by0 + 1, 1), max(bx1 - bx0 + 1, 1))
            resized = F.interpolate(mask[None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]
            local.append((resized > mask_threshold).cpu().numpy())
        origins = [(b[1], b[0]) for b in boxes]
        out.append(BoxedMasks(origins=origins, masks=local, scores=det["scores"].float().cpu().numpy()))
    return out

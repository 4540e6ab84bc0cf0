"""DETR panoptic (transformers ``DetrForSegmentation``) and Mask2Former, as galaxy instance models.

Both predict a fixed set of ``num_queries`` (class, mask) pairs per image, so **an image can hold at
most ``num_queries`` objects**: beyond that the Hungarian matching leaves objects without a query
in training, and at inference the surplus galaxies are simply not found. The segmenter therefore
sets ``num_queries`` to at least twice the most objects seen in a training patch (and predicts on
tiles of the training patch size, so the density per query stays what training saw).

Networks come from one of two places, never from the internet:

- a **local pretrained folder** (``save_pretrained`` output, e.g. ``detr-resnet-50-panoptic``): its
  config.json must describe a DETR (``model_type: detr``) or a Mask2Former; the class head is
  re-made for one class (galaxy); the number of input channels must match the recipe's;
- otherwise a **small configuration** that trains on a CPU: an HF ``ResNetConfig`` backbone (no
  timm, no download; BasicBlocks of ``backbone_widths``), ``d_model`` with ``d_model + heads``
  divisible by 8 (DETR's mask head concatenates the attention maps of all heads to the features
  and uses GroupNorm(8)).

Two things transformers' DETR does for a *pretrained* ResNet are wrong for one trained from scratch,
and :func:`build` undoes them (``backbone_norm="batch"``): it replaces every batch norm of the
backbone by a frozen one (identity statistics on a new network), and its rule for which backbone
parameters train ("stage.1/2/3" in the name) matches none of the HF ResNet's ("stages.1"...), so
the whole backbone stayed frozen at its random initialisation. ``stem_stride`` < 4 drops the
ResNet stem's stride-2 convolution and/or its max pool: DETR's mask head predicts at the stride of
the first stage, 4 px by default, coarser than half of these galaxies.

Post-processing (:func:`predict`) is the DETR panoptic one reduced to a single class: a query's
score is its softmax probability of "galaxy" (times its mean mask probability with ``mask_quality``,
as Mask2Former scores instances); its mask is its sigmoid mask upsampled to the input;
queries are painted in decreasing score order onto free pixels (``napari_galseg.instance_tiles``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

KINDS = ("detr", "mask2former")
DEFAULTS: dict[str, Any] = {
    "class": "DETR",
    "kind": "detr",
    "in_channels": 3,
    "num_queries": 200,
    "d_model": 64,
    "heads": 8,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "ffn_dim": 256,
    "backbone_widths": [32, 64, 128, 256],
    "backbone_depths": [1, 1, 1, 1],
    "stem_stride": 4,
    "backbone_norm": "batch",
}
#: what a model folder saved before these fields existed was built with
_LEGACY = {"stem_stride": 4, "backbone_norm": "frozen"}
STEM_STRIDES = (1, 2, 4)


class PretrainedFolderError(ValueError):
    """A local pretrained folder that is not a DETR / Mask2Former this model can start from."""


def _backbone_config(arch: dict):
    from transformers import ResNetConfig

    widths = [int(w) for w in arch["backbone_widths"]]
    return ResNetConfig(num_channels=int(arch["in_channels"]), embedding_size=widths[0], hidden_sizes=widths,
                        depths=[int(d) for d in arch["backbone_depths"]], layer_type="basic",
                        out_features=["stage1", "stage2", "stage3", "stage4"])


def make_config(arch: dict):
    """The transformers config of a small network described by ``arch``."""
    d, heads = int(arch["d_model"]), int(arch["heads"])
    if (d + heads) % 8:
        raise ValueError(f"DETR's mask head needs d_model + heads divisible by 8; got {d} + {heads}")
    if d % heads:
        raise ValueError(f"d_model ({d}) must be a multiple of heads ({heads})")
    common = {"num_labels": 1, "id2label": {0: "galaxy"}, "label2id": {"galaxy": 0}}
    if arch["kind"] == "detr":
        from transformers import DetrConfig

        return DetrConfig(backbone_config=_backbone_config(arch), num_channels=int(arch["in_channels"]),
                          num_queries=int(arch["num_queries"]), d_model=d, encoder_layers=int(arch["encoder_layers"]),
                          decoder_layers=int(arch["decoder_layers"]), encoder_attention_heads=heads,
                          decoder_attention_heads=heads, encoder_ffn_dim=int(arch["ffn_dim"]),
                          decoder_ffn_dim=int(arch["ffn_dim"]), **common)
    if arch["kind"] == "mask2former":
        from transformers import Mask2FormerConfig

        return Mask2FormerConfig(backbone_config=_backbone_config(arch), feature_size=d, mask_feature_size=d,
                                 hidden_dim=d, encoder_feedforward_dim=int(arch["ffn_dim"]),
                                 encoder_layers=int(arch["encoder_layers"]), decoder_layers=int(arch["decoder_layers"]) + 1,
                                 num_attention_heads=heads, dim_feedforward=int(arch["ffn_dim"]),
                                 num_queries=int(arch["num_queries"]), train_num_points=4096, **common)
    raise ValueError(f"unknown kind {arch['kind']!r}; choose one of {', '.join(KINDS)}")


def _model_class(kind: str):
    from ..training.device import avoid_triton_llvm_clash

    avoid_triton_llvm_clash()  # transformers' models import torch._dynamo, which loads triton
    import transformers

    return transformers.DetrForSegmentation if kind == "detr" else transformers.Mask2FormerForUniversalSegmentation


def _quiet_transformers():
    import transformers

    transformers.logging.set_verbosity_error()


def build(architecture: dict | None = None, **overrides):
    """A randomly initialised network from an architecture dict (see :data:`DEFAULTS`)."""
    arch = {**DEFAULTS, **(architecture or {}), **overrides}
    unknown = set(arch) - set(DEFAULTS) - {"pretrained"}
    if unknown:
        raise ValueError(f"unknown DETR architecture fields {sorted(unknown)}")
    _quiet_transformers()
    if int(arch["stem_stride"]) not in STEM_STRIDES:
        raise ValueError(f"stem_stride must be one of {STEM_STRIDES}, got {arch['stem_stride']}")
    if arch["backbone_norm"] not in ("batch", "frozen"):
        raise ValueError(f"backbone_norm must be 'batch' or 'frozen', got {arch['backbone_norm']!r}")
    model = _model_class(arch["kind"])(make_config(arch))
    resnet = _resnet(model)
    _set_stem_stride(resnet, int(arch["stem_stride"]))
    if arch["backbone_norm"] == "batch":
        _make_trainable(resnet)
    model.galseg_architecture = arch
    return model


def _resnet(model) -> torch.nn.Module:
    """The HF ResNet (embedder + encoder stages) inside a DETR or Mask2Former."""
    if hasattr(model, "detr"):
        return model.detr.model.backbone.model
    return model.model.pixel_level_module.encoder


def _set_stem_stride(resnet, stride: int) -> None:
    """ResNet's stem is a stride-2 7x7 convolution and a stride-2 max pool: keep what ``stride`` needs."""
    stem = resnet.embedder
    if stride < 4:
        stem.pooler = torch.nn.Identity()
    if stride < 2:
        stem.embedder.convolution.stride = (1, 1)


def _make_trainable(resnet) -> None:
    """Batch norm that learns in place of DETR's frozen one, and every backbone parameter trainable."""
    for parent in list(resnet.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__ == "DetrFrozenBatchNorm2d":
                setattr(parent, name, torch.nn.BatchNorm2d(child.weight.numel()))
    for parameter in resnet.parameters():
        parameter.requires_grad_(True)


def pretrained_kind(folder: str | Path) -> str:
    """``detr`` or ``mask2former`` for a local ``save_pretrained`` folder; a clear error otherwise."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not folder.is_dir() or not cfg_path.exists():
        raise PretrainedFolderError(f"{folder} is not a pretrained model folder (no config.json); give a local "
                                    "folder written by transformers' save_pretrained, e.g. detr-resnet-50-panoptic")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PretrainedFolderError(f"{cfg_path} is not valid JSON") from None
    if cfg.get("package") == "napari-galseg":
        raise PretrainedFolderError(f"{folder} is a napari-galseg model folder, not a transformers one; "
                                    "load it with `galseg segment detr --model` or Segmenter.load")
    kind = cfg.get("model_type")
    if kind not in KINDS:
        raise PretrainedFolderError(f"{folder} holds a {kind!r} model; a DETR ('detr') or Mask2Former "
                                    "('mask2former') folder is needed")
    if not any(folder.glob("*.safetensors")):
        raise PretrainedFolderError(f"{folder} has no .safetensors weights (pickled .bin weights are not loaded)")
    return kind


def from_pretrained(folder: str | Path, in_channels: int, num_queries: int):
    """Start from a local pretrained folder, re-made for one class and ``num_queries`` queries."""
    kind = pretrained_kind(folder)
    _quiet_transformers()
    cls = _model_class(kind)
    try:
        model = cls.from_pretrained(str(folder), num_labels=1, id2label={0: "galaxy"}, label2id={"galaxy": 0},
                                    num_queries=num_queries, ignore_mismatched_sizes=True, local_files_only=True,
                                    use_safetensors=True)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise PretrainedFolderError(f"{folder} cannot be loaded as a {kind} model: {exc}") from None
    channels = getattr(model.config, "num_channels", None) or getattr(getattr(model.config, "backbone_config", None),
                                                                       "num_channels", 3)
    if int(channels) != int(in_channels):
        raise PretrainedFolderError(f"{folder} takes {channels}-channel images but the preprocessing recipe makes "
                                    f"{in_channels}; choose a recipe with {channels} channels")
    _fine_tune_stages(model)
    model.galseg_architecture = {**DEFAULTS, "kind": kind, "in_channels": int(in_channels),
                                 "num_queries": int(num_queries), "backbone_norm": "frozen",
                                 "pretrained": model.config.to_dict()}
    return model


def _fine_tune_stages(model) -> None:
    """A pretrained DETR trains backbone stages 1-3 (DETR's intent; its name rule misses HF ResNets)."""
    if hasattr(model, "detr"):
        for name, parameter in _resnet(model).named_parameters():
            parameter.requires_grad_(any(f"stages.{k}." in name for k in (1, 2, 3)))


def rebuild(arch: dict):
    """The network of a saved model folder (weights loaded afterwards); pretrained-derived ones too."""
    if "pretrained" in arch:
        _quiet_transformers()
        kind = arch["kind"]
        cls = _model_class(kind)
        config = cls.config_class.from_dict(arch["pretrained"])
        model = cls(config)
        _fine_tune_stages(model)
        model.galseg_architecture = arch
        return model
    return build({**_LEGACY, **arch})


# -- training ------------------------------------------------------------------------------------
def _masks_and_boxes(labels: torch.Tensor):
    ids = torch.unique(labels)
    ids = ids[ids > 0]
    masks = (labels[None] == ids[:, None, None]).float()
    h, w = labels.shape
    if ids.numel():
        rows, cols = masks.amax(dim=2) > 0, masks.amax(dim=1) > 0
        ay, ax = torch.arange(h, device=labels.device), torch.arange(w, device=labels.device)
        y0 = torch.where(rows, ay, h).min(1).values.float()
        y1 = torch.where(rows, ay, -1).max(1).values.float() + 1
        x0 = torch.where(cols, ax, w).min(1).values.float()
        x1 = torch.where(cols, ax, -1).max(1).values.float() + 1
        boxes = torch.stack([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h], dim=1)
    else:
        boxes = torch.zeros((0, 4), device=labels.device)
    return masks, boxes


def loss(model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The model's own set-prediction loss for inputs (B, C, h, w) and label patches (B, h, w)."""
    targets = [_masks_and_boxes(lab) for lab in labels]
    classes = [torch.zeros(len(m), dtype=torch.long, device=inputs.device) for m, _ in targets]
    if model.galseg_architecture["kind"] == "detr":
        out = model(pixel_values=inputs, labels=[{"class_labels": c, "boxes": b, "masks": m}
                                                 for (m, b), c in zip(targets, classes)])
    else:
        out = model(pixel_values=inputs, mask_labels=[m for m, _ in targets], class_labels=classes)
    return out.loss


def predict(model, inputs: torch.Tensor, score_threshold: float = 0.3, mask_quality: bool = False,
            mask_threshold: float = 0.5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image: (mask probabilities (N, h, w) at input size, scores (N,)), highest score first.

    A query is kept when its class probability of "galaxy" exceeds ``score_threshold``. Its score is
    that probability, or with ``mask_quality`` that probability times the mean mask probability over
    its mask's pixels (Mask2Former's instance score): a query sure of "galaxy" but unsure where the
    galaxy is then ranks below one sure of both.
    """
    out = model(pixel_values=inputs)
    if model.galseg_architecture["kind"] == "detr":
        logits, masks = out.logits, out.pred_masks
    else:
        logits, masks = out.class_queries_logits, out.masks_queries_logits
    scores = logits.float().softmax(-1)[..., 0]  # class 0 = galaxy, the last one = no object
    result = []
    for s, m in zip(scores, masks):
        keep = torch.nonzero(s > score_threshold).flatten()
        if keep.numel():
            prob = F.interpolate(m[keep][None].float(), size=inputs.shape[-2:], mode="bilinear", align_corners=False)[0]
            prob = prob.sigmoid()
        else:
            prob = torch.zeros((0, *inputs.shape[-2:]), device=inputs.device)
        score = s[keep]
        if mask_quality and keep.numel():
            inside = (prob > mask_threshold).flatten(1)
            score = score * (prob.flatten(1) * inside).sum(1) / inside.sum(1).clamp(min=1)
        order = torch.argsort(score, descending=True)
        result.append((prob[order], score[order]))
    return result

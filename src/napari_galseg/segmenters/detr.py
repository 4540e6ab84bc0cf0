"""DETR panoptic segmenter (transformers ``DetrForSegmentation``; Mask2Former with ``kind``).

Starts from a local pretrained folder (``pretrained=/path/to/detr-resnet-50-panoptic``, loaded
offline, class head re-made for "galaxy") or from a small CPU configuration (HF ResNet backbone,
no timm, nothing downloaded). **Object cap:** a DETR image holds at most ``num_queries`` objects;
``num_queries = 0`` (the default) sets it to twice the most objects found in a sample of training
patches (at least 100), and inference runs on tiles of the training patch size, so a tile never
holds many more objects than training patches did. Galaxies beyond the cap in one tile are lost,
which the tile overlap cannot recover: raise ``num_queries`` for denser fields.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from .instance_model import INSTANCE_TRAIN_DEFAULTS, InstanceParams, InstanceSegmenter


@dataclass
class DetrParams(InstanceParams):
    """DETR / Mask2Former architecture on top of the shared settings."""

    #: detr (DetrForSegmentation) or mask2former (Mask2FormerForUniversalSegmentation)
    kind: Literal["detr", "mask2former"] = "detr"
    #: a local transformers folder (save_pretrained) to fine-tune, e.g. detr-resnet-50-panoptic; never downloaded
    pretrained: str = ""
    #: object queries = most objects per image; 0 = twice the most objects in a training patch (>= 100)
    num_queries: int = 0
    #: transformer width; d_model + heads must be divisible by 8 (DETR's mask head)
    d_model: int = 64
    #: attention heads
    heads: int = 8
    #: transformer encoder layers
    encoder_layers: int = 2
    #: transformer decoder layers
    decoder_layers: int = 2
    #: feed-forward width of the transformer
    ffn_dim: int = 256
    #: channels of the ResNet backbone's four stages (HF ResNetConfig: no timm, nothing downloaded)
    backbone_widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    #: residual blocks per backbone stage
    backbone_depths: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    #: stride of the backbone's stem (4 = ResNet's; 2 or 1 drop its pool / strided conv): the masks are
    #: predicted at this stride, so small galaxies need it low, at 2-4x the time per step
    stem_stride: int = 4
    #: queries whose class probability of "galaxy" is below this are not kept
    score_threshold: float = 0.3
    #: score = class probability x mean mask probability over the mask (Mask2Former's instance
    #: score), so that ill-placed masks rank low; otherwise the class probability alone. On by
    #: default: +0.018 segm AP on a validation field (docs/results.md, session 10)
    mask_quality: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4, got {self.stem_stride}")


class DetrSegmenter(InstanceSegmenter):
    """DETR panoptic (or Mask2Former) for galaxies: per-query masks and scores, tiled over any frame."""

    name = "detr"
    Params = DetrParams
    architecture_class = "DETR"
    #: tiles of the training patch size: the query cap was sized for patches
    run_defaults = {"tile_size": 256, "tile_overlap": 64, "tile_batch": 4}
    #: transformers need a gentler step than the CNNs
    train_defaults = {**INSTANCE_TRAIN_DEFAULTS, "lr": 2e-4}

    def __init__(self, params=None, **settings):
        super().__init__(params, **settings)
        #: a tile size the user set (even 256, the default's value) is kept after training
        self._tile_size_chosen = "tile_size" in settings or settings.get("run") is not None

    def configure(self, **settings):
        super().configure(**settings)
        self._tile_size_chosen = self._tile_size_chosen or "tile_size" in settings
        return self

    def _fit(self, image, truth, rms, progress, **kwargs) -> None:
        """Train, then (tile size not chosen by the user) predict on tiles of the training patch size:
        the query cap was sized for that many objects, and the sine position code is normalised
        to the image, so a larger tile is a differently scaled picture to the transformer (a model
        trained on 128² patches scored segm AP 0.098 on 128² tiles and 0.000 on one 512² tile)."""
        super()._fit(image, truth, rms, progress, **kwargs)
        patch, run = int(self.train_config.patch_size), self.run_options
        if not self._tile_size_chosen and patch != run.tile_size:
            self.run_options = dataclasses.replace(run, tile_size=patch, tile_overlap=min(run.tile_overlap, patch // 4))

    def _queries(self, train_data) -> int:
        from ..training.instances import most_objects_per_patch

        p = self.params
        most = most_objects_per_patch(train_data)
        self.provenance["most_objects_per_patch"] = most
        if p.num_queries:
            return int(p.num_queries)
        return max(100, 50 * -(-2 * most // 50))

    def build_net(self, in_channels: int, train_data):
        from ..models import detr

        p = self.params
        queries = self._queries(train_data)
        if p.pretrained:
            return detr.from_pretrained(p.pretrained, in_channels, queries)
        return detr.build(kind=p.kind, in_channels=in_channels, num_queries=queries, d_model=p.d_model, heads=p.heads,
                          encoder_layers=p.encoder_layers, decoder_layers=p.decoder_layers, ffn_dim=p.ffn_dim,
                          backbone_widths=list(p.backbone_widths), backbone_depths=list(p.backbone_depths), stem_stride=p.stem_stride)

    def rebuild_net(self, architecture: dict):
        from ..models import detr

        return detr.rebuild(architecture)

    def loss_fn(self, model, inputs, labels):
        from ..models import detr

        return detr.loss(model, inputs, labels)

    def predict_batch(self, inputs):
        from ..models import detr

        p = self.params
        return detr.predict(self._require_net(), inputs, p.score_threshold, p.mask_quality, p.mask_threshold)

"""Mask R-CNN segmenter (torchvision): scored galaxy instances, trained on patches of one field.

The network is :mod:`napari_galseg.models.maskrcnn` (small GroupNorm ResNet + FPN, nothing
downloaded, no resize, anchors 4…64 px, up to ``max_detections`` objects per tile). Training,
tiled inference and model folders are shared with DETR (:mod:`.instance_model`).

>>> seg = MaskRCNNSegmenter(max_minutes=10).fit(image, truth, rms)     # doctest: +SKIP
>>> result = seg.predict(image2, rms2); result.scores, result.catalog  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .instance_model import InstanceParams, InstanceSegmenter


@dataclass
class MaskRCNNParams(InstanceParams):
    """Mask R-CNN architecture on top of the shared settings."""

    #: channels of the backbone's four stages (GroupNorm ResNet, built here: nothing downloaded)
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    #: residual blocks per stage
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    #: channels of the feature pyramid and the heads
    fpn_channels: int = 64
    #: anchor side per FPN level (strides 4..64); synthetic galaxies have a median area of 14 px
    #: (side ~4) and a 99th percentile near 190 px (side ~14): a 4 px box overlaps an 8 px anchor with IoU 0.25
    anchor_sizes: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64])
    #: detections kept per tile; torchvision keeps 100, a 512² tile of a deep field holds ~200 galaxies
    max_detections: int = 600
    #: regions of interest sampled per training patch
    rois_per_image: int = 256
    #: convolutions of the mask head
    mask_layers: int = 2


class MaskRCNNSegmenter(InstanceSegmenter):
    """torchvision Mask R-CNN for galaxies: per-instance masks and scores, tiled over any frame."""

    name = "maskrcnn"
    Params = MaskRCNNParams
    architecture_class = "MaskRCNN"
    train_mode_loss = True
    run_defaults = {"tile_size": 512, "tile_overlap": 96, "tile_batch": 2}

    def build_net(self, in_channels: int, train_data):
        from ..models import maskrcnn

        p = self.params
        net = maskrcnn.build(in_channels=in_channels, widths=list(p.widths), blocks=list(p.blocks),
                             fpn_channels=p.fpn_channels, anchor_sizes=list(p.anchor_sizes), size=self.train_config.patch_size,
                             max_detections=p.max_detections, rois_per_image=p.rois_per_image,
                             mask_layers=p.mask_layers, score_threshold=min(0.05, p.score_threshold))
        if p.init_weights:
            maskrcnn.load_initial_weights(net, p.init_weights)
        return net

    def rebuild_net(self, architecture: dict):
        from ..models import maskrcnn

        return maskrcnn.build(architecture)

    def loss_fn(self, model, inputs, labels):
        from ..models import maskrcnn

        return maskrcnn.loss(model, inputs, labels)

    def prepare_inference(self, tile: int) -> None:
        from ..models import maskrcnn

        net = self._require_net()
        maskrcnn.set_image_size(net, tile)
        net.roi_heads.detections_per_img = int(self.params.max_detections)
        net.roi_heads.score_thresh = float(self.params.score_threshold)

    def predict_batch(self, inputs):
        from ..models import maskrcnn

        return maskrcnn.predict_boxed(self._require_net(), inputs, self.params.mask_threshold)

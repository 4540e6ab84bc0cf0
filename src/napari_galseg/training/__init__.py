"""Training machinery shared by the torch segmenters (U-Net now; Mask R-CNN and DETR later).

- :mod:`.patches`: spatial train/val/test split, patch datasets read lazily from huge arrays,
  galaxy-aware sampling, augmentation, instance targets;
- :mod:`.loop`: the training loop (``fit``, ``TrainConfig``, ``TrainReport``, ``TrainResult``);
- :mod:`.tasks`: model-specific losses and validation scores;
- :mod:`.checkpoints`: resume checkpoints and safetensors weights;
- :mod:`.device`: device choice, threads, seeds, bf16/channels_last switches.

Submodules import torch; importing this package alone does not.
"""

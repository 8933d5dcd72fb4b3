"""The device stage: torch (and cupy on CUDA) ops on the batch after ToDevice/ToTorchImage
(normalize, the fused normalize_flip; the device backends of horizontal_flip and
random_erasing sit beside their CPU declarations), and the batch-stage ops
applied to (images, labels) after the loader (mixup, cutmix, temporal_repeat)."""

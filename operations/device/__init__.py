"""The device stage: torch (and cupy on CUDA) ops on the batch after ToDevice/ToTorchImage
(normalize, flip, the fused normalize_flip, device_random_erasing), and the batch-stage ops
applied to (images, labels) after the loader (mixup, cutmix, temporal_repeat)."""

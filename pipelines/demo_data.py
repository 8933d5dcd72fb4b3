"""The embedded demo data set: random crops of the colour photographs bundled inside
scikit-image's wheel (no network), as ImageFolder trees of 200-400 px JPEGs.

The task is "which photo did this crop come from?": small, real, learnable in minutes on a CPU.
"""
import os
import warnings
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
from PIL import Image

#: class name -> skimage.data loader name (colour photos shipped inside the wheel)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
          "immunohistochemistry", "stereo_motorcycle", "retina")


#: values of PUREFFCV_CACHE that switch the kernel cache (operations.cache), not folders
SWITCH_VALUES = ("0", "1", "on", "off", "true", "false", "yes", "no")


def cache_dir() -> Path:
    """Where demo data and runs live: $PUREFFCV_DATA, else ~/.cache/pureffcv.

    PUREFFCV_CACHE is the kernel cache's on/off switch; it named this folder too before, and a
    folder in it still works, with a deprecation warning."""
    if os.environ.get("PUREFFCV_DATA"):
        return Path(os.environ["PUREFFCV_DATA"])
    old = os.environ.get("PUREFFCV_CACHE", "")
    if old and old.strip().lower() not in SWITCH_VALUES:
        warnings.warn("PUREFFCV_CACHE as the demo's data folder is deprecated: set "
                      "PUREFFCV_DATA (PUREFFCV_CACHE=0 switches the kernel cache off)",
                      FutureWarning, stacklevel=2)
        return Path(old)
    return Path.home() / ".cache" / "pureffcv"


def load_photo(name: str) -> np.ndarray:
    import skimage.data

    photo = getattr(skimage.data, name)()
    if isinstance(photo, tuple):  # stereo_motorcycle returns (left, right, disparity)
        photo = photo[0]
    return np.ascontiguousarray(photo[..., :3])


def random_crop(photo: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A crop of 10-60% of the photo's area, aspect ratio in [3/4, 4/3], resized so its
    longer side is 200-400 px."""
    height, width = photo.shape[:2]
    area = rng.uniform(0.1, 0.6) * height * width
    ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    h = int(min(height, round(np.sqrt(area / ratio))))
    w = int(min(width, round(np.sqrt(area * ratio))))
    y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    crop = Image.fromarray(photo[y:y + h, x:x + w])
    longer = int(rng.integers(200, 401))
    scale = longer / max(h, w)
    return crop.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)


def build_demo_images(root: Path, per_class: Dict[str, int], seed: int = 0,
                      classes: Tuple[str, ...] = PHOTOS) -> Dict[str, Path]:
    """Write ``root/<split>/<class>/<n>.jpg`` for each split in ``per_class`` (split -> images
    per class) and return split -> folder. Existing complete folders are reused."""
    root = Path(root)
    folders = {}
    for split_number, (split, count) in enumerate(per_class.items()):
        folder = root / split
        folders[split] = folder
        marker = folder / ".complete"
        if marker.exists() and marker.read_text() == f"{count} {seed} {','.join(classes)}":
            continue
        for label, name in enumerate(classes):
            photo = load_photo(name)
            rng = np.random.default_rng([seed, split_number, label])
            (folder / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                random_crop(photo, rng).save(folder / name / f"{i:04d}.jpg", quality=90)
        marker.write_text(f"{count} {seed} {','.join(classes)}")
    return folders

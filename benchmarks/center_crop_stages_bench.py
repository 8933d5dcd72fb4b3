"""Where a centre-crop decode's time goes (issue 14): per image on one core, FFCV's full
decode and then its resize (CenterCropRGBImageDecoder's work) against the crop-aware decode
at DCT scales 8/8 and 6/8 and then a resize (FFCV's OpenCV INTER_AREA, or ``area_resize``),
on ~500x375 q90 photos (``crop_decode_bench.build_photos``), best of ``--repeats``. It shows
why the decoders skip 6/8: its plain-C IDCT costs more than ``area_resize`` saves.

    .venv/bin/python benchmarks/center_crop_stages_bench.py --size 224
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from ffcv.libffcv import imdecode, resize_crop
from PIL import Image

from crop_decode_bench import build_photos
from operations.cpu import jpeg
from operations.cpu.decoders import center_crop_box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = sorted(build_photos(Path(tmp), args.images).rglob("*.jpg"))
        photos = [(np.frombuffer(f.read_bytes(), np.uint8), Image.open(f).size[::-1]) for f in files]
    out = np.empty((args.size, args.size, 3), np.uint8)
    buffer = np.empty(500 * 500 * 3, np.uint8)
    region = np.zeros(4, np.int64)

    def ffcv(resize):
        for data, (h, w) in photos:
            image = np.empty((h, w, 3), np.uint8)
            imdecode(data, image, h, w, h, w, 0, 0, 1, 1, False, False)
            if resize:
                y, x, ch, cw = center_crop_box(h, w, 0.875)
                resize_crop(image, y, y + ch, x, x + cw, out)

    def ours(m, resize):
        for data, (h, w) in photos:
            y, x, ch, cw = center_crop_box(h, w, 0.875)
            y0, x0 = y * m // 8, x * m // 8
            y1 = min(((y + ch) * m + 7) // 8, (h * m + 7) // 8)
            x1 = min(((x + cw) * m + 7) // 8, (w * m + 7) // 8)
            assert jpeg.roi_decode(data, buffer, m, y0, y1, x0, x1, region) == 0
            if not resize:
                continue
            rows, column, columns = region[1], region[2], region[3]
            block = buffer[:rows * columns * 3].reshape(rows, columns, 3)
            if m == 8 and resize == "opencv":
                resize_crop(block, y - y0, y + ch - y0, x - column, x + cw - column, out)
            else:
                jpeg.area_resize(block, y * m / 8 - y0, (y + ch) * m / 8 - y0,
                                 x * m / 8 - column, (x + cw) * m / 8 - column, out)

    variants = {"ffcv decode": lambda: ffcv(False), "ffcv decode + resize": lambda: ffcv(True)}
    for m in (8, 6):
        variants[f"aware {m}/8 decode"] = lambda m=m: ours(m, False)
    variants["aware 8/8 decode + opencv"] = lambda: ours(8, "opencv")
    for m in (8, 6):
        variants[f"aware {m}/8 decode + area"] = lambda m=m: ours(m, "area")
    best = {name: np.inf for name in variants}
    for _ in range(args.repeats):  # interleaved: a slow spell hits every variant
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], (time.perf_counter() - start) / len(photos))
    base = best["ffcv decode + resize"]
    print(f"{args.size} px centre crops (0.875) of {len(photos)} photos, one core, us per image")
    for name, seconds in best.items():
        print(f"{name:<28}{1e6 * seconds:8.0f}{base / seconds:7.2f}x")


if __name__ == "__main__":
    main()

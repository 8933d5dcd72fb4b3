"""How far crop-aware decoding (operations/cpu/jpeg.py) lands from today's output — FFCV's full
decode, the same crop, OpenCV's INTER_AREA — and, for scale, how far today's output itself
lands from an exact area average (PIL's BOX filter over the same box): max and mean absolute
difference in levels (0-255), per DCT scale, on the demo photographs resized to 500x375
(JPEG q90), for random-resized crops (torchvision's draws) and centre crops.

    .venv/bin/python benchmarks/crop_decode_deviation.py --sizes 160 224 --crops 200
"""
import argparse
import io

import numpy as np
from ffcv.libffcv import imdecode, resize_crop
from PIL import Image

from operations.cpu import jpeg
from operations.cpu.decoders import center_crop_box, random_resized_crop_box
from pipelines.demo_data import PHOTOS, load_photo


def photos():
    for name in PHOTOS:
        image = np.asarray(Image.fromarray(load_photo(name)).resize((500, 375), Image.BILINEAR))
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        data = np.frombuffer(buffer.getvalue(), np.uint8)
        full = np.zeros((375, 500, 3), np.uint8)
        imdecode(data, full, 375, 500, 375, 500, 0, 0, 1, 1, False, False)
        yield data, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    parser.add_argument("--crops", type=int, default=200, help="random crops per photo")
    args = parser.parse_args()
    buffer = np.zeros(375 * 500 * 3, np.uint8)
    print(f"{'crop':<8}{'size':>5}{'scale':>6}{'crops':>7}{'max':>6}{'mean':>7}"
          f"{'today vs exact: max':>21}{'mean':>7}{'ours vs exact: mean':>21}")
    for kind in ("random", "center"):
        for size in args.sizes:
            rows = {}
            for data, full in photos():
                boxes = ([center_crop_box(375, 500, 0.875)] if kind == "center" else
                         [random_resized_crop_box(np.uint64(k), 375, 500, (0.08, 1.0),
                                                  (3 / 4, 4 / 3)) for k in range(args.crops)])
                for y, x, h, w in boxes:
                    y, x, h, w = int(y), int(x), int(h), int(w)
                    ours, today = (np.zeros((size, size, 3), np.uint8) for _ in range(2))
                    assert jpeg.decode_crop_resized(data, buffer, 375, 500, y, x, h, w, ours)
                    resize_crop(full, y, y + h, x, x + w, today)
                    exact = np.asarray(Image.fromarray(full).resize(
                        (size, size), Image.BOX, box=(x, y, x + w, y + h))).astype(int)
                    ours, today = ours.astype(int), today.astype(int)
                    row = rows.setdefault(jpeg.dct_scale(h, w, size, size), [])
                    row.append((np.abs(ours - today).max(), np.abs(ours - today).mean(),
                                np.abs(today - exact).max(), np.abs(today - exact).mean(),
                                np.abs(ours - exact).mean()))
            for scale, row in sorted(rows.items()):
                r = np.array(row)
                print(f"{kind:<8}{size:>5}{f'{scale}/8':>6}{len(r):>7}{r[:, 0].max():>6.0f}"
                      f"{r[:, 1].mean():>7.2f}{r[:, 2].max():>21.0f}{r[:, 3].mean():>7.2f}"
                      f"{r[:, 4].mean():>21.2f}")


if __name__ == "__main__":
    main()

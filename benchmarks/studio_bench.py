"""`pureffcv studio` latencies (issue 15): one warm process, 16 images of the demo photos at
64 px, the README's spec; each line is one re-render after the action named (the first one
compiles everything).

    .venv/bin/python benchmarks/studio_bench.py
"""
import argparse
import tempfile
import time
from pathlib import Path

SPEC = """\
version: 1
seed: 0
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 64}}
      cpu:
        - trivial_augment_wide: {num_magnitude_bins: 31}
        - random_erasing: {p: 0.25}
      device:
        dtype: float32
        ops: [flip, {normalize: {mean: imagenet, std: imagenet}}]
    loader: {batch_size: 64}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=16, help="samples shown")
    args = parser.parse_args()

    import operations  # noqa: F401  (FFCV patches first)
    from pipelines.convert import convert
    from pipelines.demo_data import build_demo_images
    from pipelines.studio.engine import Studio

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_demo_images(Path(tmp), {"train": 4})["train"]
        beton = Path(tmp) / "train.beton"
        convert(folder, beton, write_mode="jpg", jpeg_quality=90)
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(SPEC)
        studio = Studio(spec, beton, n=args.n)
        erasing = SPEC.replace("p: 0.25", "p: 0.5")
        bins = erasing.replace("bins: 31", "bins: 20")
        solarize = bins.replace("        - random_erasing",
                                "        - solarize: {threshold: 128}\n        - random_erasing")
        actions = [
            ("cold (first render, nothing compiled)", None, studio.render),
            ("same draw", None, studio.same_draw),
            ("new draw (next epoch)", None, studio.new_draw),
            ("pick classes (2 of 8)", None, lambda: studio.pick([0, 3])),
            ("all classes again", None, lambda: studio.pick([])),
            ("parameter: random_erasing p 0.25 -> 0.5", erasing, studio.render),
            ("parameter: trivial_augment_wide bins 31 -> 20", bins, studio.render),
            ("new op: solarize (kernel not compiled yet)", solarize, studio.render),
            ("parameter: solarize threshold 128 -> 64", solarize.replace("128", "64"),
             studio.render),
            ("bad edit: unknown op", solarize.replace("solarize", "solarise"), studio.render),
            ("back to the first spec", SPEC, studio.render),
        ]
        for name, text, action in actions:
            if text is not None:
                spec.write_text(text)
            started = time.perf_counter()
            render = action()
            print(f"{name:<48}{time.perf_counter() - started:8.2f} s   compiled "
                  f"{render.compiled_steps}, reused {render.reused_steps}, errors "
                  f"{len(render.errors)}", flush=True)


if __name__ == "__main__":
    main()

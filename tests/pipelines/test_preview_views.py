"""`pureffcv preview` and `pureffcv studio` on a split with views (``image.views``): each view
copy of the same samples side by side, each at its own size with its own normalization undone,
captioned with its view and copy; the pixels are the loader's."""
import io
import time
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from compiler import compile_spec
from pipelines.cli import main
from pipelines.preview import BACKGROUND, TEXT, normalization_of, to_display
from pipelines.studio.engine import Studio
from pipelines.studio.server import StudioServer
from tests.conftest import structured_image, write_beton

REPO = Path(__file__).resolve().parents[2]

# two views with different sizes and normalizations: `big` (24 x 24, ImageNet statistics) and
# two copies of `small` (12 x 16, CIFAR-10 statistics), each copy with its own draws
VIEWS_SPEC = """\
version: 1
seed: 0
splits:
  train:
    image:
      views:
        big:
          decode: {random_resized_crop: {size: 24, scale: [0.3, 1.0]}}
          device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
        small:
          count: 2
          decode: {random_resized_crop: {size: [12, 16], scale: [0.1, 0.5]}}
          cpu: [{horizontal_flip: {p: 0.5}}]
          device: {dtype: float32, ops: [{normalize: {mean: cifar10, std: cifar10}}]}
    label: int
    loader: {batch_size: 8, num_workers: 1}
"""
CAPTIONS = ["big[0]", "small[0]", "small[1]"]


@pytest.fixture(scope="module")
def views_data(tmp_path_factory):
    """A views spec and 6 raw 24 x 24 structured images (labels i % 3) with a class map."""
    folder = tmp_path_factory.mktemp("views")
    images = [structured_image(24, 24, seed=i) for i in range(6)]
    beton = write_beton(folder / "data.beton", images, [i % 3 for i in range(6)])
    (folder / "data.classes.json").write_text('{"cat": 0, "dog": 1, "owl": 2}')
    spec = folder / "views.yaml"
    spec.write_text(VIEWS_SPEC)
    return spec, beton, images


def loader_views(spec, beton, indices, epoch=0):
    """Each view copy of ``indices`` as training's loader gives it, for display: {output name:
    uint8 (B, H, W, 3)}, each copy's own normalization undone."""
    compiled = compile_spec(spec, device="cpu", epoch=epoch)
    loader = compiled.loader(beton, order="sequential", batch_size=len(indices),
                             indices=np.asarray(indices), drop_last=False)
    (batch,) = list(loader)
    views, _ = compiled.group_views(batch)
    return {copy.output: to_display(views[copy.view][copy.copy], normalization_of(copy.plan))
            for copy in compiled.views}


def caption(text: str, width: int) -> np.ndarray:
    """A 12 px strip of ``width`` with ``text`` as the grid draws captions."""
    strip = Image.new("RGB", (width, 12), BACKGROUND)
    ImageDraw.Draw(strip).text((1, 1), text, fill=TEXT)
    return np.asarray(strip)


def test_preview_shows_the_original_then_every_view_copy(views_data, tmp_path, capsys):
    spec, beton, images = views_data
    out = tmp_path / "views.png"
    assert main(["preview", str(spec), str(beton), "--out", str(out), "--n", "3",
                 "--columns", "2", "--zoom", "2", "--first", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    grid = np.asarray(Image.open(out).convert("RGB"))
    # a cell: the original at the largest copy's size (24 x 24), big[0] (24 x 24), small[0]
    # and small[1] (12 x 16), zoom 2, 2 px apart: 48 + 2 + 48 + 2 + 32 + 2 + 32 = 166 wide;
    # 48 tall over a caption strip and a label strip (12 px each); cells 6 px apart
    lefts, widths, heights = [0, 50, 100, 134], [48, 48, 32, 32], [48, 48, 24, 24]
    assert grid.shape == (2 * 72 + 3 * 6, 2 * 166 + 3 * 6, 3)
    expected = loader_views(spec, beton, [0, 1, 2])
    for i in range(3):
        top, left = 6 + (i // 2) * (72 + 6), 6 + (i % 2) * (166 + 6)
        cell = grid[top:top + 72, left:left + 166]
        shown = [np.kron(images[i], np.ones((2, 2, 1), np.uint8))] + [
            np.kron(expected[name][i], np.ones((2, 2, 1), np.uint8))
            for name in ("big_0", "small_0", "small_1")]
        for x, w, h, image, text in zip(lefts, widths, heights, shown, ["original", *CAPTIONS]):
            assert np.array_equal(cell[:h, x:x + w], image), (i, text)
            assert (cell[h:48, x:x + w] == BACKGROUND).all()  # under a shorter copy
            assert np.array_equal(cell[48:60, x:x + w], caption(text, w)), (i, text)
            assert (cell[48:60, x:x + w] != BACKGROUND).any()
        assert not np.array_equal(cell[:24, 100:132], cell[:24, 134:166])  # two draws
        label = cell[60:72]  # the sample's label, class names from the class map
        assert np.array_equal(label[:, :40], caption(["cat", "dog", "owl"][i], 40))


@pytest.mark.slow
def test_the_shipped_dino_multicrop_spec_previews_on_a_jpeg_beton(tmp_path):
    beton = write_beton(tmp_path / "jpg.beton", [structured_image(48, 64, seed=i)
                                                  for i in range(4)],
                        [0, 1, 0, 1], write_mode="jpg")
    out = tmp_path / "dino.png"
    assert main(["preview", str(REPO / "specs" / "dino_multicrop.yaml"), str(beton), "--out",
                 str(out), "--n", "2", "--device", "cpu"]) == 0
    grid = np.asarray(Image.open(out).convert("RGB"))
    # the original and two global crops at 224, six local crops at 96 (zoom 1), 2 px apart
    cell_w = 3 * 224 + 6 * 96 + 8 * 2
    assert grid.shape == (224 + 24 + 2 * 6, 2 * cell_w + 3 * 6, 3)
    x = [6 + 226 * k for k in range(3)] + [6 + 3 * 226 + 98 * k for k in range(6)]
    for k, text in enumerate(["original", "global1[0]", "global2[0]",
                              *(f"local[{c}]" for c in range(6))]):
        w = 224 if k < 3 else 96
        assert np.array_equal(grid[6 + 224:6 + 236, x[k]:x[k] + w], caption(text, w)), text
    locals_ = [grid[6:6 + 96, x[k]:x[k] + 96] for k in range(3, 9)]
    assert len({image.tobytes() for image in locals_}) == 6


def test_studio_shows_every_view_copy_as_the_loader_gives_it(views_data):
    spec, beton, _ = views_data
    studio = Studio(spec, beton, n=4, epoch=1)
    render = studio.render()
    assert render.errors == []
    assert [caption for caption, _ in render.views] == CAPTIONS
    expected = loader_views(spec, beton, render.indices, epoch=1)
    for (_, images), name in zip(render.views, ("big_0", "small_0", "small_1")):
        assert np.array_equal(images, expected[name])
    assert render.augmented is render.views[0][1]
    assert render.originals.shape == (4, 24, 24, 3)  # at the largest copy's size
    assert [s.view for s in render.steps] == [None] + ["big[0]"] * 2 + ["small[0]"] * 3 + \
        ["small[1]"] * 3  # the shared decode, then each copy's crop and ops
    assert [s.name for s in render.steps[3:6]] == ["random_resized_crop", "horizontal_flip",
                                                   "normalize"]
    assert render.labels == ["cat", "dog", "owl", "cat"]

    again = studio.new_draw()  # the next epoch: new draws, the kept ops and Loader reused
    assert again.compiled_steps == 0 and not again.errors
    expected = loader_views(spec, beton, again.indices, epoch=2)
    for (_, images), name in zip(again.views, ("big_0", "small_0", "small_1")):
        assert np.array_equal(images, expected[name])

    server = StudioServer(studio, port=0).start()  # renders once more, then serves it
    try:
        def get(path):
            with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=30) as reply:
                return reply.read()

        for _ in range(600):
            state = json.loads(get("/api/state"))
            if state["version"] > again.version and not state["busy"]:
                break
            time.sleep(0.1)
        assert state["errors"] == [] and state["views"] == CAPTIONS
        assert len(state["samples"]) == 4 and state["zoom"] == 8  # 12 px shown at 96
        assert [s["view"] for s in state["steps"]][1:4] == ["big[0]"] * 2 + ["small[0]"]
        version = state["version"]
        for k, size in enumerate([(24, 24), (12, 16), (12, 16)]):
            png = Image.open(io.BytesIO(get(f"/api/image/{version}/view{k}/0.png")))
            assert png.size == (size[1] * 8, size[0] * 8)
        png = Image.open(io.BytesIO(get(f"/api/image/{version}/original/0.png")))
        assert png.size == (24 * 8, 24 * 8)
        assert b"state.views" in get("/")
    finally:
        server.stop()


def test_the_studio_page_lists_every_view_copy(views_data):
    from tests.pipelines.test_studio import browser, wait_until

    spec, beton, _ = views_data
    driver = browser()
    server = StudioServer(Studio(spec, beton, n=3), port=0).start()
    try:
        driver.get(server.url)
        loaded = "return [...document.querySelectorAll('#grid img.view')].map(" \
                 "(im) => im.complete && im.naturalWidth ? im.naturalWidth : 0)"
        widths = wait_until(lambda: (lambda w: w if len(w) == 9 and all(w) else None)(
            driver.execute_script(loaded)), what="every view copy's image")
        assert widths == [24 * 8, 16 * 8, 16 * 8] * 3
        captions = driver.execute_script(
            "return [...document.querySelectorAll('#grid .caption')].map((e) => e.textContent)")
        assert captions == ["original", *CAPTIONS] * 3
        assert driver.find_element("id", "grid-title").text == \
            "Samples: original | big[0] | small[0] | small[1]"
    finally:
        driver.quit()
        server.stop()

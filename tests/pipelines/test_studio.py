"""`pureffcv studio`: the warm renderer gives the bytes a Loader gives, recompiles only the
ops whose definition changed, reports spec mistakes with their position; and, in a headless
Chromium, the page shows the grid, follows edits of the spec file and highlights a bad line."""
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from compiler import compile_spec
from pipelines.preview import normalization_of, only_batch, to_display
from pipelines.studio.engine import Studio
from pipelines.studio.fingerprint import fingerprint
from pipelines.studio.server import StudioServer
from tests.conftest import structured_image, write_beton, write_segmentation_beton

SPEC = """\
version: 1
seed: 3
splits:
  train:
    image:
      decode: {{random_resized_crop: {{size: {size}, scale: [0.3, 1.0]}}}}
      cpu:
        - horizontal_flip: {{p: {p}}}
      device: {{dtype: float32, ops: [{{normalize: {{mean: imagenet, std: imagenet}}}}]}}
    loader: {{batch_size: 8, num_workers: 1}}
"""


@pytest.fixture(scope="module")
def beton(tmp_path_factory) -> Path:
    """24 structured 32x40 images, labels i % 3, and a classes.json naming the classes."""
    folder = tmp_path_factory.mktemp("studio")
    path = write_beton(folder / "data.beton", [structured_image(32, 40, seed=i) for i in range(24)],
                       [i % 3 for i in range(24)])
    (folder / "data.classes.json").write_text('{"cat": 0, "dog": 1, "owl": 2}')
    return path


def write_spec(path: Path, size: int = 24, p: float = 1.0, text: str = None) -> Path:
    path.write_text(text if text is not None else SPEC.format(size=size, p=p))
    return path


def test_fingerprint_follows_parameters_not_the_binding():
    a = compile_spec(SPEC.format(size=24, p=1.0), device="cpu").cpu_steps[0].op
    b = compile_spec(SPEC.format(size=24, p=1.0), device="cpu").cpu_steps[0].op
    c = compile_spec(SPEC.format(size=24, p=0.5), device="cpu").cpu_steps[0].op
    b.clock.epoch = 7  # the epoch is set per render, not part of the definition
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)

    def scaled(k):  # an op holding a function: its code and its captured values count
        return lambda x: x * k

    assert fingerprint([scaled(2)]) == fingerprint([scaled(2)]) != fingerprint([scaled(3)])


def test_render_matches_the_loader_reuses_unchanged_ops_and_reports_errors(beton, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml")
    studio = Studio(spec, beton, n=6, epoch=2)
    first = studio.render()
    assert first.errors == []
    assert [i % 3 for i in first.indices] == [0, 1, 2, 0, 1, 2]  # classes in turn (preview's)
    assert first.labels == ["cat", "dog", "owl", "cat", "dog", "owl"]
    assert [s.name for s in first.steps] == ["random_resized_crop", "horizontal_flip",
                                              "normalize"]
    # the reference: the same spec through one FFCV Loader, as `pureffcv preview` runs it
    compiled = compile_spec(spec, device="cpu", epoch=2)
    images, _ = only_batch(compiled.loader(beton, order="sequential", batch_size=6,
                                           indices=np.array(first.indices), drop_last=False))
    expected = to_display(images, normalization_of(compiled.plan))
    assert np.array_equal(first.augmented, expected)
    assert first.originals.shape == expected.shape

    write_spec(spec, p=0.5)  # one op's parameter: only that op compiles again
    second = studio.render()
    assert [s.compiled for s in second.steps] == [False, True, False]
    assert second.compiled_steps == 1 and second.reused_steps == 2

    write_spec(spec, p=1.0)  # back: the earlier instance is still warm
    assert studio.render().compiled_steps == 0

    assert not np.array_equal(studio.new_draw().augmented, first.augmented)  # epoch 3
    studio.epoch = 2
    assert np.array_equal(studio.same_draw().augmented, first.augmented)

    dogs = studio.pick([1])  # other samples through the kept Loaders: nothing compiles
    assert dogs.labels == ["dog"] * 6 and all(i % 3 == 1 for i in dogs.indices)
    assert dogs.compiled_steps == 0
    for k, index in enumerate(dogs.indices):  # a sample shown in both: the same keyed draws
        if index in first.indices:
            j = first.indices.index(index)
            assert np.array_equal(dogs.augmented[k], first.augmented[j])
            assert np.array_equal(dogs.originals[k], first.originals[j])
    assert set(dogs.indices) & set(first.indices)

    write_spec(spec, text=SPEC.format(size=24, p=1.0).replace("p: 1.0", "p: often"))
    bad = studio.render()
    assert len(bad.errors) == 1
    # the last good render's samples stay beside the error (the page does not go blank)
    assert bad.stale and bad.augmented is dogs.augmented and bad.indices == dogs.indices
    assert (bad.errors[0]["line"], bad.errors[0]["file"]) == (8, str(spec))
    assert "p of 'horizontal_flip'" in bad.errors[0]["message"]


# -- the page in a headless browser --------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def browser():
    """A headless Chromium driven by Selenium, or a skip that says what is missing."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (scripts/install.sh installs it)")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("no chromium/chromedriver on PATH (scripts/install.sh installs the Debian "
                    "packages chromium and chromium-driver when run as root)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_until(condition, timeout: float = 240.0, what: str = "condition"):
    """Poll ``condition`` until it returns a true value (not a timing assertion: the limit
    only stops a broken page from hanging the suite)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


GRID = """return [...document.querySelectorAll('#grid img.augmented')].map((im) => {
  if (!im.complete || !im.naturalWidth) return null;
  const c = document.createElement('canvas'); c.width = im.naturalWidth; c.height = im.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(im, 0, 0);
  return im.naturalWidth + ':' + c.toDataURL(); });"""


def grid(driver):
    """The augmented images of the grid as width:pixels strings, once all have loaded."""
    images = driver.execute_script(GRID)
    return images if images and all(images) else None


def test_page_follows_edits_of_the_spec(beton, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", size=24)
    driver = browser()
    server = StudioServer(Studio(spec, beton, n=6), port=0).start()
    try:
        driver.get(server.url)
        before = wait_until(lambda: grid(driver), what="the first grid")
        assert len(before) == 6 and all(g.startswith("96:") for g in before)  # 24 px, zoom 4
        labels = driver.execute_script(
            "return [...document.querySelectorAll('#grid .label')].map((e) => e.textContent)")
        assert [label.split()[0] for label in labels] == ["cat", "dog", "owl"] * 2
        assert "random_resized_crop" in driver.find_element("id", "explain").text
        assert "horizontal_flip" in driver.find_element("id", "timings").text

        write_spec(spec, size=20)  # a parameter change: the grid changes
        after = wait_until(lambda: (lambda g: g if g and g != before else None)(grid(driver)),
                           what="the grid after the edit")
        assert all(g.startswith("100:") for g in after)  # 20 px, zoom 5

        driver.find_element("id", "next-step").click()  # step through: the flip's output
        steps = driver.find_elements("css selector", "#steps figure")
        assert len(steps) == 3
        assert "current" in steps[1].get_attribute("class")

        good = SPEC.format(size=20, p=1.0)
        write_spec(spec, text=good.replace("horizontal_flip", "horizontal_flipp"))
        error = wait_until(lambda: driver.find_elements("css selector", "#errors .error"),
                           what="the error line")[0].text
        assert error.startswith(f"{spec}:8:11: ") and "horizontal_flip" in error
        marked = driver.find_elements("css selector", "#yaml .error-line")
        assert [m.get_attribute("data-line") for m in marked] == ["8"]
        assert grid(driver) == after  # the last good grid stays while the spec is broken

        write_spec(spec, text=good)
        wait_until(lambda: not driver.find_elements("css selector", "#errors .error"),
                   what="the error to clear")
        fixed = wait_until(lambda: grid(driver), what="the grid of the fixed spec")

        driver.find_element("id", "new-draw").click()  # the next epoch's draws
        wait_until(lambda: driver.find_element("id", "epoch").text == "1", what="epoch 1")
        wait_until(lambda: (lambda g: g and g != fixed)(grid(driver)), what="a new draw")

        for box in driver.find_elements("css selector", "#classes input"):
            if box.get_attribute("value") != "1":
                box.click()  # keep only "dog"
        driver.find_element("id", "apply-classes").click()
        wait_until(lambda: set(label.split()[0] for label in driver.execute_script(
            "return [...document.querySelectorAll('#grid .label')].map((e) => e.textContent)"))
            == {"dog"}, what="only dogs")
    finally:
        driver.quit()
        server.stop()


def test_a_segmentation_render_overlays_the_masks_on_both_halves(tmp_path):
    from pipelines.preview import overlay_masks
    from tests.pipelines.test_preview import SEGMENTATION_SPEC, banded

    images, masks = banded()
    beton = write_segmentation_beton(tmp_path / "seg.beton", images, masks)
    spec = tmp_path / "seg.yaml"
    spec.write_text(SEGMENTATION_SPEC)
    render = Studio(spec, beton, n=4).render()
    assert not render.errors
    band = overlay_masks(images[0][None, :1, :1], np.array([[[1]]]), 200)[0, 0, 0]
    plain = overlay_masks(images[0][None, :1, :1], np.array([[[0]]]), 200)[0, 0, 0]
    first = render.indices.index(0)
    assert (render.originals[first][:, :8] == band).all()
    assert (render.originals[first][:, 8:] == plain).all()
    assert (render.augmented[first][:8] == band).all()  # flipped, turned: the band on top
    assert (render.augmented[first][8:] == plain).all()
    assert render.labels[first] == "classes 0 1"


def test_a_detection_render_draws_boxes_and_keypoints_on_both_halves(tmp_path):
    import io

    from PIL import Image

    from pipelines.preview import CLASS_COLOURS, POINT_COLOUR
    from pipelines.studio.images import zoom_for
    from tests.pipelines.test_preview import DETECTION_SPEC, GREY, detection_scene, outlined

    beton = detection_scene(tmp_path)
    spec = tmp_path / "det.yaml"
    spec.write_text(DETECTION_SPEC)
    studio = Studio(spec, beton, n=2)
    render = studio.render()
    assert not render.errors and render.box_names == {1: "cat", 2: "dog"}
    first = render.indices.index(0)
    assert render.labels[first] == "1 box" and render.labels[1 - first] == "0 boxes"
    # as stored on the original (both boxes), mirrored and filtered (min_area) on the sample
    original, augmented = render.original_overlays[first], render.augmented_overlays[first]
    assert np.allclose(original.boxes, [[4, 6, 20, 26], [28, 28, 30, 30]])
    assert np.allclose(augmented.boxes, [[12, 6, 28, 26]]) and list(augmented.labels) == [1]
    assert np.allclose(augmented.points, [[22, 16], [8, 20]])
    assert list(augmented.visibility) == [2, 1]
    assert (render.augmented == GREY).all()  # drawn when the page asks, at its zoom
    server = StudioServer(studio, port=0)
    try:
        zoom = zoom_for((32, 32))
        page = np.asarray(Image.open(io.BytesIO(server.image(render.version, "augmented",
                                                              first))))[..., :3]
        assert page.shape == (32 * zoom, 32 * zoom, 3)
        assert outlined(page, 12 * zoom, 6 * zoom, 28 * zoom - 1, 26 * zoom - 1, CLASS_COLOURS[1])
        assert (page[16 * zoom, 22 * zoom] == POINT_COLOUR).all()
        page = np.asarray(Image.open(io.BytesIO(server.image(render.version, "original",
                                                              first))))[..., :3]
        assert outlined(page, 28 * zoom, 28 * zoom, 30 * zoom - 1, 30 * zoom - 1,
                        CLASS_COLOURS[2])
    finally:
        server.httpd.server_close()

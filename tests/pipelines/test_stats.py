"""``pureffcv stats``: per-channel mean/std of a .beton, against numpy on the same pixels."""
import numpy as np
import pytest

from pipelines.cli import main
from pipelines.stats import StatsError, channel_stats
from tests.conftest import structured_image, write_beton


@pytest.fixture(scope="module")
def images():
    # varied sizes: the statistics weigh every pixel, not every image
    return [structured_image(20 + 3 * (i % 4), 24 + i, seed=i) for i in range(9)]


def expected(images):
    pixels = np.concatenate([im.reshape(-1, 3).astype(np.float64) for im in images])
    return pixels.mean(0), pixels.std(0)  # population std


def test_raw_images_give_numpys_mean_and_std(images, tmp_path):
    beton = write_beton(tmp_path / "raw.beton", images, [0] * len(images))
    stats = channel_stats(beton, progress=False)
    mean, std = expected(images)
    assert stats.images == 9 and stats.pixels == sum(im.shape[0] * im.shape[1] for im in images)
    assert np.allclose(stats.mean, mean, rtol=0, atol=1e-9)
    assert np.allclose(stats.std, std, rtol=0, atol=1e-9)


def test_jpeg_images_are_decoded_as_the_ffcv_loader_decodes_them(tmp_path):
    from ffcv.fields.decoders import SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    from pipelines import loading

    same = [structured_image(32, 32, seed=i) for i in range(6)]
    beton = write_beton(tmp_path / "jpg.beton", same, [0] * 6, write_mode="jpg")
    loader = Loader(str(beton), batch_size=6, order=OrderOption.SEQUENTIAL, num_workers=1,
                    pipelines={"image": [SimpleRGBImageDecoder()], "label": None})
    [(decoded,)] = [tuple(np.array(b) for b in batch) for batch in loading.epoch(loader)]
    mean, std = expected(list(decoded))
    stats = channel_stats(beton, progress=False)
    assert np.allclose(stats.mean, mean, atol=1e-9) and np.allclose(stats.std, std, atol=1e-9)
    assert not np.allclose(stats.mean, expected(same)[0], atol=1e-9)  # JPEG is lossy


def test_the_cli_prints_a_spec_line_that_validates(images, tmp_path, capsys):
    from compiler import load_spec

    beton = write_beton(tmp_path / "raw.beton", images, [0] * len(images))
    assert main(["stats", str(beton), "--limit", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{beton}: 3 images, " + \
        f"{sum(images[i].shape[0] * images[i].shape[1] for i in (0, 4, 8))} pixels per channel"
    mean, std = expected([images[i] for i in (0, 4, 8)])
    assert out[1] == "mean (R, G, B): " + " ".join(f"{v:.4f}" for v in mean)
    line = out[-1].strip()
    spec = ("version: 1\nsplits:\n  val:\n    image:\n      decode: {center_crop: {size: 16}}\n"
            f"      device:\n        ops:\n          {line}\n")
    op = load_spec(spec).split("val").image.device_ops[0]
    assert op.name == "normalize"


def test_mistakes_are_one_line(tmp_path, capsys, images):
    assert main(["stats", str(tmp_path / "none.beton")]) == 1
    assert capsys.readouterr().err.strip() == \
        f"pureffcv stats: {tmp_path / 'none.beton'}: no such .beton file"
    beton = write_beton(tmp_path / "raw.beton", images, [0] * len(images))
    with pytest.raises(StatsError, match="no RGB image field 'img' \\(image fields: image\\)"):
        channel_stats(beton, field="img", progress=False)

"""The stored mask (operations.cpu.mask_field): masks written with FFCV's own writer beside
images and read back through a Loader with MaskDecoder are the arrays written, exactly; the
zlib helpers against Python's zlib module; the size on disk; what is refused, in one line."""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from compiler.safe_loader import LoaderError, epoch
from operations.cpu import mask_field
from operations.cpu.mask_field import (MASK_TYPE_ID, MaskDecoder, MaskError, MaskField,
                                       Z_BUF_ERROR, Z_DATA_ERROR, Z_OK, Z_SHORT, decode_mask,
                                       encode_mask, inflate_mask)
from operations.kernel_errors import KernelError
from tests.conftest import structured_image

H, W = 24, 32


def label_map(height: int, width: int, seed: int, dtype=np.uint8, classes: int = 21,
              shapes: int = 6) -> np.ndarray:
    """A class map like an annotation's: background 0, rectangles and discs of random class
    ids (up to ``classes``), an ignore-index (255) outline around one of them."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((height, width), dtype)
    y, x = np.mgrid[0:height, 0:width]
    for _ in range(shapes):
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        ry, rx = rng.integers(2, height // 3 + 3), rng.integers(2, width // 3 + 3)
        inside = (np.abs(y - cy) <= ry) & (np.abs(x - cx) <= rx) if rng.random() < 0.5 else \
            ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        ids[inside] = rng.integers(1, classes)
    ids[(np.abs(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 - 1) < 0.15)] = 255
    return ids


def write(path, masks, images=None):
    """``masks`` (and images, default structured ones of the masks' sizes) in a .beton
    written by FFCV's DatasetWriter, fields ``image`` (raw) and ``mask``."""
    from ffcv.fields import RGBImageField
    from ffcv.writer import DatasetWriter

    images = images or [structured_image(*m.shape, seed=i) for i, m in enumerate(masks)]

    class Pairs:
        def __len__(self):
            return len(masks)

        def __getitem__(self, i):
            return images[i], masks[i]

    DatasetWriter(str(path), {"image": RGBImageField(write_mode="raw"), "mask": MaskField()},
                  num_workers=1).from_indexed_dataset(Pairs(), chunksize=4)
    return path


def read(path, batch_size: int = 4) -> np.ndarray:
    """Every mask of ``path`` through a Loader with MaskDecoder then ToTensor, in file order."""
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import ToTensor

    loader = Loader(str(path), batch_size=batch_size, num_workers=2, drop_last=False,
                    order=OrderOption.SEQUENTIAL,
                    pipelines={"image": None, "mask": [MaskDecoder(), ToTensor()]})
    return np.concatenate([masks.numpy().copy() for masks, in epoch(loader)])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_masks_read_back_exactly_through_a_loader(tmp_path, dtype):
    """Shape-like maps and incompressible noise, several seeds, 9 samples (a last batch of 1);
    uint16 with ids past 255."""
    top = 256 if dtype == np.uint8 else 65536
    masks = [label_map(H, W, seed, dtype, classes=min(top, 300)) for seed in range(5)]
    masks += [np.random.default_rng(seed).integers(0, top, (H, W)).astype(dtype)
              for seed in range(4)]
    out = read(write(tmp_path / "masks.beton", masks))
    assert out.dtype == dtype and out.shape == (9, H, W, 1)
    for index, mask in enumerate(masks):
        assert np.array_equal(out[index, :, :, 0], mask), index


def test_the_field_is_registered_in_ffcvs_type_table(tmp_path):
    """FFCV's writer writes the id of a field's class from ``TYPE_ID_HANDLER`` (255, no
    handler, for a class it lacks) and its Reader builds the field from it: this fails loudly
    if FFCV 1.0.2's private table moves."""
    from ffcv.reader import Reader
    from ffcv.types import TYPE_ID_HANDLER, FieldDescType, HeaderType

    path = write(tmp_path / "one.beton", [label_map(H, W, 0)])
    with open(path, "rb") as f:
        f.seek(HeaderType.itemsize)
        table = np.frombuffer(f.read(2 * FieldDescType.itemsize), FieldDescType)
    assert table["type_id"].tolist() == [2, MASK_TYPE_ID]  # RGBImageField, MaskField
    assert TYPE_ID_HANDLER[MASK_TYPE_ID] is MaskField
    reader = Reader(str(path))
    assert isinstance(reader.handlers["mask"], MaskField)
    stored = reader.metadata["f1"][0]
    assert (stored["height"], stored["width"], stored["dtype"]) == (H, W, 0)
    assert stored["nbytes"] == len(encode_mask(label_map(H, W, 0)))
    assert MaskField().get_decoder_class() is MaskDecoder


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 40), width=st.integers(1, 40), dtype=st.sampled_from(["u1", "<u2"]),
       seed=st.integers(0, 2**32 - 1), noise=st.booleans())
def test_encode_inflate_and_decode_agree_with_pythons_zlib(height, width, dtype, seed, noise):
    dtype = np.dtype(dtype)
    ids = label_map(height + 2, width + 2, seed, dtype)[:height, :width].copy() if not noise \
        else np.random.default_rng(seed).integers(0, 256 ** dtype.itemsize, (height, width),
                                                  dtype=dtype)
    data = encode_mask(ids)
    assert zlib.decompress(data) == ids.astype(dtype.newbyteorder("<")).tobytes()
    assert np.array_equal(decode_mask(data, height, width, dtype), ids)
    out = np.zeros(ids.nbytes, np.uint8)
    assert inflate_mask(np.frombuffer(data, np.uint8), out) == Z_OK
    assert np.array_equal(out.view(dtype).reshape(height, width), ids)


def test_inflate_reports_damage():
    ids = label_map(H, W, 3)
    data = np.frombuffer(encode_mask(ids), np.uint8)
    garbled = data.copy()
    garbled[2:10] ^= 0xA5
    status = {name: inflate_mask(stored, np.zeros(size, np.uint8)) for name, stored, size in [
        ("garbled", garbled, ids.size), ("half", data[:len(data) // 2], ids.size),
        ("too long for the buffer", data, ids.size - 1), ("short", data, ids.size + 1)]}
    assert status == {"garbled": Z_DATA_ERROR, "half": Z_DATA_ERROR,
                      "too long for the buffer": Z_BUF_ERROR, "short": Z_SHORT}
    with pytest.raises(MaskError, match="^the stored mask inflates to 768 bytes; a 24x16 uint8 "
                                        "mask has 384$"):
        decode_mask(data.tobytes(), H, 16, np.uint8)
    with pytest.raises(MaskError, match="^the stored mask is damaged \\(zlib: Error -3"):
        decode_mask(garbled.tobytes(), H, W, np.uint8)


def test_shape_like_masks_are_stored_at_least_ten_times_smaller_than_raw():
    """VOC-sized (500x375) maps of a few shapes: what the conversion's sizes rest on."""
    masks = [label_map(375, 500, seed) for seed in range(8)]
    ratio = sum(m.nbytes for m in masks) / sum(len(encode_mask(m)) for m in masks)
    print(f"raw / stored: {ratio:.0f}x")
    assert ratio >= 10


@pytest.mark.parametrize("value, got", [
    (np.zeros((H, W, 1), np.uint8), "uint8 (24, 32, 1)"),
    (np.zeros((H, W, 3), np.uint8), "uint8 (24, 32, 3)"),
    (np.zeros(W, np.uint8), "uint8 (32,)"),
    (np.zeros((H, W), np.int32), "int32 (24, 32)"),
    (np.zeros((H, W), np.float32), "float32 (24, 32)"),
    (np.zeros((0, W), np.uint8), "uint8 (0, 32)"),
    ([[0, 1], [1, 0]], "list"),
])
def test_anything_but_a_2d_uint8_or_uint16_array_is_refused_in_one_line(value, got):
    message = ("a mask must be a 2-D uint8 or uint16 array (height, width) with height, "
               f"width > 0; got {got}")
    with pytest.raises(MaskError) as error:
        MaskField().encode(np.zeros(1, MaskField().metadata_type)[0], value, None)
    assert str(error.value) == message


def test_a_damaged_sample_stops_the_epoch_with_one_line_naming_it(tmp_path):
    from ffcv.reader import Reader

    path = write(tmp_path / "damaged.beton", [label_map(H, W, seed) for seed in range(6)])
    stored = Reader(str(path)).metadata["f1"][4]
    with open(path, "r+b") as f:  # garble sample 4's zlib stream after its 2-byte header
        f.seek(int(stored["data_ptr"]) + 2)
        f.write(bytes(8))
    with pytest.raises(LoaderError) as error:
        read(path)
    assert isinstance(error.value.__cause__, KernelError)
    assert str(error.value.__cause__) == (
        "op MaskDecoder failed on sample 4: ValueError: the stored mask is damaged (zlib: "
        "invalid or truncated data)")


def test_the_decoder_needs_one_size_and_dtype(tmp_path):
    from ffcv.loader import Loader

    masks = [label_map(H, W, 0), label_map(H, W, 1, np.uint16), label_map(8, 8, 2)]
    path = write(tmp_path / "mixed.beton", masks)
    with pytest.raises(MaskError) as error:
        Loader(str(path), batch_size=2, pipelines={"image": None, "mask": [MaskDecoder()]})
    assert str(error.value) == ("MaskDecoder needs masks of one size and dtype; this .beton has "
                                "3 kinds (8x8 uint8, 32x24 uint8, 32x24 uint16)")


def test_the_zlib_call_is_a_named_symbol_numba_can_cache():
    """``inflate_mask`` calls libz through ``pureffcv_zlib_uncompress``, not a ctypes address
    (which Numba refuses to cache)."""
    inflate_mask(np.frombuffer(encode_mask(label_map(4, 4, 0)), np.uint8), np.zeros(16, np.uint8))
    llvm = next(iter(inflate_mask.inspect_llvm().values()))
    assert "pureffcv_zlib_uncompress" in llvm
    assert mask_field._uncompress.symbol == "pureffcv_zlib_uncompress"

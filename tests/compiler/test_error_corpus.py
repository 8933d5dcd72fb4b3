"""A corpus of malformed specs: each gives one exact FILE:LINE:COL and a message fragment.

Positions are counted by hand from the inline YAML (1-based lines and columns)."""
import textwrap

import pytest

from compiler import SpecError, compile_spec, load_spec

HEAD = "version: 1\nsplits:\n  train:\n    image:\n"  # lines 1-4; a case continues at line 5


def errors_of(text: str) -> list:
    """Every error line of a spec: load it, then plan each split (device cpu)."""
    try:
        spec = load_spec(text)
        for split in spec.splits:
            compile_spec(spec, split=split, device="cpu")
    except SpecError as error:
        assert str(error) == "\n".join(f"{e.file}:{e.line}:{e.column}: {e.message}"
                                       for e in getattr(error, "errors", [error]))
        return str(error).splitlines()
    return []


def image(body: str) -> str:
    """A spec whose train split's image section is ``body`` (starting at line 5, indent 6)."""
    return HEAD + textwrap.indent(textwrap.dedent(body), " " * 6)


CASES = [
    # --- YAML itself ------------------------------------------------------------------------
    ("yaml-syntax-tab", "version: 1\nsplits:\n\ttrain: {}\n", "3:1", "invalid YAML"),
    ("yaml-unclosed-flow", image("decode: {center_crop: {size: 32}\n"), "6:1", "invalid YAML"),
    ("yaml-bad-indent", "version: 1\nsplits:\n  train:\n    image: 1\n   loader: 2\n", "5:4",
     "invalid YAML"),
    ("yaml-two-documents", "version: 1\n---\nversion: 1\n", "2:1", "expected a single document"),
    ("empty-file", "", "1:1", "the spec is empty"),
    ("duplicate-top-key", "version: 1\nversion: 1\nsplits: {}\n", "2:1",
     "duplicate key 'version' (first set at line 1)"),
    ("duplicate-op-param", image("decode: {center_crop: {size: 32, size: 16}}\n"), "5:40",
     "duplicate key 'size'"),
    ("merge-of-scalar", "x-a: &a 3\nversion: 1\nsplits:\n  train:\n    <<: *a\n", "1:6",
     "'<<' merges mappings only"),
    ("list-as-key", "version: 1\n? [a, b]\n: 1\nsplits: {}\n", "2:3", "a key must be a plain name"),
    # --- top level -----------------------------------------------------------------------------
    ("top-not-mapping", "- version: 1\n", "1:1", "the spec must be a mapping"),
    ("missing-version", "splits:\n  train:\n    image: {decode: decode}\n", "1:1",
     "needs 'version: 1'"),
    ("wrong-version", "version: 2\nsplits:\n  train:\n    image: {decode: decode}\n", "1:10",
     "unsupported spec version 2"),
    ("missing-splits", "version: 1\nseed: 0\n", "1:1", "needs 'splits:'"),
    ("unknown-top-key", "version: 1\nsplit:\n  train: {}\n", "2:1",
     "unknown key 'split' in the spec; did you mean 'splits'?"),
    ("seed-negative", "version: 1\nseed: -1\nsplits:\n  train:\n    image: {decode: decode}\n",
     "2:7", "seed: must be in [0, 18446744073709551615], got -1"),
    ("seed-float", "version: 1\nseed: 1.5\nsplits:\n  train:\n    image: {decode: decode}\n",
     "2:7", "seed: must be an integer, got 1.5"),
    ("splits-empty", "version: 1\nsplits: {}\n", "2:9", "splits is empty"),
    ("splits-list", "version: 1\nsplits: [train]\n", "2:9", "splits must be a mapping"),
    ("import-missing-module",
     "version: 1\nimports: [no_such_module_xyz]\nsplits:\n  train:\n    image: {decode: decode}\n",
     "2:11", "cannot import 'no_such_module_xyz': ModuleNotFoundError: No module named"),
    ("import-not-a-name",
     "version: 1\nimports: [3]\nsplits:\n  train:\n    image: {decode: decode}\n",
     "2:11", "expected a module name, got 3"),
    # --- split and image sections -------------------------------------------------------------
    ("split-missing-image", "version: 1\nsplits:\n  train:\n    label: int\n", "3:3",
     "split 'train' needs 'image:'"),
    ("split-unknown-key", image("decode: decode\n") + "    lable: int\n", "6:5",
     "unknown key 'lable' in split 'train'; did you mean 'label'?"),
    ("image-missing-decode", image("cpu: [horizontal_flip]\n"), "5:7", "needs 'decode:'"),
    ("image-unknown-key", image("decode: decode\ncpus: [horizontal_flip]\n"), "6:7",
     "unknown key 'cpus' in split 'train' image; did you mean 'cpu'?"),
    ("decode-list", image("decode: [decode]\n"), "5:15", "decode takes one decoder op, not a list"),
    ("cpu-not-list", image("decode: decode\ncpu: horizontal_flip\n"), "6:12",
     "cpu must be a list of ops"),
    ("device-unknown-dtype", image("decode: decode\ndevice: {dtype: float64}\n"), "6:23",
     "dtype of device: must be one of 'uint8', 'float16', 'bfloat16', 'float32', got 'float64'"),
    ("device-unknown-key", image("decode: decode\ndevice: {dtypes: float16}\n"), "6:16",
     "unknown key 'dtypes' in device; did you mean 'dtype'?"),
    ("label-bad", image("decode: decode\n") + "    label: float\n", "6:12",
     "label must be 'int' or {num_classes: N}"),
    ("label-zero-classes", image("decode: decode\n") + "    label: {num_classes: 0}\n", "6:26",
     "num_classes of label: must be in [1, 1000000], got 0"),
    # --- loader -----------------------------------------------------------------------------
    ("loader-unknown-order", image("decode: decode\n") + "    loader: {order: shuffled}\n",
     "6:21", "order of loader: must be one of 'sequential', 'random', 'quasi_random' or null"),
    ("loader-order-typo", image("decode: decode\n") + "    loader: {order: quasirandom}\n",
     "6:21", "got 'quasirandom'; did you mean 'quasi_random'"),
    ("loader-batch-zero", image("decode: decode\n") + "    loader: {batch_size: 0}\n", "6:26",
     "batch_size of loader: must be in [1, 65536], got 0"),
    ("loader-batch-string", image("decode: decode\n") + "    loader: {batch_size: '64'}\n",
     "6:26", "batch_size of loader: must be an integer, got '64'"),
    ("loader-bool-as-int", image("decode: decode\n") + "    loader: {drop_last: 1}\n", "6:25",
     "drop_last of loader: must be true or false or null, got 1"),
    ("loader-unknown-key", image("decode: decode\n") + "    loader: {workers: 2}\n", "6:14",
     "unknown key 'workers' in loader; did you mean 'num_workers'"),
    ("loader-workers-low", image("decode: decode\n") + "    loader: {num_workers: -2}\n", "6:27",
     "num_workers of loader: must be in [-1, 1024], got -2"),
    # --- op entries ---------------------------------------------------------------------------
    ("op-unknown", image("decode: decode\ncpu: [trivial_augment_widee]\n"), "6:13",
     "unknown op 'trivial_augment_widee'"),
    ("op-typo", image("decode: decode\ncpu: [horizontal_flp]\n"), "6:13",
     "unknown op 'horizontal_flp'; did you mean 'horizontal_flip'?"),
    ("op-params-unindented", image("decode: decode\ncpu:\n  - horizontal_flip:\n    p: 0.5\n"),
     "7:11", "indent the parameters under the op name"),
    ("op-params-scalar", image("decode: decode\ncpu: [{horizontal_flip: 0.5}]\n"), "6:31",
     "parameters of 'horizontal_flip' must be a mapping"),
    ("op-entry-number", image("decode: decode\ncpu: [5]\n"), "6:13", "expected an op"),
    ("op-unknown-param", image("decode: {random_resized_crop: {size: 32, sclae: [0.1, 1]}}\n"),
     "5:48", "unknown key 'sclae' in 'random_resized_crop'; did you mean 'scale'?"),
    ("op-missing-required", image("decode: random_resized_crop\n"), "5:15",
     "'random_resized_crop' needs 'size'"),
    ("op-probability-high", image("decode: decode\ncpu: [{horizontal_flip: {p: 1.5}}]\n"), "6:35",
     "p of 'horizontal_flip': must be in [0.0, 1.0], got 1.5"),
    ("op-probability-string", image("decode: decode\ncpu: [{horizontal_flip: {p: half}}]\n"),
     "6:35", "p of 'horizontal_flip': must be a number, got 'half'"),
    ("op-negative-size", image("decode: {center_crop: {size: -4}}\n"), "5:36",
     "size of 'center_crop': must be in [1, 16384], got -4"),
    ("op-size-float", image("decode: {center_crop: {size: 3.5}}\n"), "5:36",
     "size of 'center_crop': must be a list of 2 integers or an integer"),
    ("op-size-wrong-length", image("decode: {center_crop: {size: [1, 2, 3]}}\n"), "5:36",
     "must be a list of 2 integers, got a list of 3"),
    ("op-size-element", image("decode: {center_crop: {size: [32, x]}}\n"), "5:41",
     "size of 'center_crop': must be an integer, got 'x'"),
    ("op-scale-descending",
     image("decode: {random_resized_crop: {size: 32, scale: [0.9, 0.1]}}\n"), "5:55",
     "must be [min, max] with min <= max, got [0.9, 0.1]"),
    ("op-mean-length", image("decode: decode\ndevice: {ops: [{normalize: {mean: [1, 2]}}]}\n"),
     "6:41", "mean of 'normalize': must be a list of 3 numbers, got a list of 2"),
    ("op-mean-unknown-name",
     image("decode: decode\ndevice: {ops: [{normalize: {mean: imagenett}}]}\n"), "6:41",
     "mean of 'normalize': unknown name 'imagenett'; known names: cifar10, cifar100, imagenet"),
    ("op-std-zero", image("decode: decode\ndevice: {ops: [{normalize: {std: [1, 0, 1]}}]}\n"),
     "6:40", "std of 'normalize': must be in (0.0, 255.0], got 0.0"),
    ("op-dotted-missing-module", image("decode: decode\ncpu: [no_such_pkg.aug:Thing]\n"), "6:13",
     "cannot import 'no_such_pkg.aug' for op 'no_such_pkg.aug:Thing'"),
    ("op-dotted-missing-attr", image("decode: decode\ncpu: ['operations.rng:no_such_op']\n"),
     "6:13", "module 'operations.rng' has no attribute 'no_such_op'"),
    ("op-dotted-not-an-op", image("decode: decode\ncpu: ['operations.rng:EpochClock']\n"), "6:13",
     "cannot load op 'operations.rng:EpochClock'"),
    # --- stages and order (the planner) -------------------------------------------------------
    ("decoder-in-cpu", image("decode: decode\ncpu: [{center_crop: {size: 8}}]\n"), "6:14",
     "'center_crop' is a decoder and cannot be in image.cpu; put it under image.decode"),
    ("cpu-op-as-decoder", image("decode: horizontal_flip\n"), "5:15",
     "'horizontal_flip' is a CPU (Numba) op and cannot be in image.decode"),
    ("device-op-before-boundary", image("decode: decode\ncpu: [normalize_flip]\n"), "6:13",
     "'normalize_flip' is a device (torch) op and cannot be in image.cpu (torch ops run after the "
     "transfer to the device)"),
    ("cpu-op-on-device", image("decode: decode\ndevice: {ops: [grayscale]}\n"), "6:22",
     "makes FFCV's Loader hang"),
    ("uint8-op-after-normalize",
     image("decode: {center_crop: {size: 8}}\ncpu:\n  - cpu_normalize\n  - solarize: {threshold: 128}\n"),
     "8:11", "'solarize' expects uint8 images but gets float32"),
    ("normalize-twice",
     image("decode: decode\ndevice: {ops: [normalize, normalize]}\n"), "6:33",
     "'normalize' expects uint8 images but gets float32"),
]


@pytest.mark.parametrize("text, where, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_spec_reports_exact_position(text, where, fragment):
    lines = errors_of(text)
    matching = [line for line in lines if line.startswith(f"<string>:{where}: ")]
    assert matching, f"no error at {where}; got:\n" + "\n".join(lines)
    assert any(fragment in line for line in matching), "\n".join(lines)


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


def test_all_errors_of_a_file_are_reported_in_file_order():
    text = image("""\
        decode: {random_resized_crop: {size: 0}}
        cpu:
          - horizontal_flp
          - {horizontal_flip: {p: 3}}
        """) + "    loader: {ordr: random}\n"
    with pytest.raises(SpecError) as info:
        load_spec(text)
    assert [(e.line, e.column) for e in info.value.errors] == [(5, 44), (7, 11), (8, 33), (9, 14)]
    assert (info.value.line, info.value.column) == (5, 44)
    assert len(str(info.value).splitlines()) == 4


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nsplits:\n  train:\n    image: {decode: nope}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    error = info.value
    assert (error.file, error.line, error.column) == (str(path), 4, 21)
    assert str(error) == f"{path}:4:21: {error.message}"
    assert "\n" not in str(error)


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match=r"missing\.yaml:1:1: cannot read the spec"):
        load_spec(str(tmp_path / "missing.yaml"))

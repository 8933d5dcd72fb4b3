"""A kernel that raises stops the epoch with one line naming the op, where the spec wrote it,
the sample and the kernel's own message (operations.kernel_errors), through the loader,
``pureffcv bench``, ``preview`` and ``fit``, and no batch holding a sample it failed on is
delivered."""
import numpy as np
import pytest

from compiler import compile_spec
from operations.kernel_errors import KernelError
from pipelines import loading
from tests.conftest import structured_image
from tests.pipelines import raising_kernel

#: the small_beton samples the probe fails on, from the images themselves: as stored, and
#: centre-cropped to 32x32 (FIT_SPEC)
FAILING = [i for i in range(40) if structured_image(32, 40, seed=i)[16, 20, 0] > 200]
CROPPED_FAILING = [i for i in range(40) if structured_image(32, 40, seed=i)[16, 24, 0] > 200]


def test_the_fixture_fails_on_some_samples_only():
    assert FAILING[0] == 9 and 3 <= len(FAILING) < 30
    assert 3 <= len(CROPPED_FAILING) < 30 and CROPPED_FAILING != FAILING


def test_a_raising_kernel_stops_the_epoch_with_one_line(small_beton):
    loader = compile_spec(raising_kernel.SPEC, device="cpu").loader(small_beton)
    delivered = []
    with pytest.raises(loading.LoaderError) as error:
        for images, _ in loader:
            delivered.append(images.numpy().copy())
    assert str(error.value) == raising_kernel.message("<string>", FAILING[0])
    assert error.value.located  # the CLI prints it as it is
    assert isinstance(error.value.__cause__, KernelError)
    assert isinstance(error.value.__cause__.__cause__, ValueError)
    # what was delivered is whole batches before the failing one, each image as stored
    assert len(delivered) == FAILING[0] // 8
    for b, batch in enumerate(delivered):
        expected = [structured_image(32, 40, seed=8 * b + k) for k in range(8)]
        assert np.array_equal(batch.transpose(0, 2, 3, 1), np.stack(expected))


def _spec(tmp_path, text=raising_kernel.SPEC):
    spec = tmp_path / "probe.yaml"
    spec.write_text(text)
    return spec


def _last_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err.strip().splitlines()[-1]


def _assert_names_a_failing_sample(line: str, spec, failing=FAILING) -> None:
    """``line`` is the kernel error of one of the samples the probe fails on (a command may
    read the samples in its own order)."""
    prefix, suffix = f"{spec}:7:13: op 'probe' failed on sample ", ": ValueError: probe: bad image"
    assert line.startswith(prefix) and line.endswith(suffix)
    assert int(line[len(prefix):-len(suffix)]) in failing


def test_bench_prints_the_kernel_error(tmp_path, small_beton, capsys):
    from pipelines.cli import main

    spec = _spec(tmp_path)
    assert main(["bench", str(spec), str(small_beton), "--device", "cpu", "--epochs", "1",
                 "--json"]) == 1
    _assert_names_a_failing_sample(_last_error_line(capsys), spec)


def test_preview_prints_the_kernel_error_and_writes_no_grid(tmp_path, small_beton, capsys):
    from pipelines.cli import main

    spec, grid = _spec(tmp_path), tmp_path / "grid.png"
    assert main(["preview", str(spec), str(small_beton), "--out", str(grid)]) == 1
    _assert_names_a_failing_sample(_last_error_line(capsys), spec)
    assert not grid.exists()


def test_fit_stops_with_the_kernel_error(tmp_path, small_beton, capsys):
    from pipelines.cli import main

    spec = _spec(tmp_path, raising_kernel.FIT_SPEC)
    assert main(["fit", "--data.spec", str(spec), "--data.train_path", str(small_beton),
                 "--data.val_path", str(small_beton), "--model.arch", "resnet18",
                 "--model.width", "8", "--model.num_classes", "4", "--trainer.max_epochs", "1",
                 "--trainer.accelerator", "cpu", "--trainer.logger", "false",
                 "--trainer.enable_checkpointing", "false",
                 "--trainer.default_root_dir", str(tmp_path / "run")]) == 1
    line = _last_error_line(capsys)
    assert line.startswith("pureffcv fit: ")
    _assert_names_a_failing_sample(line[len("pureffcv fit: "):], spec, CROPPED_FAILING)

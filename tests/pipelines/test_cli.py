"""The `pureffcv` command itself: --help, and `pureffcv doctor`'s report and exit codes."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.doctor import check_no_torchvision

PUREFFCV = str(Path(sys.executable).with_name("pureffcv"))


def test_help_lists_the_commands():
    done = subprocess.run([PUREFFCV, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ")
              and not line.startswith("     ")]  # "    NAME  help" (continuations: deeper)
    assert listed == ["convert", "doctor", "specs", "check", "explain", "preview", "stats", "bench",
                      "fit", "validate", "test", "predict", "train", "demo", "studio", "cache"]
    assert "convert an image folder, .npz, segmentation, COCO or YOLO data" in done.stdout
    assert "check that this environment can run pureffcv" in done.stdout


def test_convert_help_shows_the_options(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["convert", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("--write-mode", "--max-resolution", "--jpeg-quality", "--workers",
                   "--strict", "--force", "OUT.classes.json", "OUT.skipped.txt"):
        assert option in out


def doctor_lines(text: str) -> dict:
    """{check name: (status, rest of the line)} from doctor's report."""
    lines = {}
    for line in text.splitlines():
        status, name, rest = re.split(r"\s{2,}", line, maxsplit=2)
        lines[name] = (status, rest)
    return lines


def test_doctor_passes_in_this_environment():
    done = subprocess.run([PUREFFCV, "doctor"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = doctor_lines(done.stdout)
    assert set(lines) == {"python", "ffcv", "ffcv C ext", "jpeg/opencv", "numba",
                          "numba internals", "numba cache", "torch", "cuda devices", "cupy",
                          "lightning", "torchvision", "pillow"}
    assert all(status in ("OK", "NOTE") for status, _ in lines.values())
    for name in ("python", "ffcv", "ffcv C ext", "jpeg/opencv", "numba", "numba internals",
                 "torch", "lightning", "torchvision"):
        assert lines[name][0] == "OK", lines[name]
    assert "libturbojpeg" in lines["jpeg/opencv"][1] and "opencv" in lines["jpeg/opencv"][1]
    assert "threads" in lines["numba"][1]
    assert lines["torchvision"][1] == "not installed (as required)"


def test_doctor_exits_1_when_a_required_package_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lightning", None)  # makes `import lightning` fail
    assert main(["doctor"]) == 1
    lines = doctor_lines(capsys.readouterr().out)
    assert lines["lightning"] == ("FAIL", "not installed  -> pip install lightning")
    assert lines["ffcv"][0] == "OK"


def test_doctor_flags_an_installed_torchvision(tmp_path, monkeypatch):
    (tmp_path / "torchvision").mkdir()
    (tmp_path / "torchvision" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    check = check_no_torchvision()
    assert (check.status, check.fix) == ("FAIL", "pip uninstall -y torchvision")
    assert str(tmp_path / "torchvision" / "__init__.py") in check.detail
    assert "torchvision" not in sys.modules  # found, never imported


def test_a_missing_ffcv_is_one_line_that_says_how_to_install_it(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: 1\nsplits: {}\n")
    # a fresh interpreter in which `import ffcv` fails, running the real CLI entry point
    code = ("import sys; sys.modules['ffcv'] = None; from pipelines.cli import main; "
            f"sys.exit(main(['check', {str(spec)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("pureffcv: FFCV cannot be imported (No module named 'ffcv.")
    assert "'ffcv' is not a package); pureffcv needs it. Install it with `make install`" \
        in done.stderr
    assert "apt-get install pkg-config libopencv-dev libturbojpeg0-dev" in done.stderr
    assert "pip install --no-build-isolation ffcv==1.0.2" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["check", "explain", "preview", "bench"])
def test_a_mistyped_spec_path_is_reported_as_missing(command, tmp_path, capsys, small_beton):
    missing = tmp_path / "spec"  # no .yaml suffix: once read as YAML text
    args = {"check": [], "explain": ["--device", "cpu"],
            "preview": [str(small_beton), "--out", str(tmp_path / "p.png")],
            "bench": [str(small_beton), "--device", "cpu"]}[command]
    assert main([command, str(missing), *args]) == 1
    assert capsys.readouterr().err == (f"{missing}:1:1: cannot read the spec: No such file or "
                                       f"directory\n")


def run_without(module: str, argv) -> subprocess.CompletedProcess:
    """The real CLI in a fresh interpreter in which ``import <module>`` fails."""
    code = (f"import sys; sys.modules[{module!r}] = None; from pipelines.cli import main; "
            f"sys.exit(main({list(map(str, argv))!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_demo_without_scikit_image_says_how_to_install_it(tmp_path):
    done = run_without("skimage", ["demo", "--quick", "--cache", tmp_path / "cache"])
    assert done.returncode == 1
    assert done.stderr == ("pureffcv demo: skimage is not installed; install it with "
                           "pip install 'pureffcv[demo]'\n")
    assert not (tmp_path / "cache").exists()  # checked before any work


def test_bench_plot_without_matplotlib_fails_before_timing(tmp_path, small_beton):
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: 1\nsplits:\n  train:\n    image: {decode: {center_crop: "
                    "{size: 8}}}\n")
    done = run_without("matplotlib", ["bench", spec, small_beton, "--device", "cpu",
                                      "--plot", tmp_path / "plot.png"])
    assert done.returncode == 1
    # no progress bar and nothing on stdout: no timed run started
    assert (done.stdout, done.stderr) == ("", "pureffcv bench: matplotlib is not installed; "
                                              "install it with pip install 'pureffcv[demo]'\n")

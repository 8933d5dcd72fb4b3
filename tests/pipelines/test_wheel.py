"""The package as a user installs it: a wheel built from the repo, installed (not editable)
into a fresh venv, running ``pureffcv demo --quick`` from a directory outside the checkout.
The shipped specs must travel as package data (the demo failed with
``site-packages/specs/demo.yaml:1:1: cannot read the spec``)."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_in_a_fresh_venv_runs_the_demo_from_outside_the_checkout(tmp_path):
    # nothing from the checkout on the path (PYTHONPATH would also show pip the build's
    # pureffcv.egg-info as an installed pureffcv and make it skip the install)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(REPO)], env=env)
    (wheel,) = wheels.glob("pureffcv-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], env=env)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        env=env)
    # the dependencies (torch, ffcv, lightning...) from this environment, as a plain path
    # entry: its .pth files (the editable install of the checkout) are not processed
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                        "['purelib'])"], env=env).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = run([str(python), "-c", "import compiler.shipped as s, pipelines; "
                 "print(pipelines.__file__); print(s.shipped_specs()['demo'])"],
                cwd=outside, env=env).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where  # the wheel's, not the repo's
    names = run([str(venv / "bin" / "pureffcv"), "specs"], cwd=outside, env=env).stdout
    assert [line.split()[0] for line in names.splitlines()] == sorted(
        p.stem for p in (REPO / "specs").glob("*.yaml"))
    done = run([str(venv / "bin" / "pureffcv"), "demo", "--quick", "--epochs", "1", "--cache",
                str(tmp_path / "cache")], cwd=outside, env=env, timeout=540)
    assert "validation top-1" in done.stdout
    assert Path(done.stdout.strip().splitlines()[-1].removeprefix("preview: ")).is_file()

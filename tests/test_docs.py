"""The documented commands run as written, so the docs cannot drift from the code: the
README's five-minute tour word for word (in a scratch HOME, the studio stopped once it has
served a render), and every example of docs/lightning.md (commands parsed by the real CLI,
Python blocks executed)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def blocks(markdown: str, language: str):
    return re.findall(rf"```{language}\n(.*?)```", markdown, flags=re.S)


def tour() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    (script,) = blocks(section, "bash")
    return script


#: ``pureffcv studio`` serves until Ctrl-C: run it until its page has a render, then stop it
STUDIO = r"""
pureffcv() {
  if [ "$1" = studio ]; then
    command pureffcv "$@" --port 0 > studio.log 2>&1 &
    local pid=$!
    for _ in $(seq 600); do grep -q "http://" studio.log && break; sleep 0.2; done
    python - "$(grep -o 'http://[^ ]*' studio.log | head -1)" <<'PY'
import json, sys, time, urllib.request
for _ in range(1500):
    state = json.load(urllib.request.urlopen(sys.argv[1] + "api/state"))
    if state.get("version") and not state["busy"]:
        break
    time.sleep(0.2)
assert not state["errors"] and len(state["samples"]) == 16, state
print("studio served", len(state["samples"]), "samples")
PY
    kill $pid; wait $pid || true  # SIGTERM: a background job of a script ignores SIGINT
  else
    command pureffcv "$@"
  fi
}
"""


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_readme_tour_runs_word_for_word(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("PUREFFCV_DATA", None)
    script = "set -euo pipefail\n" + STUDIO + tour()
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=1150)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    assert "studio served 16 samples" in done.stdout
    assert (tmp_path / "grid.png").is_file()
    rows = (tmp_path / "runs" / "tour" / "predictions.csv").read_text().splitlines()
    assert rows[0].startswith("index,label,label_name,class_1,name_1,prob_1")
    assert len(rows) == 1 + 8 * 12  # the quick demo's val split: 12 per class
    # the longer resume says the schedule changed; library notices stay off the console
    assert "resuming with max_epochs 3, but the checkpoint's run had 2" in output
    for noise in ("Tip:", "tensorboardX", "LeafSpec"):
        assert noise not in output


def lightning_md() -> str:
    return (REPO / "docs" / "lightning.md").read_text()


def documented_commands():
    """Every pureffcv fit/validate/test/predict command of docs/lightning.md's bash blocks,
    continuation lines joined, with what launches it (torchrun, srun) left off."""
    commands = []
    for block in blocks(lightning_md(), "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            match = re.search(r"(?:pureffcv|-m pipelines\.cli) (fit|validate|test|predict)\b(.*)",
                              line)
            if match:
                commands.append((match[1], match[2].split()))
    return commands


def test_lightning_md_commands_parse_with_the_cli(tmp_path, capsys):
    """Each documented command, with its config files present (the shipped run config as
    ``run.yaml`` and as the run's ``config.yaml``), parses with every option it names."""
    from pipelines.cli import main

    commands = documented_commands()
    assert len(commands) >= 8
    config = REPO / "specs" / "runs" / "imagenet_rn50.yaml"
    shutil.copy(config, tmp_path / "run.yaml")
    run = tmp_path / "runs" / "imagenet_rn50" / "version_0"
    run.mkdir(parents=True)
    shutil.copy(config, run / "config.yaml")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        (tmp_path / "specs").symlink_to(REPO / "specs")
        for name, argv in commands:
            # the docs' placeholders for the machine and GPU counts, as a reader fills them in
            numbers = {"N": "2", "G": "8"}
            argv = [numbers.get(a, a.replace("$RUN", str(run))) for a in argv
                    if a != "--print_config"]
            with pytest.raises(SystemExit) as exited:
                main([name, *argv, "--print_config"])
            assert exited.value.code == 0, (name, argv, capsys.readouterr().err[-2000:])
            assert "model:" in capsys.readouterr().out
    finally:
        os.chdir(cwd)


def test_lightning_md_python_examples_run(tmp_path, monkeypatch):
    """The Python blocks as written: the multi-label writer on a small data set of the shape
    its comment names, and the Trainer example up to ``fit`` (recorded: no ImageNet here)."""
    import lightning.pytorch as pl
    import numpy as np

    python = blocks(lightning_md(), "python")
    assert len(python) == 2
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    dataset = [(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
                rng.integers(0, 2, 20).astype(np.uint8)) for _ in range(4)]
    exec(python[0], {"np": np, "my_dataset": dataset})
    from pipelines.data_checks import open_reader

    assert int(open_reader(str(tmp_path / "train.beton")).num_samples) == 4

    fitted = []

    class Trainer:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

        def fit(self, model, data):
            fitted.append((self.kwargs, model, data))

    monkeypatch.setattr(pl, "Trainer", Trainer)
    monkeypatch.chdir(REPO)
    exec(python[1], {})
    (kwargs, model, data), = fitted
    assert kwargs["use_distributed_sampler"] is False and model.hparams.lr == 1.7
    from compiler import load_spec

    load_spec(Path(data.spec))  # the spec it names exists and is valid


def test_lightning_md_spec_example_loads():
    """The field-mapping example is a whole split: it loads as a spec and reads its fields."""
    from compiler import compile_spec, load_spec

    (example,) = [b for b in blocks(lightning_md(), "yaml") if b.startswith("splits:")]
    spec = load_spec("version: 1\n" + example)
    compiled = compile_spec(spec, "train", device="cpu")
    assert (compiled.image_field, compiled.label_field) == ("img", "target")

"""The hostile and malformed spec corpus (``hostile_corpus.py``): each case makes ``pureffcv
check`` exit 1 with exactly one line ``FILE:LINE:COL: message`` at the marked place, no
traceback, in under 10 s. Most run in-process through ``pipelines.cli.main`` (what the
console script calls); a handful through the real ``pureffcv check`` in a subprocess."""
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.compiler.hostile_corpus import CASES, MODULES

MARK = "⟨"
REPO = Path(__file__).resolve().parents[2]
LIMIT_S = 10
#: YAML's line breaks (pyyaml counts these when it reports a line)
BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def located(text: str):
    """(text without the marker, "LINE:COL" of the marker)."""
    assert text.count(MARK) == 1, "a case needs exactly one marker"
    index = text.index(MARK)
    breaks = list(BREAK.finditer(text[:index]))
    column = index - (breaks[-1].end() if breaks else 0) + 1
    return text.replace(MARK, ""), f"{len(breaks) + 1}:{column}"


def expected_line(path: Path, where: str, message: str) -> re.Pattern:
    head = re.escape(f"{path}:{where}: ")
    if message.endswith("..."):
        return re.compile(head + re.escape(message[:-3]) + ".*")
    return re.compile(head + re.escape(message))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    for name, source in MODULES.items():
        (root / f"{name}.py").write_text(source)
    return root


class TooSlow(Exception):
    pass


def _alarm(signum, frame):
    raise TooSlow(f"check took more than {LIMIT_S} s")


PARAMS = [pytest.param(*case, id=case[0]) for case in CASES]


@pytest.mark.parametrize("case_id, text, message", PARAMS)
def test_each_hostile_spec_is_one_located_line(folder, capsys, case_id, text, message):
    text, where = located(text)
    path = folder / f"{case_id}.yaml"
    path.write_text(text, encoding="utf-8", newline="")
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        code = main(["check", str(path)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 1 and captured.out == ""
    assert len(lines) == 1, captured.err
    assert expected_line(path, where, message).fullmatch(lines[0]), \
        f"\nexpected {path.name}:{where}: {message}\ngot      {lines[0]}"


def test_the_corpus_covers_every_category():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) >= 100
    prefixes = ("bomb-", "deep-", "tag-", "implicit-", "unclosed-", "import-", "raw-", "mean-",
                "std-", "seed-", "size-", "rrc-")
    assert all(any(i.startswith(p) for i in ids) for p in prefixes)


def test_edge_values_that_are_valid_pass(folder, capsys):
    """The limits themselves are accepted: a seed of 2**64 - 1, std of ones, a mean of zeros."""
    text = ("version: 1\nseed: 18446744073709551615\nsplits:\n  train:\n    image:\n"
            "      decode: {random_resized_crop: {size: 16384, scale: [1.0e-9, 1], ratio: [0.01, 100]}}\n"
            "      cpu: [{random_erasing: {count: 1024}}]\n"
            "      device: {ops: [{normalize: {mean: [0, 0, 0], std: [1, 1, 1]}}]}\n"
            "    loader: {batch_size: 65536, num_workers: 1024, batches_ahead: 64}\n")
    path = folder / "edges.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == f"{path}: ok (train)\n"


SUBPROCESS_CASES = ["bomb-10-wide", "deep-flow-lists", "tag-int-on-text", "nul-in-value",
                    "import-sys-exit-0", "rotate-nan", "raw-to-tensor-last-cpu-op"]


def test_a_handful_through_the_real_command(folder):
    """The console script, one process for all: one line per file, exit 1, no traceback."""
    cases = {c[0]: c for c in CASES}
    paths, patterns = [], []
    for case_id in SUBPROCESS_CASES:
        _, text, message = cases[case_id]
        text, where = located(text)
        path = folder / f"real-{case_id}.yaml"
        path.write_text(text, encoding="utf-8", newline="")
        paths.append(str(path))
        patterns.append(expected_line(path, where, message))
    command = [str(Path(sys.executable).with_name("pureffcv")), "check", *paths]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == len(paths), done.stderr
    for line, pattern in zip(lines, patterns):
        assert pattern.fullmatch(line), line

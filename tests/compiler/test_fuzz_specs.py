"""A seeded mutation fuzzer of the shipped specs: whatever the bytes, ``load_spec`` and
``compile_spec`` raise nothing but ``PureffcvError`` (the one user-facing error base class),
and no case hangs. Hypothesis is derandomized (the same 200 cases every run)."""
import signal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import compile_spec, load_spec
from operations.errors import PureffcvError

SPECS = sorted((Path(__file__).resolve().parents[2] / "specs").glob("*.yaml"))
TEXTS = [path.read_text() for path in SPECS]
#: what a careless or hostile edit inserts: tags, anchors, brackets, quotes, control
#: characters, non-finite and huge numbers, odd scalars, structure characters
TOKENS = ["!!int zero", "!!float quarter", "!!timestamp x", "!!binary a", "!!set", "!foo",
          "!!python/object:os.system", ".nan", ".inf", "-.inf", "1.0e+999", "*x", "&x", "*a",
          "&a [*a]", "<<: ", "[", "]", "{", "}", '"', "'", "\x00", "\x07", "\t", ": ", "- ", "? ",
          "|", ">", "~", "null", "0", "-1", "0.0", "18446744073709551616", "9" * 40, "0b_",
          "0x_", "2001-13-45", "---", "...", "#", ",", "yes", "1:20", "x-", "\n", "  ", "[" * 80,
          "imports: [os]\n", "[0.485, 0.456, 0.406]", "[-0.5, 1.0]", "[0, 0]", "p", "size",
          "mean", "ratio", "scale", "@", "`", "%YAML 1.1\n"]
LIMIT_S = 10

mutation = st.tuples(st.sampled_from(["insert", "delete", "replace", "duplicate-line"]),
                     st.floats(0, 1), st.sampled_from(TOKENS), st.integers(0, 12))


def mutate(text: str, edits) -> str:
    for kind, where, token, length in edits:
        i = int(where * len(text))
        if kind == "insert":
            text = text[:i] + token + text[i:]
        elif kind == "delete":
            text = text[:i] + text[i + length + 1:]
        elif kind == "replace":
            text = text[:i] + token + text[i + length:]
        else:
            lines = text.split("\n")
            j = min(int(where * len(lines)), len(lines) - 1)
            lines.insert(min(j + length, len(lines)), lines[j])
            text = "\n".join(lines)
    return text


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"a case ran for more than {LIMIT_S} s")


def check(text: str) -> None:
    """What ``pureffcv check`` does with a file: load, then plan every split."""
    spec = load_spec(text)
    for split in spec.splits:
        compile_spec(spec, split=split, device="cpu")


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(range(len(TEXTS))), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_shipped_specs_raise_only_user_errors(which, edits):
    text = mutate(TEXTS[which], edits)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        check(text)
    except PureffcvError as error:
        assert str(error).strip(), "an error without a message"
        for line in str(error).splitlines():  # one located line per mistake
            assert line.startswith("<string>:") or ": " in line, line
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_the_shipped_specs_themselves_are_valid():
    assert SPECS
    for text in TEXTS:
        check(text)

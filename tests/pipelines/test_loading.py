"""pipelines.loading: an error in FFCV's loader thread reaches the consumer as one line, with
the thread's own exception as its cause, and the thread's traceback is not printed."""
import threading

import pytest

from compiler import compile_spec
from operations.pointers import KernelTypingError
from pipelines import loading
from tests.pipelines import failing_kernel


def test_a_failing_loader_thread_raises_in_the_consumer(small_beton, capfd):
    loader = compile_spec(failing_kernel.SPEC, device="cpu").loader(small_beton)
    before = threading.active_count()
    with pytest.raises(loading.LoaderError) as error:
        list(loading.epoch(loader))
    assert str(error.value).startswith(failing_kernel.MESSAGE)
    assert "\n" not in str(error.value)
    assert isinstance(error.value.__cause__, KernelTypingError)
    assert capfd.readouterr().err == ""  # FFCV's thread printed no traceback
    assert threading.active_count() == before  # the thread is gone


def test_summary_is_the_first_line_of_other_errors():
    assert loading.summary(ValueError("bad value\nmore detail")) == "ValueError: bad value"
    assert loading.summary(KeyError()) == "KeyError"

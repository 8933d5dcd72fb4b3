"""The routes of a chain's steps through its buffers (``batch_loop.chain_routes``)."""
from hypothesis import given, strategies as st

from operations.batch_loop import INPUT, OUTPUT, SCRATCH, SECOND_SCRATCH, chain_routes


def test_a_writer_alone_reads_the_input_and_writes_the_output():
    assert chain_routes((False,)) == ((INPUT, OUTPUT),)


def test_in_place_steps_run_on_what_the_step_before_them_wrote():
    assert chain_routes((True, False, True, True)) == (
        (INPUT, INPUT), (INPUT, OUTPUT), (OUTPUT, OUTPUT), (OUTPUT, OUTPUT))


def test_steps_before_the_writer_write_two_scratch_buffers_in_turn():
    assert chain_routes((False, False, True, False, False, True)) == (
        (INPUT, SCRATCH), (SCRATCH, SECOND_SCRATCH), (SECOND_SCRATCH, SECOND_SCRATCH),
        (SECOND_SCRATCH, SCRATCH), (SCRATCH, OUTPUT), (OUTPUT, OUTPUT))


@given(st.lists(st.booleans(), min_size=1, max_size=12).filter(lambda flags: not all(flags)))
def test_every_route_reads_what_the_last_writer_wrote_and_never_writes_what_it_reads(flags):
    """Replaying the routes: each step reads the buffer holding the image so far; a step
    with a buffer of its own writes another one; the image ends in the output, written once."""
    routes = chain_routes(tuple(flags))
    holder, writes_to_output = INPUT, 0
    for runs_in_place, (source, target) in zip(flags, routes):
        assert source == holder
        assert (source == target) == runs_in_place
        writes_to_output += target == OUTPUT and not runs_in_place
        holder = target
    assert holder == OUTPUT and writes_to_output == 1

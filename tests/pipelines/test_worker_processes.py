"""pipelines.worker_processes: a process forked inside ``forks_start_as_workers`` starts as a
worker (default SIGTERM, SIGINT left to the parent, killed with its parent) before running
any code of its own; a fork outside the block keeps the parent's handlers."""
import multiprocessing
import signal

from pipelines.worker_processes import forks_start_as_workers


def report(queue) -> None:
    queue.put((signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
               signal.getsignal(signal.SIGTERM) == signal.SIG_DFL))


def handlers_of_a_forked_child(inside: bool):
    fork = multiprocessing.get_context("fork")
    queue = fork.Queue()
    child = fork.Process(target=report, args=(queue,))
    if inside:
        with forks_start_as_workers():
            child.start()
    else:
        child.start()
    result = queue.get(timeout=60)
    child.join(timeout=60)
    return result


def test_a_fork_inside_the_block_starts_as_a_worker():
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # as Lightning installs one
    try:
        assert handlers_of_a_forked_child(inside=True) == (True, True)
        assert handlers_of_a_forked_child(inside=False) == (False, False)
    finally:
        signal.signal(signal.SIGTERM, previous)

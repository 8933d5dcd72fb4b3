"""Check that this environment can run pureffcv: Python, ffcv and its C extension with the
libjpeg-turbo and OpenCV it linked, numba and its thread count, torch and CUDA devices,
cupy (optional), lightning, and that torchvision is absent (it breaks Lightning here).

One line per check: OK, NOTE (optional, with a hint) or FAIL (with the fix). Exit status 0
when every required check is OK, 1 otherwise.
"""
import argparse

HELP = "check that this environment can run pureffcv"


def configure(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    from pipelines.doctor import format_report, healthy, run_checks

    checks = run_checks()
    print(format_report(checks))
    return 0 if healthy(checks) else 1

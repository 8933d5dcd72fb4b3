"""The ``pureffcv`` command: parses arguments and hands them to one command module.

Each module in ``pipelines.commands`` defines ``HELP`` (one line), ``configure(parser)`` and
``run(args) -> int``; it imports heavy libraries (torch, ffcv) inside ``run`` so that
``pureffcv --help`` stays instant. Commands that own their argument parsing (``fit``,
``validate``, ``test``, ``predict`` and ``train``, built on LightningCLI) set
``PASSTHROUGH = True`` and receive the remaining argv as ``args.rest``. A ``PureffcvError``
from any command is printed here, once, as one line (exit 1).
"""
import argparse
import sys
from typing import List, Optional

from .commands import (bench, cache, check, convert, demo, doctor, explain, fit, predict,
                       preview, specs, stats, studio, test, train, validate)

#: the subcommands, in the order ``pureffcv --help`` lists them
COMMANDS = {"convert": convert, "doctor": doctor, "specs": specs, "check": check,
            "explain": explain,
            "preview": preview, "stats": stats, "bench": bench, "fit": fit, "validate": validate,
            "test": test, "predict": predict, "train": train, "demo": demo, "studio": studio,
            "cache": cache}
#: optional modules -> the pureffcv extra that installs them
EXTRAS = {"skimage": "demo", "matplotlib": "demo"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pureffcv",
        description="Compile YAML augmentation specs into pure-FFCV pipelines and train with them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 add_help=not getattr(module, "PASSTHROUGH", False),
                                 # no option prefix for a passthrough command: argparse's
                                 # REMAINDER drops a first argument that looks like an option
                                 prefix_chars="\0" if getattr(module, "PASSTHROUGH", False) else "-")
        command.set_defaults(run=module.run)
        if getattr(module, "PASSTHROUGH", False):
            command.add_argument("rest", nargs=argparse.REMAINDER)
        else:
            module.configure(command)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except ImportError as exc:
        package = (exc.name or "").partition(".")[0]
        if package in EXTRAS:
            print(f"pureffcv {args.command}: {package} is not installed; install it with "
                  f"pip install 'pureffcv[{EXTRAS[package]}]'", file=sys.stderr)
            return 1
        if package != "ffcv":
            raise
        from .doctor import ffcv_missing_message

        print(f"pureffcv: {ffcv_missing_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if not is_user_error(error):
            raise
        print(user_message(args.command, error), file=sys.stderr)
        return 1


def is_user_error(error: Exception) -> bool:
    """Whether ``error`` is a ``PureffcvError`` (a user's mistake or damaged input), asked
    without importing ``operations`` (torch, FFCV) when no command has."""
    errors = sys.modules.get("operations.errors")
    return errors is not None and isinstance(error, errors.PureffcvError)


def user_message(command: str, error: Exception) -> str:
    """The line a command prints for a user error: as it is when it is located
    (``FILE:LINE:COL: message``), else ``pureffcv COMMAND: message``."""
    return str(error) if error.located else f"pureffcv {command}: {error}"


if __name__ == "__main__":
    sys.exit(main())

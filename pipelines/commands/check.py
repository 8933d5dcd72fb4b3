"""Check spec files: YAML syntax, keys, op names, parameter types and ranges, and the plan of
every split (stage order, types). Prints every problem as FILE:LINE:COL: message and exits 1
if there is any; exits 0 when all specs are valid. Deprecated op names are reported once per
file as FILE:LINE:COL: warning: ... with the new spelling; they fail nothing. Compiles no
Numba code and touches no GPU.
"""
import sys

HELP = "validate spec files and plan every split (no GPU, no Numba compilation)"


def configure(parser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (YAML) or shipped spec names (pureffcv specs)")


def run(args) -> int:
    from pathlib import Path

    from compiler import SpecError, compile_spec, load_spec

    failed = False
    for path in args.specs:
        try:
            spec = load_spec(Path(path))
            for warning in spec.warnings:
                print(warning, file=sys.stderr)
            for split in spec.splits:
                compile_spec(spec, split=split, device="cpu")
        except SpecError as error:
            print(error, file=sys.stderr)
            failed = True
        else:
            print(f"{path}: ok ({', '.join(spec.splits)})")
    return 1 if failed else 0

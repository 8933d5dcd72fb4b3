"""Show the compiled plan of one split: every step with its stage, RNG stream, op, the image
type after it (shape, dtype, layout, device) and where it runs (jit-parallel on the CPU, the
transfer, the device, or the batch stage after the loader), then the label pipeline and the
loader options.
"""
HELP = "show the compiled plan of a spec's split, step by step"


def configure(parser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    parser.add_argument("--split", default="train", help="split to explain (default: train)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")


def run(args) -> int:
    from pathlib import Path

    from compiler import compile_spec

    print(compile_spec(Path(args.spec), split=args.split, device=args.device).explain())
    return 0

"""List the specs shipped with pureffcv. Each name works wherever a spec path is expected
(`pureffcv explain hybrid_policy`, `--data.spec imagenet_rn50`); a file of that name in the
current directory wins. They are installed with the package, so they work from any folder.
"""
HELP = "list the shipped specs (usable by name wherever a spec path is expected)"


def configure(parser) -> None:
    parser.add_argument("--paths", action="store_true", help="print each spec's installed file")


def run(args) -> int:
    from compiler.shipped import shipped_specs, summary

    specs = shipped_specs()
    width = max(map(len, specs), default=0)
    for name, path in specs.items():
        print(f"{name:<{width}}  {path if args.paths else summary(path)}")
    return 0

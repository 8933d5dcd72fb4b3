"""Show or empty pureffcv's on-disk cache of compiled Numba kernels.

`pureffcv cache` (or `cache info`) prints the cache directory for this machine and source
tree, its key, and the size of every key's directory; `pureffcv cache clear` removes them all
(the next process compiles again) except the built-in entries; `pureffcv cache build`
compiles those (every shipped spec's ops, once: `make install` runs it) into
$PUREFFCV_BUILTIN_CACHE_DIR or <sys.prefix>/share/pureffcv/numba. The user's location is
$PUREFFCV_CACHE_DIR or ~/.cache/pureffcv/numba; PUREFFCV_CACHE=0 turns caching off.
"""
import argparse

HELP = "show or clear the on-disk cache of compiled kernels"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="info", choices=("info", "clear", "build"),
                        help="info (default): location, key and size; clear: empty it (the "
                             "built-in entries stay); build: compile the built-in entries")


def run(args: argparse.Namespace) -> int:
    from operations import cache

    if args.action == "clear":
        nbytes, files = cache.clear()
        print(f"removed {human(nbytes)} in {files} files from {cache.cache_root()} "
              f"(built-in entries kept in {cache.builtin_root()})")
        return 0
    if args.action == "build":
        from pipelines import prebuild

        splits, seconds = prebuild.build()
        nbytes, files = cache.size(cache.builtin_dir())
        print(f"built the entries of {splits} shipped spec splits in {seconds:.0f} s: "
              f"{human(nbytes)} in {cache.builtin_dir()}")
        return 0
    nbytes, files = cache.size()
    state = "on" if cache.enabled() else "off (PUREFFCV_CACHE=0)"
    print(f"cache:     {state}")
    print(f"directory: {cache.cache_dir()}")
    print(f"size:      {human(nbytes)} in {files} files (all keys under {cache.cache_root()})")
    built, built_files = cache.size(cache.builtin_dir())
    print(f"built-in:  {human(built)} in {built_files} files in {cache.builtin_dir()} "
          f"(`pureffcv cache build`; clear keeps them)")
    print("key:       " + ", ".join(f"{k} {v}" for k, v in cache.key_parts().items()))
    return 0


def human(nbytes: int) -> str:
    """``1.5 MiB``."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"

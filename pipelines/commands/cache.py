"""Show or empty pureffcv's on-disk cache of compiled Numba kernels.

`pureffcv cache` (or `cache info`) prints the cache directory for this machine and source
tree, its key, and the size of every key's directory; `pureffcv cache clear` removes them all
(the next process compiles again). The location is $PUREFFCV_CACHE_DIR or
~/.cache/pureffcv/numba; PUREFFCV_CACHE=0 turns caching off.
"""
import argparse

HELP = "show or clear the on-disk cache of compiled kernels"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="info", choices=("info", "clear"),
                        help="info (default): location, key and size; clear: empty it")


def run(args: argparse.Namespace) -> int:
    from operations import cache

    if args.action == "clear":
        nbytes, files = cache.clear()
        print(f"removed {cache.human(nbytes)} in {files} files from {cache.cache_root()}")
        return 0
    nbytes, files = cache.size()
    state = "on" if cache.enabled() else "off (PUREFFCV_CACHE=0)"
    print(f"cache:     {state}")
    print(f"directory: {cache.cache_dir()}")
    print(f"size:      {cache.human(nbytes)} in {files} files (all keys under {cache.cache_root()})")
    print("key:       " + ", ".join(f"{k} {v}" for k, v in cache.key_parts().items()))
    return 0

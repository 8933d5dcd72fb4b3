"""Serve a local page that shows what a spec does to the data, and re-render it each time
the spec file is saved.

The page (http://127.0.0.1:PORT/) shows originals beside their augmented versions across the
data set's classes (names from DATA.classes.json when `pureffcv convert` wrote one), with
the split's targets drawn as `pureffcv preview` draws them (masks, boxes, keypoints; not on
the per-step images), the
`explain` table, each step's time per image from a short bench, and spec errors as
FILE:LINE:COL highlighted in the YAML. Buttons: new draw (the next epoch), same draw, pick
classes, and step through the pipeline op by op. The process stays warm: after a save only
the ops whose definition changed compile again. Stop it with Ctrl-C.
"""
import sys

HELP = "serve a live page of a spec's augmented samples, re-rendered on save"


def configure(parser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file (YAML), watched for changes")
    parser.add_argument("beton", metavar="DATA.beton", help="data set to take samples from")
    parser.add_argument("--port", type=int, default=8765,
                        help="port on 127.0.0.1 (default: 8765; 0 picks a free one)")
    parser.add_argument("--split", default="train", help="split of the spec (default: train)")
    parser.add_argument("--n", type=int, default=16, help="samples shown (default: 16)")
    parser.add_argument("--epoch", type=int, default=0, help="first epoch shown (default: 0)")
    parser.add_argument("--device", default="auto",
                        help="auto (default: cuda when available), cpu, cuda or cuda:N: where "
                             "the device ops run")


def run(args) -> int:
    from pathlib import Path

    if args.n < 1:
        print("pureffcv studio: --n must be at least 1", file=sys.stderr)
        return 1
    if not Path(args.spec).is_file():
        print(f"pureffcv studio: {args.spec}: no such spec file", file=sys.stderr)
        return 1
    from pipelines.studio.server import serve, wait_forever

    try:
        server = serve(Path(args.spec), args.beton, split=args.split, n=args.n, port=args.port,
                       device=args.device, epoch=args.epoch)
    except OSError as error:  # the port is taken
        print(f"pureffcv studio: cannot listen on 127.0.0.1:{args.port}: {error.strerror}",
              file=sys.stderr)
        return 1
    print(f"pureffcv studio: {server.url}  (watching {args.spec}; Ctrl-C stops)", flush=True)
    wait_forever(server)
    return 0

"""Write a PNG grid of a spec's augmented samples next to their originals, to see what a spec
does before training with it.

Each cell: the sample decoded without augmentation (left), the same sample as training sees it
at --epoch (right: the split's decoder, CPU ops, device ops and batch ops such as mixup, with
the normalization undone for display), and its label (class names when DATA.classes.json,
written by pureffcv convert, exists; for mixed batches, the two largest classes of the soft
target). A split's targets are drawn over both halves: a mask as a translucent colour per
class, boxes outlined in their class's colour with the class (names from DATA.categories.json,
written by pureffcv convert --coco/--yolo), keypoints as dots (rings where occluded); the
augmented half shows what training keeps. By default --n samples drawn across the classes
in turn (seeded by --seed), so an ImageFolder sorted by class shows every class and mixup
pairs differ in class; --classes keeps some classes, --indices shows exactly those samples,
--first the first --n in order. For a split with views (image.views), each cell is the
original, then every view copy (global1[0], global2[0], local[0] ...), each at its own size
with its own normalization undone and captioned with its view and copy.
"""
import sys

HELP = "write a PNG grid of augmented samples beside their originals"


def configure(parser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file (YAML)")
    parser.add_argument("beton", metavar="DATA.beton", help="data set to take samples from")
    parser.add_argument("--out", default="preview.png", metavar="PNG",
                        help="output file (default: preview.png)")
    parser.add_argument("--split", default="train", help="split of the spec (default: train)")
    parser.add_argument("--n", type=int, default=32, help="samples shown (default: 32)")
    parser.add_argument("--indices", default=None, metavar="I,J,...",
                        help="exactly these samples, in this order (comma-separated)")
    parser.add_argument("--classes", default=None, metavar="NAME,...",
                        help="only these classes (names from the class map, or label numbers)")
    parser.add_argument("--seed", type=int, default=0,
                        help="which samples of each class are drawn (default: 0)")
    parser.add_argument("--first", action="store_true",
                        help="the first --n samples in file order instead of across classes")
    parser.add_argument("--epoch", type=int, default=0,
                        help="epoch whose random draws are shown (default: 0)")
    parser.add_argument("--device", default="auto",
                        help="auto (default: cuda when available), cpu, cuda or cuda:N: where "
                             "the device ops run")
    parser.add_argument("--columns", type=int, default=4, help="cells per row (default: 4)")
    parser.add_argument("--zoom", type=int, default=None,
                        help="enlarge images N times (default: small images to 64 px or more)")


def run(args) -> int:
    from pathlib import Path

    from pipelines.preview import preview

    indices = None
    if args.indices is not None:
        try:
            indices = [int(i) for i in args.indices.split(",") if i.strip()]
        except ValueError:
            print(f"pureffcv preview: --indices takes comma-separated integers; got "
                  f"'{args.indices}'", file=sys.stderr)
            return 1
    classes = None if args.classes is None else [c for c in args.classes.split(",") if c.strip()]
    path = preview(Path(args.spec), args.beton, args.out, split=args.split, n=args.n,
                   epoch=args.epoch, device=args.device, columns=args.columns, zoom=args.zoom,
                   indices=indices, classes=classes, seed=args.seed, first=args.first)
    print(f"wrote {path}")
    return 0

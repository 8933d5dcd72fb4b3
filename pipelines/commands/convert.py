"""Convert an image folder or a .npz into an FFCV .beton with fields `image` and `label`, or a
segmentation folder into one with fields `image` and `mask`.

SRC is either an ImageFolder tree (SRC/<class>/<image>; classes sorted by name get labels
0, 1, ...; JPEG, PNG, WebP, BMP, TIFF, GIF; greyscale, palette and RGBA are converted to RGB,
alpha dropped) or a .npz with `images` (N,H,W,3 uint8), `labels` (N integers) and optionally
`classes` (names), or a multi-label CSV of `path,labels` rows (paths relative to the CSV,
class names separated by spaces or `;`): `label` then holds multi-hot vectors (spec:
`label: {type: multi_hot, num_classes: N}`). A SRC with `images/` and `masks/` sub-folders
is a segmentation folder: SRC/images/<stem>.<jpg|png|...> paired with SRC/masks/<stem>.png by
path and stem (sub-folders mirrored); masks are PNGs of class ids (mode L, P: the palette's
indices, I;16 or I), stored losslessly (uint8, or uint16 where an id needs it); images shrunk
by --max-resolution have their masks shrunk to the same size by nearest neighbour.

Every image (and mask) is decoded once before writing: unreadable ones are skipped and listed
in OUT.skipped.txt (--strict: an error instead), and so are images without a mask, masks
without an image and masks of another size than their image or with ids not below
--num-classes. The class mapping (of class folders and CSVs) goes to OUT.classes.json.
The .beton is written under a temporary name and renamed at the end. Convert the val and
test splits with --classes TRAIN.beton: they then label every class as train does, whatever
classes they lack (fit, validate, test and predict refuse .beton files whose maps differ).

Detection and pose data: `--coco ANNOTATIONS.json` reads a COCO instances or keypoints file
with SRC as its image folder; `--yolo` reads SRC as an Ultralytics folder (SRC/images beside
SRC/labels, names from SRC/data.yaml or SRC/classes.txt). The .beton then has fields `image`,
`boxes` (x1, y1, x2, y2 in pixels of the stored image, with labels), `keypoints` when the data
has them and, with --polygon-masks (COCO), `mask` (0 background, label + 1 on instances).
Category ids become labels 0..C-1 in ascending order, written to OUT.categories.json. COCO
iscrowd annotations are left out and counted unless --keep-crowd. Damaged annotations (NaN,
negative or empty boxes, boxes outside the image, unknown categories or images, a wrong
keypoint count, bad YOLO lines) are skipped and listed in OUT.skipped.txt (--strict: an
error); boxes partly outside the image are clipped and counted; malformed JSON or YAML is an
error at its line and column.
"""
import argparse
import os
import sys

HELP = "convert an image folder, .npz, segmentation, COCO or YOLO data into an FFCV .beton"
SHOWN = 20


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC",
                        help="ImageFolder directory, .npz file, multi-label .csv, "
                             "segmentation folder (SRC/images, SRC/masks), the image folder "
                             "of --coco, or a YOLO folder (--yolo)")
    parser.add_argument("out", metavar="OUT.beton", help="output file")
    parser.add_argument("--write-mode", choices=("smart", "raw", "jpg", "proportion"),
                        default="smart",
                        help="smart: raw up to 128x128 pixels, JPEG above (default); raw: "
                             "lossless; jpg: all JPEG; proportion: a --compress-probability "
                             "share JPEG, the rest raw, chosen per image")
    parser.add_argument("--compress-probability", type=float, default=0.5, metavar="P",
                        help="with --write-mode proportion: share of images stored as JPEG, "
                             "0-1 (default: 0.5)")
    parser.add_argument("--max-resolution", type=int, metavar="PIXELS",
                        help="shrink images whose longer side is larger (default: keep sizes)")
    parser.add_argument("--jpeg-quality", type=int, default=90, metavar="Q",
                        help="JPEG quality 1-100 (default: 90)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="processes for checking and writing (default: all CPUs)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 and write nothing if any image cannot be read")
    parser.add_argument("--force", action="store_true", help="overwrite an existing OUT")
    parser.add_argument("--classes", metavar="MAP",
                        help="label with this class map: another split's .beton (its "
                             ".classes.json) or .classes.json, or names separated by commas; "
                             "convert val and test with --classes TRAIN.beton so the labels "
                             "agree (default: SRC's own classes, sorted)")
    parser.add_argument("--num-classes", type=int, metavar="N",
                        help="segmentation: skip masks with class ids >= N other than the "
                             "ignore index (default: not checked)")
    parser.add_argument("--ignore-index", type=int, metavar="ID",
                        help="segmentation: the id of unlabelled pixels (default: 255)")
    detection = parser.add_mutually_exclusive_group()
    detection.add_argument("--coco", metavar="ANNOTATIONS.json",
                           help="detection: a COCO instances (or person keypoints) file whose "
                                "file_names lie under SRC; writes fields image, boxes, "
                                "keypoints (when present) and OUT.categories.json")
    detection.add_argument("--yolo", action="store_true",
                           help="detection: SRC is a YOLO folder (SRC/images/<path>.jpg, "
                                "SRC/labels/<path>.txt of 'class cx cy w h' lines normalised "
                                "to 0-1; an image without labels has no boxes)")
    parser.add_argument("--polygon-masks", action="store_true",
                        help="with --coco: also write a mask field, each instance's polygons "
                             "(or RLE) as label + 1, 0 background")
    parser.add_argument("--keep-crowd", action="store_true",
                        help="with --coco: keep iscrowd annotations (default: left out, "
                             "counted)")


def run(args: argparse.Namespace) -> int:
    from pipelines.class_maps import parse_classes
    from pipelines.convert import ConversionError, convert

    print(f"converting {args.src} -> {args.out}", file=sys.stderr)
    try:
        if args.coco is not None or args.yolo:
            return _detection(args)
        if args.polygon_masks or args.keep_crowd:
            raise ConversionError("--polygon-masks and --keep-crowd apply to --coco")
        classes = parse_classes(args.classes) if args.classes is not None else None
        result = convert(args.src, args.out, write_mode=args.write_mode,
                         max_resolution=args.max_resolution, jpeg_quality=args.jpeg_quality,
                         compress_probability=args.compress_probability,
                         workers=args.workers, strict=args.strict, force=args.force,
                         classes=classes, num_classes=args.num_classes,
                         ignore_index=args.ignore_index)
    except OSError as exc:  # an unwritable OUT, a full disk, a vanished file...
        where = exc.filename if exc.filename is not None else args.out
        print(f"pureffcv convert: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if result.classes is not None:
        _print_classes(result)
    _print_summary(result)
    return 0


def _detection(args: argparse.Namespace) -> int:
    """``run`` of --coco or --yolo: the conversion, then its categories and tally."""
    from pipelines.convert import ConversionError
    from pipelines.convert.coco import convert_coco
    from pipelines.convert.yolo import convert_yolo

    for flag, value in (("--classes", args.classes), ("--num-classes", args.num_classes),
                        ("--ignore-index", args.ignore_index)):
        if value is not None:
            raise ConversionError(f"{flag} does not apply to --coco or --yolo (their "
                                  f"categories come from the annotations)")
    if args.yolo and (args.polygon_masks or args.keep_crowd):
        raise ConversionError("--polygon-masks and --keep-crowd apply to --coco")
    writing = dict(write_mode=args.write_mode, max_resolution=args.max_resolution,
                   jpeg_quality=args.jpeg_quality, compress_probability=args.compress_probability,
                   workers=args.workers, strict=args.strict, force=args.force)
    if args.yolo:
        result = convert_yolo(args.src, args.out, **writing)
    else:
        result = convert_coco(args.coco, args.src, args.out, polygon_masks=args.polygon_masks,
                              keep_crowd=args.keep_crowd, **writing)
    labels = result.categories.labels
    print(f"categories ({len(labels)}, saved to {result.categories_path}):")
    for row in labels[:SHOWN]:
        print(f"  {row['label']:>5}  {row['name']} (id {row['category_id']})")
    if len(labels) > SHOWN:
        print(f"  ... {len(labels) - SHOWN} more in {result.categories_path}")
    _print_summary(result, result.tally.lines())
    return 0


def _print_summary(result, extra=()) -> None:
    for path, reason in result.skipped[:SHOWN]:
        print(f"skipped {path}: {reason}")
    if result.skipped_path is not None:
        print(f"skipped files listed in {result.skipped_path}")
    for line in extra:
        print(line)
    size = os.path.getsize(result.output) / 2**20
    print(f"{result.written} written, {len(result.skipped)} skipped -> {result.output} "
          f"({size:.1f} MiB)")


def _print_classes(result) -> None:
    names = sorted(result.classes, key=result.classes.get)
    print(f"classes ({len(names)}, saved to {result.classes_path}):")
    for name in names[:SHOWN]:
        print(f"  {result.classes[name]:>5}  {name}")
    if len(names) > SHOWN:
        print(f"  ... {len(names) - SHOWN} more in {result.classes_path}")

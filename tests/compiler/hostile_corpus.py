"""Malformed and hostile specs, as data: ``(id, text, message)``.

``text`` holds one marker ``⟨`` placed by hand right before the character the error must point
at; the test removes it and turns its place into ``LINE:COL``. ``message`` is the expected
message after ``FILE:LINE:COL: `` (a prefix of it when it ends in ``...``). Every case has
exactly one error. Modules named ``hostile_*`` are written next to the spec by the test
(``MODULES``)."""

HEAD = "version: 1\nsplits:\n  train:\n    image:\n"  # lines 1-4


def image(*lines: str) -> str:
    """A spec whose train split's image section is ``lines`` (from line 5, indent 6)."""
    return HEAD + "".join(" " * 6 + line + "\n" for line in lines)


def cpu(op: str) -> str:
    """A spec with one CPU op written as a flow entry on line 6 (``cpu: [OP]``)."""
    return image("decode: decode", f"cpu: [{op}]")


def device(op: str) -> str:
    return image("decode: decode", f"device: {{ops: [{op}]}}")


def decode(op: str) -> str:
    return image(f"decode: {op}")


def batch(op: str, classes: str = "4") -> str:
    return image("decode: decode") + f"    label: {{num_classes: {classes}}}\n    batch: [{op}]\n"


def loader(options: str) -> str:
    return image("decode: decode") + f"    loader: {{{options}}}\n"


def top(line: str) -> str:
    """A spec with ``line`` as its second line (after ``version: 1``)."""
    return "version: 1\n" + line + "\nsplits:\n  train:\n    image: {decode: decode}\n"


def bomb(levels: int, width: int, mark: int) -> str:
    """A "billion laughs" under an ignored x- key: level 0 is ``width`` ones, level k lists
    ``width`` aliases of level k-1; ``⟨`` before alias number ``mark`` of the last level."""
    lines = ["x-bomb:", f"  l0: &l0 [{', '.join(['1'] * width)}]"]
    for k in range(1, levels):
        aliases = [f"*l{k - 1}"] * width
        if k == levels - 1:
            aliases[mark - 1] = "⟨" + aliases[mark - 1]
        lines.append(f"  l{k}: &l{k} [{', '.join(aliases)}]")
    return "\n".join(lines) + "\nversion: 1\nsplits:\n  train:\n    image: {decode: decode}\n"


F = "must be a finite number, got "
EXPAND = "aliases expand the spec to more than 100,000 values here (an alias bomb?); a spec is " \
         "refused past that size"
DEEP = "nested more than 64 levels deep; a spec needs far fewer (is a bracket unclosed?)"
UNCLOSED = "invalid YAML: this quoted string is never closed (no closing quote before the end " \
           "of the file)"


def control(code: str) -> str:
    return (f"invalid YAML: control character {code} is not allowed in a spec (remove it, or "
            f"write it as an escape in a double-quoted string)")


UNITS = "these look like 0-1 units; pixel units are x255: "

CASES = [
    # --- alias bombs (each refused at the alias that crosses the budget) ----------------------
    # sizes: l0 = 11 values; the aliases of l1..l3 add 110 + 1,110 + 11,110 = 12,330; each
    # alias of l4 adds 11,111: the 8th passes 100,000 (12,330 + 8 * 11,111 = 101,218)
    ("bomb-10-wide", bomb(5, 10, 8), EXPAND),
    # l0 = 101; the aliases of l1 add 10,100; each alias of l2 adds 10,101: the 9th passes
    ("bomb-100-wide", bomb(3, 100, 9), EXPAND),
    # 2 wide: level k holds 2**(k+2) - 1 values and its aliases add 2**(k+2) - 2; through
    # level 13 they add 65,502, and level 14's second alias (32,767 more each) passes 100,000
    ("bomb-2-wide-deep", bomb(15, 2, 2), EXPAND),
    ("bomb-in-op-params", "x-a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
     "x-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "x-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     "x-d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     + image("decode: decode", "cpu: [{rotate: {degrees: [*d, *d, *d, *d, *d, *d, *d, ⟨*d]}}]"),
     EXPAND),
    ("bomb-of-mappings", "x-a: &a {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1, j: 1}\n"
     "x-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "x-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     "x-d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "x-e: &e [*d, *d, *d, ⟨*d, *d, *d, *d, *d, *d, *d]\n" + top("seed: 0"), EXPAND),
    # (a mapping of 10 pairs holds 21 values: keys count; d holds 21,111, a..d add 23,430)
    # --- nesting depth --------------------------------------------------------------------------
    # the top-level mapping is level 1: the 64th bracket below it is refused
    ("deep-flow-lists", "x: " + "[" * 63 + "⟨" + "[" * 437 + "]" * 500 + "\nversion: 1\n", DEEP),
    ("deep-flow-maps", "x: " + "{a: " * 63 + "⟨" + "{a: " * 10 + "1" + "}" * 73 + "\n", DEEP),
    ("deep-block-lists", "x:\n" + "".join("  " * i + "-\n" for i in range(63)) + "  " * 63
     + "⟨- 1\n", DEEP),
    ("deep-unclosed", "version: 1\nseed: " + "[" * 63 + "⟨[[[[\n", DEEP),
    # splits, train, image, the cpu list, {rotate:, {degrees: are levels 2-7
    ("deep-in-params", image("decode: decode", "cpu: [{rotate: {degrees: " + "[" * 57 + "⟨["
                             + "]" * 58 + "}}]"), DEEP),
    # --- YAML tags ----------------------------------------------------------------------------
    ("tag-int-on-text", top("seed: ⟨!!int zero"), "cannot read 'zero' as !!int"),
    ("tag-float-on-text", cpu("{horizontal_flip: {p: ⟨!!float quarter}}"),
     "cannot read 'quarter' as !!float"),
    ("tag-timestamp-on-text", top("seed: ⟨!!timestamp x"), "cannot read 'x' as !!timestamp"),
    ("tag-on-key", "version: 1\n⟨!!int zero: 1\nsplits:\n  train:\n    image: {decode: decode}\n",
     "cannot read 'zero' as !!int"),
    ("tag-on-op-key", cpu("{horizontal_flip: {⟨!!float half: 1}}"), "cannot read 'half' as !!float"),
    ("tag-bool-on-text", cpu("{horizontal_flip: {p: ⟨!!bool maybe}}"),
     "cannot read 'maybe' as !!bool"),
    ("tag-unknown-local", top("seed: ⟨!foo 3"), "unsupported YAML tag !foo; write the value "
                                               "without a tag"),
    ("tag-python-object", top("seed: ⟨!!python/object:os.system echo"),
     "unsupported YAML tag !!python/object:os.system; write the value without a tag"),
    ("tag-python-name", cpu("{horizontal_flip: {p: ⟨!!python/name:os.system ''}}"),
     "unsupported YAML tag !!python/name:os.system..."),
    ("tag-verbatim-int", top("seed: ⟨!<tag:yaml.org,2002:int> ten"), "cannot read 'ten' as !!int"),
    ("tag-set-on-mapping", top("x-a: ⟨!!set {a: null}"),
     "unsupported YAML tag !!set on a mapping; a spec holds plain mappings and lists"),
    ("tag-omap-on-list", top("x-a: ⟨!!omap [a, b]"),
     "unsupported YAML tag !!omap on a list; a spec holds plain mappings and lists"),
    ("tag-binary-bad", top("x-a: ⟨!!binary 'a'"), "cannot read 'a' as !!binary"),
    ("tag-binary-as-number", cpu("{horizontal_flip: {p: ⟨!!binary aGk=}}"),
     "p of 'horizontal_flip': must be a number, got b'hi'"),
    ("tag-null-as-seed", top("seed: ⟨!!null x"), "seed: must be an integer, got null"),
    ("tag-str-on-number", top("seed: ⟨!!str 3"), "seed: must be an integer, got '3'"),
    ("tag-float-as-seed", top("seed: ⟨!!float 3"), "seed: must be an integer, got 3.0"),
    ("implicit-bad-binary-int", top("seed: ⟨0b_"), "cannot read '0b_' as !!int"),
    ("implicit-bad-hex-int", top("seed: ⟨0x_"), "cannot read '0x_' as !!int"),
    ("implicit-bad-date", top("seed: ⟨2001-02-30"), "cannot read '2001-02-30' as !!timestamp"),
    ("implicit-bad-month", cpu("{horizontal_flip: {p: ⟨2001-13-45}}"),
     "cannot read '2001-13-45' as !!timestamp"),
    ("tag-int-huge-text", top("seed: ⟨!!int 1e5"), "cannot read '1e5' as !!int"),
    # --- quotes and control characters -----------------------------------------------------------
    ("unclosed-double-quote", image("decode: decode", "cpu: [⟨\"horizontal_flip]", "",
                                    "# more text"), UNCLOSED),
    ("unclosed-single-quote", top("seed: ⟨'0\n\n\nmore: lines"), UNCLOSED),
    ("unclosed-quote-in-key", "version: 1\n⟨\"splits:\n  train: {}\n", UNCLOSED),
    ("unclosed-quote-last-line", top("seed: 0") + "x-note: ⟨\"never closed\n", UNCLOSED),
    ("nul-in-value", top("seed: 1⟨\x002"), control("U+0000")),
    ("nul-in-comment", image("decode: decode  # a comment⟨\x00"), control("U+0000")),
    ("bell-in-key", "version: 1\nspl⟨\x07its: {}\n", control("U+0007")),
    ("escape-char", cpu("horizontal_⟨\x1bflip"), control("U+001B")),
    ("del-char", top("seed: ⟨\x7f"), control("U+007F")),
    ("form-feed", top("x-a: b⟨\x0c"), control("U+000C")),
    ("control-after-crlf", "version: 1\r\nseed: ⟨\x01\r\n", control("U+0001")),
    ("control-in-flow-list", cpu("horizontal_flip, ⟨\x03vertical_flip"), control("U+0003")),
    # --- other YAML structure ---------------------------------------------------------------------
    ("undefined-alias", top("seed: ⟨*nope"), "invalid YAML: found undefined alias 'nope'..."),
    ("recursive-mapping-alias", "version: 1\nx-a: ⟨&a {b: *a}\nsplits: {}\n",
     "an alias refers to a node that contains it (recursive anchor)"),
    ("merge-of-list-of-scalars", "x-a: &a [⟨1]\nversion: 1\nsplits:\n  train:\n    <<: *a\n",
     "'<<' merges mappings only (an alias of a mapping, or a list of them)"),
    # --- floats must be finite -----------------------------------------------------------------
    ("p-nan", cpu("{horizontal_flip: {p: ⟨.nan}}"), "p of 'horizontal_flip': " + F + ".nan"),
    ("p-inf", cpu("{vertical_flip: {p: ⟨.inf}}"), "p of 'vertical_flip': " + F + ".inf"),
    ("p-minus-inf", cpu("{grayscale: {p: ⟨-.inf}}"), "p of 'grayscale': " + F + "-.inf"),
    ("p-overflow", cpu("{invert: {p: ⟨1.0e+999}}"), "p of 'invert': " + F + ".inf"),
    ("brightness-inf", cpu("{brightness: {strength: ⟨.inf}}"),
     "strength of 'brightness': " + F + ".inf"),
    ("contrast-nan", cpu("{contrast: {strength: ⟨.NaN}}"), "strength of 'contrast': " + F + ".nan"),
    ("saturation-nan", cpu("{saturation: {strength: ⟨.NAN}}"),
     "strength of 'saturation': " + F + ".nan"),
    ("hue-nan", cpu("{hue: {strength: ⟨.nan}}"), "strength of 'hue': " + F + ".nan"),
    ("sharpness-inf", cpu("{sharpness: {factor: ⟨.Inf}}"), "factor of 'sharpness': " + F + ".inf"),
    ("solarize-nan", cpu("{solarize: {threshold: ⟨.nan}}"), "threshold of 'solarize': " + F + ".nan"),
    ("rotate-nan", cpu("{rotate: {degrees: ⟨.nan}}"), "degrees of 'rotate': " + F + ".nan"),
    ("rotate-range-inf", cpu("{rotate: {degrees: [0, ⟨.inf]}}"), "degrees of 'rotate': " + F + ".inf"),
    ("shear-nan", cpu("{shear: {degrees: [⟨.nan, 3]}}"), "degrees of 'shear': " + F + ".nan"),
    ("translate-nan", cpu("{translate: {max_fraction: ⟨.nan}}"),
     "max_fraction of 'translate': " + F + ".nan"),
    ("affine-translate-nan", cpu("{random_affine: {degrees: 0, translate: [⟨.nan, 0]}}"),
     "translate of 'random_affine': " + F + ".nan"),
    ("affine-scale-inf", cpu("{random_affine: {degrees: 0, scale: [1, ⟨.inf]}}"),
     "scale of 'random_affine': " + F + ".inf"),
    ("blur-sigma-nan", cpu("{gaussian_blur: {kernel_size: 3, sigma: [⟨.nan, 1]}}"),
     "sigma of 'gaussian_blur': " + F + ".nan"),
    ("jitter-nan", cpu("{color_jitter: {brightness: ⟨.nan}}"),
     "brightness of 'color_jitter': " + F + ".nan"),
    ("rrc-scale-nan", decode("{random_resized_crop: {size: 32, scale: [⟨.nan, 1]}}"),
     "scale of 'random_resized_crop': " + F + ".nan"),
    ("rrc-ratio-inf", decode("{random_resized_crop: {size: 32, ratio: [1, ⟨.inf]}}"),
     "ratio of 'random_resized_crop': " + F + ".inf"),
    ("center-crop-ratio-nan", decode("{center_crop: {size: 32, ratio: ⟨.nan}}"),
     "ratio of 'center_crop': " + F + ".nan"),
    ("erasing-p-nan", cpu("{random_erasing: {p: ⟨.nan}}"), "p of 'random_erasing': " + F + ".nan"),
    ("mean-nan", device("{normalize: {mean: [1, ⟨.nan, 1]}}"), "mean of 'normalize': " + F + ".nan"),
    ("std-inf", device("{normalize: {std: [⟨.inf, 1, 1]}}"), "std of 'normalize': " + F + ".inf"),
    ("flip-p-nan", device("{flip: {p: ⟨.nan}}"), "p of 'flip': " + F + ".nan"),
    ("mixup-alpha-inf", batch("{mixup: {alpha: ⟨.inf}}"), "alpha of 'mixup': " + F + ".inf"),
    ("cutmix-smoothing-nan", batch("{cutmix: {label_smoothing: ⟨.nan}}"),
     "label_smoothing of 'cutmix': " + F + ".nan"),
    ("mixup-cutmix-switch-nan", batch("{mixup_cutmix: {switch_prob: ⟨.nan}}"),
     "switch_prob of 'mixup_cutmix': " + F + ".nan"),
    # --- ranges ordered and inside the op's domain ----------------------------------------------
    ("rrc-scale-negative", decode("{random_resized_crop: {size: 32, scale: ⟨[-0.5, 1.0]}}"),
     "scale of 'random_resized_crop': must be in (0.0, 1.0], got -0.5"),
    ("rrc-scale-zero", decode("{random_resized_crop: {size: 32, scale: ⟨[0, 0.5]}}"),
     "scale of 'random_resized_crop': must be in (0.0, 1.0], got 0.0"),
    ("rrc-scale-above-one", decode("{random_resized_crop: {size: 32, scale: ⟨[0.5, 2]}}"),
     "scale of 'random_resized_crop': must be in (0.0, 1.0], got 2.0"),
    ("rrc-ratio-zero", decode("{random_resized_crop: {size: 32, ratio: ⟨[0, 0]}}"),
     "ratio of 'random_resized_crop': must be > 0.0, got 0.0"),
    ("rrc-ratio-negative", decode("{random_resized_crop: {size: 32, ratio: ⟨[-1, 2]}}"),
     "ratio of 'random_resized_crop': must be > 0.0, got -1.0"),
    ("rrc-ratio-reversed", decode("{random_resized_crop: {size: 32, ratio: ⟨[2, 1]}}"),
     "ratio of 'random_resized_crop': must be [min, max] with min <= max, got [2.0, 1.0]"),
    ("erasing-scale-reversed", cpu("{random_erasing: {scale: ⟨[0.5, 0.1]}}"),
     "scale of 'random_erasing': must be [min, max] with min <= max, got [0.5, 0.1]"),
    ("erasing-ratio-zero", cpu("{random_erasing: {ratio: ⟨[0, 1]}}"),
     "ratio of 'random_erasing': must be > 0.0, got 0.0"),
    ("erasing-scale-negative", cpu("{random_erasing: {scale: ⟨[-0.1, 0.3]}}"),
     "scale of 'random_erasing': must be in (0.0, 1.0], got -0.1"),
    ("device-erasing-ratio-zero", device("{device_random_erasing: {ratio: ⟨[0, 0]}}"),
     "ratio of 'device_random_erasing': must be > 0.0, got 0.0"),
    ("affine-scale-zero", cpu("{random_affine: {degrees: 0, scale: ⟨[0, 1]}}"),
     "scale of 'random_affine': must be > 0.0, got 0.0"),
    ("blur-sigma-reversed", cpu("{gaussian_blur: {kernel_size: 3, sigma: ⟨[2, 1]}}"),
     "sigma of 'gaussian_blur': must be [min, max] with min <= max, got [2.0, 1.0]"),
    ("rotate-beyond-180", cpu("{rotate: {degrees: ⟨[-200, 0]}}"),
     "degrees of 'rotate': must be in [-180.0, 180.0], got -200.0"),
    ("affine-translate-above-one", cpu("{random_affine: {degrees: 0, translate: ⟨[1.5, 0]}}"),
     "translate of 'random_affine': must be in [0.0, 1.0], got 1.5"),
    # --- integers bounded -----------------------------------------------------------------------
    ("seed-2-64", top("seed: ⟨18446744073709551616"),
     "seed: must be in [0, 18446744073709551615], got 18446744073709551616"),
    ("seed-huge", top("seed: ⟨" + "9" * 400),
     "seed: must be in [0, 18446744073709551615], got an integer of 400 digits"),
    ("seed-float-exponent", top("seed: ⟨1.0e+20"), "seed: must be an integer, got 1e+20"),
    ("batch-size-huge", loader("batch_size: ⟨" + "1" + "0" * 30),
     "batch_size of loader: must be in [1, 65536], got an integer of 31 digits"),
    ("batch-size-above-limit", loader("batch_size: ⟨65537"),
     "batch_size of loader: must be in [1, 65536], got 65537"),
    ("workers-above-limit", loader("num_workers: ⟨5000"),
     "num_workers of loader: must be in [-1, 1024], got 5000"),
    ("batches-ahead-above-limit", loader("batches_ahead: ⟨1000"),
     "batches_ahead of loader: must be in [1, 64], got 1000"),
    ("num-classes-above-limit", image("decode: decode") + "    label: {num_classes: ⟨10000000}\n",
     "num_classes of label: must be in [1, 1000000], got 10000000"),
    ("num-classes-2-70", image("decode: decode") + "    label: {num_classes: ⟨1180591620717411303424}\n",
     "num_classes of label: must be in [1, 1000000], got an integer of 22 digits"),
    ("mixup-classes-huge", batch("{mixup: {num_classes: ⟨99999999999}}"),
     "num_classes of 'mixup': must be in [1, 1000000], got 99999999999"),
    ("size-above-limit", decode("{random_resized_crop: {size: ⟨100000}}"),
     "size of 'random_resized_crop': must be in [1, 16384], got 100000"),
    ("size-pair-huge", decode("{center_crop: {size: ⟨[16, 100000000000000000000]}}"),
     "size of 'center_crop': must be in [1, 16384], got an integer of 21 digits"),
    ("cutout-size-above-limit", cpu("{cutout: {size: ⟨20000}}"),
     "size of 'cutout': must be in [1, 16384], got 20000"),
    ("erasing-count-above-limit", cpu("{random_erasing: {count: ⟨2000}}"),
     "count of 'random_erasing': must be in [1, 1024], got 2000"),
    ("erasing-count-1e20", cpu("{random_erasing: {count: ⟨100000000000000000000}}"),
     "count of 'random_erasing': must be in [1, 1024], got an integer of 21 digits"),
    ("erasing-count-float", cpu("{random_erasing: {count: ⟨1.0e+20}}"),
     "count of 'random_erasing': must be an integer, got 1e+20"),
    ("rand-augment-ops-above-limit", cpu("{rand_augment: {num_ops: ⟨5000}}"),
     "num_ops of 'rand_augment': must be in [0, 1024], got 5000"),
    ("trivial-bins-above-limit", cpu("{trivial_augment_wide: {num_magnitude_bins: ⟨100000}}"),
     "num_magnitude_bins of 'trivial_augment_wide': must be in [2, 1024], got 100000"),
    ("pad-crop-padding-above-limit", cpu("{pad_crop: {padding: ⟨1000000}}"),
     "padding of 'pad_crop': must be in [0, 16384], got 1000000"),
    ("blur-kernel-above-limit", cpu("{gaussian_blur: {kernel_size: ⟨9223372036854775808}}"),
     "kernel_size of 'gaussian_blur': must be in [1, 1024], got 9223372036854775808"),
    ("policy-magnitude-above-limit", cpu("{rand_augment: {magnitude: ⟨2000}}"),
     "magnitude of 'rand_augment': must be in [0, 1024], got 2000"),
    ("temporal-steps-above-limit", device("{temporal_repeat: {steps: ⟨5000}}"),
     "steps of 'temporal_repeat': must be in [1, 1024], got 5000"),
    # --- mean/std in pixel units ------------------------------------------------------------------
    ("mean-in-0-1-units", device("{normalize: {mean: ⟨[0.485, 0.456, 0.406]}}"),
     "mean of 'normalize': [0.485, 0.456, 0.406]: " + UNITS + "[123.675, 116.28, 103.53] (or a "
     "name such as imagenet)"),
    ("std-in-0-1-units", device("{normalize: {std: ⟨[0.229, 0.224, 0.225]}}"),
     "std of 'normalize': [0.229, 0.224, 0.225]: " + UNITS + "[58.395, 57.12, 57.375] (or a name "
     "such as imagenet)"),
    ("mean-of-ones", device("{normalize: {mean: ⟨[1, 1, 1]}}"),
     "mean of 'normalize': [1, 1, 1]: " + UNITS + "[255, 255, 255]..."),
    ("cpu-mean-halves", cpu("{cpu_normalize: {mean: ⟨[0.5, 0.5, 0.5]}}"),
     "mean of 'cpu_normalize': [0.5, 0.5, 0.5]: " + UNITS + "[127.5, 127.5, 127.5]..."),
    ("fused-std-halves", device("{normalize_flip: {std: ⟨[0.5, 0.5, 0.5]}}"),
     "std of 'normalize_flip': [0.5, 0.5, 0.5]: " + UNITS + "[127.5, 127.5, 127.5]..."),
    ("std-above-255", device("{normalize: {std: ⟨[300, 1, 1]}}"),
     "std of 'normalize': must be in (0.0, 255.0], got 300.0"),
    # --- plugins cannot end the process --------------------------------------------------------------
    ("import-sys-exit-0", top("imports: [⟨hostile_exit0]"),
     "cannot import 'hostile_exit0': the module called sys.exit(0) while importing"),
    ("import-sys-exit-3", top("imports: [hostile_ok, ⟨hostile_exit3]"),
     "cannot import 'hostile_exit3': the module called sys.exit(3) while importing"),
    ("import-sys-exit-text", top("imports:\n  - ⟨hostile_exit_text"),
     "cannot import 'hostile_exit_text': the module called sys.exit('bye') while importing"),
    ("import-raise-systemexit", top("imports: ⟨hostile_systemexit"),
     "cannot import 'hostile_systemexit': the module called sys.exit(None) while importing"),
    ("import-raises", top("imports: [⟨hostile_raises]"),
     "cannot import 'hostile_raises': RuntimeError: plugin failed on purpose"),
    ("import-syntax-error", top("imports: [⟨hostile_syntax]"),
     "cannot import 'hostile_syntax': SyntaxError: ..."),
    ("dotted-op-module-exits", cpu("⟨'hostile_exit_op:Thing'"),
     "cannot import 'hostile_exit_op' for op 'hostile_exit_op:Thing': the module called "
     "sys.exit(0) while importing"),
    # --- raw FFCV ops that do not fit their place ------------------------------------------------------
    ("raw-to-tensor-last-cpu-op", image("decode: decode", "cpu: [horizontal_flip, "
                                        "⟨'ffcv.transforms:ToTensor']"),
     "'ffcv.transforms:ToTensor' is part of the CPU-to-device boundary (ToTensor -> ToDevice -> "
     "ToTorchImage), which pureffcv inserts itself between image.cpu and image.device; remove it"),
    ("raw-to-torch-image-in-cpu", cpu("⟨'ffcv.transforms:ToTorchImage'"),
     "'ffcv.transforms:ToTorchImage' is part of the CPU-to-device boundary..."),
    ("raw-to-device-in-cpu", cpu("{⟨'ffcv.transforms:ToDevice': {device: cpu}}"),
     "'ffcv.transforms:ToDevice' is part of the CPU-to-device boundary..."),
    ("raw-non-jit-in-cpu", cpu("⟨'hostile_raw:LeavesJit'"),
     "'hostile_raw:LeavesJit' is not a JIT (Numba) op: its declare_state_and_memory leaves JIT "
     "mode, so FFCV's ToTensor after it would get a torch tensor..."),
    ("raw-torch-dtype-in-cpu", cpu("⟨'hostile_raw:TorchDtype'"),
     "'hostile_raw:TorchDtype': cannot tell what this op produces (AssertionError: Can't "
     "allocate a torch tensor in JIT mode); give it an output_type method"),
    ("raw-jit-op-in-device", device("⟨'hostile_raw:AsksJit'"),
     "'hostile_raw:AsksJit': cannot tell what this op produces (AssertionError: Can't allocate a "
     "torch tensor in JIT mode); give it an output_type method"),
    ("raw-numpy-state-in-device", device("⟨'hostile_raw:NumpyOnDevice'"),
     "'hostile_raw:NumpyOnDevice' is a JIT (Numba) op after the non-JIT step 'to_tensor'; FFCV's "
     "Loader would hang forever building this pipeline (ffcv #113, #350): put every JIT op before "
     "it"),
    ("raw-device-op-to-other-device", device("⟨'hostile_raw:MovesToMeta'"),
     "'hostile_raw:MovesToMeta' moves images to meta but the pipeline runs on cpu..."),
    ("raw-ffcv-cutout-on-device", device("{⟨'ffcv.transforms:Cutout': {crop_size: 4}}"),
     "'ffcv.transforms:Cutout' is a CPU (Numba) op and cannot be in image.device.ops (a Numba op "
     "after the transfer to the device makes FFCV's Loader hang); put it under image.cpu"),
]

#: module name -> source, written next to the spec files
MODULES = {
    "hostile_ok": "",
    "hostile_exit0": "import sys\nsys.exit(0)\n",
    "hostile_exit3": "import sys\nsys.exit(3)\n",
    "hostile_exit_text": "import sys\nsys.exit('bye')\n",
    "hostile_systemexit": "raise SystemExit\n",
    "hostile_raises": "raise RuntimeError('plugin failed on purpose')\n",
    "hostile_syntax": "def broken(:\n",
    "hostile_exit_op": "import sys\nsys.exit(0)\n",
    "hostile_raw": '''\
"""Raw FFCV Operations whose declared State does not fit where the corpus puts them."""
from dataclasses import replace

import numpy as np
import torch
from ffcv.pipeline.operation import Operation


class _Raw(Operation):
    def generate_code(self):
        def identity(images, _):
            return images
        return identity

    def declare_state_and_memory(self, previous_state):
        return self.state(previous_state), None


class LeavesJit(_Raw):
    def state(self, s):
        return replace(s, jit_mode=False)


class TorchDtype(_Raw):
    def state(self, s):
        return replace(s, dtype=torch.float32)


class AsksJit(_Raw):
    stage = "device"

    def state(self, s):
        return replace(s, jit_mode=True)


class NumpyOnDevice(_Raw):
    stage = "device"

    def state(self, s):
        return replace(s, jit_mode=True, dtype=np.dtype("float32"))


class MovesToMeta(_Raw):
    stage = "device"

    def state(self, s):
        return replace(s, device=torch.device("meta"))

''',
}

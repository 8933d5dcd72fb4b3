"""The op reference of docs/spec.md, generated from the registry and the same signatures the
validator uses, so the documentation cannot drift from what ``pureffcv check`` accepts.

``python -m compiler.docs`` rewrites the marked section of docs/spec.md;
``python -m compiler.docs --check`` exits 1 when it is out of date.
"""
import argparse
import inspect
import sys
from pathlib import Path

from operations import available_ops
from operations.registry import backends, deprecated_names

from .plan import SECTION_OF_STAGE
from .validate import describe, op_params, show

BEGIN = "<!-- BEGIN GENERATED OP REFERENCE (python -m compiler.docs) -->"
END = "<!-- END GENERATED OP REFERENCE -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "spec.md"
STAGE_ORDER = ("decoder", "cpu", "device", "batch")
STAGE_TITLES = {"decoder": "Decoders (`image.decode`)", "cpu": "CPU ops (`image.cpu`)",
                "device": "Device ops (`image.device.ops`)", "batch": "Batch ops (`batch`)"}


def op_reference() -> str:
    """Markdown: every built-in op by stage, with its parameters and its docstring (ops that
    tests or ``imports:`` registered in this process are not pureffcv's to document)."""
    ops = {name: backends(name) for name in available_ops()}
    ops = {name: found for name, found in ops.items()
           if all(op.__module__.startswith("operations.") for op in found.values())}
    lines = []
    for stage in STAGE_ORDER:
        names = [n for n, found in ops.items() if stage in found]
        if not names:
            continue
        lines += [f"### {STAGE_TITLES[stage]}", ""]
        for name in names:
            lines += _op_section(name, ops[name][stage], [s for s in ops[name] if s != stage])
    aliases = sorted(deprecated_names().items())
    if aliases:
        lines += ["### Deprecated names", "",
                  "Still accepted; `pureffcv check` warns once per file with the new spelling.", "",
                  "| old name | write instead |", "|---|---|"]
        lines += [f"| `{old}` | `{alias.name}` ({SECTION_OF_STAGE[alias.stage]}) |" for old, alias in aliases]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _op_section(name: str, op: type, other_stages=()) -> list:
    lines = [f"#### `{name}`", ""]
    if other_stages:
        lines += ["Also in " + ", ".join(f"`{SECTION_OF_STAGE[s]}`" for s in other_stages) +
                  " (the same name; the section picks the backend).", ""]
    params = op_params(op)
    if params:
        lines += ["| parameter | type | default |", "|---|---|---|"]
        for p in params.values():
            default = "required" if p.required else f"`{show(p.default)}`"
            lines.append(f"| `{p.name}` | {describe(p.hint)} | {default} |")
        lines.append("")
    doc = inspect.cleandoc(op.__doc__ or "")
    if doc:
        lines += [doc, ""]
    return lines


def render(text: str) -> str:
    """``text`` with the generated section replaced by the current reference."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{op_reference()}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/spec.md is stale")
    args = parser.parse_args(argv)
    current = DOC.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print(f"{DOC} is out of date: run python -m compiler.docs", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())

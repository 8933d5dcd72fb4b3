"""The specs in specs/ compile for each split; docs/spec.md documents every key and its op
reference is the one the registry generates."""
import dataclasses
from pathlib import Path

import pytest

from compiler import SpecError, compile_spec, load_spec
from compiler.docs import DOC, render
from compiler.spec import DeviceOptions, LabelSpec, LoaderOptions

SPECS = sorted((Path(__file__).resolve().parents[2] / "specs").glob("*.yaml"))


def test_the_shipped_specs_are_there():
    assert {p.name for p in SPECS} >= {"imagenet_rn50.yaml", "imagenet_rn18.yaml", "cifar10.yaml",
                                       "hybrid_policy.yaml", "demo.yaml"}


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_each_shipped_spec_compiles_for_each_split(path):
    spec = load_spec(path)
    assert len(spec.splits) >= 2
    for split in spec.splits:
        compiled = compile_spec(spec, split=split, device="cpu")
        final = compiled.plan.steps[-1].output
        assert final.layout == "channels_last" and final.dtype != "uint8", (split, final)


def test_imagenet_recipes_follow_ffcv_imagenet():
    for name, batch, order in (("imagenet_rn50", 512, "random"),
                               ("imagenet_rn18", 1024, "quasi_random")):
        spec = load_spec(next(p for p in SPECS if p.stem == name))
        train, val = spec.splits["train"], spec.splits["val"]
        assert (train.image.decode.name, train.image.decode.params["size"]) == ("random_resized_crop", 160)
        assert val.image.decode.params == {"size": 256, "ratio": 0.875}
        assert (train.loader.batch_size, train.loader.order, train.image.dtype) == (batch, order, "float16")
        assert (val.loader.order, val.loader.drop_last) == ("sequential", False)


def test_docs_op_reference_is_up_to_date():
    """Regenerate with: python -m compiler.docs"""
    text = DOC.read_text()
    assert render(text) == text


def test_docs_document_every_key():
    text = DOC.read_text()
    keys = {"version", "seed", "imports", "splits", "image", "label", "batch", "loader",
            "decode", "cpu", "device", "ops"}
    for section in (LoaderOptions, DeviceOptions, LabelSpec):
        keys |= {f.name for f in dataclasses.fields(section)}
    missing = [k for k in sorted(keys) if f"| `{k}` |" not in text and f"`{k}`" not in text]
    assert not missing
    for key in {f.name for f in dataclasses.fields(LoaderOptions)}:
        assert f"| `{key}` |" in text, key


def test_docs_error_example_is_what_check_prints(tmp_path):
    """The ``bad.yaml`` of docs/spec.md's Errors section gives exactly the lines shown there."""
    section = DOC.read_text().split("## Errors", 1)[1]
    spec_text = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = section.split("$ pureffcv check bad.yaml\n", 1)[1].split("```", 1)[0].splitlines()
    path = tmp_path / "bad.yaml"
    path.write_text(spec_text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).splitlines() == [line.replace("bad.yaml", str(path), 1) for line in shown]
    assert len(shown) == 3

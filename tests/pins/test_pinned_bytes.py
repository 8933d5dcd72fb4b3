"""The redesign keeps the bytes: every built-in op, every shipped spec (both epochs, batch ops
included) and the fused runs give what they gave before it (``tests/pins/pinned.py``)."""
import json

import pytest

from tests.pins.pinned import PINS, current, photo_beton


@pytest.fixture(scope="module")
def digests(tmp_path_factory):
    return current(photo_beton(tmp_path_factory.mktemp("pins") / "photos.beton"))


@pytest.mark.parametrize("group", ["ops", "specs", "fused"])
def test_bytes_match_the_pins_taken_before_the_redesign(digests, group):
    pinned = json.loads(PINS.read_text())[group]
    assert digests[group].keys() == pinned.keys()
    changed = sorted(k for k in pinned if digests[group][k] != pinned[k])
    assert not changed, f"bytes changed for: {', '.join(changed)}"


def test_fused_runs_equal_the_ops_one_by_one_where_the_pass_is_exact(digests):
    assert digests["fused"]["lut:True"] == digests["fused"]["lut:False"]
    assert digests["fused"]["affine:True"] == digests["fused"]["affine:False"]

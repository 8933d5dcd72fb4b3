"""operations.numba_private: every private Numba API the C entries and the cache use is there,
and the installed Numba is the one they were checked against (setup.cfg pins that range).
Without these the entries would silently compile in every process (or not at all)."""
import configparser
from pathlib import Path

from operations import numba_private

ROOT = Path(__file__).resolve().parents[2]


def test_every_private_api_is_present():
    assert numba_private.missing() == []


def test_the_installed_numba_is_in_the_checked_range():
    assert numba_private.outside_checked_range() == []


def test_setup_cfg_pins_the_checked_range():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requires = config["options"]["install_requires"].split()
    for name, (first, excluded) in numba_private.CHECKED.items():
        assert f"{name}>={first},<{excluded}" in requires


def test_a_version_outside_the_range_is_reported(monkeypatch):
    monkeypatch.setitem(numba_private.CHECKED, "numba", ("0.1", "0.2"))
    [line] = numba_private.outside_checked_range()
    assert line.startswith("numba ") and line.endswith("(checked: >=0.1,<0.2)")


def test_doctor_notes_a_numba_outside_the_range_and_fails_on_a_missing_api(monkeypatch):
    from pipelines.doctor import check_numba_internals

    assert check_numba_internals().status == "OK"
    monkeypatch.setitem(numba_private.CHECKED, "numba", ("0.1", "0.2"))
    found = check_numba_internals()
    assert (found.status, found.required) == ("NOTE", False)
    assert "outside the checked range: numba " in found.detail and "<0.2" in found.detail
    assert found.fix == "pip install 'numba>=0.1,<0.2' 'llvmlite>=0.50,<0.51'"
    monkeypatch.setattr(numba_private, "missing", lambda: ["numba.core.caching.X"])
    found = check_numba_internals()
    assert (found.status, found.detail) == ("FAIL", "missing: numba.core.caching.X")

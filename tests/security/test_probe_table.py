"""`agentd probe --security --json` (the C attack table run through the library API) must
agree with this suite's expectation table for every backend available here."""
import json
import os

import pytest

from .secsuite import BACKENDS, EXPECT, PROBE, agentd, available_backends


@pytest.fixture(scope="module")
def table():
    r = agentd("probe", "--security", "--json", env={"AGENTD_SBXPROBE": PROBE}, timeout=120)
    assert r.rc == 0, r
    return json.loads(r.stdout)


def test_every_available_backend_has_a_column(table):
    cols = set(table["security"])
    for b in BACKENDS:
        if b in available_backends():
            assert b in cols, f"{b} is available but has no column: {table.get('unavailable')}"
    # issue 15: vm-host. A microvm without file sharing says why it has no column
    if "microvm" not in available_backends() and "microvm" in table.get("unavailable", {}):
        assert "allowed_paths_ro" in table["unavailable"]["microvm"] or \
            "unavailable" in table["unavailable"]["microvm"] or \
            "missing" in table["unavailable"]["microvm"], table["unavailable"]["microvm"]
    assert os.path.samefile(table["sbxprobe"], PROBE)


def test_attack_names_are_in_the_expectation_table(table):
    for b, col in table["security"].items():
        unknown = set(col) - set(EXPECT)
        assert not unknown, f"attacks of the C table missing from secsuite.EXPECT: {unknown}"


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_probe_agrees_with_expectations(table, backend_name):
    if backend_name not in table["security"]:
        pytest.skip(f"{backend_name} not available here: "
                    f"{table.get('unavailable', {}).get(backend_name, 'not registered')}")
    col = table["security"][backend_name]
    details = table["details"][backend_name]
    wrong = []
    for attack, cell in col.items():
        exp = EXPECT[attack][backend_name]
        ok = (cell == "blocked" if exp.kind == "blocked" else
              cell == "allowed" if exp.kind == "allowed" else
              cell in ("blocked", "allowed"))
        if not ok:
            wrong.append(f"{attack}: probe says {cell!r} ({details[attack]}), table says "
                         f"{exp.kind}" + (f" ({exp.reason})" if exp.reason else ""))
    assert not wrong, f"{backend_name}:\n  " + "\n  ".join(wrong)


def test_missing_sbxprobe_is_reported_not_fatal():
    r = agentd("probe", "--security", "--json",
               env={"AGENTD_SBXPROBE": "/nonexistent/sbxprobe"})
    assert r.rc == 0, r
    out = json.loads(r.stdout)
    assert out["security"] == {} and "sbxprobe not found" in out["skipped"]
    assert b"sbxprobe not found" in r.stderr


def test_sbxprobe_found_next_to_the_binary_in_a_build_tree():
    r = agentd("probe", "--security", "--json", "--backend", "host-direct")
    assert r.rc == 0, r
    assert os.path.samefile(json.loads(r.stdout)["sbxprobe"], PROBE)

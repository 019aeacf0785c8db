"""Every number in RESULTS.md's headline comes from a JSON that a committed script wrote, with
its provenance (benchmarks/_provenance.py): these tests hold the table printer to that."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("_provenance"), importlib.import_module("results_table")
    finally:
        sys.path.remove(str(BENCH))


def _block(**changes):
    block = {"script": "benchmarks/x.py", "argv": [], "commit": "a" * 40, "clean": True, "modified": [],
             "cpu_model": "Some CPU", "cpu_flags": ["sse2", "avx2"], "cores": 2,
             "other_load": {"other_cores": 0.1, "loadavg_start": [0, 0, 0]}}
    block.update(changes)
    return block


def test_a_complete_clean_block_passes_and_each_missing_part_is_named(bench):
    prov, _ = bench
    assert prov.check("x.json", {"provenance": _block()})["commit"] == "a" * 40
    with pytest.raises(ValueError, match="x.json: no usable provenance"):
        prov.check("x.json", {"results": 1})
    for key in ("commit", "cpu_model", "cpu_flags", "clean"):
        with pytest.raises(ValueError, match=key):
            prov.check("x.json", {"provenance": _block(**{key: None})})
    with pytest.raises(ValueError, match="other_load.other_cores"):
        prov.check("x.json", {"provenance": _block(other_load={"other_cores": None})})


def test_a_modified_tree_is_refused_unless_only_prose_or_results_changed(bench):
    prov, _ = bench
    with pytest.raises(ValueError, match="modified tree .*speechattn/nn/attention.py"):
        prov.check("x.json", {"provenance": _block(clean=False, modified=["speechattn/nn/attention.py"])})
    commit, clean, modified = prov.git_state()
    assert len(commit) == 40 or commit == "unknown"
    assert clean == (not [p for p in modified if not p.startswith(prov.DOC_PATHS)])


def test_provenance_records_the_cpu_and_the_other_load(bench):
    prov, _ = bench
    block = prov.provenance()
    assert prov.missing(block) == [] or block["commit"] == "unknown"
    assert block["cores"] >= 1 and isinstance(block["cpu_flags"], list)
    assert 0.0 <= block["other_load"]["other_cores"] <= 4 * block["cores"]


def test_the_table_refuses_a_json_without_provenance(bench, tmp_path, monkeypatch):
    prov, table = bench
    monkeypatch.setattr(table, "RESULTS", tmp_path)
    (tmp_path / "bare.json").write_text(json.dumps({"results": [1, 2]}))
    with pytest.raises(table.MissingProvenance, match="bare.json"):
        table.load("bare.json")
    with pytest.raises(table.MissingProvenance, match="absent.json: no such file"):
        table.load("absent.json")
    (tmp_path / "good.json").write_text(json.dumps({"results": [1], "provenance": _block()}))
    assert table.load("good.json")["results"] == [1]
    monkeypatch.setattr(table, "SECTIONS", [lambda: [["row"] * 8], lambda: table.load("bare.json") and []])
    with pytest.raises(SystemExit, match="refused:\n  bare.json"):
        table.print_table()


def test_a_training_json_takes_its_provenance_from_its_time_file(bench, tmp_path, monkeypatch):
    """train_time.py's JSON under `results_table.py --time NAME`: commit, clean flag and load
    from NAME.time.json, SIMD flags from the JSON's environment; a +dirty commit is refused."""
    prov, table = bench
    monkeypatch.setattr(table, "RESULTS", tmp_path)
    run = {"environment": {"cpu": "X", "cpu_flags": ["avx2"]}, "command": ["make", "train"], "result": {}}
    (tmp_path / "model_a.json").write_text(json.dumps(run))
    (tmp_path / "model_a.time.json").write_text(json.dumps({"commit": "abc1234", "other_cores": 0.5, "cpu": "X"}))
    assert table.load("model_a.json")["command"] == ["make", "train"]
    (tmp_path / "model_a.time.json").write_text(json.dumps({"commit": "abc1234+dirty", "other_cores": 0.5,
                                                            "cpu": "X"}))
    with pytest.raises(table.MissingProvenance, match="modified tree"):
        table.load("model_a.json")


def test_every_results_json_has_provenance(bench):
    """What issue 33 asks: no JSON under benchmarks/results/ without a script-written provenance
    (the .time.json files are the --time records that go with another JSON)."""
    _, table = bench
    names = sorted(p.name for p in (BENCH / "results").glob("*.json") if not p.name.endswith(".time.json"))
    assert names
    refused = []
    for name in names:
        try:
            table.load(name)
        except table.MissingProvenance as exc:
            refused.append(str(exc))
    assert not refused, "\n".join(refused)

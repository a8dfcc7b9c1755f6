"""The benchmark scripts' own logic (not their runs): `benchmarks/seeds.py`."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(root: Path, name: str, dev: float, test: float) -> None:
    data = {"best_dev_f1": dev, "test": {"ents_f": test / 100}, "steps": 3000}
    (root / name).write_text(json.dumps(data))


def test_seeds_table_means_margins_and_missing_seeds(tmp_path, capsys):
    seeds = _load("seeds")
    _write(tmp_path, "conll03-ours-avg.json", 91.0, 85.0)
    _write(tmp_path, "conll03-ours-avg-seed1.json", 92.0, 86.0)
    _write(tmp_path, "conll03-ours-avg-seed2.json", 93.0, 87.5)
    _write(tmp_path, "conll03-ner-avg.json", 90.0, 84.0)
    _write(tmp_path, "conll03-ner-avg-seed2.json", 89.0, 83.0)
    output = tmp_path / "out.json"
    out = seeds.main(
        [
            "--dataset", "conll03",
            "--run", "ours=ours:-avg",
            "--run", "ner=ner:-avg",
            "--reference", "ner",
            "--results", str(tmp_path),
            "--output", str(output),
        ]
    )  # fmt: skip
    ours, ner = out["runs"]["ours"], out["runs"]["ner"]
    assert [s["seed"] for s in ours["seeds"]] == [0, 1, 2]
    assert ours["mean_dev_f1"] == 92.0 and ours["mean_test_f1"] == 86.17
    assert ours["stdev_dev_f1"] == 1.0
    # seed 1 of the reference is missing: its means are over seeds 0 and 2, and it says so
    assert ner["missing"] == [1] and ner["mean_dev_f1"] == 89.5 and ner["mean_test_f1"] == 83.5
    assert ours["margin_dev"] == 2.5 and ours["margin_test"] == 2.67
    assert "missing seeds [1]" in capsys.readouterr().out
    assert json.loads(output.read_text())["runs"]["ours"]["seeds"][2]["test_f1"] == 87.5


def test_seeds_bad_run_and_reference_are_named(tmp_path):
    seeds = _load("seeds")
    with pytest.raises(SystemExit, match="NAME=SYSTEM:TAG"):
        seeds.main(["--dataset", "conll03", "--run", "ours", "--results", str(tmp_path)])
    with pytest.raises(SystemExit, match="not one of the runs"):
        seeds.main(
            [
                "--dataset",
                "conll03",
                "--run",
                "a=b:",
                "--reference",
                "c",
                "--results",
                str(tmp_path),
            ]
        )

"""The benchmark scripts' own logic (not their runs): `benchmarks/seeds.py`,
`benchmarks/learning_speed.py`, the learning-rate control `benchmarks/lr_scale.py` and
the summaries of `benchmarks/train_memory.py`."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def _load(name: str):
    # the scripts import `bench_common` from their folder, as when run as benchmarks/NAME.py
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
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


def test_seeds_warns_when_runs_differ_in_their_schedule(tmp_path, capsys):
    """Best dev F1 depends on how often a run was evaluated: the table says when the runs
    it compares were not evaluated alike."""
    seeds = _load("seeds")
    for name, every in [("conll03-ours-avg.json", "100"), ("conll03-ner-avg.json", "250")]:
        data = {
            "best_dev_f1": 90.0,
            "test": {"ents_f": 0.85},
            "overrides": {"training.max_steps": "3000", "training.eval_frequency": every},
        }
        (tmp_path / name).write_text(json.dumps(data))
    args = ["--dataset", "conll03", "--run", "ours=ours:-avg", "--seeds", "0", "--results", str(tmp_path)]
    out = seeds.main([*args, "--run", "ner=ner:-avg"])
    printed = capsys.readouterr().out
    assert "WARNING" in printed and "eval_frequency 100" in printed and "eval_frequency 250" in printed
    assert "ner:0" in out["schedule_warning"]
    assert out["runs"]["ours"]["seeds"][0]["schedule"]["eval_frequency"] == "100"
    # alike: no warning
    out = seeds.main(args)
    assert out["schedule_warning"] is None and "WARNING" not in capsys.readouterr().out


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


def _log(path: Path, rows) -> Path:
    lines = [{"step": 0, "train_seconds": 1.0, "words": 0, "ents_f": 0.0}]
    lines += [
        {"step": 100 * (i + 1), "train_seconds": t, "words": 1000 * (i + 1), "ents_f": f / 100}
        for i, (t, f) in enumerate(rows)
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_learning_speed_tables_and_trailing_stretches(tmp_path, capsys):
    speed = _load("learning_speed")
    ours = _log(tmp_path / "ours.jsonl", [(10, 80), (20, 85), (30, 90)])
    ref = _log(tmp_path / "ref.jsonl", [(5, 70), (15, 86), (25, 87), (35, 95)])
    out = speed.main(
        [
            "--run", f"ours={ours}",
            "--run", f"ref={ref}",
            "--reference", "ref",
            "--times", "12,30",
            "--steps", "200",
        ]
    )  # fmt: skip
    runs = out["runs"]
    # best so far, by training seconds and by step; the untrained step-0 row is left out
    assert runs["ours"]["by_train_seconds"] == {"12.0": 80.0, "30.0": 90.0}
    assert runs["ref"]["by_step"] == {"200": 86.0}
    assert runs["ours"]["words_per_training_second"] == 100.0
    cmp = runs["ours"]["against_reference"]
    # compared up to the earlier last evaluation (30 s); before our first evaluation the
    # reference alone has a model; then behind from 15 to 25 s, by 6 at most
    assert cmp["compared_up_to_seconds"] == 30.0
    assert cmp["trailing"] == [
        {"from": 5.0, "to": 5.0, "max_gap": None},
        {"from": 15.0, "to": 25.0, "max_gap": 6.0},
    ]
    assert cmp["max_gap_after_first_evaluation"] == 6.0
    assert "behind 5-5 s (not yet evaluated), 15-25 s (by up to 6.00)" in capsys.readouterr().out
    assert "against_reference" not in runs["ref"]


def test_learning_speed_never_behind_and_bad_input(tmp_path, capsys):
    speed = _load("learning_speed")
    ours = _log(tmp_path / "ours.jsonl", [(5, 90), (15, 92)])
    ref = _log(tmp_path / "ref.jsonl", [(6, 80), (16, 91)])
    out = speed.main(["--run", f"ours={ours}", "--run", f"ref={ref}", "--reference", "ref"])
    assert out["runs"]["ours"]["against_reference"]["trailing"] == []
    assert "never behind" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="does not exist"):
        speed.main(["--run", f"ours={tmp_path / 'missing.json'}"])
    with pytest.raises(SystemExit, match="not one of the runs"):
        speed.main(["--run", f"ours={ours}", "--reference", "ref"])
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"step": 0, "train_seconds": 1.0, "ents_f": 0.0}) + "\n")
    with pytest.raises(SystemExit, match="no evaluation rows"):
        speed.main(["--run", f"ours={empty}"])


def _ner_update_steps(scale):
    """The change of every weight of spaCy `ner` after one SGD update, with its learning
    rate scaled by `scale` through the benchmark control (None: not scaled)."""
    import numpy
    import spacy
    from spacy.training import Example
    from thinc.api import SGD, fix_random_seed

    lr_scale = _load("lr_scale")
    fix_random_seed(0)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner")
    eg = Example.from_dict(nlp.make_doc("Alice lives in Paris"), {"entities": [(0, 5, "PER"), (15, 20, "LOC")]})
    nlp.initialize(lambda: [eg])
    if scale is not None:
        lr_scale.make_learn_rate_scale({"ner": scale})(nlp)
    before = {(node.id, name): node.get_param(name).copy() for node in ner.model.walk() for name in node.param_names}
    nlp.update([eg], sgd=SGD(0.001, L2=0.0), drop=0.0)
    after = {(node.id, name): node.get_param(name) for node in ner.model.walk() for name in node.param_names}
    return numpy.concatenate([(after[key] - before[key]).ravel() for key in before]), nlp


def test_lr_scale_control_scales_spacy_ner_steps_and_saves_the_plain_pipeline(tmp_path):
    import numpy
    import spacy

    plain, _ = _ner_update_steps(None)
    scaled, nlp = _ner_update_steps(20.0)
    assert numpy.abs(plain).sum() > 0
    numpy.testing.assert_allclose(scaled, 20.0 * plain, rtol=1e-3, atol=1e-9)
    # the swapped class is not saved: the loaded pipeline's model is thinc's own class
    nlp.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp")
    assert type(nlp.get_pipe("ner").model).__name__ == "_ScaledModel"
    assert type(loaded.get_pipe("ner").model).__name__ == "Model"


def test_lr_scale_control_names_bad_settings():
    import spacy

    lr_scale = _load("lr_scale")
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    with pytest.raises(ValueError, match="no component 'tagger'"):
        lr_scale.scale_learn_rate(nlp, "tagger", 2.0)
    for bad in (0, -1.0, float("inf"), True, "20"):
        with pytest.raises(ValueError, match="must be a number > 0"):
            lr_scale.scale_learn_rate(nlp, "ner", bad)


def test_train_memory_variants_parse_and_reject_bad_specs():
    train_memory = _load("train_memory")
    assert train_memory.parse_variant("none") == ("none", 0, {})
    assert train_memory.parse_variant("t10=trim:10") == ("t10", 10, {})
    assert train_memory.parse_variant("mmap=env:MALLOC_MMAP_THRESHOLD_=65536") == (
        "mmap", 0, {"MALLOC_MMAP_THRESHOLD_": "65536"})
    for bad in ("x=trim:0", "x=trim:a", "x=env:NOVALUE", "x=other:1"):
        with pytest.raises(SystemExit, match="bad --variant"):
            train_memory.parse_variant(bad)


def test_train_memory_summary_step_time_and_growth():
    train_memory = _load("train_memory")
    # step 0 (an evaluation) is slow and left out; then 2 s a step, RSS +10 MiB a step
    # (= 300 MiB a minute)
    rows = [{"step": 0, "seconds": 0.0, "rss_mib": 500.0, "trim_seconds": 0.0}]
    rows += [{"step": s, "seconds": 60.0 + 2.0 * s, "rss_mib": 1000.0 + 10.0 * s, "trim_seconds": 0.01}
             for s in range(1, 21)]
    summary = train_memory.summarize(rows, skip=1, compare_step=11)
    assert summary["steps_logged"] == 21
    assert summary["seconds_per_step_mean"] == pytest.approx(2.0)
    assert summary["seconds_per_step_median"] == pytest.approx(2.0)
    assert summary["seconds_per_step_to_compare"] == pytest.approx(2.0)
    assert train_memory.summarize(rows, skip=1, compare_step=50)["seconds_per_step_to_compare"] is None
    assert summary["rss_mib_at_skip"] == 1010.0
    assert summary["rss_mib_last"] == summary["rss_mib_max"] == 1200.0
    assert summary["rss_growth_mib_per_minute_second_half"] == pytest.approx(300.0)
    assert summary["trim_seconds_mean"] == pytest.approx(0.01)
    flat = [dict(r, rss_mib=1000.0) for r in rows]
    assert train_memory.summarize(flat, skip=1, compare_step=11)["rss_growth_mib_per_minute_second_half"] == 0.0

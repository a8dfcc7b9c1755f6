"""Expected calibration error, entity confidences, and scripts/calibrate.py."""

import json

import pytest
import spacy
from spacy.lang.en import English
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import make_tempdir
from thinc.api import fix_random_seed

from spacy_bilstm_crf.calibration import entity_confidences, expected_calibration_error

TRAIN_DATA = [
    ("Who is Shaka Khan?", {"entities": [(7, 17, "PERSON")]}),
    ("I like London and Berlin.", {"entities": [(7, 13, "LOC"), (18, 24, "LOC")]}),
    ("Angela Merkel visited Paris last week.", {"entities": [(0, 13, "PERSON"), (22, 27, "LOC")]}),
    ("Nobody lives here.", {"entities": []}),
]

SMALL_MODEL = {
    "hidden_size": 16,
    "num_layers": 1,
    "attention_heads": 2,
    "dropout": 0.0,
    "input_dropout": 0.0,
    "attention_dropout": 0.0,
    "tok2vec": {
        "@architectures": "spacy.MultiHashEmbed.v2",
        "width": 32,
        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
        "rows": [500, 100, 250, 250],
        "include_static_vectors": False,
    },
}


def test_ece_of_calibrated_and_overconfident_predictions():
    # in every bin the accuracy equals the mean confidence: ECE 0
    conf = [0.25] * 4 + [0.75] * 4
    correct = [True, False, False, False, True, True, True, False]
    ece, bins = expected_calibration_error(conf, correct, n_bins=4)
    assert ece == pytest.approx(0.0)
    assert [b["count"] for b in bins] == [0, 4, 0, 4]
    # confident 0.95, right half of the time: ECE 0.45
    ece, bins = expected_calibration_error([0.95] * 10, [True, False] * 5)
    assert ece == pytest.approx(0.45)
    assert bins[9]["count"] == 10 and bins[9]["accuracy"] == pytest.approx(0.5)
    # 1.0 lands in the last bin; two bins weighted by their sizes
    ece, bins = expected_calibration_error([1.0, 1.0, 0.05], [True, False, False], n_bins=10)
    assert bins[9]["count"] == 2 and bins[0]["count"] == 1
    assert ece == pytest.approx(2 / 3 * 0.5 + 1 / 3 * 0.05)
    assert expected_calibration_error([], [])[0] == 0.0


@pytest.mark.parametrize("conf,correct,bins", [([0.5], [], 10), ([1.5], [True], 10), ([0.5], [True], 0)])
def test_ece_rejects_bad_input(conf, correct, bins):
    with pytest.raises(ValueError, match="BCE071"):
        expected_calibration_error(conf, correct, n_bins=bins)


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    fix_random_seed(0)
    nlp = English()
    nlp.add_pipe("bilstm_attn_crf", config={"model": SMALL_MODEL})
    examples = [Example.from_dict(nlp.make_doc(t), a) for t, a in TRAIN_DATA]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(60):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("calibration")
    nlp.to_disk(path / "model")
    DocBin(docs=[eg.reference for eg in examples]).to_disk(path / "dev.spacy")
    return path


def test_entity_confidences_pair_scores_with_correctness(trained_dir):
    nlp = spacy.load(trained_dir / "model")
    gold = list(DocBin().from_disk(trained_dir / "dev.spacy").get_docs(nlp.vocab))
    conf, correct = entity_confidences(nlp, gold)
    # the model fits its training data: 5 entities, all correct and confident
    assert len(conf) == len(correct) == 5
    assert all(correct) and all(0.5 < c <= 1.0 for c in conf)
    # against gold that has no entities, the same predictions are all wrong
    for doc in gold:
        doc.ents = []
    conf2, correct2 = entity_confidences(nlp, gold)
    assert conf2 == pytest.approx(conf) and not any(correct2)
    nlp.get_pipe("bilstm_attn_crf").cfg["spans_key"] = None
    with pytest.raises(ValueError, match="BCE070.*spans_key"):
        entity_confidences(nlp, gold)


def test_calibrate_script_fits_saves_and_keeps_entities(trained_dir, load_script):
    module = load_script("calibrate")
    with make_tempdir() as tmp:
        # a held-out set on which two of the five confident predictions are wrong:
        # the fitted temperature must soften the confidences (T > 1)
        nlp = spacy.load(trained_dir / "model")
        gold = list(DocBin().from_disk(trained_dir / "dev.spacy").get_docs(nlp.vocab))
        gold[1].ents = []
        DocBin(docs=gold).to_disk(tmp / "held_out.spacy")
        # --no-threshold: only the temperature, so the entities must not change
        module.main([str(trained_dir / "model"), str(tmp / "held_out.spacy"), str(tmp / "out"),
                     str(tmp / "calibration.json"), "--no-threshold"])
        result = json.loads((tmp / "calibration.json").read_text(encoding="utf8"))
        assert result["threshold"] == result["threshold_before"] == 0.0
        assert result["temperature_before"] == 1.0 and result["temperature"] > 1.0
        assert result["n_entities"] == 5
        calibrated = spacy.load(tmp / "out")
        assert calibrated.get_pipe("bilstm_attn_crf").cfg["confidence_temperature"] == result["temperature"]
        texts = [t for t, _ in TRAIN_DATA]
        before = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
        after_docs = list(calibrated.pipe(texts))
        assert [[(e.start, e.end, e.label_) for e in d.ents] for d in after_docs] == before
        raw = [float(s) for d in nlp.pipe(texts) for s in d.spans["crf_ents"].attrs["scores"]]
        soft = [float(s) for d in after_docs for s in d.spans["crf_ents"].attrs["scores"]]
        assert all(b < a for a, b in zip(raw, soft))


def test_calibrate_script_fits_threshold_for_f1(trained_dir, load_script):
    module = load_script("calibrate")
    with make_tempdir() as tmp:
        nlp = spacy.load(trained_dir / "model")
        gold = list(DocBin().from_disk(trained_dir / "dev.spacy").get_docs(nlp.vocab))
        gold[1].ents = []  # two confident predictions become errors
        DocBin(docs=gold).to_disk(tmp / "held_out.spacy")
        module.main([str(trained_dir / "model"), str(tmp / "held_out.spacy"), str(tmp / "out"),
                     str(tmp / "calibration.json")])
        result = json.loads((tmp / "calibration.json").read_text(encoding="utf8"))
        calibrated = spacy.load(tmp / "out")
        pipe = calibrated.get_pipe("bilstm_attn_crf")
        assert pipe.cfg["threshold"] == pytest.approx(result["threshold"])
        assert result["threshold"] in [round(0.05 * i, 2) for i in range(20)]
        # 0.0 is a candidate, so the fitted threshold is never worse on the data it saw
        assert result["ents_f_after_in_sample"] >= result["ents_f_before"]
        # the saved pipeline scores what the script reported
        examples = [Example(Doc(calibrated.vocab, words=[t.text for t in d],
                                spaces=[bool(t.whitespace_) for t in d]), d) for d in gold]
        assert calibrated.evaluate(examples)["ents_f"] == pytest.approx(result["ents_f_after_in_sample"])
        # the ECE covers every prediction, not only those above the threshold
        assert result["n_entities"] == 5
        # config.cfg and the meta say what the saved pipeline does
        config = spacy.util.load_config(tmp / "out" / "config.cfg")
        assert config["components"]["bilstm_attn_crf"]["threshold"] == pytest.approx(result["threshold"])
        assert (config["components"]["bilstm_attn_crf"]["confidence_temperature"]
                == pytest.approx(result["temperature"]))
        assert calibrated.meta["performance"]["ents_f"] == pytest.approx(result["ents_f_after_in_sample"])


def test_calibrate_script_reports_the_input_models_f1(trained_dir, load_script):
    """With a threshold above 0 the temperature changes the entities: "before" is the
    input model's F1, measured before anything is re-fitted."""
    module = load_script("calibrate")
    with make_tempdir() as tmp:
        nlp = spacy.load(trained_dir / "model")
        nlp.get_pipe("bilstm_attn_crf").cfg["threshold"] = 0.9
        nlp.to_disk(tmp / "model")
        gold = list(DocBin().from_disk(trained_dir / "dev.spacy").get_docs(nlp.vocab))
        gold[1].ents = []
        DocBin(docs=gold).to_disk(tmp / "held_out.spacy")
        examples = [Example(Doc(nlp.vocab, words=[t.text for t in d],
                                spaces=[bool(t.whitespace_) for t in d]), d) for d in gold]
        expected = nlp.evaluate(examples)["ents_f"]
        module.main([str(tmp / "model"), str(tmp / "held_out.spacy"), str(tmp / "out"),
                     str(tmp / "calibration.json"), "--no-threshold"])
        result = json.loads((tmp / "calibration.json").read_text(encoding="utf8"))
        assert result["temperature"] != result["temperature_before"]
        assert result["ents_f_before"] == pytest.approx(expected)
        # a component that is not ours: a clear message, not a KeyError
        nlp.add_pipe("sentencizer")
        nlp.to_disk(tmp / "model2")
        with pytest.raises(SystemExit, match="not a bilstm_attn_crf component"):
            module.main([str(tmp / "model2"), str(tmp / "held_out.spacy"), str(tmp / "out2"),
                         str(tmp / "c2.json"), "--component", "sentencizer"])

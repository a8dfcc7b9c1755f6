"""Tests of the spaCy project: project.yml, configs/, scripts/ and the `all` workflow.

Fast: every config is a fixed point of `spacy init fill-config` and passes `spacy debug
config`; project.yml is complete (help/script/deps/outputs, asset checksums); GloVe-style
vectors built by scripts/build_vectors.py survive a save/load round trip ("Paris");
the report's error analysis.
Slow: `spacy project run all` on a tiny slice, then the packaged wheel is installed into a
fresh venv and loaded with `spacy.load`.
"""

import hashlib
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Dict, List

import numpy
import pytest
import spacy
import srsly
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import load_config, make_tempdir
from thinc.api import Config

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.name for p in (REPO_ROOT / "configs").glob("*.cfg"))
SCRIPTS = REPO_ROOT / "scripts"
WNUT_LABELS = ["corporation", "creative-work", "group", "location", "person", "product"]

TRAIN_DATA = [
    ("Paris is lovely in spring", [(0, 1, "location")]),
    ("I met Barack Obama in London", [(2, 4, "person"), (5, 6, "location")]),
    ("the iPhone from Apple", [(1, 2, "product"), (3, 4, "corporation")]),
    ("nothing to see here", []),
]


def _needs(cfg_name: str) -> None:
    if cfg_name == "transformer.cfg":
        pytest.importorskip("spacy_transformers")


def _make_docs(vocab) -> List[Doc]:
    docs = []
    for text, ents in TRAIN_DATA:
        doc = Doc(vocab, words=text.split())
        doc.ents = [Span(doc, s, e, label=lab) for s, e, lab in ents]
        docs.append(doc)
    return docs


# ------------------------------------------------------------------------ configs
def test_configs_exist():
    for name in ["default.cfg", "vectors.cfg", "shared_tok2vec.cfg", "transformer.cfg"]:
        assert name in CONFIGS


@pytest.mark.parametrize("cfg_name", CONFIGS)
def test_config_is_filled(cfg_name):
    """`spacy init fill-config` leaves each config unchanged, text and content."""
    _needs(cfg_name)
    from spacy.cli.init_config import fill_config

    path = REPO_ROOT / "configs" / cfg_name
    with make_tempdir() as tmp:
        out = tmp / cfg_name
        fill_config(out, path, silent=True)
        filled = out.read_text(encoding="utf8")
    original = path.read_text(encoding="utf8")
    assert Config().from_str(filled, interpolate=False) == Config().from_str(
        original, interpolate=False
    )
    assert filled.strip() == original.strip()


@pytest.mark.parametrize("cfg_name", CONFIGS)
def test_config_debug(cfg_name):
    """`spacy debug config` accepts each config (with the corpora paths filled in)."""
    _needs(cfg_name)
    from spacy.cli.debug_config import debug_config

    with make_tempdir() as tmp:
        nlp = spacy.blank("en")
        DocBin(docs=_make_docs(nlp.vocab)).to_disk(tmp / "x.spacy")
        path = tmp / "x.spacy"
        if cfg_name == "conll03.cfg":
            path = tmp / "x.conll"
            path.write_text("UN B-ORG\naccepts O\n\nAnna B-PER\n", encoding="utf8")
        debug_config(
            REPO_ROOT / "configs" / cfg_name,
            overrides={"paths.train": str(path), "paths.dev": str(path)},
        )


@pytest.mark.parametrize("cfg_name", CONFIGS)
def test_config_conventions(cfg_name):
    config = load_config(REPO_ROOT / "configs" / cfg_name, interpolate=False)
    assert config["system"]["gpu_allocator"] == "pytorch"
    assert config["corpora"]["train"]["path"] == "${paths.train}"
    assert config["corpora"]["dev"]["path"] == "${paths.dev}"
    assert "bilstm_attn_crf" in config["nlp"]["pipeline"]
    comp = config["components"]["bilstm_attn_crf"]
    assert comp["factory"] == "bilstm_attn_crf"
    assert comp["model"]["@architectures"] == "spacy-bilstm-crf.BiLSTMAttnCRF.v1"
    assert comp["model"]["nO"] is None
    assert config["training"]["logger"]["progress_bar"] in ("train", "eval")


@pytest.mark.parametrize("cfg_name", [c for c in CONFIGS if c != "transformer.cfg"])
def test_configs_decay_the_learning_rate(cfg_name):
    """The configs without a transformer start at 0.003 and decay with the inverse of
    time to 0.001 at step 3,000 (session 10 in benchmarks/RESULTS.md); transformer.cfg
    keeps its own warm-up schedule."""
    import itertools

    from thinc.api import registry

    config = load_config(REPO_ROOT / "configs" / cfg_name, interpolate=False)
    schedule = registry.resolve({"lr": config["training"]["optimizer"]["learn_rate"]})["lr"]
    rates = list(itertools.islice(schedule, 3001))
    assert rates[0] == pytest.approx(0.003)
    assert rates[1500] == pytest.approx(0.0015, rel=0.01)
    assert rates[3000] == pytest.approx(0.001, rel=0.01)
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_default_config_is_the_factory_default():
    """default.cfg uses the component's default model: embedded tok2vec, no vectors."""
    from spacy_bilstm_crf.pipeline_component import DEFAULT_MODEL

    config = load_config(REPO_ROOT / "configs" / "default.cfg", interpolate=False)
    assert config["components"]["bilstm_attn_crf"]["model"] == DEFAULT_MODEL
    assert config["paths"]["vectors"] is None
    assert config["nlp"]["pipeline"] == ["bilstm_attn_crf"]


def test_listener_configs():
    shared = load_config(REPO_ROOT / "configs" / "shared_tok2vec.cfg", interpolate=False)
    assert shared["nlp"]["pipeline"] == ["tok2vec", "bilstm_attn_crf"]
    listener = shared["components"]["bilstm_attn_crf"]["model"]["tok2vec"]
    assert listener["@architectures"] == "spacy.Tok2VecListener.v1"
    # the shared tok2vec has the unknown-word row too (session 13: +1.3 CoNLL-2003 dev)
    shared_embed = shared["components"]["tok2vec"]["model"]["embed"]["layer"]
    assert shared_embed["@architectures"] == "spacy-bilstm-crf.MultiHashEmbed.v1"
    assert shared_embed["unknown_attr"] == "NORM" and shared_embed["unknown_alpha"] > 0
    trf = load_config(REPO_ROOT / "configs" / "transformer.cfg", interpolate=False)
    assert trf["nlp"]["pipeline"] == ["transformer", "bilstm_attn_crf"]
    # the best offline config: the fine-tuned transformer concatenated with hash
    # embeddings over GloVe and characters (casing), the BiLSTM-CRF at a 20x rate
    t2v = trf["components"]["bilstm_attn_crf"]["model"]["tok2vec"]
    assert t2v["@layers"] == "concatenate.v1"
    assert t2v["*"]["trf"]["@architectures"].startswith("spacy-transformers.TransformerListener")
    assert t2v["*"]["words"]["include_static_vectors"] and trf["paths"]["vectors"]
    assert trf["components"]["bilstm_attn_crf"]["learn_rate_scale"] > 1
    assert trf["components"]["transformer"]["model"]["name"] == "${paths.transformer}"
    vec = load_config(REPO_ROOT / "configs" / "vectors.cfg", interpolate=False)
    words = vec["components"]["bilstm_attn_crf"]["model"]["tok2vec"]["*"]["words"]
    assert words["@architectures"] == "spacy-bilstm-crf.TokenDropout.v1"  # word dropout
    assert words["layer"]["include_static_vectors"]
    assert vec["initialize"]["vectors"] == "${paths.vectors}"
    assert vec["paths"]["vectors"]


# ------------------------------------------------------------------------ project.yml
def test_project_yml_is_complete():
    from weasel.util import load_project_config

    project = load_project_config(REPO_ROOT)
    for key in ["title", "description", "vars", "directories", "assets", "commands", "workflows"]:
        assert project.get(key), key
    assert project["workflows"]["all"] == ["convert", "train", "calibrate", "evaluate", "report", "package"]
    assert "conll03" in project["workflows"]
    for var in ["limit", "conll03_dir", "gpu_id", "config"]:
        assert var in project["vars"]
    assert project["vars"]["conll03_dir"] == "../shared/data/conll2003"
    for cmd in project["commands"]:
        for key in ["help", "script", "deps"]:
            assert cmd.get(key), (cmd["name"], key)
        assert cmd.get("outputs") or cmd.get("outputs_no_cache"), cmd["name"]
        # every config and project script a command uses is one of its deps
        for line in cmd["script"]:
            for arg in shlex.split(line):
                if arg.startswith(("configs/", "scripts/", "meta/")):
                    assert arg in cmd["deps"], (cmd["name"], arg)
        assert not any("conll2003" in out for out in cmd.get("outputs", []))


def test_project_assets_checksums():
    from weasel.util import load_project_config

    project = load_project_config(REPO_ROOT)
    assert len(project["assets"]) == 3
    for asset in project["assets"]:
        assert "url" not in asset  # bundled
        path = REPO_ROOT / asset["dest"]
        assert hashlib.md5(path.read_bytes()).hexdigest() == asset["checksum"]


def test_package_meta():
    wnut = srsly.read_json(REPO_ROOT / "meta" / "wnut17.json")
    assert "CC BY 4.0" in wnut["license"]
    assert "Derczynski" in wnut["notes"] and "WNUT2017" in wnut["notes"]
    assert wnut["sources"][0]["license"] == "CC BY 4.0"
    conll = srsly.read_json(REPO_ROOT / "meta" / "conll03.json")
    assert "research use" in conll["license"].lower()
    assert "RESEARCH USE ONLY" in conll["description"]


@pytest.mark.parametrize(
    "command,meta_name,must_say",
    [
        ("package", "wnut17", ["CC BY 4.0", "Derczynski", "W17-4418"]),
        ("package-conll03", "conll03", ["RESEARCH USE ONLY", "do not redistribute"]),
    ],
)
def test_package_ships_licence_file(command, meta_name, must_say):
    """`spacy package` puts a LICENSE found in the model dir into the wheel: the package
    steps copy one there first, and it says what the meta says."""
    from weasel.util import load_project_config

    project = load_project_config(REPO_ROOT)
    cmd = next(c for c in project["commands"] if c["name"] == command)
    licence = f"meta/{meta_name}.LICENSE"
    assert licence in cmd["deps"]
    copy, package = cmd["script"][-2:]
    assert package.startswith("python -m spacy package ")
    model_dir = package.split()[4]
    assert licence in copy and f"{model_dir}/LICENSE" in copy
    text = (REPO_ROOT / licence).read_text(encoding="utf8")
    for phrase in must_say:
        assert phrase in text, phrase
    meta = srsly.read_json(REPO_ROOT / "meta" / f"{meta_name}.json")
    assert meta["license"].split(" (")[0].lower() in text.lower()


# ------------------------------------------------------------------------ vectors
def _fake_glove(path: Path) -> Dict[str, numpy.ndarray]:
    """A GloVe-like dir: lower-cased words in parquet, one float32 row each."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    words = ["the", "paris", "london", "is", ".", "apple", "iphone", "obama"]
    rng = numpy.random.default_rng(0)
    matrix = rng.normal(size=(len(words), 8)).astype("float32")
    path.mkdir(parents=True)
    pq.write_table(pa.table({"index": words}), path / "glove_6B_index.parquet")
    numpy.save(path / "glove_6B_50d_emb.npy", matrix)
    return dict(zip(words, matrix))


def test_build_vectors_keys(load_script):
    bv = load_script("build_vectors")
    rows = bv.key_rows(["paris", "new-york", ","], extra_forms=["iPhone", "PaRiS", "Nowhere"])
    assert rows["paris"] == rows["Paris"] == rows["PARIS"] == rows["PaRiS"] == 0
    assert rows["New-York"] == rows["NEW-YORK"] == rows["New-york"] == 1
    assert rows[","] == 2
    assert "iPhone" not in rows and "Nowhere" not in rows


def test_vectors_survive_save_and_load():
    """A pipeline trained with vectors.cfg and reloaded from disk still finds "Paris"."""
    from spacy.training.initialize import init_nlp

    with make_tempdir() as tmp:
        table = _fake_glove(tmp / "glove")
        nlp0 = spacy.blank("en")
        DocBin(docs=_make_docs(nlp0.vocab)).to_disk(tmp / "train.spacy")
        subprocess.run(
            [sys.executable, str(SCRIPTS / "build_vectors.py"), str(tmp / "vectors"),
             "--glove-dir", str(tmp / "glove"), "--corpus", str(tmp / "train.spacy")],
            check=True,
        )
        config = load_config(
            REPO_ROOT / "configs" / "vectors.cfg",
            overrides={
                "paths.train": str(tmp / "train.spacy"),
                "paths.dev": str(tmp / "train.spacy"),
                "paths.vectors": str(tmp / "vectors"),
            },
        )
        nlp = init_nlp(config)
        for word in ["Paris", "paris", "PARIS", "iPhone", "Obama"]:
            assert nlp.vocab.has_vector(word), word
            numpy.testing.assert_allclose(nlp.vocab.get_vector(word), table[word.lower()])
        tok2vec = nlp.get_pipe("bilstm_attn_crf").model.get_ref("tok2vec")
        probe = Doc(nlp.vocab, words=["Paris", "is", "lovely"])
        before = tok2vec.predict([probe])[0]
        nlp.to_disk(tmp / "model")
        nlp2 = spacy.load(tmp / "model")
        for word in ["Paris", "paris", "PARIS", "iPhone", "Obama"]:
            assert nlp2.vocab.has_vector(word), f"{word} lost its vector on reload"
            numpy.testing.assert_allclose(nlp2.vocab.get_vector(word), table[word.lower()])
        assert not nlp2.vocab.has_vector("Nowhere")
        tok2vec2 = nlp2.get_pipe("bilstm_attn_crf").model.get_ref("tok2vec")
        after = tok2vec2.predict([Doc(nlp2.vocab, words=["Paris", "is", "lovely"])])[0]
        numpy.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------ report
def test_report_analysis(load_script):
    report = load_script("report")
    nlp = spacy.blank("en")
    words = "Barack Obama visited New York with Apple staff".split()
    gold = Doc(nlp.vocab, words=words)
    gold.ents = [Span(gold, 0, 2, "person"), Span(gold, 3, 5, "location"),
                 Span(gold, 6, 7, "corporation")]
    pred = Doc(nlp.vocab, words=words)
    pred.ents = [Span(pred, 0, 2, "person"), Span(pred, 4, 5, "location"),
                 Span(pred, 7, 8, "group")]
    pred.spans["crf_ents"] = list(pred.ents)
    pred.spans["crf_ents"].attrs["scores"] = numpy.asarray([0.99, 0.4, 0.2], dtype="f")
    res = report.analyse([gold], [pred], "crf_ents", n_lowest=2)
    assert res["per_label"]["person"]["f"] == 1.0
    assert res["total"]["correct"] == 1 and res["total"]["gold"] == 3
    assert res["errors"]["right label, wrong boundaries"] == 1
    assert res["errors"]["missed (gold entity, no overlapping prediction)"] == 1
    assert res["errors"]["spurious (prediction, no overlapping gold entity)"] == 1
    assert res["span_confusion"]["corporation"]["O"] == 1
    assert res["span_confusion"]["O"]["group"] == 1
    assert res["token_confusion"]["location"]["O"] == 1
    assert [s["score"] for s in res["lowest"]] == pytest.approx([0.2, 0.4])
    md = report.to_markdown("t", "m", "d", res)
    assert "| person | 100.00 | 100.00 | 100.00 |" in md
    page = report.to_html("t", [gold], [pred], "crf_ents", 5)
    assert "person 0.99" in page and "<html" in page
    # scored as ents_f is: a doc without entity annotation is skipped, a prediction over
    # tokens whose annotation is missing is neither right nor wrong
    unannotated = Doc(nlp.vocab, words=words)
    partial = Doc(nlp.vocab, words=words)
    partial.set_ents([Span(partial, 0, 2, "person")], default="missing")
    preds = []
    for _ in range(2):
        p = Doc(nlp.vocab, words=words)
        p.ents = [Span(p, 0, 2, "person"), Span(p, 6, 7, "group")]
        preds.append(p)
    res2 = report.analyse([gold, unannotated, partial], [pred] + preds, "crf_ents", n_lowest=2)
    assert res2["total"]["gold"] == 4 and res2["total"]["pred"] == 4
    assert res2["total"]["correct"] == 2
    assert res2["errors"] == res["errors"]


def test_evaluate_metrics_json(load_script):
    evaluate = load_script("evaluate")
    data = evaluate.metrics_json({"ents_p": 0.5, "ents_r": 0.25, "ents_f": 1 / 3,
                                  "speed": 10.0, "token_acc": 1.0, "other": 3,
                                  "ents_per_type": {"person": {"p": 1, "r": 1, "f": 1}}})
    assert set(data) == {"ents_p", "ents_r", "ents_f", "speed", "token_acc", "ents_per_type"}


def test_evaluate_reads_a_directory_of_docbins(load_script):
    evaluate = load_script("evaluate")
    nlp = spacy.blank("en")
    with make_tempdir() as tmp:
        (tmp / "sub").mkdir()
        DocBin(docs=[Doc(nlp.vocab, words=["a", "b"])]).to_disk(tmp / "b.spacy")
        DocBin(docs=[Doc(nlp.vocab, words=["c"])]).to_disk(tmp / "sub" / "c.spacy")
        # hidden files and folders are skipped, as spaCy's Corpus skips them
        (tmp / ".ipynb_checkpoints").mkdir()
        DocBin(docs=[Doc(nlp.vocab, words=["x"])]).to_disk(tmp / ".ipynb_checkpoints" / "b.spacy")
        docs = evaluate.load_gold_docs(nlp, tmp)
        assert [d.text for d in docs] == ["a b ", "c "]
        (tmp / "empty").mkdir()
        with pytest.raises(ValueError, match="without .spacy files"), pytest.warns(UserWarning):
            evaluate.load_gold_docs(nlp, tmp / "empty")


def test_evaluate_reads_conll_on_gold_tokens(load_script):
    evaluate = load_script("evaluate")
    nlp = spacy.blank("en")
    with make_tempdir() as tmp:
        path = tmp / "x.conll"
        path.write_text(
            "-DOCSTART- -X- -X- O\n\nUN NNP B-NP I-ORG\naccepts VBZ B-VP O\n"
            "Dutch JJ B-NP I-MISC\n\nAnna NNP B-NP I-PER\n", encoding="utf8")
        docs = evaluate.load_gold_docs(nlp, path)
    assert len(docs) == 2
    assert [t.text for t in docs[0]] == ["UN", "accepts", "Dutch"]
    assert [(e.text, e.label_) for e in docs[0].ents] == [("UN", "ORG"), ("Dutch", "MISC")]
    egs = evaluate.gold_token_examples(nlp, docs)
    assert isinstance(egs[0], Example)
    assert [t.text for t in egs[0].predicted] == [t.text for t in docs[0]]


# ------------------------------------------------------------------------ slow: all
def _copy_project(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "venv", "corpus", "training", "metrics", "packages", "vectors",
        "reports", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis",
        "project.lock",
    )
    shutil.copytree(REPO_ROOT, dest, ignore=ignore)
    return dest


@pytest.mark.slow
def test_project_all_workflow_and_wheel():
    from weasel.cli.run import project_run

    with make_tempdir() as tmp:
        root = _copy_project(tmp / "project")
        overrides = {"vars.limit": 60, "vars.max_steps": 20, "vars.eval_frequency": 10}
        project_run(root, "all", overrides=overrides, capture=False)
        for split in ("dev", "test"):
            metrics = srsly.read_json(root / "metrics" / "default" / f"{split}.json")
            assert {"ents_p", "ents_r", "ents_f", "speed"} <= set(metrics), metrics
            assert metrics["n_docs"] == 60
        report_dir = root / "metrics" / "default"
        calibration = srsly.read_json(report_dir / "calibration.json")
        assert calibration["temperature"] > 0 and calibration["n_docs"] == 60
        calibrated = spacy.load(root / "training" / "default" / "model-calibrated")
        cfg = calibrated.get_pipe("bilstm_attn_crf").cfg
        temperature, threshold = cfg["confidence_temperature"], cfg["threshold"]
        assert temperature == calibration["temperature"]
        # the step also fits the threshold; it is the one the packaged model uses
        assert threshold == pytest.approx(calibration["threshold"])
        assert calibration["ents_f_after_in_sample"] >= calibration["ents_f_before"]
        md = (report_dir / "report_test.md").read_text(encoding="utf8")
        assert "Per-label precision" in md and "Token-level confusions" in md
        assert (report_dir / "predictions_test.html").stat().st_size > 0
        wheels = list((root / "packages").glob("*/dist/*.whl"))
        assert len(wheels) == 1, wheels
        meta = srsly.read_json(
            root / "packages" / "en_bilstm_crf_wnut17-0.1.0" / "meta.json"
        )
        assert any(r.startswith("spacy-bilstm-crf") for r in meta["requirements"]), meta
        assert meta["license"] == "CC BY 4.0"
        assert "Derczynski" in meta["notes"]
        with zipfile.ZipFile(wheels[0]) as whl:
            names = whl.namelist()
            metadata = next(
                whl.read(n).decode("utf8") for n in names if n.endswith(".dist-info/METADATA")
            )
            # the licence travels as a file too: in the model's data dir and the dist-info
            licences = {n: whl.read(n).decode("utf8") for n in names if n.endswith("/LICENSE")}
        assert len(licences) == 2 and any(".dist-info/" in n for n in licences), list(licences)
        assert all("CC BY 4.0" in text for text in licences.values())

        # a fresh venv that sees this environment's packages (spaCy, torch, the plugin)
        venv = tmp / "venv"
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True
        )
        vpy = venv / "bin" / "python"
        site = subprocess.run(
            [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        # addsitedir also runs that environment's own .pth files (editable installs)
        parent = sysconfig.get_paths()["purelib"]
        Path(site, "_parent_env.pth").write_text(
            f"import site; site.addsitedir({parent!r})\n", encoding="utf8"
        )
        # the wheel's own requirements name the plugin ...
        assert "Requires-Dist: spacy-bilstm-crf" in metadata, metadata
        # ... which, like spaCy and torch, this environment provides: install without
        # dependencies (never download), then spacy.load must find everything
        subprocess.run(
            [str(vpy), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheels[0])],
            check=True,
        )
        code = (
            "import spacy; nlp = spacy.load('en_bilstm_crf_wnut17'); "
            "doc = nlp('I love Paris and Taylor Swift'); "
            "assert nlp.pipe_names == ['bilstm_attn_crf'], nlp.pipe_names; "
            "assert 'crf_ents' in doc.spans; "
            f"assert nlp.get_pipe('bilstm_attn_crf').cfg['confidence_temperature'] == {temperature!r}; "
            f"assert nlp.get_pipe('bilstm_attn_crf').cfg['threshold'] == {threshold!r}; "
            "import spacy_bilstm_crf, en_bilstm_crf_wnut17; "
            "assert 'site-packages' in en_bilstm_crf_wnut17.__file__; "
            "print('LOADED', [(e.text, e.label_) for e in doc.ents])"
        )
        out = subprocess.run([str(vpy), "-c", code], capture_output=True, text=True, cwd=tmp)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "LOADED" in out.stdout


def test_readme_training_config_fills(tmp_path):
    """The README's `spacy train` example says "fill in the rest with spacy init
    fill-config": it must be a config that fill-config completes into a valid pipeline."""
    from spacy.cli.init_config import fill_config

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf8")
    section = readme[readme.index("### Training with `spacy train`"):]
    block = section[section.index("```ini\n") + len("```ini\n"):]
    src = tmp_path / "example.cfg"
    src.write_text(block[: block.index("```")], encoding="utf8")
    out = tmp_path / "filled.cfg"
    fill_config(out, src, silent=True)
    nlp = spacy.util.load_model_from_config(load_config(out), auto_fill=True, validate=True)
    assert nlp.pipe_names == ["bilstm_attn_crf"]
    tok2vec = load_config(out)["components"]["bilstm_attn_crf"]["model"]["tok2vec"]
    assert tok2vec["*"]["words"]["@architectures"] == "spacy-bilstm-crf.TokenDropout.v1"

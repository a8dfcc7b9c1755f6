"""Write an error report for a trained pipeline beside its metrics.

    python scripts/report.py training/model-best corpus/test.spacy metrics --name test

Runs the pipeline on the gold tokens of the data (a .spacy DocBin or a CoNLL-style file)
and writes, into the output directory:

* ``report_NAME.md``: per-label precision/recall/F (exact span match); the span errors by
  kind (wrong label, wrong boundaries, missed, spurious); a span-level confusion matrix
  between labels and "no entity"; a token-level confusion matrix; how well the
  confidences are calibrated; and the lowest-confidence predictions.
* ``report_NAME.json``: the same numbers, machine-readable.
* ``predictions_NAME.html``: a displaCy page of sample documents, each with the predicted
  entities (label and confidence) above the gold entities.

Confidences are the CRF's posterior probabilities of each predicted entity, read from
``doc.spans[spans_key].attrs["scores"]`` of the ``bilstm_attn_crf`` component.

Scored as spaCy's NER scorer scores (``ents_f``): docs without entity annotation are
skipped, and predictions over tokens whose gold annotation is missing are left out.
"""

import argparse
import html
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import spacy
import srsly
from spacy import displacy
from spacy.language import Language
from spacy.tokens import Doc

sys.path.insert(0, str(Path(__file__).parent))
from evaluate import gold_token_examples, load_gold_docs  # noqa: E402

FACTORY = "bilstm_attn_crf"
NONE = "O"  # "no entity" in the confusion matrices
Span3 = Tuple[int, int, str]
PALETTE = ["#7aecec", "#bfeeb7", "#feca74", "#ff9561", "#aa9cfc", "#c887fb",
           "#9cc9cc", "#ffeb80", "#ff8197", "#e4e7d2", "#bfe1d9", "#f0d0ff"]
CALIBRATION_BINS = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0001]


def find_spans_key(nlp: Language) -> Optional[str]:
    """RETURNS (Optional[str]): the spans_key of the pipeline's bilstm_attn_crf component."""
    for name in nlp.pipe_names:
        if nlp.get_pipe_meta(name).factory == FACTORY:
            return nlp.get_pipe(name).cfg.get("spans_key")
    return None


def predict(nlp: Language, gold_docs: List[Doc], batch_size: int) -> List[Doc]:
    examples = gold_token_examples(nlp, gold_docs)
    return list(nlp.pipe([eg.predicted for eg in examples], batch_size=batch_size))


def span_scores(doc: Doc, key: Optional[str]) -> Dict[Span3, float]:
    """RETURNS (Dict[Tuple[int, int, str], float]): each predicted entity's confidence."""
    if key is None or key not in doc.spans:
        return {}
    group = doc.spans[key]
    scores = group.attrs.get("scores")
    if scores is None:
        return {}
    return {(s.start, s.end, s.label_): float(p) for s, p in zip(group, scores)}


def prf(tp: int, n_pred: int, n_gold: int) -> Tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def overlaps(a: Span3, b: Span3) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def analyse(
    gold_docs: List[Doc], pred_docs: List[Doc], key: Optional[str], n_lowest: int
) -> Dict[str, Any]:
    """Compare predictions with gold entities.

    RETURNS (Dict[str, Any]): per_label, errors, span_confusion, token_confusion,
        calibration and lowest (the lowest-confidence predictions).
    """
    labels = sorted({e.label_ for d in gold_docs for e in d.ents}
                    | {e.label_ for d in pred_docs for e in d.ents})
    tp: Counter = Counter()
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    errors: Counter = Counter()
    span_conf: Dict[str, Counter] = defaultdict(Counter)
    tok_conf: Dict[str, Counter] = defaultdict(Counter)
    scored: List[Dict[str, Any]] = []
    has_scores = False
    for i, (gdoc, pdoc) in enumerate(zip(gold_docs, pred_docs)):
        # judged as spaCy's NER scorer judges: a doc without entity annotation is not
        # scored, and a prediction over a token whose annotation is missing is neither
        # right nor wrong
        if not gdoc.has_annotation("ENT_IOB"):
            continue
        missing = {t.i for t in gdoc if t.ent_iob == 0}
        gold = {(e.start, e.end, e.label_) for e in gdoc.ents}
        pred = {(e.start, e.end, e.label_) for e in pdoc.ents
                if not missing.intersection(range(e.start, e.end))}
        scores = span_scores(pdoc, key)
        has_scores = has_scores or bool(scores)
        for g in gold:
            n_gold[g[2]] += 1
        for p in pred:
            n_pred[p[2]] += 1
            if p in gold:
                tp[p[2]] += 1
        # span-level: pair each gold span with the overlapping predictions
        for g in gold:
            over = [p for p in pred if overlaps(g, p)]
            if not over:
                errors["missed (gold entity, no overlapping prediction)"] += 1
                span_conf[g[2]][NONE] += 1
            for p in over:
                span_conf[g[2]][p[2]] += 1
                if p == g:
                    continue
                same_bounds = p[:2] == g[:2]
                if same_bounds:
                    errors["wrong label, right boundaries"] += 1
                elif p[2] == g[2]:
                    errors["right label, wrong boundaries"] += 1
                else:
                    errors["wrong label and boundaries"] += 1
        for p in pred:
            if not any(overlaps(g, p) for g in gold):
                errors["spurious (prediction, no overlapping gold entity)"] += 1
                span_conf[NONE][p[2]] += 1
        # token-level
        for gt, pt in zip(gdoc, pdoc):
            if gt.i not in missing:
                tok_conf[gt.ent_type_ or NONE][pt.ent_type_ or NONE] += 1
        for p in pred:
            if p in scores:
                start, end, label = p
                gold_here = sorted(g for g in gold if overlaps(g, p))
                scored.append({
                    "doc": i,
                    "text": pdoc[start:end].text,
                    "label": label,
                    "score": scores[p],
                    "correct": p in gold,
                    "gold": [f"{gdoc[s:e].text} [{lab}]" for s, e, lab in gold_here],
                    "context": _context(pdoc, start, end),
                })
    per_label = {}
    for label in labels:
        p, r, f = prf(tp[label], n_pred[label], n_gold[label])
        per_label[label] = {"p": p, "r": r, "f": f, "gold": n_gold[label],
                            "pred": n_pred[label], "correct": tp[label]}
    p, r, f = prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    total = {"p": p, "r": r, "f": f, "gold": sum(n_gold.values()),
             "pred": sum(n_pred.values()), "correct": sum(tp.values())}
    calibration = []
    if has_scores:
        for lo, hi in zip(CALIBRATION_BINS, CALIBRATION_BINS[1:]):
            in_bin = [s for s in scored if lo <= s["score"] < hi]
            if in_bin:
                calibration.append({
                    "range": f"[{lo:.2f}, {min(hi, 1.0):.2f}{']' if hi > 1 else ')'}",
                    "n": len(in_bin),
                    "mean_confidence": sum(s["score"] for s in in_bin) / len(in_bin),
                    "precision": sum(s["correct"] for s in in_bin) / len(in_bin),
                })
    lowest = sorted(scored, key=lambda s: s["score"])[:n_lowest]
    return {
        "labels": labels,
        "per_label": per_label,
        "total": total,
        "errors": dict(errors),
        "span_confusion": {g: dict(c) for g, c in span_conf.items()},
        "token_confusion": {g: dict(c) for g, c in tok_conf.items()},
        "calibration": calibration,
        "lowest": lowest,
        "has_scores": has_scores,
    }


def _context(doc: Doc, start: int, end: int, width: int = 6) -> str:
    left = doc[max(0, start - width):start].text
    right = doc[end:end + width].text
    return f"{left} [[{doc[start:end].text}]] {right}".strip()


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _matrix(title: str, rows: Dict[str, Dict[str, int]], labels: List[str]) -> List[str]:
    keys = labels + [NONE]
    out = [title, "", "| gold \\ predicted | " + " | ".join(keys) + " |",
           "|---|" + "---:|" * len(keys)]
    for g in keys:
        row = rows.get(g, {})
        out.append(f"| **{g}** | " + " | ".join(str(row.get(p, 0)) for p in keys) + " |")
    return out + [""]


def to_markdown(name: str, model: str, data: str, res: Dict[str, Any]) -> str:
    lines = [f"# Error report: {name}", "",
             f"Model `{model}` on `{data}` (gold tokens). Entities count as correct only "
             "with exact boundaries and label.", "",
             "## Per-label precision, recall and F-score", "",
             "| label | P | R | F | gold | predicted | correct |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, s in list(res["per_label"].items()) + [("**all (micro)**", res["total"])]:
        lines.append(f"| {label} | {100 * s['p']:.2f} | {100 * s['r']:.2f} | {100 * s['f']:.2f} "
                     f"| {s['gold']} | {s['pred']} | {s['correct']} |")
    lines += ["", "## Span errors by kind", "", "| kind | count |", "|---|---:|"]
    for kind, n in sorted(res["errors"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {kind} | {n} |")
    lines.append("")
    lines += _matrix(
        "## Span-level confusions (labels and no entity)\n\nEach gold entity is paired with "
        f"every prediction that overlaps it; row `{NONE}` counts spurious predictions, column "
        f"`{NONE}` missed entities. The diagonal includes boundary errors.",
        res["span_confusion"], res["labels"])
    lines += _matrix(
        "## Token-level confusions\n\nEach token's gold entity type against the predicted one "
        f"(`{NONE}`: outside any entity).", res["token_confusion"], res["labels"])
    if res["has_scores"]:
        lines += ["## Confidence calibration", "",
                  "| confidence | predictions | mean confidence | precision |",
                  "|---|---:|---:|---:|"]
        for b in res["calibration"]:
            lines.append(f"| {b['range']} | {b['n']} | {b['mean_confidence']:.3f} | "
                         f"{b['precision']:.3f} |")
        lines += ["", f"## The {len(res['lowest'])} lowest-confidence predictions", "",
                  "| confidence | label | entity | correct | gold here | context |",
                  "|---:|---|---|---|---|---|"]
        for s in res["lowest"]:
            lines.append(
                f"| {s['score']:.3f} | {s['label']} | {_md_cell(s['text'])} | "
                f"{'yes' if s['correct'] else 'no'} | {_md_cell('; '.join(s['gold']) or '-')} | "
                f"{_md_cell(s['context'])} |")
    else:
        lines += ["No confidences: the component's `spans_key` is null.", ""]
    return "\n".join(lines) + "\n"


def to_html(
    name: str, gold_docs: List[Doc], pred_docs: List[Doc], key: Optional[str], n_samples: int
) -> str:
    """A displaCy page: for sample docs, predictions (with confidences) above gold."""
    labels = sorted({e.label_ for d in gold_docs + pred_docs for e in d.ents})
    colors = {}
    picked = [i for i, (g, p) in enumerate(zip(gold_docs, pred_docs)) if g.ents or p.ents]
    picked = picked[:n_samples]
    parts = [f"<h1>Sample predictions: {html.escape(name)}</h1>",
             "<p>For each document: the predicted entities with the model's confidence, "
             "then the gold entities. Confidences are posterior probabilities from the CRF.</p>"]
    for i in picked:
        g, p = gold_docs[i], pred_docs[i]
        scores = span_scores(p, key)
        ents = []
        for e in p.ents:
            score = scores.get((e.start, e.end, e.label_))
            shown = e.label_ if score is None else f"{e.label_} {score:.2f}"
            colors[shown.upper()] = PALETTE[labels.index(e.label_) % len(PALETTE)]
            ents.append({"start": e.start_char, "end": e.end_char, "label": shown})
        gents = [{"start": e.start_char, "end": e.end_char, "label": e.label_} for e in g.ents]
        for label in labels:
            colors[label.upper()] = PALETTE[labels.index(label) % len(PALETTE)]
        pred_html = displacy.render({"text": p.text, "ents": ents, "title": None},
                                    style="ent", manual=True, options={"colors": colors})
        gold_html = displacy.render({"text": g.text, "ents": gents, "title": None},
                                    style="ent", manual=True, options={"colors": colors})
        parts.append(f"<h3>doc {i}</h3><p><b>predicted</b></p>{pred_html}"
                     f"<p><b>gold</b></p>{gold_html}<hr/>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'/>"
            f"<title>{html.escape(name)}: sample predictions</title></head>"
            "<body style='font-family: sans-serif; max-width: 1100px; margin: 2em auto'>"
            + "\n".join(parts) + "</body></html>\n")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="Pipeline directory or package name")
    parser.add_argument("data", type=Path, help=".spacy DocBin or CoNLL-style file")
    parser.add_argument("output_dir", type=Path, help="Directory to write into (metrics/)")
    parser.add_argument("--name", default="test", help="Suffix of the report files")
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--limit", type=int, default=0, help="Report on the first N docs only")
    parser.add_argument("--n-lowest", type=int, default=30)
    parser.add_argument("--n-samples", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)

    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    nlp = spacy.load(args.model)
    key = find_spans_key(nlp)
    gold_docs = load_gold_docs(nlp, args.data, args.limit)
    pred_docs = predict(nlp, gold_docs, args.batch_size)
    res = analyse(gold_docs, pred_docs, key, args.n_lowest)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"report_{args.name}.md"
    md.write_text(to_markdown(args.name, str(args.model), str(args.data), res), encoding="utf8")
    srsly.write_json(out / f"report_{args.name}.json", res)
    page = out / f"predictions_{args.name}.html"
    page.write_text(to_html(args.name, gold_docs, pred_docs, key, args.n_samples), encoding="utf8")
    t = res["total"]
    print(f"{args.data}: P/R/F {100 * t['p']:.2f} / {100 * t['r']:.2f} / {100 * t['f']:.2f} "
          f"-> {md}, {page}")


if __name__ == "__main__":
    main()

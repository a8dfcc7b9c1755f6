"""Calibration of entity confidences: expected calibration error (ECE) and reliability bins.

Each entity a pipeline predicts has a confidence (`doc.spans[spans_key].attrs["scores"]`,
the exact posterior that exactly this span has exactly this label). It is correct if the
same start, end and label is a gold entity, and judged as spaCy's NER scorer judges it:
not at all where the gold data has no entity annotation. ECE = sum over equal-width confidence bins of
(bin size / N) * |accuracy(bin) - mean confidence(bin)|.
"""

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from .errors import Errors


def expected_calibration_error(
    confidences: List[float], correct: List[bool], n_bins: int = 10
) -> Tuple[float, List[Dict[str, Any]]]:
    """The expected calibration error and the per-bin statistics (for a reliability diagram).

    confidences (List[float]): The confidence of each prediction, in [0, 1].
    correct (List[bool]): Whether each prediction is correct.
    n_bins (int): The number of equal-width bins; a confidence of 1.0 goes in the last.
    RETURNS (Tuple[float, List[Dict[str, Any]]]): The ECE (0.0 if there are no
        predictions) and, per bin, its bounds, count, accuracy and mean confidence.
    """
    if len(confidences) != len(correct):
        raise ValueError(Errors.BCE071.format(
            problem=f"expected as many confidences as correctness flags, got {len(confidences)} "
                    f"and {len(correct)}"))
    if n_bins < 1:
        raise ValueError(Errors.BCE071.format(problem=f"n_bins must be >= 1, got {n_bins}"))
    members: List[List[int]] = [[] for _ in range(n_bins)]
    for i, c in enumerate(confidences):
        if not 0.0 <= c <= 1.0:
            raise ValueError(Errors.BCE071.format(problem=f"confidence {c} at position {i} is not in [0, 1]"))
        members[min(int(c * n_bins), n_bins - 1)].append(i)
    n = len(confidences)
    ece = 0.0
    bins: List[Dict[str, Any]] = []
    for b, idx in enumerate(members):
        lo, hi = b / n_bins, (b + 1) / n_bins
        if not idx:
            bins.append({"lo": lo, "hi": hi, "count": 0})
            continue
        acc = sum(correct[i] for i in idx) / len(idx)
        mean_conf = sum(confidences[i] for i in idx) / len(idx)
        ece += len(idx) / n * abs(acc - mean_conf)
        bins.append({"lo": lo, "hi": hi, "count": len(idx), "accuracy": acc, "confidence": mean_conf})
    return ece, bins


def judge_entities(
    example: Example, spans: Sequence[Tuple[int, int, str]]
) -> List[Optional[bool]]:
    """Whether each predicted entity is correct, as spaCy's NER scorer (`ents_f`) judges
    it: None (neither right nor wrong) if the reference has no entity annotation, or the
    span does not align to it, or a gold token under it has no annotation (missing);
    else whether a gold entity has the same aligned tokens and label. Each gold entity
    is matched once, by the first span (in the order given) that aligns to it, as the
    scorer does: give all of a doc's entities in one call, in document order.

    example (Example): The example; `spans` are on the tokens of `example.predicted`.
    spans (Sequence[Tuple[int, int, str]]): (start, end, label) of each predicted entity.
    RETURNS (List[Optional[bool]]): One flag per span.
    """
    ref = example.reference
    if not spans:
        return []
    if not ref.has_annotation("ENT_IOB"):
        return [None] * len(spans)
    golds = {(e.start, e.end, e.label_) for e in ref.ents}
    x2y = example.alignment.x2y
    out: List[Optional[bool]] = []
    for start, end, label in spans:
        indices = x2y[start:end]
        if not len(indices):
            out.append(None)
            continue
        first, last = int(indices[0]), int(indices[-1]) + 1
        if any(ref[i].ent_iob == 0 for i in range(first, last)):
            out.append(None)
        elif (first, last, label) in golds:
            golds.remove((first, last, label))  # one prediction per gold entity
            out.append(True)
        else:
            out.append(False)
    return out


def count_gold_entities(examples: Iterable[Example]) -> int:
    """The number of gold entities spaCy's NER scorer counts (annotated references only)."""
    return sum(len(eg.reference.ents) for eg in examples if eg.reference.has_annotation("ENT_IOB"))


def entity_confidences(
    nlp: Language, gold_docs: Iterable[Doc], component: str = "bilstm_attn_crf", batch_size: int = 256
) -> Tuple[List[float], List[bool]]:
    """Run the pipeline on the gold tokens of each doc and pair each predicted entity's
    confidence with whether it is correct (same tokens and label as a gold entity).
    Entities the NER scorer would not judge (`judge_entities`: e.g. on a doc without
    entity annotation) are left out.

    RETURNS (Tuple[List[float], List[bool]]): Confidences and correctness flags.
    """
    key = getattr(nlp.get_pipe(component), "spans_key", None)
    if key is None:
        raise ValueError(Errors.BCE070.format(name=component))
    gold_docs = list(gold_docs)
    inputs = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d])
              for d in gold_docs]
    confidences: List[float] = []
    correct: List[bool] = []
    for gold, doc in zip(gold_docs, nlp.pipe(inputs, batch_size=batch_size)):
        group = doc.spans[key]
        flags = judge_entities(Example(doc, gold), [(s.start, s.end, s.label_) for s in group])
        for flag, score in zip(flags, group.attrs["scores"]):
            if flag is not None:
                confidences.append(float(score))
                correct.append(flag)
    return confidences, correct

"""The ``bilstm_attn_crf`` pipeline component: a BiLSTM + self-attention + CRF recognizer."""

import contextlib
import copy
import hashlib
import numbers
import os
import warnings
from itertools import islice
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
    cast,
)

import numpy
import srsly
import torch
from spacy import util
from spacy.attrs import ENT_IOB, ENT_TYPE, IDX, IS_SPACE, LENGTH, SENT_START
from spacy.errors import Errors as SpacyErrors
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.pipeline.ner import ner_score
from spacy.pipeline.tok2vec import Tok2VecListener
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, PyTorchShim, set_dropout_rate, xp2torch
from thinc.types import Floats2d

from .architectures import (
    build_head,
    get_crf,
    get_torch_device,
    length_mask,
    pad_to_torch,
    predict_emissions,
    set_tag_scheme,
    unpad_from_torch,
)
from .calibration import count_gold_entities, judge_entities
from .char_embed import build_character_embed_v1  # noqa: F401 (registers the default model's character layer)
from .crf import CRF
from .errors import Errors, Warnings
from .tag_scheme import SCHEMES, TagScheme, UnknownLabelError, validate_label
from .word_embed import clear_word_counts, set_word_counts


def _use_one_torch_thread() -> None:
    """Give a forked child process (e.g. a worker of `nlp.pipe(texts, n_process=2)`,
    which forks on Linux) a single torch thread. The parent's OpenMP thread pool does
    not survive fork: a child that enters a parallel region with it can hang forever,
    and N workers x N threads would oversubscribe the CPUs anyway.
    """
    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):  # POSIX; spawned workers start with a fresh pool
    os.register_at_fork(after_in_child=_use_one_torch_thread)

default_model_config = """
[model]
@architectures = "spacy-bilstm-crf.BiLSTMAttnCRF.v1"
hidden_size = 64
num_layers = 2
dropout = 0.3
input_dropout = 0.1
attention_heads = 4
attention_dropout = 0.1
window = 256
window_overlap = 64
nO = null
variational_dropout = false

[model.tok2vec]
@layers = "concatenate.v1"

[model.tok2vec.*.words]
@architectures = "spacy-bilstm-crf.TokenDropout.v1"
rate = 0.1

[model.tok2vec.*.words.layer]
@architectures = "spacy-bilstm-crf.MultiHashEmbed.v1"
width = 96
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
rows = [5000, 1000, 2500, 2500]
include_static_vectors = false
unknown_attr = "NORM"
unknown_alpha = 0.25

[model.tok2vec.*.chars]
@architectures = "spacy-bilstm-crf.CharacterEmbed.v1"
width = 32
rows = 2000
nM = 16
nC = 8
include_static_vectors = false
feature = "ORTH"
sum_repeated_bytes = false
unknown_alpha = 0.25
"""
DEFAULT_MODEL = Config().from_str(default_model_config)["model"]

DEFAULT_SPANS_KEY = "crf_ents"
# fit_threshold's default candidates: 0.0 to 0.95 in steps of 0.05
DEFAULT_THRESHOLDS: Tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(20))


def _is_positive_number(value: Any) -> bool:
    """A finite number > 0 (not a bool, not NaN)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and 0.0 < value < float("inf")
    )


class _ScaledOptimizer:
    """Calls a thinc optimizer with its learning rate multiplied by `scale` (thinc's
    `lr_scale`); everything else (moments, schedules, averages) is the wrapped one's."""

    def __init__(self, optimizer: Optimizer, scale: float) -> None:
        self._optimizer = optimizer
        self._scale = scale

    def __call__(self, key: Any, weights: Any, gradient: Any, *, lr_scale: float = 1.0) -> Any:
        return self._optimizer(key, weights, gradient, lr_scale=lr_scale * self._scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._optimizer, name)

# Entity predictions of one doc: (start, end, label) and the confidence of each
Prediction = Tuple[List[Tuple[int, int, str]], List[float]]


@Language.factory(
    "bilstm_attn_crf",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans"],
    default_config={
        "model": DEFAULT_MODEL,
        "tag_scheme": "BILUO",
        "spans_key": DEFAULT_SPANS_KEY,
        "threshold": 0.0,
        "confidence_temperature": 1.0,
        "max_batch_tokens": 8192,
        "learn_rate_scale": 1.0,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={
        "ents_f": 1.0,
        "ents_p": 0.0,
        "ents_r": 0.0,
        "ents_per_type": None,
    },
)
def make_bilstm_attn_crf(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    tag_scheme: str,
    spans_key: Optional[str],
    threshold: float,
    confidence_temperature: float,
    max_batch_tokens: int,
    learn_rate_scale: float,
    scorer: Optional[Callable],
) -> "BiLSTMAttnCRFRecognizer":
    """Create a BiLSTM + self-attention + CRF entity recognizer.

    model (Model[List[Doc], List[Floats2d]]): Docs -> per-token emission scores; its torch
        module holds the CRF.
    tag_scheme (str): "BILUO" or "BIO".
    spans_key (Optional[str]): Key in `doc.spans` for the predicted entities with their
        confidences in `attrs["scores"]`; None stores no confidences.
    threshold (float): Predicted entities with a confidence below this are dropped.
    confidence_temperature (float): The CRF's scores are divided by this before the
        confidences are computed (temperature scaling; decoding is unaffected). Fit it on
        held-out data with `fit_confidence_temperature`.
    max_batch_tokens (int): Padded tokens per length-sorted sub-batch at prediction.
    learn_rate_scale (float): Multiplies the optimizer's learning rate for this
        component's own weights (BiLSTM, attention, CRF and an embedded tok2vec), not for
        an upstream tok2vec or transformer that it listens to. With a fine-tuned
        transformer, whose rate must be small (e.g. 5e-5), a scale of ~20 lets the
        randomly initialized layers learn at the usual ~1e-3.
    scorer (Optional[Callable]): The scoring method.
    """
    return BiLSTMAttnCRFRecognizer(
        nlp.vocab,
        model,
        name,
        tag_scheme=tag_scheme,
        spans_key=spans_key,
        threshold=threshold,
        confidence_temperature=confidence_temperature,
        max_batch_tokens=max_batch_tokens,
        learn_rate_scale=learn_rate_scale,
        scorer=scorer,
    )


class BiLSTMAttnCRFRecognizer(TrainablePipe):
    """A named-entity recognizer: tok2vec -> BiLSTM -> self-attention -> CRF -> doc.ents.

    Entities already on a doc (e.g. from an upstream `entity_ruler`) are kept: the CRF
    decoder is clamped so that predictions fit around them. Each predicted entity's exact
    posterior probability is stored in `doc.spans[spans_key].attrs["scores"]`.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats2d]],
        name: str = "bilstm_attn_crf",
        *,
        tag_scheme: str = "BILUO",
        spans_key: Optional[str] = DEFAULT_SPANS_KEY,
        threshold: float = 0.0,
        confidence_temperature: float = 1.0,
        max_batch_tokens: int = 8192,
        learn_rate_scale: float = 1.0,
        scorer: Optional[Callable] = ner_score,
    ) -> None:
        if not isinstance(tag_scheme, str) or tag_scheme.upper() not in SCHEMES:
            raise ValueError(Errors.BCE001.format(scheme=tag_scheme, options=list(SCHEMES)))
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(Errors.BCE025.format(
                value=threshold, name="threshold", detail="expected a number in [0, 1]"))
        if not _is_positive_number(confidence_temperature):
            raise ValueError(Errors.BCE025.format(
                value=confidence_temperature, name="confidence_temperature",
                detail="expected a positive number (1.0: no scaling)"))
        if not _is_positive_number(learn_rate_scale):
            raise ValueError(Errors.BCE025.format(
                value=learn_rate_scale, name="learn_rate_scale",
                detail="expected a positive number (1.0: the optimizer's own rate)"))
        if not isinstance(max_batch_tokens, int) or max_batch_tokens < 1:
            raise ValueError(Errors.BCE025.format(
                value=max_batch_tokens, name="max_batch_tokens", detail="expected an int >= 1"))
        if spans_key is not None and (not isinstance(spans_key, str) or not spans_key):
            raise ValueError(Errors.BCE025.format(
                value=spans_key, name="spans_key", detail="expected a non-empty string or null"))
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {
            "labels": [],
            "tag_scheme": tag_scheme.upper(),
            "spans_key": spans_key,
            "threshold": float(threshold),
            "confidence_temperature": float(confidence_temperature),
            "max_batch_tokens": max_batch_tokens,
            "learn_rate_scale": float(learn_rate_scale),
            "nI": None,
        }
        self._scheme: Optional[TagScheme] = None

    # ------------------------------------------------------------------ labels
    @property
    def labels(self) -> Tuple[str, ...]:
        """RETURNS (Tuple[str]): The entity labels."""
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        """RETURNS (List[str]): The labels, for `spacy init labels`."""
        return list(self.labels)

    @property
    def tag_scheme(self) -> TagScheme:
        if self._scheme is None or self._scheme.labels != self.labels:
            self._scheme = TagScheme(self.cfg["tag_scheme"], self.labels)
        return self._scheme

    @property
    def is_initialized(self) -> bool:
        return bool(self.model.get_ref("head").layers)

    def add_label(self, label: str) -> int:
        """Add an entity label. Only possible before the component is initialized.

        label (str): The label to add.
        RETURNS (int): 0 if the label is already present, otherwise 1.
        """
        validate_label(label)
        if label in self.labels:
            return 0
        if self.is_initialized:
            raise ValueError(Errors.BCE020.format(label=label, name=self.name, labels=list(self.labels)))
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    @property
    def spans_key(self) -> Optional[str]:
        return self.cfg["spans_key"]

    # ------------------------------------------------------------------ initialize
    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> None:
        """Initialize the component: collect labels and build the model.

        get_examples (Callable[[], Iterable[Example]]): Function that returns the
            training examples. Labels and an unknown-word row's word counts are read from
            all of them, the model's sizes from a sample; without entity annotation (e.g.
            `nlp.initialize()` with labels added by hand) the unknown-word rows stay off.
        nlp (Language): The current nlp object the component is part of.
        labels (Optional[Sequence[str]]): The labels to use (e.g. from `spacy init labels`);
            if not given, they are read from the examples.
        """
        validate_get_examples(get_examples, "BiLSTMAttnCRFRecognizer.initialize")
        # check the sample and the labels before touching a trained model: a failed
        # re-initialize (e.g. on an empty generator) must not leave it without weights.
        # The sample that sizes the model: the first 10 docs with tokens.
        doc_sample = list(islice((eg.predicted for eg in get_examples() if len(eg.predicted)), 10))
        if not doc_sample:
            raise ValueError(SpacyErrors.E923.format(name=self.name) + " " + Errors.BCE037.format(name=self.name))
        if labels is not None:
            new_labels = list(labels)
        else:
            found = set(self.labels)
            for eg in get_examples():
                for ent in eg.reference.ents:
                    found.add(ent.label_)
            new_labels = sorted(found)
        for label in new_labels:
            validate_label(label)
        if not new_labels:
            raise ValueError(Errors.BCE021.format(name=self.name))
        if self.is_initialized:
            # re-initializing: start from a fresh model with the (new) label set
            self.model.get_ref("head").layers.clear()
        self.cfg["labels"] = []
        for label in new_labels:
            self.add_label(label)
        # labels sorted for a model that does not depend on data order
        self.cfg["labels"] = sorted(self.labels)
        set_tag_scheme(self.model, self.tag_scheme)
        self.model.initialize(X=doc_sample)
        self.cfg["nI"] = self.model.get_ref("head").get_dim("nI")
        # an unknown-word row (spacy-bilstm-crf.MultiHashEmbed.v1) learns which words the
        # training data has from all of it, not from the sample; in a shared tok2vec that
        # this component listens to as well. Only examples with entity annotation count:
        # `nlp.initialize()` without data passes a dummy doc ("x y z"), which would make
        # every real word unknown.
        models = [self.model, *self._upstream_models(nlp)]
        if any(eg.reference.has_annotation("ENT_IOB") for eg in get_examples()):
            set_word_counts(
                models,
                lambda: (eg.predicted for eg in get_examples() if eg.reference.has_annotation("ENT_IOB")),
            )
        elif clear_word_counts(models):
            warnings.warn(Warnings.BCW002.format(name=self.name), stacklevel=2)

    def _upstream_models(self, nlp: Optional[Language]) -> List[Model]:
        """The models of the components this one listens to (a shared tok2vec), if any."""
        if nlp is None:
            return []
        models = (
            getattr(proc, "model", None)
            for _, proc in nlp.pipeline
            if proc is not self and self.name in getattr(proc, "listening_components", [])
        )
        return [model for model in models if isinstance(model, Model)]

    def _initialize_before_deserializing(self) -> None:
        """Build the torch module from cfg so that its weights can be loaded."""
        head = self.model.get_ref("head")
        # not initialized when saved (e.g. only labels added): nothing to build
        if head.layers or not self.labels or self.cfg.get("nI") is None:
            return
        set_tag_scheme(self.model, self.tag_scheme)
        build_head(head, int(self.cfg["nI"]))

    def _require_initialized(self) -> None:
        if not self.is_initialized:
            raise ValueError(SpacyErrors.E109.format(name=self.name))

    # ------------------------------------------------------------------ prediction
    def predict(self, docs: Iterable[Doc]) -> List[Prediction]:
        """Find entities in a batch of docs, without modifying them.

        Docs are sorted by length and run in sub-batches of at most `max_batch_tokens`
        padded tokens. Entities already on a doc clamp the decoder.

        docs (Iterable[Doc]): The documents to predict.
        RETURNS (List[Tuple[List[Tuple[int, int, str]], List[float]]]): For each doc, the
            predicted (start, end, label) spans and their confidences.
        """
        docs = list(docs)
        self._require_initialized()
        results: List[Optional[Prediction]] = [None] * len(docs)
        order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
        for i in order:
            if len(docs[i]) == 0:
                results[i] = ([], [])
        temperature = float(self.cfg.get("confidence_temperature", 1.0))
        for idx in self._sorted_sub_batches(docs):
            decoded = self._decode_sorted([docs[i] for i in idx])
            for i, pred in zip(idx, self._with_confidences(decoded, temperature)):
                results[i] = pred
        return [r if r is not None else ([], []) for r in results]

    def _sorted_sub_batches(self, docs: List[Doc]) -> Iterable[List[int]]:
        """Yield the indices of the non-empty docs, sorted by length, in sub-batches of at
        most `max_batch_tokens` padded tokens."""
        order = sorted((i for i in range(len(docs)) if len(docs[i]) > 0), key=lambda i: len(docs[i]))
        budget = int(self.cfg["max_batch_tokens"])
        start = 0
        while start < len(order):
            end = start + 1
            # sorted ascending, so the padded size is (number of docs) * (last doc's length)
            while end < len(order) and (end - start + 1) * len(docs[order[end]]) <= budget:
                end += 1
            yield order[start:end]
            start = end

    def _decode_sorted(self, docs: List[Doc]) -> "_Decoded":
        """Run the model and the Viterbi decoder on one sub-batch of non-empty docs."""
        scheme = self.tag_scheme
        E, lengths = predict_emissions(self.model, docs)
        crf = get_crf(self.model)
        device = E.device
        with torch.no_grad():
            self._check_finite(docs, E)
            # shape: (batch_size, max_len)
            mask = length_mask(lengths, E.shape[1], device)
            presets = [_preset_spans(doc) for doc in docs]
            tag_mask = self._preset_tag_mask(docs, presets, E.shape[1])
            if tag_mask is not None:
                tag_mask = tag_mask.to(device)
            paths = crf.decode(E, mask=mask, tag_mask=tag_mask)
            all_spans: List[Tuple[int, int, List[int], List[int]]] = []
            per_doc_spans: List[List[Tuple[int, int, str]]] = []
            for b, path in enumerate(paths):
                preset_set = set(presets[b])  # a set: long docs can have many pre-set ents
                spans = [s for s in scheme.tags_to_spans(path) if s not in preset_set]
                per_doc_spans.append(spans)
                for start, end, label in spans:
                    all_spans.append(
                        (b, start, scheme.span_tags(start, end, label), scheme.continuation_tags(label))
                    )
        return _Decoded(E, mask, tag_mask, per_doc_spans, all_spans)

    def _with_confidences(self, decoded: "_Decoded", temperature: float) -> List[Prediction]:
        """Attach to each decoded entity its exact posterior probability, computed from
        the CRF's scores divided by `temperature`."""
        scores: List[float] = []
        if decoded.all_spans:
            crf = get_crf(self.model)
            E = decoded.emissions
            if temperature != 1.0:
                crf = _scaled_crf(crf, 1.0 / temperature)
                E = E / temperature
            with torch.no_grad():
                log_probs = crf.span_log_probs(
                    E, decoded.all_spans, mask=decoded.mask, tag_mask=decoded.tag_mask
                )
            scores = log_probs.exp().clamp(0.0, 1.0).cpu().tolist()
        preds: List[Prediction] = []
        k = 0
        for spans in decoded.per_doc_spans:
            preds.append((spans, scores[k : k + len(spans)]))
            k += len(spans)
        return preds

    def fit_confidence_temperature(
        self,
        examples: Iterable[Example],
        temperatures: Optional[Sequence[float]] = None,
        *,
        nlp: Optional[Language] = None,
    ) -> float:
        """Fit `confidence_temperature` on held-out examples (not the training data) and
        set it in the component's cfg, so that it is saved with the pipeline (and, given
        `nlp`, in the pipeline's config).

        The model predicts entities on each example's `predicted` doc; each prediction is
        judged as spaCy's NER scorer judges it: correct if its aligned tokens and label
        match a gold entity, left out where the gold data has no entity annotation. The chosen
        temperature minimizes the log loss of the confidences against correctness.

        examples (Iterable[Example]): Held-out examples, e.g. the dev set.
        temperatures (Optional[Sequence[float]]): The candidates (default 0.5 to 4).
        nlp (Optional[Language]): The pipeline this component is part of. If given, fresh
            docs with the examples' tokens are first processed by the pipeline's earlier
            components (required when the model listens to a shared tok2vec or a
            transformer).
        RETURNS (float): The chosen temperature.
        """
        if temperatures is None:
            temperatures = [round(0.5 + 0.1 * i, 2) for i in range(36)]
        batches, _, _ = self._held_out_predictions(
            examples, "BiLSTMAttnCRFRecognizer.fit_confidence_temperature", "temperature", nlp
        )
        best_t, best_loss = 1.0, float("inf")
        for t in temperatures:
            if not t > 0:
                raise ValueError(Errors.BCE025.format(
                    value=t, name="temperatures", detail="each must be positive"))
            total, n = 0.0, 0
            for decoded, correct in batches:
                for (_, scores), c in zip(self._flat(decoded, t), correct):
                    if c is None:
                        continue
                    p = min(max(scores, 1e-7), 1 - 1e-7)
                    total -= numpy.log(p) if c else numpy.log(1 - p)
                    n += 1
            if n and total / n < best_loss:
                best_t, best_loss = float(t), total / n
        self._set_fitted("confidence_temperature", best_t, nlp)
        return best_t

    def fit_threshold(
        self,
        examples: Iterable[Example],
        thresholds: Optional[Sequence[float]] = None,
        *,
        nlp: Optional[Language] = None,
    ) -> float:
        """Fit `threshold` on held-out examples (not the training data) and set it in the
        component's cfg, so that it is saved with the pipeline (and, given `nlp`, in the
        pipeline's config).

        The model predicts entities on each example's `predicted` doc, with their
        confidences at the current `confidence_temperature` (fit the temperature first);
        the chosen threshold maximizes entity-level F1 (exact start, end and label)
        against the examples' gold entities. Of equally good thresholds, the lowest wins.
        The same search as `spacy find-threshold <model> <data> bilstm_attn_crf threshold
        ents_f`, with one prediction pass instead of one per candidate.

        examples (Iterable[Example]): Held-out examples, e.g. the dev set.
        thresholds (Optional[Sequence[float]]): The candidates (default 0.0 to 0.95 in
            steps of 0.05).
        nlp (Optional[Language]): The pipeline this component is part of, as for
            `fit_confidence_temperature` (required when the model listens upstream).
        RETURNS (float): The chosen threshold.
        """
        if thresholds is None:
            thresholds = DEFAULT_THRESHOLDS
        if not len(thresholds):
            raise ValueError(Errors.BCE025.format(
                value=thresholds, name="thresholds", detail="give at least one candidate"))
        for t in thresholds:
            if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0.0 <= t <= 1.0:
                raise ValueError(Errors.BCE025.format(
                    value=t, name="thresholds", detail="each must be a number in [0, 1]"))
        batches, n_gold, preset = self._held_out_predictions(
            examples, "BiLSTMAttnCRFRecognizer.fit_threshold", "threshold", nlp
        )
        temperature = self.cfg["confidence_temperature"]
        scored = [
            (score, c)
            for decoded, correct in batches
            for (_, score), c in zip(self._flat(decoded, temperature), correct)
            if c is not None
        ]
        best_t, best_f = 0.0, -1.0
        for t in sorted(float(t) for t in thresholds):
            # entities already on the docs (e.g. from an upstream entity_ruler) are kept
            # whatever the threshold, and count as predictions like in `nlp.evaluate`
            kept = [c for score, c in scored if score >= t] + preset
            tp = sum(kept)
            f = 2 * tp / (len(kept) + n_gold) if kept or n_gold else 0.0
            if f > best_f:
                best_t, best_f = t, f
        self._set_fitted("threshold", best_t, nlp)
        return best_t

    def _held_out_predictions(
        self,
        examples: Iterable[Example],
        method: str,
        fitted: str,
        nlp: Optional[Language] = None,
    ) -> Tuple[List[Tuple["_Decoded", List[Optional[bool]]]], int, List[bool]]:
        """Decode the examples' predicted docs (ignoring `threshold`) and judge each
        predicted entity as spaCy's NER scorer does (`calibration.judge_entities`:
        correct if its aligned tokens and label match a gold entity; neither right nor
        wrong where the gold data has no entity annotation). With `nlp`, fresh docs with
        the same tokens are first run through the components before this one.

        RETURNS: per sorted sub-batch the decoded batch and the flags of its entities (in
            `_flat` order; None if not judged); the number of gold entities the scorer
            counts; and the flags of the judged entities that were on the docs before
            decoding.
        """
        self._require_initialized()
        examples = list(examples)
        validate_examples(examples, method)
        docs = [eg.predicted for eg in examples]
        if nlp is not None:
            docs = self._run_upstream(nlp, docs, method)
        else:
            listener = self._listener_name()
            if listener is not None:
                raise ValueError(Errors.BCE028.format(method=method, name=self.name, listener=listener))
        decoded_batches = [
            (idx, self._decode_sorted([docs[i] for i in idx])) for idx in self._sorted_sub_batches(docs)
        ]
        predicted: Dict[int, List[Tuple[int, int, str]]] = {
            i: spans for idx, decoded in decoded_batches for i, spans in zip(idx, decoded.per_doc_spans)
        }
        # judged as spaCy's NER scorer judges (None: neither right nor wrong), all of a
        # doc's entities (pre-set and decoded) together in document order, so that each
        # gold entity is matched once
        n_gold = count_gold_entities(examples)
        preset: List[bool] = []
        flags: Dict[int, List[Optional[bool]]] = {}
        for i, (doc, eg) in enumerate(zip(docs, examples)):
            kept, found = _preset_spans(doc), predicted.get(i, [])
            ordered = sorted(kept + found)
            judged = dict(zip(ordered, judge_entities(eg, ordered)))
            preset.extend(flag for flag in (judged[s] for s in kept) if flag is not None)
            flags[i] = [judged[s] for s in found]
        batches = [
            (decoded, [flag for i in idx for flag in flags[i]]) for idx, decoded in decoded_batches
        ]
        if not any(c is not None for _, correct in batches for c in correct):
            detail = f"the model predicts no entity on their annotated tokens, so no {fitted} can be fitted"
            if any(doc.ents for doc in docs):
                # e.g. Example(nlp(text), reference): entities already on a doc are kept
                detail += (
                    ". Their predicted docs already have entities, which are kept as they are "
                    "and not predicted again (e.g. examples made from `nlp(text)`): make the "
                    "examples from unprocessed docs (`nlp.make_doc(text)`) or pass `nlp=nlp`"
                )
            raise ValueError(Errors.BCE025.format(value=len(examples), name="examples", detail=detail))
        return batches, n_gold, preset

    def _set_fitted(self, name: str, value: float, nlp: Optional[Language]) -> None:
        """Set a fitted setting in cfg (saved with the weights) and, given `nlp`, in its
        config too, so that the saved `config.cfg` shows the value the component uses."""
        self.cfg[name] = value
        if nlp is not None and self.name in nlp.component_names and nlp.get_pipe(self.name) is self:
            nlp.get_pipe_config(self.name)[name] = value

    def _listener_name(self) -> Optional[str]:
        """RETURNS (Optional[str]): the name of the listener layer (a shared tok2vec's or
        a transformer's) this component's model reads its token vectors from, if any."""
        for node in self.model.walk():
            if _is_listener(node):
                return node.name
        return None

    def _run_upstream(self, nlp: Language, docs: List[Doc], method: str) -> List[Doc]:
        """Fresh docs with the tokens of `docs`, processed by the components of `nlp`
        before this one (as `nlp` would process their text)."""
        components = [proc for _, proc in nlp.pipeline]
        if not any(proc is self for proc in components):
            raise ValueError(Errors.BCE029.format(method=method, name=self.name, pipes=nlp.pipe_names))
        docs = [
            Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
            for doc in docs
        ]
        for proc in components:
            if proc is self:
                break
            if hasattr(proc, "pipe"):
                docs = list(proc.pipe(docs))
            else:
                docs = [proc(doc) for doc in docs]
        return docs

    def _flat(self, decoded: "_Decoded", temperature: float) -> List[Tuple[Any, float]]:
        preds = self._with_confidences(decoded, temperature)
        return [(span, score) for spans, scores in preds for span, score in zip(spans, scores)]

    def _check_finite(self, docs: List[Doc], E: torch.Tensor) -> None:
        """Raise BCE050 if the CRF's parameters or the emission scores of a padded
        batch are NaN or infinite (decoding them would silently give no entities).
        """
        for name, param in get_crf(self.model).named_parameters():
            if not bool(torch.isfinite(param).all()):
                raise ValueError(Errors.BCE050.format(
                    name=self.name, what=f"CRF parameter {name!r}", text=docs[0].text[:50]))
        # shape: (batch_size,)
        bad = ~torch.isfinite(E).flatten(1).all(dim=1)
        if bool(bad.any()):
            b = int(bad.nonzero()[0])
            raise ValueError(Errors.BCE050.format(
                name=self.name, what="emission scores", text=docs[b].text[:50]))

    def _preset_tag_mask(
        self, docs: List[Doc], presets: List[List[Tuple[int, int, str]]], max_len: int
    ) -> Optional[torch.Tensor]:
        """The CRF tag mask that decodes within the rules of spaCy's `ner` (None where
        none applies): pre-set entities are kept, blocked tokens stay outside, no entity
        begins on a whitespace token or crosses a set sentence start.
        """
        rules = [_decode_rules(doc) for doc in docs]
        if not any(presets) and not any(r is not None for r in rules):
            return None
        # shape: (batch_size, max_len, num_tags)
        out = numpy.ones((len(docs), max_len, self.tag_scheme.num_tags), dtype=bool)
        for b, (doc, spans, rule) in enumerate(zip(docs, presets, rules)):
            if spans or rule is not None:
                outside, no_begin, no_inside = rule if rule is not None else (None, None, None)
                out[b, : len(doc)] = self.tag_scheme.clamp_tag_mask(
                    len(doc), spans, outside=outside, no_begin=no_begin, no_inside=no_inside
                )
        return torch.from_numpy(out)

    def set_annotations(self, docs: Iterable[Doc], predictions: List[Prediction]) -> None:
        """Write the predicted entities to `doc.ents` (keeping pre-set entities) and, if
        `spans_key` is set, to `doc.spans[spans_key]` with their confidences.

        docs (Iterable[Doc]): The documents to modify.
        predictions: The output of `predict`.
        """
        threshold = self.cfg["threshold"]
        key = self.cfg["spans_key"]
        for doc, (spans, scores) in zip(docs, predictions):
            kept: List[Span] = []
            kept_scores: List[float] = []
            for (start, end, label), score in zip(spans, scores):
                if score < threshold:
                    continue
                kept.append(Span(doc, start, end, label=label))
                kept_scores.append(score)
            preset = list(doc.ents)
            # blocked tokens stay blocked (the decoder kept them outside)
            blocked = [doc[i : i + 1] for i in _blocked_tokens(doc)] if len(doc) else []
            doc.set_ents(preset + kept, blocked=blocked, default="outside")
            if key is not None:
                # a pre-set entity that this group already scored (e.g. the doc was run
                # through the component before) keeps its confidence
                carried = self._carried_scores(doc, key, preset)
                spans_scores = sorted(
                    list(zip(kept, kept_scores)) + carried, key=lambda x: (x[0].start, x[0].end)
                )
                group = SpanGroup(doc, name=key, spans=[span for span, _ in spans_scores])
                group.attrs["scores"] = numpy.asarray(
                    [score for _, score in spans_scores], dtype="float32"
                )
                doc.spans[key] = group

    @staticmethod
    def _carried_scores(doc: Doc, key: str, preset: List[Span]) -> List[Tuple[Span, float]]:
        """The spans of the doc's existing group `key` that are pre-set entities, with
        their scores."""
        if key not in doc.spans or not preset:
            return []
        old = doc.spans[key]
        old_scores = old.attrs.get("scores")
        if old_scores is None or len(old_scores) != len(old):
            return []
        ents = {(e.start, e.end, e.label) for e in preset}
        return [
            (Span(doc, span.start, span.end, label=span.label), float(score))
            for span, score in zip(old, old_scores)
            if (span.start, span.end, span.label) in ents
        ]

    # ------------------------------------------------------------------ training
    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Union[Optimizer, None, bool] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples: CRF negative log-likelihood, backpropagated
        through the BiLSTM and attention into the tok2vec.

        examples (Iterable[Example]): A batch of examples.
        drop (float): The dropout rate for the thinc layers (the torch module uses the
            dropout rates of its config).
        sgd (Optional[Optimizer]): An optimizer; None or False: no step (gradients only).
        losses (Optional[Dict[str, float]]): Accumulated losses, updated in place.
        RETURNS (Dict[str, float]): The updated losses.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BiLSTMAttnCRFRecognizer.update")
        self._require_initialized()
        docs = [eg.predicted for eg in examples]
        if not any(len(doc) for doc in docs):
            # Handle cases where there are no tokens in any docs.
            return losses
        set_dropout_rate(self.model, drop)
        emissions, backprop = self.model.begin_update(docs)
        loss, d_emissions = self._loss_and_gradient(
            examples, emissions, "BiLSTMAttnCRFRecognizer.update", crf_gradient=True
        )
        backprop(d_emissions)
        if sgd not in (None, False):  # spaCy's convention: False means "no step"
            self.finish_update(cast(Optimizer, sgd))
        losses[self.name] += loss
        return losses

    def get_loss(
        self, examples: Iterable[Example], emissions: List[Floats2d]
    ) -> Tuple[float, List[Floats2d]]:
        """The CRF negative log-likelihood of the gold entities, and its gradient with
        respect to the emissions. Tokens whose gold annotation is missing (or does not
        align) are not treated as "O": the likelihood sums over every allowed tag there.
        No side effects (e.g. for a dev loss): `update` accumulates the gradient of the
        CRF's own parameters.

        examples (Iterable[Example]): The batch of examples.
        emissions (List[Floats2d]): The emission scores of each doc.
        RETURNS (Tuple[float, List[Floats2d]]): The loss and the gradient.
        """
        return self._loss_and_gradient(
            examples, emissions, "BiLSTMAttnCRFRecognizer.get_loss", crf_gradient=False
        )

    def _loss_and_gradient(
        self,
        examples: Iterable[Example],
        emissions: List[Floats2d],
        method: str,
        crf_gradient: bool,
    ) -> Tuple[float, List[Floats2d]]:
        """`get_loss`; with `crf_gradient`, the gradient of the CRF's parameters is also
        accumulated (for `finish_update`)."""
        examples = list(examples)
        validate_examples(examples, method)
        gold = self._gold_tag_mask(examples, emissions)
        crf = get_crf(self.model)
        device = get_torch_device(self.model)
        E, lengths = pad_to_torch(self.model.ops, emissions, device, requires_grad=True)
        # shape: (batch_size, max_len)
        mask = length_mask(lengths, E.shape[1], device)
        with torch.no_grad():
            # shape: (batch_size,); padding is 0, so any NaN / inf is a doc's own
            finite = torch.isfinite(E).flatten(1).all(dim=1)
        if not bool(finite.all()):
            i = int((~finite).nonzero()[0])
            raise ValueError(
                SpacyErrors.E910.format(name=self.name) + " "
                + Errors.BCE027.format(loss=float("nan"), index=i, text=examples[i].reference.text[:50])
            )
        try:
            llh = crf(E, mask=mask, tag_mask=gold.to(device), reduction="none")
        except ValueError as err:
            raise ValueError(f"{err} (in the batch of training examples starting with "
                             f"{examples[0].reference.text[:50]!r})") from err
        n = max(len(examples), 1)
        loss = -llh.sum() / n
        if not torch.isfinite(loss):
            bad = [i for i, v in enumerate(llh.tolist()) if not numpy.isfinite(v)]
            i = bad[0] if bad else 0
            raise ValueError(
                SpacyErrors.E910.format(name=self.name) + " "
                + Errors.BCE027.format(loss=float(loss.detach()), index=i, text=examples[i].reference.text[:50])
            )
        if crf_gradient:
            loss.backward()
            assert E.grad is not None
            grad = E.grad
        else:
            (grad,) = torch.autograd.grad(loss, [E])
        d_emissions = unpad_from_torch(self.model.ops, grad, lengths.tolist())
        return float(loss.item()), d_emissions

    def _gold_tag_mask(self, examples: List[Example], emissions: List[Floats2d]) -> torch.Tensor:
        scheme = self.tag_scheme
        max_len = max((em.shape[0] for em in emissions), default=0)
        # shape: (batch_size, max_len, num_tags)
        out = numpy.ones((len(examples), max_len, scheme.num_tags), dtype=bool)
        for i, eg in enumerate(examples):
            tags = _aligned_ner(eg)
            try:
                out[i, : len(tags)] = scheme.gold_tag_mask(tags)
            except UnknownLabelError as err:
                raise ValueError(Errors.BCE022.format(
                    label=err.label, index=i, text=eg.reference.text[:50],
                    labels=list(self.labels))) from None
        return torch.from_numpy(out)

    def finish_update(self, sgd: Optimizer) -> None:
        """Update this component's weights with the optimizer, its learning rate scaled
        by `learn_rate_scale`. An upstream component (a shared tok2vec or transformer
        the model listens to) is updated by its own `finish_update`, at the optimizer's
        rate.
        """
        scale = float(self.cfg.get("learn_rate_scale", 1.0))
        self.model.finish_update(sgd if scale == 1.0 else cast(Optimizer, _ScaledOptimizer(sgd, scale)))

    def use_params(self, params: Dict[Any, Any]) -> Iterator[None]:
        """Temporarily use the given weights, e.g. the optimizer's parameter averages
        (`[training.optimizer] use_averages = true`): spaCy evaluates and saves the
        pipeline inside this context.

        Thinc's optimizer keys the averages of a PyTorch module's weights by
        `(shim.id, name)`, while `PyTorchShim.use_params` (thinc 8.3) looks for
        `"pytorch_{id}_{name}"` keys, so on its own it would ignore them and
        `use_averages` would silently not apply to the BiLSTM, attention and CRF.
        Here they are applied to the torch module (and restored afterwards) along with
        the thinc layers' averages. Like spaCy's `TrainablePipe.use_params`, this is a
        generator that `Language.use_params` steps through (not a context manager).
        """
        with self.model.use_params(params), self._use_torch_params(params):
            yield

    @contextlib.contextmanager
    def _use_torch_params(self, params: Dict[Any, Any]) -> Iterator[None]:
        # every PyTorchShim of the model: the head's and e.g. a CharCNN in the tok2vec
        shims = [shim for node in self.model.walk() for shim in node.shims if isinstance(shim, PyTorchShim)]
        backup: List[Tuple[torch.Tensor, torch.Tensor]] = []
        with torch.no_grad():
            for shim in shims if params else []:
                for name, param in shim._model.named_parameters():
                    value = params.get((shim.id, name))
                    if value is not None:
                        backup.append((param, param.detach().clone()))
                        param.copy_(xp2torch(value, device=param.device).reshape(param.shape))
        try:
            yield
        finally:
            with torch.no_grad():
                for param, saved in backup:
                    param.copy_(saved)

    # ------------------------------------------------------------------ serialization
    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        self._validate_serialization_attrs()
        model_bytes = self._model_bytes_with_checksum(exclude)
        serialize = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "model": lambda: model_bytes,
        }
        return util.to_bytes(serialize, exclude)

    def from_bytes(
        self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()
    ) -> "BiLSTMAttnCRFRecognizer":
        self._validate_serialization_attrs()
        self.cfg.pop("model_sha256", None)  # only a checksum loaded with these weights counts

        def load_model(b: bytes) -> None:
            self._load_model_bytes(b, "<bytes>")

        deserialize: Dict[str, Callable[[Any], Any]] = {
            "cfg": lambda b: self.cfg.update(srsly.json_loads(b)),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "model": load_model,
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        self._validate_serialization_attrs()
        model_bytes = self._model_bytes_with_checksum(exclude)
        serialize = {
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "vocab": lambda p: self.vocab.to_disk(p, exclude=exclude),
            "model": lambda p: Path(p).write_bytes(model_bytes),
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()
    ) -> "BiLSTMAttnCRFRecognizer":
        self._validate_serialization_attrs()
        self.cfg.pop("model_sha256", None)  # only a checksum loaded with these weights counts

        def load_model(p: Path) -> None:
            try:
                with open(p, "rb") as mfile:
                    data = mfile.read()
            except OSError as err:
                raise ValueError(Errors.BCE023.format(
                    path=p, error=f"{type(err).__name__}: {err.strerror}")) from None
            self._load_model_bytes(data, str(p))

        deserialize: Dict[str, Callable[[Any], Any]] = {
            "cfg": lambda p: self.cfg.update(srsly.read_json(p)),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "model": load_model,
        }
        util.from_disk(path, deserialize, exclude)
        return self

    def _model_bytes_with_checksum(self, exclude: Iterable[str]) -> bytes:
        """Serialize the model and store the SHA-256 of its bytes in cfg, so that loading
        detects a damaged weights file even where it still parses (BCE023).
        """
        if "model" in exclude:
            self.cfg.pop("model_sha256", None)
            return b""
        data = self.model.to_bytes()
        self.cfg["model_sha256"] = hashlib.sha256(data).hexdigest()
        return data

    def _load_model_bytes(self, data: bytes, where: str) -> None:
        expected = self.cfg.get("model_sha256")  # absent in pipelines saved without one
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise ValueError(Errors.BCE023.format(
                path=where, error=f"its SHA-256 checksum differs from the one saved with it in "
                f"the component's cfg ({expected[:16]}...); {len(data)} bytes read"))
        self._initialize_before_deserializing()
        try:
            self.model.from_bytes(data)
        except AttributeError:
            raise ValueError(SpacyErrors.E149) from None
        except (RuntimeError, ValueError) as err:
            msg = str(err)
            # torch's load_state_dict (missing/unexpected keys, size mismatches) and thinc's
            # dimension checks: the cfg (labels, nI) does not fit the weights
            if "loading state_dict" not in msg and "Attempt to change dimension" not in msg:
                # e.g. torch's "PytorchStreamReader failed reading zip archive"
                raise ValueError(Errors.BCE023.format(
                    path=where, error=f"{type(err).__name__}: {msg.splitlines()[0] if msg else ''}"
                )) from None
            detail = " ".join(line.strip() for line in msg.split("\n")[:4])
            raise ValueError(Errors.BCE024.format(path=where, detail=detail, labels=list(self.labels))) from None
        except Exception as err:  # truncated / corrupted msgpack or torch payload
            raise ValueError(Errors.BCE023.format(path=where, error=f"{type(err).__name__}: {err}")) from None


class _Decoded(NamedTuple):
    """One decoded sub-batch: what the confidences are computed from."""

    emissions: torch.Tensor
    mask: torch.Tensor
    tag_mask: Optional[torch.Tensor]
    per_doc_spans: List[List[Tuple[int, int, str]]]
    all_spans: List[Tuple[int, int, List[int], List[int]]]


def _scaled_crf(crf: CRF, factor: float) -> CRF:
    """A copy of `crf` with its transition scores multiplied by `factor`."""
    scaled = copy.deepcopy(crf)
    with torch.no_grad():
        for param in scaled.parameters():
            param.mul_(factor)
    return scaled


def _is_listener(node: Model) -> bool:
    """Whether a layer reads its token vectors from an upstream component: spaCy's
    Tok2VecListener, spacy-transformers' TransformerListener, curated-transformers'
    listeners (marked by an attr, and not leaves), or another leaf layer named so. After
    `nlp.replace_listeners` none is left, though a combinator's name may still say
    "listener"."""
    if isinstance(node, Tok2VecListener) or "_TRANSFORMER_LISTENER" in node.attrs:
        return True
    if type(node).__name__ == "TransformerListener":
        return True
    return not node.layers and "listener" in node.name


def _preset_spans(doc: Doc) -> List[Tuple[int, int, str]]:
    return [(ent.start, ent.end, ent.label_) for ent in doc.ents]


_RULE_ATTRS = [IS_SPACE, SENT_START, ENT_IOB, ENT_TYPE]
_BOUNDARY_ATTRS = [IDX, LENGTH, IS_SPACE, ENT_IOB]


def _aligned_ner(eg: Example) -> Sequence[Optional[str]]:
    """``eg.get_aligned_ner()``, the gold BILUO tags on the predicted tokens, with a fast
    path for the usual case in training: predicted and reference docs with the same
    tokens (e.g. a corpus of gold tokens), where no alignment is needed. spaCy's general
    alignment creates Python objects for every token several times over, which was about
    a sixth of a training step under a profiler (about 4 % timed). The tags are the same
    (tested against it); where spaCy's alignment raises E084 because the predicted doc's
    vocab lacks a reference label, this returns the tags.
    """
    x, y = eg.predicted, eg.reference
    if not y.has_annotation("ENT_IOB"):
        return [None] * len(x)
    if len(x) != len(y) or x.text != y.text:
        return eg.get_aligned_ner()
    # shape: (n_tokens, 4)
    xa = x.to_array(_BOUNDARY_ATTRS)
    ya = y.to_array(_BOUNDARY_ATTRS)
    # the same token boundaries (same text, same starts and lengths)
    if not numpy.array_equal(xa[:, :2], ya[:, :2]):
        return eg.get_aligned_ner()
    tags: List[Optional[str]] = [None] * len(x)
    for ent in y.ents:
        label = ent.label_
        if ent.end - ent.start == 1:
            tags[ent.start] = f"U-{label}"
            continue
        tags[ent.start] = f"B-{label}"
        for j in range(ent.start + 1, ent.end - 1):
            tags[j] = f"I-{label}"
        tags[ent.end - 1] = f"L-{label}"
    # tokens outside the entities: "O" where the reference says so (ENT_IOB 2) or where
    # the token is whitespace, otherwise missing (None), as in get_aligned_ner
    outside = ((ya[:, 3] == 2) | (xa[:, 2] != 0)).tolist()
    return [tag if tag is not None or not out else "O" for tag, out in zip(tags, outside)]


def _is_blocked(ent_iob: numpy.ndarray, ent_type: numpy.ndarray) -> numpy.ndarray:
    """Per token: set as blocked (`doc.set_ents(blocked=...)`): ENT_IOB "B" without a type."""
    return (ent_iob == 3) & (ent_type == 0)


def _blocked_tokens(doc: Doc) -> List[int]:
    """The indices of the tokens set as blocked."""
    if not doc.has_annotation("ENT_IOB"):  # the common case, and ~8x cheaper
        return []
    # shape: (len(doc), 2)
    arr = doc.to_array([ENT_IOB, ENT_TYPE])
    return numpy.flatnonzero(_is_blocked(arr[:, 0], arr[:, 1])).tolist()


def _decode_rules(
    doc: Doc,
) -> Optional[Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]]:
    """Per token of `doc`: blocked (must stay outside any entity), whitespace (no entity
    may begin there) and a set sentence start other than the first token (no entity may
    go on into it): spaCy `ner`'s rules. None if no token has any of them.
    """
    if len(doc) == 0:
        return None
    # cheap checks first: most docs have no entity or sentence annotation and no
    # whitespace token (to_array on every doc cost ~3 % of inference time)
    if not (doc.has_annotation("ENT_IOB") or doc.has_annotation("SENT_START")
            or any(token.is_space for token in doc)):
        return None
    # shape: (len(doc), 4)
    arr = doc.to_array(_RULE_ATTRS).astype("int64")
    blocked = _is_blocked(arr[:, 2], arr[:, 3])
    space = arr[:, 0] != 0
    sent_start = arr[:, 1] == 1
    sent_start[0] = False
    if not (blocked.any() or space.any() or sent_start.any()):
        return None
    return blocked, space, sent_start


__all__ = ["BiLSTMAttnCRFRecognizer", "make_bilstm_attn_crf", "DEFAULT_MODEL"]

"""A per-component learning-rate scale for any spaCy component: a benchmark control.

spaCy trains every component at the optimizer's one learning rate. Our component has
`learn_rate_scale`, which the transformer configs use (the transformer fine-tunes at 5e-5,
our BiLSTM-CRF and its embeddings learn at 20x that). spaCy `ner` given the same
transformer then learns its randomly initialized layers at 5e-5 and barely learns in a few
hundred steps. This callback gives spaCy `ner` (or any component) the same scale, so that
the comparison with the same transformer differs in the decoder, not in the learning rate:

    [initialize.after_init]
    @callbacks = "spacy-bilstm-crf.bench.LearnRateScale.v1"
    scales = {"ner": 20.0}

Load it with ``spacy train ... --code benchmarks/spacy_code.py``.

How: thinc's `Model` has `__slots__` and spaCy's `EntityRecognizer` is a Cython class, so
neither's `finish_update` can be replaced on the instance. The callback swaps the class of
the component's model for a subclass without new slots whose `finish_update` calls thinc's
with the optimizer's rate scaled (`lr_scale`, as our component's `learn_rate_scale`
does). The saved weights are the component's own and a loaded pipeline is spaCy's plain
one: the saved config.cfg still names the callback in `[initialize.after_init]`, which
only `spacy train` (`init_nlp`) runs, not `spacy.load` or `spacy evaluate`.
"""

from typing import Any, Callable, Dict

from spacy.language import Language
from spacy.util import registry
from thinc.api import Model

from spacy_bilstm_crf.pipeline_component import _ScaledOptimizer

CALLBACK_NAME = "spacy-bilstm-crf.bench.LearnRateScale.v1"
# model.id -> scale, for the models whose class was swapped
_SCALES: Dict[int, float] = {}


class _ScaledModel(Model):
    """A thinc Model whose update scales the optimizer's learning rate by its entry in
    `_SCALES` (a subclass without slots of its own, so that instances can move into it)."""

    __slots__ = ()

    def finish_update(self, optimizer: Any) -> None:
        super().finish_update(_ScaledOptimizer(optimizer, _SCALES[self.id]))


def scale_learn_rate(nlp: Language, name: str, scale: float) -> None:
    """Let component `name` learn at `scale` times the optimizer's learning rate."""
    if name not in nlp.pipe_names:
        raise ValueError(f"{CALLBACK_NAME}: no component {name!r} in the pipeline {nlp.pipe_names}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
        raise ValueError(f"{CALLBACK_NAME}: the scale of {name!r} must be a number > 0, not {scale!r}")
    model = getattr(nlp.get_pipe(name), "model", None)
    if type(model) not in (Model, _ScaledModel):
        raise ValueError(f"{CALLBACK_NAME}: {name!r} has no plain thinc model to scale ({type(model)!r})")
    _SCALES[model.id] = float(scale)
    model.__class__ = _ScaledModel


@registry.callbacks(CALLBACK_NAME)
def make_learn_rate_scale(scales: Dict[str, float]) -> Callable[[Language], Language]:
    def apply(nlp: Language) -> Language:
        for name, scale in scales.items():
            scale_learn_rate(nlp, name, scale)
        return nlp

    return apply

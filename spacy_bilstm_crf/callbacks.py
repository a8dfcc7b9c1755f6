"""Training callbacks: calibrate the entity confidences of every checkpoint spaCy saves.

Registered as ``spacy-bilstm-crf.CalibrateOnSave.v1`` for ``[training.before_to_disk]``:

    [training.before_to_disk]
    @callbacks = "spacy-bilstm-crf.CalibrateOnSave.v1"
    path = ${paths.dev}

``spacy train`` calls it before it writes ``model-last`` (and copies it to ``model-best``),
with the parameter averages in place, so each saved pipeline carries a
``confidence_temperature`` fitted to its own weights.
"""

from pathlib import Path
from typing import Callable, List, Optional, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import registry

from .corpus import read_conll
from .errors import Errors

CALLBACK_NAME = "spacy-bilstm-crf.CalibrateOnSave.v1"


@registry.callbacks(CALLBACK_NAME)
def make_calibrate_on_save(
    path: Optional[Union[str, Path]],
    component: str = "bilstm_attn_crf",
    max_docs: int = 2000,
) -> Callable[[Language], Language]:
    """Fit the component's `confidence_temperature` on held-out gold data each time spaCy
    saves a checkpoint, so that a pipeline from `spacy train` has calibrated confidences
    without a separate step. The entities do not change (the temperature only rescales
    the scores the confidences are computed from), so neither do the training scores or
    the choice of model-best. The threshold is not fitted here: it changes the entities,
    and so the dev scores that choose model-best (fit it afterwards with `fit_threshold`
    or the project's `calibrate` step).

    path (Optional[Union[str, Path]]): Held-out gold data (the dev set, `${paths.dev}`;
        never the training data): a .spacy file, a directory of them, or a CoNLL-style
        file (read with `spacy_bilstm_crf.corpus.read_conll`). The docs are predicted on their gold tokens.
    component (str): The name of the `bilstm_attn_crf` component to calibrate.
    max_docs (int): Fit on the first this many docs only (0: all), to bound the time
        each checkpoint takes: about one prediction pass over them.
    RETURNS (Callable[[Language], Language]): The callback for `before_to_disk`.
    """
    if path is None or not Path(path).exists():
        raise ValueError(Errors.BCE072.format(path=path))
    if isinstance(max_docs, bool) or not isinstance(max_docs, int) or max_docs < 0:
        raise ValueError(Errors.BCE073.format(name="max_docs", value=max_docs))
    cache: List[Example] = []

    def calibrate_on_save(nlp: Language) -> Language:
        if component not in nlp.pipe_names:
            raise ValueError(Errors.BCE074.format(name=component, pipes=nlp.pipe_names))
        pipe = nlp.get_pipe(component)
        if not hasattr(pipe, "fit_confidence_temperature"):
            raise ValueError(Errors.BCE074.format(name=component, pipes=nlp.pipe_names))
        if not cache:
            docs = _read_gold_docs(Path(path), nlp)
            if max_docs:
                docs = docs[:max_docs]
            if not docs:
                raise ValueError(Errors.BCE072.format(path=str(path)))
            cache.extend(
                Example(
                    Doc(
                        nlp.vocab,
                        words=[t.text for t in ref],
                        spaces=[bool(t.whitespace_) for t in ref],
                    ),
                    ref,
                )
                for ref in docs
            )
        try:
            pipe.fit_confidence_temperature(cache, nlp=nlp)
        except ValueError as err:
            # an early checkpoint that predicts no entity yet: keep the temperature
            if "[BCE025]" not in str(err):
                raise
        return nlp

    return calibrate_on_save


def _read_gold_docs(path: Path, nlp: Language) -> List[Doc]:
    """Read a .spacy file, a directory of them (as spaCy's corpus reader does) or a
    CoNLL-style file."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.spacy") if not p.name.startswith("."))
        return [doc for f in files for doc in DocBin().from_disk(f).get_docs(nlp.vocab)]
    if path.suffix == ".spacy":
        return list(DocBin().from_disk(path).get_docs(nlp.vocab))
    return read_conll(path, vocab=nlp.vocab, keep_pos=False)

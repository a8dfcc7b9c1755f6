"""Training callbacks: calibrate the entity confidences of every checkpoint spaCy saves;
give unknown-word rows their word counts in any pipeline; hand the memory that training
freed back to the system.

Registered as ``spacy-bilstm-crf.CalibrateOnSave.v1`` for ``[training.before_to_disk]``:

    [training.before_to_disk]
    @callbacks = "spacy-bilstm-crf.CalibrateOnSave.v1"
    corpus = "corpora.dev"

``spacy train`` calls it before it writes ``model-last`` (and copies it to ``model-best``),
with the parameter averages in place, so each saved pipeline carries a
``confidence_temperature`` fitted to its own weights.
"""

import ctypes
import warnings
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional

from spacy.language import Language
from spacy.training import Example
from spacy.util import registry
from thinc.api import Model

from .errors import Errors, Warnings
from .word_embed import set_word_counts

CALLBACK_NAME = "spacy-bilstm-crf.CalibrateOnSave.v1"
COUNT_WORDS_NAME = "spacy-bilstm-crf.SetWordCounts.v1"
TRIM_MEMORY_NAME = "spacy-bilstm-crf.TrimMemory.v1"


@registry.callbacks(CALLBACK_NAME)
def make_calibrate_on_save(
    corpus: str = "corpora.dev",
    component: str = "bilstm_attn_crf",
    max_docs: int = 2000,
) -> Callable[[Language], Language]:
    """Fit the component's `confidence_temperature` on held-out gold data each time spaCy
    saves a checkpoint, so that a pipeline from `spacy train` has calibrated confidences
    without a separate step.

    The temperature rescales the scores the confidences are computed from, and decoding
    does not use it, so with the component's `threshold` at 0 (the configs' setting while
    training) the entities, the dev scores and the choice of model-best do not change. A
    threshold above 0 is applied to the confidences, so a new temperature would change the
    entities (and the threshold would no longer be the one fitted): then the callback
    warns and fits nothing. Fit the threshold after training (`fit_threshold` or the
    project's `calibrate` step).

    corpus (str): The dot name of the held-out corpus in the training config, read the
        way spaCy reads it to evaluate (the dev set; never the training data).
    component (str): The name of the `bilstm_attn_crf` component to calibrate.
    max_docs (int): Fit on the corpus's first this many examples only (0: all), to bound
        the time each checkpoint takes: about one prediction pass over them.
    RETURNS (Callable[[Language], Language]): The callback for `before_to_disk`.
    """
    if isinstance(max_docs, bool) or not isinstance(max_docs, int) or max_docs < 0:
        raise ValueError(Errors.BCE073.format(name="max_docs", value=max_docs))
    cache: List[Example] = []
    warned: List[bool] = []

    def calibrate_on_save(nlp: Language) -> Language:
        if component not in nlp.pipe_names:
            raise ValueError(Errors.BCE074.format(name=component, pipes=nlp.pipe_names))
        pipe: Any = nlp.get_pipe(component)
        if not hasattr(pipe, "fit_confidence_temperature"):
            raise ValueError(Errors.BCE074.format(name=component, pipes=nlp.pipe_names))
        if pipe.cfg.get("threshold", 0.0) > 0.0:
            if not warned:
                warnings.warn(
                    Warnings.BCW001.format(name=component, threshold=pipe.cfg["threshold"]),
                    stacklevel=2,
                )
                warned.append(True)
            return nlp
        if not cache:
            cache.extend(_read_examples(nlp, corpus, max_docs))
        try:
            # sets it in the component's cfg and in nlp.config (the saved config.cfg)
            pipe.fit_confidence_temperature(cache, nlp=nlp)
        except ValueError as err:
            # an early checkpoint that predicts no entity yet: keep the temperature
            if "[BCE025]" not in str(err):
                raise
        return nlp

    return calibrate_on_save


@registry.callbacks(COUNT_WORDS_NAME)
def make_set_word_counts(corpus: str = "corpora.train") -> Callable[[Language], Language]:
    """Give every unknown-word layer (``spacy-bilstm-crf.MultiHashEmbed.v1``, or
    ``CharacterEmbed.v1`` with `unknown_alpha`) of every component its word counts from
    the training corpus, for ``[initialize.after_init]``. A ``bilstm_attn_crf`` component
    does this itself when it initializes; this callback lets other components (spaCy's
    ``ner``, a ``tok2vec`` they listen to) use the layer too.

        [initialize.after_init]
        @callbacks = "spacy-bilstm-crf.SetWordCounts.v1"
        corpus = "corpora.train"

    corpus (str): The dot name of the training corpus in the config.
    RETURNS (Callable[[Language], Language]): The callback for `after_init`.
    """

    def set_counts(nlp: Language) -> Language:
        reader = _corpus_reader(nlp, corpus, Errors.BCE075)
        if next(iter(reader(nlp)), None) is None:
            raise ValueError(Errors.BCE075.format(corpus=corpus, detail="it has no examples"))
        models = [model for model in (getattr(proc, "model", None) for _, proc in nlp.pipeline) if isinstance(model, Model)]
        # streamed, not kept: the training corpus may be large
        set_word_counts(models, lambda: (eg.predicted for eg in reader(nlp)))
        return nlp

    return set_counts


def _corpus_reader(nlp: Language, corpus: str, error: str) -> Callable[[Language], Iterable[Example]]:
    """The reader of the corpus at the dot name `corpus` of the pipeline's config, e.g.
    "corpora.dev" (`error`: the coded message if it cannot be resolved)."""
    try:
        section: Any = nlp.config.interpolate()
        for key in corpus.split("."):
            section = section[key]
        # only this block: spaCy's resolve_dot_names would resolve all of "corpora"
        return registry.resolve({"corpus": section})["corpus"]
    except Exception as err:  # a config error: name it and the setting that caused it
        raise ValueError(error.format(corpus=corpus, detail=repr(err))) from err


def _read_examples(nlp: Language, corpus: str, max_docs: int) -> List[Example]:
    """The first `max_docs` examples (0: all) of the corpus at the dot name `corpus` of
    the pipeline's config, e.g. "corpora.dev"."""
    examples = _corpus_reader(nlp, corpus, Errors.BCE072)(nlp)
    examples = list(islice(examples, max_docs) if max_docs else examples)
    if not examples:
        raise ValueError(Errors.BCE072.format(corpus=corpus, detail="it has no examples"))
    if not any(eg.reference.has_annotation("ENT_IOB") for eg in examples):
        # nothing could ever be judged: the callback would silently never fit
        raise ValueError(Errors.BCE072.format(
            corpus=corpus, detail="none of its examples has entity annotation"))
    return examples


def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's `malloc_trim`, or None where the C library has none (macOS, Windows, musl)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols the process already has: its C library's
    except (OSError, TypeError):  # Windows: CDLL(None) is not supported
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


@registry.callbacks(TRIM_MEMORY_NAME)
def make_trim_memory(every: int = 1) -> Callable[[Language, Dict[str, Any]], None]:
    """Return the heap memory that training freed to the operating system every `every`
    steps, for ``[training.before_update]``:

        [training.before_update]
        @callbacks = "spacy-bilstm-crf.TrimMemory.v1"
        every = 1

    Training with a transformer on a CPU allocates and frees tensors of a new size at every
    step (the batches differ in length). With glibc's allocator (Linux) the freed memory
    stays in the process's heap, fragmented, and the resident memory of a `spacy train`
    process grew by 300-400 MB a minute on CoNLL-2003 until the system killed it
    (`benchmarks/RESULTS.md`, sessions 16-17). glibc's `malloc_trim(0)` hands the free
    pages back; one call took about 30 ms there, against ~3 s per training step. It
    changes no result of training, only the memory the process holds. Where the C library
    has no `malloc_trim` (macOS, Windows, musl) the callback warns once and does nothing.

    every (int): Release the memory before every this many training steps (1: each).
    RETURNS (Callable[[Language, Dict[str, Any]], None]): The callback for `before_update`.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(Errors.BCE076.format(value=every))
    trim = _malloc_trim()
    if trim is None:
        warnings.warn(Warnings.BCW003, stacklevel=2)

    def trim_memory(nlp: Language, args: Dict[str, Any]) -> None:
        if trim is not None and args.get("step", 0) % every == 0:
            trim(0)

    return trim_memory

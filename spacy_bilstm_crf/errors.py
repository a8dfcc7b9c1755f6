"""Coded error messages of spacy-bilstm-crf.

Codes are prefixed ``BCE`` (warnings ``BCW``), so that they cannot be mistaken for spaCy's own ``E###``
codes. Generic pipe failures reuse spaCy's
codes (``E109`` uninitialized pipe, ``E910`` NaN loss, ``E923`` no examples, ``E149``
model load), raised through ``spacy.errors.Errors``.
"""


class ErrorsWithCodes(type):
    """Prefix each message with its code, like ``spacy.errors.ErrorsWithCodes``."""

    def __getattribute__(self, code: str) -> str:
        msg = super().__getattribute__(code)
        if code.startswith("__"):  # python system attributes like __class__
            return msg
        return f"[{code}] {msg}"


class Errors(metaclass=ErrorsWithCodes):
    # tag schemes
    BCE001 = (
        "Unknown tag scheme {scheme!r}. Use one of {options}; set it in the component "
        "config as `tag_scheme`."
    )
    BCE002 = (
        "Invalid entity label {label!r}: labels must be non-empty strings without "
        "whitespace and must not start with one of the tag prefixes B-, I-, L-, U-."
    )
    BCE003 = (
        "Invalid {scheme} tag sequence at position {position}: tag {tag!r} cannot follow "
        "{prev!r}. The full sequence was {tags}. Check the gold annotation (for IOB1 data, "
        "convert with spaCy's `iob_to_biluo` first) or decode with the CRF's constraints."
    )
    BCE004 = (
        "Unknown entity label {label!r} (tag {tag!r}). The labels known to this component "
        "are {labels}. Add the label with `add_label` before `initialize`, or let "
        "`initialize` collect labels from all training examples."
    )
    BCE005 = (
        "Overlapping entity spans: ({start1}, {end1}, {label1!r}) and ({start2}, {end2}, "
        "{label2!r}). A token can carry only one entity; remove one of the spans."
    )
    BCE006 = (
        "Entity span ({start}, {end}, {label!r}) does not fit in a sequence of length "
        "{length}: expected 0 <= start < end <= length."
    )
    BCE007 = "Unknown tag id {tag_id} for a tag scheme with {num_tags} tags."
    # CRF / torch modules
    BCE010 = "CRF: {name} expected {expected}, got {got}."
    BCE011 = (
        "CRF: reduction must be one of 'none', 'sum', 'mean', 'token_mean', got {reduction!r}."
    )
    BCE012 = (
        "CRF: the tag mask leaves no valid tag sequence for sequence {index} (under the "
        "transition constraints). Check that pre-set entities or partial gold tags are "
        "consistent with the tag scheme."
    )
    BCE013 = (
        "CRF: give exactly one of `tags` (one gold path) and `tag_mask` (a set of gold "
        "paths) to compute the log-likelihood, got {got}."
    )
    BCE014 = (
        "CRF: the transition constraints allow no tag sequence of length {length} "
        "(sequence {index}). Check allowed_start, allowed_transitions and allowed_end."
    )
    BCE015 = (
        "CRF: the gold tags of sequence {index} are forbidden by the transition constraints: "
        "{detail}. Their log-likelihood would be -inf. Fix the annotation (or convert it to "
        "the CRF's tag scheme), or pass the gold annotation as a `tag_mask` instead."
    )
    BCE016 = (
        "CRF: span query {index} {span!r} is invalid: {detail}. Expected (batch_index, "
        "start, tag_path, continuation_tags) with a non-empty tag path inside the sequence."
    )
    # component
    BCE020 = (
        "Cannot add label {label!r} to the initialized component {name!r}: the CRF's "
        "output layer is already sized for {labels}. Add labels before "
        "`nlp.initialize()`, or pass them all with `initialize(labels=...)`."
    )
    BCE021 = (
        "The component {name!r} has no entity labels: none were found in the training "
        "examples and none were given. Pass `labels=[...]` to `initialize`, list them in "
        "`[initialize.components.{name}.labels]`, or check that the training data has "
        "entities."
    )
    BCE022 = (
        "Gold entity label {label!r} in training example {index} (text starting {text!r}) is "
        "not one of the labels this component was initialized with: {labels}. Re-run "
        "`spacy init labels` / `nlp.initialize()` on data that includes it, or remove it."
    )
    BCE023 = (
        "The model weights in {path} could not be loaded: {error}. The file may be "
        "truncated or corrupted, or it was saved by an incompatible version. Re-save the "
        "pipeline or re-train it."
    )
    BCE024 = (
        "The weights in {path} do not match the component's config: {detail}. The labels "
        "in the config ({labels}) must be the ones the model was trained with; do not "
        "edit `labels` or the model dimensions of a trained pipeline."
    )
    BCE025 = (
        "Invalid value {value!r} for the setting {name!r} of the component: {detail}."
    )
    BCE026 = (
        "The component's model expected one tok2vec vector per token, got {got} rows for a "
        "doc of {expected} tokens. Check that the tok2vec layer (or listener) feeds this "
        "component the docs it is given."
    )
    BCE027 = (
        "The CRF loss is not finite ({loss}) for the batch containing example {index} "
        "(text starting {text!r}). Lower the learning rate, enable gradient clipping, or "
        "check that example's annotation."
    )
    BCE028 = (
        "{method}: the component {name!r} listens to an upstream component (its model "
        "contains a {listener!r} layer), so the examples' docs must be processed by the "
        "pipeline's earlier components first, or the fit would see empty token vectors. "
        "Pass the pipeline: `{method}(examples, nlp=nlp)`."
    )
    BCE029 = (
        "{method}: the `nlp` given does not contain this component ({name!r}); its "
        "components are {pipes}. Pass the pipeline the component belongs to."
    )
    # corpus
    BCE030 = (
        "{path}, line {line}: expected {expected}, got {got!r}. {hint}"
    )
    BCE031 = "{path}: {problem}. Pass the path of a CoNLL-style file."
    BCE036 = (
        "{path}: no token lines (the file is empty or holds only blank and -DOCSTART- "
        "lines). Pass a CoNLL-style file with one token and its tag per line."
    )
    BCE037 = (
        "There is no training example with tokens to initialize {name!r} from. Check "
        "`paths.train` and the `[corpora.train]` reader: `.spacy` files need "
        "`spacy.Corpus.v1`, CoNLL files `spacy-bilstm-crf.ConllCorpus.v1` (as in "
        "configs/conll03.cfg)."
    )
    BCE032 = "Invalid {name} {value!r} for reading CoNLL data: expected {expected}."
    BCE033 = (
        "doc_boundaries=True makes one Doc per -DOCSTART- document, so it cannot be "
        "combined with n_sents={n_sents}. Use either doc_boundaries (leave n_sents at 1) or "
        "n_sents."
    )
    BCE034 = (
        "{path}: the output must be a '.spacy' file (spaCy's Corpus reads only *.spacy "
        "files), got the suffix {suffix!r}. Name the output e.g. corpus/train.spacy."
    )
    BCE035 = (
        "The CoNLL corpus reader has no path. Set it in the config, e.g. "
        "`[corpora.train] path = ${{paths.train}}`, and pass `--paths.train FILE`."
    )
    # BiLSTM + self-attention emission model (pytorch_model.py)
    BCE040 = "BiLSTMAttnEmitter: {name} expected {expected}, got {got}."
    BCE041 = (
        "BiLSTMAttnEmitter: invalid setting {name}={value!r}: expected {expected}. Fix it in "
        "the model config."
    )
    BCE042 = (
        "BiLSTMAttnEmitter: the attention width 2 * hidden_size = {width} is not divisible "
        "by attention_heads = {heads}. Choose a hidden_size such that 2 * hidden_size is a "
        "multiple of attention_heads, or set attention_heads = 0 to turn attention off."
    )
    BCE043 = (
        "BiLSTMAttnEmitter: window_overlap = {overlap} must be smaller than window = "
        "{window}. Lower window_overlap, raise window, or set window = 0 (or null) for full "
        "attention."
    )
    # robustness (pipe)
    BCE050 = (
        "The component {name!r} computed non-finite scores ({what}) for the doc starting "
        "{text!r}: its weights contain NaN or infinity, e.g. because training diverged "
        "(see E910 / BCE027) or the weights file is damaged. Re-train the component, or "
        "reload it from a good copy."
    )
    # thinc architecture
    BCE060 = (
        "The BiLSTM-CRF model has not been initialized ({what}). Call `nlp.initialize()` "
        "(or the component's `initialize`) with sample docs, or load a trained pipeline."
    )
    BCE061 = (
        "The BiLSTM-CRF model is already built for {built} tags and cannot take a tag "
        "scheme with {num_tags}. Build a new model (e.g. re-create the component) to "
        "change the labels or the tag scheme."
    )
    BCE062 = (
        "The BiLSTM-CRF model expected token vectors of width {nI} from its tok2vec, got an "
        "array of shape {shape}. Check that the tok2vec (or listener) width matches the one "
        "the model was initialized with."
    )
    # tok2vec layers: word dropout (architectures.py), character CNN (char_cnn.py)
    BCE063 = (
        "Invalid {name} {value!r} for spacy-bilstm-crf.TokenDropout.v1: expected {expected}. "
        "Set it in the layer's config block, e.g. `rate = 0.1`; 0 switches word dropout off."
    )
    BCE064 = (
        "Invalid {name} {value!r} for spacy-bilstm-crf.CharCNN.v1: expected {expected}. "
        "Set it in the layer's config block, e.g. `width = 50`, `char_width = 30`, "
        "`window_size = 3`, `max_chars = 20`, `rows = 1000`, `dropout = 0.25`."
    )
    BCE065 = (
        "Invalid {name} {value!r} for spacy-bilstm-crf.CharacterEmbed.v1: expected {expected}. "
        "Set it in the layer's config block, e.g. `nM = 16`, `nC = 8`, `unknown_alpha = 0.25` "
        "(or null for no unknown-word row)."
    )
    BCE066 = (
        "Invalid {name} {value!r} for spacy-bilstm-crf.MultiHashEmbed.v1: expected {expected}. "
        "Set it in the layer's config block, e.g. `unknown_attr = \"NORM\"` (one of `attrs`, "
        "or null for no unknown-word row) and `unknown_alpha = 0.25`."
    )
    # calibration
    BCE070 = (
        "The component {name!r} stores no entity confidences (it has no `spans_key`, or is "
        "not a `bilstm_attn_crf` component), so their calibration cannot be measured. Set "
        "`spans_key` (default \"crf_ents\") in its config, or name the right component."
    )
    BCE071 = "Calibration: {problem}."
    BCE072 = (
        "spacy-bilstm-crf.CalibrateOnSave.v1: could not read held-out examples from the "
        "corpus {corpus!r} of the training config: {detail}. Point `corpus` in "
        "[training.before_to_disk] at your dev corpus (e.g. \"corpora.dev\", with "
        "`paths.dev` set), or remove that block."
    )
    BCE073 = (
        "spacy-bilstm-crf.CalibrateOnSave.v1: invalid setting {name}={value!r}: expected an "
        "integer >= 0 (0: all docs)."
    )
    BCE075 = (
        "spacy-bilstm-crf.SetWordCounts.v1: could not read training examples from the "
        "corpus {corpus!r} of the config: {detail}. Point `corpus` in "
        "[initialize.after_init] at your training corpus (e.g. \"corpora.train\", with "
        "`paths.train` set), or remove that block."
    )
    BCE074 = (
        "spacy-bilstm-crf.CalibrateOnSave.v1: the pipeline has no `bilstm_attn_crf` "
        "component named {name!r} (its components: {pipes}). Set `component` in "
        "[training.before_to_disk] to the name you gave it."
    )
    BCE076 = (
        "spacy-bilstm-crf.TrimMemory.v1: invalid setting every={value!r}: expected an "
        "integer >= 1 (release freed memory every this many training steps)."
    )


class Warnings(metaclass=ErrorsWithCodes):
    BCW001 = (
        "spacy-bilstm-crf.CalibrateOnSave.v1: the component {name!r} has threshold = "
        "{threshold}, so a new confidence temperature would change its entities (and the "
        "dev scores that choose model-best); the temperature is not fitted while training. "
        "Train with threshold = 0 and fit both afterwards (`fit_confidence_temperature`, "
        "`fit_threshold`, or the project's `calibrate` step)."
    )
    BCW002 = (
        "{name!r} was initialized from examples without entity annotation (e.g. "
        "`nlp.initialize()` with labels added by hand), so its unknown-word rows "
        "(`unknown_attr` / `unknown_alpha`) cannot learn which words the training data has "
        "and stay off: every word keeps its own hash rows. To use them, initialize with the "
        "training examples: `nlp.initialize(lambda: train_examples)`."
    )
    BCW003 = (
        "spacy-bilstm-crf.TrimMemory.v1: this platform's C library has no `malloc_trim` "
        "(it is glibc's, on Linux), so the callback does nothing here. The memory growth "
        "it works around is glibc's; remove [training.before_update] from the config to "
        "silence this warning."
    )

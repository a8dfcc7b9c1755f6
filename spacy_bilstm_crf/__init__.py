"""spacy-bilstm-crf: a BiLSTM + self-attention + CRF named-entity recognizer for spaCy v3."""

from .about import __version__

__all__ = ["__version__"]

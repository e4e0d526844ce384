"""Built-in data in plain NumPy: a generated sentiment set, character-level text and
truncated-BPTT batching. The sentiment set's ``encode``, ``encode_batch`` and ``decode`` live in
``data.sentiment``."""

from . import batching, sentiment, text
from .batching import num_windows, stream_batches
from .sentiment import SentimentData, load_sentiment
from .text import CharVocab, builtin_corpus, load_text, train_val_split, unigram_loss

__all__ = [
    "batching", "sentiment", "text",
    "SentimentData", "load_sentiment",
    "CharVocab", "load_text", "builtin_corpus", "train_val_split", "unigram_loss",
    "stream_batches", "num_windows",
]

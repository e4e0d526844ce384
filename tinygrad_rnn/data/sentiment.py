"""A generated sentiment set whose labels depend on word order.

Every sentence is written by the grammar below from a vocabulary of 31 words, and its label follows
from one crisp rule, so a small many-to-one recurrent network can reach 100% test accuracy while a
bag of words cannot: the data holds pairs of sentences with the same words in a different order and
opposite labels ("it was not good but bad" / "it was good but not bad").

Grammar (3 to 9 words; a longer draw is drawn again)::

    sentence    := subject copula phrase                 a single clause
                 | subject copula phrase "but" phrase    a contrast
    phrase      := [negation] [intensifier] adjective
    subject     := it | this | the movie | the film | the plot | the acting | the music | the ending
    copula      := is | was | isn't | wasn't             (isn't, wasn't: negated copulas)
    negation    := not | never
    intensifier := very | really | extremely
    adjective   := good | great | fun | lovely | brilliant | charming          (positive)
                 | bad | awful | dull | boring | terrible | bland              (negative)

A negated copula is never followed by a negation word in its own phrase (no "wasn't not good"),
so every phrase is negated at most once.

Labelling rule (1 = positive, 0 = negative):

1. The deciding phrase is the last one: the phrase after "but" in a contrast, the only phrase
   otherwise. What comes before "but" never matters.
2. Its polarity is its adjective's, flipped once if the phrase is negated: it starts with "not" or
   "never", or it is the first phrase and the copula is "isn't" or "wasn't".
3. Intensifiers and subjects never change the label.

So "it was good" is 1, "it was not good" 0, "it wasn't very good" 0, "it was good but not great" 0,
"it wasn't good but great" 1 and "the plot was bad but never boring" 1.

Generation is deterministic on every machine and every NumPy version: sentences are drawn by a
SplitMix64 generator written here in integer arithmetic (NumPy promises the same random stream only
within one build), starting from a fixed seed. About half the sentences are contrasts, and each
contrast is followed by its mirror (the two phrases swapped, when the mirror is grammatical), which
supplies the same-words, different-label pairs. Duplicates are skipped; the first 2000 distinct
sentences form the train split and the next 500 the test split, so no test sentence is in train.

Shapes: a split of N sentences gives ``ids`` (N, T) int64 padded with 0 ("<pad>") after each
sentence, with T = 9 (the longest sentence the grammar allows, the same for both splits),
``lengths`` (N,) int64 in [3, 9] and ``labels`` (N,) int64 in {0, 1}.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .._checks import check_int, describe
from .text import as_id_array

SUBJECTS = ("it", "this", "the movie", "the film", "the plot", "the acting", "the music", "the ending")
COPULAS = ("is", "was")
NEGATED_COPULAS = ("isn't", "wasn't")
NEGATIONS = ("not", "never")
INTENSIFIERS = ("very", "really", "extremely")
POSITIVE = ("good", "great", "fun", "lovely", "brilliant", "charming")
NEGATIVE = ("bad", "awful", "dull", "boring", "terrible", "bland")
CONTRAST = "but"
PAD = "<pad>"

MIN_WORDS = 3
MAX_WORDS = 9
TRAIN_SIZE = 2000
TEST_SIZE = 500
SEED = 20240613

VOCAB: Tuple[str, ...] = (
    PAD, "it", "this", "the", "movie", "film", "plot", "acting", "music", "ending",
    *COPULAS, *NEGATED_COPULAS, *NEGATIONS, *INTENSIFIERS, CONTRAST, *POSITIVE, *NEGATIVE,
)
WORD_TO_ID = {word: index for index, word in enumerate(VOCAB)}

_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class SentimentData:
    """One split of the sentiment set.

    ids: (N, T) int64 token ids, each row a sentence padded with 0 ("<pad>") after its end.
    lengths: (N,) int64 number of real words in each row.
    labels: (N,) int64, 1 positive, 0 negative.
    sentences: the N sentences as text, in row order.
    vocab: the words; ``vocab[i]`` is the word of id i, ``vocab[0] == "<pad>"``.
    """

    ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    sentences: Tuple[str, ...]
    vocab: Tuple[str, ...]

    def __len__(self) -> int:
        return len(self.sentences)


def load_sentiment(split: str = "train") -> SentimentData:
    """The ``"train"`` (2000 sentences) or ``"test"`` (500 sentences) split; see the module docstring."""
    train_sentences, test_sentences = _generate_splits()
    if split == "train":
        return _to_data(train_sentences)
    if split == "test":
        return _to_data(test_sentences)
    if not isinstance(split, str):
        raise TypeError(f"split must be 'train' or 'test', got {describe(split)}")
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def encode(sentence: str) -> np.ndarray:
    """Token ids of a sentence (words separated by whitespace), shape (number of words,) int64."""
    if not isinstance(sentence, str):
        raise TypeError(f"encode expects a str, got {type(sentence).__name__}")
    words = sentence.split()
    unknown = [(position, word) for position, word in enumerate(words) if word not in WORD_TO_ID or word == PAD]
    if unknown:
        listed = ", ".join(f"{word!r} (word {position})" for position, word in unknown)
        raise ValueError(f"words not in the sentiment vocabulary in {sentence!r}: {listed}")
    return np.array([WORD_TO_ID[word] for word in words], dtype=np.int64)


def encode_batch(sentences: Sequence[str], width: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Token ids of N sentences as one padded batch: ``(ids (N, width) int64, lengths (N,) int64)``.

    Row n holds sentence n's ids followed by 0 ("<pad>"); ``width`` defaults to the longest sentence.
    """
    if isinstance(sentences, str) or not hasattr(sentences, "__iter__"):
        raise TypeError(f"encode_batch needs a sequence of sentences (str), got {describe(sentences)}")
    if width is not None:
        check_int("encode_batch", "width", width, minimum=0)
    rows = [encode(sentence) for sentence in sentences]
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    longest = int(lengths.max(initial=0))
    width = longest if width is None else width
    if width < longest:
        raise ValueError(f"width {width} is shorter than the longest sentence ({longest} words)")
    ids = np.zeros((len(rows), width), dtype=np.int64)
    for n, row in enumerate(rows):
        ids[n, :len(row)] = row
    return ids, lengths


def decode(ids: Iterable[int]) -> str:
    """The sentence of a sequence of token ids; padding (id 0) is dropped wherever it stands."""
    return " ".join(VOCAB[index] for index in as_id_array(ids, "ids", len(VOCAB)).tolist() if index != 0)


def label(sentence: str) -> int:
    """The label of a sentence by the rule of the module docstring: 1 positive, 0 negative.

    Raises ValueError naming what is wrong when the sentence does not follow the grammar.
    """
    copula, phrases = _parse(sentence)
    deciding = phrases[-1]
    negated = deciding[0] in NEGATIONS or (len(phrases) == 1 and copula in NEGATED_COPULAS)
    positive = deciding[-1] in POSITIVE
    return int(positive != negated)


def _parse(sentence: str) -> Tuple[str, List[List[str]]]:
    """Split a sentence into (copula, phrases), raising ValueError if it is not grammatical."""
    encode(sentence)  # names any unknown word
    words = sentence.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        raise ValueError(f"a sentence has {MIN_WORDS} to {MAX_WORDS} words, {sentence!r} has {len(words)}")
    subject_words = 2 if words[0] == "the" else 1
    subject = " ".join(words[:subject_words])
    copula = words[subject_words] if len(words) > subject_words else ""
    if subject not in SUBJECTS or copula not in COPULAS + NEGATED_COPULAS:
        raise ValueError(f"a sentence starts with a subject and a copula: {sentence!r}")
    rest = words[subject_words + 1:]
    phrases = [rest] if CONTRAST not in rest else [rest[:rest.index(CONTRAST)], rest[rest.index(CONTRAST) + 1:]]
    for phrase in phrases:
        if not _is_phrase(phrase):
            raise ValueError(f"{' '.join(phrase)!r} is not a phrase ([negation] [intensifier] adjective) in {sentence!r}")
    if copula in NEGATED_COPULAS and phrases[0][0] in NEGATIONS:
        raise ValueError(f"a negated copula takes no further negation in its phrase: {sentence!r}")
    return copula, phrases


def _is_phrase(words: List[str]) -> bool:
    if not words or words[-1] not in POSITIVE + NEGATIVE:
        return False
    modifiers = words[:-1]
    if modifiers and modifiers[0] in NEGATIONS:
        modifiers = modifiers[1:]
    return len(modifiers) == 0 or (len(modifiers) == 1 and modifiers[0] in INTENSIFIERS)


class _SplitMix64:
    """SplitMix64 in exact integer arithmetic: the same stream on every platform and Python version."""

    def __init__(self, seed: int):
        self.state = seed & _MASK64

    def below(self, n: int) -> int:
        """A draw from {0, ..., n - 1} (the modulo bias, under n / 2**64, does not matter here)."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return (z ^ (z >> 31)) % n

    def choice(self, options: Tuple[str, ...]) -> str:
        return options[self.below(len(options))]

    def maybe(self, options: Tuple[str, ...]) -> Optional[str]:
        """One of the options, or None (leave the slot out) with probability 1 / (len(options) + 1)."""
        index = self.below(len(options) + 1)
        return options[index] if index < len(options) else None


def _draw_phrase(rng: _SplitMix64, negatable: bool) -> List[str]:
    negation = rng.maybe(NEGATIONS) if negatable else None
    intensifier = rng.maybe(INTENSIFIERS)
    adjective = rng.choice(POSITIVE + NEGATIVE)
    return [word for word in (negation, intensifier, adjective) if word is not None]


def _draw_group(rng: _SplitMix64) -> List[str]:
    """One sentence, or a contrast followed by its mirror when that is grammatical and different."""
    while True:
        subject = rng.choice(SUBJECTS)
        copula = rng.choice(COPULAS + NEGATED_COPULAS)
        first = _draw_phrase(rng, negatable=copula in COPULAS)
        head = f"{subject} {copula}"
        if rng.below(2) == 0:
            return [f"{head} {' '.join(first)}"]  # at most 6 words
        second = _draw_phrase(rng, negatable=True)
        sentence = f"{head} {' '.join(first)} {CONTRAST} {' '.join(second)}"
        if len(sentence.split()) > MAX_WORDS:
            continue
        mirror = f"{head} {' '.join(second)} {CONTRAST} {' '.join(first)}"
        mirror_is_grammatical = not (copula in NEGATED_COPULAS and second[0] in NEGATIONS)
        return [sentence, mirror] if mirror_is_grammatical and mirror != sentence else [sentence]


@functools.lru_cache(maxsize=None)
def _generate_splits() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    rng = _SplitMix64(SEED)
    sentences: List[str] = []
    seen = set()
    while len(sentences) < TRAIN_SIZE + TEST_SIZE:
        for sentence in _draw_group(rng):
            if sentence not in seen and len(sentences) < TRAIN_SIZE + TEST_SIZE:
                seen.add(sentence)
                sentences.append(sentence)
    return tuple(sentences[:TRAIN_SIZE]), tuple(sentences[TRAIN_SIZE:])


def _to_data(sentences: Tuple[str, ...]) -> SentimentData:
    ids, lengths = encode_batch(sentences, MAX_WORDS)
    labels = np.array([label(sentence) for sentence in sentences], dtype=np.int64)
    return SentimentData(ids=ids, lengths=lengths, labels=labels, sentences=sentences, vocab=VOCAB)

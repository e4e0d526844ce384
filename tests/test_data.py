"""Tests of tinygrad_rnn.data: each value is checked against a hand loop or a hand-written rule."""

import collections
import hashlib
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_rnn.data import (
    CharVocab,
    builtin_corpus,
    load_sentiment,
    load_text,
    num_windows,
    stream_batches,
    train_val_split,
    unigram_loss,
)
from tinygrad_rnn.data import sentiment

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------- CharVocab

@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_vocab_round_trip_and_ids_follow_sorted_characters(text):
    vocab = CharVocab(text)
    ids = vocab.encode(text)
    expected_index = {char: i for i, char in enumerate(sorted(set(text)))}
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert ids.tolist() == [expected_index[char] for char in text]
    assert vocab.decode(ids) == text
    assert len(vocab) == len(expected_index)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.characters(), min_size=1, max_size=40, unique=True))
def test_from_list_keeps_the_saved_order(chars):
    vocab = CharVocab.from_list(chars)
    assert vocab.to_list() == chars
    assert CharVocab.from_list(vocab.to_list()) == vocab
    text = "".join(reversed(chars)) * 2
    assert vocab.encode(text).tolist() == [chars.index(char) for char in text]


def test_unknown_character_error_names_the_character_and_where():
    vocab = CharVocab("abc\n")
    with pytest.raises(ValueError) as info:
        vocab.encode("ab\ncaé!é")
    message = str(info.value)
    assert "'é'" in message and "index 5" in message and "line 2" in message
    assert "'!'" in message and "index 6" in message


def test_vocab_rejects_bad_input():
    with pytest.raises(ValueError, match="repeated"):
        CharVocab.from_list(["a", "b", "a"])
    with pytest.raises(ValueError, match="one-character"):
        CharVocab.from_list(["ab"])
    with pytest.raises(ValueError, match="non-empty"):
        CharVocab("")
    vocab = CharVocab("abc")
    with pytest.raises(ValueError, match=r"outside \[0, 3\).*\[3\]"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="integer"):
        vocab.decode(np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="str"):
        vocab.encode([1, 2])
    assert vocab.decode([]) == ""


# ----------------------------------------------------------------------------------------- load_text

def test_load_text_reads_utf8_and_normalises_line_endings(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffh\u00e9llo\r\nw\rorld\n".encode("utf-8"))
    assert load_text(path) == "h\u00e9llo\nw\norld\n"
    assert load_text(str(path)) == load_text(path)


def test_load_text_errors_name_the_path(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_text(missing)
    with pytest.raises(IsADirectoryError, match=re.escape(tmp_path.name)):
        load_text(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt"):
        load_text(empty)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt.*UTF-8.*offset 3"):
        load_text(latin1)


# ------------------------------------------------------------------------------------ builtin corpus

def _corpus_digest_in_fresh_interpreter(hash_seed):
    code = "import hashlib; from tinygrad_rnn.data import builtin_corpus; " \
           "print(hashlib.sha256(builtin_corpus().encode()).hexdigest())"
    environment = dict(os.environ, PYTHONHASHSEED=str(hash_seed), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], env=environment, cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_builtin_corpus_is_deterministic_across_interpreters():
    digest = hashlib.sha256(builtin_corpus().encode()).hexdigest()
    assert builtin_corpus() is builtin_corpus()
    assert _corpus_digest_in_fresh_interpreter(1) == digest
    assert _corpus_digest_in_fresh_interpreter(12345) == digest


def test_builtin_corpus_is_read_from_source_files_so_python_oo_gives_the_same_text():
    code = "import hashlib; from tinygrad_rnn.data import builtin_corpus; " \
           "print(hashlib.sha256(builtin_corpus().encode()).hexdigest())"
    result = subprocess.run([sys.executable, "-OO", "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                            cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == hashlib.sha256(builtin_corpus().encode()).hexdigest()


def test_builtin_corpus_ignores_what_other_code_patches_into_a_module(monkeypatch):
    import threading

    def replacement(args):
        """A docstring that must not reach the corpus."""

    expected = builtin_corpus()
    monkeypatch.setattr(threading, "get_ident", replacement)
    builtin_corpus.cache_clear()
    try:
        assert builtin_corpus() == expected
    finally:
        builtin_corpus.cache_clear()


def test_builtin_corpus_is_english_prose_of_the_promised_size():
    text = builtin_corpus()
    assert 300_000 <= len(text) <= 600_000
    words = collections.Counter(re.findall(r"[a-z]+", text.lower()))
    for word in ("the", "of", "and", "is", "to", "return"):
        assert words[word] > 200, word
    letters_and_spaces = sum(char.isalpha() or char.isspace() for char in text)
    assert letters_and_spaces / len(text) > 0.85
    assert "\n\n\n\n" not in text and not re.search(r"[ \t]\n", text)
    vocab = CharVocab(text)
    assert 60 <= len(vocab) <= 200
    assert vocab.decode(vocab.encode(text[:5000])) == text[:5000]


# -------------------------------------------------------------------- train_val_split, unigram_loss

@settings(max_examples=40, deadline=None)
@given(st.integers(2, 300), st.floats(0.01, 0.99))
def test_train_val_split_is_a_contiguous_cut(size, val_fraction):
    ids = np.arange(size, dtype=np.int64) * 7 % 11
    expected_val = int(round(size * val_fraction))
    if expected_val in (0, size):
        with pytest.raises(ValueError, match="empty"):
            train_val_split(ids, val_fraction)
        return
    train, val = train_val_split(ids, val_fraction)
    assert len(val) == expected_val
    assert np.array_equal(np.concatenate([train, val]), ids)


def test_train_val_split_rejects_bad_input():
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(np.arange(10), 1.0)
    with pytest.raises(ValueError, match="1-D integer"):
        train_val_split(np.zeros((2, 5), dtype=np.int64))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8).flatmap(lambda vocab_size: st.tuples(
    st.just(vocab_size),
    st.lists(st.integers(0, vocab_size - 1), min_size=0, max_size=50),
    st.lists(st.integers(0, vocab_size - 1), min_size=1, max_size=50))))
def test_unigram_loss_matches_a_hand_loop(case):
    vocab_size, train, val = case
    total = 0.0
    for char in val:
        count = sum(1 for other in train if other == char)
        total -= math.log((count + 1) / (len(train) + vocab_size))
    assert unigram_loss(np.array(train, dtype=np.int64), np.array(val), vocab_size) == pytest.approx(total / len(val))


def test_unigram_loss_closed_forms_and_errors():
    assert unigram_loss(np.array([], dtype=np.int64), np.array([0, 1, 2]), 5) == pytest.approx(math.log(5))
    # train: 3 zeros; p(0) = 4 / 5, p(1) = 1 / 5.
    assert unigram_loss(np.zeros(3, dtype=np.int64), np.array([0, 1]), 2) == pytest.approx(
        -(math.log(0.8) + math.log(0.2)) / 2)
    with pytest.raises(ValueError, match=r"val_ids has ids outside \[0, 2\)"):
        unigram_loss(np.array([0]), np.array([2]), 2)
    with pytest.raises(ValueError, match="val_ids is empty"):
        unigram_loss(np.array([0]), np.array([], dtype=np.int64), 2)


# ------------------------------------------------------------------------------------------ batching

def _hand_streams(n, batch_size, seq_len):
    """Stream length and count found by counting up: the most windows that fit."""
    windows = 0
    while batch_size * ((windows + 1) * seq_len + 1) <= n:
        windows += 1
    return windows, windows * seq_len + 1


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 7), st.integers(0, 120))
def test_windows_are_the_contiguous_streams_of_a_hand_loop(batch_size, seq_len, extra):
    n = batch_size * (seq_len + 1) + extra
    ids = (np.arange(n, dtype=np.int64) * 31) % 97
    windows, stream_length = _hand_streams(n, batch_size, seq_len)
    batches = list(stream_batches(ids, batch_size, seq_len))
    assert len(batches) == windows == num_windows(ids, batch_size, seq_len)
    assert n - batch_size * stream_length < batch_size * seq_len  # only a short tail is dropped
    for k, (inputs, targets) in enumerate(batches):
        assert inputs.shape == targets.shape == (seq_len, batch_size)
        assert inputs.dtype == targets.dtype == np.int64
        assert inputs.flags.c_contiguous and targets.flags.c_contiguous
        for t in range(seq_len):
            for b in range(batch_size):
                position = b * stream_length + k * seq_len + t
                assert inputs[t, b] == ids[position]
                assert targets[t, b] == ids[position + 1]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 80))
def test_windows_continue_each_other_and_targets_shift(batch_size, seq_len, extra):
    ids = np.arange(batch_size * (seq_len + 1) + extra)
    batches = list(stream_batches(ids, batch_size, seq_len))
    for inputs, targets in batches:
        assert np.array_equal(targets[:-1], inputs[1:])
    for (_, previous_targets), (next_inputs, _) in zip(batches, batches[1:]):
        assert np.array_equal(previous_targets[-1], next_inputs[0])
    for b in range(batch_size):  # each stream, read across the windows, is one unbroken slice
        stream = np.concatenate([inputs[:, b] for inputs, _ in batches] + [batches[-1][1][-1:, b]])
        assert np.array_equal(stream, np.arange(stream[0], stream[0] + len(stream)))


def test_batching_errors_name_the_sizes():
    with pytest.raises(ValueError, match=r"10 ids.*batch_size=4.*seq_len=5.*24"):
        stream_batches(np.arange(10), 4, 5)  # raised at the call, before any window is asked for
    with pytest.raises(ValueError, match="batch_size"):
        num_windows(np.arange(10), 0, 2)
    with pytest.raises(ValueError, match="seq_len"):
        num_windows(np.arange(10), 2, 1.5)
    with pytest.raises(ValueError, match="1-D integer"):
        stream_batches(np.arange(20.0), 2, 3)
    assert num_windows(np.arange(24), 4, 5) == 1


# ----------------------------------------------------------------------------------------- sentiment

POSITIVE = {"good", "great", "fun", "lovely", "brilliant", "charming"}
NEGATORS = {"not", "never", "isn't", "wasn't"}
ADJECTIVE = "(good|great|fun|lovely|brilliant|charming|bad|awful|dull|boring|terrible|bland)"
PHRASE = f"((not|never) )?((very|really|extremely) )?{ADJECTIVE}"
GRAMMAR = re.compile(
    f"^(it|this|the (movie|film|plot|acting|music|ending)) "
    f"((is|was) {PHRASE}|(isn't|wasn't) ((very|really|extremely) )?{ADJECTIVE})( but {PHRASE})?$"
)


def _rule(sentence):
    """The labelling rule, restated: in the clause after "but" (or the whole sentence), any negating
    word flips the polarity of the final adjective."""
    words = sentence.split()
    clause = words[words.index("but") + 1:] if "but" in words else words
    negated = any(word in NEGATORS for word in clause)
    return int((clause[-1] in POSITIVE) != negated)


@pytest.mark.parametrize("sentence, expected", [
    ("it was good", 1),
    ("it was not good", 0),
    ("it wasn't very good", 0),
    ("the ending was never dull", 1),
    ("this is extremely awful", 0),
    ("it was good but not great", 0),
    ("it wasn't good but great", 1),
    ("the plot was bad but never boring", 1),
    ("it was not good but bad", 0),
    ("it was good but not bad", 1),
    ("the music isn't bland but dull", 0),
    ("the film was really fun but never very lovely", 0),
])
def test_labels_follow_the_documented_rule(sentence, expected):
    assert sentiment.label(sentence) == expected


@pytest.mark.parametrize("sentence", ["it was not", "it wasn't not good", "was good", "it was good but",
                                      "it was very not good", "the it was good"])
def test_label_rejects_ungrammatical_sentences(sentence):
    with pytest.raises(ValueError):
        sentiment.label(sentence)


def test_splits_have_the_promised_layout():
    for split, size in (("train", 2000), ("test", 500)):
        data = load_sentiment(split)
        assert len(data) == size
        assert data.ids.shape == (size, 9) and data.ids.dtype == np.int64
        assert data.lengths.dtype == data.labels.dtype == np.int64
        assert data.vocab[0] == "<pad>" and len(data.vocab) == 32
        assert set(data.labels.tolist()) == {0, 1} and 0.4 < data.labels.mean() < 0.6
        for row, sentence in enumerate(data.sentences):
            words = sentence.split()
            assert GRAMMAR.match(sentence), sentence
            assert data.lengths[row] == len(words) and 3 <= len(words) <= 9
            assert [data.vocab[i] for i in data.ids[row, :len(words)]] == words
            assert not data.ids[row, len(words):].any()
            assert sentiment.decode(data.ids[row]) == sentence
            assert data.labels[row] == _rule(sentence), sentence


def test_generation_is_deterministic_and_the_split_disjoint():
    train, test = load_sentiment("train"), load_sentiment("test")
    sentiment._generate_splits.cache_clear()
    again = load_sentiment("train")
    assert again.sentences == train.sentences and np.array_equal(again.ids, train.ids)
    assert train.sentences[:3] == ("the film wasn't very dull but not very great",
                                   "the film isn't extremely boring",
                                   "this isn't very great but never very great")
    assert len(set(train.sentences)) == 2000 and len(set(test.sentences)) == 500
    assert not set(train.sentences) & set(test.sentences)
    with pytest.raises(ValueError, match="'val'"):
        load_sentiment("val")


def test_same_words_in_another_order_can_carry_another_label():
    """A bag of words cannot reach 100%: sentences with the same multiset of words, opposite labels."""
    for data in (load_sentiment("train"), load_sentiment("test")):
        labels_by_bag = collections.defaultdict(set)
        for sentence, label in zip(data.sentences, data.labels.tolist()):
            labels_by_bag[tuple(sorted(sentence.split()))].add(label)
        conflicting = sum(len(labels) == 2 for labels in labels_by_bag.values())
        assert conflicting >= 50


def test_sentiment_encode_decode():
    ids = sentiment.encode("it was not good")
    assert ids.dtype == np.int64 and [sentiment.VOCAB[i] for i in ids] == ["it", "was", "not", "good"]
    assert sentiment.decode(np.concatenate([ids, [0, 0]])) == "it was not good"
    with pytest.raises(ValueError, match=r"'nto' \(word 2\)"):
        sentiment.encode("it was nto good")
    with pytest.raises(ValueError, match="outside"):
        sentiment.decode([99])


@settings(max_examples=20, deadline=None)
@given(rows=st.lists(st.integers(0, 2499), max_size=6), extra=st.integers(0, 3))
def test_encode_batch_pads_each_sentence_as_a_hand_loop(rows, extra):
    sentences = [(load_sentiment("train").sentences + load_sentiment("test").sentences)[row] for row in rows]
    longest = max((len(sentence.split()) for sentence in sentences), default=0)
    ids, lengths = sentiment.encode_batch(sentences, longest + extra if extra else None)
    assert ids.shape == (len(sentences), longest + extra) and ids.dtype == lengths.dtype == np.int64
    for n, sentence in enumerate(sentences):
        words = sentence.split()
        assert lengths[n] == len(words)
        assert [sentiment.VOCAB[i] for i in ids[n]] == words + ["<pad>"] * (longest + extra - len(words))
    if longest:
        with pytest.raises(ValueError, match=f"width {longest - 1} is shorter than the longest sentence"):
            sentiment.encode_batch(sentences, longest - 1)

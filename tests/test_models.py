"""Tests of tinygrad_rnn.models: each value against an independent computation (the hand-derived
NumPy references in tinygrad_rnn.bptt, a model run from scratch, a closed-form distribution)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn.nn as nn
from tinygrad_rnn import Tensor, bptt
from tinygrad_rnn.data import CharVocab
from tinygrad_rnn.models import CharLM, SentimentClassifier, build_model, default_prime
from tinygrad_rnn.random import manual_seed

FAST = settings(max_examples=10, deadline=None)
REFERENCES = {"lstm": bptt.lstm, "gru": bptt.gru, "rnn": bptt.rnn}


class MinimalGatedCell(nn.Cell):
    """A user-written cell: f = σ(x W_f^T + h U_f^T), h' = (1 - f) h + f tanh(x W^T + (f h) U^T)."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        rng = np.random.default_rng(input_size * 100 + hidden_size)
        for name, shape in (("W_f", (hidden_size, input_size)), ("U_f", (hidden_size, hidden_size)),
                            ("W", (hidden_size, input_size)), ("U", (hidden_size, hidden_size))):
            setattr(self, name, nn.Parameter(rng.uniform(-0.5, 0.5, shape).astype(np.float32)))

    def forward(self, x, h):
        f = (x @ self.W_f.T + h @ self.U_f.T).sigmoid()
        candidate = (x @ self.W.T + (f * h) @ self.U.T).tanh()
        return h + f * (candidate - h)


def log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def reference_logits(model, ids):
    """logits (T, V) of a one-layer CharLM on ids (T,), by the NumPy reference of its cell."""
    params = {name: getattr(model.rnn, f"{name}_l0").data for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    xs = model.embedding.weight.data[ids][:, None, :]
    outputs, _, _ = REFERENCES[model.cell].forward(xs, None, params)
    return outputs[:, 0] @ model.decoder.weight.data.T + model.decoder.bias.data


def tiny_lm(cell="lstm", vocab_size=6, seed=0, **kwargs):
    manual_seed(seed)
    return CharLM(vocab_size, hidden_size=5, embedding_dim=4, cell=cell, dtype=np.float64, **kwargs)


# ===================================================================== CharLM
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_charlm_forward_matches_the_hand_derived_reference(cell):
    model = tiny_lm(cell)
    ids = np.array([0, 3, 1, 5, 2, 2, 4])
    logits, _ = model(ids[:, None])
    assert logits.shape == (7, 1, 6)
    np.testing.assert_allclose(logits.data[:, 0], reference_logits(model, ids), rtol=1e-10, atol=1e-12)


@FAST
@given(cell=st.sampled_from(["lstm", "gru", "rnn"]), layers=st.integers(1, 2), steps=st.integers(2, 9),
       batch=st.integers(1, 3), data=st.data())
def test_charlm_state_carries_a_sequence_across_calls(cell, layers, steps, batch, data):
    model = tiny_lm(cell, num_layers=layers)
    split = data.draw(st.integers(1, steps - 1))
    ids = np.random.default_rng(steps * 7 + batch).integers(0, 6, size=(steps, batch))
    whole, whole_state = model(ids)
    first, state = model(ids[:split])
    second, state = model(ids[split:], state)
    np.testing.assert_allclose(np.concatenate([first.data, second.data]), whole.data, rtol=1e-12, atol=1e-12)
    for part, expected in zip(state, whole_state) if isinstance(state, tuple) else [(state, whole_state)]:
        assert part.shape == (layers, batch, 5)
        np.testing.assert_allclose(part.data, expected.data, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_score_is_the_log_likelihood_of_each_next_character(cell):
    vocab = CharVocab("abcdef")
    model = tiny_lm(cell)
    text = "abcfedcabbadfe"
    ids = vocab.encode(text)
    log_probs = log_softmax(reference_logits(model, ids))
    expected = sum(log_probs[t, ids[t + 1]] for t in range(len(ids) - 1))
    score = model.score(text, vocab, chunk=4)  # several chunks, state carried across them
    assert score["log_likelihood"] == pytest.approx(expected, rel=1e-10)
    assert score["nats_per_char"] == pytest.approx(-expected / (len(text) - 1), rel=1e-10)
    assert score["perplexity"] == pytest.approx(math.exp(score["nats_per_char"]), rel=1e-12)


def test_score_errors_name_the_problem():
    vocab, model = CharVocab("abcdef"), tiny_lm()
    with pytest.raises(ValueError, match="at least 2 characters"):
        model.score("a", vocab)
    with pytest.raises(ValueError, match="'z'"):
        model.score("abz", vocab)
    with pytest.raises(ValueError, match="the vocabulary has 3 characters but the model was built for 6"):
        model.score("abc", CharVocab("abc"))


def test_score_and_sample_leave_the_training_mode_as_it_was():
    vocab, model = CharVocab("abcdef"), tiny_lm(dropout=0.5)
    model.score("abcabc", vocab)
    model.sample(vocab, "ab", 3, seed=0)
    assert model.training and model.dropout.training
    model.eval()
    model.score("abcabc", vocab)
    assert not model.training


def test_sample_is_reproducible_for_a_seed_and_starts_with_the_prime():
    vocab, model = CharVocab("abcdef"), tiny_lm()
    first = model.sample(vocab, "fa", 40, temperature=1.3, seed=7)
    assert first == model.sample(vocab, "fa", 40, temperature=1.3, seed=7)
    assert first.startswith("fa") and len(first) == 42 and set(first) <= set("abcdef")
    assert any(model.sample(vocab, "fa", 40, temperature=1.3, seed=seed) != first for seed in range(8, 12))
    assert model.sample(vocab, "fa", 0, seed=1) == "fa"


def test_sample_at_a_tiny_temperature_is_greedy_decoding_from_scratch():
    vocab, model = CharVocab("abcdef"), tiny_lm(seed=3)
    ids = list(vocab.encode("cab"))
    for _ in range(12):  # re-run the whole prefix each time: no state carried
        logits, _ = model(np.array(ids)[:, None])
        ids.append(int(np.argmax(logits.data[-1, 0])))
    assert model.sample(vocab, "cab", 12, temperature=1e-6, seed=0) == vocab.decode(ids)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sample_draws_from_the_softmax_at_the_temperature(temperature):
    vocab, model = CharVocab("abcd"), tiny_lm(vocab_size=4)
    bias = np.array([1.0, 0.0, -0.5, 0.3])
    model.decoder.weight.data[...] = 0.0  # the next-character distribution is softmax(bias / T) everywhere
    model.decoder.bias.data[...] = bias
    draws = 2000
    text = model.sample(vocab, "a", draws, temperature=temperature, seed=11)[1:]
    expected = np.exp(log_softmax(bias / temperature))
    observed = np.bincount(vocab.encode(text), minlength=4) / draws
    np.testing.assert_allclose(observed, expected, atol=4 * np.sqrt(expected * (1 - expected) / draws).max())


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf")])
def test_sample_rejects_a_temperature_that_is_not_positive(temperature):
    vocab, model = CharVocab("abcdef"), tiny_lm()
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        model.sample(vocab, "a", 5, temperature=temperature)


def test_sample_rejects_a_bad_prime_or_length():
    vocab, model = CharVocab("abcdef"), tiny_lm()
    with pytest.raises(ValueError, match="prime.*'q'"):
        model.sample(vocab, "aq", 5)
    with pytest.raises(ValueError, match="prime must be a non-empty string"):
        model.sample(vocab, "", 5)
    with pytest.raises(ValueError, match="length"):
        model.sample(vocab, "a", -1)


def test_default_prime_is_a_newline_when_the_vocabulary_has_one():
    assert default_prime(CharVocab("ab\nc")) == "\n"
    assert default_prime(CharVocab("cab")) == "a"


# ===================================================================== configs and cells
@pytest.mark.parametrize("model", [
    lambda: CharLM(7, hidden_size=6, embedding_dim=3, cell="gru", num_layers=2, dropout=0.1),
    lambda: SentimentClassifier(32, embedding_dim=4, hidden_size=5, cell="rnn"),
])
def test_a_config_rebuilds_a_model_of_the_same_shape(model):
    model = model()
    rebuilt = build_model(model.config())
    assert type(rebuilt) is type(model)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert rebuilt.config() == model.config()


def test_a_custom_cell_trains_inside_charlm_and_needs_its_factory_to_rebuild():
    model = CharLM(5, hidden_size=4, embedding_dim=3, cell=MinimalGatedCell, num_layers=2)
    logits, state = model(np.array([[0, 1], [2, 3], [4, 0]]))
    assert logits.shape == (3, 2, 5) and state.shape == (2, 2, 4)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.config()["cell"].endswith("MinimalGatedCell")
    with pytest.raises(ValueError, match="pass cell="):
        build_model(model.config())
    rebuilt = build_model(model.config(), cell=MinimalGatedCell)
    assert set(rebuilt.state_dict()) == set(model.state_dict())


def test_bad_model_arguments_are_named():
    with pytest.raises(ValueError, match="cell must be one of"):
        CharLM(5, cell="transformer")
    with pytest.raises(TypeError, match="not a MinimalGatedCell instance"):
        CharLM(5, cell=MinimalGatedCell(3, 3))
    with pytest.raises(TypeError, match="returned int"):
        CharLM(5, cell=lambda d, h: 3)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        CharLM(5, hidden_size=0)
    with pytest.raises(ValueError, match="ids must be a \\(T, N\\) integer array"):
        CharLM(5)(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="'model'"):
        build_model({"vocab_size": 3})
    with pytest.raises(ValueError, match="lacks the entry 'hidden_size'"):
        build_model({"model": "CharLM", "vocab_size": 3})


# ===================================================================== SentimentClassifier
@FAST
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), cell=st.sampled_from(["lstm", "gru", "rnn"]),
       seed=st.integers(0, 2**16))
def test_classifier_reads_each_sentence_to_its_own_end(lengths, cell, seed):
    manual_seed(seed)
    model = SentimentClassifier(10, embedding_dim=3, hidden_size=4, cell=cell, dtype=np.float64)
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 10, size=(len(lengths), 6))  # the padding holds random ids: they must not matter
    logits = model(ids, np.array(lengths))
    assert logits.shape == (len(lengths), 2)
    for row, length in enumerate(lengths):
        alone = model(ids[row:row + 1, :length])  # no padding, no lengths
        np.testing.assert_allclose(logits.data[row], alone.data[0], rtol=1e-10, atol=1e-12)


def test_classifier_uses_the_last_layer_hidden_state_by_the_reference():
    manual_seed(5)
    model = SentimentClassifier(10, embedding_dim=3, hidden_size=4, cell="lstm", dtype=np.float64)
    ids = np.array([[1, 2, 3, 0], [4, 5, 6, 7]])
    lengths = np.array([3, 4])
    params = {name: getattr(model.rnn, f"{name}_l0").data for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    xs = model.embedding.weight.data[ids].transpose(1, 0, 2)
    _, (h_n, _), _ = bptt.lstm.forward(xs, None, params, lengths)
    expected = h_n @ model.classifier.weight.data.T + model.classifier.bias.data
    np.testing.assert_allclose(model(ids, lengths).data, expected, rtol=1e-10, atol=1e-12)


def test_classifier_accepts_a_tensor_of_ids():
    model = SentimentClassifier(10, embedding_dim=3, hidden_size=4)
    ids = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(model(Tensor(ids)).data, model(ids).data)

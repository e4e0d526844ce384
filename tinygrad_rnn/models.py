"""Ready-made models: a character language model and a many-to-one sentiment classifier.

Shapes: T time steps, N batch, V vocabulary size, E embedding size, H hidden size, L layers.

Each model can describe itself as a plain dict (``config()``) from which ``build_model`` makes a
fresh model of the same shape, so a checkpoint (weights + config) is enough to rebuild it.

The recurrent core is chosen by ``cell``: ``"lstm"``, ``"gru"`` or ``"rnn"`` (the built-in layers,
PyTorch's parameter names), or a factory ``cell(input_size, hidden_size) -> nn.Cell`` (a Cell
subclass itself qualifies), unrolled by ``nn.StackedRecurrent``. A factory cannot be written into
a config: the config records its name, and rebuilding needs the factory passed again. ``dtype``
applies to the embedding, the decoder and the built-in cells; a factory makes its cells in the
dtype it chooses.
"""
import math
import numbers

import numpy as np

from . import functional as F
from . import nn
from ._checks import check_int, describe
from .nn.cells import map_state
from .data.text import CharVocab
from .tensor import Tensor, no_grad

__all__ = ["CharLM", "SentimentClassifier", "build_model", "recurrent_core", "detach_state", "evaluating",
           "positive_int", "default_prime"]

BUILTIN_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def recurrent_core(cell, input_size, hidden_size, num_layers=1, dropout=0.0, batch_first=False, dtype=None):
    """The recurrent layers for ``cell`` (a built-in name or a Cell factory), as StackedRecurrent."""
    if isinstance(cell, str):
        if cell not in BUILTIN_CELLS:
            raise ValueError(f"cell must be one of {sorted(BUILTIN_CELLS)} or a Cell factory, got {cell!r}")
        return BUILTIN_CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=batch_first,
                                   dropout=dropout, dtype=dtype)
    if isinstance(cell, nn.Module):
        raise TypeError(f"cell must be a factory such as the Cell class, not a {type(cell).__name__} instance: "
                        f"every layer needs a cell of its own")
    if not callable(cell):
        raise TypeError(f"cell must be a name {sorted(BUILTIN_CELLS)} or a callable "
                        f"(input_size, hidden_size) -> nn.Cell, got {type(cell).__name__}")

    def make_cell(layer_input_size, layer, direction):
        made = cell(layer_input_size, hidden_size)
        if not isinstance(made, nn.Cell):
            raise TypeError(f"the cell factory {_cell_name(cell)} returned {type(made).__name__}, "
                            f"not an nn.Cell")
        return made

    return nn.StackedRecurrent(make_cell, input_size, hidden_size, num_layers=num_layers,
                               batch_first=batch_first, dropout=dropout)


def _cell_name(cell):
    """What a config records for ``cell``: the built-in name, or the factory's qualified name."""
    if isinstance(cell, str):
        return cell
    return f"{getattr(cell, '__module__', '?')}.{getattr(cell, '__qualname__', type(cell).__name__)}"


def detach_state(state):
    """A recurrent state (a Tensor or a tuple of them) cut off from the graph, values kept."""
    return map_state(Tensor.detach, state)


def positive_int(name, value, who="model"):
    """``value`` as an int: TypeError naming ``who`` and ``name`` unless it is an int (not a bool,
    float or str), ValueError unless it is >= 1."""
    if check_int(who, name, value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class CharLM(nn.Module):
    """Character language model: Embedding -> recurrent layers -> Linear, time-major.

        e_t = E[x_t]  (N, E);   h_t = recurrent(e_1..e_t)  (N, H);   logits_t = h_t W^T + b  (N, V)

    ``forward(ids (T, N) int, state=None) -> (logits (T, N, V), state)``; the state is the
    recurrent layers' final state (h_n (L, N, H), or (h_n, c_n) for an LSTM), to be passed to
    the next call. ``embedding_dim`` defaults to ``hidden_size``. ``dropout`` acts between the
    recurrent layers and on the last layer's outputs, while training only.
    """

    def __init__(self, vocab_size, hidden_size=128, embedding_dim=None, cell="lstm", num_layers=1, dropout=0.0,
                 dtype=None):
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size, "CharLM")
        self.hidden_size = positive_int("hidden_size", hidden_size, "CharLM")
        self.embedding_dim = positive_int("embedding_dim", hidden_size if embedding_dim is None else embedding_dim,
                                          "CharLM")
        self.num_layers = positive_int("num_layers", num_layers, "CharLM")
        self.cell, self.dropout_p = cell, dropout
        self.embedding = nn.Embedding(vocab_size, self.embedding_dim, dtype=dtype)
        self.rnn = recurrent_core(cell, self.embedding_dim, hidden_size, num_layers, dropout, dtype=dtype)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size, dtype=dtype)

    def config(self):
        """The constructor's arguments as a JSON-friendly dict (plus ``"model": "CharLM"``)."""
        return {"model": "CharLM", "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "embedding_dim": self.embedding_dim, "cell": _cell_name(self.cell), "num_layers": self.num_layers,
                "dropout": self.dropout_p, "dtype": self.decoder.weight.dtype.name}

    def forward(self, ids, state=None):
        ids = _id_array(ids, "CharLM", "(T, N)", 2)
        outputs, state = self.rnn(self.embedding(ids), state)
        return self.decoder(self.dropout(outputs)), state

    @no_grad()
    def score(self, text, vocab, chunk=256):
        """How well the model predicts ``text``: each character from the ones before it.

            log_likelihood = sum_{t=1}^{n-1} log p(x_t | x_0..x_{t-1})       (the first char is given)
            nats_per_char  = -log_likelihood / (n - 1),   perplexity = exp(nats_per_char)

        Runs in eval mode (no dropout), ``chunk`` characters at a time with the state carried.
        Raises ValueError for a text shorter than 2 characters or with characters outside ``vocab``.
        """
        self._check_vocab(vocab)
        if not isinstance(text, str):
            raise TypeError(f"score: text must be a str, got {describe(text)}")
        check_int("score", "chunk", chunk, minimum=1)
        ids = vocab.encode(text)
        if len(ids) < 2:
            raise ValueError(f"score needs a text of at least 2 characters, got {len(ids)}")
        with evaluating(self):
            state, log_likelihood = None, 0.0
            for start in range(0, len(ids) - 1, chunk):
                inputs = ids[start:start + chunk]
                targets = ids[start + 1:start + 1 + chunk]
                inputs = inputs[:len(targets)]
                logits, state = self(inputs[:, None], state)
                losses = F.cross_entropy(logits[:, 0], targets, reduction="sum")
                log_likelihood -= float(losses.item())
        nats = -log_likelihood / (len(ids) - 1)
        return {"log_likelihood": log_likelihood, "nats_per_char": nats, "perplexity": math.exp(nats)}

    @no_grad()
    def sample(self, vocab, prime, length, temperature=1.0, seed=None):
        """``prime`` followed by ``length`` characters drawn one at a time from the model.

        Each next character is drawn from softmax(logits / temperature): below 1 sharper, above 1
        flatter. The same ``seed`` gives the same text. Runs in eval mode (no dropout).
        Raises ValueError for an empty prime, a prime with characters outside ``vocab``, a
        negative length or a temperature that is not a positive finite number.
        """
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
            raise TypeError(f"sample: temperature must be a real number, got {describe(temperature)}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if check_int("sample", "length", length) < 0:
            raise ValueError(f"length must be a non-negative integer, got {length!r}")
        if seed is not None:
            check_int("sample", "seed", seed, minimum=0)
        self._check_vocab(vocab)
        if not isinstance(prime, str) or not prime:
            raise ValueError(f"prime must be a non-empty string (the text to continue), got {prime!r}")
        try:
            ids = vocab.encode(prime)
        except ValueError as error:
            raise ValueError(f"prime: {error}") from None
        rng = np.random.default_rng(seed)
        drawn = []
        with evaluating(self):
            logits, state = self(ids[:, None])
            for _ in range(length):
                next_id = _draw(logits.data[-1, 0], temperature, rng)
                drawn.append(next_id)
                logits, state = self(np.array([[next_id]]), state)
        return prime + vocab.decode(drawn)

    def _check_vocab(self, vocab):
        if not isinstance(vocab, CharVocab):
            raise TypeError(f"vocab must be a data.CharVocab, got {describe(vocab)}")
        if len(vocab) != self.vocab_size:
            raise ValueError(f"the vocabulary has {len(vocab)} characters but the model was built for "
                             f"{self.vocab_size}")

    @classmethod
    def from_config(cls, config, cell=None):
        return cls(config["vocab_size"], config["hidden_size"], config["embedding_dim"],
                   _config_cell(config, cell), config["num_layers"], config["dropout"], config["dtype"])


class SentimentClassifier(nn.Module):
    """Many-to-one classifier: Embedding -> recurrent layer over each sentence's own length ->
    Linear on the final hidden state.

        h = h_n of the last layer at step lengths[n] - 1  (N, H);   logits = h W^T + b  (N, 2)

    ``forward(ids (N, T) int batch-first, lengths (N,) or None) -> logits (N, 2)``; padding after
    a sentence's length never reaches its logits.
    """

    num_classes = 2

    def __init__(self, vocab_size, embedding_dim=16, hidden_size=32, cell="lstm", dtype=None):
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size, "SentimentClassifier")
        self.embedding_dim = positive_int("embedding_dim", embedding_dim, "SentimentClassifier")
        self.hidden_size = positive_int("hidden_size", hidden_size, "SentimentClassifier")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim, dtype=dtype)
        self.rnn = recurrent_core(cell, embedding_dim, hidden_size, batch_first=True, dtype=dtype)
        self.classifier = nn.Linear(hidden_size, self.num_classes, dtype=dtype)

    def config(self):
        """The constructor's arguments as a JSON-friendly dict (plus ``"model": "SentimentClassifier"``)."""
        return {"model": "SentimentClassifier", "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "hidden_size": self.hidden_size, "cell": _cell_name(self.cell),
                "dtype": self.classifier.weight.dtype.name}

    def forward(self, ids, lengths=None):
        ids = _id_array(ids, "SentimentClassifier", "(N, T)", 2)
        _, h_n = self.rnn(self.embedding(ids), lengths=lengths)
        h_last = (h_n if isinstance(h_n, Tensor) else h_n[0])[-1]
        return self.classifier(h_last)

    @classmethod
    def from_config(cls, config, cell=None):
        return cls(config["vocab_size"], config["embedding_dim"], config["hidden_size"],
                   _config_cell(config, cell), config["dtype"])


MODELS = {"CharLM": CharLM, "SentimentClassifier": SentimentClassifier}


def build_model(config, cell=None):
    """A fresh model of the kind and shape ``config`` (from ``model.config()``) describes.

    ``cell``: the Cell factory, needed when the config names one (not "lstm", "gru" or "rnn").
    """
    if not isinstance(config, dict):
        raise TypeError(f"build_model: config must be a dict (from model.config()), got {describe(config)}")
    kind = config.get("model")
    if kind not in MODELS:
        raise ValueError(f"a model config needs 'model' set to one of {sorted(MODELS)}, got {kind!r}")
    try:
        return MODELS[kind].from_config(config, cell)
    except KeyError as error:
        raise ValueError(f"the {kind} config lacks the entry {error.args[0]!r}") from None


def _config_cell(config, cell):
    name = config["cell"]
    if cell is not None:
        return cell
    if name not in BUILTIN_CELLS:
        raise ValueError(f"the model was built with the custom cell {name}; pass cell=<that factory> "
                         f"to rebuild it")
    return name


def _id_array(ids, model, layout, ndim):
    if not isinstance(ids, (Tensor, np.ndarray, list, tuple)):
        raise TypeError(f"{model}: ids must be a {layout} integer array, got {describe(ids)}")
    ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if ids.ndim != ndim or ids.dtype.kind not in "iu":
        raise ValueError(f"{model}: ids must be a {layout} integer array, got dtype {ids.dtype} and shape {ids.shape}")
    return ids


def default_prime(vocab):
    """A prime for sampling when none is given: a newline if ``vocab`` has one, else its first character."""
    chars = vocab.to_list()
    return "\n" if "\n" in chars else chars[0]


def _draw(logits, temperature, rng):
    """One index drawn from softmax(logits / temperature), computed stably in float64."""
    scaled = logits.astype(np.float64) / temperature
    probabilities = np.exp(scaled - scaled.max())
    probabilities /= probabilities.sum()
    return int(rng.choice(len(probabilities), p=probabilities))


class evaluating:
    """``with evaluating(module):`` runs the block in eval mode, then restores the previous mode."""

    def __init__(self, module):
        self.module = module

    def __enter__(self):
        self.was_training = self.module.training
        self.module.eval()

    def __exit__(self, *exc):
        self.module.train(self.was_training)

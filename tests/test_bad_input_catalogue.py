"""A catalogue of bad inputs to the public API above the tensor core: every constructor and forward
of tinygrad_rnn.nn, Module's methods, the optimizers, the functional losses, the data helpers,
gradcheck and friends, tr.bptt.crosscheck and the models. Each row is (id, call, exception type,
regular expression the message must match); the expression names the argument, the shapes or the
dtypes involved. A few calls at the end are accepted on purpose and must work.

(Tensor/ops-level input, checkpoint files and the training command are catalogued elsewhere.)
"""
import re

import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn import data, nn, optim
from tinygrad_rnn import functional as F
from tinygrad_rnn.data import sentiment
from tinygrad_rnn.gradcheck import GradcheckError
from tinygrad_rnn.models import CharLM, SentimentClassifier, build_model

F32, F64 = np.float32, np.float64


def t(*shape, dtype=F32, requires_grad=False):
    return tr.Tensor(np.random.default_rng(0).standard_normal(shape).astype(dtype), requires_grad=requires_grad)


def p(*shape):
    return tr.Tensor(np.zeros(shape), requires_grad=True)


def esc(text):
    return re.escape(text)


# Built once: calls below only read them.
LINEAR = nn.Linear(3, 2)
EMB = nn.Embedding(5, 3)
RNN_CELL = nn.RNNCell(3, 4)
LSTM_CELL = nn.LSTMCell(3, 4)
GRU_CELL = nn.GRUCell(3, 4)
LSTM = nn.LSTM(3, 4, num_layers=2)
LSTM_BF = nn.LSTM(3, 4, batch_first=True)
GRU = nn.GRU(3, 4, bidirectional=True)
RNN = nn.RNN(3, 4)
REC = nn.Recurrent(nn.GRUCell(3, 4))
REC_BF = nn.Recurrent(nn.LSTMCell(3, 4), batch_first=True)
X = t(5, 2, 3)
VOCAB = data.CharVocab("abcdef")
LM = CharLM(6, hidden_size=4)
SC = SentimentClassifier(31, 4, 4)


def write(tmp, name, content):
    path = tmp / name
    path.write_bytes(content)
    return path


# Calls that take an argument get pytest's tmp_path.
def load_text_of(content, name):
    return lambda tmp_path: data.load_text(write(tmp_path, name, content))


def saved_linear_then(action):
    def call(tmp_path):
        path = tmp_path / "lin.npz"
        nn.Linear(3, 2).save(path)
        return action(path)
    return call


def missing_path(action):
    return lambda tmp_path: action(tmp_path / "nowhere" / "missing.npz")


def module_with_bad_parameter():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_parameter("w", np.zeros(3))
    return Bad()


def step_with(optimizer_class, grad, **hyper):
    param = p(2)
    opt = optimizer_class([param], **hyper)
    param.grad = grad
    opt.step()


def float32_gradcheck():
    with pytest.warns(UserWarning, match="input 0 is float32"):
        tr.gradcheck(lambda x: (x * x).sum(), (t(3, requires_grad=True),))


def state_dict_with(key, value):
    state = LINEAR.state_dict()
    state[key] = value
    return state


CATALOGUE = [
    # ------------------------------------------------------------------ Linear
    ("Linear in_features float", lambda: nn.Linear(2.5, 3), TypeError, "Linear: in_features must be an int, got float 2.5"),
    ("Linear in_features str", lambda: nn.Linear("3", 3), TypeError, "Linear: in_features must be an int, got str '3'"),
    ("Linear in_features bool", lambda: nn.Linear(True, 3), TypeError, "Linear: in_features must be an int, got bool"),
    ("Linear in_features ndarray", lambda: nn.Linear(np.ones((3, 2)), 2), TypeError,
     esc("Linear: in_features must be an int, got ndarray of shape (3, 2)")),
    ("Linear in_features 0-d ndarray", lambda: nn.Linear(np.array(3), 2), TypeError,
     esc("Linear: in_features must be an int, got ndarray of shape ()")),
    ("Linear in_features None", lambda: nn.Linear(None, 2), TypeError, "Linear: in_features must be an int, got NoneType"),
    ("Linear in_features negative", lambda: nn.Linear(-1, 2), ValueError, "Linear: in_features must be at least 0, got -1"),
    ("Linear out_features float", lambda: nn.Linear(3, 2.0), TypeError, "Linear: out_features must be an int, got float 2.0"),
    ("Linear out_features negative", lambda: nn.Linear(3, -2), ValueError, "Linear: out_features must be at least 0, got -2"),
    ("Linear bias int", lambda: nn.Linear(3, 2, bias=1), TypeError, "Linear: bias must be True or False, got int 1"),
    ("Linear bias str", lambda: nn.Linear(3, 2, bias="no"), TypeError, "Linear: bias must be True or False, got str 'no'"),
    ("Linear dtype int", lambda: nn.Linear(3, 2, dtype=np.int64), TypeError,
     "Linear: dtype must be a floating-point dtype such as np.float32, got int64"),
    ("Linear dtype nonsense", lambda: nn.Linear(3, 2, dtype="float3"), TypeError,
     "Linear: dtype must be a floating-point dtype such as np.float32, got str 'float3'"),
    ("Linear dtype bool", lambda: nn.Linear(3, 2, dtype=bool), TypeError, "Linear: dtype must be a floating-point dtype.*got bool"),
    ("Linear forward int input", lambda: LINEAR(tr.Tensor(np.ones((2, 3), np.int64))), TypeError,
     "Linear: input has dtype int64 but the layer's parameters have dtype float32"),
    ("Linear forward float64 input", lambda: LINEAR(t(2, 3, dtype=F64)), TypeError,
     "Linear: input has dtype float64 but the layer's parameters have dtype float32"),
    ("Linear forward ndarray", lambda: LINEAR(np.ones((2, 3), F32)), TypeError,
     esc("Linear: input must be a Tensor, got ndarray of shape (2, 3)")),
    ("Linear forward list", lambda: LINEAR([[1.0, 2.0, 3.0]]), TypeError, "Linear: input must be a Tensor, got list"),
    ("Linear forward wrong features", lambda: LINEAR(t(2, 4)), ValueError,
     esc("Linear: expected input with last dimension 3, got shape (2, 4)")),
    ("Linear forward 0-d", lambda: LINEAR(tr.Tensor(np.float32(1.0))), ValueError,
     esc("Linear: expected input with last dimension 3, got shape ()")),
    ("Linear forward 3-d wrong features", lambda: LINEAR(t(4, 2, 5)), ValueError, esc("got shape (4, 2, 5)")),
    # ------------------------------------------------------------------ Embedding
    ("Embedding num_embeddings negative", lambda: nn.Embedding(-5, 3), ValueError,
     "Embedding: num_embeddings must be at least 0, got -5"),
    ("Embedding num_embeddings float", lambda: nn.Embedding(5.0, 3), TypeError, "Embedding: num_embeddings must be an int, got float"),
    ("Embedding embedding_dim str", lambda: nn.Embedding(5, "3"), TypeError, "Embedding: embedding_dim must be an int, got str"),
    ("Embedding embedding_dim negative", lambda: nn.Embedding(5, -1), ValueError, "Embedding: embedding_dim must be at least 0, got -1"),
    ("Embedding dtype int", lambda: nn.Embedding(5, 3, dtype="int32"), TypeError, "Embedding: dtype must be a floating-point dtype.*int32"),
    ("Embedding id too large", lambda: EMB(np.array([1, 5])), IndexError, "Embedding: id 5 is out of range for 5 embeddings"),
    ("Embedding id negative", lambda: EMB(np.array([[0, -1]])), IndexError, "Embedding: id -1 is out of range for 5 embeddings"),
    ("Embedding float ids", lambda: EMB(np.array([1.0, 2.0])), TypeError, "Embedding: ids must be integers, got dtype float64"),
    ("Embedding float Tensor ids", lambda: EMB(t(2)), TypeError, "Embedding: ids must be integers, got dtype float32"),
    ("Embedding bool ids", lambda: EMB(np.array([True, False])), TypeError, "Embedding: ids must be integers, got dtype bool"),
    ("Embedding str ids", lambda: EMB("abc"), TypeError, "Embedding: ids must be an integer ndarray or Tensor, got str"),
    ("Embedding None ids", lambda: EMB(None), TypeError, "Embedding: ids must be an integer ndarray or Tensor, got NoneType"),
    ("Embedding list of floats", lambda: EMB([0.5, 1.0]), TypeError, "Embedding: ids must be integers, got dtype float64"),
    # ------------------------------------------------------------------ Dropout
    ("Dropout p negative", lambda: nn.Dropout(-0.1), ValueError, esc("Dropout: p must be in [0, 1.0), got -0.1")),
    ("Dropout p above 1", lambda: nn.Dropout(1.5), ValueError, esc("Dropout: p must be in [0, 1.0), got 1.5")),
    ("Dropout p one", lambda: nn.Dropout(1), ValueError, esc("Dropout: p must be in [0, 1.0), got 1.0")),
    ("Dropout p str", lambda: nn.Dropout("0.5"), TypeError, "Dropout: p must be a real number, got str '0.5'"),
    ("Dropout p bool", lambda: nn.Dropout(True), TypeError, "Dropout: p must be a real number, got bool True"),
    ("Dropout p nan", lambda: nn.Dropout(float("nan")), ValueError, "Dropout: p must be in .*got nan"),
    ("Dropout forward int", lambda: nn.Dropout(0.5)(tr.Tensor(np.ones(3, np.int64))), TypeError,
     "dropout: x must be floating-point, got dtype int64"),
    ("Dropout forward ndarray", lambda: nn.Dropout(0.5)(np.ones(3)), TypeError, "dropout: x must be a Tensor, got ndarray"),
    # ------------------------------------------------------------------ cells: constructors
    ("RNNCell input_size float", lambda: nn.RNNCell(3.0, 4), TypeError, "RNNCell: input_size must be an int, got float 3.0"),
    ("LSTMCell hidden_size str", lambda: nn.LSTMCell(3, "4"), TypeError, "LSTMCell: hidden_size must be an int, got str '4'"),
    ("GRUCell input_size bool", lambda: nn.GRUCell(False, 4), TypeError, "GRUCell: input_size must be an int, got bool False"),
    ("GRUCell hidden_size zero", lambda: nn.GRUCell(3, 0), ValueError, "GRUCell: sizes must be positive, got input_size=3, hidden_size=0"),
    ("LSTMCell input_size negative", lambda: nn.LSTMCell(-3, 4), ValueError, "LSTMCell: sizes must be positive, got input_size=-3"),
    ("RNNCell nonlinearity unknown", lambda: nn.RNNCell(3, 4, nonlinearity="Tanh"), ValueError,
     "RNNCell: nonlinearity must be one of .*'tanh'.*got 'Tanh'"),
    ("RNNCell nonlinearity list", lambda: nn.RNNCell(3, 4, nonlinearity=["tanh"]), ValueError,
     r"RNNCell: nonlinearity must be one of .*got \['tanh'\]"),
    ("RNNCell nonlinearity None", lambda: nn.RNNCell(3, 4, nonlinearity=None), ValueError, "nonlinearity must be one of .*got None"),
    ("LSTMCell bias str", lambda: nn.LSTMCell(3, 4, bias="False"), TypeError, "LSTMCell: bias must be True or False, got str 'False'"),
    ("GRUCell dtype int", lambda: nn.GRUCell(3, 4, dtype=np.int32), TypeError, "GRUCell: dtype must be a floating-point dtype.*int32"),
    # ------------------------------------------------------------------ cells: forward
    ("RNNCell ndarray input", lambda: RNN_CELL(np.zeros((2, 3), F32)), TypeError, "RNNCell: input must be a Tensor, got ndarray"),
    ("RNNCell 3-d input", lambda: RNN_CELL(t(1, 2, 3)), ValueError, esc("RNNCell: input must be (N, D) or (D,), got shape (1, 2, 3)")),
    ("RNNCell 0-d input", lambda: RNN_CELL(tr.Tensor(np.float32(1))), ValueError, esc("input must be (N, D) or (D,), got shape ()")),
    ("LSTMCell wrong features", lambda: LSTM_CELL(t(2, 5)), ValueError,
     esc("LSTMCell: expected input size 3, got 5 (input shape (2, 5))")),
    ("LSTMCell unbatched wrong features", lambda: LSTM_CELL(t(5)), ValueError,
     esc("LSTMCell: expected input size 3, got 5 (input shape (5,))")),
    ("GRUCell int input", lambda: GRU_CELL(tr.Tensor(np.ones((2, 3), np.int32))), TypeError,
     "GRUCell: input has dtype int32 but the layer's parameters have dtype float32"),
    ("GRUCell float64 input", lambda: GRU_CELL(t(2, 3, dtype=F64)), TypeError, "GRUCell: input has dtype float64 but .*float32"),
    ("RNNCell state wrong batch", lambda: RNN_CELL(t(2, 3), t(3, 4)), ValueError, esc("RNNCell: state has shapes (3, 4), expected (2, 4)")),
    ("RNNCell state wrong hidden", lambda: RNN_CELL(t(2, 3), t(2, 5)), ValueError, esc("state has shapes (2, 5), expected (2, 4)")),
    ("RNNCell state ndarray", lambda: RNN_CELL(t(2, 3), np.zeros((2, 4), F32)), TypeError,
     esc("RNNCell: state must be a Tensor, got ndarray of shape (2, 4)")),
    ("RNNCell state float64", lambda: RNN_CELL(t(2, 3), t(2, 4, dtype=F64)), TypeError,
     "RNNCell: state has dtype float64, expected float32"),
    ("RNNCell state int", lambda: RNN_CELL(t(2, 3), tr.Tensor(np.zeros((2, 4), np.int64))), TypeError,
     "RNNCell: state has dtype int64, expected float32"),
    ("RNNCell state tuple", lambda: RNN_CELL(t(2, 3), (t(2, 4), t(2, 4))), ValueError,
     esc("RNNCell: state has shapes ((2, 4), (2, 4)), expected (2, 4)")),
    ("LSTMCell state single Tensor", lambda: LSTM_CELL(t(2, 3), t(2, 4)), ValueError,
     esc("LSTMCell: state has shapes (2, 4), expected ((2, 4), (2, 4))")),
    ("LSTMCell state three parts", lambda: LSTM_CELL(t(2, 3), (t(2, 4),) * 3), ValueError,
     esc("state has shapes ((2, 4), (2, 4), (2, 4)), expected ((2, 4), (2, 4))")),
    ("LSTMCell state part ndarray", lambda: LSTM_CELL(t(2, 3), (t(2, 4), np.zeros((2, 4), F32))), TypeError,
     "LSTMCell: state part 1 must be a Tensor, got ndarray"),
    ("LSTMCell state c wrong shape", lambda: LSTM_CELL(t(2, 3), (t(2, 4), t(2, 3))), ValueError,
     esc("state has shapes ((2, 4), (2, 3)), expected ((2, 4), (2, 4))")),
    ("LSTMCell state int", lambda: LSTM_CELL(t(2, 3), 0), TypeError, "LSTMCell: state must be a tuple of 2 Tensors, got int 0"),
    ("GRUCell unbatched input batched state", lambda: GRU_CELL(t(3), t(1, 4)), ValueError,
     esc("GRUCell: state has shapes (1, 4), expected (4,)")),
    ("GRUCell batched input unbatched state", lambda: GRU_CELL(t(2, 3), t(4)), ValueError,
     esc("GRUCell: state has shapes (4,), expected (2, 4)")),
    # ------------------------------------------------------------------ RNN / LSTM / GRU constructors
    ("LSTM hidden_size float", lambda: nn.LSTM(3, 2.5), TypeError, "LSTM: hidden_size must be an int, got float 2.5"),
    ("LSTM input_size str", lambda: nn.LSTM("3", 4), TypeError, "LSTM: input_size must be an int, got str '3'"),
    ("RNN input_size bool", lambda: nn.RNN(True, 4), TypeError, "RNN: input_size must be an int, got bool True"),
    ("GRU input_size zero", lambda: nn.GRU(0, 4), ValueError, "GRU: input_size must be at least 1, got 0"),
    ("GRU hidden_size negative", lambda: nn.GRU(3, -4), ValueError, "GRU: hidden_size must be at least 1, got -4"),
    ("LSTM num_layers zero", lambda: nn.LSTM(3, 4, num_layers=0), ValueError, "LSTM: num_layers must be at least 1, got 0"),
    ("LSTM num_layers float", lambda: nn.LSTM(3, 4, num_layers=2.0), TypeError, "LSTM: num_layers must be an int, got float 2.0"),
    ("RNN num_layers str", lambda: nn.RNN(3, 4, num_layers="2"), TypeError, "RNN: num_layers must be an int, got str '2'"),
    ("LSTM dropout above 1", lambda: nn.LSTM(3, 4, 2, dropout=2), ValueError, esc("LSTM: dropout must be in [0, 1.0), got 2.0")),
    ("LSTM dropout negative", lambda: nn.LSTM(3, 4, 2, dropout=-1), ValueError, esc("LSTM: dropout must be in [0, 1.0), got -1.0")),
    ("GRU dropout one", lambda: nn.GRU(3, 4, 2, dropout=1.0), ValueError, esc("GRU: dropout must be in [0, 1.0), got 1.0")),
    ("RNN dropout str", lambda: nn.RNN(3, 4, 2, dropout="0.1"), TypeError, "RNN: dropout must be a real number, got str"),
    ("GRU dropout None", lambda: nn.GRU(3, 4, dropout=None), TypeError, "GRU: dropout must be a real number, got NoneType"),
    ("LSTM batch_first int", lambda: nn.LSTM(3, 4, batch_first=1), TypeError, "LSTM: batch_first must be True or False, got int 1"),
    ("GRU bidirectional str", lambda: nn.GRU(3, 4, bidirectional="yes"), TypeError, "GRU: bidirectional must be True or False, got str"),
    ("LSTM bias None", lambda: nn.LSTM(3, 4, bias=None), TypeError, "LSTM: bias must be True or False, got NoneType"),
    ("RNN nonlinearity unknown", lambda: nn.RNN(3, 4, nonlinearity="gelu"), ValueError,
     "RNN: nonlinearity must be one of .*got 'gelu'"),
    ("RNN nonlinearity int", lambda: nn.RNN(3, 4, nonlinearity=1), ValueError, "RNN: nonlinearity must be one of .*got 1"),
    ("GRU dtype int", lambda: nn.GRU(3, 4, dtype=np.int16), TypeError, "GRU: dtype must be a floating-point dtype.*int16"),
    ("LSTM dtype nonsense", lambda: nn.LSTM(3, 4, dtype="fp32"), TypeError, "LSTM: dtype must be a floating-point dtype.*'fp32'"),
    ("StackedRecurrent make_cell not callable", lambda: nn.StackedRecurrent(3, 3, 4), TypeError,
     "StackedRecurrent: make_cell must be callable, got int 3"),
    ("StackedRecurrent hidden_size float", lambda: nn.StackedRecurrent(nn.GRUCell, 3, 4.0), TypeError,
     "StackedRecurrent: hidden_size must be an int, got float 4.0"),
    # ------------------------------------------------------------------ RNN / LSTM / GRU forward
    ("LSTM input list", lambda: LSTM([[[0.0] * 3]]), TypeError, "LSTM: input must be a Tensor or ndarray, got list"),
    ("LSTM input 1-d", lambda: LSTM(t(3)), ValueError, esc("LSTM: input must be (T, N, D) or unbatched (T, D), got shape (3,)")),
    ("LSTM input 4-d", lambda: LSTM(t(1, 5, 2, 3)), ValueError, esc("got shape (1, 5, 2, 3)")),
    ("LSTM batch_first 4-d names layout", lambda: LSTM_BF(t(1, 2, 5, 3)), ValueError, esc("LSTM: input must be (N, T, D)")),
    ("LSTM wrong features", lambda: LSTM(t(5, 2, 7)), ValueError, esc("LSTM: expected input size 3, got 7 (input shape (5, 2, 7))")),
    ("LSTM batch_first wrong features shows the shape passed", lambda: LSTM_BF(t(2, 5, 7)), ValueError,
     esc("LSTM: expected input size 3, got 7 (input shape (2, 5, 7))")),
    ("GRU unbatched wrong features", lambda: GRU(t(5, 7)), ValueError, esc("GRU: expected input size 3, got 7 (input shape (5, 7))")),
    ("LSTM int input", lambda: LSTM(tr.Tensor(np.ones((5, 2, 3), np.int64))), TypeError,
     "LSTM: input has dtype int64 but the layer's parameters have dtype float32"),
    ("LSTM float64 ndarray input", lambda: LSTM(np.zeros((5, 2, 3))), TypeError, "LSTM: input has dtype float64 but .*float32"),
    ("LSTM bool input", lambda: LSTM(np.zeros((5, 2, 3), bool)), TypeError, "LSTM: input has dtype bool"),
    ("GRU zero steps", lambda: GRU(t(0, 2, 3)), ValueError, esc("GRU: input of shape (0, 2, 3) has no time steps")),
    ("LSTM batch_first zero steps", lambda: LSTM_BF(t(2, 0, 3)), ValueError, esc("LSTM: input of shape (2, 0, 3) has no time steps")),
    ("LSTM hx single Tensor", lambda: LSTM(X, t(2, 2, 4)), ValueError,
     esc("LSTM: hx has shapes (2, 2, 4), expected ((2, 2, 4), (2, 2, 4))")),
    ("LSTM hx wrong layers", lambda: LSTM(X, (t(1, 2, 4), t(1, 2, 4))), ValueError,
     esc("hx has shapes ((1, 2, 4), (1, 2, 4)), expected ((2, 2, 4), (2, 2, 4))")),
    ("GRU hx missing direction", lambda: GRU(X, t(1, 2, 4)), ValueError, esc("GRU: hx has shapes (1, 2, 4), expected (2, 2, 4)")),
    ("RNN hx wrong batch", lambda: RNN(X, t(1, 3, 4)), ValueError, esc("RNN: hx has shapes (1, 3, 4), expected (1, 2, 4)")),
    ("RNN hx 2-d for batched input", lambda: RNN(X, t(2, 4)), ValueError, esc("RNN: hx has shapes (2, 4), expected (1, 2, 4)")),
    ("RNN hx 3-d for unbatched input", lambda: RNN(t(5, 3), t(1, 1, 4)), ValueError,
     esc("RNN: hx has shapes (1, 1, 4), expected (1, 4)")),
    ("RNN hx float64", lambda: RNN(X, t(1, 2, 4, dtype=F64)), TypeError, "RNN: hx has dtype float64, expected float32"),
    ("GRU hx int ndarray", lambda: GRU(X, np.zeros((2, 2, 4), np.int64)), TypeError, "GRU: hx has dtype int64, expected float32"),
    ("LSTM hx c int", lambda: LSTM(X, (t(2, 2, 4), tr.Tensor(np.zeros((2, 2, 4), np.int32)))), TypeError,
     "LSTM: hx has dtype int32, expected float32"),
    ("RNN hx list of floats", lambda: RNN(X, [0.0, 1.0]), TypeError, "RNN: hx part 0 must be a Tensor, got float 0.0"),
    ("RNN hx int", lambda: RNN(X, 0), TypeError, "RNN: hx must be a Tensor, an ndarray or a tuple of them, got int"),
    ("LSTM hx dict", lambda: LSTM(X, {"h": 1}), TypeError, "LSTM: hx must be a Tensor, an ndarray or a tuple of them, got dict"),
    ("LSTM lengths too many", lambda: LSTM(X, lengths=[5, 5, 5]), ValueError,
     esc("LSTM: lengths must have one entry per sequence: expected shape (2,), got (3,)")),
    ("LSTM lengths too few", lambda: LSTM(X, lengths=[5]), ValueError, esc("expected shape (2,), got (1,)")),
    ("LSTM lengths negative", lambda: LSTM(X, lengths=[5, -1]), ValueError,
     "LSTM: lengths must be between 1 and the sequence length 5, got -1"),
    ("LSTM lengths zero", lambda: LSTM(X, lengths=[0, 5]), ValueError, "lengths must be between 1 and the sequence length 5, got 0"),
    ("LSTM lengths too long", lambda: LSTM(X, lengths=[6, 5]), ValueError, "lengths must be between 1 and the sequence length 5, got 6"),
    ("LSTM lengths non-integer", lambda: LSTM(X, lengths=[2.5, 5]), TypeError, "LSTM: lengths must be integers, got dtype float64"),
    ("LSTM lengths integral floats", lambda: LSTM(X, lengths=[2.0, 5.0]), TypeError, "lengths must be integers, got dtype float64"),
    ("LSTM lengths bools", lambda: LSTM(X, lengths=[True, True]), TypeError, "lengths must be integers, got dtype bool"),
    ("LSTM lengths str", lambda: LSTM(X, lengths="55"), TypeError, "LSTM: lengths must be a list, ndarray or Tensor of ints, got str"),
    ("LSTM lengths int", lambda: LSTM(X, lengths=5), TypeError, "lengths must be a list, ndarray or Tensor of ints, got int"),
    ("LSTM lengths 2-d", lambda: LSTM(X, lengths=[[5, 5]]), ValueError, esc("expected shape (2,), got (1, 2)")),
    ("GRU lengths float Tensor", lambda: GRU(X, lengths=t(2)), TypeError, "GRU: lengths must be integers, got dtype float32"),
    ("LSTM batch_first lengths counted over N", lambda: LSTM_BF(t(2, 5, 3), lengths=[5, 5, 5]), ValueError,
     esc("expected shape (2,), got (3,)")),
    ("LSTM batch_first lengths over T", lambda: LSTM_BF(t(2, 5, 3), lengths=[6, 1]), ValueError,
     "sequence length 5, got 6"),
    # ------------------------------------------------------------------ Recurrent
    ("Recurrent needs a Cell", lambda: nn.Recurrent(nn.Linear(2, 2)), TypeError, "Recurrent needs an nn.Cell, got Linear"),
    ("Recurrent class not instance", lambda: nn.Recurrent(nn.GRUCell), TypeError, "Recurrent needs an nn.Cell, got type"),
    ("Recurrent batch_first str", lambda: nn.Recurrent(nn.GRUCell(3, 4), batch_first="True"), TypeError,
     "Recurrent: batch_first must be True or False, got str"),
    ("Recurrent reverse int", lambda: nn.Recurrent(nn.GRUCell(3, 4), reverse=0), TypeError,
     "Recurrent: reverse must be True or False, got int 0"),
    ("Recurrent wrong features", lambda: REC(t(5, 2, 4)), ValueError, esc("GRUCell: expected input size 3, got 4 (input shape (5, 2, 4))")),
    ("Recurrent batch_first wrong features", lambda: REC_BF(t(2, 5, 4)), ValueError,
     esc("LSTMCell: expected input size 3, got 4 (input shape (2, 5, 4))")),
    ("Recurrent int input", lambda: REC(np.zeros((5, 2, 3), np.int64)), TypeError, "GRUCell: input has dtype int64"),
    ("Recurrent state wrong shape", lambda: REC(X, t(3, 4)), ValueError, esc("GRUCell: the initial state has shapes (3, 4), expected (2, 4)")),
    ("Recurrent unbatched state batched", lambda: REC(t(5, 3), t(1, 4)), ValueError,
     esc("GRUCell: the initial state has shapes (1, 4), expected (4,)")),
    ("Recurrent state ndarray", lambda: REC(X, np.zeros((2, 4), F32)), TypeError, "GRUCell: the initial state must be a Tensor, got ndarray"),
    ("Recurrent LSTM state one Tensor", lambda: REC_BF(t(2, 5, 3), t(2, 4)), ValueError,
     esc("the initial state has shapes (2, 4), expected ((2, 4), (2, 4))")),
    ("Recurrent state float64", lambda: REC(X, t(2, 4, dtype=F64)), TypeError, "the initial state has dtype float64, expected float32"),
    ("Recurrent lengths too long", lambda: REC(X, lengths=[9, 1]), ValueError, "GRUCell: lengths must be between 1 and the sequence length 5, got 9"),
    ("Recurrent zero steps", lambda: REC(t(0, 2, 3)), ValueError, "has no time steps"),
    # ------------------------------------------------------------------ Module
    ("load_state_dict list", lambda: LINEAR.load_state_dict([1, 2]), TypeError,
     "Linear.load_state_dict: state_dict must be a mapping of parameter name -> array .*got list"),
    ("load_state_dict None", lambda: LINEAR.load_state_dict(None), TypeError, "state_dict must be a mapping .*got NoneType"),
    ("load_state_dict str", lambda: LINEAR.load_state_dict("weights.npz"), TypeError, "state_dict must be a mapping .*got str"),
    ("load_state_dict missing key", lambda: LINEAR.load_state_dict({"weight": np.zeros((2, 3))}), KeyError, "missing key: bias"),
    ("load_state_dict unexpected key", lambda: LINEAR.load_state_dict(state_dict_with("scale", np.zeros(2))), KeyError,
     "unexpected key: scale"),
    ("load_state_dict wrong shape", lambda: LINEAR.load_state_dict(state_dict_with("weight", np.zeros((3, 2)))), KeyError,
     esc("weight: expected shape (2, 3), got (3, 2)")),
    ("load_state_dict wrong shape non-strict", lambda: LINEAR.load_state_dict({"bias": np.zeros(3)}, strict=False), KeyError,
     esc("bias: expected shape (2,), got (3,)")),
    ("load_state_dict int values", lambda: LINEAR.load_state_dict(state_dict_with("bias", np.zeros(2, np.int64))), TypeError,
     esc("values must be floating-point ndarrays or Tensors: 'bias' is ndarray of shape (2,) and dtype int64")),
    ("load_state_dict list value", lambda: LINEAR.load_state_dict(state_dict_with("bias", [0.0, 0.0])), TypeError,
     "'bias' is list"),
    ("load_state_dict None value", lambda: LINEAR.load_state_dict(state_dict_with("weight", None)), TypeError, "'weight' is NoneType"),
    ("load_state_dict str array", lambda: LINEAR.load_state_dict(state_dict_with("bias", np.array(["a", "b"]))), TypeError,
     "'bias' is ndarray .*dtype <U1"),
    ("load_state_dict strict str", lambda: LINEAR.load_state_dict(LINEAR.state_dict(), strict="no"), TypeError,
     "Linear.load_state_dict: strict must be True or False, got str"),
    ("Module.load missing path", missing_path(lambda path: nn.Linear(3, 2).load(path)), FileNotFoundError, "missing.npz"),
    ("Module.load a directory", missing_path(lambda path: nn.Linear(3, 2).load(path.parent.parent)), IsADirectoryError,
     "is a directory"),
    ("Module.load other model's file", saved_linear_then(lambda path: nn.Linear(4, 2).load(path)), KeyError,
     esc("lin.npz: load_state_dict into Linear failed") + ".*" + esc("weight: expected shape (2, 4), got (2, 3)")),
    ("Module.load a text file", lambda tmp_path: nn.Linear(3, 2).load(write(tmp_path, "w.npz", b"hello")), ValueError,
     "w.npz is not a readable .npz file"),
    ("Module.train mode str", lambda: nn.Linear(2, 2).train("eval"), TypeError, "Linear.train: mode must be True or False, got str"),
    ("Module.train mode None", lambda: nn.Linear(2, 2).train(None), TypeError, "mode must be True or False, got NoneType"),
    ("register_parameter ndarray", module_with_bad_parameter, TypeError,
     "Bad.register_parameter: cannot register ndarray .* as parameter 'w': wrap it in nn.Parameter"),
    ("register_parameter dotted name", lambda: nn.Linear(2, 2).register_parameter("a.b", nn.Parameter(np.zeros(2))), ValueError,
     "register_parameter: the name must be non-empty and contain no '.', got 'a.b'"),
    ("register_parameter int name", lambda: nn.Linear(2, 2).register_parameter(3, None), TypeError,
     "register_parameter: the name must be a str, got int 3"),
    ("Parameter int requires grad", lambda: nn.Parameter(np.zeros(3, np.int64)), TypeError, "int64"),
    # ------------------------------------------------------------------ init
    ("uniform_ low above high", lambda: nn.init.uniform_(nn.Parameter(np.zeros(2)), 1.0, -1.0), ValueError,
     "uniform_: low must be <= high, got low=1.0 and high=-1.0"),
    ("uniform_ ndarray", lambda: nn.init.uniform_(np.zeros(2), -1, 1), TypeError,
     "uniform_: param must be a floating-point Tensor \\(a Parameter\\), got ndarray"),
    ("normal_ negative std", lambda: nn.init.normal_(nn.Parameter(np.zeros(2)), 0.0, -1.0), ValueError, "normal_: std must be >= 0, got -1.0"),
    ("normal_ nan mean", lambda: nn.init.normal_(nn.Parameter(np.zeros(2)), float("nan")), ValueError,
     "normal_: mean must be a finite number, got nan"),
    ("xavier_uniform_ 1-d", lambda: nn.init.xavier_uniform_(nn.Parameter(np.zeros(3))), ValueError,
     esc("xavier_uniform_ needs a tensor with at least 2 dimensions, got shape (3,)")),
    ("xavier_uniform_ gain str", lambda: nn.init.xavier_uniform_(nn.Parameter(np.zeros((3, 3))), gain="1"), TypeError,
     "xavier_uniform_: gain must be a real number, got str"),
    ("orthogonal_ rng seed", lambda: nn.init.orthogonal_(nn.Parameter(np.zeros((3, 3))), rng=0), TypeError,
     "orthogonal_: rng must be a numpy.random.Generator, got int"),
    ("recurrent_default_ hidden zero", lambda: nn.init.recurrent_default_(nn.Parameter(np.zeros(3)), 0), ValueError,
     "recurrent_default_: hidden_size must be at least 1, got 0"),
    # ------------------------------------------------------------------ optimizers
    ("SGD empty params", lambda: optim.SGD([], lr=0.1), ValueError, "SGD: got an empty parameter list"),
    ("SGD ndarray parameter", lambda: optim.SGD([np.zeros(2)]), TypeError, "SGD: parameter 0 is a ndarray, not a Tensor"),
    ("SGD params not iterable", lambda: optim.SGD(3), TypeError, "SGD: params must be a Tensor or an iterable of Tensors, got int"),
    ("SGD params method", lambda: optim.SGD(LINEAR.parameters), TypeError, "params must be a Tensor or an iterable of Tensors, got method"),
    ("SGD param group typo", lambda: optim.SGD([{"params": [p(2)], "learning_rate": 0.1}]), ValueError,
     esc("SGD: parameter group keys ['learning_rate'] are not hyper-parameters of SGD")),
    ("SGD repeated parameter", lambda: (lambda q: optim.SGD([q, q]))(p(2)), ValueError, "SGD: a parameter appears more than once"),
    ("SGD non-leaf", lambda: optim.SGD([p(2) * 2]), ValueError, esc("SGD: parameter 0 (shape (2,)) is the result of an op, not a leaf")),
    ("SGD int parameter", lambda: optim.SGD([tr.Tensor(np.zeros(2, np.int64))]), TypeError,
     "SGD: parameter 0 has dtype int64; only floating-point tensors can be optimized"),
    ("SGD lr negative", lambda: optim.SGD([p(2)], lr=-0.1), ValueError, "SGD: lr must be >= 0, got -0.1"),
    ("SGD lr str", lambda: optim.SGD([p(2)], lr="0.1"), TypeError, "SGD: lr must be a real number, got str '0.1'"),
    ("SGD lr None", lambda: optim.SGD([p(2)], lr=None), TypeError, "SGD: lr must be a real number, got NoneType"),
    ("SGD lr inf", lambda: optim.SGD([p(2)], lr=float("inf")), ValueError, "SGD: lr must be >= 0, got inf"),
    ("SGD momentum negative", lambda: optim.SGD([p(2)], 0.1, -0.9), ValueError, "SGD: momentum must be >= 0, got -0.9"),
    ("SGD dampening above 1", lambda: optim.SGD([p(2)], 0.1, 0.9, 2.0), ValueError, esc("SGD: dampening must be in [0, 1.0], got 2.0")),
    ("SGD nesterov without momentum", lambda: optim.SGD([p(2)], 0.1, nesterov=True), ValueError,
     "SGD: nesterov momentum needs momentum > 0 and dampening 0, got momentum=0.0"),
    ("SGD nesterov with dampening", lambda: optim.SGD([p(2)], 0.1, 0.9, 0.1, 0.0, True), ValueError, "dampening=0.1"),
    ("SGD nesterov int", lambda: optim.SGD([p(2)], 0.1, 0.9, nesterov=1), TypeError, "SGD: nesterov must be True or False, got int 1"),
    ("SGD maximize positional", lambda: optim.SGD([p(2)], 0.1, 0.0, 0.0, 0.0, False, True), TypeError, "positional argument"),
    ("Adam betas scalar", lambda: optim.Adam([p(2)], betas=0.9), TypeError, "Adam: betas must be a pair \\(beta1, beta2\\), got float 0.9"),
    ("Adam beta at 1", lambda: optim.Adam([p(2)], betas=(0.9, 1.0)), ValueError, esc("Adam: betas[1] must be in [0, 1.0), got 1.0")),
    ("Adam beta str", lambda: optim.Adam([p(2)], betas=("0.9", 0.99)), TypeError, esc("Adam: betas[0] must be a real number, got str")),
    ("Adam eps negative", lambda: optim.Adam([p(2)], eps=-1e-8), ValueError, "Adam: eps must be >= 0, got -1e-08"),
    ("Adam amsgrad str", lambda: optim.Adam([p(2)], amsgrad="yes"), TypeError, "Adam: amsgrad must be True or False, got str"),
    ("AdamW weight_decay negative", lambda: optim.AdamW([p(2)], weight_decay=-1), ValueError, "AdamW: weight_decay must be >= 0, got -1.0"),
    ("Adagrad lr_decay negative", lambda: optim.Adagrad([p(2)], 0.1, -0.5), ValueError, "Adagrad: lr_decay must be >= 0, got -0.5"),
    ("Adagrad initial accumulator negative", lambda: optim.Adagrad([p(2)], initial_accumulator_value=-1), ValueError,
     "Adagrad: initial_accumulator_value must be >= 0, got -1.0"),
    ("RMSprop alpha above 1", lambda: optim.RMSprop([p(2)], alpha=1.5), ValueError, esc("RMSprop: alpha must be in [0, 1.0], got 1.5")),
    ("RMSprop centered int", lambda: optim.RMSprop([p(2)], centered=1), TypeError, "RMSprop: centered must be True or False, got int 1"),
    ("step grad wrong shape", lambda: step_with(optim.SGD, np.zeros(3)), ValueError,
     esc("SGD: the .grad of parameter 0 has shape (3,) but the parameter has shape (2,)")),
    ("step grad wrong dtype", lambda: step_with(optim.Adam, np.zeros(2, F32)), TypeError,
     "Adam: the .grad of parameter 0 has dtype float32 but the parameter has dtype float64"),
    ("step grad list", lambda: step_with(optim.SGD, [0.0, 0.0]), TypeError, "SGD: the .grad of parameter 0 is a list, not an ndarray"),
    ("optimizer load_state_dict list", lambda: optim.SGD([p(2)]).load_state_dict([]), TypeError,
     "SGD.load_state_dict: expected a dict, got list"),
    ("optimizer load_state_dict other class", lambda: optim.Adam([p(2)]).load_state_dict(optim.SGD([p(2)]).state_dict()),
     ValueError, "Adam.load_state_dict: the state dict is from a SGD optimizer"),
    ("clip_grad_norm_ negative", lambda: optim.clip_grad_norm_([p(2)], -1.0), ValueError, "clip_grad_norm_: max_norm must be >= 0"),
    ("clip_grad_norm_ norm_type zero", lambda: optim.clip_grad_norm_([p(2)], 1.0, 0), ValueError,
     "clip_grad_norm_: norm_type must be a positive number or inf, got 0"),
    ("clip_grad_value_ str", lambda: optim.clip_grad_value_([p(2)], "1"), TypeError, "clip_grad_value_: clip_value must be a real number"),
    # ------------------------------------------------------------------ functional
    ("cross_entropy target too large", lambda: F.cross_entropy(t(2, 3), np.array([0, 3])), IndexError,
     esc("cross_entropy: targets holds 3, which is not a class id in [0, 3)")),
    ("cross_entropy target negative", lambda: F.cross_entropy(t(2, 3), np.array([-1, 0])), IndexError, "targets holds -1"),
    ("cross_entropy float targets", lambda: F.cross_entropy(t(2, 3), np.array([0.0, 1.0])), TypeError,
     "cross_entropy: targets must hold integer class ids, got dtype float64"),
    ("cross_entropy targets shape", lambda: F.cross_entropy(t(2, 3), np.array([0, 1, 2])), ValueError,
     esc("cross_entropy: targets of shape (3,) do not match logits of shape (2, 3)")),
    ("cross_entropy targets time-major mismatch", lambda: F.cross_entropy(t(5, 2, 3), np.zeros((2, 5), np.int64)), ValueError,
     esc("targets of shape (2, 5) do not match logits of shape (5, 2, 3); targets need shape (5, 2)")),
    ("cross_entropy int logits", lambda: F.cross_entropy(tr.Tensor(np.ones((2, 3), np.int64)), np.array([0, 1])), TypeError,
     "cross_entropy: logits must be floating-point, got dtype int64"),
    ("cross_entropy scalar logits", lambda: F.cross_entropy(tr.Tensor(np.float32(1.0)), np.array(0)), ValueError,
     esc("cross_entropy: logits must have a class axis (shape (*, C)), got a scalar")),
    ("cross_entropy ndarray logits", lambda: F.cross_entropy(np.ones((2, 3)), np.array([0, 1])), TypeError,
     "cross_entropy: logits must be a Tensor, got ndarray"),
    ("cross_entropy reduction", lambda: F.cross_entropy(t(2, 3), np.array([0, 1]), reduction="avg"), ValueError,
     "cross_entropy: reduction must be one of .*got 'avg'"),
    ("cross_entropy ignore_index float", lambda: F.cross_entropy(t(2, 3), np.array([0, 1]), ignore_index=-1.0), TypeError,
     "cross_entropy: ignore_index must be an int or None, got -1.0"),
    ("cross_entropy targets str", lambda: F.cross_entropy(t(2, 3), "ab"), TypeError,
     "cross_entropy: targets must be an integer ndarray or Tensor, got str"),
    ("mse_loss shapes", lambda: F.mse_loss(t(2, 3), t(3, 2)), ValueError,
     esc("mse_loss: input has shape (2, 3) but target has shape (3, 2)")),
    ("mse_loss broadcast refused", lambda: F.mse_loss(t(2, 3), t(3)), ValueError, esc("input has shape (2, 3) but target has shape (3,)")),
    ("mse_loss dtypes", lambda: F.mse_loss(t(2, 3), t(2, 3, dtype=F64)), TypeError,
     "mse_loss: input has dtype float32 but target has dtype float64"),
    ("mse_loss int target", lambda: F.mse_loss(t(2), np.array([1, 2])), TypeError, "input has dtype float32 but target has dtype int64"),
    ("mse_loss list target", lambda: F.mse_loss(t(2), [1.0, 2.0]), TypeError, "mse_loss: target must be a Tensor or an ndarray, got list"),
    ("mse_loss reduction", lambda: F.mse_loss(t(2), t(2), reduction=None), ValueError, "mse_loss: reduction must be one of"),
    ("softmax axis out of range", lambda: F.softmax(t(2, 3), axis=2), ValueError,
     esc("softmax: axis 2 is out of range for a tensor of shape (2, 3)")),
    ("log_softmax axis float", lambda: F.log_softmax(t(2, 3), axis=1.0), TypeError, "log_softmax: axis must be an int, got 1.0"),
    ("log_softmax empty axis", lambda: F.log_softmax(t(2, 0)), ValueError, esc("log_softmax: axis -1 of a tensor of shape (2, 0) is empty")),
    ("dropout p one", lambda: F.dropout(t(3), 1.0), ValueError, esc("dropout: p must be a probability in [0, 1), got 1.0")),
    ("dropout training str", lambda: F.dropout(t(3), 0.5, training="no"), TypeError, "dropout: training must be True or False, got str"),
    ("dropout rng RandomState", lambda: F.dropout(t(3), 0.5, rng=np.random.RandomState(0)), TypeError,
     "dropout: rng must be a numpy.random.Generator, got RandomState"),
    ("one_hot id too large", lambda: F.one_hot([0, 3], 3), IndexError, esc("one_hot: ids holds 3, which is not a class id in [0, 3)")),
    ("one_hot num_classes zero", lambda: F.one_hot([0], 0), ValueError, "one_hot: num_classes must be a positive int, got 0"),
    ("one_hot num_classes float", lambda: F.one_hot([0], 3.0), TypeError, "one_hot: num_classes must be an int, got float 3.0"),
    ("one_hot float ids", lambda: F.one_hot(np.array([0.0]), 3), TypeError, "one_hot: ids must hold integer class ids, got dtype float64"),
    # ------------------------------------------------------------------ data
    ("load_text NUL bytes", load_text_of(b"\x00" * 64, "zeros.bin"), ValueError, "zeros.bin' looks like a binary file, not text: it holds NUL bytes"),
    ("load_text NUL inside text", load_text_of(b"hello\x00world", "mixed.txt"), ValueError, "mixed.txt' looks like a binary file"),
    ("load_text control characters", load_text_of(bytes(range(1, 9)) * 8 + b"text", "ctrl.dat"), ValueError,
     "ctrl.dat' looks like a binary file, not text: 64 of its 68 characters are control characters"),
    ("load_text latin-1", load_text_of("café".encode("latin-1"), "latin.txt"), ValueError, "latin.txt' is not valid UTF-8"),
    ("load_text png", load_text_of(b"\x89PNG\r\n\x1a\n" + bytes(32), "image.png"), ValueError, "image.png' is not valid UTF-8"),
    ("load_text empty", load_text_of(b"", "empty.txt"), ValueError, "text file is empty: .*empty.txt"),
    ("load_text missing", missing_path(lambda path: data.load_text(path)), FileNotFoundError, "text file not found: .*missing.npz"),
    ("CharVocab int", lambda: data.CharVocab(123), TypeError, "CharVocab needs a non-empty str, got int 123"),
    ("CharVocab empty", lambda: data.CharVocab(""), ValueError, "CharVocab needs a non-empty str"),
    ("CharVocab.from_list int", lambda: data.CharVocab.from_list(5), TypeError, "from_list needs a list of one-character strings, got int 5"),
    ("CharVocab.from_list repeated", lambda: data.CharVocab.from_list(["a", "a"]), ValueError, "from_list got repeated characters: 'a'"),
    ("CharVocab.from_list long string", lambda: data.CharVocab.from_list(["ab"]), ValueError, "one-character strings"),
    ("CharVocab.encode unknown", lambda: VOCAB.encode("abz"), ValueError, "1 character\\(s\\) not in the vocabulary: 'z' \\(first at index 2"),
    ("CharVocab.encode bytes", lambda: VOCAB.encode(b"abc"), TypeError, "encode expects a str, got bytes"),
    ("CharVocab.decode out of range", lambda: VOCAB.decode([0, 6]), IndexError, esc("ids has ids outside [0, 6): [6]")),
    ("CharVocab.decode floats", lambda: VOCAB.decode([0.0, 1.0]), ValueError, "ids must be a 1-D integer array, got dtype float64"),
    ("train_val_split fraction str", lambda: data.train_val_split(np.arange(10), "0.1"), TypeError,
     "train_val_split: val_fraction must be a real number, got str"),
    ("train_val_split fraction one", lambda: data.train_val_split(np.arange(10), 1.0), ValueError, esc("val_fraction must be in (0, 1), got 1.0")),
    ("train_val_split tiny", lambda: data.train_val_split(np.arange(3), 0.01), ValueError, "3 ids with val_fraction=0.01 leave an empty"),
    ("train_val_split 2-d ids", lambda: data.train_val_split(np.zeros((2, 5), np.int64)), ValueError,
     esc("ids must be a 1-D integer array, got dtype int64 and shape (2, 5)")),
    ("unigram_loss vocab bool", lambda: data.unigram_loss(np.arange(3), np.arange(3), True), TypeError,
     "unigram_loss: vocab_size must be an int, got bool True"),
    ("unigram_loss vocab zero", lambda: data.unigram_loss(np.arange(3), np.arange(3), 0), ValueError,
     "vocab_size must be a positive integer, got 0"),
    ("unigram_loss val out of range", lambda: data.unigram_loss(np.arange(3), np.array([5]), 3), IndexError,
     esc("val_ids has ids outside [0, 3): [5]")),
    ("num_windows batch_size zero", lambda: data.num_windows(np.arange(10), 0, 2), ValueError, "batch_size must be a positive integer, got 0"),
    ("num_windows seq_len bool", lambda: data.num_windows(np.arange(10), 2, True), ValueError, "seq_len must be a positive integer, got True"),
    ("stream_batches too short", lambda: data.stream_batches(np.arange(10), 4, 5), ValueError,
     "a corpus of 10 ids is too short for batch_size=4 and seq_len=5"),
    ("load_sentiment split", lambda: data.load_sentiment("dev"), ValueError, "split must be 'train' or 'test', got 'dev'"),
    ("load_sentiment split int", lambda: data.load_sentiment(0), TypeError, "split must be 'train' or 'test', got int 0"),
    ("sentiment encode unknown word", lambda: sentiment.encode("it was groovy"), ValueError, "'groovy' \\(word 2\\)"),
    ("sentiment encode_batch str", lambda: sentiment.encode_batch("it was good"), TypeError,
     "encode_batch needs a sequence of sentences \\(str\\), got str"),
    ("sentiment encode_batch width float", lambda: sentiment.encode_batch(["it was good"], 9.0), TypeError,
     "encode_batch: width must be an int, got float 9.0"),
    ("sentiment encode_batch width short", lambda: sentiment.encode_batch(["it was very good"], 2), ValueError,
     "width 2 is shorter than the longest sentence \\(4 words\\)"),
    ("sentiment label ungrammatical", lambda: sentiment.label("good it was"), ValueError, "starts with a subject and a copula"),
    ("sentiment decode out of range", lambda: sentiment.decode([1, 99]), IndexError, esc(f"ids has ids outside [0, {len(sentiment.VOCAB)}): [99]")),
    # ------------------------------------------------------------------ gradcheck and friends
    ("gradcheck float32 mismatch", lambda: float32_gradcheck(), GradcheckError,
     "Jacobian mismatch(.|\\n)*input 0 is float32: finite differences at that precision are the likely cause(.|\\n)*float64"),
    ("gradcheck fn not callable", lambda: tr.gradcheck(3, (p(2),)), TypeError, "gradcheck: fn must be callable, got int 3"),
    ("gradcheck inputs int", lambda: tr.gradcheck(lambda x: x, 3), TypeError,
     "gradcheck: inputs must be a Tensor, an ndarray or a tuple of them, got int 3"),
    ("gradcheck no input requires grad", lambda: tr.gradcheck(lambda x: x, (t(2, dtype=F64),)), ValueError,
     "gradcheck: no input is a Tensor with requires_grad=True"),
    ("gradcheck eps zero", lambda: tr.gradcheck(lambda x: x, (p(2),), eps=0), ValueError, "gradcheck: eps must be > 0, got 0"),
    ("gradcheck eps negative", lambda: tr.gradcheck(lambda x: x, (p(2),), eps=-1e-6), ValueError, "gradcheck: eps must be >= 0, got -1e-06"),
    ("gradcheck atol str", lambda: tr.gradcheck(lambda x: x, (p(2),), atol="1e-5"), TypeError, "gradcheck: atol must be a real number"),
    ("gradcheck rtol negative", lambda: tr.gradcheck(lambda x: x, (p(2),), rtol=-1), ValueError, "gradcheck: rtol must be >= 0"),
    ("gradcheck raise_exception int", lambda: tr.gradcheck(lambda x: x, (p(2),), raise_exception=0), TypeError,
     "gradcheck: raise_exception must be True or False, got int 0"),
    ("gradcheck fn returns ndarray", lambda: tr.gradcheck(lambda x: x.data, (p(2),)), TypeError,
     "the function must return a Tensor or a tuple of Tensors; output 0 is a ndarray"),
    ("gradgradcheck grad_outputs count", lambda: tr.gradgradcheck(lambda x: x * x, (p(2),), grad_outputs=[p(2), p(2)]), ValueError,
     "gradgradcheck: 2 grad_outputs for 1 outputs of fn"),
    ("gradgradcheck grad_outputs shape", lambda: tr.gradgradcheck(lambda x: x * x, (p(2),), grad_outputs=[p(3)]), ValueError,
     esc("gradgradcheck: grad_outputs[0] has shape (3,) and dtype float64 but output 0 has shape (2,)")),
    ("gradgradcheck grad_outputs list", lambda: tr.gradgradcheck(lambda x: x * x, (p(2),), grad_outputs=[[1.0, 1.0]]), TypeError,
     "gradgradcheck: grad_outputs\\[0\\] must be a Tensor or ndarray, got list"),
    ("gradgradcheck fn not callable", lambda: tr.gradgradcheck("f", (p(2),)), TypeError, "gradgradcheck: fn must be callable, got str"),
    ("numerical_grad int input", lambda: tr.numerical_grad(lambda x: x * 2, (np.arange(3),)), TypeError,
     "numerical_grad: input 0 must be a floating-point Tensor or ndarray \\(it is perturbed by eps in place\\), got ndarray"),
    ("numerical_grad float input", lambda: tr.numerical_grad(lambda x: x, [1.0]), TypeError,
     "numerical_grad: input 0 must be a floating-point Tensor or ndarray .*got float 1.0"),
    ("numerical_grad grad_output shape", lambda: tr.numerical_grad(lambda x: x * 2, (p(3),), grad_output=np.ones(2)), ValueError,
     esc("numerical_grad: grad_output has shape (2,) but fn's output has shape (3,)")),
    ("numerical_grad grad_output list", lambda: tr.numerical_grad(lambda x: x * 2, (p(3),), grad_output=[1, 1, 1]), TypeError,
     "numerical_grad: grad_output must be an ndarray or Tensor, got list"),
    ("numerical_grad eps str", lambda: tr.numerical_grad(lambda x: x, (p(3),), eps="1e-6"), TypeError,
     "numerical_grad: eps must be a real number, got str"),
    ("rel_error shapes", lambda: tr.rel_error(np.zeros(2), np.zeros(3)), ValueError, esc("rel_error: shapes (2,) and (3,) differ")),
    ("rel_error str", lambda: tr.rel_error("a", 1.0), TypeError, "rel_error: x must be numbers, an array or a Tensor, got str 'a'"),
    ("rel_error_norm shapes", lambda: tr.rel_error_norm(np.zeros(2), np.zeros(3)), ValueError,
     esc("rel_error_norm: shapes (2,) and (3,) differ")),
    ("rel_error_norm str", lambda: tr.rel_error_norm(1.0, "a"), TypeError,
     "rel_error_norm: y must be numbers, an array or a Tensor, got str 'a'"),
    ("rel_error_norm floor", lambda: tr.rel_error_norm(1.0, 2.0, floor=-1.0), ValueError,
     "rel_error_norm: floor must be >= 0, got -1.0"),
    # ------------------------------------------------------------------ bptt.crosscheck
    ("crosscheck two layers", lambda: tr.bptt.crosscheck(nn.LSTM(3, 4, num_layers=2, dtype=F64), np.zeros((5, 2, 3))), ValueError,
     "num_layers=2"),
    ("crosscheck Linear", lambda: tr.bptt.crosscheck(nn.Linear(3, 4), np.zeros((2, 3))), TypeError, "got a Linear"),
    ("crosscheck x dtype", lambda: tr.bptt.crosscheck(nn.GRUCell(3, 4, dtype=F64), np.zeros((2, 3), F32)), TypeError,
     "x has dtype float32 but the module's parameters are float64"),
    ("crosscheck x shape", lambda: tr.bptt.crosscheck(nn.GRUCell(3, 4, dtype=F64), np.zeros((2, 5))), ValueError, esc("got (2, 5)")),
    ("crosscheck loss name", lambda: tr.bptt.crosscheck(nn.GRUCell(3, 4, dtype=F64), np.zeros((2, 3)), loss="mse"), ValueError,
     "loss must be one of .*got 'mse'"),
    ("crosscheck samples zero", lambda: tr.bptt.crosscheck(nn.GRUCell(3, 4, dtype=F64), np.zeros((2, 3)), samples=0), ValueError,
     "samples must be a positive int, got 0"),
    ("crosscheck lengths on a cell", lambda: tr.bptt.crosscheck(nn.GRUCell(3, 4, dtype=F64), np.zeros((2, 3)), lengths=[1, 1]),
     ValueError, "lengths apply to sequences"),
    ("crosscheck lengths too long", lambda: tr.bptt.crosscheck(nn.GRU(3, 4, dtype=F64), np.zeros((5, 2, 3)), lengths=[6, 1]),
     ValueError, "lengths must lie in 1..5"),
    # ------------------------------------------------------------------ models
    ("CharLM vocab_size float", lambda: CharLM(6.0), TypeError, "CharLM: vocab_size must be an int, got float 6.0"),
    ("CharLM hidden_size zero", lambda: CharLM(6, hidden_size=0), ValueError, "hidden_size must be a positive integer, got 0"),
    ("CharLM num_layers str", lambda: CharLM(6, num_layers="2"), TypeError, "CharLM: num_layers must be an int, got str"),
    ("CharLM dropout above 1", lambda: CharLM(6, dropout=1.5), ValueError, esc("LSTM: dropout must be in [0, 1.0), got 1.5")),
    ("CharLM cell unknown", lambda: CharLM(6, cell="transformer"), ValueError, "cell must be one of .*got 'transformer'"),
    ("CharLM cell instance", lambda: CharLM(6, cell=nn.GRUCell(3, 3)), TypeError, "cell must be a factory .*not a GRUCell instance"),
    ("CharLM dtype int", lambda: CharLM(6, dtype=np.int64), TypeError, "dtype must be a floating-point dtype.*int64"),
    ("CharLM forward float ids", lambda: LM(np.zeros((3, 2))), ValueError, esc("CharLM: ids must be a (T, N) integer array, got dtype float64")),
    ("CharLM forward 1-d ids", lambda: LM(np.zeros(3, np.int64)), ValueError, esc("ids must be a (T, N) integer array, got dtype int64 and shape (3,)")),
    ("CharLM forward id out of range", lambda: LM(np.full((3, 2), 6)), IndexError, "Embedding: id 6 is out of range for 6 embeddings"),
    ("CharLM forward str ids", lambda: LM("abc"), TypeError, "CharLM: ids must be a \\(T, N\\) integer array, got str"),
    ("CharLM forward state wrong batch", lambda: LM(np.zeros((3, 2), np.int64), (t(1, 3, 4), t(1, 3, 4))), ValueError,
     esc("LSTM: hx has shapes ((1, 3, 4), (1, 3, 4)), expected ((1, 2, 4), (1, 2, 4))")),
    ("CharLM sample temperature str", lambda: LM.sample(VOCAB, "a", 3, temperature="1"), TypeError,
     "sample: temperature must be a real number, got str"),
    ("CharLM sample temperature zero", lambda: LM.sample(VOCAB, "a", 3, temperature=0), ValueError,
     "temperature must be a positive number, got 0"),
    ("CharLM sample length float", lambda: LM.sample(VOCAB, "a", 3.0), TypeError, "sample: length must be an int, got float 3.0"),
    ("CharLM sample length negative", lambda: LM.sample(VOCAB, "a", -1), ValueError, "length must be a non-negative integer, got -1"),
    ("CharLM sample prime unknown", lambda: LM.sample(VOCAB, "az", 3), ValueError, "prime: .*'z'"),
    ("CharLM sample prime empty", lambda: LM.sample(VOCAB, "", 3), ValueError, "prime must be a non-empty string"),
    ("CharLM sample vocab str", lambda: LM.sample("abcdef", "a", 3), TypeError, "vocab must be a data.CharVocab, got str"),
    ("CharLM sample vocab size", lambda: LM.sample(data.CharVocab("abc"), "a", 3), ValueError,
     "the vocabulary has 3 characters but the model was built for 6"),
    ("CharLM sample seed negative", lambda: LM.sample(VOCAB, "a", 3, seed=-1), ValueError, "sample: seed must be at least 0, got -1"),
    ("CharLM score short", lambda: LM.score("a", VOCAB), ValueError, "score needs a text of at least 2 characters, got 1"),
    ("CharLM score bytes", lambda: LM.score(b"abc", VOCAB), TypeError, "score: text must be a str, got bytes"),
    ("CharLM score chunk zero", lambda: LM.score("abc", VOCAB, chunk=0), ValueError, "score: chunk must be at least 1, got 0"),
    ("SentimentClassifier embedding_dim bool", lambda: SentimentClassifier(31, True), TypeError,
     "SentimentClassifier: embedding_dim must be an int, got bool True"),
    ("SentimentClassifier lengths too long", lambda: SC(np.ones((2, 5), np.int64), lengths=[6, 5]), ValueError,
     "LSTM: lengths must be between 1 and the sequence length 5, got 6"),
    ("SentimentClassifier lengths float", lambda: SC(np.ones((2, 5), np.int64), lengths=np.array([5.0, 5.0])), TypeError,
     "LSTM: lengths must be integers, got dtype float64"),
    ("build_model list", lambda: build_model([("model", "CharLM")]), TypeError, "build_model: config must be a dict .*got list"),
    ("build_model unknown model", lambda: build_model({"model": "GPT"}), ValueError, "'model' set to one of .*got 'GPT'"),
    ("build_model missing entry", lambda: build_model({"model": "CharLM", "vocab_size": 3}), ValueError,
     "the CharLM config lacks the entry 'hidden_size'"),
]

IDS = [row[0] for row in CATALOGUE]
assert len(set(IDS)) == len(IDS), "catalogue ids must be distinct"


@pytest.mark.parametrize("call, error, message", [row[1:] for row in CATALOGUE], ids=IDS)
def test_bad_input_is_refused_with_a_named_error(call, error, message, tmp_path):
    with pytest.raises(error, match=message):
        call(tmp_path) if call.__code__.co_argcount else call()


def test_the_catalogue_is_large():
    assert len(CATALOGUE) >= 150


# ===================================================================== accepted on purpose
def test_an_empty_linear_layer_works_like_pytorchs(recwarn):
    layer = nn.Linear(0, 2)
    x = tr.Tensor(np.zeros((4, 0), F32), requires_grad=True)
    y = layer(x)
    assert y.shape == (4, 2)
    np.testing.assert_array_equal(y.data, np.zeros((4, 2)))  # the bias bound is 0 when in_features is 0
    y.sum().backward()
    assert layer.weight.grad.shape == (2, 0) and x.grad.shape == (4, 0)
    np.testing.assert_array_equal(layer.bias.grad, [4.0, 4.0])
    assert nn.Linear(3, 0)(t(5, 3)).shape == (5, 0)
    assert not [w for w in recwarn.list if issubclass(w.category, (RuntimeWarning, UserWarning))]


def test_accepted_on_purpose():
    # NumPy integers are ints; an unsorted lengths list is fine (no packing needed)
    lstm = nn.LSTM(np.int64(3), np.int32(4))
    out, _ = lstm(X, lengths=[2, 5])
    assert out.shape == (5, 2, 4)
    # an ndarray input and ndarray hx of the layer's dtype
    gru = nn.GRU(3, 4, dtype=F64)
    assert gru(np.zeros((5, 2, 3)), np.zeros((1, 2, 4)))[0].shape == (5, 2, 4)
    # an unbatched sequence with its unbatched state
    assert RNN(t(5, 3), t(1, 4))[1].shape == (1, 4)
    assert GRU_CELL(t(3), t(4)).shape == (4,)
    # lengths as an integer Tensor
    assert LSTM(X, lengths=tr.Tensor(np.array([5, 1])))[0].shape == (5, 2, 4)
    # an empty embedding table, and integer ids given as a list
    assert nn.Embedding(0, 3).weight.shape == (0, 3)
    assert EMB([[0, 4]]).shape == (1, 2, 3)
    # load_state_dict casts floating arrays to each parameter's dtype, as PyTorch does
    layer = nn.Linear(3, 2)
    layer.load_state_dict({k: v.astype(F64) for k, v in LINEAR.state_dict().items()})
    assert layer.weight.dtype == F32
    # SGD with PyTorch's default lr, and dropout 0 on a single layer
    optim.SGD([p(2)])
    nn.LSTM(3, 4, dropout=0.0)
    # out-of-range ids are IndexErrors as in PyTorch, and also ValueErrors (callers catching either work)
    with pytest.raises(ValueError):
        EMB(np.array([7]))

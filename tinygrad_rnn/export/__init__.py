"""Leaving for PyTorch: ``to_torch(module)`` turns a module into a ``torch.nn.Module`` with the same
parameter names and the same numbers; ``from_torch(torch_module, module)`` copies its trained weights back.

What is exported to what (every torch module takes what ours takes and returns what ours returns):

    nn.RNN / LSTM / GRU          torch's fused torch.nn.RNN / LSTM / GRU (fused.py), forward(x, hx, lengths)
                                 (an RNN with nonlinearity "sigmoid", which torch lacks: as a custom cell)
    any nn.Cell                  TracedCell: forward(x, state) runs the ops the cell records, as torch ops
    nn.Recurrent                 TracedRecurrent: the same unroll, lengths, reversal (modules.py)
    nn.StackedRecurrent          TracedStacked: layers, directions, dropout between layers
    nn.Linear / Embedding / Dropout   torch.nn.Linear / Embedding / Dropout
    models.CharLM / SentimentClassifier   TorchCharLM / TorchSentimentClassifier (models.py)

A cell's equations are recorded through the engine's seam and each op mapped to its torch
counterpart (torch_ops.py: ``TORCH_OPS``, keyed by op name); an op with none raises
``UnsupportedOpError`` naming it, and a step that a recording cannot capture raises
``ExportError`` saying why (program.py). torch is imported only when ``to_torch`` / ``from_torch`` run:
the submodules that define torch classes are loaded then, and ``import tinygrad_rnn`` needs NumPy only.

Why a trace and not the cell's own ``forward`` run on torch tensors through an adapter: a cell is
written against our Tensor (its methods, ``tr.concat``, ``tr.where``, ``functional``, checks that
want a Tensor); an adapter would be a second implementation of that whole surface over torch, wrong
wherever the two libraries differ and silent about it. A recording has already resolved every call
to the engine's few ops with their ``ctx`` in our meaning (normalised axes, indices, dtypes), so one
table entry per op is all the translation there is, checked op by op against ours, and an op
missing from it is a named error. The price is a trace's blindness to Python control flow on
values (detected where the engine can see it, see program.py) and one recording per input shape.
"""
from .errors import ExportError, UnsupportedOpError

__all__ = ["to_torch", "from_torch", "ExportError", "UnsupportedOpError"]


def to_torch(module):
    """A ``torch.nn.Module`` computing what ``module`` computes, its parameters copies of ours under our
    names (``state_dict`` keys identical), in our dtype, in our training mode. Raises ``ExportError`` for
    a module or cell that cannot be exported (the message says which part and why), a subclass that
    overrides ``forward`` (or ``run``) of the class it is exported as among them: the export
    reimplements that class, so it would not run the subclass's own."""
    torch = _torch("to_torch")
    from .. import nn
    from ..models import CharLM, SentimentClassifier
    from . import fused, modules
    from .models import TorchCharLM, TorchSentimentClassifier

    known = (nn.RNN, nn.LSTM, nn.GRU, nn.StackedRecurrent, nn.Recurrent, nn.Linear, nn.Embedding, nn.Dropout, CharLM,
             SentimentClassifier)
    base = next((kind for kind in known if isinstance(module, kind)), None)
    for method in ("forward", "run") if base is not None else ():
        if getattr(type(module), method, None) is not getattr(base, method, None):
            raise ExportError(f"to_torch cannot export a {type(module).__name__}: it overrides {method} of "
                              f"{base.__name__}, which the export reimplements (your {method} would not run)")
    if base in (nn.RNN, nn.LSTM, nn.GRU) and getattr(module, "nonlinearity", "tanh") in ("tanh", "relu"):
        kind = {nn.RNN: fused.FusedRNN, nn.LSTM: fused.FusedLSTM, nn.GRU: fused.FusedGRU}[base]
        options = {"nonlinearity": module.nonlinearity} if isinstance(module, nn.RNN) else {}
        exported = kind(module.input_size, module.hidden_size, module.num_layers, bias="bias_ih_l0" in
                        dict(module.named_parameters()), batch_first=module.batch_first, dropout=module.dropout,
                        bidirectional=module.bidirectional, dtype=_torch_dtype(module), **options)
    elif isinstance(module, nn.StackedRecurrent):
        return modules.TracedStacked(module)
    elif isinstance(module, nn.Recurrent):
        return modules.TracedRecurrent(module)
    elif isinstance(module, nn.Cell):
        return modules.TracedCell(module)
    elif isinstance(module, nn.Linear):
        exported = torch.nn.Linear(module.in_features, module.out_features, module.bias is not None,
                                   dtype=_torch_dtype(module))
    elif isinstance(module, nn.Embedding):
        exported = torch.nn.Embedding(module.num_embeddings, module.embedding_dim, dtype=_torch_dtype(module))
    elif isinstance(module, nn.Dropout):
        exported = torch.nn.Dropout(module.p)
    elif isinstance(module, CharLM):
        exported = TorchCharLM(to_torch(module.embedding), to_torch(module.rnn), to_torch(module.dropout),
                               to_torch(module.decoder))
    elif isinstance(module, SentimentClassifier):
        exported = TorchSentimentClassifier(to_torch(module.embedding), to_torch(module.rnn),
                                            to_torch(module.classifier))
    else:
        raise ExportError(f"to_torch cannot export a {type(module).__name__}: it exports nn.RNN/LSTM/GRU, any nn.Cell, "
                          f"nn.Recurrent, nn.StackedRecurrent, nn.Linear, nn.Embedding, nn.Dropout, models.CharLM "
                          f"and models.SentimentClassifier")
    exported.load_state_dict({name: modules.torch_parameter(param).data for name, param in module.named_parameters()})
    return exported.train(module.training)


def from_torch(torch_module, module):
    """Copy ``torch_module``'s weights (from any device, also a DistributedDataParallel wrapper) into
    our ``module`` by name, exactly (``module.load_state_dict``: strict, shapes checked). -> module."""
    torch = _torch("from_torch")
    if isinstance(torch_module, torch.nn.parallel.DistributedDataParallel):
        torch_module = torch_module.module
    if not isinstance(torch_module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got {type(torch_module).__name__}")
    module.load_state_dict({name: value.detach().cpu().numpy() for name, value in torch_module.state_dict().items()})
    return module


def _torch(who):
    """The torch package, or an ImportError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ImportError(f"{who} needs PyTorch, an optional dependency: pip install -e \".[torch]\"") from None
    return torch


def _torch_dtype(module):
    """The torch dtype of ``module``'s parameters."""
    from .torch_ops import torch_dtype

    return torch_dtype(module.parameters()[0].dtype)

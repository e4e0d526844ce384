"""A cell's equations as torch operations, from the ops the cell records.

The accelerator's ``record`` (``accelerator/tape.py``) runs a function of Tensors once while
watching the engine's seam and returns a ``Tape``: the ops in order (``forward_program``, each
``(op, ctx, input slots, output slot)``), the tensors it used but did not make (``externals``: the
cell's parameters, closed-over constants), the constants made inside and the output slots.
``TorchProgram`` runs that program with each op's torch counterpart (``torch_ops.TORCH_OPS``), the
cell's parameters taken by name from the torch module, so torch's autograd differentiates it.

A recording holds shapes in its ``ctx`` (a reshape to (N, ...), a mean's count), so ``CellTrace``
records once per input shape and dtype and per training mode (the cell recorded in the mode of the
torch module that runs it: a step may read ``self.training``), and keeps each program: a new batch
size or mode is a new recording (one step of the cell in NumPy, on random values), never a stale
one. Inputs, states and parameters must have the dtypes ours requires (a TypeError, as ours, never
a silent cast): a traced cell runs in the dtype it was recorded in. What a recording cannot capture
is refused, not guessed:

- Python reading a tensor's values (``.item()``, ``bool()``, ``.numpy()``, a tensor as an index),
  a hook, or a Tensor built from an array inside the step (``Tape.problem``);
- a step that records differently on other values (Python branching on ``.data``, a constant
  computed from ``.data``, a random mask): each shape is recorded twice, on random inputs v and on
  -2 v (other signs and sizes), and the two must be ``Tape.same_as``. What both take alike stays
  unseen, silently frozen into the trace: ``x * (x.data > 100)`` records all-False on both;
- a cell that declares ``replayable = False``; a tensor that requires grad but is not one of the
  cell's own parameters (its gradient would be lost).

``init_state`` is recorded too (it may use parameters, e.g. a learned initial state); it has no
data to depend on, so its Tensors built from arrays are simply constants.
"""
import numpy as np
import torch

from ..accelerator.tape import record
from ..nn.cells import check_input_size, check_state, state_of, state_parts
from ..tensor import Tensor, no_grad
from .errors import ExportError
from .torch_ops import torch_dtype, torch_kernel

__all__ = ["TorchProgram", "CellTrace"]


class TorchProgram:
    """One recorded call as torch ops: ``program(parameters, inputs, device) -> outputs``.

    ``parameters``: the cell's parameter name -> torch tensor; ``inputs``: torch tensors in the
    recording's input order; constants are moved to ``device``. Returns the outputs' torch tensors.
    """

    def __init__(self, tape, parameter_names, who):
        self.n_slots, self.input_slots, self.output_slots = tape.n_slots, tape.input_slots, tape.output_slots
        self.parameter_slots, self.constants = [], []
        for slot, tensor in tape.externals:
            name = parameter_names.get(id(tensor))
            if name is not None:
                self.parameter_slots.append((slot, name))
            elif tensor.requires_grad:
                raise ExportError(f"{who} uses a tensor of shape {tensor.shape} that requires grad but is not one "
                                  f"of its parameters: register it on the cell (nn.Parameter) so that it is exported")
            else:
                self.constants.append((slot, torch.from_numpy(np.array(tensor.data))))
        self.constants += [(slot, torch.from_numpy(np.array(tape.template[slot]))) for slot in tape.constants]
        self.steps = [(torch_kernel(op, ctx, who), ins, out) for op, ctx, ins, out in tape.forward_program]

    def __call__(self, parameters, inputs, device):
        values = [None] * self.n_slots
        for slot, value in zip(self.input_slots, inputs):
            values[slot] = value
        for slot, name in self.parameter_slots:
            values[slot] = parameters[name]
        for slot, constant in self.constants:
            values[slot] = constant.to(device)
        for kernel, ins, out in self.steps:
            values[out] = kernel(*[values[j] for j in ins])
        return [values[j] for j in self.output_slots]


def _outside_compiler(function):
    """``function``, run as plain Python under ``torch.compile`` (its tracer would otherwise trace our NumPy
    engine recording a step): ``torch.compiler.disable``, in torch >= 2.1 (torch 2.0 has no compile seam)."""
    compiler = getattr(torch, "compiler", None)
    return compiler.disable(function) if compiler is not None else function


class CellTrace:
    """The torch programs of one ``nn.Cell``, recorded per input shape, dtype and training mode, and kept:

    ``step(x, parts, training)`` (x (N, D), the state's parts -> the new state's parts),
    ``output(parts, training)`` (-> what the step emits) and ``start(batch, training)`` (->
    ``init_state(batch)``'s parts). ``check_parameters`` refuses torch parameters in another dtype.
    """

    def __init__(self, cell):
        self.cell, self.who = cell, type(cell).__name__
        if not cell.replayable:
            raise ExportError(f"{self.who} declares replayable = False: its step cannot be recorded once and "
                              f"replayed, so it cannot be exported as traced torch operations")
        self.like = cell.init_state(1)  # the state's structure: a Tensor, a tuple or a list of parts
        self.part_dtypes = [torch_dtype(part.dtype) for part in state_parts(self.like)]
        self.parameter_dtypes = {name: param.dtype for name, param in cell.named_parameters()}
        self.input_dtype = next(iter(self.parameter_dtypes.values()), None)  # ours: the first parameter's
        self.parameter_names = {id(param): name for name, param in cell.named_parameters()}
        self.programs = {}

    def step(self, x, parts, training):
        key = ("step", training, _signature(x), tuple(_signature(p) for p in parts))
        if key not in self.programs:
            self._check_inputs(x, parts)
            self.programs[key] = self._recorded(self._step_function(len(parts)), [x, *parts], training, twice=True)
        return self.programs[key]

    def output(self, parts, training):
        key = ("output", training, tuple(_signature(p) for p in parts))
        if key not in self.programs:
            emit = lambda *state: self.cell.output(state_of(state, like=self.like))  # noqa: E731
            self.programs[key] = self._recorded(emit, parts, training, twice=True)
        return self.programs[key]

    def start(self, batch, training):
        key = ("start", training, batch)
        if key not in self.programs:
            begin = lambda: tuple(state_parts(self.cell.init_state(batch)))  # noqa: E731
            self.programs[key] = self._recorded(begin, [], training, twice=False)
        return self.programs[key]

    def check_parameters(self, parameters):
        """A TypeError if a torch parameter (name -> tensor) is no longer in our cell's dtype (``.float()``
        on the exported module): the recorded programs hold constants and casts in that dtype."""
        for name, value in parameters.items():
            ours = self.parameter_dtypes[name]
            if value.dtype != torch_dtype(ours):
                raise TypeError(f"{self.who}: the parameter {name} is {value.dtype}, but the cell was recorded in "
                                f"{ours}: convert our model and export that instead (e.g. to_torch(model.float()))")

    def _check_inputs(self, x, parts):
        """x in the parameters' dtype and each state part in init_state's, as ours requires."""
        if self.input_dtype is not None and x.dtype != torch_dtype(self.input_dtype):
            raise TypeError(f"{self.who}: input has dtype {x.dtype} but the cell's parameters have dtype "
                            f"{torch_dtype(self.input_dtype)}; convert the input (x.to(...))")
        for k, (part, expected) in enumerate(zip(parts, self.part_dtypes)):
            if part.dtype != expected:
                raise TypeError(f"{self.who}: state part {k} has dtype {part.dtype}, expected {expected} "
                                f"(the dtype of the cell's init_state)")

    def _step_function(self, n_parts):
        cell = self.cell

        def step(x, *parts):
            check_input_size(cell, x, self.who)
            state = state_of(list(parts), like=self.like)
            check_state(cell, state, cell.init_state(x.shape[0]), "the state")
            new_state = cell.forward(x, state)
            check_state(cell, new_state, state, "forward() returned a state that")
            return tuple(state_parts(new_state))
        return step

    @_outside_compiler
    def _recorded(self, function, examples, training, twice):
        """``function`` recorded with the cell in mode ``training``, on random arrays shaped and typed like
        the torch tensors ``examples`` (twice, on v and -2 v, when it has inputs whose values could steer
        it), as a TorchProgram. Our cell's modes are left as they were."""
        modes = [(module, module.training) for module in self.cell.modules()]
        self.cell.train(training)
        try:
            tapes = [self._record(function, examples, scale) for scale in ((1.0, -2.0) if twice else (1.0,))]
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)  # as Module.train sets it
        tape = tapes[0]
        if twice and tape.problem is not None:
            raise ExportError(f"{self.who} cannot be traced into torch operations: {tape.problem}. Build constants "
                              f"from Python numbers or module attributes, and keep the step free of value reads")
        if twice and not tape.same_as(tapes[1]):
            raise ExportError(f"{self.who} records different ops on different inputs (Python branching on values, a "
                              f"constant computed from a tensor's .data, or random numbers inside the step): a trace "
                              f"would be wrong for some inputs")
        return TorchProgram(tape, self.parameter_names, self.who)

    @staticmethod
    def _record(function, examples, scale):
        """One Tape of ``function`` on Tensors like ``examples`` (their shapes and dtypes): floating ones
        ``scale`` times standard normal values, others zeros."""
        rng = np.random.default_rng(1)
        inputs = []
        for example in examples:
            dtype = torch.empty(0, dtype=example.dtype).numpy().dtype
            values = scale * rng.standard_normal(tuple(example.shape)) if dtype.kind == "f" else np.zeros(example.shape)
            inputs.append(Tensor(values.astype(dtype)))
        with no_grad(), np.errstate(all="ignore"):
            return record(function, inputs)[0]


def _signature(tensor):
    """What a recording depends on in a torch tensor: its shape and dtype."""
    return tuple(tensor.shape), tensor.dtype

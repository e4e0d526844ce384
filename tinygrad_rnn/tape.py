"""Record a function of Tensors once, then replay it on other arrays: forward and backward with no
Tensor, no graph node and no heap.

``record(fn, inputs)`` calls ``fn(*inputs)`` while every op reports itself (``Tensor._result``):
its forward kernel, ``ctx``, input tensors, output tensor, backward and ``save``. The ``Tape`` turns
that into a program over numbered slots: the inputs first, then one slot per op output; tensors
the function used but did not make (parameters, closed-over constants) are *externals*, whose
arrays the replay reuses. One recorded step of a recurrent cell is then replayed for every other
step by ``forward`` (each op's kernel, in recording order) and ``backward`` (each op's backward,
in reverse order, gradients accumulated per slot exactly as the graph walk does).

A recording is only as good as the assumption that the same ops run on every call. Two things
make that checkable:

- an op without a forward kernel, or Python reading a tensor's values (``.item()``, ``bool()``,
  ``.numpy()``, ``np.asarray``, a tensor used as an index) makes the recording unreplayable
  (``Tape.problem`` says why);
- ``Tape.same_as(other)``: two recordings of consecutive steps must agree in every op, ``ctx``,
  wiring and constant; a constant computed from the data (``Tensor(h.data > 0)``, a random mask)
  differs between them.
"""
import numpy as np

from .tensor import ProductGrad, Tensor, _accumulate, _meta, _Recording

__all__ = ["record", "Tape"]


def record(fn, inputs):
    """Run ``fn(*inputs)`` (Tensors) and record it: -> (Tape, list of the output Tensors).

    ``fn`` returns a Tensor or a tuple of Tensors. The inputs should require grad wherever the
    replay will need their gradients: ops record which of their inputs need one (in ``ctx``).
    """
    records = []
    previous, _Recording.records = _Recording.records, records
    try:
        result = fn(*inputs)
    finally:
        _Recording.records = previous
    outputs = [result] if isinstance(result, Tensor) else list(result)
    return Tape(records, inputs, outputs), outputs


class Tape:
    """One recorded call of a function as slot programs (see the module docstring).

    Attributes: ``problem`` (None, or why the recording cannot be replayed); ``n_slots``;
    ``input_slots``/``output_slots``; ``externals`` [(slot, tensor)]; ``template`` (a list of
    n_slots with the externals' arrays filled in, None elsewhere); ``forward_program`` [(kernel,
    ctx, input slots, output slot)]; ``backward_program`` [(backward, ctx, input slots, output
    slot, reads output, arguments)], in the order to run it; ``kept`` (the per-call slots that
    backward reads); ``needs_grad`` per slot; ``values`` (this recording's array in every slot).
    """

    def __init__(self, records, inputs, outputs):
        self.problem = None
        slot_of = {id(t): i for i, t in enumerate(inputs)}
        values = [t.data for t in inputs]
        needs_grad = [t.requires_grad for t in inputs]
        self.input_slots = list(range(len(inputs)))
        self.externals, self.constants = [], []
        self.forward_program, backward_ops = [], []
        self._signature = []  # everything that must repeat between two recordings of the same step

        def slot(tensor):
            i = slot_of.get(id(tensor))
            if i is None:  # made before the call: a parameter or a closed-over constant
                i = slot_of[id(tensor)] = len(values)
                values.append(tensor.data)
                needs_grad.append(tensor.requires_grad)
                self.externals.append((i, tensor))
            return i

        for forward, ctx, parents, out, backward, save in records:
            if out is None:
                self.problem = f"the function read a tensor's values with {ctx}"
                break
            if not parents:  # a constant made inside the function
                i = slot_of[id(out)] = len(values)
                values.append(out.data)
                needs_grad.append(False)
                self.constants.append(i)
                continue
            if forward is None:
                self.problem = f"the op {_op_name(backward)} has no forward kernel to replay"
                break
            ins = tuple(slot(p) for p in parents)
            i = slot_of[id(out)] = len(values)
            values.append(out.data)
            needs_grad.append(backward is not None and any(needs_grad[j] for j in ins))
            self.forward_program.append((forward, ctx, ins, i))
            self._signature.append((forward, backward, ins))
            self._signature.append(ctx)
            if needs_grad[i]:
                backward_ops.append((backward, ctx, ins, i, save))
        self.output_slots = [slot(t) for t in outputs]
        self.n_slots, self.values, self.needs_grad = len(values), values, needs_grad
        self.shapes = [v.shape for v in values]
        self.external_slots = {i for i, _ in self.externals}
        self.template = [None] * len(values)
        for i in [i for i, _ in self.externals] + self.constants:
            self.template[i] = values[i]
        self._build_backward(backward_ops)

    def _build_backward(self, backward_ops):
        """The backward program, and which per-call slots it reads (all others need not be kept)."""
        per_call = set(self.input_slots) | {op[3] for op in self.forward_program}
        kept, self.backward_program = set(), []
        for backward, ctx, ins, out, (reads_output, reads) in reversed(backward_ops):
            arguments = []
            for k, j in enumerate(ins):
                if reads is None or k in reads:
                    arguments.append(j)
                    kept.add(j)
                else:
                    arguments.append(_meta(self.values[j]))  # only its shape and dtype are read
            if reads_output:
                kept.add(out)
            self.backward_program.append((backward, ctx, ins, out, reads_output, tuple(arguments)))
        self.kept = kept & per_call
        self.dropped = sorted(per_call - kept)

    def same_as(self, other):
        """Whether ``other`` recorded the same ops, wiring, ``ctx``, externals and constants."""
        if (len(self._signature) != len(other._signature) or self.output_slots != other.output_slots
                or [i for i, _ in self.externals] != [i for i, _ in other.externals]
                or self.constants != other.constants):
            return False
        for a, b in zip(self._signature, other._signature):
            if not _equal(a, b):
                return False
        for (i, mine), (_, theirs) in zip(self.externals, other.externals):
            if mine is not theirs and not _equal(mine.data, theirs.data):
                return False
        return all(_equal(self.values[i], other.values[i]) for i in self.constants)

    def forward(self, inputs):
        """Run the recorded ops on new input arrays: -> every slot's value (a list, see ``kept``)."""
        values = self.template.copy()
        for i, array in zip(self.input_slots, inputs):
            values[i] = array
        for kernel, ctx, ins, out in self.forward_program:
            if len(ins) == 1:
                values[out] = kernel(ctx, values[ins[0]])
            elif len(ins) == 2:
                values[out] = kernel(ctx, values[ins[0]], values[ins[1]])
            else:
                values[out] = kernel(ctx, *[values[j] for j in ins])
        return values

    def forget_unread(self, values):
        """Drop from ``values`` the per-call arrays no backward reads (so they can be freed)."""
        for i in self.dropped:
            values[i] = None

    def backward(self, values, seeds, external_grads, external_owned):
        """One call's backward: -> the gradient of each input (None where none arrives).

        ``values`` from ``forward`` (after ``forget_unread``); ``seeds`` [(slot, gradient)] for the
        outputs. Externals' gradients are accumulated into ``external_grads`` (keyed by slot,
        with ``external_owned`` as in ``tensor._accumulate``), so that a parameter used by every
        call collects all of them (a ``ProductGrad`` stays factored across calls).
        """
        grads, owned = {}, set()
        needs_grad, shapes, external_slots = self.needs_grad, self.shapes, self.external_slots
        for i, g in seeds:
            if g is not None and needs_grad[i]:
                if i in external_slots:
                    _accumulate(external_grads, external_owned, i, shapes[i], g)
                else:
                    _accumulate(grads, owned, i, shapes[i], g)
        for backward, ctx, ins, out, reads_output, arguments in self.backward_program:
            g = grads.pop(out, None)
            if g is None:
                continue
            if type(g) is ProductGrad and not getattr(backward, "passes_product_grad", False):
                g = g.value()
            args = [values[a] if type(a) is int else a for a in arguments]
            parent_grads = backward(g, values[out] if reads_output else None, ctx, *args)
            for j, pg in zip(ins, parent_grads):
                if pg is not None and needs_grad[j]:
                    if j in external_slots:
                        _accumulate(external_grads, external_owned, j, shapes[j], pg)
                    elif type(pg) is np.ndarray and j not in grads:  # the common case, inlined
                        grads[j] = pg
                    else:
                        _accumulate(grads, owned, j, shapes[j], pg)
        result = []
        for i in self.input_slots:
            g = grads.get(i)
            result.append(g.value() if type(g) is ProductGrad else g)
        return result


def _op_name(backward):
    name = getattr(backward, "__name__", "?").lstrip("_")
    return name[:-len("_backward")] if name.endswith("_backward") else name


def _equal(a, b):
    """Deep equality of two ``ctx`` values or arrays (same type, shape, dtype and contents)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False

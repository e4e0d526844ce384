"""Tensor: an ndarray plus what reverse-mode autodiff needs, and the backward walk.

An op's result has a ``Node``: the ``Op`` that made it, its inputs' nodes, the arrays its backward reads.
``backward()`` visits nodes largest creation number first: a node is made after its inputs, so each is
visited after all its consumers, its gradient complete; the visit adds the op's backward's results to the
inputs' gradients. Gradients are ndarrays; with ``create_graph=True`` they are Tensors, and each backward
(written with what both share) records itself: gradients of gradients. ``ops.py`` attaches the operators;
docs/engine.md is the reading guide. One seam lets tools watch the engine: ``observers``.
"""
import contextlib
import collections
import heapq
import itertools
import types
import weakref

import numpy as np

__all__ = ["Tensor", "IndexGrad", "add_at", "accumulate", "no_grad", "is_grad_enabled", "grad", "observers", "read_values",
           "set_default_dtype", "get_default_dtype"]

# The seam: observer(event, tensor, details) is called when an op makes a Tensor ("op", details (op, ctx, inputs,
# reads)), a Tensor is made from an array ("array") or Python reads a Tensor's values or hooks it ("read", how).
observers = []


def read_values(tensor, what):
    """``tensor``'s array, read by Python (``what`` says how): observers are told, as a recording can't replay Python."""
    for observer in observers:
        observer("read", tensor, what)
    return tensor.data


_DEFAULT_DTYPE, _GRAD_ENABLED = [np.dtype(np.float32)], [True]
_next_seq = itertools.count().__next__


def set_default_dtype(dtype):
    """Set the dtype that Python scalars and lists become (float32 unless set)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"the default dtype must be a floating-point dtype, got {dtype}")
    _DEFAULT_DTYPE[0] = dtype


def get_default_dtype():
    return _DEFAULT_DTYPE[0]


def is_grad_enabled():
    """Whether ops record the graph now (False inside ``no_grad`` and inside a first-order backward)."""
    return _GRAD_ENABLED[0]


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator: ops inside record no graph (results never require grad)."""
    outer = []  # the grad mode each active no_grad found on entering, innermost last (right for recursion too)

    def __enter__(self):
        no_grad.outer.append(_GRAD_ENABLED[0])
        _GRAD_ENABLED[0] = False

    def __exit__(self, *exc):
        _GRAD_ENABLED[0] = no_grad.outer.pop()


# The gradient of ``parent[index]`` for its parent: zero except ``g`` at ``index`` (``basic``: not index arrays).
# A slice's backward returns it, not a parent-sized array of zeros; the walk adds it in place: T steps cost O(T).
IndexGrad = collections.namedtuple("IndexGrad", "index basic g")


def add_at(buffer, piece):
    """Add the ``IndexGrad`` ``piece`` into ``buffer`` (repeated integer indices accumulate); -> buffer."""
    if piece.basic:
        buffer[piece.index] += piece.g
    else:
        np.add.at(buffer, piece.index, piece.g)
    return buffer


class Node:
    """One tensor's place in the graph. ``inputs``: the input tensors' nodes (None if one needs no gradient);
    ``saved``: per input, its array if backward reads it, else a stand-in with its shape and dtype only;
    ``out``: the output if backward reads it. A leaf (``op`` None) or retained tensor weakly refers to it."""

    __slots__ = ("op", "ctx", "inputs", "saved", "out", "shape", "dtype", "seq", "hooks", "tensor")

    def __init__(self, data, op=None, ctx=None, inputs=(), saved=(), out=None, tensor=None):
        self.op, self.ctx, self.inputs, self.saved, self.out = op, ctx, inputs, saved, out
        self.shape, self.dtype, self.seq, self.hooks, self.tensor = data.shape, data.dtype, _next_seq(), None, tensor


_STAND_INS = {}  # (shape, dtype) -> a read-only array of that shape whose elements all view one NaN (or 0)


def _stand_in(array):
    """``array``'s shape and dtype, no data: for a backward that reads only those (NaN, so a mistaken read shows)."""
    key = (array.shape, array.dtype)
    if key not in _STAND_INS:
        _STAND_INS[key] = np.broadcast_to(np.array(np.nan if array.dtype.kind == "f" else 0, array.dtype), array.shape)
    return _STAND_INS[key]


class Tensor:
    """``Tensor(data, requires_grad=False, dtype=None)``: an ndarray that records the ops applied to it. An ndarray
    keeps its dtype, numbers and lists take the default dtype; only floating-point tensors can require grad."""

    __slots__ = ("data", "grad", "requires_grad", "_node", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            raise TypeError("Tensor(data) got a Tensor; use .detach() or .data to share or copy it")
        numbers = dtype is None and not isinstance(data, (np.ndarray, np.generic))  # numbers and lists: the default dtype
        try:
            data = np.asarray(data, dtype=_DEFAULT_DTYPE[0] if numbers else dtype)  # an ndarray of that dtype: itself
        except (TypeError, ValueError) as error:
            raise TypeError(f"cannot make a Tensor from {type(data).__name__}: {error}") from None
        if data.dtype.kind not in "fiub":
            raise TypeError(f"Tensor data must be numeric or bool, got dtype {data.dtype}")
        self.data, self.grad, self._node = data, None, None
        self.requires_grad_(requires_grad)
        for observer in observers:
            observer("array", self, None)

    @classmethod
    def from_op(cls, data, inputs, op, ctx=None, reads=None):
        """The output ``data`` of ``op`` (an ``ops.Op``) on the Tensors ``inputs``; with a node if any input
        requires grad (and grad mode is on). ``reads`` overrides ``op.reads`` for this call."""
        out = object.__new__(cls)
        out.data, out.grad, out.requires_grad, out._node = np.asarray(data), None, False, None  # 0-d: an array too
        reads_output, read = op.reads if reads is None else reads  # (reads the output?, inputs read: None for all)
        if _GRAD_ENABLED[0] and op.backward is not None and any([t.requires_grad for t in inputs]):
            saved = [t.data if read is None or i in read else _stand_in(t.data) for i, t in enumerate(inputs)]
            out.requires_grad = True
            out._node = Node(out.data, op, ctx, [t._node for t in inputs], saved, out.data if reads_output else None)
        for observer in observers:
            observer("op", out, (op, ctx, inputs, (reads_output, read)))
        return out

    @classmethod
    def _wrap(cls, data, node):
        """A Tensor for ``data`` whose gradient flows into ``node`` (None: a constant)."""
        out = object.__new__(cls)
        out.data, out.grad, out.requires_grad, out._node = data, None, node is not None, node
        return out

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    is_leaf = property(lambda self: self._node is None or self._node.op is None)
    __hash__ = object.__hash__  # == is elementwise, so hash by identity

    def requires_grad_(self, flag=True):
        if self._node is not None and self._node.op is not None:
            raise RuntimeError("requires_grad can only be changed on a leaf tensor")
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(flag)
        self._node = (self._node or Node(self.data, tensor=weakref.ref(self))) if flag else None  # hooks stay
        return self

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after ``backward()`` (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        read_values(self, "retain_grad()")  # a step that keeps gradients cannot be replayed without Tensors
        self._node.tensor = self._node.tensor or weakref.ref(self)

    def register_hook(self, fn):
        """``fn(grad) -> grad or None`` runs when this tensor's gradient is complete; a returned value
        replaces the gradient that flows on (and that a leaf stores). Returns a handle with ``remove()``."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        read_values(self, "register_hook()")  # likewise: a replay has no Tensor to run the hook on
        hooks = self._node.hooks = self._node.hooks or []
        hooks.append(fn)
        return types.SimpleNamespace(remove=lambda: fn in hooks and hooks.remove(fn))  # handle.remove() unregisters

    def backward(self, grad=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``; ``grad``, the upstream gradient, may be omitted for one
        element. ``create_graph=True``: the ``.grad`` are Tensors with a graph, to differentiate again (as in PyTorch)."""
        _walk([self], [grad], create_graph, None)


def grad(outputs, inputs, grad_outputs=None, create_graph=False, allow_unused=False):
    """The gradients of ``outputs`` w.r.t. ``inputs`` as Tensors, touching no ``.grad``, like
    ``torch.autograd.grad``; ``grad_outputs`` defaults to ones for one-element outputs."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    grad_outputs = [None] * len(outputs) if grad_outputs is None else \
        [grad_outputs] if isinstance(grad_outputs, (Tensor, np.ndarray)) else list(grad_outputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise RuntimeError(f"grad(): input {i} is not a Tensor that requires grad")
    found = _walk(outputs, grad_outputs, create_graph, {x._node: None for x in inputs})
    for i, x in enumerate(inputs):
        if found[x._node] is None and not allow_unused:
            raise RuntimeError(f"grad(): input {i} (shape {x.shape}) is not reachable from the outputs; "
                               f"pass allow_unused=True to get None for it")
    return tuple(g if g is None or isinstance(g, Tensor) else Tensor(g) for g in (found[x._node] for x in inputs))


def _root_gradient(t, g, create_graph):
    if not isinstance(t, Tensor):
        raise TypeError(f"backward() needs Tensors as outputs, got {type(t).__name__}")
    if not t.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad (no input did, or no_grad was on)")
    if g is None:
        if t.data.size != 1:
            raise RuntimeError(f"backward() on a non-scalar tensor of shape {t.shape} needs grad= "
                               f"(the upstream gradient, of the same shape)")
        g = np.ones_like(t.data)
    if not (isinstance(g, Tensor) and create_graph):  # else the upstream gradient may itself be differentiated
        g = np.asarray(g.data if isinstance(g, Tensor) else g, dtype=t.data.dtype)
    return _checked(t._node, g, "backward(): grad", create_graph)


def _walk(roots, root_grads, create_graph, capture):
    """Send gradients from ``roots`` to every node that needs one, last-made node first, into the ``.grad`` of
    leaves and retained tensors, or, with ``capture`` ({node: None}, from ``grad()``), only into ``capture``."""
    grads, owned, heap = {}, set(), []
    previous, _GRAD_ENABLED[0] = _GRAD_ENABLED[0], create_graph  # the backward pass is recorded only if asked
    try:
        for t, g in zip(roots, root_grads):
            g = _root_gradient(t, g, create_graph)
            if accumulate(grads, owned, t._node, t.shape, g):
                heapq.heappush(heap, (-t._node.seq, t._node))
        while heap:
            node = heapq.heappop(heap)[1]
            g, g_owned = grads.pop(node), node in owned
            owned.discard(node)
            for hook in tuple(node.hooks or ()):
                g_owned, replaced = False, hook(g)  # a hook may keep what it was shown: never write to it
                if replaced is not None:
                    g = _checked(node, replaced, "a hook's gradient (return None or one alike)", create_graph)
            if capture is not None:
                if node in capture:
                    capture[node] = g if g_owned or create_graph else np.array(g)  # never aliased nor read-only
            elif node.tensor is not None and node.tensor() is not None:
                _store_grad(node.tensor(), g, g_owned, create_graph)
            if node.op is None:
                continue
            saved, out = node.saved, node.out
            if create_graph:  # the arrays backward reads, as Tensors whose gradients flow into their nodes
                saved = [Tensor._wrap(s, n) for s, n in zip(saved, node.inputs)]
                out = None if out is None else Tensor._wrap(out, node)
            for p, pg in zip(node.inputs, node.op.backward(g, out, node.ctx, *saved)):
                if p is not None and pg is not None and accumulate(grads, owned, p, p.shape, pg):
                    heapq.heappush(heap, (-p.seq, p))
            pg = None  # a gradient no parent took is freed now, not after the next node's backward
    finally:  # however the walk ends (a hook raising, Ctrl-C), grad mode is restored
        _GRAD_ENABLED[0] = previous
    return capture


def accumulate(grads, owned, key, shape, g):
    """Add the contribution ``g`` to ``grads[key]`` (a gradient of ``shape``); True if it is the first. An
    array in ``owned`` was allocated here, so adding into it in place changes nothing anyone else holds."""
    g = np.asarray(g) if isinstance(g, np.generic) else g  # NumPy computes 0-d results as scalars: make arrays
    current = grads.get(key)
    first = current is None
    if type(g) is IndexGrad:
        if key not in owned:
            current = grads[key] = np.zeros(shape, g.g.dtype) if current is None else np.array(current)
            owned.add(key)
        add_at(current, g)
    elif current is None:
        grads[key] = g
    elif key in owned and type(current) is np.ndarray:
        current += g
    else:
        total = current + g
        grads[key] = np.asarray(total) if isinstance(total, np.generic) else total
        if type(total) is np.ndarray:
            owned.add(key)
    return first


def _store_grad(t, g, g_owned, create_graph):
    """Leaves accumulate into ``.grad``, retained non-leaves too (an ndarray, or a Tensor with a graph)."""
    if create_graph:
        t.grad = g if t.grad is None else (t.grad if isinstance(t.grad, Tensor) else Tensor(t.grad)) + g
    elif t.grad is None:
        t.grad = g if g_owned and g.flags.writeable else np.array(g)
    else:  # in place, as PyTorch; a Tensor left by an earlier create_graph backward is replaced
        t.grad = t.grad.data + g if isinstance(t.grad, Tensor) else np.add(t.grad, g, out=t.grad)


def _checked(node, g, what, create_graph):
    """``g`` as the gradient of ``node``: a Tensor under ``create_graph``, else an array; same shape and dtype."""
    g = (g if isinstance(g, Tensor) else Tensor(np.asarray(g, dtype=node.dtype))) if create_graph else \
        (g.data if isinstance(g, Tensor) else np.asarray(g))
    if g.shape != node.shape:
        raise ValueError(f"{what} has shape {tuple(g.shape)} for a tensor of shape {node.shape}; "
                         f"it must have the same shape")
    if g.dtype != node.dtype:
        raise TypeError(f"{what} has dtype {g.dtype} for a tensor of dtype {node.dtype}; it must keep the dtype")
    return g

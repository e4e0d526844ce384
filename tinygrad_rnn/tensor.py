"""Tensor: an ndarray plus what reverse-mode autodiff needs, and the backward walk.

A Tensor made by an op holds its data and a ``Node``: the op's backward function, the nodes of
the op's inputs, and only the arrays that backward reads (an op declares them: ``save=`` in
``Tensor._result``). Intermediate results that no backward reads are therefore freed as soon as
the program drops them, while the graph lives on: a recurrent step keeps what its backward
needs, not every temporary. Leaves that require grad have a node too (no backward, a weak
reference to the tensor, whose ``.grad`` it fills).

``backward()`` walks the nodes from the output towards the leaves in reverse creation order:
every node carries a creation number (``seq``), and a node is always created after its inputs',
so popping the largest number first visits each node after all of its consumers, i.e. after its
gradient is complete.

Gradients flowing through the walk are plain ndarrays, so the first-order path builds no graph.
With ``create_graph=True`` they are Tensors instead and every backward function runs on Tensors
(the saved arrays rewrapped with their nodes), recording the backward pass itself; that is what
makes gradients of gradients work. Each op's backward is written once with operators and methods
that ndarrays and Tensors share.

The operators and methods (``+``, ``@``, ``exp``, ``sum``, ``__getitem__`` ...) are attached to
Tensor at the end of ``ops.py``, next to the ops that implement them.
"""
import functools
import heapq
import itertools
import weakref

import numpy as np

__all__ = ["Tensor", "no_grad", "set_default_dtype", "get_default_dtype", "grad", "walk_scratch"]


class _GradMode:
    """Whether ops record the graph (switched off by ``no_grad``)."""

    enabled = True


class _Walk:
    """The scratch space of the backward walk in progress (None outside a walk); see ``walk_scratch``."""

    scratch = None


def walk_scratch():
    """A dict that lives exactly as long as the backward walk in progress, for a node's backward to
    leave something for another node of the same walk (a recurrent loop's final state hands its
    gradient to the loop this way). Nothing in it outlives the walk: not when it finishes, not when
    a hook raises, not when the user interrupts it (so a later walk never sees a stale value)."""
    if _Walk.scratch is None:
        raise RuntimeError("walk_scratch() is only available inside a backward walk")
    return _Walk.scratch


class _Recording:
    """Where ops report themselves while ``tape.record`` runs a function (None: nobody records)."""

    records = None


MADE_FROM_ARRAY = "Tensor(array)"  # the ``ctx`` of a recording's note that a Tensor was constructed


def _note_untraceable(what):
    """Tell a recording in progress that Python read a tensor's values (``what``): no replay then."""
    if _Recording.records is not None:
        _Recording.records.append((None, what, (), None, None, None))


_DEFAULT_DTYPE = [np.dtype(np.float32)]
_next_seq = itertools.count().__next__


def set_default_dtype(dtype):
    """Set the dtype that Python scalars and lists become (float32 unless set)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"the default dtype must be a floating-point dtype, got {dtype}")
    _DEFAULT_DTYPE[0] = dtype


def get_default_dtype():
    return _DEFAULT_DTYPE[0]


class no_grad:
    """Context manager and decorator: ops inside record no graph (results never require grad)."""

    def __enter__(self):
        self._previous = _GradMode.enabled
        _GradMode.enabled = False

    def __exit__(self, *exc):
        _GradMode.enabled = self._previous

    def __call__(self, fn):
        return _run_inside(no_grad, fn)


def _run_inside(make_context, fn):
    """``fn`` run inside a fresh ``make_context()`` at every call: a context manager as a decorator."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with make_context():
            return fn(*args, **kwargs)

    return wrapper


class _HookHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks, fn):
        self._hooks, self._fn = hooks, fn

    def remove(self):
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


class IndexGrad:
    """The gradient of ``parent[index]``: ``g`` to be added into a parent-shaped buffer at ``index``.

    Ops that read part of a tensor (slices, split, chunk, integer indexing) return this from their
    first-order backward instead of a parent-sized array of zeros, so that the pieces' gradients
    all land in one buffer: a sequence split into T steps costs O(T), not O(T^2).
    """

    __slots__ = ("index", "basic", "g")

    def __init__(self, index, basic, g):
        self.index, self.basic, self.g = index, basic, g

    def dense(self, shape):
        """The gradient as an array of the parent's ``shape``: zeros with ``g`` added at ``index``."""
        buffer = np.zeros(shape, dtype=self.g.dtype)
        self.add_into(buffer)
        return buffer

    def add_into(self, buffer):
        if self.basic:
            buffer[self.index] += self.g
        else:  # integer arrays and masks: repeated indices accumulate
            np.add.at(buffer, self.index, self.g)


class FreshGrad:
    """A gradient array that a backward allocated for this one input: the walk may own it, adding
    further contributions into it in place instead of into a copy (a recurrent loop's gradient for
    its whole input sequence, to which the steps run op by op add their slices)."""

    __slots__ = ("g",)

    def __init__(self, g):
        self.g = g


class ProductGrad:
    """The gradient ``sum_i lefts[i]^T @ rights[i]`` of a matmul's right operand, not multiplied out yet.

    A weight used at every time step (h_t @ W) receives one such term per step. Kept as factors,
    the terms are summed by a few large products instead of T small ones and T additions:
    sum_t h_t^T g_t = [h_1; ...; h_T]^T [g_1; ...; g_T]. Whenever the pending factors pass
    ``_PRODUCT_BLOCK_BYTES`` they are multiplied out into ``folded`` and dropped, so the walk never
    holds more than a block of them (they are as large as the gate gradients of the sequence).
    A recurrent loop that keeps a factor anyway, as a row of a whole-sequence buffer, says so
    (``share_last_term``): such terms cost no block memory and fold as one product over the buffer.
    ``transpose`` passes through a transposed weight (h @ W.T): (sum L^T R)^T = sum R^T L.
    Anything else gets ``value()``.
    """

    __slots__ = ("lefts", "rights", "rows", "pending_bytes", "folded")

    def __init__(self, left, right):
        self.lefts, self.rights = [left], [right]
        self.rows = [(None, None)]  # per term, (buffer, index) of a factor that is buffer[index] (share_last_term)
        self.pending_bytes = left.nbytes + right.nbytes
        self.folded = None  # the sum of the terms already multiplied out

    def transpose(self, axes=None):
        if axes is not None and tuple(axes) == (0, 1):  # the identity permutation
            return self
        flipped = object.__new__(ProductGrad)
        flipped.lefts, flipped.rights, flipped.pending_bytes = self.rights, self.lefts, self.pending_bytes
        flipped.rows = [(right, left) for left, right in self.rows]
        flipped.folded = None if self.folded is None else self.folded.T
        return flipped

    def extend(self, other):
        self.lefts += other.lefts
        self.rights += other.rights
        self.rows += other.rows
        self.pending_bytes += other.pending_bytes
        if other.folded is not None:
            self._add(other.folded)
        if self.pending_bytes > _PRODUCT_BLOCK_BYTES:
            self._fold()

    def value(self):
        if self.lefts:
            self._fold()
        return self.folded

    def share_last_term(self, factor, buffer, index):
        """If ``factor`` is a factor of the last term, use ``buffer[index]`` (equal values, in an array
        that outlives this gradient, such as a loop's whole-sequence buffer) instead: the term then
        holds no memory of its own, and runs of consecutive rows multiply out without a copy."""
        if not self.lefts:
            return
        left, right = self.rows[-1]
        if self.lefts[-1] is factor:
            self.lefts[-1], left = buffer[index], (buffer, index)
        elif self.rights[-1] is factor:
            self.rights[-1], right = buffer[index], (buffer, index)
        else:
            return
        self.rows[-1] = (left, right)
        self.pending_bytes -= factor.nbytes

    def _fold(self):
        """sum_i L_i^T R_i as few products: each run of terms whose lefts and rights are consecutive
        rows of one buffer each is one product over views of the buffers; the others one over copies."""
        lefts, rights, rows = self.lefts, self.rights, self.rows
        self.lefts, self.rights, self.rows, self.pending_bytes = [], [], [], 0
        loose, start = [], 0
        while start < len(rows):
            end = _run_end(rows, start)
            if end - start > 1:
                run = rows[start:end]
                self._add(_span([left for left, _ in run]).T @ _span([right for _, right in run]))
            else:
                loose.append(start)
            start = end
        if len(loose) == 1:
            self._add(lefts[loose[0]].T @ rights[loose[0]])
        elif loose:
            self._add(np.concatenate([lefts[i] for i in loose]).T @ np.concatenate([rights[i] for i in loose]))

    def _add(self, term):
        if self.folded is None:
            self.folded = term
        else:
            self.folded += term


_PRODUCT_BLOCK_BYTES = 4 << 20


def _run_end(rows, start):
    """The end of the run of terms from ``start`` whose lefts, and whose rights, are consecutive rows
    (index steps of the same +1 or -1 on both sides) of one buffer each."""
    end, step = start + 1, None
    while end < len(rows):
        (left_before, right_before), (left, right) = rows[end - 1], rows[end]
        if None in (left_before, right_before, left, right) or left[0] is not left_before[0] \
                or right[0] is not right_before[0]:
            break
        this_step = left[1] - left_before[1]
        if this_step not in (1, -1) or right[1] - right_before[1] != this_step or step not in (None, this_step):
            break
        step, end = this_step, end + 1
    return end


def _span(rows):
    """The rows (buffer, index) of one run as one view: buffer[lo:hi + 1] as a matrix."""
    buffer = rows[0][0]
    indices = [index for _, index in rows]
    return buffer[min(indices):max(indices) + 1].reshape(-1, buffer.shape[-1])


class Meta:
    """The shape and dtype of an array that a backward does not read (it needs only these)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    ndim = property(lambda self: len(self.shape))


_METAS = {}


def _meta(array):
    """The (shared) Meta of an array's shape and dtype."""
    key = (array.shape, array.dtype)
    meta = _METAS.get(key)
    if meta is None:
        meta = _METAS[key] = Meta(*key)
    return meta


# ``save=`` of ``Tensor._result``: (whether backward reads the output, the indices of the inputs it
# reads, or None for all of them). The default keeps everything.
SAVE_ALL = (True, None)


class Node:
    """One tensor's place in the graph: how to send its gradient on.

    ``backward(g, out, ctx, *saved)`` returns one gradient per input; ``inputs`` are the input
    tensors' nodes (None for an input that does not require grad); ``saved`` holds each input's
    array if backward reads it, else a description of it (its node, or a ``Meta``: both have its
    shape, dtype and ndim); ``out`` is the output array if backward reads it, else None (``shape``
    and ``dtype`` describe it either way). A leaf's node has no backward and a weak reference to
    its tensor (``tensor``), as has a non-leaf whose gradient is retained.
    """

    __slots__ = ("backward", "ctx", "inputs", "saved", "out", "shape", "dtype", "seq", "hooks", "tensor")

    ndim = property(lambda self: len(self.shape))


_DESCRIPTIONS = (Meta, Node)  # what ``saved`` holds for an input that backward does not read


def _leaf_node(tensor):
    node = object.__new__(Node)
    node.backward, node.ctx, node.inputs, node.saved, node.out = None, None, (), (), None
    node.shape, node.dtype, node.seq, node.hooks = tensor.data.shape, tensor.data.dtype, _next_seq(), None
    node.tensor = weakref.ref(tensor)
    return node


def _op_node(data, parents, backward, ctx, save):
    """The node of an op's output (see ``Tensor._result``)."""
    reads_output, reads = save
    node = object.__new__(Node)
    node.backward, node.ctx, node.hooks, node.tensor = backward, ctx, None, None
    node.out = data if reads_output else None
    node.shape, node.dtype = data.shape, data.dtype
    # an input that is not read is described by its node (which has its shape and dtype), or by a
    # Meta when it has none; the common cases are written out for speed
    if len(parents) == 1:
        (p,) = parents
        pn = p._node
        node.inputs = (pn,)
        node.saved = (p.data if reads is None or reads else pn or _meta(p.data),)
    elif len(parents) == 2:
        p, q = parents
        pn, qn = p._node, q._node
        node.inputs = (pn, qn)
        if reads is None:
            node.saved = (p.data, q.data)
        else:
            node.saved = (p.data if 0 in reads else pn or _meta(p.data),
                          q.data if 1 in reads else qn or _meta(q.data))
    else:
        node.inputs = tuple([p._node for p in parents])
        node.saved = tuple([p.data if reads is None or i in reads else p._node or _meta(p.data)
                            for i, p in enumerate(parents)])
    node.seq = _next_seq()
    return node


def _detach_forward(ctx, a):
    return a


def _as_array(data, dtype):
    if isinstance(data, np.ndarray):
        return data if dtype is None or data.dtype == dtype else data.astype(dtype)
    if isinstance(data, Tensor):
        raise TypeError("Tensor(data) got a Tensor; use .detach() or .data to share or copy it")
    if isinstance(data, np.generic):
        return np.asarray(data, dtype=dtype)
    try:
        array = np.asarray(data, dtype=dtype if dtype is not None else _DEFAULT_DTYPE[0])
    except (TypeError, ValueError) as error:
        raise TypeError(f"cannot make a Tensor from {type(data).__name__}: {error}") from None
    return array


class Tensor:
    """An n-dimensional array that records the ops applied to it for reverse-mode autodiff.

    ``Tensor(data, requires_grad=False, dtype=None)``: an ndarray keeps its dtype; Python scalars
    and (nested) lists take the default dtype (float32 unless ``set_default_dtype`` says otherwise).
    Only floating-point tensors can require gradients.
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad=False, dtype=None):
        data = _as_array(data, None if dtype is None else np.dtype(dtype))
        if data.dtype.kind not in "fiub":
            raise TypeError(f"Tensor data must be numeric or bool, got dtype {data.dtype}")
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._node = _leaf_node(self) if requires_grad else None
        if _Recording.records is not None:  # made from an array inside a recording: its values may come from the data
            _Recording.records.append((None, MADE_FROM_ARRAY, (), self, None, None))

    # ---------------------------------------------------------------- construction by ops
    @classmethod
    def _result(cls, data, parents, backward, ctx=None, save=SAVE_ALL, forward=None):
        """The output of an op; if any parent requires grad, with a node recording the op.

        ``save = (reads_output, indices of the inputs read, or None for all)`` names what
        ``backward`` reads. Of an input it does not read the node keeps only a description (the
        input's node or a ``Meta``), of the output nothing: such arrays are freed with their tensors.
        ``backward=None`` marks an op through which no gradient flows (comparisons, casts to
        integers, constants). ``forward(ctx, *input arrays) -> data`` is the op's computation, for
        ``tape`` to replay it (None: the op cannot be replayed).
        """
        out = object.__new__(cls)
        out.data = data if type(data) is np.ndarray else np.asarray(data)  # a 0-d result: an array, never a NumPy scalar
        out.grad = None
        out.requires_grad = False
        out._node = None
        if _GradMode.enabled and backward is not None:
            for p in parents:
                if p.requires_grad:
                    out.requires_grad = True
                    out._node = _op_node(out.data, parents, backward, ctx, save)
                    break
        if _Recording.records is not None:
            _Recording.records.append((forward, ctx, parents, out, backward, save))
        return out

    @classmethod
    def _wrap(cls, data, node):
        """A Tensor for ``data`` whose gradient flows into ``node`` (None: a constant)."""
        out = object.__new__(cls)
        out.data, out.grad, out.requires_grad, out._node = data, None, node is not None, node
        return out

    # ---------------------------------------------------------------- plain properties
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._node is None or self._node.backward is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, prefix='Tensor(')}, dtype={self.data.dtype}{grad})"

    def __array__(self, dtype=None, copy=None):
        _note_untraceable("np.asarray(tensor)")
        return self.data if dtype is None else self.data.astype(dtype)

    __hash__ = object.__hash__  # == is elementwise, so hash by identity

    def __bool__(self):
        _note_untraceable("bool(tensor)")
        return bool(self.data)

    def numpy(self):
        """The underlying ndarray (shared, not copied)."""
        _note_untraceable("tensor.numpy()")
        return self.data

    def item(self):
        _note_untraceable("tensor.item()")
        return self.data.item()

    def detach(self):
        """A Tensor sharing this data, cut off from the graph."""
        return Tensor._result(self.data, (self,), None, None, None, _detach_forward)

    def requires_grad_(self, flag=True):
        if not self.is_leaf:
            raise RuntimeError("requires_grad can only be changed on a leaf tensor")
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(flag)
        self._node = _leaf_node(self) if flag else None
        return self

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after ``backward()`` (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        if self._node.tensor is None:
            self._node.tensor = weakref.ref(self)

    def register_hook(self, fn):
        """``fn(grad) -> grad or None`` runs when this tensor's gradient is complete.

        A returned value replaces the gradient that flows on (and that a leaf stores). Returns a
        handle whose ``remove()`` unregisters the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        node = self._node
        if node.hooks is None:
            node.hooks = []
        node.hooks.append(fn)
        return _HookHandle(node.hooks, fn)

    # ---------------------------------------------------------------- backward
    def backward(self, grad=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is the upstream gradient (same shape as self); it may be omitted for a
        one-element tensor. With ``create_graph=True`` the backward pass is recorded, and each
        leaf's ``.grad`` is then a Tensor that can itself be differentiated (as in PyTorch).
        """
        _walk([self], [grad], create_graph=create_graph, inputs=None)


def grad(outputs, inputs, grad_outputs=None, create_graph=False, allow_unused=False):
    """The gradients of ``outputs`` w.r.t. ``inputs`` as Tensors, without touching any ``.grad``.

    Like ``torch.autograd.grad``: ``outputs`` and ``inputs`` are Tensors or sequences of them;
    ``grad_outputs`` defaults to ones for one-element outputs. With ``create_graph=True`` the
    returned gradients carry a graph and can be differentiated again.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise RuntimeError(f"grad(): input {i} is not a Tensor that requires grad")
    found = _walk(outputs, list(grad_outputs), create_graph=create_graph, inputs=inputs)
    result = []
    for i, x in enumerate(inputs):
        g = found.get(x._node)
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"grad(): input {i} (shape {x.shape}) is not reachable from the "
                                   f"outputs; pass allow_unused=True to get None for it")
            result.append(None)
        else:
            result.append(g if isinstance(g, Tensor) else Tensor(g))
    return tuple(result)


def _root_gradient(t, g, create_graph):
    if not isinstance(t, Tensor):
        raise TypeError(f"backward() needs Tensors as outputs, got {type(t).__name__}")
    if not t.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad (no input requires grad, "
                           "or it was made under no_grad)")
    if g is None:
        if t.data.size != 1:
            raise RuntimeError(f"backward() on a non-scalar tensor of shape {t.shape} needs grad= "
                               f"(the upstream gradient, of the same shape)")
        g = np.ones_like(t.data)
    else:
        if isinstance(g, Tensor) and create_graph:
            if g.shape != t.shape:
                raise ValueError(f"backward(): grad has shape {g.shape} but the tensor has shape {t.shape}")
            return g  # the upstream gradient may itself be differentiated (gradgradcheck does)
        g = g.data if isinstance(g, Tensor) else np.asarray(g, dtype=t.data.dtype)
        if g.shape != t.shape:
            raise ValueError(f"backward(): grad has shape {g.shape} but the tensor has shape {t.shape}")
        if g.dtype != t.data.dtype:
            g = g.astype(t.data.dtype)
    return Tensor(g) if create_graph else g


def _walk(roots, root_grads, create_graph, inputs):
    """Propagate gradients from ``roots`` to every node that needs one.

    ``grads`` holds each pending node's gradient. An array the walk allocated itself for a node
    (a sum of two contributions, or a buffer for index gradients) is marked ``owned`` and further
    contributions are added into it in place; any other array may be shared (an op can pass its
    upstream gradient straight on), so it is never written to.

    With ``inputs`` (the ``grad()`` function) no ``.grad`` is touched and the gradients of those
    tensors are returned instead, keyed by their nodes.
    """
    grads, owned, heap = {}, set(), []
    heappop, heappush = heapq.heappop, heapq.heappush
    capture = None if inputs is None else {x._node: None for x in inputs}
    previous_mode, previous_scratch = _GradMode.enabled, _Walk.scratch
    _GradMode.enabled, _Walk.scratch = create_graph, {}
    try:
        for t, g in zip(roots, root_grads):
            g = _root_gradient(t, g, create_graph)
            if _accumulate(grads, owned, t._node, t.shape, g, create_graph):
                heappush(heap, (-t._node.seq, t._node))
        while heap:
            node = heappop(heap)[1]
            g = grads.pop(node)
            node_owned = node in owned
            if node_owned:
                owned.discard(node)
            if type(g) is ProductGrad and (node.hooks or node.tensor is not None or capture is not None
                                           or not getattr(node.backward, "passes_product_grad", False)):
                g, node_owned = g.value(), True
            if node.hooks:
                node_owned = False  # a hook may keep the array it was shown: never write to it afterwards
                for hook in tuple(node.hooks):
                    replaced = hook(g)
                    if replaced is not None:
                        g = _checked_hook_result(node, replaced, create_graph)
            if capture is not None:
                if node in capture:
                    capture[node] = g if node_owned or create_graph else np.array(g)  # never aliased nor read-only
            elif node.tensor is not None:
                tensor = node.tensor()
                if tensor is not None:
                    _store_grad(tensor, g, node_owned, create_graph)
            backward = node.backward
            if backward is None:
                continue
            if create_graph:
                saved = [s if type(s) in _DESCRIPTIONS else Tensor._wrap(s, n) for s, n in zip(node.saved, node.inputs)]
                out = None if node.out is None else Tensor._wrap(node.out, node)
                parent_grads = backward(g, out, node.ctx, *saved)
            else:
                parent_grads = backward(g, node.out, node.ctx, *node.saved)
            for p, pg in zip(node.inputs, parent_grads):
                if pg is not None and p is not None:
                    if type(pg) is np.ndarray and p not in grads:  # the common case, inlined
                        grads[p] = pg
                        heappush(heap, (-p.seq, p))
                    elif _accumulate(grads, owned, p, p.shape, pg, create_graph):
                        heappush(heap, (-p.seq, p))
            parent_grads = pg = None  # a gradient no parent took is freed now, not after the next backward
    finally:  # whatever way the walk ends, it leaves nothing behind
        _GradMode.enabled, _Walk.scratch = previous_mode, previous_scratch
    return capture


def _accumulate(grads, owned, key, shape, pg, create_graph=False):
    """Add the contribution ``pg`` to ``grads[key]`` (a gradient of ``shape``); True if it is the first.

    ``pg`` may be an ndarray (or a Tensor with ``create_graph``), an ``IndexGrad``, a ``FreshGrad``
    or a ``ProductGrad``. Arrays in ``owned`` were allocated here and are added into in place; any other
    array may be shared, so it is never written to.
    """
    if isinstance(pg, np.generic):  # NumPy computes 0-d results as scalars: every gradient is an array
        pg = np.asarray(pg)
    current = grads.get(key)
    if current is None:
        if type(pg) is IndexGrad:
            grads[key] = pg.dense(shape)
            owned.add(key)
        elif type(pg) is FreshGrad:
            grads[key] = pg.g
            owned.add(key)
        else:
            grads[key] = pg
        return True
    if type(pg) is FreshGrad:
        pg = pg.g
    if create_graph:
        grads[key] = current + pg
        return False
    if type(current) is ProductGrad:
        if type(pg) is ProductGrad:
            current.extend(pg)
            return False
        current = grads[key] = current.value()
        owned.add(key)
    elif type(pg) is ProductGrad:
        pg = pg.value()
    if type(pg) is IndexGrad:
        if key not in owned:
            current = grads[key] = np.array(current)  # a copy, and an ndarray even if a 0-d sum left a NumPy scalar
            owned.add(key)
        pg.add_into(current)
    elif key in owned:
        current += pg
    else:
        total = current + pg
        grads[key] = total if type(total) is np.ndarray else np.asarray(total)  # 0-d sums are scalars
        owned.add(key)
    return False


def _store_grad(t, g, g_owned, create_graph):
    """Leaves accumulate into ``.grad``; retained non-leaves too (an ndarray, or a Tensor with a graph)."""
    if create_graph:
        t.grad = g if t.grad is None else (t.grad if isinstance(t.grad, Tensor) else Tensor(t.grad)) + g
    elif t.grad is None:
        t.grad = g if g_owned and g.flags.writeable else np.array(g)
    elif isinstance(t.grad, Tensor):  # left by an earlier create_graph backward
        t.grad = t.grad.data + g
    else:
        t.grad += g


def _checked_hook_result(node, replaced, create_graph):
    shape, dtype = node.shape, node.dtype
    if create_graph:
        if not isinstance(replaced, Tensor):
            replaced = Tensor(np.asarray(replaced, dtype=dtype))
    else:
        replaced = replaced.data if isinstance(replaced, Tensor) else np.asarray(replaced)
    if replaced.shape != shape:
        raise ValueError(f"a hook returned a gradient of shape {tuple(replaced.shape)} for a tensor of "
                         f"shape {shape}; a hook must return None or the same shape")
    if replaced.dtype != dtype:
        raise TypeError(f"a hook returned a gradient of dtype {replaced.dtype} for a tensor of dtype "
                        f"{dtype}; a hook must keep the dtype")
    return replaced

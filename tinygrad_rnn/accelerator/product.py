"""The factored weight gradient: a weight used at every step of a loop gets one product, not T.

Inside a replayed recurrent loop, the backward of ``linear`` (x W^T) and of ``matmul`` (h @ W)
would compute a weight's gradient g^T x at every step and add them up. The accelerator runs these
ops' backwards from ``FACTORED_BACKWARDS`` instead: the same input gradient, and the weight's
gradient as a ``ProductGrad``, its factors not multiplied out. The loop collects them over all
steps and multiplies once: sum_t x_t^T g_t = [x_1; ...; x_T]^T [g_1; ...; g_T]. The numbers are
those of the core up to the order of floating-point additions inside one matrix product.
"""
import numpy as np

from ..ops import LINEAR, MATMUL, PERMUTE

__all__ = ["ProductGrad", "FACTORED_BACKWARDS", "PASSES_PRODUCT"]


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


def _linear_factored(g, out, need_x, x, weight, bias=None):
    """``LINEAR``'s backward with dW = g^T x kept as factors."""
    gx = g @ weight if need_x else None
    return (gx, ProductGrad(g, x)) if bias is None else (gx, ProductGrad(g, x), g.sum(axis=0))


def _matmul_factored(g, out, needs, a, b):
    """``MATMUL``'s backward with the right operand's a^T g kept as factors (for matrices)."""
    if a.ndim != 2 or b.ndim != 2 or not needs[1]:
        return MATMUL.backward(g, out, needs, a, b)
    return (g @ b.T if needs[0] else None), ProductGrad(a, g)


def _permute_factored(g, out, ctx, a):
    """``PERMUTE``'s backward, passing a factored gradient through a transposed weight (h @ W.T)."""
    return (g.transpose(ctx[1]),) if type(g) is ProductGrad else PERMUTE.backward(g, out, ctx, a)


FACTORED_BACKWARDS = {LINEAR: _linear_factored, MATMUL: _matmul_factored, PERMUTE: _permute_factored}
PASSES_PRODUCT = {PERMUTE}  # ops whose backward takes a factored gradient as it is

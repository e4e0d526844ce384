"""Record a function of Tensors once, then replay it on other arrays: forward and backward with no
Tensor, no graph node and no heap.

``record(fn, inputs)`` calls ``fn(*inputs)`` while watching the engine through its one seam
(``tensor.observers``): every op reports its ``Op`` (forward and backward), ``ctx``, input tensors,
output tensor and what its backward reads. The ``Tape`` turns
that into a program over numbered slots: the inputs first, then one slot per op output; tensors
the function used but did not make (parameters, closed-over constants) are *externals*, whose
arrays the replay reuses. One recorded step of a recurrent cell is then replayed for every other
step by ``forward`` (each op's kernel, in recording order) and ``backward`` (each op's backward,
in reverse order, gradients accumulated per slot exactly as the graph walk does).

A recording is only as good as the assumption that the same ops run on every call. Two things
make that checkable:

- Python reading a tensor's values (``.item()``, ``bool()``, ``.numpy()``, ``np.asarray``, a
  tensor used as an index, ``max(dim)``), a hook or ``retain_grad()`` on any tensor (a replay has no
  Tensor to run it on), or an op reading a Tensor constructed from an array during the call
  (``Tensor(h.data > 0)``) makes the recording unreplayable (``Tape.problem`` says why);
- ``Tape.same_as(other)``: two recordings of consecutive steps must agree in every op, ``ctx``,
  wiring and constant (a constant made inside the call that differs, a random mask, shows there).

What no recording can see is Python reading ``.data`` directly (``if h.data.sum() > 0``) or keeping
state between calls: such a function must not be replayed (``Cell.replayable = False``).
"""
from collections import OrderedDict

import numpy as np

from ..ops import GETITEM
from ..tensor import IndexGrad, Tensor, add_at, accumulate as core_accumulate, observers
from .product import FACTORED_BACKWARDS, PASSES_PRODUCT, ProductGrad

__all__ = ["record", "Tape", "COMPILED_PROGRAMS"]


def record(fn, inputs):
    """Run ``fn(*inputs)`` (Tensors) and record it: -> (Tape, list of the output Tensors).

    ``fn`` returns a Tensor or a tuple of Tensors. The inputs should require grad wherever the
    replay will need their gradients: ops record which of their inputs need one (in ``ctx``).
    """
    records = []
    observe = lambda event, t, details: records.append((event, t, details))  # noqa: E731
    observers.append(observe)
    try:
        result = fn(*inputs)
    finally:
        observers.remove(observe)
    outputs = [result] if isinstance(result, Tensor) else list(result)
    return Tape(records, inputs, outputs), outputs


class Tape:
    """One recorded call of a function as slot programs (see the module docstring).

    Attributes: ``problem`` (None, or why the recording cannot be replayed); ``n_slots``;
    ``input_slots``/``output_slots``; ``externals`` [(slot, tensor)]; ``template`` (a list of
    n_slots with the externals' arrays filled in, None elsewhere); ``forward_program`` [(op, ctx,
    input slots, output slot)]; ``backward_program`` [(op, backward, ctx, output slot, reads
    output, arguments, routes, passes a factored gradient)], in the order to run it; ``kept`` (the
    per-call slots that backward reads); ``needs_grad`` per slot; ``values`` (this recording's arrays).
    """

    def __init__(self, records, inputs, outputs):
        self.problem = None
        slot_of = {id(t): i for i, t in enumerate(inputs)}
        values = [t.data for t in inputs]
        needs_grad = [t.requires_grad for t in inputs]
        self.input_slots = list(range(len(inputs)))
        self.externals, self.constants = [], []
        self.forward_program, backward_ops = [], []
        self.signature = []  # everything that must repeat between two recordings of the same step

        made_inside = set()

        def slot(tensor):
            i = slot_of.get(id(tensor))
            if i is None:  # made before the call: a parameter or a closed-over constant
                if id(tensor) in made_inside and self.problem is None:
                    self.problem = "the function made a Tensor from an array (its values may come from the data)"
                i = slot_of[id(tensor)] = len(values)
                values.append(tensor.data)
                needs_grad.append(tensor.requires_grad)
                self.externals.append((i, tensor))
            return i

        for event, out, details in records:
            if event == "array":
                made_inside.add(id(out))
                continue
            if event == "read":
                self.problem = f"the function read a tensor's values with {details}"
                break
            op, ctx, parents, reads = details
            if not parents:  # a constant made inside the function
                i = slot_of[id(out)] = len(values)
                values.append(out.data)
                needs_grad.append(False)
                self.constants.append(i)
                continue
            if op.forward is None:
                self.problem = f"the op {op.name} has no forward to replay"
                break
            ins = tuple(slot(p) for p in parents)
            i = slot_of[id(out)] = len(values)
            values.append(out.data)
            needs_grad.append(op.backward is not None and any(needs_grad[j] for j in ins))
            self.forward_program.append((op, ctx, ins, i))
            self.signature.append((op, ins, reads))
            self.signature.append(ctx)
            if needs_grad[i]:
                backward_ops.append((op, ctx, ins, i, reads))
        self.output_slots = [slot(t) for t in outputs]
        self.n_slots, self.values, self.needs_grad = len(values), values, needs_grad
        self.shapes = [v.shape for v in values]
        self.external_slots = {i for i, _ in self.externals}
        self.template = [None] * len(values)
        for i in [i for i, _ in self.externals] + self.constants:
            self.template[i] = values[i]
        self._backward_ops, self._backward_program = backward_ops, None  # built on first use (``build_backward``)
        self._forward = self._backward = None  # compiled on first use

    def build_backward(self):
        """The backward program, built from the recorded ops the first time it is asked for (a step
        that ``compiler`` compiles never needs it)."""
        if self._backward_program is None:
            self._build_backward(self._backward_ops)
            self.values.extend(self.template[len(self.values):])  # the stand-ins, so this call's values replay backward
        return self

    backward_program = property(lambda self: self.build_backward()._backward_program)
    kept = property(lambda self: self.build_backward()._kept)
    dropped = property(lambda self: self.build_backward()._dropped)

    def _build_backward(self, backward_ops):
        """The backward program, and which per-call slots it reads (all others need not be kept).

        An input that a backward does not read is passed as a stand-in (its shape and dtype, no
        data), held in a slot of its own in ``template``, so that every argument is a slot. Each
        op's ``routes`` say where its input gradients go: a slot of this call, ~slot for an external
        (whose gradient collects over calls), None for an input that needs none. Where
        ``FACTORED_BACKWARDS`` has an op, its weight's gradient stays factored across calls.
        """
        per_call = set(self.input_slots) | {op[3] for op in self.forward_program}
        kept, self._backward_program = set(), []
        for op, ctx, ins, out, (reads_output, reads) in reversed(backward_ops):
            arguments = []
            for k, j in enumerate(ins):
                if reads is None or k in reads:
                    arguments.append(j)
                    kept.add(j)
                else:  # only its shape and dtype are read
                    arguments.append(len(self.template))
                    self.template.append(_stand_in(self.values[j]))
            if reads_output:
                kept.add(out)
            routes = tuple(None if not self.needs_grad[j] else ~j if j in self.external_slots else j for j in ins)
            self._backward_program.append((op, FACTORED_BACKWARDS.get(op, op.backward), ctx, out, reads_output,
                                          tuple(arguments), routes, op in PASSES_PRODUCT))
        self._kept = kept & per_call
        self._dropped = sorted(per_call - kept)

    def same_as(self, other):
        """Whether ``other`` recorded the same ops, wiring, ``ctx``, externals and constants."""
        if (len(self.signature) != len(other.signature) or self.output_slots != other.output_slots
                or [i for i, _ in self.externals] != [i for i, _ in other.externals]
                or self.constants != other.constants):
            return False
        try:
            same = self.signature == other.signature  # fast, unless some ctx holds an array
        except (ValueError, TypeError):
            same = all(_equal(a, b) for a, b in zip(self.signature, other.signature))
        if not same:
            return False
        for (i, mine), (_, theirs) in zip(self.externals, other.externals):
            if mine is not theirs and not _equal(mine.data, theirs.data):
                return False
        return all(_equal(self.values[i], other.values[i]) for i in self.constants)

    def forward(self, inputs):
        """Run the recorded ops on new input arrays: -> a list of slot values holding the outputs and
        every array backward reads (``kept``)."""
        values = self.build_backward().template.copy()
        for i, array in zip(self.input_slots, inputs):
            values[i] = array
        if self._forward is None:
            self._forward = _compiled(self, "forward")
        return self._forward(values)

    def release(self):
        """Let go of this recording's own arrays (its inputs and every op's output): replay needs none."""
        self.values = None

    def forget_unread(self, values):
        """Drop from ``values`` the per-call arrays no backward reads (so they can be freed)."""
        for i in self.dropped:
            values[i] = None

    def backward(self, values, output_grads, external_grads, external_owned):
        """One call's backward: -> the gradient of each input (None where none arrives).

        ``values`` from ``forward``; ``output_grads`` one gradient (or None) per output. Externals'
        gradients are accumulated into ``external_grads`` (keyed by slot, with ``external_owned``
        as in ``accumulate``), so that a parameter used by every call collects all of them
        (a ``ProductGrad`` stays factored across calls).
        """
        if self._backward is None:
            self._backward = _compiled(self, "backward")
        return self._backward(values, output_grads, external_grads, external_owned)

    def source(self):
        """The forward and backward programs as the Python they are compiled from (to read)."""
        return _forward_source(self)[0] + "\n" + _backward_source(self)[0]


COMPILED_PROGRAMS = 128  # the most compiled programs kept (a few per layer and batch shape in use)
_MAKERS = OrderedDict()  # a program's structure -> the compiled function that binds its names, and where each
#                          name comes from; least recently used first, dropped beyond COMPILED_PROGRAMS


def _compiled(tape, which):
    """``tape``'s program ``which`` ("forward" or "backward") as a function, its names bound to this
    tape's kernels (``f{n}``, ``b{n}``: op n's function), ``ctx`` (``c{n}``) and shapes (``S{j}``).

    The source depends only on the program's structure (``_structure``), so a cell's step is
    generated and compiled once per process: later recordings only bind their own names. The
    ``COMPILED_PROGRAMS`` most recently used programs are kept (each distinct shape is a program).
    """
    key = _structure(tape, which)
    made = _MAKERS.get(key)
    if made is not None:
        _MAKERS.move_to_end(key)
    else:
        source, names = (_forward_source if which == "forward" else _backward_source)(tape)
        body = "".join(f"    {line}\n" for line in source.splitlines())
        wrapper = f"def make({', '.join(sorted(names))}):\n{body}    return {which}\n"
        namespace = {}
        exec(compile(wrapper, f"<tape {which}>", "exec"), namespace)  # source generated above, from slot numbers only
        made = _MAKERS[key] = namespace["make"], [_origin(name, value) for name, value in names.items()]
        if len(_MAKERS) > COMPILED_PROGRAMS:
            _MAKERS.popitem(last=False)
    make, origins = made
    program, shapes = tape.forward_program if which == "forward" else tape.backward_program, tape.shapes
    return make(**{name: value if kind is None else shapes[n] if kind == "S" else _bound(program[n], kind, which)
                   for name, kind, n, value in origins})


def _bound(op, kind, which):
    """What the name of kind "f", "b" or "c" binds for program entry ``op``: its forward kernel, the
    backward the program runs, or its ``ctx``."""
    if which == "forward":
        return op[0].forward if kind == "f" else op[1]
    return op[1] if kind == "b" else op[2]


def _origin(name, value):
    """(name, kind, n, value): kind "f"/"b" (op n's function), "c" (its ctx), "S" (slot n's shape),
    or None for a helper that is the same for every tape (``value``)."""
    kind, number = name[0], name[1:]
    if kind in "fbcS" and number.isdigit():
        return name, kind, int(number), None
    return name, None, None, value


def _structure(tape, which):
    """Everything the generated source of ``which`` depends on, as a hashable key: the ops and their
    wiring, which slots are kept, need gradients or are external, the shapes, and how getitems cut."""
    if which == "forward":
        return ("forward", tuple((op, ins, out) for op, _, ins, out in tape.forward_program),
                tuple(sorted(tape.kept)), tuple(tape.output_slots))
    cuts = tuple(_piece_cut(op, tape.shapes) for op in tape.backward_program)
    return ("backward", tuple((op[1], *op[3:]) for op in tape.backward_program), tuple(tape.needs_grad),
            tuple(sorted(tape.external_slots)), tuple(tape.output_slots), tuple(tape.input_slots),
            tuple(tape.shapes), cuts)


def _forward_source(tape):
    """def forward(values): each op's kernel on its input slots, in recording order.

    Op n's kernel and ctx are ``f{n}``/``c{n}``; slot j is the local ``v{j}``. The outputs and the
    slots backward reads are stored back into ``values``.
    """
    names, loads, body, produced = {}, [], [], set()
    for n, (op, ctx, ins, out) in enumerate(tape.forward_program):
        names[f"f{n}"], names[f"c{n}"] = op.forward, ctx
        for j in ins:
            if j not in produced and f"    v{j} = values[{j}]" not in loads:
                loads.append(f"    v{j} = values[{j}]")
        body.append(f"    v{out} = f{n}(c{n}, {', '.join(f'v{j}' for j in ins)})  # {op.name}")
        produced.add(out)
    stores = [f"    values[{j}] = v{j}" for j in sorted((tape.kept | set(tape.output_slots)) & produced)]
    return "\n".join(["def forward(values):"] + loads + body + stores + ["    return values", ""]), names


def _backward_source(tape):
    """def backward(values, seeds, ext, ext_owned): each op's backward, last op first.

    Slot j's gradient is the local ``g{j}`` when exactly one contribution can reach it; a slot
    that several reach (a tensor used twice, the pieces of a split) collects them in ``grads``
    with ``accumulate`` (in place where it owns the buffer). An op's gradient is settled before
    its backward runs (``_settle``: index pieces into a buffer, a factored weight gradient
    multiplied out unless the op passes it on). Externals collect into ``ext``.
    """
    needs_grad, external_slots, shapes = tape.needs_grad, tape.external_slots, tape.shapes
    reaching = {}
    for j in tape.output_slots:
        if needs_grad[j] and j not in external_slots:
            reaching[j] = reaching.get(j, 0) + 1
    for op in tape.backward_program:
        for j in op[6]:
            if j is not None and j >= 0:
                reaching[j] = reaching.get(j, 0) + 1
    names = {"accumulate": accumulate, "core_accumulate": core_accumulate, "_settle": _settle,
             "_side_by_side": _side_by_side, "ndarray": np.ndarray}
    factored = set()  # the slots a factored weight gradient can reach; the others add as the core does
    for op, _, _, _, _, _, routes, passes in tape.backward_program:
        k = 0 if passes else 1
        if op in FACTORED_BACKWARDS and k < len(routes) and routes[k] is not None:
            factored.add(~routes[k] if routes[k] < 0 else routes[k])
    tiles = _tiles(tape, reaching)
    joined_at = {max(n for _, n in pieces): (j, axis, pieces) for j, (axis, pieces) in tiles.items()}
    skipped = {n for _, pieces in tiles.values() for _, n in pieces}
    reaching.update({j: 1 for j in tiles})  # one contribution: the pieces side by side
    single = sorted(j for j, count in reaching.items() if count == 1)
    lines = ["def backward(values, seeds, ext, ext_owned):", "    grads, owned = {}, set()"]
    lines += [f"    g{j} = None" for j in single]
    running = [op for n, op in enumerate(tape.backward_program) if n not in skipped]
    read = {j for op in running for j in op[5]} | {op[3] for op in running if op[4]}
    lines += [f"    v{j} = values[{j}]" for j in sorted(read)]

    def receive(j, value, indent):
        """The line giving contribution ``value`` (an expression, maybe None) to slot j."""
        add = "accumulate" if j in factored else "core_accumulate"
        if j in external_slots:
            names[f"S{j}"] = shapes[j]
            return f"{indent}if {value} is not None: {add}(ext, ext_owned, {j}, S{j}, {value})"
        if reaching[j] == 1:
            return f"{indent}g{j} = {value}"
        names[f"S{j}"] = shapes[j]
        return f"{indent}if {value} is not None: {add}(grads, owned, {j}, S{j}, {value})"

    for k, j in enumerate(tape.output_slots):
        if needs_grad[j]:
            lines.append(receive(j, f"seeds[{k}]", "    "))
    for n, (op, backward, ctx, out, reads_output, arguments, routes, passes) in enumerate(tape.backward_program):
        if n in joined_at:  # the last piece of a tiled slot: its gradient is the pieces' side by side
            j, axis, pieces = joined_at[n]
            for p, _ in pieces:
                if reaching.get(p, 0) > 1:
                    lines.append(f"    g{p} = grads.pop({p}, None)")
                names[f"S{p}"] = shapes[p]
            gradients = ", ".join(f"g{p}" if p in reaching else "None" for p, _ in pieces)
            lines.append(f"    g{j} = _side_by_side([{gradients}], [{', '.join(f'S{p}' for p, _ in pieces)}], {axis})")
        if out not in reaching or n in skipped:
            continue  # no gradient ever reaches this op, or it is a piece of a tiled slot
        names[f"b{n}"], names[f"c{n}"], names[f"S{out}"] = backward, ctx, shapes[out]
        if reaching[out] > 1:
            lines.append(f"    g{out} = grads.pop({out}, None)")
        lines.append(f"    if g{out} is not None:")
        lines.append(f"        if type(g{out}) is not ndarray: g{out} = _settle(g{out}, S{out}, {passes})")
        result = f"v{out}" if reads_output else "None"
        lines.append(f"        r = b{n}(g{out}, {result}, c{n}, {', '.join(f'v{a}' for a in arguments)})  # {op.name}")
        for k, j in enumerate(routes):
            if j is not None:
                lines.append(receive(~j if j < 0 else j, f"r[{k}]", "        "))
    returned = []
    for i in tape.input_slots:
        if i not in reaching:
            returned.append("None")
        else:
            if reaching[i] > 1:
                lines.append(f"    g{i} = grads.get({i})")
            names[f"S{i}"] = shapes[i]
            returned.append(f"_settle(g{i}, S{i}, False)")
    lines += [f"    return [{', '.join(returned)}]", ""]
    return "\n".join(lines), names


def _tiles(tape, reaching):
    """The slots whose gradient comes only from basic slices that tile them along one axis (the
    pieces of ``split``/``chunk``, the gates of a cell): slot -> (axis, [(piece slot, op number)]
    in order along the axis). Their gradient is the pieces' gradients side by side, one
    ``concatenate`` instead of a zero buffer and an addition per piece."""
    cuts = {}
    for n, op in enumerate(tape.backward_program):
        cut = _piece_cut(op, tape.shapes)
        if cut is not None:
            cuts.setdefault(op[6][0], []).append((cut, op[3], n))
    tiles = {}
    for j, pieces in cuts.items():
        pieces.sort()
        axis = pieces[0][0][0]
        bounds = [(start, stop) for (a, start, stop), _, _ in pieces if a == axis]
        ends = [0] + [stop for _, stop in bounds]
        if (len(pieces) == reaching.get(j) and len(bounds) == len(pieces) and ends[-1] == tape.shapes[j][axis]
                and all(start == end for (start, _), end in zip(bounds, ends))):
            tiles[j] = (axis, [(out, n) for _, out, n in pieces])
    return tiles


def _piece_cut(op, shapes):
    """For a backward-program op that is a getitem of a per-call slot: ``_cut`` of its index, else None."""
    op, _, ctx, _, _, _, routes, _ = op
    if op is GETITEM and routes[0] is not None and routes[0] >= 0:
        return _cut(ctx, shapes[routes[0]])
    return None


def _cut(ctx, shape):
    """(axis, start, stop) if getitem's ``ctx`` takes a contiguous range along one axis and all of
    every other axis (``x[:, a:b]``), else None."""
    index, basic = ctx
    items = index if type(index) is tuple else (index,)
    if not basic or len(items) > len(shape) or not all(type(item) is slice for item in items):
        return None
    cut = None
    for axis, item in enumerate(items):
        start, stop, step = item.indices(shape[axis])
        if (start, stop) == (0, shape[axis]) and step == 1:
            continue
        if cut is not None or step != 1 or start >= stop:
            return None
        cut = (axis, start, stop)
    return cut


def _side_by_side(pieces, shapes, axis):
    """The gradient of a tensor cut into pieces along ``axis``, from the pieces' gradients (zeros
    for a piece none reached; None if none reached any)."""
    if not all(type(g) is np.ndarray for g in pieces):
        if all(g is None for g in pieces):
            return None
        dtype = next(g for g in pieces if g is not None).dtype
        pieces = [np.zeros(shape, dtype) if g is None else _settle(g, shape, False) for g, shape in zip(pieces, shapes)]
    return np.concatenate(pieces, axis=axis)


def _settle(g, shape, passes_product):
    """A gradient as its op's backward takes it: index pieces added into a zero buffer of ``shape``,
    a factored weight gradient multiplied out unless ``passes_product``; anything else as it is."""
    if type(g) is IndexGrad:
        return add_at(np.zeros(shape, dtype=g.g.dtype), g)
    if type(g) is ProductGrad and not passes_product:
        return g.value()
    return g


def accumulate(grads, owned, key, shape, g):
    """Add the contribution ``g`` to ``grads[key]`` (a gradient of ``shape``) as the core's walk adds
    gradients (``tensor.accumulate``), except that factored weight gradients stay factored while both
    sides are (``ProductGrad.extend``); one side factored and the other not, it is multiplied out."""
    current = grads.get(key)
    if type(g) is ProductGrad:
        if type(current) is ProductGrad:
            current.extend(g)
            return
        if current is None:
            grads[key] = g
            return
        g = g.value()
    elif type(current) is ProductGrad:
        grads[key] = current.value()  # the sum of products, an array of its own
        owned.add(key)
    core_accumulate(grads, owned, key, shape, g)


_STAND_INS = {}  # (shape, dtype) -> a read-only array of that shape and dtype with no data of its own


def _stand_in(array):
    """An argument for a backward that reads only ``array``'s shape and dtype (one per shape and dtype)."""
    key = (array.shape, array.dtype)
    stand_in = _STAND_INS.get(key)
    if stand_in is None:
        stand_in = _STAND_INS[key] = np.broadcast_to(np.zeros((), array.dtype), array.shape)
    return stand_in


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

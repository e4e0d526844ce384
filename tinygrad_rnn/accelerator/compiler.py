"""Compile a recorded step (``tape.Tape``) into one forward loop and one backward loop over buffers.

The tape's programs call each op's own forward and backward, one Python call per op and a fresh
array per result. For steps made only of ops this module knows (``KNOWN``: add, sub, mul, tanh,
sigmoid, relu, slices with step 1, linear, and matmul by a parameter or by a parameter's ``.T``),
it writes a whole loop instead, as straight-line NumPy calls inside one ``for t`` loop, for any
cell (the compiler reads ops, never the cell's class):

- every result has a place: a *storage* allocated once per loop, or a view of one. A storage is
  per step, (T, ...) indexed by t, when backward reads it or it carries the state; otherwise one
  buffer reused by every step. Every call writes its result with ``out=`` (no fresh arrays);
- one elementwise op applied to adjacent slices of one storage (the gate sigmoids i and f of an
  LSTM: columns [0, H) and [H, 2H) of the pre-activation) runs once over the joined slab, and each
  result is a view of the slab's output; slices that are not adjacent, or overlap, run separately;
- backward: each gradient's place mirrors its value's (a slice's gradient is the same slice of its
  storage's gradient), so the gate gradients land side by side in one buffer with no concatenate;
  a gradient passed on unchanged (``add``) is the same array; the activations' derivatives
  (σ(1 - σ), 1 - tanh², relu's mask) are computed for a block of steps at once (all T steps
  unless they pass ``DERIVATIVE_BLOCK_BYTES``), not step by step;
- the weights' gradients are one product each after the loop, over the whole-sequence buffer of
  the linear's output gradient: dW = sum_t g_t^T x_t = G^T X with G (T*N, out), X (T*N, in).

Numbers: the forward kernels are the core's formulas call for call (sigmoid 1 / (1 + e^-x) as
``ops.sigmoid`` computes it, overflow of e^-x silenced as there), in the values' dtype throughout.
Backward equals the core's up to the order of floating-point additions (3 or more gradients into
one place, and the weight products) and sigmoid's g σ (1 - σ), grouped as g (σ (1 - σ)).

Anything else (an unknown op, broadcasting between per-step values, a slice that is not a range
along axes, a parameter used other than as linear's weight or bias or an added bias, mixed
dtypes, a new state part or output that is the step's input or a state part passed on, a product
with the step's input x whose gradient is needed) makes ``compile_step`` return None, and the loop
replays the tape's plain programs.
"""
import math
from collections import OrderedDict

import numpy as np

from ..ops import ADD, GETITEM, LINEAR, MATMUL, MUL, PERMUTE, RELU, SIGMOID, SUB, TANH
from .tape import COMPILED_PROGRAMS

__all__ = ["compile_step", "steps_kept", "CompiledStep", "KNOWN"]

UNARY = {TANH: "tanh", SIGMOID: "sigmoid", RELU: "relu"}
BINARY = {ADD: "add", SUB: "subtract", MUL: "multiply"}
KNOWN = {GETITEM, LINEAR, MATMUL, PERMUTE, *UNARY, *BINARY}
_CACHE = OrderedDict()  # structure of a tape -> [(signature, CompiledStep or None)], least recently used first
DERIVATIVE_BLOCK_BYTES = 128 << 10  # the activations' derivatives are computed for this many bytes of steps at once


def steps_kept():
    """How many step structures the compiler keeps now (at most ``COMPILED_PROGRAMS``)."""
    return len(_CACHE)


class Decline(Exception):
    """The step holds something this compiler does not handle: replay the tape instead."""


def compile_step(tape, keep):
    """The compiled loop of ``tape``'s step (``keep``: backward will run), or None if it declines.

    Compiled steps are kept per structure: the slots' shapes, what needs a gradient, the outputs,
    the parameters' dtypes and whether they learn, then the ops, wiring and ``ctx`` (the tape's
    ``signature``, compared with ``==``), so that a layer compiles its step once per process; the
    ``COMPILED_PROGRAMS`` most recently used structures are kept (as the tape keeps its programs)."""
    key = (tuple(tape.shapes[:tape.n_slots]), tuple(tape.needs_grad[:tape.n_slots]), tuple(tape.output_slots),
           len(tape.input_slots), tuple((i, t.requires_grad, t.data.dtype) for i, t in tape.externals),
           tuple(tape.constants), tape.values[0].dtype, bool(keep))
    known = _CACHE.setdefault(key, [])
    _CACHE.move_to_end(key)
    if len(_CACHE) > COMPILED_PROGRAMS:
        _CACHE.popitem(last=False)
    for signature, compiled in known:
        try:
            if signature == tape.signature:
                return compiled
        except (ValueError, TypeError):  # a ctx holding an array: not compiled
            return None
    try:
        compiled = CompiledStep(tape, keep)
    except Decline:
        compiled = None
    known.append((list(tape.signature), compiled))
    return compiled


class Storage:
    """An array the loop allocates (or is given): ``kind`` "x" (the inputs), "state" (state part k's
    value at this step), "const" (a parameter or constant), "new" (a result), "out" (the loop's
    outputs), or a gradient: "grad" (of a storage), "gin" (state part k's, two buffers in turn);
    ``per_step``: (T, *shape), indexed by t."""

    def __init__(self, number, shape, kind, per_step=False, k=None):
        self.number, self.shape, self.kind, self.per_step, self.k = number, shape, kind, per_step, k
        self.grad = None  # the storage of this storage's gradient, made when needed


class Place:
    """A storage's piece: ``ranges`` (start, stop) per axis."""

    __slots__ = ("storage", "ranges")

    def __init__(self, storage, ranges=None):
        self.storage = storage
        self.ranges = tuple((0, n) for n in storage.shape) if ranges is None else tuple(ranges)

    @property
    def shape(self):
        return tuple(b - a for a, b in self.ranges)

    @property
    def whole(self):
        return self.ranges == tuple((0, n) for n in self.storage.shape)

    def index(self):
        return tuple(slice(a, b) for a, b in self.ranges)

    def key(self):
        return self.storage.number, self.ranges


def _view(place, index):
    """``place[index]`` for a basic index of slices with step 1, as a Place; else Decline."""
    items = index if type(index) is tuple else (index,)
    shape = place.shape
    if len(items) > len(shape) or not all(type(item) is slice for item in items):
        raise Decline("an index that is not slices")
    ranges = list(place.ranges)
    for axis, item in enumerate(items):
        start, stop, step = item.indices(shape[axis])
        if step != 1 or stop < start:
            raise Decline("a slice with a step")
        ranges[axis] = (ranges[axis][0] + start, ranges[axis][0] + stop)
    return Place(place.storage, ranges)


def _adjacent_axis(first, second):
    """The one axis along which ``second`` continues ``first`` (same storage), else None."""
    if first.storage is not second.storage:
        return None
    differ = [axis for axis, (a, b) in enumerate(zip(first.ranges, second.ranges)) if a != b]
    if len(differ) == 1 and first.ranges[differ[0]][1] == second.ranges[differ[0]][0]:
        return differ[0]
    return None


def _union(places):
    """The Place covering adjacent ``places`` (in order), or None if they are not adjacent along one axis."""
    axis = _adjacent_axis(places[0], places[1])
    if axis is None:
        return None
    for before, after in zip(places, places[1:]):
        if _adjacent_axis(before, after) != axis:
            return None
    ranges = list(places[0].ranges)
    ranges[axis] = (places[0].ranges[axis][0], places[-1].ranges[axis][1])
    return Place(places[0].storage, ranges)


class Node:
    """One call of the compiled forward: ``op`` on ``ins`` (one slot list per member) -> ``outs``
    (one slot per member); members > 1 when adjacent slices were merged."""

    def __init__(self, op, ctx, ins, outs):
        self.op, self.ctx, self.ins, self.outs = op, ctx, ins, outs
        self.place = None  # where the (joined) result goes
        self.in_places = None  # per operand, the (joined) input place


class CompiledStep:
    """A tape's step as a planned loop: storages, nodes, the gradients' places, generated source.
    ``bind`` allocates one loop's arrays and returns a ``BoundLoop``."""

    def __init__(self, tape, keep):
        self.keep = keep
        dtypes = {tape.values[i].dtype for i in range(tape.n_slots)}
        if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
            raise Decline("values of several dtypes")
        self.dtype = dtypes.pop()
        self.shapes, self.needs = tape.shapes, tape.needs_grad
        self.n_parts = len(tape.input_slots) - 1
        self.state_out, self.out_slot = tape.output_slots[:-1], tape.output_slots[-1]
        if len(self.state_out) != self.n_parts or len(set(self.state_out)) != len(self.state_out):
            raise Decline("the state's parts are not distinct results")
        if any(slot in tape.input_slots for slot in tape.output_slots):
            raise Decline("a state part or the output that is the step's input or a state part passed on")
        self.external = {i for i, _ in tape.externals}
        self.consts = {i: np.shape(tape.template[i]) for i in list(self.external) + list(tape.constants)}
        self.storages, self.value = [], {}
        self.x = self._storage((), "x", per_step=True)  # its shape is the step input's, set below
        self.x.shape = tape.shapes[0]
        self.value[0] = Place(self.x)
        for k in range(self.n_parts):
            self.value[1 + k] = Place(self._storage(tape.shapes[1 + k], "state", k=k))
        for i, shape in self.consts.items():
            self.value[i] = Place(self._storage(shape, "const", k=i))
        self.nodes = []
        self._plan_forward(tape.forward_program)
        self.derivatives = {}  # storage number -> (its derivative storage, the op)
        self.terms = {}  # external slot -> [(kind, ...)], the weight gradients formed after the loop
        if keep:
            self._plan_backward()
        self.forward_source = self._forward_source()
        self.backward_source = self._backward_source() if keep else None
        self.copies = [(slot, place.storage.number, place.index()) for slot, place in self.value.items()
                       if place.storage.per_step and place.storage.kind in ("new", "out")]
        names = {"zero": self.dtype.type(0), "dtype": self.dtype}
        self._forward = _function(self.forward_source, "forward", names)
        self._backward = _function(self.backward_source, "backward", names) if keep else None
        self.needs_inputs = any(kind in (("weight",), ("right",)) and node.in_places[0].storage.kind == "x"
                                for terms in self.terms.values() for kind, _, node in terms)

    def _storage(self, shape, kind, per_step=False, k=None):
        storage = Storage(len(self.storages), tuple(shape), kind, per_step, k)
        self.storages.append(storage)
        return storage

    # ------------------------------------------------------------------ forward plan
    def _plan_forward(self, program):
        self.producers = {out: (op, ctx, ins) for op, ctx, ins, out in program}
        transposed = {}  # slot of W.T -> slot of the parameter W
        for n, (op, ctx, ins, out) in enumerate(program):
            if op not in KNOWN:
                raise Decline(f"the op {op.name}")
            if op is PERMUTE:  # only a parameter's transpose, read by matmul as linear's weight
                if ins[0] not in self.external or len(self.shapes[ins[0]]) != 2 or tuple(ctx[0]) != (1, 0):
                    raise Decline("a permute that is not a parameter's transpose")
                transposed[out] = ins[0]
                continue
            if op is MATMUL:  # x @ W.T is linear(x, W); x @ V a product with the parameter V
                a, b = ins
                if a not in self.value or len(self.shapes[a]) != 2 or self.value[a].storage.kind == "const":
                    raise Decline("a matmul whose left operand is not a per-step matrix")
                if b in transposed:
                    op, ins = LINEAR, (a, transposed[b])
                elif b not in self.external or len(self.shapes[b]) != 2:
                    raise Decline("a matmul whose right operand is not a parameter")
            if any(i not in self.value for i in ins):
                raise Decline("an input the plan has not seen")
            if op is GETITEM:
                if not ctx[1]:
                    raise Decline("advanced indexing")
                self.value[out] = _view(self.value[ins[0]], ctx[0])
                if out in self.state_out or out == self.out_slot:
                    raise Decline("a state part that is a view")
                continue
            if out in self.value:  # made by a merged node already
                continue
            if op is LINEAR and program[n][0] is LINEAR:
                if ins[1] not in self.external or (len(ins) == 3 and ins[2] not in self.external):
                    raise Decline("linear whose weight is not a parameter")
                if any(self.shapes[i] != self.value[i].shape for i in ins):
                    raise Decline("a shape that is not its place's")
            elif op in BINARY:
                for i in ins:
                    if self.shapes[i] != self.shapes[out] and (self.needs[i] and i not in self.external):
                        raise Decline("broadcasting between per-step values")
            members = [(ins, out)]
            if op in UNARY or op in BINARY:
                members = self._mergeable(program, n)
            node = Node(op, ctx, [m[0] for m in members], [m[1] for m in members])
            self._place_node(node)
            self.nodes.append(node)

    def _mergeable(self, program, n):
        """The run of elementwise ops like program[n] (same op and ctx) on adjacent slices, each
        operand the continuation of the previous member's, whose inputs exist at position n."""
        op, ctx, ins, out = program[n]
        if out in self.state_out or out == self.out_slot:
            return [(ins, out)]
        candidates = [(ins, out)]
        for op2, ctx2, ins2, out2 in program[n + 1:]:
            if op2 is op and ctx2 == ctx and out2 not in self.state_out and out2 != self.out_slot \
                    and out2 not in self.value and all(self._ready(i) for i in ins2) \
                    and all(self.shapes[i] == self.shapes[out2] for i in ins2):
                candidates.append((ins2, out2))
        if len(candidates) == 1 or any(self.shapes[i] != self.shapes[out] for i in ins):
            return [(ins, out)]

        def follows(a, b):  # b continues a in every operand, along one axis
            axes = {_adjacent_axis(self.value[i], self.value[j]) for i, j in zip(a[0], b[0])}
            return len(axes) == 1 and None not in axes

        run = [candidates[0]]
        rest = candidates[1:]
        for extend_right in (True, False):
            while True:
                edge = run[-1] if extend_right else run[0]
                nxt = next((c for c in rest if (follows(edge, c) if extend_right else follows(c, edge))), None)
                if nxt is None:
                    break
                rest.remove(nxt)
                run = run + [nxt] if extend_right else [nxt] + run
        return run

    def _ready(self, slot):
        """Whether ``slot`` has a place now: placed already, or a slice of something placed (a view
        can be taken before the getitem that records it runs)."""
        if slot in self.value:
            return True
        op, ctx, ins = self.producers.get(slot, (None, None, None))
        if op is not GETITEM or not ctx[1] or not self._ready(ins[0]):
            return False
        try:
            self.value[slot] = _view(self.value[ins[0]], ctx[0])
        except Decline:
            return False
        return True

    def _place_node(self, node):
        """The result's storage (per step if it carries state or is the output), members as views."""
        k = len(node.ins[0])
        node.in_places = [self.value[node.ins[0][j]] if len(node.ins) == 1
                          else _union([self.value[ins[j]] for ins in node.ins]) for j in range(k)]
        if any(p is None for p in node.in_places):
            raise Decline("members that do not join")
        out = node.outs[0]
        if out == self.out_slot:
            storage = self._storage(self.shapes[out], "out", per_step=True)
        elif out in self.state_out:
            storage = self._storage(self.shapes[out], "new", per_step=True)
        else:
            shape = node.in_places[0].shape if len(node.outs) > 1 else self.shapes[out]
            storage = self._storage(shape, "new")
        node.place = Place(storage)
        if len(node.outs) == 1:
            self.value[out] = node.place
            return
        first = node.in_places[0]
        for ins, slot in zip(node.ins, node.outs):
            piece = self.value[ins[0]]
            self.value[slot] = Place(storage, [(a - f, b - f) for (a, b), (f, _) in zip(piece.ranges, first.ranges)])

    # ------------------------------------------------------------------ backward plan
    def _plan_backward(self):
        """Which slot receives which gradient (``contributions``), where each gradient lives
        (``grad``), which storages must be kept per step, and the weight gradient terms."""
        needs, external = self.needs, self.external
        reached = {self.out_slot} | set(self.state_out)
        contributions = {}  # slot -> list of kinds
        self.actions = []  # the nodes a gradient reaches, in backward order

        def give(slot, kind):
            contributions.setdefault(slot, []).append(kind)
            reached.add(slot)

        for node in reversed(self.nodes):
            if not any(o in reached for o in node.outs):
                continue
            if any(o not in reached for o in node.outs):
                raise Decline("a merged op only part of which is reached")
            for j in range(len(node.ins[0])):
                slots = [ins[j] for ins in node.ins]
                if not needs[slots[0]]:
                    continue
                kind = self._rule(node, j)
                if slots[0] in external:
                    self.terms.setdefault(slots[0], []).append((kind, node.outs[0], node))
                    continue
                for slot in slots:
                    give(slot, kind)
            self.actions.append(node)
            self._views_reached(reached, contributions)
        self._views_reached(reached, contributions)
        for k in range(self.n_parts):
            if not needs[1 + k] or 1 + k not in reached:
                raise Decline("a state part no gradient reaches")
        for slot, place in self.value.items():
            if place.storage.kind == "state" and not place.whole and slot in reached:
                raise Decline("a slice of a state part receives a gradient")
        self.contributions = contributions
        self._place_gradients(reached)

    def _views_reached(self, reached, contributions):
        """A slice's gradient is written into its storage's gradient: the sliced slot is reached."""
        for slot, place in self.value.items():
            if slot in reached and place.storage.kind in ("x", "state", "new", "out"):
                for other, p in self.value.items():
                    if p.storage is place.storage and other not in reached and self.needs[other] \
                            and other not in self.external and p.whole and not place.whole:
                        reached.add(other)
                        contributions.setdefault(other, []).append(("pieces",))

    def _rule(self, node, j):
        """What flows to operand j of ``node``: ("alias",), ("neg",), ("mul", other operand),
        ("deriv",), ("matmul",) for linear's x, ("weight",) and ("bias",) for linear's parameters."""
        op = node.op
        if op is ADD:
            return ("alias",)
        if op is SUB:
            return ("alias",) if j == 0 else ("neg",)
        if op is MUL:
            return ("mul", 1 - j)
        if op in UNARY:
            return ("deriv",)
        if op is MATMUL:
            return ("matmul",) if j == 0 else ("right",)
        return ("matmul",) if j == 0 else ("weight",) if j == 1 else ("bias",)

    def _place_gradients(self, reached):
        """Each reached slot's gradient place: the mirror of its value's place in its storage's
        gradient, or, for a whole storage that one ``add`` passes its gradient to, that gradient."""
        self.grad = {}
        owners = {}
        order = [self.out_slot, *self.state_out] + [o for node in self.actions for o in node.outs]
        order += [i for node in self.actions for ins in node.ins for i in ins] + sorted(reached, reverse=True)
        seen = set()
        for slot in [s for s in order if not (s in seen or seen.add(s))]:
            if slot not in reached or slot in self.external or slot in self.consts:
                continue
            place = self.value[slot]
            kinds = self.contributions.get(slot, [])
            source = self._alias_source(slot)
            alone = sum(p.storage is place.storage for p in self.value.values()) == 1
            # a state part's gradient is carried into the step before, which rewrites its source's buffer: own one
            if source is not None and len(kinds) == 1 and kinds[0] == ("alias",) and place.whole and alone \
                    and slot not in self.state_out and slot != self.out_slot and source in self.grad \
                    and place.storage.kind != "state" \
                    and (slot != 0 or self.grad[source].whole and self.grad[source].storage.kind == "grad"):
                self.grad[slot] = self.grad[source]
                continue
            self.grad[slot] = Place(self._grad_storage(place.storage), place.ranges)
            if kinds != [("pieces",)]:  # a storage's whole slot that only its slices write is no writer
                owners.setdefault(place.storage.number, []).append(self.grad[slot])
        for places in owners.values():  # writers into one gradient storage must not overlap
            for a in range(len(places)):
                for b in range(a + 1, len(places)):
                    if all(x0 < y1 and y0 < x1 for (x0, x1), (y0, y1) in zip(places[a].ranges, places[b].ranges)):
                        raise Decline("overlapping slices both receive a gradient")
        self.need_kept()

    def _alias_source(self, slot):
        """The result whose gradient flows unchanged into ``slot`` (it is an operand of add, or sub's first)."""
        for node in self.actions:
            for ins, out in zip(node.ins, node.outs):
                if node.op is ADD and slot in ins or node.op is SUB and ins[0] == slot:
                    return out
        return None

    def _grad_storage(self, storage):
        if storage.grad is None:
            if storage.kind == "state":
                storage.grad = self._storage(storage.shape, "gin", k=storage.k)
            else:
                storage.grad = self._storage(storage.shape, "grad", per_step=storage.kind == "x")
        return storage.grad

    def need_kept(self):
        """Mark per step every storage backward reads, and make the derivative storages."""
        def keep(place):
            if place.storage.kind == "new":
                place.storage.per_step = True
            elif place.storage.kind in ("grad",):
                place.storage.per_step = True
            elif place.storage.kind == "gin":
                raise Decline("a weight gradient over a state part's gradient")

        for node in self.actions:
            for j in range(len(node.ins[0])):
                if not self.needs[node.ins[0][j]]:
                    continue
                if node.op is MUL:
                    if node.in_places[1 - j].storage.kind == "x":  # the backward loop is not given the inputs
                        raise Decline("a product's gradient that reads the step's input")
                    keep(node.in_places[1 - j])
                elif node.op in UNARY:
                    keep(node.place)
                    if node.place.storage.number not in self.derivatives:
                        self.derivatives[node.place.storage.number] = (
                            self._storage(node.place.storage.shape, "deriv", per_step=True), node.op)
        for slot, terms in self.terms.items():
            for kind, out, node in terms:
                keep(self.grad[out])
                if kind in (("weight",), ("right",)):
                    keep(node.in_places[0])
                elif kind not in (("bias",), ("alias",), ("neg",)):
                    raise Decline("a parameter used other than as a weight, a bias or an added term")
        if 0 in self.grad and self.grad[0].storage.kind == "grad":
            self.grad[0].storage.per_step = True

    # ------------------------------------------------------------------ code
    def _forward_source(self):
        """The forward loop. Sigmoids whose inputs are ready run together, so that one ``errstate``
        (silencing e^-x's overflow, as ``ops.sigmoid`` does) covers all their exponentials."""
        code = _Code("forward")
        ready = {s.number for s in self.storages if s.kind in ("x", "state", "const")}
        emitted = set()
        for n, node in enumerate(self.nodes):
            if n in emitted:
                continue
            if node.op is SIGMOID:
                group = [m for m in range(n, len(self.nodes)) if m not in emitted and self.nodes[m].op is SIGMOID
                         and all(p.storage.number in ready for p in self.nodes[m].in_places)]
                pairs = [(code.ref(self.nodes[m].in_places[0]), code.ref(self.nodes[m].place)) for m in group]
                code.lines([f"negative({x}, out={out})" for x, out in pairs] + ["with errstate(over='ignore'):"]
                           + [f"    exp({out}, out={out})" for _, out in pairs]
                           + [f"add({out}, 1, out={out})" for _, out in pairs]
                           + [f"reciprocal({out}, out={out})" for _, out in pairs])
            else:
                group = [n]
                out = code.ref(node.place)
                args = [code.ref(p) for p in node.in_places]
                if node.op is TANH:
                    code.line(f"tanh({args[0]}, out={out})")
                elif node.op is RELU:
                    code.line(f"maximum({args[0]}, zero, out={out})")
                elif node.op is LINEAR:
                    code.line(f"matmul({args[0]}, {code.ref_t(node.in_places[1])}, out={out})")
                    if len(args) == 3:
                        code.line(f"add({out}, {args[2]}, out={out})")
                elif node.op is MATMUL:
                    code.line(f"matmul({args[0]}, {args[1]}, out={out})")
                else:
                    code.line(f"{BINARY[node.op]}({args[0]}, {args[1]}, out={out})")
            for m in group:
                emitted.add(m)
                ready.add(self.nodes[m].place.storage.number)
        states = [code.ref(self.value[s]) for s in self.state_out]
        code.line(f"state = [{', '.join(states)}]")
        return code.source(self)

    def _backward_source(self):
        code = _Code("backward")
        done = set()  # slots whose gradient place has been written by a computed contribution
        pending = {}  # slot -> expressions to add to it before it is read (unchanged gradients)

        def seed(slot, expression):
            pending.setdefault(slot, []).append(expression)

        def settle(slot):
            """Add the pending unchanged gradients into ``slot``'s place (before it is read)."""
            sources = pending.pop(slot, [])
            if not sources:
                return
            target = code.ref(self.grad[slot])
            if slot not in done:
                if len(sources) == 1:
                    code.line(f"copyto({target}, {sources[0]})")
                    sources = []
                else:
                    code.line(f"add({sources[0]}, {sources[1]}, out={target})")
                    sources = sources[2:]
                done.add(slot)
            for source in sources:
                code.line(f"add({target}, {source}, out={target})")

        def write(slot, call, shape):
            """A computed contribution ``call`` (a format with {out}) into ``slot``'s gradient."""
            target = code.ref(self.grad[slot])
            if slot not in done:
                code.line(call.format(out=target))
                done.add(slot)
            else:
                scratch = code.scratch(shape, self.dtype)
                code.line(call.format(out=scratch))
                code.line(f"add({target}, {scratch}, out={target})")

        for k, slot in enumerate(self.state_out):
            seed(slot, f"carried[{k}]")
        seed(self.out_slot, "g_out")
        adopted = {slot for slot, place in self.grad.items() if self._alias_source(slot) is not None
                   and place is self.grad.get(self._alias_source(slot))}
        for node in self.actions:
            for out in node.outs:
                settle(out)
                self._settle_views(out, settle)
            g = code.ref(self._joined_grad(node))
            for j in range(len(node.ins[0])):
                slots = [ins[j] for ins in node.ins]
                if not self.needs[slots[0]] or slots[0] in self.external:
                    continue
                kind = self._rule(node, j)
                joined = self._joined_target(node, j, done, pending)
                if kind == ("alias",):
                    if len(slots) > 1 and joined is not None:  # merged members: one copy side by side
                        code.line(f"copyto({code.ref(joined)}, {g})")
                        done.update(slots)
                        continue
                    for slot, out in zip(slots, node.outs):
                        if slot not in adopted:
                            seed(slot, code.ref(self.grad[out]))
                    continue
                pairs = [(joined, node.in_places[j], None)] if joined is not None else [
                    (self.grad[s], self.value[s], m) for m, s in enumerate(slots)]
                for target, value_place, member in pairs:
                    g_here = g if member is None else code.ref(self.grad[node.outs[member]])
                    call = self._call(node, j, g_here, member, code)
                    if member is None:
                        code.line(call.format(out=code.ref(target)))
                        done.update(slots)
                    else:
                        write(slots[member], call, value_place.shape)
        for slot in [0] + [1 + k for k in range(self.n_parts)]:
            if slot in self.grad:
                settle(slot)
                self._settle_views(slot, settle)
        if 0 in self.grad and self.grad[0].storage.kind != "grad" or 0 in self.grad and not self.grad[0].whole:
            raise Decline("the input's gradient is not a whole buffer")
        code.line(f"carried = [{', '.join(code.ref(self.grad[1 + k]) for k in range(self.n_parts))}]")
        return code.source(self)

    def _settle_views(self, slot, settle):
        """Before a storage's whole slot is read, its slices' pending gradients are added."""
        place = self.value[slot]
        if place.whole:
            for other, p in self.value.items():
                if p.storage is place.storage and not p.whole and other in self.grad:
                    settle(other)

    def _joined_grad(self, node):
        """The gradient of a node's (joined) result: a place covering every member's."""
        if len(node.outs) == 1:
            return self.grad[node.outs[0]]
        joined = _union([self.grad[o] for o in node.outs])
        if joined is None:
            raise Decline("the merged results' gradients are not side by side")
        return joined

    def _joined_target(self, node, j, done, pending):
        """Where operand j's gradient of a merged node can be written in one call (its members'
        gradient places side by side, each receiving this gradient first), else None."""
        if len(node.outs) == 1:
            slot = node.ins[0][j]
            return self.grad[slot] if slot not in done and slot not in pending \
                and len(self.contributions.get(slot, [])) == 1 else None
        slots = [ins[j] for ins in node.ins]
        if any(s in done or s in pending or len(self.contributions.get(s, [])) != 1 for s in slots):
            return None
        return _union([self.grad[s] for s in slots])

    def _call(self, node, j, g, member, code):
        """The NumPy call (a format with {out}) computing operand j's gradient from ``g``."""
        op = node.op
        if op is SUB:
            return f"negative({g}, out={{out}})"
        if op is MUL:
            other = node.in_places[1 - j] if member is None else self.value[node.ins[member][1 - j]]
            return f"multiply({g}, {code.ref(other)}, out={{out}})"
        if op in UNARY:
            derivative, _ = self.derivatives[node.place.storage.number]
            place = node.place if member is None else self.value[node.outs[member]]
            return f"multiply({g}, {code.ref(Place(derivative, place.ranges))}, out={{out}})"
        weight = code.ref(node.in_places[1]) if op is LINEAR else code.ref_t(node.in_places[1])
        return f"matmul({g}, {weight}, out={{out}})"

    # ------------------------------------------------------------------ running
    def bind(self, tape, steps, outputs, initial, recordings):
        """One loop's arrays: ``outputs`` (T, ...) the loop's output buffer, ``initial`` the state's
        arrays before step 0, ``recordings`` the tapes of the steps already run (their values are
        copied into the per-step storages). -> a BoundLoop."""
        return BoundLoop(self, tape, steps, outputs, initial, recordings)


class BoundLoop:
    """A compiled step's arrays for one loop of T steps, and its forward and backward."""

    def __init__(self, compiled, tape, steps, outputs, initial, recordings):
        self.compiled, self.steps, self.initial, self.inputs = compiled, steps, initial, None
        arrays = []
        for storage in compiled.storages:
            shape = ((steps,) if storage.per_step else ()) + storage.shape
            if storage.kind == "out":
                array = outputs
            elif storage.kind == "const":
                array = tape.template[storage.k]
            elif storage.kind in ("x", "state"):
                array = None
            elif storage.kind in ("grad", "deriv", "gin"):
                array = None  # made by backward, so that a loop's gradients are arrays of its own
            else:
                array = np.empty(shape, compiled.dtype)
            arrays.append(array)
        self.arrays = arrays
        for t, recording in enumerate(recordings):
            for slot, number, index in compiled.copies:
                arrays[number][t][index] = recording.values[slot]

    def forward(self, inputs, state, start):
        """Steps ``start``..T-1 from ``state`` (the arrays after step start - 1): -> the final state."""
        self.inputs = inputs if self.compiled.needs_inputs else None
        return self.compiled._forward(self.arrays, inputs, list(state), start, self.steps)

    def backward(self, g_outputs, carried):
        """The loop's backward from the outputs' gradient (T, ...) and the final state's (one per
        part): -> (the inputs' gradient (T, ...) or None, the initial state's, {external slot: grad})."""
        compiled, arrays, dtype = self.compiled, self.arrays, self.compiled.dtype
        for storage in compiled.storages:  # fresh for each backward: the gradients it returns are its own
            if storage.kind == "grad":
                arrays[storage.number] = np.zeros(((self.steps,) if storage.per_step else ()) + storage.shape, dtype)
            elif storage.kind == "gin":  # a state part's gradient, two buffers used in turn
                arrays[storage.number] = [np.zeros(storage.shape, dtype), np.zeros(storage.shape, dtype)]
        per_step = sum(math.prod(d.shape) for d, _ in compiled.derivatives.values()) * dtype.itemsize
        block = max(1, min(self.steps, DERIVATIVE_BLOCK_BYTES // max(1, per_step)))
        for derivative, _ in compiled.derivatives.values():
            arrays[derivative.number] = np.empty((block,) + derivative.shape, dtype)

        def refresh(t):
            """The derivatives of steps low..t (a block ending at t) into the derivative buffers: -> low."""
            low = max(0, t - block + 1)
            for number, (derivative, op) in compiled.derivatives.items():
                values, d = arrays[number][low:t + 1], arrays[derivative.number][:t + 1 - low]
                if op is SIGMOID:  # σ (1 - σ)
                    np.subtract(1, values, out=d)
                    np.multiply(values, d, out=d)
                elif op is TANH:  # 1 - tanh^2, as the core's tanh backward
                    np.multiply(values, values, out=d)
                    np.subtract(1, d, out=d)
                else:  # relu: 1 where the output is > 0
                    np.greater(values, 0, out=d)
            return low

        initial = list(self.initial)
        carried = [np.zeros(s.shape, dtype) if c is None else c for c, s in
                   zip(carried, [compiled.value[1 + k].storage for k in range(compiled.n_parts)])]
        g_state = compiled._backward(arrays, g_outputs, carried, initial, self.steps, refresh)
        g_inputs = arrays[compiled.grad[0].storage.number] if 0 in compiled.grad else None
        weights = self._weights()
        for storage in compiled.storages:  # the gradients and derivatives are not needed after this call
            if storage.kind in ("grad", "deriv", "gin"):
                arrays[storage.number] = None
        return g_inputs, g_state, weights

    def _weights(self):
        """Each parameter's gradient over all steps: one product (weights) or one sum (biases)."""
        compiled, steps = self.compiled, self.steps
        result = {}
        for slot, terms in compiled.terms.items():
            total = None
            for kind, out, node in terms:
                g = self._sequence(compiled.grad[out])
                if kind in (("weight",), ("right",)):  # sum_t g_t^T x_t (W of x W^T), or its transpose (V of x V)
                    x_place = node.in_places[0]
                    if x_place.storage.kind == "state":
                        k = x_place.storage.k
                        first = self.initial[k][x_place.index()]
                        later = self._sequence(Place(compiled.value[compiled.state_out[k]].storage, x_place.ranges))
                        term = g[0].T @ first
                        if steps > 1:
                            term = term + g[1:].reshape(-1, g.shape[-1]).T @ later[:-1].reshape(-1, first.shape[-1])
                    else:
                        x = self._sequence(x_place)
                        term = g.reshape(-1, g.shape[-1]).T @ x.reshape(-1, x.shape[-1])
                    term = term.T if kind == ("right",) else term
                else:
                    term = _sum_to(g, compiled.shapes[slot])
                    if kind == ("neg",):
                        term = -term
                total = term if total is None else total + term
            result[slot] = total
        return result

    def _sequence(self, place):
        """All T steps of a per-step place, (T, *place shape)."""
        array = self.arrays[place.storage.number] if place.storage.kind != "x" else self.inputs
        return array[(slice(None),) + place.index()]


def _sum_to(g, shape):
    """The (T, ...) gradient ``g`` summed over T and over the axes broadcasting added to ``shape``."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


class _Code:
    """Generated source of one loop: names bound once per loop or once per step, then the body."""

    def __init__(self, which):
        self.which = which
        self.entry, self.step, self.body, self.names = [], [], [], {}
        self.scratches = {}

    def line(self, text):
        self.body.append(text)

    def lines(self, texts):
        self.body.extend(texts)

    def ref(self, place):
        """The local name of ``place``'s array in this step. What does not change from step to step
        is bound once per loop; a slice of a per-step storage is sliced once per loop over all steps
        and indexed by t in the step."""
        key = place.key()
        name = self.names.get(key)
        if name is not None:
            return name
        storage = place.storage
        name = f"a{storage.number}" if place.whole else f"a{storage.number}_{len(self.names)}"
        index = "" if place.whole else f"[{place.index()!r}]"
        every = "" if place.whole else f"[(slice(None),) + {place.index()!r}]"
        row = "t - low" if storage.kind == "deriv" else "t"
        if storage.kind == "x":
            self.entry.append(f"{name}_all = inputs{every}")
            self.step.append(f"{name} = {name}_all[t]")
        elif storage.kind == "state":
            name = f"s{storage.k}" if place.whole else name
            if not place.whole:
                self.step.append(f"{name} = s{storage.k}{index}")
        elif storage.kind == "gin":
            self.step.append(f"{name} = A[{storage.number}][t & 1]{index}")
        elif storage.per_step:
            self.entry.append(f"{name}_all = A[{storage.number}]{every}")
            self.step.append(f"{name} = {name}_all[{row}]")
        else:
            self.entry.append(f"{name} = A[{storage.number}]{index}")
        self.names[key] = name
        return name

    def ref_t(self, place):
        """A parameter's transpose, bound once per loop."""
        name = f"a{place.storage.number}T"
        if f"{name} = A[{place.storage.number}].T" not in self.entry:
            self.entry.append(f"{name} = A[{place.storage.number}].T")
        return name

    def scratch(self, shape, dtype):
        name = self.scratches.get(shape)
        if name is None:
            name = self.scratches[shape] = f"scratch{len(self.scratches)}"
            self.entry.append(f"{name} = empty({shape!r}, dtype)")
        return name

    def source(self, compiled):
        if self.which == "forward":
            head = ["def forward(A, inputs, state, start, steps):"]
            unpack = [f"    s{k} = state[{k}]" for k in range(compiled.n_parts)]
            loop = "    for t in range(start, steps):"
            tail = [f"        s{k} = state[{k}]" for k in range(compiled.n_parts)] + ["    return state"]
        else:
            head = ["def backward(A, g_outputs, carried, initial, steps, refresh):"]
            unpack = ["    low = steps"]
            loop = "    for t in range(steps - 1, -1, -1):"
            states = [f"s{k} = initial[{k}] if t == 0 else A[{_state_storage(compiled, k)}][t - 1]"
                      for k in range(compiled.n_parts)]
            self.step = ["if t < low: low = refresh(t)", "g_out = g_outputs[t]", *states, *self.step]
            tail = ["    return carried"]
        lines = head + [f"    {line}" for line in self.entry] + unpack + [loop]
        lines += [f"        {line}" for line in self.step] + [f"        {line}" for line in self.body] + tail
        return "\n".join(lines) + "\n"


def _state_storage(compiled, k):
    return compiled.value[compiled.state_out[k]].storage.number


_NAMES = {name: getattr(np, name) for name in ("add", "subtract", "multiply", "negative", "exp", "reciprocal",
                                              "tanh", "maximum", "matmul", "copyto", "empty", "errstate")}


def _function(source, name, names):
    namespace = dict(_NAMES, **names)
    exec(compile(source, f"<compiled {name}>", "exec"), namespace)  # source generated from slot numbers only
    return namespace[name]

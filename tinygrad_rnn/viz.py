"""Looking at a graph the engine recorded: Graphviz DOT text, an image through ``dot``, text.

The graph of a tensor is everything reachable from its node through the nodes' ``inputs``. Its
vertices are:

- ops (a node with an ``op``): labelled with the op's name (``Op.name``: split pieces are
  "getitem") and the shape. The accelerator runs a recurrent layer as one "recurrent_loop" op;
  under ``tr.fast(False)`` it is drawn unrolled, op by op;
- parameters: leaves found in ``params`` (a Module, a {name: tensor} dict or (name, tensor) pairs),
  labelled with their name. A parameter is one vertex however many steps use it; its use count is
  the number of edges leaving it, and one used more than once is drawn as shared;
- other leaves that require grad: "leaf (requires grad)";
- operands that need no gradient: "constant" (0-d) or "input", one vertex per use (the graph keeps
  no identity for them, only their shape).

Only ops with an input that requires grad are recorded, so a slice of an input that needs no
gradient is itself an input.

Time steps: ``unroll(layer, x)`` (``step_record.py``) runs a one-layer recurrence op by op and
records which step made each op and what the cell's equations call it. Given that record
(``steps=``), ``to_dot`` draws each step's ops in a cluster labelled "t = 0", "t = 1", ...; names
the states h_t (c_t), each step's input x_t and the initial state h_{-1} (c_{-1}), one vertex each
(x_t inside its step, h_{-1} outside), and the built-in cells' gates. ``show_values=True`` adds each
vertex's data and grad where its Tensor is known (as micrograd's draw_dot): leaves, the root,
tensors kept by ``retain_grad`` and everything ``unroll`` recorded. ``to_text`` is the same graph
as text, step by step, for where Graphviz is not installed.
"""
import shutil
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .step_record import Unrolled, unroll
from .tensor import Node, Tensor

__all__ = ["to_dot", "to_text", "render", "summary", "GraphCounts", "graph_counts", "unroll", "Unrolled"]

_ROOT_COLOR, _OP_COLORS = "#fdd0a2", {"state": "#a1d99b", "gate": "#fff7bc"}  # h_t, c_t green; gates yellow
_INITIAL_COLOR, _INPUT_COLOR = "#fee391", "#dadaeb"


def to_dot(loss, params=None, steps=None, show_values=False):
    """Graphviz DOT text of the graph of ``loss`` (see the module docstring); edges point from input to op.

    steps: the ``Unrolled`` record of the layer whose outputs ``loss`` was computed from: each step's
    ops are drawn in a cluster ``cluster_t`` labelled "t = t", states, inputs and gates named.
    show_values: each vertex's data and grad (when it requires grad) where its Tensor is known.
    """
    graph = _Annotated(loss, params, steps)
    lines = ["digraph autograd {", "  rankdir=BT;",
             '  node [fontname="Helvetica", fontsize=10, shape=box, style="rounded,filled", fillcolor=white];']
    lines += [f"  {graph.ids[v]} [{_attributes(v, graph, show_values)}];" for v in graph.in_step(None)]
    for t in range(graph.steps):
        lines += [f"  subgraph cluster_{t} {{", f'    label="t = {t}";', '    style=rounded; color="#969696";']
        lines += [f"    {graph.ids[v]} [{_attributes(v, graph, show_values)}];" for v in graph.in_step(t)]
        lines.append("  }")
    lines += [f"  {graph.ids[source]} -> {graph.ids[target]};" for source, target in graph.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_text(loss, params=None, steps=None, show_values=False):
    """The graph of ``loss`` as text: one vertex a line, ``[id] title shape kind <- [input ids]``.

    Arguments as ``to_dot``. Without ``steps``: the leaves, then the ops in creation order. With
    ``steps``: the leaves outside the steps (parameters, the initial state), then "t = 0:",
    "t = 1:", ... each step's inputs and ops, then the ops after the steps (the loss; the root last).
    """
    graph = _Annotated(loss, params, steps)
    inputs = {v: [] for v in graph.vertices}
    for source, target in graph.edges:
        inputs[target].append(source)
    outside = graph.in_step(None)
    sections = [("leaves", [v for v in outside if not _is_op(v)])]
    sections += [(f"t = {t}", graph.in_step(t)) for t in range(graph.steps)]
    sections.append(("ops after the steps" if graph.steps else "ops", [v for v in outside if _is_op(v)]))
    ops = sum(_is_op(v) for v in graph.vertices)
    lines = [f"graph of a tensor of shape {tuple(loss.shape)}: {ops} op outputs"
             + (f" in {graph.steps} time steps and after them" if graph.steps else "")]
    for title, chosen in sections:
        if chosen:
            lines.append(f"{title}:")
            lines += ["  " + _text_line(v, graph, inputs[v], show_values) for v in chosen]
    return "\n".join(lines) + "\n"


def render(loss, path, params=None, steps=None, show_values=False):
    """Draw the graph of ``loss`` to ``path`` with Graphviz's ``dot``; the format is the suffix (png, svg, pdf).
    ``steps`` and ``show_values`` as ``to_dot``."""
    executable = shutil.which("dot")
    if executable is None:
        raise RuntimeError("render needs Graphviz's `dot` executable, which is not installed; install Graphviz, "
                           "or write tinygrad_rnn.viz.to_dot(loss) to a .dot file and render it elsewhere "
                           "(tinygrad_rnn.viz.to_text(loss) shows the same graph as text)")
    path = Path(path)
    image_format = path.suffix.lstrip(".") or "png"
    done = subprocess.run([executable, f"-T{image_format}", "-o", str(path)],
                          input=to_dot(loss, params, steps, show_values), text=True, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"dot could not write {path} as {image_format}: {done.stderr.strip()}")
    return path


class _Annotated:
    """The graph of ``loss`` with what ``to_dot`` and ``to_text`` show of each vertex.

    vertices (creation order), edges (input, op), uses {vertex: edges leaving it}, ids {vertex: "n<k>"},
    parameters {vertex: name}, and from ``steps``: step_of {vertex: t}, names {vertex: name}, kinds
    {vertex: "state" | "gate" | "initial" | "input"}, tensors {vertex: Tensor}. The operands ``steps``
    names (x_t, h_{-1}) become one vertex per name, however many ops take them.
    """

    def __init__(self, loss, params, steps):
        if steps is not None and not isinstance(steps, Unrolled):
            raise TypeError(f"steps must be the Unrolled record from viz.unroll(layer, x), got {type(steps).__name__}")
        vertices, edges, _ = _graph(loss)
        self.root, self.parameters = vertices[-1], _parameter_names(params)
        self.steps = 0 if steps is None else steps.steps
        self.step_of, self.names, self.kinds, self.tensors = {}, {}, {}, {}
        if isinstance(self.root, Node):
            self.tensors[self.root] = loss
        if steps is not None:
            vertices, edges = self._merge_named_operands(vertices, edges, steps)
            for v in vertices:
                if v in steps.step_of:
                    self.step_of[v], self.tensors[v] = steps.step_of[v], steps.tensors[v]
                if v in steps.names:
                    self.names[v], self.kinds[v] = steps.names[v], steps.kinds[v]
        self.vertices, self.edges = vertices, edges
        self.uses = Counter(source for source, _ in edges)
        self.ids = {v: f"n{k}" for k, v in enumerate(vertices)}

    def _merge_named_operands(self, vertices, edges, steps):
        """(vertices, edges) with each operand ``steps`` names (x_t, h_{-1}) one vertex, however many ops take it."""
        kept, replaced = {}, {}  # name -> the vertex standing for it; operand vertex -> that vertex
        for v in vertices:
            if isinstance(v, _Operand) and v.slot in steps.operands:
                name, tensor = steps.operands[v.slot]
                replaced[v] = kept.setdefault(name, v)
                if replaced[v] is v:
                    self.names[v], self.tensors[v] = name, tensor
                    self.kinds[v] = "input" if name.startswith("x_") else "initial"
                    if self.kinds[v] == "input":  # x_t is drawn inside step t, the initial state outside
                        self.step_of[v] = steps.step_of[v.slot[0]]
        return ([v for v in vertices if replaced.get(v, v) is v],
                [(replaced.get(source, source), target) for source, target in edges])

    def in_step(self, t):
        """The vertices of step t (None: those outside every step), in creation order."""
        return [v for v in self.vertices if self.step_of.get(v) == t]


def _is_op(v):
    return isinstance(v, Node) and v.op is not None


def _title(v, graph):
    """(the vertex's name or op, what kind of vertex it is) for its label."""
    if v in graph.parameters:
        uses = graph.uses[v]
        return graph.parameters[v], f"parameter, used {uses}x" + (" (shared)" if uses > 1 else "")
    name = graph.names.get(v)
    if _is_op(v):
        return (op_name(v) if name is None else f"{name} = {op_name(v)}"), ""
    if name is not None:
        return name, {"initial": "initial state", "input": "input"}[graph.kinds[v]]
    return _leaf_kind(v), ""


def _attributes(v, graph, show_values):
    """A vertex's DOT attributes: the label (title, shape, kind, values) and its style."""
    title, kind = _title(v, graph)
    lines = [title, str(tuple(v.shape))] + ([kind] if kind else [])
    if show_values:
        lines += [f"{what} {text}" for what, text in _values(v, graph)]
    label = 'label="' + "\\n".join(_escaped(line) for line in lines) + '"'
    if v in graph.parameters:
        if graph.uses[v] > 1:
            return label + ', style="filled,bold", fillcolor="#9ecae1", peripheries=2'
        return label + ', fillcolor="#9ecae1"'
    if _is_op(v):
        color = _ROOT_COLOR if v is graph.root else _OP_COLORS.get(graph.kinds.get(v))
        return label + (f', fillcolor="{color}"' if color else "")
    color = {"input": _INPUT_COLOR, "initial": _INITIAL_COLOR}.get(graph.kinds.get(v), "#e5e5e5")
    return label + f', shape=ellipse, fillcolor="{color}"'


def _text_line(v, graph, inputs, show_values):
    """``[id] title shape kind <- [id] name, ...`` (and the values) of one vertex."""
    title, kind = _title(v, graph)
    line = f"[{graph.ids[v][1:]}] {title} {tuple(v.shape)}" + (f" {kind}" if kind else "")
    if inputs:
        line += " <- " + ", ".join(" ".join([f"[{graph.ids[u][1:]}]"] + [graph.names.get(u) or graph.parameters.get(u)
                                                                       or ""]).rstrip() for u in inputs)
    if show_values:
        line += "".join(f"  {what} {text}" for what, text in _values(v, graph))
    return line


def _escaped(text):
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _values(v, graph):
    """[("data", text)] and ("grad", text) when it requires grad, for a vertex whose Tensor is known; else [].
    The root's grad, which backward() seeds but does not keep (unless retained), is shown as that seed:
    1 for one element."""
    tensor = graph.tensors.get(v)
    if tensor is None and isinstance(v, Node) and v.tensor is not None:
        tensor = v.tensor()
    if tensor is None:
        return []
    shown = [("data", _numbers(tensor.data))]
    if tensor.requires_grad:
        gradient = tensor.grad
        if gradient is not None:
            shown.append(("grad", _numbers(getattr(gradient, "data", gradient))))
        elif v is graph.root and v.tensor is None:  # the root keeps no .grad unless retained; ∂root/∂root = 1
            shown.append(("grad", "1 (the seed of backward())" if tensor.data.size == 1
                          else "not kept (the root: the seed passed to backward(grad=...))"))
        else:
            shown.append(("grad", "None"))
    return shown


def _numbers(array, most=6):
    """An array's entries in row-major order to 4 significant digits (the first and last 3 of more than ``most``)."""
    array = np.asarray(array)
    if array.ndim == 0:
        return f"{float(array):.4g}"
    flat = [f"{value:.4g}" for value in array.astype(np.float64).ravel()]
    return "[" + ", ".join(flat if len(flat) <= most else flat[:most // 2] + ["..."] + flat[-(most // 2):]) + "]"


@dataclass
class GraphCounts:
    """What ``summary`` reports, as numbers.

    ops             Counter {op name: how many op outputs}
    leaves          Counter {leaf kind: how many} (kinds as in the module docstring, but parameters)
    parameter_uses  {parameter name: edges leaving it} for the parameters in the graph
    step_parameter  the most used parameter, whose uses mark the time steps (None if none is used twice)
    step_ops        the op names from one use of step_parameter up to the next, if every such
                    period has the same sequence of ops (else None)
    periods         how many such periods there are (uses - 1)
    before, after   op outputs made before its first use, and from its last use on
    """

    ops: Counter
    leaves: Counter
    parameter_uses: dict
    step_parameter: object = None
    step_ops: object = None
    periods: int = 0
    before: int = 0
    after: int = 0


def graph_counts(loss, params=None):
    """Count the graph of ``loss``: ops by name, leaves, parameter uses, and the ops per time step.

    The time steps are read from the most used parameter: the ops made (in creation order) from one
    of its uses to the next form a period; when every period is the same sequence of ops, that is
    the per-step count. Nothing more is inferred: a cell that uses the parameter twice per step, or
    steps that differ (e.g. masking by lengths), leave ``step_ops`` None.
    """
    vertices, _, uses = _graph(loss)
    names = _parameter_names(params)
    ops = [v for v in vertices if isinstance(v, Node) and v.op is not None]
    counts = GraphCounts(
        ops=Counter(op_name(v) for v in ops),
        leaves=Counter(_leaf_kind(v) for v in vertices if not (isinstance(v, Node) and v.op is not None)
                       and v not in names),
        parameter_uses={names[v]: uses[v] for v in vertices if v in names})
    if not counts.parameter_uses or max(counts.parameter_uses.values()) < 2:
        return counts
    counts.step_parameter = max(counts.parameter_uses, key=counts.parameter_uses.get)
    param = next(v for v in vertices if names.get(v) == counts.step_parameter)
    marks = sorted({v.seq for v in ops if any(p is param for p in v.inputs)})
    periods = [tuple(op_name(v) for v in ops if start <= v.seq < end) for start, end in zip(marks, marks[1:])]
    counts.periods = len(periods)
    counts.before = sum(v.seq < marks[0] for v in ops)
    counts.after = sum(v.seq >= marks[-1] for v in ops)
    if len(set(periods)) == 1:
        counts.step_ops = periods[0]
    return counts


def summary(loss, params=None):
    """A text summary of the graph of ``loss``: op counts, leaves, parameter uses, ops per time step."""
    counts = graph_counts(loss, params)
    total_ops = sum(counts.ops.values())
    lines = [f"graph of a tensor of shape {tuple(loss.shape)}: {total_ops} op outputs, "
             f"{sum(counts.leaves.values())} other leaves, {len(counts.parameter_uses)} parameters",
             "ops: " + _counted(counts.ops),
             "leaves: " + (_counted(counts.leaves) or "none")]
    for name, used in counts.parameter_uses.items():
        lines.append(f"parameter {name}: used {used}x" + (" (shared)" if used > 1 else ""))
    if counts.step_parameter is not None:
        uses = counts.parameter_uses[counts.step_parameter]
        if counts.step_ops is None:
            lines.append(f"per step: not derivable; the ops between the {uses} uses of {counts.step_parameter} "
                         f"differ from one use to the next")
        else:
            lines.append(f"per step (from one use of {counts.step_parameter} to the next, the same in all "
                         f"{counts.periods} periods between its {uses} uses): {len(counts.step_ops)} ops: "
                         f"{_counted(Counter(counts.step_ops))}")
            lines.append(f"  plus {counts.before} ops before its first use and {counts.after} from its last use on")
    return "\n".join(lines)


def op_name(t):
    """The name of the op that made ``t`` (a Tensor or its Node)."""
    node = t._node if isinstance(t, Tensor) else t
    if getattr(node, "op", None) is None:
        raise ValueError("op_name needs the output of an op; this is a leaf, made by no op")
    return node.op.name


def _counted(counter):
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


class _Operand:
    """An op's input that needs no gradient: the graph keeps only its shape, and where it is used
    (``slot``: the op's node and the input's position; None for a root that is no op's output)."""

    def __init__(self, shape, seq, slot=None):
        self.shape, self.seq, self.slot = tuple(shape), seq, slot


def _leaf_kind(v):
    if isinstance(v, Node):
        return "leaf (requires grad)"
    return "constant" if len(v.shape) == 0 else "input"


def _graph(root):
    """(vertices in creation order, the root last; edges (input, op); {vertex: edges leaving it})."""
    if not isinstance(root, Tensor):
        raise TypeError(f"expected a Tensor whose graph to show, got {type(root).__name__}")
    if root._node is None:
        only = _Operand(root.shape, 0)
        return [only], [], Counter()
    seen, pending, edges, uses = {root._node}, [root._node], [], Counter()
    operands = []
    while pending:
        node = pending.pop()
        for position, (parent, saved) in enumerate(zip(node.inputs, node.saved)):
            if parent is None:
                parent = _Operand(saved.shape, node.seq - 0.5, (node, position))
                operands.append(parent)
            elif parent not in seen:
                seen.add(parent)
                pending.append(parent)
            uses[parent] += 1
            edges.append((parent, node))
    return sorted(list(seen) + operands, key=lambda v: v.seq), edges, uses


def _parameter_names(params):
    """{parameter's node: name} from a Module (named_parameters), a {name: tensor} dict, (name, tensor) pairs, None."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        pairs = params.named_parameters()
    elif isinstance(params, Mapping):
        pairs = params.items()
    else:
        pairs = params
    names = {}
    for item in pairs:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Tensor)):
            raise TypeError(f"params must be a Module, a {{name: Tensor}} dict or (name, Tensor) pairs; "
                            f"got an item {item!r:.60}")
        if item[1]._node is not None:
            names.setdefault(item[1]._node, str(item[0]))
    return names

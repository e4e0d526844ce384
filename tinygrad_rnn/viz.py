"""Looking at a graph the engine recorded: Graphviz DOT text, an image through ``dot``, a text summary.

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
"""
import shutil
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .tensor import Node, Tensor

__all__ = ["to_dot", "render", "summary", "GraphCounts", "graph_counts"]


def to_dot(loss, params=None):
    """Graphviz DOT text of the graph of ``loss`` (see the module docstring); edges point from input to op."""
    vertices, edges, uses = _graph(loss)
    names = _parameter_names(params)
    ids = {v: f"n{k}" for k, v in enumerate(vertices)}
    lines = ["digraph autograd {", "  rankdir=BT;",
             '  node [fontname="Helvetica", fontsize=10, shape=box, style="rounded,filled", fillcolor=white];']
    for v in vertices:
        lines.append(f"  {ids[v]} [{_vertex_attributes(v, v is vertices[-1], names.get(v), uses[v])}];")
    for source, target in edges:
        lines.append(f"  {ids[source]} -> {ids[target]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _vertex_attributes(v, is_root, name, use_count):
    shape = str(tuple(v.shape))
    if name is not None:
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        if use_count > 1:
            return (f'label="{escaped}\\n{shape}\\nparameter, used {use_count}x (shared)", '
                    f'style="filled,bold", fillcolor="#9ecae1", peripheries=2')
        return f'label="{escaped}\\n{shape}\\nparameter, used {use_count}x", fillcolor="#9ecae1"'
    if isinstance(v, Node) and v.op is not None:
        return f'label="{op_name(v)}\\n{shape}"' + (', fillcolor="#fdd0a2"' if is_root else "")
    return f'label="{_leaf_kind(v)}\\n{shape}", shape=ellipse, fillcolor="#e5e5e5"'


def render(loss, path, params=None):
    """Draw the graph of ``loss`` to ``path`` with Graphviz's ``dot``; the format is the suffix (png, svg, pdf)."""
    executable = shutil.which("dot")
    if executable is None:
        raise RuntimeError("render needs Graphviz's `dot` executable, which is not installed; install Graphviz, "
                           "or write tinygrad_rnn.viz.to_dot(loss) to a .dot file and render it elsewhere")
    path = Path(path)
    image_format = path.suffix.lstrip(".") or "png"
    done = subprocess.run([executable, f"-T{image_format}", "-o", str(path)], input=to_dot(loss, params),
                          text=True, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"dot could not write {path} as {image_format}: {done.stderr.strip()}")
    return path


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
    """An op's input that needs no gradient: the graph keeps only its shape."""

    def __init__(self, shape, seq):
        self.shape, self.seq = tuple(shape), seq


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
        for parent, saved in zip(node.inputs, node.saved):
            if parent is None:
                parent = _Operand(saved.shape, node.seq - 0.5)
                operands.append(parent)
            elif parent not in seen:
                seen.add(parent)
                pending.append(parent)
            uses[parent] += 1
            edges.append((parent, node))
    return sorted(list(seen) + operands, key=lambda v: v.seq), edges, uses


def _parameter_names(params):
    """{parameter's node: name} from a Module (named_parameters), a {name: tensor} dict, (name, tensor) pairs or None."""
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

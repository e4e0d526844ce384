"""What BPTT does over time, read off the engine (and, for the built-in cells, off the hand-derived
references): ‖∂L/∂h_t‖, each step's share of the tied weights' gradient, the Jacobians through
time, the (loss step × use step) contribution matrix, gradient clipping, and the commands that
print and plot them. One job per file:

    common.py         what the measurements share around their loop (nn.forward_recurrence), its checks
    norms.py          hidden_grad_norms, weight_grad_contributions (hooks and per-step aliases)
    references.py     the same two from the hand-derived references (bptt/)
    jacobians.py      jacobians: ∂s_{T-1}/∂s_t, J_t, their singular values, the product bound
    contributions.py  contribution_matrix, long_range_fraction
    clipping.py       compare_clipping: norm vs value clipping of one gradient
    demo.py           the seeded demo cells and data of the commands
    command.py        the ``tinygrad-rnn gradflow`` commands: tables of numbers
    plots.py          their pictures (matplotlib, optional)
"""
from .norms import (WeightGradContributions, hidden_grad_norms, last_output_loss, unit_readout,
                    weight_grad_contributions)
from .references import reference_hidden_grad_norms, reference_weight_grad_contributions
from .jacobians import Jacobians, jacobians, product_bound
from .contributions import ContributionMatrix, contribution_matrix, every_step_loss, long_range_fraction
from .clipping import ClippingComparison, compare_clipping
from .demo import demo_models
from .command import (clipping_command, contribution_matrix_command, contributions_command, gradflow_command,
                      jacobians_command)

__all__ = ["last_output_loss", "unit_readout", "hidden_grad_norms", "WeightGradContributions",
           "weight_grad_contributions", "reference_hidden_grad_norms", "reference_weight_grad_contributions",
           "Jacobians", "jacobians", "product_bound", "ContributionMatrix", "contribution_matrix", "every_step_loss",
           "long_range_fraction", "ClippingComparison", "compare_clipping", "demo_models", "gradflow_command",
           "contributions_command", "jacobians_command", "clipping_command", "contribution_matrix_command"]

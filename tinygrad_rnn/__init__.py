"""tinygrad_rnn: a small, exact, fast autodiff framework for recurrent networks, over NumPy."""
from . import ops as _ops  # attaches the operators and methods to Tensor
from .tensor import Tensor, get_default_dtype, grad, is_grad_enabled, no_grad, set_default_dtype
from .ops import concat, stack, where
from .gradcheck import GradcheckError, gradcheck, gradgradcheck, numerical_grad, rel_error, rel_error_norm
from .random import manual_seed
from .accelerator import fast
from . import functional, optim, nn, bptt, data, gradflow, viz

__version__ = "0.1.0"

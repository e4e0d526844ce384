"""tinygrad_rnn: a small, exact, fast autodiff framework for recurrent networks, over NumPy."""
from . import ops as _ops  # attaches the operators and methods to Tensor
from .tensor import Tensor, get_default_dtype, grad, is_grad_enabled, no_grad, set_default_dtype
from .ops import where
from .gradcheck import GradcheckError, gradcheck, gradgradcheck, numerical_grad, rel_error, rel_error_norm
from .random import manual_seed
from .accelerator import fast
from . import functional, optim, nn, bptt, data, gradflow, viz
# tr.tensor is the constructor (as torch.tensor), not the submodule tensor.py: modules write "from .tensor import"
from .pytorch_names import (arange, cat, concat, double, float32, float64, from_numpy, int32, int64, long, ones,
                            ones_like, rand, randn, stack, tensor, zeros, zeros_like)
from . import export

__version__ = "0.1.0"

"""``torch.nn.utils``'s gradient clipping, where a PyTorch user looks for it: the very functions of
``tinygrad_rnn.optim`` (``tr.nn.utils.clip_grad_norm_ is tr.optim.clip_grad_norm_``)."""
from ..optim.clipping import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_"]

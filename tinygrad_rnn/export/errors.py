"""What goes wrong when a module is exported to PyTorch, as errors that name the part at fault."""

__all__ = ["ExportError", "UnsupportedOpError"]


class ExportError(TypeError):
    """A module, or a cell's step, that cannot be turned into an equivalent ``torch.nn.Module``."""


class UnsupportedOpError(ExportError):
    """A cell's step uses an op of the engine (named in the message) that has no PyTorch counterpart."""

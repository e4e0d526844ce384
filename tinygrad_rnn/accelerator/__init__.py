"""The accelerator: recurrent loops recorded once and replayed as one graph node, beside the core.

The core (``tensor.py``, ``ops.py``) never imports this package; the accelerator watches ops through
the core's one seam, ``tensor.observers``, and ``nn.Recurrent`` offers it each loop (``run_loop``).
Everything it does for speed happens inside its own node, and its numbers are the core's
(``tests/test_fast_equals_core.py``). ``fast(False)`` turns it off. See docs/engine.md.

    switch.py    fast: the switch (and TINYGRAD_RNN_FAST=0)
    tape.py      record a step through the seam; compile its forward and backward programs
    product.py   the factored weight gradient: one product over all steps
    compiler.py  a recorded step as one compiled loop over buffers (merged slices, out=, derivatives at once)
    loop.py      run_loop: the recurrent loop as one graph node
"""
from .loop import run_loop
from .switch import fast

__all__ = ["fast", "run_loop"]

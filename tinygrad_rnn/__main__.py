"""``python -m tinygrad_rnn``: the ``tinygrad-rnn`` command (see ``tinygrad_rnn.cli``)."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

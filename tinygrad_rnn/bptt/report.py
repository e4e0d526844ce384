"""What ``crosscheck`` reports: one row per differentiated tensor, and the table it prints."""
from typing import NamedTuple, Optional

import numpy as np

__all__ = ["CrosscheckReport", "CrosscheckRow"]


class CrosscheckRow(NamedTuple):
    """One differentiated tensor: its name, shape and the relative errors (None where that side was
    not computed: no reference, or no finite differences), and where it goes wrong if it does."""

    name: str
    shape: tuple
    autograd_vs_hand: Optional[float]
    autograd_vs_fd: Optional[float]
    hand_vs_fd: Optional[float]
    fd_entries: int          # how many entries the finite differences sampled (0: none)
    fd_unresolved: bool = False  # the gradient is below what finite differences resolve: its
                                 # FD errors are measured against that resolution (the floor)
    first_bad_step: Optional[int] = None  # a failing parameter or x: the last step t whose own
                                          # contribution disagrees between autograd and the reference
    where: str = ""          # a failing row: the gates (built-in cells) or entries that disagree most


class CrosscheckReport(NamedTuple):
    """What ``crosscheck`` found; ``str(report)`` is an aligned table with a header and verdict."""

    module: str              # e.g. "LSTM(5, 6)"
    dtype: np.dtype
    sizes: dict              # T (sequences only), N, D, H
    loss: str
    lengths: Optional[tuple]
    forward_error: Optional[float]  # outputs, final state and L: autograd vs the reference (None: no reference)
    rows: list               # CrosscheckRow, one per parameter, x, initial state part, read-out
    tolerances: tuple        # (autograd vs hand-derived, against finite differences)
    fd_step: Optional[float]  # h of the finite differences, None when they were not run
    reference: Optional[str] = None  # what the hand-derived side was ("bptt.lstm", "yours: MyRef"); None: two-way

    @property
    def two_way(self):
        """True when there was no reference: autograd against finite differences only."""
        return self.reference is None

    @property
    def max_error(self):
        """The largest autograd-vs-hand-derived gradient error (two-way: autograd vs FD)."""
        errors = [row.autograd_vs_fd if self.two_way else row.autograd_vs_hand for row in self.rows]
        errors = [error for error in errors if error is not None]
        return max(errors) if errors else None

    def row_ok(self, row):
        hand, fd = self.tolerances
        return ((row.autograd_vs_hand is None or row.autograd_vs_hand <= hand)
                and all(error is None or error <= fd for error in (row.autograd_vs_fd, row.hand_vs_fd)))

    @property
    def ok(self):
        """Whether the forward (with a reference) and every row are within the tolerances."""
        forward_ok = self.forward_error is None or self.forward_error <= self.tolerances[0]
        return forward_ok and all(map(self.row_ok, self.rows))

    def __str__(self):
        sizes = " ".join(f"{key}={value}" for key, value in self.sizes.items())
        lengths = "" if self.lengths is None else f"  lengths {list(self.lengths)}"
        verdict = "OK" if self.ok else "FAILED"
        lines = [f"{self.module}  {self.dtype}  {sizes}{lengths}  loss {self.loss}: {verdict}"]
        if self.two_way:
            lines.append("two-way check: autograd vs finite differences (no hand-derived reference for this cell; "
                         "pass reference= for the third opinion)")
        else:
            lines.append(f"three-way check: autograd vs hand-derived ({self.reference}) vs finite differences; "
                         f"forward (outputs, final state, loss) autograd vs hand-derived: {self.forward_error:.1e}")
        header = ["gradient", "shape"] + ([] if self.two_way else ["autograd vs hand"]) + ["autograd vs FD"] \
            + ([] if self.two_way else ["hand vs FD"]) + ["FD entries", "first bad step", "where"]
        table, marks = [header], [""]
        for row in self.rows:
            star = "*" if row.fd_unresolved else ""
            fd_errors = ["-" if e is None else f"{e:.1e}{star}" for e in (row.autograd_vs_fd, row.hand_vs_fd)]
            entries = f"{row.fd_entries} of {int(np.prod(row.shape))}" if row.fd_entries else "-"
            cells = [row.name, str(row.shape)]
            if not self.two_way:
                cells += [f"{row.autograd_vs_hand:.1e}", *fd_errors]
            else:
                cells += fd_errors[:1]
            failing = not self.row_ok(row)
            step = "-" if row.first_bad_step is None or not failing else f"t={row.first_bad_step}"
            table.append(cells + [entries, step, row.where if failing and row.where else "-"])
            marks.append("<- FAIL" if failing else "")
        widths = [max(len(cells[k]) for cells in table) for k in range(len(header))]
        for cells, mark in zip(table, marks):
            line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths))
            lines.append(f"{line}  {mark}".rstrip())
        hand, fd = self.tolerances
        against = f"{fd:.0e} against finite differences"
        lines.append(f"tolerances ({self.dtype}, relative errors in the 2-norm): "
                     + (against if self.two_way else f"{hand:.0e} autograd vs hand-derived, {against}"))
        if self.fd_step is not None:
            lines.append(f"finite differences: five-point stencil in float64, h = {self.fd_step:.1e}")
        if any(row.fd_unresolved for row in self.rows):
            lines.append("* a gradient smaller than finite differences can resolve at this h: "
                         "measured against that resolution instead of its own size")
        if any(not self.row_ok(row) and row.first_bad_step is not None for row in self.rows):
            lines.append("first bad step: the last step t whose own contribution to that gradient disagrees "
                         "(BPTT meets it first); an error only in the state gradient a step passes back "
                         "first shows one step earlier than one in the step's own gradient")
        return "\n".join(lines)

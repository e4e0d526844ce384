"""Shared hypothesis strategies, value generators and fixtures for the engine's tests, and what the
command tests share (``table_rows``, the ``no_matplotlib`` fixture).

Shapes come from hypothesis; values come from a NumPy generator seeded by a hypothesis-drawn
``seed``, so every example replays exactly. Each value generator keeps to a domain where the op
under test is smooth: positive for log/sqrt/pow, at least ``gap`` from kinks (0 for abs/relu, the
bounds for clip), and well separated for max (no near-ties unless a test wants exact ties).
"""
import sys

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_rnn as tr

#: hypothesis settings for the engine's property tests: modest examples, no deadline (no timing)
FAST = settings(max_examples=40, deadline=None)
#: for a test parametrized over many cases, each case on fewer shapes
FEW = settings(max_examples=12, deadline=None)

seeds = st.integers(0, 2**32 - 1)


def shapes(min_dims=0, max_dims=3, max_side=3):
    """Array shapes with sides 1..max_side, including () when min_dims is 0."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)


def broadcast_shapes(num_shapes=2, min_dims=0, max_dims=3):
    """A tuple of ``num_shapes`` shapes that broadcast together (size-1 axes, missing axes, 0-d)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims,
                                             min_side=1, max_side=3).map(lambda b: b.input_shapes)


def smooth(rng, shape):
    """U(-1.5, 1.5): for ops smooth everywhere (exp, tanh, sigmoid, +, *)."""
    return rng.uniform(-1.5, 1.5, size=shape)


def positive(rng, shape):
    """U(0.5, 2): for log, sqrt, division and powers with a tensor exponent."""
    return rng.uniform(0.5, 2.0, size=shape)


def avoiding(rng, shape, kinks=(0.0,), gap=0.1):
    """U(-1.5, 1.5) with every value at least ``gap`` away from each kink (abs, relu, clip bounds)."""
    x = rng.uniform(-1.5, 1.5, size=shape)
    for kink in kinks:
        near = np.abs(x - kink) < gap
        x = np.where(near, kink + np.where(x >= kink, gap, -gap) * 1.5, x)
    return x


def distinct(rng, shape):
    """Values 0.25 apart in a random order: max has a unique winner along every axis."""
    size = int(np.prod(shape, dtype=int))
    return (rng.permutation(size).reshape(shape) - size / 2) * 0.25


def leaf(array):
    """A float64 leaf that requires grad, owning a copy of ``array``."""
    return tr.Tensor(np.array(array, dtype=np.float64), requires_grad=True)


@pytest.fixture
def restore_default_dtype():
    """Put the default dtype back after a test that changes it."""
    saved = tr.get_default_dtype()
    yield
    tr.set_default_dtype(saved)


@pytest.fixture
def accelerator_on():
    """The test runs with the accelerator on, whatever TINYGRAD_RNN_FAST says: for tests of the
    accelerator itself, which CI's second run (TINYGRAD_RNN_FAST=0) must still exercise."""
    with tr.fast(True):
        yield


def table_rows(text):
    """{row label t: [values...]} from the table lines of a command's text (lines starting with an int)."""
    rows = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            rows[int(fields[0])] = [float(v) for v in fields[1:]]
    return rows


@pytest.fixture
def no_matplotlib(monkeypatch):
    """The test runs as if matplotlib were not installed: ``import matplotlib`` raises ImportError."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)

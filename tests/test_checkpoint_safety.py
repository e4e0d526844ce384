"""Nothing a user made is lost: a finished checkpoint is never replaced unasked, Ctrl-C keeps the
steps done, an unwritable checkpoint path is refused before training, killed saves leave nothing
behind for long and are never read as checkpoints, broken checkpoint files are named with the field
that is wrong, and the process's cache of compiled programs stays bounded."""
import numpy as np

import tinygrad_rnn as tr
from tinygrad_rnn import tape


# ===================================================================== the compiled-program cache
def test_the_compiled_program_cache_stays_bounded_and_results_stay_exact():
    """More distinct batch sizes than the cache holds: it keeps at most COMPILED_PROGRAMS programs
    (least recently used dropped), and a size run again after its programs were dropped still
    gives the op-by-op loop's output and gradients."""
    tr.manual_seed(0)
    lstm = tr.nn.LSTM(2, 3, dtype=np.float64)
    rng = np.random.default_rng(0)

    def run(batch_size):
        x = tr.Tensor(rng.standard_normal((4, batch_size, 2)), requires_grad=True)  # T = 4: replayed
        output, (h_n, c_n) = lstm(x)
        (output.sum() + (h_n * c_n).sum()).backward()
        gradients = [x.grad] + [p.grad for p in lstm.parameters()]
        lstm.zero_grad()
        return x, output.data, gradients

    for batch_size in range(1, tape.COMPILED_PROGRAMS + 30):
        run(batch_size)
        assert len(tape._MAKERS) <= tape.COMPILED_PROGRAMS
    for batch_size in (1, 2, tape.COMPILED_PROGRAMS + 29):  # dropped long ago, and the latest
        x, output, gradients = run(batch_size)
        with tr.nn.replay(False):
            x_again = tr.Tensor(x.data, requires_grad=True)
            expected, (h_n, c_n) = lstm(x_again)
            (expected.sum() + (h_n * c_n).sum()).backward()
        np.testing.assert_allclose(output, expected.data, rtol=1e-12, atol=1e-14)
        for got, want in zip(gradients, [x_again.grad] + [p.grad for p in lstm.parameters()]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        lstm.zero_grad()

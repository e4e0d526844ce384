"""Expert hand-written NumPy training step for one recurrent layer: the yardstick of the benchmarks.

One step is the forward pass over a whole sequence from a zero initial state and the backward pass
from the gradient of the outputs to every parameter and to the input. Parameters use PyTorch's
layout, G gates stacked along the rows (LSTM G=4 in order i, f, g, o; GRU G=3 in order r, z, n;
tanh RNN G=1):

    weight_ih (G*H, D)   weight_hh (G*H, H)   bias_ih (G*H,)   bias_hh (G*H,)

Shapes: x (T, N, D), outputs and doutputs (T, N, H), grads like the parameters, dx like x.

What makes it fast:
  * the input projection X W_ih^T for all T steps is one matrix product, and so are the weight
    gradients dW = sum_t dA_t^T x_t at the end (one (G*H, T*N) @ (T*N, D) product, not T small ones);
  * per time step only one product each way (h_{t-1} W_hh^T forward, dA_t W_hh backward);
  * every buffer is allocated once per (N, T, D, H) in the constructor and reused by every call,
    every elementwise operation writes in place with ``out=`` (no fresh arrays, no page faults);
  * the sigmoid is sigma(a) = (1 + tanh(a / 2)) / 2: the factor 1/2 is folded into the weight rows
    of the sigmoid gates (an exact scaling in binary floating point), so one tanh call activates
    all four LSTM gates (r and z together in the GRU) and nothing can overflow (no exp is taken);
  * everything that does not depend on the backward recursion (activation derivatives and the
    factors that multiply the incoming gradient) is computed for the whole sequence at once before
    the backward loop, leaving a handful of operations per step;
  * every view a time step touches is sliced once, in the constructor (measured: a tiny LSTM step
    went from 16 to 9.5 us per time step with this and local names for the ufuncs).

The arrays returned are views into the object's buffers: they stay valid until the next call.
The input and the parameters passed to ``forward`` are kept by reference for ``backward``.
"""

import numpy as np

PARAMETER_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def random_params(cell, input_size, hidden_size, rng, dtype=np.float32):
    """PyTorch's initialisation U(-1/sqrt(H), 1/sqrt(H)) for every parameter of ``cell``.

    cell: "lstm", "rnn" or "gru"; returns {name: array} with the shapes in the module docstring.
    """
    if cell not in BASELINES:
        raise ValueError(f"cell must be one of {sorted(BASELINES)}, got {cell!r}")
    rows = BASELINES[cell].gates * hidden_size
    shapes = {"weight_ih": (rows, input_size), "weight_hh": (rows, hidden_size),
              "bias_ih": (rows,), "bias_hh": (rows,)}
    bound = 1.0 / np.sqrt(hidden_size)
    return {name: rng.uniform(-bound, bound, shape).astype(dtype) for name, shape in shapes.items()}


class _RecurrentBaseline:
    """Buffers and checks shared by the three cells; a subclass writes forward and backward.

    Buffers common to all cells, for a layer with G gates:
        _h      (T+1, N, H)   hidden states, _h[0] = 0 the initial state, _h[1:] the outputs
        _pre    (T, N, G*H)   pre-activations in the forward pass, gate-gradient factors after
        _grads  the four parameter gradients, _dx (T, N, D)
    """

    gates = 1

    def __init__(self, batch_size, seq_len, input_size, hidden_size, dtype=np.float32):
        sizes = {"batch_size": batch_size, "seq_len": seq_len,
                 "input_size": input_size, "hidden_size": hidden_size}
        for name, value in sizes.items():
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"dtype must be a floating-point type, got {self.dtype}")
        N, T, D, H = batch_size, seq_len, input_size, hidden_size
        GH = self.gates * H
        self.sizes = (N, T, D, H)
        self._param_shapes = {"weight_ih": (GH, D), "weight_hh": (GH, H),
                              "bias_ih": (GH,), "bias_hh": (GH,)}
        self._h = np.zeros((T + 1, N, H), self.dtype)
        self._pre = np.empty((T, N, GH), self.dtype)
        self._dh = np.empty((N, H), self.dtype)
        self._grads = {name: np.empty(shape, self.dtype) for name, shape in self._param_shapes.items()}
        self._dx = np.empty((T, N, D), self.dtype)
        self._x = None
        self._params = None

    def step(self, x, params, doutputs):
        """Forward then backward: returns (outputs (T, N, H), grads dict, dx (T, N, D))."""
        outputs = self.forward(x, params)
        grads, dx = self.backward(doutputs)
        return outputs, grads, dx

    def _check_array(self, name, array, shape):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
        if array.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
        if array.dtype != self.dtype:
            raise TypeError(f"{name} must have dtype {self.dtype}, got {array.dtype}")
        return array

    def _check_forward_inputs(self, x, params):
        """Validates x (T, N, D) and the four parameters; keeps both for the backward pass."""
        N, T, D, H = self.sizes
        self._check_array("x", x, (T, N, D))
        missing = [name for name in PARAMETER_NAMES if name not in params]
        if missing:
            raise KeyError(f"params is missing {missing}; expected keys {list(PARAMETER_NAMES)}")
        for name, shape in self._param_shapes.items():
            self._check_array(f"params[{name!r}]", params[name], shape)
        self._x, self._params = x, params

    def _check_backward_inputs(self, doutputs):
        if self._x is None:
            raise RuntimeError("backward called before forward")
        N, T, D, H = self.sizes
        self._check_array("doutputs", doutputs, (T, N, H))

    def _project_input(self, weight_ih, bias):
        """_pre = X W_ih^T + bias for all steps at once: (T*N, D) @ (D, G*H), one product."""
        N, T, D, H = self.sizes
        np.matmul(self._x.reshape(T * N, D), weight_ih.T, out=self._pre.reshape(T * N, -1))
        self._pre += bias

    def _weight_grads(self, dpre_input, dpre_hidden):
        """Parameter and input gradients from the gate gradients of all steps, one product each.

        dpre_input  (T, N, G*H): dL/d(W_ih x_t + b_ih), the input-side pre-activations;
        dpre_hidden (T, N, G*H): dL/d(W_hh h_{t-1} + b_hh), the same array for LSTM and RNN.
            dW_ih = sum_t dpre_input_t^T x_t        db_ih = sum_{t,n} dpre_input
            dW_hh = sum_t dpre_hidden_t^T h_{t-1}   db_hh = sum_{t,n} dpre_hidden
            dx_t  = dpre_input_t W_ih
        The t = 0 term of dW_hh vanishes because h_0 = 0.
        """
        N, T, D, H = self.sizes
        GH = self.gates * H
        grads = self._grads
        rows_in = dpre_input.reshape(T * N, GH)
        rows_hidden = dpre_hidden[1:].reshape((T - 1) * N, GH)
        np.matmul(rows_in.T, self._x.reshape(T * N, D), out=grads["weight_ih"])
        np.matmul(rows_hidden.T, self._h[1:T].reshape((T - 1) * N, H), out=grads["weight_hh"])
        np.sum(rows_in, axis=0, out=grads["bias_ih"])
        if dpre_hidden is dpre_input:
            np.copyto(grads["bias_hh"], grads["bias_ih"])
        else:
            np.sum(dpre_hidden.reshape(T * N, GH), axis=0, out=grads["bias_hh"])
        np.matmul(rows_in, self._params["weight_ih"], out=self._dx.reshape(T * N, D))
        return dict(grads), self._dx


class RNNBaseline(_RecurrentBaseline):
    """Tanh RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), h_0 = 0.

    Backward, with dh_t = doutputs_t + dA_{t+1} W_hh:
        dA_t = dh_t * (1 - h_t^2)       (dA_t the gradient of the pre-activation, (N, H))
    """

    gates = 1

    def __init__(self, batch_size, seq_len, input_size, hidden_size, dtype=np.float32):
        super().__init__(batch_size, seq_len, input_size, hidden_size, dtype)
        h, pre = self._h, self._pre
        self._bias = np.empty(hidden_size, self.dtype)
        self._recurrent = np.empty((batch_size, hidden_size), self.dtype)
        self._forward_views = [(h[t], h[t + 1], pre[t]) for t in range(seq_len)]

    def forward(self, x, params):
        """x (T, N, D) -> outputs h_1..h_T (T, N, H)."""
        self._check_forward_inputs(x, params)
        np.add(params["bias_ih"], params["bias_hh"], out=self._bias)
        self._project_input(params["weight_ih"], self._bias)
        matmul, add, tanh = np.matmul, np.add, np.tanh
        recurrent, weight_hh_t = self._recurrent, params["weight_hh"].T
        for h_prev, h_next, pre_t in self._forward_views:
            matmul(h_prev, weight_hh_t, out=recurrent)
            add(pre_t, recurrent, out=pre_t)
            tanh(pre_t, out=h_next)
        return self._h[1:]

    def backward(self, doutputs):
        """doutputs (T, N, H) -> (grads, dx (T, N, D))."""
        self._check_backward_inputs(doutputs)
        T = self.sizes[1]
        h, dpre, dh, weight_hh = self._h, self._pre, self._dh, self._params["weight_hh"]
        np.multiply(h[1:], h[1:], out=dpre)
        np.subtract(1, dpre, out=dpre)  # tanh' = 1 - h^2, all steps
        matmul, add, multiply = np.matmul, np.add, np.multiply
        np.copyto(dh, doutputs[T - 1])
        for t in range(T - 1, -1, -1):
            dpre_t = dpre[t]
            multiply(dh, dpre_t, out=dpre_t)
            if t:
                matmul(dpre_t, weight_hh, out=dh)
                add(dh, doutputs[t - 1], out=dh)
        return self._weight_grads(dpre, dpre)


class LSTMBaseline(_RecurrentBaseline):
    """LSTM, gates i, f, g, o; h_0 = c_0 = 0.

        [a_i, a_f, a_g, a_o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh      (N, 4H)
        i, f, o = sigma(a_i), sigma(a_f), sigma(a_o);  g = tanh(a_g)
        c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)

    Backward, with dh_t = doutputs_t + dA_{t+1} W_hh and dc_t = dc_{t+1} * f_{t+1} + dh_t * K_t:
        K_t = o * (1 - tanh(c_t)^2)
        dA_t = [dc_t * g * i(1-i),  dc_t * c_{t-1} * f(1-f),
                dc_t * i * (1-g^2),  dh_t * tanh(c_t) * o(1-o)]
    The factors multiplying dc_t and dh_t are formed for all steps before the backward loop.
    In the forward pass _pre holds u = tanh(s * a) with s = 1/2 on the sigmoid gates and 1 on g,
    so gate = s * u + (1 - s) on all four at once and its derivative is s^2 (1 - u^2).
    """

    gates = 4

    def __init__(self, batch_size, seq_len, input_size, hidden_size, dtype=np.float32):
        super().__init__(batch_size, seq_len, input_size, hidden_size, dtype)
        N, T, D, H = self.sizes
        gate_scale = np.array([0.5, 0.5, 1.0, 0.5], self.dtype)
        self._scale = np.repeat(gate_scale, H)                        # s (4H,)
        self._offset = 1 - self._scale                                # 1 - s (4H,)
        self._derivative_scale = self._scale * self._scale            # s^2 (4H,)
        self._weight_ih = np.empty((4 * H, D), self.dtype)            # s * W_ih
        self._weight_hh = np.empty((4 * H, H), self.dtype)            # s * W_hh
        self._bias = np.empty(4 * H, self.dtype)                      # s * (b_ih + b_hh)
        self._gates = np.empty((T, N, 4 * H), self.dtype)             # i, f, g, o
        self._c = np.zeros((T + 1, N, H), self.dtype)                 # _c[0] = 0
        self._tanh_c = np.empty((T, N, H), self.dtype)
        self._cell_factor = np.empty((T, N, H), self.dtype)           # K
        self._recurrent = np.empty((N, 4 * H), self.dtype)
        self._input_gate_product = np.empty((N, H), self.dtype)
        self._dc = np.empty((N, H), self.dtype)
        # Every view a time step touches, made once here rather than sliced again in each call.
        u, gates, c, tanh_c, h = self._pre, self._gates, self._c, self._tanh_c, self._h
        self._forward_views = [
            (h[t], h[t + 1], u[t], gates[t], gates[t, :, :H], gates[t, :, H:2 * H],
             gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:], c[t], c[t + 1], tanh_c[t])
            for t in range(T)]
        dpre4 = self._pre.reshape(T, N, 4, H)
        self._backward_views = [
            (self._pre[t], self._pre[t, :, 3 * H:], dpre4[t, :, :3], self._cell_factor[t],
             gates[t, :, H:2 * H])
            for t in range(T)]

    def forward(self, x, params):
        """x (T, N, D) -> outputs h_1..h_T (T, N, H)."""
        self._check_forward_inputs(x, params)
        scale = self._scale
        np.multiply(params["weight_ih"], scale[:, None], out=self._weight_ih)
        np.multiply(params["weight_hh"], scale[:, None], out=self._weight_hh)
        np.add(params["bias_ih"], params["bias_hh"], out=self._bias)
        self._bias *= scale
        self._project_input(self._weight_ih, self._bias)
        matmul, add, multiply, tanh = np.matmul, np.add, np.multiply, np.tanh
        recurrent, input_gate_product = self._recurrent, self._input_gate_product
        offset, weight_hh_t = self._offset, self._weight_hh.T
        for h_prev, h_next, u_t, gates_t, i, f, g, o, c_prev, c_next, tanh_c in self._forward_views:
            matmul(h_prev, weight_hh_t, out=recurrent)
            add(u_t, recurrent, out=u_t)
            tanh(u_t, out=u_t)
            multiply(u_t, scale, out=gates_t)
            add(gates_t, offset, out=gates_t)
            multiply(f, c_prev, out=c_next)
            multiply(i, g, out=input_gate_product)
            add(c_next, input_gate_product, out=c_next)
            tanh(c_next, out=tanh_c)
            multiply(o, tanh_c, out=h_next)
        return self._h[1:]

    def backward(self, doutputs):
        """doutputs (T, N, H) -> (grads, dx (T, N, D))."""
        self._check_backward_inputs(doutputs)
        N, T, D, H = self.sizes
        dpre, gates, tanh_c, factor = self._pre, self._gates, self._tanh_c, self._cell_factor
        dpre4, gates4 = dpre.reshape(T, N, 4, H), gates.reshape(T, N, 4, H)
        np.multiply(dpre, dpre, out=dpre)
        np.subtract(1, dpre, out=dpre)
        dpre *= self._derivative_scale              # gate derivatives i(1-i), f(1-f), 1-g^2, o(1-o)
        dpre4[:, :, 0] *= gates4[:, :, 2]           # partner of dc in dA_i: g
        dpre4[:, :, 1] *= self._c[:-1]              # partner of dc in dA_f: c_{t-1}
        dpre4[:, :, 2] *= gates4[:, :, 0]           # partner of dc in dA_g: i
        dpre4[:, :, 3] *= tanh_c                    # partner of dh in dA_o: tanh(c_t)
        np.multiply(tanh_c, tanh_c, out=factor)
        np.subtract(1, factor, out=factor)
        factor *= gates4[:, :, 3]                   # K = o * (1 - tanh(c)^2)
        matmul, add, multiply = np.matmul, np.add, np.multiply
        dh, dc, dc_term = self._dh, self._dc, self._input_gate_product
        weight_hh = self._params["weight_hh"]
        dc_column, views = dc[:, None, :], self._backward_views
        np.copyto(dh, doutputs[T - 1])
        dc.fill(0)
        for t in range(T - 1, -1, -1):
            dpre_t, dpre_o, dpre_ifg, factor_t, f = views[t]
            multiply(dh, dpre_o, out=dpre_o)
            multiply(dh, factor_t, out=dc_term)
            add(dc, dc_term, out=dc)
            multiply(dc_column, dpre_ifg, out=dpre_ifg)
            if t:
                multiply(dc, f, out=dc)
                matmul(dpre_t, weight_hh, out=dh)
                add(dh, doutputs[t - 1], out=dh)
        return self._weight_grads(dpre, dpre)


class GRUBaseline(_RecurrentBaseline):
    """GRU, gates r, z, n; h_0 = 0.

        [xr, xz, xn] = W_ih x_t + b_ih;  [hr, hz, hn] = W_hh h_{t-1} + b_hh       (N, 3H) each
        r = sigma(xr + hr);  z = sigma(xz + hz);  n = tanh(xn + r * hn)
        h_t = (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n)

    Backward, with dh_t = doutputs_t + dh_{t+1} * z_{t+1} + dA^h_{t+1} W_hh:
        input side  dA^x_t = [dh_t * Kr, dh_t * Kz, dh_t * Kn]
        hidden side dA^h_t = [dh_t * Kr, dh_t * Kz, dh_t * Kn * r]
        Kn = (1 - z)(1 - n^2),  Kz = (h_{t-1} - n) z(1 - z),  Kr = Kn * hn * r(1 - r)
    The K factors are formed for all steps before the backward loop.
    The forward pass scales the r and z rows of both weights by 1/2 so that
    sigma(a) = (1 + tanh(a / 2)) / 2 needs one tanh call for r and z together.
    """

    gates = 3

    def __init__(self, batch_size, seq_len, input_size, hidden_size, dtype=np.float32):
        super().__init__(batch_size, seq_len, input_size, hidden_size, dtype)
        N, T, D, H = self.sizes
        self._scale = np.repeat(np.array([0.5, 0.5, 1.0], self.dtype), H)  # s (3H,)
        self._weight_ih = np.empty((3 * H, D), self.dtype)                # s * W_ih
        self._weight_hh = np.empty((3 * H, H), self.dtype)                # s * W_hh
        self._bias = np.empty(3 * H, self.dtype)                          # s * (b_ih + [b_hr, b_hz, 0])
        self._hidden = np.empty((T, N, 3 * H), self.dtype)                # [hr/2, hz/2, hn]
        self._gates = np.empty((T, N, 3 * H), self.dtype)                 # r, z, n
        self._difference = np.empty((N, H), self.dtype)
        self._recurrent = np.empty((N, H), self.dtype)
        # Every view a time step touches, made once here rather than sliced again in each call.
        # In backward the input side lives in _pre and the hidden side in _hidden (see backward).
        projected, hidden, gates, h = self._pre, self._hidden, self._gates, self._h
        self._forward_views = [
            (h[t], h[t + 1], hidden[t], hidden[t, :, :2 * H], hidden[t, :, 2 * H:],
             projected[t, :, :2 * H], projected[t, :, 2 * H:],
             gates[t, :, :2 * H], gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:])
            for t in range(T)]
        hidden3 = hidden.reshape(T, N, 3, H)
        self._backward_views = [
            (projected[t, :, 2 * H:], hidden[t], hidden3[t], gates[t, :, H:2 * H]) for t in range(T)]

    def forward(self, x, params):
        """x (T, N, D) -> outputs h_1..h_T (T, N, H)."""
        self._check_forward_inputs(x, params)
        H = self.sizes[3]
        scale = self._scale
        np.multiply(params["weight_ih"], scale[:, None], out=self._weight_ih)
        np.multiply(params["weight_hh"], scale[:, None], out=self._weight_hh)
        np.copyto(self._bias, params["bias_ih"])
        self._bias[:2 * H] += params["bias_hh"][:2 * H]
        self._bias *= scale
        self._project_input(self._weight_ih, self._bias)
        matmul, add, subtract, multiply, tanh = np.matmul, np.add, np.subtract, np.multiply, np.tanh
        bias_hn, weight_hh_t, difference = params["bias_hh"][2 * H:], self._weight_hh.T, self._difference
        for h_prev, h_next, hidden_t, hidden_rz, hn, x_rz, xn, rz, r, z, n in self._forward_views:
            matmul(h_prev, weight_hh_t, out=hidden_t)
            add(hn, bias_hn, out=hn)
            add(x_rz, hidden_rz, out=rz)
            tanh(rz, out=rz)
            multiply(rz, 0.5, out=rz)
            add(rz, 0.5, out=rz)
            multiply(r, hn, out=n)
            add(n, xn, out=n)
            tanh(n, out=n)
            subtract(h_prev, n, out=difference)
            multiply(difference, z, out=difference)
            add(n, difference, out=h_next)
        return self._h[1:]

    def backward(self, doutputs):
        """doutputs (T, N, H) -> (grads, dx (T, N, D))."""
        self._check_backward_inputs(doutputs)
        N, T, D, H = self.sizes
        gates = self._gates
        r, z, n = gates[:, :, :H], gates[:, :, H:2 * H], gates[:, :, 2 * H:]
        # Input side in the buffer of the input projection, hidden side in that of W_hh h + b_hh.
        dpre_x, dpre_h = self._pre, self._hidden
        kn, scratch = dpre_x[:, :, 2 * H:], dpre_x[:, :, H:2 * H]
        kr, kz, hn_then_knr = dpre_h[:, :, :H], dpre_h[:, :, H:2 * H], dpre_h[:, :, 2 * H:]
        np.multiply(n, n, out=kn)
        np.subtract(1, kn, out=kn)
        np.subtract(1, z, out=scratch)
        kn *= scratch                                   # Kn = (1 - z)(1 - n^2)
        np.subtract(1, r, out=kr)
        kr *= r
        kr *= hn_then_knr
        kr *= kn                                        # Kr = Kn * hn * r(1 - r)
        np.multiply(kn, r, out=hn_then_knr)             # Kn * r
        np.subtract(1, z, out=kz)
        kz *= z
        np.subtract(self._h[:-1], n, out=scratch)
        kz *= scratch                                   # Kz = (h_{t-1} - n) z(1 - z)
        matmul, add, multiply = np.matmul, np.add, np.multiply
        dh, recurrent, weight_hh = self._dh, self._recurrent, self._params["weight_hh"]
        dh_column, views = dh[:, None, :], self._backward_views
        np.copyto(dh, doutputs[T - 1])
        for t in range(T - 1, -1, -1):
            dpre_xn, dpre_h_t, dpre_h3_t, z_t = views[t]
            multiply(dh, dpre_xn, out=dpre_xn)
            multiply(dh_column, dpre_h3_t, out=dpre_h3_t)
            if t:
                matmul(dpre_h_t, weight_hh, out=recurrent)
                multiply(dh, z_t, out=dh)
                add(dh, recurrent, out=dh)
                add(dh, doutputs[t - 1], out=dh)
        np.copyto(dpre_x[:, :, :2 * H], dpre_h[:, :, :2 * H])
        return self._weight_grads(dpre_x, dpre_h)


BASELINES = {"lstm": LSTMBaseline, "rnn": RNNBaseline, "gru": GRUBaseline}

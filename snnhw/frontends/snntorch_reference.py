"""Run the snntorch model itself on an input and record every neuron layer's spikes and membranes.

This is the float reference of ``snnhw verify``. How the model is called follows the forward
style the frontend traced (``Graph.meta['forward']``): once per step (tutorial ``Sequential``
with ``init_hidden=True``), once for all steps reading ``x[step]``, or once for all steps reading
the same input every step (only possible when the input does not change over time).
"""
from __future__ import annotations

import numpy as np
import torch

from snnhw.errors import SnnhwError
from snnhw.frontends.snntorch_trace import NEURONS, _leaves, _reset_state, _state_args


def reference_run(net: torch.nn.Module, style: str, x: np.ndarray) -> tuple[dict, dict]:
    """Spikes and membranes ``{layer: [T', B, *shape]}`` of the model on ``x`` ``[T, B, *shape]``.

    T' is the number of steps the model ran (its own loop may run a fixed number of steps)."""
    spikes: dict = {}
    mems: dict = {}
    hooks = []

    def record(name):
        def hook(mod, args, out):
            spk = out[0] if isinstance(out, tuple) else out
            spikes.setdefault(name, []).append(spk.detach().numpy().copy())
            mem = out[-1] if isinstance(out, tuple) else getattr(mod, "mem", None)
            if torch.is_tensor(mem):
                mems.setdefault(name, []).append(mem.detach().numpy().copy())
        return hook

    for name, m in _leaves(net):
        if isinstance(m, NEURONS):
            hooks.append(m.register_forward_hook(record(name)))
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    net.eval()
    _reset_state(net)
    try:
        with torch.no_grad():
            if style == "per_step":
                # a forward taking the neuron states gets None: each neuron then keeps its state
                # itself between calls, as a caller threading the returned states would
                states = [None] * _state_args(net)
                for t in range(xt.shape[0]):
                    net(xt[t], *states)
            elif style == "loop_time_indexed":
                net(xt)
            else:
                if not torch.all(xt == xt[:1]):
                    raise SnnhwError("the model's forward reads the same input at every step, but this input "
                                     "changes over time; snntorch cannot be run on it")
                net(xt[0])
    finally:
        for h in hooks:
            h.remove()
        _reset_state(net)
    return ({k: np.stack(v) for k, v in spikes.items()}, {k: np.stack(v) for k, v in mems.items()})

r"""Import the published models of the paper's code (ecnn4klm) as package checkpoints.

The paper's code (Miyazaki-Yu/ecnn4klm, MIT licence) publishes one trained
model per lattice as a ``torch.save`` dict ``{"epoch", "model_state_dict",
"opt_state_dict", "loss"}`` whose state dict holds e3nn modules:
``conv1 .. conv4`` and ``convout`` (``e3nn.o3.TensorProduct`` of the
slot-concatenated features with the central spin's harmonics, key
``convN.tp.weight``), the bias-free ``NormActivation`` layers (no weights) and
the output stack ``selfintout1 .. 3`` (``e3nn.o3.Linear`` 8 -> 4 -> 2 -> 1
with biases, keys ``selfintoutN.selfinteract.weight`` / ``.bias``).

Its architecture is :class:`~ecnn_pyg.nn.ECNN` with :func:`published_config`
(``configs/model_ecnn4klm.yaml``): :data:`~ecnn_pyg.nn.PAPER_NEIGHBORHOODS`,
e3nn's bias-free ``NormActivation``, the skip inside the activation,
integral-normalized harmonics. :func:`ecnn4klm_model` maps the e3nn weights
onto it:

* ``convN.tp.weight``: one ``(C_in, 1, C_out)`` block per instruction
  ``(slot k, l_i, l_f, l_o)`` in e3nn's order (slot-major, then ``l_i``,
  ``l_f``, ``l_o``) goes to ``SpinConv.weight[l_i][k, :, p C_out : (p+1) C_out]``
  with ``p`` the index of ``(l_f, l_o)`` in the package's path list (the same
  order); e3nn's path normalization equals the package's with
  ``avg_num_neighbors`` = number of slots, so the weights are copied unscaled;
* ``selfintoutN.selfinteract.weight`` ``(C_in C_out,)``: e3nn computes
  :math:`x W / \sqrt{C_{in}} + b`, so the package's ``SelfInteraction``
  weight is :math:`W^T / \sqrt{C_{in}}` and the bias is copied.

:func:`import_ecnn4klm` (``ecnn-pyg import-ecnn4klm``) writes the result as a
package checkpoint (:func:`ecnn_pyg.checkpoint.save_checkpoint`) whose
``data`` entry records the paper's protocol of that lattice
(:data:`PROTOCOLS`), so that ``ecnn-pyg evaluate``, ``ecnn-pyg simulate`` and
:func:`ecnn_pyg.pretrained.load_model` use it like a model trained here. The file is
read with ``torch.load(weights_only=True)``: tensors and plain containers
only, no code runs.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from .checkpoint import CheckpointError, read_torch_file, save_checkpoint

__all__ = ["PROTOCOLS", "PUBLISHED_OPTIONS", "published_config", "read_ecnn4klm", "ecnn4klm_model",
           "import_ecnn4klm"]

#: The paper's ED protocol of each lattice, recorded as the ``data`` entry of an
#: imported checkpoint (the electronic model the published weights were trained on).
#: the model options that make the package's ECNN the published network
PUBLISHED_OPTIONS: Dict[str, str] = {"neighborhood": "paper", "activation": "norm_nobias",
                                     "residual": "before_activation",
                                     "sh_normalization": "integral"}

PROTOCOLS: Dict[str, Dict[str, Any]] = {
    "square": {
        "lattice": "square", "size": [30, 30], "hoppings": {"t1": 1.0, "t2": 0.0},
        "model": {"J": 7.0, "electrons": 864, "mu": None, "temperature": 0.0, "zeeman": 0.0},
        "n_sites": 900,
    },
    "triangular": {
        "lattice": "triangular", "size": [36, 36],
        "hoppings": {"t1": 1.0, "t2": 0.0, "t3": -0.85},
        "model": {"J": -1.0, "electrons": None, "mu": -3.5, "temperature": 0.0, "zeeman": 0.0},
        "n_sites": 1296,
    },
}

_CONVS = ("conv1", "conv2", "conv3", "conv4", "convout")
_LINEARS = ("selfintout1", "selfintout2", "selfintout3")


def published_config(lattice: str) -> Dict[str, Any]:
    """The :class:`~ecnn_pyg.nn.ECNN` config of the published architecture.

    Args:
        lattice: ``"square"`` or ``"triangular"``.

    Returns:
        Constructor arguments (those of ``configs/model_ecnn4klm.yaml`` with
        ``lattice`` set).

    Raises:
        ValueError: if ``lattice`` is neither ``"square"`` nor ``"triangular"``.
    """
    if lattice not in PROTOCOLS:
        raise ValueError(f"the published models are for the lattices {sorted(PROTOCOLS)}, "
                         f"got {lattice!r}")
    from .nn import DEFAULT_CONFIG          # the hyperparameters are the package's defaults
    return {**copy.deepcopy(DEFAULT_CONFIG), "lattice": lattice, **PUBLISHED_OPTIONS}


def read_ecnn4klm(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a published checkpoint (``torch.load`` with ``weights_only=True``).

    Args:
        path: the ``param.cpt`` file: a dict with ``model_state_dict`` (or a
            bare state dict).

    Returns:
        ``{"state": state dict, "epoch": int or None, "loss": float or None}``.

    Raises:
        CheckpointError: if the file is missing, not a ``torch.save`` file,
            truncated or corrupted, holds Python objects other than tensors
            and containers, or is not a state dict of the published network.
    """
    obj = read_torch_file(path, "published ecnn4klm checkpoint")
    state = obj.get("model_state_dict", obj) if isinstance(obj, Mapping) else None
    expected = [f"{c}.tp.weight" for c in _CONVS] + \
        [f"{n}.selfinteract.{p}" for n in _LINEARS for p in ("weight", "bias")]
    if not isinstance(state, Mapping) or any(k not in state or not torch.is_tensor(state[k])
                                             for k in expected):
        missing = [k for k in expected if not isinstance(state, Mapping) or k not in state]
        raise CheckpointError(
            f"'{path}' is not a published ecnn4klm checkpoint: expected a dict with "
            f"'model_state_dict' holding {', '.join(expected[:2])}, ...; missing "
            f"{missing[:3] if missing else 'tensor values'}")
    epoch = obj.get("epoch") if isinstance(obj, Mapping) else None
    loss = obj.get("loss") if isinstance(obj, Mapping) else None
    return {"state": dict(state), "epoch": int(epoch) if isinstance(epoch, int) else None,
            "loss": float(loss) if isinstance(loss, (int, float)) else None}


def _slots_of(n_weights: int, per_slot: int) -> Optional[int]:
    return n_weights // per_slot if per_slot and n_weights % per_slot == 0 else None


def ecnn4klm_model(state: Mapping[str, torch.Tensor], lattice: str,
                   source: str = "checkpoint", dtype: torch.dtype = torch.float32):
    r"""The package's :class:`~ecnn_pyg.nn.ECNN` (eval mode) with the published weights.

    Args:
        state: the published state dict (``model_state_dict``).
        lattice: ``"square"`` or ``"triangular"``: the lattice the weights are for.
        source: name of the file in error messages.
        dtype: dtype of the model (the published one is float32; the output
            weights are rescaled by :math:`1/\sqrt{C_{in}}`, so a float64
            model of float64 weights reproduces e3nn in float64 exactly).

    Returns:
        The :class:`~ecnn_pyg.nn.ECNN` of :func:`published_config`, with the weights.

    Raises:
        ValueError: if ``lattice`` is unknown.
        CheckpointError: if the weight shapes do not fit the published network
            of ``lattice`` (e.g. a triangular checkpoint imported as square).
    """
    from .nn import ECNN, PAPER_NEIGHBORHOODS
    model = ECNN.from_config(published_config(lattice)).to(dtype)
    slots = len(PAPER_NEIGHBORHOODS[lattice])
    convs = [b.conv for b in model.blocks] + [model.output.conv]
    for name, conv in zip(_CONVS, convs):
        w = state[f"{name}.tp.weight"]
        per_slot = sum(conv.channels_in * len(p) * conv.channels_out for p in conv.path_list)
        if w.dim() != 1 or w.numel() != per_slot * slots:
            found = _slots_of(w.numel(), per_slot) if w.dim() == 1 else None
            other = {len(v): k for k, v in PAPER_NEIGHBORHOODS.items()}.get(found)
            hint = f"; its {found} slots are those of the {other} lattice" if other else ""
            raise CheckpointError(
                f"{source}: {name}.tp.weight has {w.numel()} weights, the published "
                f"{lattice} network has {per_slot * slots} ({slots} slots x {per_slot}){hint}")
        w = w.detach().to(torch.float64)
        pos = 0
        new = [torch.zeros_like(p, dtype=torch.float64) for p in conv.weight]
        for k in range(slots):
            for li, plist in enumerate(conv.path_list):
                for p, _ in enumerate(plist):
                    n = conv.channels_in * conv.channels_out
                    block = w[pos:pos + n].view(conv.channels_in, conv.channels_out)
                    new[li][k, :, p * conv.channels_out:(p + 1) * conv.channels_out] = block
                    pos += n
        with torch.no_grad():
            for p, v in zip(conv.weight, new):
                p.copy_(v)
    for name, lin in zip(_LINEARS, model.output.linears):
        w, b = state[f"{name}.selfinteract.weight"], state[f"{name}.selfinteract.bias"]
        c_in, c_out = lin.channels_in, lin.channels_out
        if w.numel() != c_in * c_out or b.numel() != c_out:
            raise CheckpointError(f"{source}: {name} has {w.numel()} weights and {b.numel()} "
                                  f"biases, the published output stack needs {c_in * c_out} "
                                  f"and {c_out} (Linear {c_in}x0e -> {c_out}x0e)")
        with torch.no_grad():
            lin.weight[0].copy_(w.detach().to(torch.float64).view(c_in, c_out).t()
                                / math.sqrt(c_in))
            lin.bias.copy_(b.detach().to(torch.float64).view(c_out, 1))
    return model.eval()


def import_ecnn4klm(checkpoint: Union[str, Path], lattice: str,
                    out: Union[str, Path]) -> Path:
    """Convert a published ``param.cpt`` into a package checkpoint.

    Args:
        checkpoint: the published file (``data/square/param.cpt`` or
            ``data/triangle/param.cpt`` of the paper's code).
        lattice: ``"square"`` or ``"triangular"``.
        out: the package checkpoint to write (atomically).

    Returns:
        ``out`` as a :class:`~pathlib.Path`; :func:`ecnn_pyg.pretrained.load_model`,
        ``ecnn-pyg evaluate --model`` and ``simulate`` read it.

    Raises:
        ValueError: if ``lattice`` is unknown.
        CheckpointError: if the file is not a readable published checkpoint
            (see :func:`read_ecnn4klm`) or its weights do not fit ``lattice``.
    """
    if lattice not in PROTOCOLS:
        raise ValueError(f"lattice must be one of {sorted(PROTOCOLS)}, got {lattice!r}")
    pub = read_ecnn4klm(checkpoint)
    model = ecnn4klm_model(pub["state"], lattice, source=str(checkpoint))
    data = copy.deepcopy(PROTOCOLS[lattice])
    data["source"] = f"published ecnn4klm checkpoint {Path(checkpoint).name}"
    return save_checkpoint(out, {
        "model_type": "ecnn", "model_config": model.config, "model_state": model.state_dict(),
        "dtype": "float32", "data": data, "epoch": pub["epoch"],
        "metrics": {"published_train_loss": pub["loss"]} if pub["loss"] is not None else {},
        "imported_from": str(checkpoint)})

"""A bigger ECNN that starts as a trained one: more channels or one more block, same function.

Used to ask whether the triangular model is short of capacity (README, triangular
section): fine-tune the grown model and compare its training error with the original's.

* ``--channels C``: every hidden degree gets C channels. The old weights are kept (times
  sqrt(C / C_old), which undoes the convolution's 1/sqrt(C_in) fan-in normalization); the
  weights from new channels into old ones are zero, so the old channels compute what they
  did; the weights into new channels are drawn at random times ``--scale``.
* ``--add-block``: one more interaction block (with skip) after the last one, its weights
  drawn at random times ``--scale`` and its biases those of the last block, so that it
  starts close to the identity.

The script prints how far the grown model's energy and field are from the original's on a
random configuration (zero up to rounding for ``--channels``, of order ``--scale`` for
``--add-block``).

    python experiments/triangular_accuracy/grow_model.py runs/triangular_stage9.pt \\
        runs/triangular_stage9_c16.pt --channels 16
    ecnn-pyg train --config experiments/triangular_accuracy/07_train_capacity.yaml \\
        --set init_from=runs/triangular_stage9_c16.pt run_dir=runs/triangular_24_capacity_c16
"""
from __future__ import annotations

import argparse
import math

import torch

from ecnn_pyg import keys as K
from ecnn_pyg.checkpoint import load_checkpoint, save_checkpoint
from ecnn_pyg.models import build_model
from ecnn_pyg.pretrained import load_model
from ecnn_pyg.graph import lattice_graph
from ecnn_pyg.testing import random_spins


def widen(state, config, channels: int, scale: float):
    """State dict and config of the model with ``channels`` hidden channels."""
    old_c = config["channels"]
    if channels < old_c:
        raise SystemExit(f"--channels {channels} is fewer than the model's {old_c}")
    config = dict(config, channels=channels)
    new = build_model("ecnn", config).state_dict()
    for key, w in state.items():
        if key.endswith("act.bias"):                         # (degrees, channels, 1)
            new[key] = torch.zeros_like(new[key])
            new[key][:, :old_c] = w
        elif ".conv.weight." in key:                         # (slots, C_in, paths * C_out)
            if not w.shape[-1]:
                continue                                     # no path to this degree
            c_out = config["output_channels"][0] if key.startswith("output.") else old_c
            c_out_new = c_out if key.startswith("output.") else channels
            paths = w.shape[-1] // c_out
            c_in, c_in_new = w.shape[1], new[key].shape[1]
            grown = new[key] * scale
            for p in range(paths):
                cols = slice(p * c_out_new, p * c_out_new + c_out)
                grown[:, :c_in, cols] = w[:, :, p * c_out:(p + 1) * c_out] * math.sqrt(
                    c_in_new / c_in)
                grown[:, c_in:, cols] = 0.0
            new[key] = grown
        else:
            new[key] = w
    return new, config


def add_block(state, config, scale: float):
    """State dict and config of the model with one more interaction block."""
    last = config["num_blocks"] - 1
    config = dict(config, num_blocks=config["num_blocks"] + 1)
    new = build_model("ecnn", config).state_dict()
    new.update(state)
    for key in new:
        if key.startswith(f"blocks.{last + 1}.conv."):
            new[key] = new[key] * scale
        elif key.startswith(f"blocks.{last + 1}.act."):
            new[key] = state[key.replace(f"blocks.{last + 1}.", f"blocks.{last}.")].clone()
    return new, config


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", help="trained ECNN checkpoint")
    p.add_argument("dst", help="where to write the grown model (a checkpoint for init_from)")
    p.add_argument("--channels", type=int, default=None)
    p.add_argument("--add-block", action="store_true")
    p.add_argument("--scale", type=float, default=None,
                   help="scale of the new random weights (default 0.3 for channels, 0.01 for "
                        "a block)")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    if (a.channels is None) == (not a.add_block):
        raise SystemExit("give one of --channels C or --add-block")
    ck = load_checkpoint(a.src)
    if ck["model_type"] != "ecnn":
        raise SystemExit(f"{a.src} holds a {ck['model_type']} model, not an ECNN")
    torch.manual_seed(a.seed)
    if a.channels is not None:
        state, config = widen(ck["model_state"], ck["model_config"], a.channels,
                              0.3 if a.scale is None else a.scale)
    else:
        state, config = add_block(ck["model_state"], ck["model_config"],
                                  0.01 if a.scale is None else a.scale)
    save_checkpoint(a.dst, {"model_type": "ecnn", "model_config": config, "model_state": state,
                            "dtype": ck.get("dtype", "float32")})
    before, after = load_model(a.src).double(), load_model(a.dst).double()
    if not config.get("lattice"):
        print(f"{a.dst}: written; a model of a custom graph is not compared (no built-in lattice)")
        return
    graph = lattice_graph(config["lattice"], 12, keep_zero=True)   # every bond type it knows
    spins = random_spins(graph.num_nodes, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    o1, o2 = before(graph, spins), after(graph, spins)
    d_e = float((o1[K.ENERGY] - o2[K.ENERGY]).detach().abs()) / graph.num_nodes
    d_b = float((o1[K.FIELD] - o2[K.FIELD]).detach().pow(2).mean().sqrt())
    print(f"{a.dst}: {sum(v.numel() for v in state.values())} parameters; on a random 12 x 12 "
          f"configuration |dE|/N = {d_e:.2e}, RMS dB = {d_b:.2e} "
          f"(RMS B {float(o1[K.FIELD].detach().pow(2).mean().sqrt()):.4f})")


if __name__ == "__main__":
    main()

"""The 96 x 96 starting states of the sweeps 47-50_sweep_96_*.yaml, from 12 x 12 crystals.

* n_sk = 2: the exact minimum at H_z = 0.002 of the "n_sk=2 crystal" start of
  exact_crystals.py (its --out .npz);
* n_sk = 1: the exact minimum at H_z = 0.005 of its "model sweep_tripleq" start;
* n_sk = 0: the stage-7 model's minimum at H_z = 0.008 from the n_sk = 2 crystal
  (model_crystals.py --save-states), the n_sk = 0 state of lowest
  exact energy found;
* n_sk = 0 (model): the shipped (stage-11) model's own minimum at H_z = 0.0075, the
  n_sk = 0 state of lowest *learned* energy found there, relaxed from the exact minimum
  from random starts #24 (model_crystals.py --model
  runs/triangular_stage11.pt --fields 0.0065 0.007 0.0075 0.008 --starts "n_sk=2 crystal"
  "model sweep_biskx" --extra "data/triangular_12_random_minima_a.npy#24" --save-states
  data/triangular_12_stage11_states.npy; state #8). For the stage-9 model it was state #6
  of data/triangular_12_stage9_states.npy, relaxed from the n_sk = 2 crystal.

Each is tiled 8 x 8 times (the crystals are 12-periodic) and written as an (N, 3) .npy.

    python experiments/triangular_fig4/sweep_starts.py
"""
from __future__ import annotations

import argparse

import numpy as np
from scratch_starts import tile


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--crystals", default="runs/triangular/exact_crystals.npz")
    p.add_argument("--model-states", default="data/triangular_12_active4_states.npy")
    p.add_argument("--nsk0-model", default="data/triangular_12_stage11_states.npy#8",
                   help="FILE.npy#INDEX of the model's own n_sk = 0 minimum")
    p.add_argument("--out", default="data/triangular_96_start_{}.npy")
    a = p.parse_args(argv)
    r = np.load(a.crystals)
    names = [str(x) for x in r["names"]]
    fields = [round(float(h), 6) for h in r["fields"]]

    def exact(h, name):
        return r[f"spins_{fields.index(h)}"][names.index(name)]
    starts = {"biskx": exact(0.002, "n_sk=2 crystal"), "tripleq": exact(0.005, "model sweep_tripleq")}
    ms = np.load(a.model_states)
    starts["nsk0"] = ms.reshape(len(fields), -1, 144, 3)[fields.index(0.008), 2]
    path, _, idx = a.nsk0_model.rpartition("#")
    starts["nsk0_model"] = np.load(path)[int(idx)]
    for name, s in starts.items():
        np.save(a.out.format(name), tile(s, 12, 96))
        print(a.out.format(name))


if __name__ == "__main__":
    main()

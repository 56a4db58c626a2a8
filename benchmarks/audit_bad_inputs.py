"""Audit: bad inputs and faults on every command, classified by what a user sees.

Each case runs one ``ecnn-pyg`` command in a fresh folder (tiny lattices, so ED is
instant) on a setting that cannot be meant or a file that is damaged, and is classified:

* ``clear``     -- refused with a one-line error (non-zero exit, no traceback);
* ``warned``    -- ran, with a warning that names the problem (cases where the input is
                   legal but suspicious, e.g. a time step far beyond the suggested one);
* ``traceback`` -- ended in a Python traceback;
* ``silent``    -- exit 0 without a word;
* ``lost``      -- a file that existed before the command changed or disappeared.

Every case names the class it must reach; the script prints the table by command and
class, lists every case that missed, and exits 1 if any did. Run:

    python benchmarks/audit_bad_inputs.py            # all cases (~5 min on one core)
    python benchmarks/audit_bad_inputs.py -k simulate --verbose

It is not part of the test run (each case starts a Python process); the tests that pin
each behaviour are in tests/test_input_validation.py, tests/test_faults.py,
tests/test_train_validation.py and their neighbours.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
TINY = {"lattice": "square", "size": [4, 4], "hoppings": {"t1": 1.0}, "J": 3.0,
        "electrons": 10}
GEN = {**TINY, "seed": 1, "splits": {"train": 4, "val": 2}, "output": "d.h5"}
FILE = {**GEN, "sampler": "file", "splits": {"train": 1}}
SIM = {**TINY, "source": "ed", "integrator": "sib", "dt": 0.2, "alpha": 0.5,
       "temperature": 0.0, "zeeman": 0.0, "n_steps": 4, "save_every": 2, "seed": 3,
       "output": "s.h5", "plot": False}
TRAIN = {"model": "ecnn", "model_config": {"lattice": "square", "channels": 4, "lmax": 1,
                                           "num_blocks": 2},
         "data": "d.h5", "run_dir": "run", "seed": 0, "batch_size": 2, "max_epochs": 1,
         "lr": 0.01, "progress": False, "plot_every": 0}


def _cfg(name, base, **kw):
    """A setup step writing config ``name`` = ``base`` updated with ``kw``."""
    def write(d: Path):
        cfg = {**base}
        for k, v in kw.items():
            if v is DROP:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        (d / name).write_text(yaml.safe_dump(cfg))
    return write


DROP = object()


def _npy(name, array):
    return lambda d: np.save(d / name, np.asarray(array))


def _bytes(name, data: bytes):
    return lambda d: (d / name).write_bytes(data)


def _unit(n, seed=0):
    s = np.random.default_rng(seed).normal(size=(n, 3))
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


def _truncate(name, keep=0.5):
    def cut(d: Path):
        p = d / name
        data = p.read_bytes()
        p.write_bytes(data[:int(len(data) * keep)])
    return cut


def _nan_checkpoint(d: Path):
    import torch
    ck = torch.load(d / "run" / "best.pt", weights_only=False)
    state = ck["model_state"] if "model_state" in ck else ck["model"]
    for k, v in state.items():
        if torch.is_floating_point(v):
            v.fill_(float("nan"))
            break
    torch.save(ck, d / "nan.pt")


def _prepare_shared(root: Path) -> None:
    """A tiny data set and a one-epoch model every train/evaluate case starts from."""
    _cfg("gen.yaml", GEN)(root)
    _run(["generate", "--quiet", "--config", "gen.yaml"], root)
    _cfg("train.yaml", TRAIN)(root)
    _run(["train", "--quiet", "--config", "train.yaml"], root)
    if not (root / "run" / "best.pt").exists():
        raise SystemExit("could not prepare the tiny data set and model")


def _run(args, cwd: Path, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    t = time.time()
    p = subprocess.run([sys.executable, "-m", "ecnn_pyg.cli", *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.time() - t


# (command, case, expected class, setup steps, arguments)
G, S, T, E, D, L = "generate", "simulate", "train", "evaluate", "ed", "learn"
LEARN = str(HERE.parent / "configs" / "triangular_learn.yaml")


def _learn(*sets):
    return ["--config", LEARN, "--set", "run_dir=r", *sets]

C = "clear"
CASES = [
    # generate
    (G, "config file missing", C, [], ["--config", "nope.yaml"]),
    (G, "config not a mapping", C, [_bytes("c.yaml", b"- 1\n- 2\n")], ["--config", "c.yaml"]),
    (G, "config not YAML", C, [_bytes("c.yaml", b"a: [1, 2\n")], ["--config", "c.yaml"]),
    (G, "unknown key", C, [_cfg("c.yaml", GEN, n_sampels=3)], ["--config", "c.yaml"]),
    (G, "unknown lattice", C, [_cfg("c.yaml", GEN, lattice="banana")], ["--config", "c.yaml"]),
    (G, "size [4, 4.5]", C, [_cfg("c.yaml", GEN, size=[4, 4.5])], ["--config", "c.yaml"]),
    (G, "size [0, 4]", C, [_cfg("c.yaml", GEN, size=[0, 4])], ["--config", "c.yaml"]),
    (G, "size -3", C, [_cfg("c.yaml", GEN, size=-3)], ["--config", "c.yaml"]),
    (G, "size 100000", C, [_cfg("c.yaml", GEN, size=[100000, 100000])],
     ["--config", "c.yaml"]),
    (G, "electrons: true", C, [_cfg("c.yaml", GEN, electrons=True)], ["--config", "c.yaml"]),
    (G, "electrons beyond 2N", C, [_cfg("c.yaml", GEN, electrons=40)], ["--config", "c.yaml"]),
    (G, "electrons -2", C, [_cfg("c.yaml", GEN, electrons=-2)], ["--config", "c.yaml"]),
    (G, "filling 1.5", C, [_cfg("c.yaml", GEN, electrons=DROP, filling=1.5)],
     ["--config", "c.yaml"]),
    (G, "two of electrons/filling/mu", C, [_cfg("c.yaml", GEN, mu=0.0)],
     ["--config", "c.yaml"]),
    (G, "mu NaN", C, [_cfg("c.yaml", GEN, electrons=DROP, mu=float("nan"))],
     ["--config", "c.yaml"]),
    (G, "J a string", C, [_cfg("c.yaml", GEN, J="strong")], ["--config", "c.yaml"]),
    (G, "J NaN", C, [_cfg("c.yaml", GEN, J=float("nan"))], ["--config", "c.yaml"]),
    (G, "negative electron temperature", C, [_cfg("c.yaml", GEN, temperature=-0.1)],
     ["--config", "c.yaml"]),
    (G, "negative split", C, [_cfg("c.yaml", GEN, splits={"train": -4})],
     ["--config", "c.yaml"]),
    (G, "unknown hopping shell", C, [_cfg("c.yaml", GEN, hoppings={"t9": 1.0})],
     ["--config", "c.yaml"]),
    (G, "unknown sampler", C, [_cfg("c.yaml", GEN, sampler="banana")], ["--config", "c.yaml"]),
    (G, "twists 0", C, [_cfg("c.yaml", GEN, twists=0)], ["--config", "c.yaml"]),
    (G, "seed a string", C, [_cfg("c.yaml", GEN, seed="x")], ["--config", "c.yaml"]),
    (G, "threads -1", C, [_cfg("c.yaml", GEN)], ["--config", "c.yaml", "--threads", "-1"]),
    (G, "--set without =", C, [_cfg("c.yaml", GEN)], ["--config", "c.yaml", "--set", "seed"]),
    (G, "spins_from missing", C, [_cfg("c.yaml", FILE, spins_from="none.npy")],
     ["--config", "c.yaml"]),
    (G, "spins_from wrong shape", C, [_npy("s.npy", _unit(15)[None]),
                                      _cfg("c.yaml", FILE, spins_from="s.npy")],
     ["--config", "c.yaml"]),
    (G, "spins_from NaN", C, [_npy("s.npy", np.full((2, 16, 3), np.nan)),
                              _cfg("c.yaml", FILE, spins_from="s.npy")], ["--config", "c.yaml"]),
    (G, "spins_from |S| = 5", C, [_npy("s.npy", 5 * _unit(16)[None]),
                                  _cfg("c.yaml", FILE, spins_from="s.npy")],
     ["--config", "c.yaml"]),
    (G, "spins_from empty", C, [_npy("s.npy", np.zeros((0, 16, 3))),
                                _cfg("c.yaml", FILE, spins_from="s.npy")], ["--config", "c.yaml"]),
    (G, "spins_from complex", C, [_npy("s.npy", _unit(16)[None] * (1 + 1j)),
                                  _cfg("c.yaml", FILE, spins_from="s.npy")],
     ["--config", "c.yaml"]),
    (G, "spins_from garbage file", C, [_bytes("s.npy", b"\x00garbage" * 50),
                                       _cfg("c.yaml", FILE, spins_from="s.npy")],
     ["--config", "c.yaml"]),
    (G, "spins_from, sampler uniform", C, [_npy("s.npy", _unit(16)[None]),
                                           _cfg("c.yaml", GEN, spins_from="s.npy")],
     ["--config", "c.yaml"]),
    (G, "output folder is a file", C, [_bytes("ro", b"x"), _cfg("c.yaml", GEN, output="ro/d.h5")],
     ["--config", "c.yaml"]),
    (G, "existing output, other settings", C, ["shared:d.h5", _cfg("c.yaml", GEN, J=5.0)],
     ["--config", "c.yaml"]),
    (G, "existing output truncated", C, ["shared:d.h5", _truncate("d.h5"),
                                         _cfg("c.yaml", GEN)], ["--config", "c.yaml"]),
    (G, "existing output not HDF5", C, [_bytes("d.h5", b"not hdf5" * 100),
                                        _cfg("c.yaml", GEN)], ["--config", "c.yaml"]),
    # simulate
    (S, "dt -0.1", C, [_cfg("c.yaml", SIM, dt=-0.1)], ["--config", "c.yaml"]),
    (S, "dt 0", C, [_cfg("c.yaml", SIM, dt=0)], ["--config", "c.yaml"]),
    (S, "dt 1e6", "warned", [_cfg("c.yaml", SIM, dt=1e6)], ["--config", "c.yaml"]),
    (S, "temperature -1", C, [_cfg("c.yaml", SIM, temperature=-1)], ["--config", "c.yaml"]),
    (S, "temperature NaN", C, [_cfg("c.yaml", SIM, temperature=float("nan"))],
     ["--config", "c.yaml"]),
    (S, "alpha -1", C, [_cfg("c.yaml", SIM, alpha=-1)], ["--config", "c.yaml"]),
    (S, "n_steps -5", C, [_cfg("c.yaml", SIM, n_steps=-5)], ["--config", "c.yaml"]),
    (S, "n_steps 2.5", C, [_cfg("c.yaml", SIM, n_steps=2.5)], ["--config", "c.yaml"]),
    (S, "save_every 0", C, [_cfg("c.yaml", SIM, save_every=0)], ["--config", "c.yaml"]),
    (S, "zeeman NaN", C, [_cfg("c.yaml", SIM, zeeman=float("nan"))], ["--config", "c.yaml"]),
    (S, "unknown source", C, [_cfg("c.yaml", SIM, source="banana")], ["--config", "c.yaml"]),
    (S, "unknown integrator", C, [_cfg("c.yaml", SIM, integrator="banana")],
     ["--config", "c.yaml"]),
    (S, "unknown initial state", C, [_cfg("c.yaml", SIM, initial="banana")],
     ["--config", "c.yaml"]),
    (S, "initial .npy wrong shape", C, [_npy("i.npy", _unit(15)),
                                        _cfg("c.yaml", SIM, initial="i.npy")],
     ["--config", "c.yaml"]),
    (S, "initial .npy NaN", C, [_npy("i.npy", np.full((16, 3), np.nan)),
                                _cfg("c.yaml", SIM, initial="i.npy")], ["--config", "c.yaml"]),
    (S, "initial .npy zero spins", C, [_npy("i.npy", np.zeros((16, 3))),
                                       _cfg("c.yaml", SIM, initial="i.npy")],
     ["--config", "c.yaml"]),
    (S, "sites_per_magnetic_cell 0", C, [_cfg("c.yaml", SIM, sites_per_magnetic_cell=0)],
     ["--config", "c.yaml"]),
    (S, "model file missing", C, [_cfg("c.yaml", SIM, source="model", model="none.pt")],
     ["--config", "c.yaml"]),
    (S, "model file garbage", C, [_bytes("m.pt", b"garbage" * 100),
                                  _cfg("c.yaml", SIM, source="model", model="m.pt")],
     ["--config", "c.yaml"]),
    (S, "model of another lattice", C,
     [_cfg("c.yaml", {**SIM, "lattice": "triangular", "hoppings": {"t1": 1.0}}, source="model",
           model="square-paper")], ["--config", "c.yaml"]),
    (S, "model, other Hamiltonian", C,
     [_cfg("c.yaml", {**SIM, "hoppings": {"t1": 1.0, "t2": 0.3}}, source="model",
           model="square-paper")], ["--config", "c.yaml"]),
    (S, "device banana", C, [_cfg("c.yaml", SIM, device="banana")], ["--config", "c.yaml"]),
    (S, "device cuda without CUDA", C, [_cfg("c.yaml", SIM, device="cuda")],
     ["--config", "c.yaml"]),
    (S, "output folder is a file", C, [_bytes("ro", b"x"), _cfg("c.yaml", SIM, output="ro/s.h5")],
     ["--config", "c.yaml"]),
    (S, "existing output not HDF5", C, [_bytes("s.h5", b"not hdf5" * 100),
                                        _cfg("c.yaml", SIM)], ["--config", "c.yaml"]),
    (S, "size [4, 4.5]", C, [_cfg("c.yaml", SIM, size=[4, 4.5])], ["--config", "c.yaml"]),
    # train
    (T, "data file missing", C, [_cfg("c.yaml", TRAIN, data="none.h5")], ["--config", "c.yaml"]),
    (T, "data file garbage", C, [_bytes("g.h5", b"garbage" * 100),
                                 _cfg("c.yaml", TRAIN, data="g.h5")], ["--config", "c.yaml"]),
    (T, "data file truncated", C, ["shared:d.h5", _truncate("d.h5"), _cfg("c.yaml", TRAIN)],
     ["--config", "c.yaml"]),
    (T, "lr -1", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, lr=-1)], ["--config", "c.yaml"]),
    (T, "lr 1e6", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, lr=1e6, max_epochs=3)],
     ["--config", "c.yaml"]),
    (T, "energy_weight NaN", C, ["shared:d.h5", _cfg("c.yaml", TRAIN,
                                                     energy_weight=float("nan"))],
     ["--config", "c.yaml"]),
    (T, "energy_weight -5", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, energy_weight=-5)],
     ["--config", "c.yaml"]),
    (T, "grad_clip -1", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, grad_clip=-1)],
     ["--config", "c.yaml"]),
    (T, "max_train_samples -2", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, max_train_samples=-2)],
     ["--config", "c.yaml"]),
    (T, "max_epochs -3", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, max_epochs=-3)],
     ["--config", "c.yaml"]),
    (T, "batch_size 0", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, batch_size=0)],
     ["--config", "c.yaml"]),
    (T, "channels 0", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, model_config={
        **TRAIN["model_config"], "channels": 0})], ["--config", "c.yaml"]),
    (T, "dtype float16", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, dtype="float16")],
     ["--config", "c.yaml"]),
    (T, "dtype banana", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, dtype="banana")],
     ["--config", "c.yaml"]),
    (T, "unknown optimizer", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, optimizer="banana")],
     ["--config", "c.yaml"]),
    (T, "model for another lattice", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, model_config={
        **TRAIN["model_config"], "lattice": "triangular"})], ["--config", "c.yaml"]),
    (T, "resume with garbage last.pt", C, ["shared:d.h5", "shared:run",
                                           _bytes("run/last.pt", b"garbage" * 100),
                                           _cfg("c.yaml", TRAIN)],
     ["--config", "c.yaml", "--resume"]),
    (T, "resume without a run", C, ["shared:d.h5", _cfg("c.yaml", TRAIN, run_dir="none")],
     ["--config", "c.yaml", "--resume"]),
    (T, "run_dir's folder is a file", C, ["shared:d.h5", _bytes("ro", b"x"),
                                 _cfg("c.yaml", TRAIN, run_dir="ro/run")],
     ["--config", "c.yaml"]),
    # evaluate
    (E, "spins wrong shape", C, ["shared:run", _npy("s.npy", _unit(15))],
     ["--model", "run/best.pt", "--spins", "s.npy", "--out", "o.npz"]),
    (E, "spins NaN", C, ["shared:run", _npy("s.npy", np.full((16, 3), np.nan))],
     ["--model", "run/best.pt", "--spins", "s.npy", "--out", "o.npz"]),
    (E, "spins |S| = 5", C, ["shared:run", _npy("s.npy", 5 * _unit(16))],
     ["--model", "run/best.pt", "--spins", "s.npy", "--out", "o.npz"]),
    (E, "16 x 16 spins guessed as 16 configs", C, ["shared:run", _npy("s.npy", _unit(256))],
     ["--model", "run/best.pt", "--spins", "s.npy", "--out", "o.npz"]),
    (E, "--batch-size -1", C, ["shared:run", "shared:d.h5"],
     ["--model", "run/best.pt", "--data", "d.h5", "--batch-size", "-1", "--plot", "p.png"]),
    (E, "model with NaN weights", C, ["shared:run", "shared:d.h5", _nan_checkpoint],
     ["--model", "nan.pt", "--data", "d.h5", "--plot", "p.png"]),
    (E, "checkpoint garbage", C, [_bytes("m.pt", b"garbage" * 100), "shared:d.h5"],
     ["--model", "m.pt", "--data", "d.h5", "--plot", "p.png"]),
    (E, "checkpoint truncated", C, ["shared:run", _truncate("run/best.pt"), "shared:d.h5"],
     ["--model", "run/best.pt", "--data", "d.h5", "--plot", "p.png"]),
    (E, "unknown model name", C, ["shared:d.h5"],
     ["--model", "banana-paper", "--data", "d.h5", "--plot", "p.png"]),
    (E, "existing --out kept", C, ["shared:run", _npy("s.npy", _unit(16)),
                                   _bytes("o.npz", b"keep me")],
     ["--model", "run/best.pt", "--spins", "s.npy", "--out", "o.npz"]),
    (E, "--out folder is a file", C, ["shared:run", _npy("s.npy", _unit(16)), _bytes("ro", b"x")],
     ["--model", "run/best.pt", "--spins", "s.npy", "--out", "ro/o.npz"]),
    (E, "data of another lattice", C, [_cfg("g3.yaml", {**GEN, "lattice": "triangular",
                                                          "output": "t.h5"}),
                                       lambda d: _run(["generate", "--quiet", "--config",
                                                       "g3.yaml"], d), "shared:run"],
     ["--model", "run/best.pt", "--data", "t.h5", "--plot", "p.png"]),
    # ed
    (D, "size 400 400", C, [_npy("s.npy", _unit(16))],
     ["--size", "400", "400", "--J", "3", "--electrons", "10", "--spins", "s.npy", "--out",
      "o.npz"]),
    (D, "spins wrong length", C, [_npy("s.npy", _unit(15))],
     ["--size", "4", "4", "--J", "3", "--electrons", "10", "--spins", "s.npy", "--out",
      "o.npz"]),
    (D, "spins NaN", C, [_npy("s.npy", np.full((16, 3), np.nan))],
     ["--size", "4", "4", "--J", "3", "--electrons", "10", "--spins", "s.npy", "--out",
      "o.npz"]),
    (D, "electrons beyond 2N", C, [_npy("s.npy", _unit(16))],
     ["--size", "4", "4", "--J", "3", "--electrons", "40", "--spins", "s.npy", "--out",
      "o.npz"]),
    (D, "negative temperature", C, [_npy("s.npy", _unit(16))],
     ["--size", "4", "4", "--J", "3", "--electrons", "10", "--temperature", "-1", "--spins",
      "s.npy", "--out", "o.npz"]),
    (D, "unknown lattice", C, [_npy("s.npy", _unit(16))],
     ["--lattice", "banana", "--size", "4", "4", "--J", "3", "--electrons", "10", "--spins",
      "s.npy", "--out", "o.npz"]),
    (D, "lattice file with bonds: 5", C, [_npy("s.npy", _unit(16)), _bytes(
        "lat.yaml", b"name: x\nvectors: [[1, 0], [0, 1]]\nbasis: [[0, 0]]\nbonds: 5\n")],
     ["--lattice", "lat.yaml", "--size", "4", "4", "--J", "3", "--electrons", "10", "--spins",
      "s.npy", "--out", "o.npz"]),
    # learn (the example config with one key changed; nothing may be written)
    (L, "upper level below lower", C, [], _learn("select.lower=0.01", "select.upper=0.001")),
    (L, "committee of one", C, [], _learn("committee.members=1")),
    (L, "unknown start", C, [], _learn("explore.starts=[random, banana]")),
    (L, "max_per_round 0", C, [], _learn("select.max_per_round=0")),
    (L, "unknown statistic", C, [], _learn("select.statistic=median")),
    (L, "no Hamiltonian (J null)", C, [], _learn("J=null")),
    (L, "negative exploration temperature", C, [], _learn("explore.temperatures=[-0.1]")),
    (L, "validation file missing", C, [], _learn("validation=[none.h5]")),
    (L, "accurate_share 1.5", C, [], _learn("stop.accurate_share=1.5")),
    (D, "existing --out kept", C, [_npy("s.npy", _unit(16)), _bytes("o.npz", b"keep me")],
     ["--size", "4", "4", "--J", "3", "--electrons", "10", "--spins", "s.npy", "--out",
      "o.npz"]),
]


def _digest(folder: Path) -> dict:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def classify(rc: int, out: str, err: str, before: dict, after: dict) -> str:
    """The class of one outcome (see the module docstring)."""
    if any(after.get(k) != v for k, v in before.items()):
        return "lost"
    if "Traceback (most recent call last)" in err and not err.rstrip().endswith(
            "KeyboardInterrupt"):
        return "traceback"
    if rc != 0:
        return "clear"
    if "Warning" in err or "warning" in err.lower():
        return "warned"
    return "silent"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", default="", help="only cases whose command or name contains this")
    ap.add_argument("--verbose", action="store_true", help="print each case's last error line")
    args = ap.parse_args(argv)
    cases = [c for c in CASES if args.k in f"{c[0]} {c[1]}"]
    with tempfile.TemporaryDirectory() as tmp:
        shared = Path(tmp) / "shared"
        shared.mkdir()
        if any(isinstance(s, str) for c in cases for s in c[3]) or \
                any(c[0] in (T, E) for c in cases):
            _prepare_shared(shared)
        rows, table = [], defaultdict(Counter)
        for i, (cmd, name, expected, setup, cli) in enumerate(cases):
            d = Path(tmp) / f"case{i:03d}"
            d.mkdir()
            for step in setup:
                if isinstance(step, str):        # "shared:NAME": a copy of the shared file
                    src = shared / step.split(":", 1)[1]
                    subprocess.run(["cp", "-r", str(src), str(d / src.name)], check=True)
                else:
                    step(d)
            before = _digest(d)
            rc, out, err, secs = _run([cmd, *cli], d)
            got = classify(rc, out, err, before, _digest(d))
            table[cmd][got] += 1
            last = (err.strip().splitlines() or [""])[-1][:110]
            rows.append((cmd, name, expected, got, rc, last))
            mark = "" if got == expected else "   <-- expected " + expected
            print(f"{cmd:9s} {name:36s} {got:9s} rc={rc:<4d} {secs:5.1f}s{mark}", flush=True)
            if args.verbose or got != expected:
                print(f"          {last}", flush=True)
    classes = ["clear", "warned", "traceback", "silent", "lost"]
    print("\n| command | cases | " + " | ".join(classes) + " |")
    print("|---|---|" + "---|" * len(classes))
    for cmd in (G, S, T, E, D, L):
        if table[cmd]:
            print(f"| {cmd} | {sum(table[cmd].values())} | "
                  + " | ".join(str(table[cmd][c]) for c in classes) + " |")
    total = Counter()
    for c in table.values():
        total.update(c)
    print(f"| all | {sum(total.values())} | " + " | ".join(str(total[c]) for c in classes)
          + " |")
    missed = [r for r in rows if r[2] != r[3]]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} cases as expected")
    for r in missed:
        print(f"  MISSED {r[0]} / {r[1]}: {r[3]} (expected {r[2]}), rc {r[4]}: {r[5]}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Time of a data-parallel training epoch on 1, 2, ... ranks (gloo, one thread per rank).

Generates a small exact data set (12 x 12 square, J = 7, 24 training + 8
validation samples; seconds), then trains the paper's square ECNN (channels
8, lmax 2, 4 blocks, float32, batch 4, rotations) for --epochs epochs on each
number of ranks, the ranks started as torchrun would (local processes,
:func:`ecnn_pyg.distributed.testing.run_ranks`). Reports per rank count the
median wall time of a training epoch (``train_epoch``: the optimizer steps;
rank 0's clock) and of the validation, and the CPU time of rank 0's epoch,
with the final training loss (equal across rank counts to float rounding).

    python benchmarks/bench_distributed_train.py               # 1 and 2 ranks
    python benchmarks/bench_distributed_train.py --ranks 1 2 4 --epochs 5
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def _epochs(cfg, epochs):
    import torch
    from ecnn_pyg.training import Trainer
    torch.set_num_threads(1)
    tr = Trainer(cfg)
    rows = []
    for epoch in range(1, epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        m = tr.train_epoch(epoch)
        t1, c1 = time.perf_counter(), time.process_time()
        tr.validate()
        rows.append((t1 - t0, c1 - c0, time.perf_counter() - t1, m["loss"]))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ecnn_pyg.distributed.testing import run_ranks
    from ecnn_pyg.generate import generate
    tmp = Path(tempfile.mkdtemp(prefix="bench_ddp_"))
    data = generate({"output": str(tmp / "sq12.h5"), "lattice": "square", "size": [12, 12],
                     "hoppings": {"t1": 1.0}, "J": 7.0, "electrons": 138, "seed": 3,
                     "splits": {"train": 24, "val": 8}}, progress=False)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("ranks  train epoch (s)  CPU rank 0 (s)  validation (s)  speed-up  final loss")
    base = None
    for n in args.ranks:
        cfg = {"data": str(data), "run_dir": str(tmp / f"run{n}"), "batch_size": 4,
               "dtype": "float32", "optimizer": "adam", "lr": 0.03, "augment": True,
               "progress": False, "plot_every": 0, "val_batch_size": 8,
               "model_config": {"lattice": "square", "weight_sharing": "type", "channels": 8,
                                "lmax": 2, "num_blocks": 4}}
        if n == 1:
            rows = _epochs(cfg, args.epochs)
        else:
            rows = run_ranks(n, _epochs, cfg, args.epochs, timeout=3600,
                             collective_timeout=600)[0]
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        val = statistics.median(r[2] for r in rows)
        base = base or wall
        print(f"{n:5d}  {wall:15.2f}  {cpu:14.2f}  {val:14.2f}  {base / wall:8.2f}  "
              f"{rows[-1][3]:.6g}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

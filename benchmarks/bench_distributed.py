"""Beyond one process: tiled E + B, and one LLG step with the lattice split over ranks.

Two tables, every case in its own processes (the peak resident memory,
``ru_maxrss``, belongs to that case alone), the default triangular ECNN
(float32, t1 = 1, t3 = -0.85) as in ``bench_model.py``:

* ``tiled``: E + B of one configuration, untiled at ``--ref`` (576 x 576) and
  tile by tile within ``--budget`` (6 GB) at ``--size`` (1152 x 1152): time
  per call (best of ``--repeat`` after a first call), time per site, tiles,
  peak RSS;
* ``llg``: one SIB step (two field evaluations) of ``--sizes`` (576, 1152) on
  ``--ranks`` (1, 2) ranks with one thread each (gloo on CPU; ``--device cuda``
  and NCCL on GPUs), the halo's share of the evaluated sites, and the bytes one
  rank sends per step (two halo exchanges of two strips). A rank whose slab
  plus halo exceeds ``--budget`` evaluates it tile by tile. ``CPU s/rank``
  is the process time of the step on the busiest rank: its own work,
  independent of other jobs on a shared machine (wall times are not). The ranks are
  started as ``torchrun`` starts them (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
  ``MASTER_PORT``).

    python benchmarks/bench_distributed.py tiled
    python benchmarks/bench_distributed.py llg --sizes 576 1152 --ranks 1 2
    python benchmarks/bench_distributed.py llg --sizes 96 --ranks 1 2 --steps 2   # quick
    python benchmarks/bench_distributed.py simulate --sizes 384 --ranks 1 2 3

* ``simulate``: the whole command ``ecnn-pyg simulate`` (``parallel: domain``,
  one SIB step with a snapshot before and after it: the time-step check, two
  field evaluations and the observables of two snapshots) on each rank count,
  with the peak resident memory of every rank: what a rank holds of the
  lattice (its graph, spins, buffers) besides its slab's evaluation.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time

HOP = {"t1": 1.0, "t3": -0.85}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(threads: int):
    import torch
    from ecnn_pyg.runtime import keep_freed_memory
    keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from ecnn_pyg.nn import ECNN
    return torch, ECNN(lattice="triangular").eval()


def tiled_worker(L: int, budget, repeat: int, threads: int, device: str) -> dict:
    torch, model = _setup(threads)
    import ecnn_pyg
    from ecnn_pyg.distributed.tiling import TiledEvaluator, sites_for_memory
    model = model.to(device)
    graph = ecnn_pyg.lattice_graph("triangular", L, HOP)
    spins = torch.nn.functional.normalize(torch.randn(graph.num_nodes, 3), dim=1).to(device)
    max_sites = sites_for_memory(budget, model) if budget else None
    ev = TiledEvaluator(model, graph, max_sites=max_sites)
    rss0 = _peak_mb()
    times = []
    for _ in range(1 + repeat):
        t = time.perf_counter()
        out = ev(spins)
        float(out["energy"])
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        del out
    best = min(times[1:]) if repeat else times[0]
    return {"L": L, "N": graph.num_nodes, "budget": budget, "tiles": ev.num_tiles,
            "sites_per_tile": ev.sites_per_tile, "first_s": times[0], "best_s": best,
            "us_per_site": best / graph.num_nodes * 1e6, "peak_mb": _peak_mb(),
            "peak_before_mb": rss0,
            "gpu_peak_mb": (torch.cuda.max_memory_allocated() / 2 ** 20
                            if device != "cpu" else None)}


def llg_worker(L: int, steps: int, budget, threads: int, device: str) -> dict:
    torch, model = _setup(threads)
    import ecnn_pyg
    from ecnn_pyg import distributed as dist
    from ecnn_pyg.distributed.llg import SlabDecomposition, _slice_noise
    from ecnn_pyg.distributed.tiling import sites_for_memory
    from ecnn_pyg.dynamics import SIB, SpinSystem, model_field_source
    dev = dist.local_device(device) if device != "cpu" else torch.device("cpu")
    dist.init(device=dev)
    model = model.to(dev)
    graph = ecnn_pyg.lattice_graph("triangular", L, HOP)
    gen = torch.Generator().manual_seed(1)
    spins = torch.nn.functional.normalize(torch.randn(graph.num_nodes, 3, generator=gen), dim=1)
    spins = spins.to(dev)
    max_sites = sites_for_memory(budget, model) if budget else None
    world, rank = dist.world_size(), dist.rank()
    integ = SIB(1.0, alpha=0.1, temperature=0.001, seed=2)
    if world == 1:
        source = model_field_source(model, graph, max_sites=max_sites
                                    if max_sites and max_sites < graph.num_nodes else None)
        own, evaluated, halo, sent = spins, graph.num_nodes, 0, 0
    else:
        slabs = SlabDecomposition(model, graph, rank, world)
        source = slabs.field_source(model, max_sites=max_sites if max_sites and max_sites <
                                    slabs.graph.num_nodes else None)
        own = spins[slabs.lo:slabs.hi].clone()
        _slice_noise(integ, tuple(spins.shape), slabs.lo, slabs.hi)
        evaluated, halo = slabs.graph.num_nodes, slabs.halo_sites()
        sent = 2 * halo * 3 * own.element_size()       # two exchanges per SIB step
    system = SpinSystem(source, zeeman=0.005)
    times, cpu = [], []
    for _ in range(steps):
        dist.barrier()
        t, c = time.perf_counter(), time.process_time()
        own = integ.step(own, system)
        if dev.type != "cpu":
            torch.cuda.synchronize()
        cpu.append(time.process_time() - c)     # this rank's own work, whatever the load
        dist.barrier()
        times.append(time.perf_counter() - t)
    res = {"L": L, "N": graph.num_nodes, "ranks": world, "rank": rank,
           "own_sites": int(own.shape[0]), "evaluated_sites": evaluated,
           "halo_share": halo / evaluated if evaluated else 0.0,
           "bytes_sent_per_step": sent, "first_s": times[0],
           "best_s": min(times[1:]) if len(times) > 1 else times[0],
           "cpu_s": min(cpu[1:]) if len(cpu) > 1 else cpu[0], "peak_mb": _peak_mb()}
    out = dist.all_gather_object(res)
    dist.shutdown()
    return out if rank == 0 else None


def simulate_worker(L: int, budget, threads: int, device: str, model_path: str,
                    out_dir: str) -> dict:
    import torch
    from ecnn_pyg.runtime import keep_freed_memory
    keep_freed_memory()
    torch.set_num_threads(threads)
    from ecnn_pyg import distributed as dist
    from ecnn_pyg.simulate import simulate
    cfg = {"output": os.path.join(out_dir, f"sim_{L}.h5"), "lattice": "triangular", "size": [L, L],
           "hoppings": HOP, "source": "model", "model": model_path, "integrator": "sib",
           "dt": 0.5, "alpha": 0.1, "temperature": 0.001, "zeeman": 0.005, "n_steps": 1,
           "save_every": 1, "seed": 1, "dtype": "float32", "device": device,
           "parallel": "domain", "memory_budget": budget, "ignore_memory_check": True}
    with dist.session(device=device):
        rank, world = dist.rank(), dist.world_size()
        t, c = time.perf_counter(), time.process_time()
        simulate(cfg, progress=False)
        torch.cuda.synchronize() if device != "cpu" else None
        res = {"L": L, "N": L * L, "ranks": world, "rank": rank,
               "wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
               "peak_mb": _peak_mb()}
        out = dist.all_gather_object(res)
    return out if rank == 0 else None


def _model_file(out_dir: str) -> str:
    """The default triangular ECNN (seed 0) as a checkpoint for ``simulate``."""
    import torch
    from ecnn_pyg.checkpoint import save_checkpoint
    from ecnn_pyg.nn import ECNN
    torch.manual_seed(0)
    m = ECNN(lattice="triangular").eval()
    path = os.path.join(out_dir, "model.pt")
    save_checkpoint(path, {"model_type": "ecnn", "model_config": dict(m.config),
                           "model_state": m.state_dict(), "dtype": "float32",
                           "data": {"lattice": "triangular", "hoppings": HOP}})
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args_list, ranks: int, threads: int):
    """Start ``ranks`` copies of this script as torchrun would; rank 0's JSON line."""
    port = _free_port()
    procs = []
    for r in range(ranks):
        env = {**os.environ, "RANK": str(r), "WORLD_SIZE": str(ranks), "LOCAL_RANK": str(r),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": str(threads), "ECNN_PYG_DIST_TIMEOUT": "1800"}
        if ranks == 1:
            for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
                env.pop(k)
        procs.append(subprocess.Popen([sys.executable, __file__, *args_list], env=env,
                                      stdout=subprocess.PIPE, text=True))
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a rank failed: exit codes {[p.returncode for p in procs]}")
    return json.loads(outs[0].strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["tiled", "llg", "simulate", "_tiled", "_llg", "_simulate"])
    p.add_argument("--size", type=int, default=1152, help="tiled: the large lattice")
    p.add_argument("--ref", type=int, default=576, help="tiled: the untiled reference")
    p.add_argument("--budget", default="6GB", help="memory budget per process (tiles)")
    p.add_argument("--sizes", type=int, nargs="+", default=[576, 1152], help="llg: lattices")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="llg: rank counts")
    p.add_argument("--steps", type=int, default=2, help="llg: steps (best after the first)")
    p.add_argument("--repeat", type=int, default=1, help="tiled: calls after the first")
    p.add_argument("--threads", type=int, default=1, help="threads per process")
    p.add_argument("--device", default="cpu")
    p.add_argument("--L", type=int, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    budget = None if a.budget in ("none", "0", "None") else a.budget
    if a.mode == "_tiled":
        print(json.dumps(tiled_worker(a.L, budget, a.repeat, a.threads, a.device)))
        return
    if a.mode == "_llg":
        print(json.dumps(llg_worker(a.L, a.steps, budget, a.threads, a.device)))
        return
    if a.mode == "_simulate":
        print(json.dumps(simulate_worker(a.L, budget, a.threads, a.device, a.model, a.out)))
        return
    common = ["--threads", str(a.threads), "--device", a.device]
    if a.mode == "simulate":
        import tempfile
        print(f"ecnn-pyg simulate (parallel: domain), one SIB step and two snapshots, default "
              f"triangular ECNN, float32, {a.threads} thread(s) per rank, {a.device}, budget "
              f"{budget} per rank")
        print(f"{'L':>6} {'N':>9} {'ranks':>5} {'wall s':>8} {'CPU s/rank':>10} "
              f"{'peak RSS MB per rank (rank 0, 1, ...)':>40}")
        for L in a.sizes:
            for n in a.ranks:
                with tempfile.TemporaryDirectory() as tmp:
                    rows = _launch(["_simulate", "--L", str(L), "--budget", str(budget),
                                    "--model", _model_file(tmp), "--out", tmp] + common,
                                   n, a.threads)
                peaks = ", ".join(f"{x['peak_mb']:.0f}" for x in rows)
                print(f"{L:>6} {L * L:>9} {n:>5} {max(x['wall_s'] for x in rows):>8.2f} "
                      f"{max(x['cpu_s'] for x in rows):>10.2f} {peaks:>40}", flush=True)
        return
    if a.mode == "tiled":
        rows = [_launch(["_tiled", "--L", str(a.ref), "--budget", "none",
                         "--repeat", str(a.repeat)] + common, 1, a.threads),
                _launch(["_tiled", "--L", str(a.size), "--budget", str(budget),
                         "--repeat", str(a.repeat)] + common, 1, a.threads)]
        print(f"ECNN (default architecture, float32, {a.threads} thread(s), {a.device}): "
              "E + B of one triangular configuration")
        print(f"{'L':>6} {'N':>9} {'budget':>7} {'tiles':>5} {'sites/tile':>10} {'first s':>8} "
              f"{'best s':>8} {'us/site':>8} {'peak RSS MB':>11}")
        for r in rows:
            print(f"{r['L']:>6} {r['N']:>9} {str(r['budget']):>7} {r['tiles']:>5} "
                  f"{r['sites_per_tile']:>10} {r['first_s']:>8.2f} {r['best_s']:>8.2f} "
                  f"{r['us_per_site']:>8.2f} {r['peak_mb']:>11.0f}")
        print(f"per-site time, tiled {a.size} / untiled {a.ref}: "
              f"{rows[1]['us_per_site'] / rows[0]['us_per_site']:.2f}")
        return
    print(f"one SIB step (2 field evaluations), default triangular ECNN, float32, "
          f"{a.threads} thread(s) per rank, {a.device}, budget {budget} per rank")
    print(f"{'L':>6} {'N':>9} {'ranks':>5} {'own sites':>9} {'evaluated':>9} {'halo %':>6} "
          f"{'MB sent/step/rank':>17} {'first s':>8} {'best s':>8} {'CPU s/rank':>10} "
          f"{'peak RSS MB/rank':>16}")
    for L in a.sizes:
        for n in a.ranks:
            rows = _launch(["_llg", "--L", str(L), "--steps", str(a.steps), "--budget",
                            str(budget)] + common, n, a.threads)
            r = max(rows, key=lambda x: x["best_s"])           # the slowest rank sets the pace
            print(f"{L:>6} {r['N']:>9} {n:>5} {r['own_sites']:>9} {r['evaluated_sites']:>9} "
                  f"{100 * r['halo_share']:>6.1f} {r['bytes_sent_per_step'] / 2 ** 20:>17.2f} "
                  f"{r['first_s']:>8.2f} {r['best_s']:>8.2f} "
                  f"{max(x['cpu_s'] for x in rows):>10.2f} "
                  f"{max(x['peak_mb'] for x in rows):>16.0f}", flush=True)


if __name__ == "__main__":
    main()

"""Data-parallel training on several ranks (DDP, gloo) against the single-process run.

The ranks are local processes with torchrun's environment
(:func:`ecnn_pyg.distributed.testing.run_ranks`), each running the trainer as
under ``torchrun --nproc-per-node N -m ecnn_pyg.cli train``. Batches of 4 of
the 6 training samples: on 2 ranks shares of 2 + 2 and 1 + 1, on 3 ranks
2 + 1 + 1 and 1 + 1 + 0 (a rank without a sample in a step).
"""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ecnn_pyg.checkpoint import load_checkpoint
from ecnn_pyg.distributed.testing import free_port, run_ranks
from ecnn_pyg.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"channels": 2, "num_blocks": 1, "lmax": 1}


def _cfg(data, run_dir, **kw):
    # field-only loss (the energy offset gets no gradient), Adam with weight decay, rotations
    cfg = {"data": str(data), "run_dir": str(run_dir), "max_epochs": 2, "batch_size": 4,
           "optimizer": "adam", "lr": 0.01, "weight_decay": 0.01, "augment": True,
           "scheduler": "plateau", "lr_patience": 0, "progress": False, "plot_every": 0,
           "dtype": "float64", "model_config": dict(TINY)}
    cfg.update(kw)
    return cfg


def _log(run_dir):
    return list(csv.DictReader(open(Path(run_dir) / "log.csv")))


def _assert_same_state(a, b, rtol, atol):
    sa, sb = load_checkpoint(a)["model_state"], load_checkpoint(b)["model_state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_allclose(sa[k].double().numpy(), sb[k].double().numpy(),
                                   rtol=rtol, atol=atol, err_msg=k)


def _assert_same_log(a, b, rtol):
    ra, rb = _log(a), _log(b)
    assert [r["epoch"] for r in ra] == [r["epoch"] for r in rb]
    for x, y in zip(ra, rb):
        for key in ("lr", "train_loss", "train_rmse_field", "val_loss", "val_rmse_field",
                    "val_rmse_energy_per_site"):
            np.testing.assert_allclose(float(x[key]), float(y[key]), rtol=rtol, err_msg=key)


def _train_both(cfg64, cfg32):
    train(cfg64)
    train(cfg32)
    return "done"


def _resume_cli(run_dir):
    from ecnn_pyg.cli import main
    return main(["train", "--resume", "--quiet", "--set", f"run_dir={run_dir}",
                 "max_epochs=4"])


def test_ddp_steps_equal_one_process_and_resume_under_another_world_size(square_data,
                                                                         tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    train(_cfg(square_data, one))
    train(_cfg(square_data, tmp_path / "one32", dtype="float32"))
    shutil.copytree(one, tmp_path / "one_e2")
    train(None, {"run_dir": str(one), "max_epochs": 4}, resume=True)
    # 2 ranks, 2 epochs (4 Adam steps) in float64 and float32
    assert run_ranks(2, _train_both, _cfg(square_data, two),
                     _cfg(square_data, tmp_path / "two32", dtype="float32")) == ["done"] * 2
    _assert_same_state(tmp_path / "one_e2" / "last.pt", two / "last.pt", 1e-10, 1e-12)
    _assert_same_log(tmp_path / "one_e2", two, 1e-9)
    _assert_same_state(tmp_path / "one32" / "last.pt", tmp_path / "two32" / "last.pt",
                       1e-4, 1e-6)
    # rank 0 alone wrote: one log row per epoch, the files of one run
    assert len(_log(two)) == 2
    assert sorted(p.name for p in two.iterdir()) == ["best.pt", "config.yaml", "last.pt",
                                                     "log.csv"]
    # resumed on 3 ranks (one idles in the last step of each epoch) to epoch 4
    assert run_ranks(3, _resume_cli, str(two)) == [0, 0, 0]
    _assert_same_state(one / "last.pt", two / "last.pt", 1e-10, 1e-12)
    _assert_same_log(one, two, 1e-9)
    ck = load_checkpoint(two / "last.pt")
    assert ck["epoch"] == 4 and ck["best"]["epoch"] == load_checkpoint(one / "last.pt")["best"]["epoch"]


def test_shards_make_the_global_batch():
    from ecnn_pyg.distributed.train import DataParallel
    idx, rot = torch.tensor([5, 2, 7, 0, 3]), torch.tensor([1, 0, 3, 2, 1])
    dp = DataParallel(torch.nn.Linear(1, 1))          # one process: the batch as it is
    assert dp.shard(idx, rot) == (idx, rot, 1.0, True)
    got, weights = [], []
    for world in (2, 3, 7):
        dp.world = world
        shares = []
        for rank in range(world):
            dp.rank = rank
            i, r, w, real = dp.shard(idx, rot)
            if real:
                shares.append((i, r))
                weights.append(w * len(idx) / world)
            else:                                    # a rank without a sample: weight 0
                assert w == 0.0 and len(i) == 1
        i = torch.cat([s[0] for s in shares])
        r = torch.cat([s[1] for s in shares])
        assert sorted(i.tolist()) == sorted(idx.tolist())
        assert dict(zip(i.tolist(), r.tolist())) == dict(zip(idx.tolist(), rot.tolist()))
        got.append(sum(w for w in weights))
        weights.clear()
    assert got == [5.0, 5.0, 5.0]     # the weights sum to the global mean


def _rank_1_dies_in_epoch_2(config_path):
    import os
    from ecnn_pyg.cli import main
    from ecnn_pyg.distributed import rank
    from ecnn_pyg.training import Trainer
    if rank() == 1:
        epoch_of = Trainer.train_epoch

        def dying(self, epoch):
            if epoch == 2:
                os._exit(7)                  # as a killed process: no clean-up, no message
            return epoch_of(self, epoch)
        Trainer.train_epoch = dying
    return main(["train", "--config", config_path, "--quiet"])


def test_a_dead_rank_stops_the_others_with_an_error(square_data, tmp_path, capfd):
    import yaml
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(_cfg(square_data, tmp_path / "r", max_epochs=3)))
    res = run_ranks(2, _rank_1_dies_in_epoch_2, str(config), expect_failure=True,
                    timeout=120, collective_timeout=20)
    assert "exited with code 7" in res[1]
    assert res[0] == 1                       # the CLI's error status, not a hang
    err = capfd.readouterr().err
    assert "rank 0 of 2" in err and "another rank has probably stopped" in err
    assert load_checkpoint(tmp_path / "r" / "last.pt")["epoch"] == 1     # resumable


@pytest.mark.slow
def test_torchrun_runs_the_command_line(square_data, tmp_path):
    # the launcher itself, with the console script (torchrun --no-python ecnn-pyg ...)
    import os
    import subprocess
    import sys
    import yaml
    bindir = Path(sys.executable).parent
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(_cfg(square_data, tmp_path / "two")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ECNN_PYG_DIST_TIMEOUT": "60"}
    proc = subprocess.run([str(bindir / "torchrun"), "--nproc-per-node", "2",
                           "--master-port", str(free_port()),
                           "--no-python", str(bindir / "ecnn-pyg"), "train", "--config",
                           str(config), "--quiet"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("stopped after epoch 2") == 1          # rank 0 alone prints
    train(_cfg(square_data, tmp_path / "one"))
    _assert_same_state(tmp_path / "one" / "last.pt", tmp_path / "two" / "last.pt", 1e-10, 1e-12)


def _collectives(data, tmp):
    from ecnn_pyg.distributed import rank
    from ecnn_pyg.distributed.train import DataParallel
    from ecnn_pyg.metrics import ErrorAccumulator
    from ecnn_pyg.training import Trainer
    dp = DataParallel(torch.nn.Linear(1, 1))
    acc = ErrorAccumulator()
    acc.sq_b, acc.n_b, acc.loss, acc.n_loss = 1.0 + rank(), 3, 2.0 * rank(), 1
    metrics = dp.reduce_metrics(acc)
    # a rank that reads other data (here: fewer samples) is refused on every rank
    try:
        Trainer(_cfg(data, tmp / f"r{rank()}", max_train_samples=6 - rank()))
        refused = ""
    except ValueError as err:
        refused = str(err)
    return dp.agree(rank()), metrics, refused


def test_ranks_agree_on_decisions_metrics_and_data(square_data, tmp_path):
    res = run_ranks(2, _collectives, square_data, tmp_path)
    assert [r[0] for r in res] == [0, 0]                     # rank 0's clock decides
    assert res[0][1] == res[1][1]
    assert res[0][1]["rmse_field"] == pytest.approx((3.0 / 6) ** 0.5)     # sums over ranks
    assert res[0][1]["loss"] == pytest.approx(1.0)
    for _, _, refused in res:
        assert "different runs" in refused and "rank 0 [(6, 3)], rank 1 [(5, 3)]" in refused


def test_ddp_weighted_loss_equals_one_process(square_data, tmp_path):
    """weight_by_energy under DDP: each rank weighs its share of a batch (and of the
    validation samples) as one process weighs the whole; the same steps, the same log."""
    kw = dict(energy_weight=3.0, weight_by_energy=0.01)
    train(_cfg(square_data, tmp_path / "one", **kw))
    assert run_ranks(2, train, _cfg(square_data, tmp_path / "two", **kw)) is not None
    _assert_same_state(tmp_path / "one" / "last.pt", tmp_path / "two" / "last.pt", 1e-10, 1e-12)
    _assert_same_log(tmp_path / "one", tmp_path / "two", 1e-9)
    # and the weights changed the steps: the unweighted run differs
    train(_cfg(square_data, tmp_path / "plain", energy_weight=3.0))
    assert _log(tmp_path / "plain")[-1]["train_loss"] != _log(tmp_path / "one")[-1]["train_loss"]

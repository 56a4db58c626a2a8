"""Energy-based sample weights (training key ``weight_by_energy``): the weighted loss in closed
form, the weights of every sample, the validation loss that selects the best epoch, bad values."""
import csv

import numpy as np
import pytest
import torch

from ecnn_pyg import keys as K
from ecnn_pyg.config import ConfigError
from ecnn_pyg.pretrained import load_model
from ecnn_pyg.training import Trainer, train
from ecnn_pyg.training.trainer import zeeman_hull
from ecnn_pyg.training.evaluate import evaluate_arrays
from ecnn_pyg.training.loss import field_energy_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(data, run_dir, **kw):
    return {"data": str(data), "run_dir": str(run_dir), "max_epochs": 2, "batch_size": 2,
            "optimizer": "adam", "lr": 0.01, "progress": False, "plot_every": 0,
            "energy_weight": 5.0, "model_config": {"channels": 2, "num_blocks": 1, "lmax": 1},
            **kw}


def test_weighted_loss_closed_form():
    g = torch.Generator().manual_seed(0)
    fp, f = torch.randn(3, 4, 3, generator=g), torch.randn(3, 4, 3, generator=g)
    ep, e = torch.randn(3, generator=g), torch.randn(3, generator=g)
    per = ((fp - f) ** 2).mean(dim=(1, 2)) + 7.0 * ((ep - e) / 4.0) ** 2
    w = torch.tensor([0.5, 2.0, 0.0])
    got = field_energy_loss(fp.reshape(-1, 3), f.reshape(-1, 3), ep, e, 4.0, 7.0, weights=w)
    assert float(got) == pytest.approx(float((w * per).mean()), rel=1e-6)
    # unit weights: the unweighted loss; a zero weight drops a sample's errors
    ones = field_energy_loss(fp, f, ep, e, 4.0, 7.0, weights=torch.ones(3))
    assert float(ones) == pytest.approx(float(field_energy_loss(fp, f, ep, e, 4.0, 7.0)), rel=1e-6)
    assert float(field_energy_loss(fp[:2], f[:2], ep[:2], e[:2], 4.0, 7.0)) == pytest.approx(
        float(field_energy_loss(fp, f, ep, e, 4.0, 7.0, weights=torch.tensor([1.5, 1.5, 0.0]))),
        rel=1e-6)


def test_weights_of_every_sample(square_data, tmp_path):
    d = 0.01
    tr = Trainer(_cfg(square_data, tmp_path / "r", weight_by_energy=d))
    (part,) = tr.parts
    e_tr = part.train[K.ENERGY].double() / part.n_sites
    e_va = part.val[K.ENERGY].double() / part.n_sites
    raw = lambda e: (d / (e - e_tr.min() + d)) ** 2
    norm = raw(e_tr).mean()
    assert torch.allclose(part.train_weight.double(), raw(e_tr) / norm, rtol=1e-5)
    assert torch.allclose(part.val_weight.double(), raw(e_va) / norm, rtol=1e-5)
    assert float(part.train_weight.double().mean()) == pytest.approx(1.0, rel=1e-5)
    assert int(part.train_weight.argmax()) == int(e_tr.argmin())
    # the energies of this set spread over more than d: the weights are far from uniform
    assert float(part.train_weight.max() / part.train_weight.min()) > 1.5
    assert Trainer(_cfg(square_data, tmp_path / "u")).parts[0].train_weight is None


def test_validation_loss_is_the_weighted_one(square_data, tmp_path):
    rd = tmp_path / "r"
    train(_cfg(square_data, rd, weight_by_energy=0.01))
    rows = list(csv.DictReader(open(rd / "log.csv")))
    tr = Trainer(_cfg(square_data, tmp_path / "x", weight_by_energy=0.01))
    (part,) = tr.parts
    model = load_model(rd / "last.pt")
    args = (model, part.graph, part.val[K.SPIN], part.val[K.FIELD], part.val[K.ENERGY])
    kw = dict(batch_size=16, energy_weight=5.0)
    weighted = evaluate_arrays(*args, weights=part.val_weight, **kw)["metrics"]
    plain = evaluate_arrays(*args, **kw)["metrics"]
    assert float(rows[-1]["val_loss"]) == pytest.approx(weighted["loss"], rel=1e-4)
    assert abs(plain["loss"] - weighted["loss"]) > 1e-3 * plain["loss"]
    # the RMSEs stay unweighted
    assert float(rows[-1]["val_rmse_field"]) == pytest.approx(plain["rmse_field"], rel=1e-4)


def test_zeeman_hull_is_the_best_label_at_the_most_favourable_field():
    # closed form: the lowest label at m = 0.1, the hull through (0.3, -0.9) and (0.5, -0.6)
    m = torch.tensor([0.1, 0.3, 0.5, 0.3, 0.05, 0.3])
    e = torch.tensor([-1.0, -0.9, -0.6, -0.5, -0.8, -0.9])
    ref = zeeman_hull(m, e)
    q = torch.tensor([0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7])
    want = [-1.0, -1.0, -1.0, -0.95, -0.9, -0.75, -0.6, -0.6]
    np.testing.assert_allclose(ref(q).numpy(), want, atol=1e-12)
    # Legendre: e - e_ref(m) = min over h >= 0 of (e - h m) - min_j (e_j - h m_j), for
    # random labels; a convex piecewise-linear function of h, its minimum lies at h = 0 or
    # where two labels tie (a slope between two of them), so those fields are all the search
    rng = np.random.default_rng(3)
    m = rng.uniform(0.0, 0.5, 40)
    e = -0.28 + 0.004 * (m - 0.2) ** 2 + rng.uniform(0.0, 2e-4, 40)
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = ((e[:, None] - e[None, :]) / (m[:, None] - m[None, :])).ravel()
    h = np.concatenate([[0.0], slopes[np.isfinite(slopes) & (slopes > 0)]])
    best = (e[None, :] - h[:, None] * m[None, :]).min(axis=1)
    brute = ((e[None, :] - h[:, None] * m[None, :]) - best[:, None]).min(axis=0)
    above = e - zeeman_hull(torch.from_numpy(m), torch.from_numpy(e))(torch.from_numpy(m)).numpy()
    np.testing.assert_allclose(above, brute, atol=1e-12)
    assert (above >= -1e-15).all() and (above < 1e-15).sum() >= 3


def test_weights_above_the_zeeman_hull(square_data, tmp_path):
    """``weight_by_energy_above: zeeman_hull``: a label that is the best at some field weighs
    as the lowest one; every weight is the formula's with the hull's reference."""
    d = 0.002
    tr = Trainer(_cfg(square_data, tmp_path / "r", weight_by_energy=d,
                      weight_by_energy_above="zeeman_hull"))
    (part,) = tr.parts
    per = {s: getattr(part, s)[K.ENERGY].double() / part.n_sites for s in ("train", "val")}
    mag = {s: getattr(part, s)[K.SPIN].double().mean(dim=1).norm(dim=-1)
           for s in ("train", "val")}
    ref = zeeman_hull(mag["train"], per["train"])
    raw = {s: (d / (per[s] - ref(mag[s]) + d).clamp_min(d)) ** 2 for s in per}
    norm = raw["train"].mean()
    assert torch.allclose(part.train_weight.double(), raw["train"] / norm, rtol=1e-5)
    assert torch.allclose(part.val_weight.double(), raw["val"] / norm, rtol=1e-5)
    top = part.train_weight.double().max()
    on_hull = (per["train"] - ref(mag["train"])).abs() < 1e-12
    assert on_hull.sum() >= 2 and torch.allclose(part.train_weight.double()[on_hull], top)
    lowest = Trainer(_cfg(square_data, tmp_path / "l", weight_by_energy=d)).parts[0]
    assert not torch.allclose(lowest.train_weight, part.train_weight)
    with pytest.raises(ConfigError, match="weight_by_energy_above.*zeeman_hull"):
        Trainer(_cfg(square_data, tmp_path / "b", weight_by_energy=d,
                     weight_by_energy_above="hull"))
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("value", [0.0, -0.01, float("nan")])
def test_bad_weight_by_energy(square_data, tmp_path, value):
    with pytest.raises(ConfigError, match="weight_by_energy.*> 0"):
        Trainer(_cfg(square_data, tmp_path / "r", weight_by_energy=value))
    assert not (tmp_path / "r").exists()


def test_best_on_train_picks_the_lowest_training_loss(square_data, tmp_path):
    """best_on: train: best.pt is the epoch of the lowest running training loss, whatever the
    validation loss says; the validation metrics are still logged."""
    rd = tmp_path / "r"
    kw = dict(max_epochs=6, lr=0.5, weight_by_energy=0.01)
    train(_cfg(square_data, rd, best_on="train", **kw))
    rows = list(csv.DictReader(open(rd / "log.csv")))
    by_train = 1 + int(np.argmin([float(r["train_loss"]) for r in rows]))
    by_val = 1 + int(np.argmin([float(r["val_loss"]) for r in rows]))
    assert by_train != by_val                       # (this run tells the two apart)
    assert torch.load(rd / "best.pt", weights_only=False)["epoch"] == by_train
    train(_cfg(square_data, tmp_path / "v", **kw))  # the default: the validation loss
    assert torch.load(tmp_path / "v" / "best.pt", weights_only=False)["epoch"] == by_val
    assert all(float(r["val_loss"]) > 0 for r in rows)
    with pytest.raises(ConfigError, match="best_on.*'val'.*'train'"):
        Trainer(_cfg(square_data, tmp_path / "x", best_on="validation"))


def test_data_weights_count_a_file_as_if_listed_that_many_times(square_data, square_data_other,
                                                                 tmp_path):
    """data_weights {file: w}: the weighted loss of every split is the plain loss of the data
    with that file listed w times; combined with weight_by_energy by multiplication."""
    model = load_model(train(_cfg(square_data, tmp_path / "m", max_epochs=1)) / "last.pt")
    kw = dict(batch_size=16, energy_weight=5.0)

    def losses(trainer, weighted):
        out = []
        for split in ("train", "val"):
            part, = trainer.parts
            arr = getattr(part, split)
            w = getattr(part, f"{split}_weight") if weighted else None
            out.append(evaluate_arrays(model, part.graph, arr[K.SPIN], arr[K.FIELD],
                                       arr[K.ENERGY], weights=w, **kw)["metrics"]["loss"])
        return out

    def _cfg2(data, run_dir, **kw):
        return {**_cfg(square_data, run_dir, **kw), "data": data}

    data = [str(square_data), str(square_data_other)]
    by_name = Trainer(_cfg2(data, tmp_path / "a", data_weights={"other.h5": 3}))
    by_path = Trainer(_cfg2(data, tmp_path / "b",
                           data_weights={str(square_data_other): 3}))
    listed = Trainer(_cfg2(data + [str(square_data_other)] * 2, tmp_path / "c"))
    part, = by_name.parts
    assert part.train_source.tolist() == [0] * 6 + [1] * 4
    assert part.val_source.tolist() == [0] * 3 + [1] * 2
    assert float(part.train_weight.double().mean()) == pytest.approx(1.0, rel=1e-6)
    assert torch.allclose(part.train_weight[6:], 3 * part.train_weight[:1].expand(4))
    assert torch.equal(part.train_weight, by_path.parts[0].train_weight)
    # the validation samples take the training split's divisor: the loss over all
    # samples is a mean over the file listed three times
    want_train, want_val = losses(listed, weighted=False)
    got_train, got_val = losses(by_name, weighted=True)
    n_val, n_val_listed = 5, 3 + 3 * 2
    norm = (6 + 3 * 4) / 10                          # the training weights' mean
    assert got_train == pytest.approx(want_train, rel=1e-5)
    assert got_val * n_val * norm / n_val_listed == pytest.approx(want_val, rel=1e-5)
    assert abs(got_train - losses(Trainer(_cfg2(data, tmp_path / "d")),
                                  weighted=False)[0]) > 1e-3 * got_train
    # with weight_by_energy: the product, normed over the training split
    both = Trainer(_cfg2(data, tmp_path / "e", data_weights={"other.h5": 3},
                        weight_by_energy=0.01)).parts[0]
    energy = Trainer(_cfg2(data, tmp_path / "f", weight_by_energy=0.01)).parts[0]
    raw = energy.train_weight.double() * torch.tensor([1.0] * 6 + [3.0] * 4, dtype=torch.float64)
    assert torch.allclose(both.train_weight.double(), raw / raw.mean(), rtol=1e-5)


@pytest.mark.parametrize("weights, match", [
    ({"missing.h5": 2.0}, "names 'missing.h5', which is no file of 'data'"),
    ({"other.h5": 0.0}, "finite weight > 0, got 0.0 for 'other.h5'"),
    ({"other.h5": float("nan")}, "finite weight > 0"),
    ({"other.h5": "2"}, "finite weight > 0"),
])
def test_bad_data_weights(square_data, square_data_other, tmp_path, weights, match):
    data = [str(square_data), str(square_data_other)]
    cfg = {**_cfg(square_data, tmp_path / "r", data_weights=weights), "data": data}
    with pytest.raises(ConfigError, match=match):
        Trainer(cfg)
    assert not (tmp_path / "r").exists()

"""The error accumulator: RMSEs and the mean energy error over batches."""
import pytest
import torch

from ecnn_pyg.metrics import ErrorAccumulator


def test_energy_bias_is_the_mean_error_per_site_over_batches():
    g = torch.Generator().manual_seed(0)
    acc, errors = ErrorAccumulator(), []
    assert acc.energy_bias_per_site() != acc.energy_bias_per_site()      # nan before any data
    for n_graphs, n in ((3, 16), (2, 36)):
        spin = torch.nn.functional.normalize(torch.randn(n_graphs * n, 3, generator=g), dim=1)
        field = torch.randn(n_graphs * n, 3, generator=g)
        energy = torch.randn(n_graphs, generator=g, dtype=torch.float64) * n
        err = 1e-4 + 3e-5 * torch.randn(n_graphs, generator=g, dtype=torch.float64)
        acc.update(field, field, spin, energy + err * n, energy, torch.full((n_graphs,), n))
        errors.append(err)
    err = torch.cat(errors)
    m = acc.compute()
    assert acc.energy_bias_per_site() == pytest.approx(float(err.mean()), rel=1e-9)
    # RMSE^2 = bias^2 + variance of the error about it
    assert m["rmse_energy_per_site"] ** 2 == pytest.approx(
        float(err.mean()) ** 2 + float(err.var(unbiased=False)), rel=1e-9)
    assert m["rmse_field"] == 0.0

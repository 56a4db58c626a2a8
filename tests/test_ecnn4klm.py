"""Import of the paper's published models (ecnn_pyg.ecnn4klm, ``ecnn-pyg import-ecnn4klm``).

The paper's network is written here with e3nn modules, as the paper's code
builds it: a grid of spins ``(batch, L1, L2, 3)`` with periodic padding,
integral-normalized spherical harmonics, ``o3.TensorProduct`` of the
slot-concatenated features with the central spin's harmonics ``l = 0, 1``,
e3nn ``NormActivation(SiLU, bias=False)``, the residual inside the activation
and the e3nn ``Linear`` output stack. It is given random weights, saved in the
published format (``{"epoch", "model_state_dict", "opt_state_dict", "loss"}``),
imported, and compared with the package's model.
"""
import copy
from pathlib import Path

import e3nn.nn
import numpy as np
import pytest
import torch
from e3nn import o3

import ecnn_pyg
from ecnn_pyg import keys as K
from ecnn_pyg.checkpoint import CheckpointError
from ecnn_pyg.ecnn4klm import PROTOCOLS, ecnn4klm_model, import_ecnn4klm, read_ecnn4klm
from ecnn_pyg.pretrained import load_model

REPO = Path(__file__).resolve().parents[1]
#: the published checkpoints, where the repository's checkout has them beside it
PUBLISHED = REPO.parent / "shared" / "reference" / "ecnn4klm"
HOP = {"square": {"t1": 1.0}, "triangular": {"t1": 1.0, "t3": -0.85}}
_HEX = [(1, 1), (1, 0), (0, -1), (-1, -1), (-1, 0), (0, 1)]
#: slot offsets of the published code: square = the site, 4 more copies of it, 4 nearest
#: neighbours; triangular = the site, 6 nearest, 6 third neighbours
OFFSETS = {"square": [(0, 0)] * 5 + [(-1, 0), (1, 0), (0, -1), (0, 1)],
           "triangular": [(0, 0)] + [(k * a, k * b) for k in (1, 2) for a, b in _HEX]}
HIDDEN = "8x0e+8x1e+8x2e"


class _Conv(torch.nn.Module):
    """The published convolution: slot-concatenated features x Y_{0,1}(S_r), all 'uvw' paths."""

    def __init__(self, irreps_in, irreps_out, offsets):
        super().__init__()
        self.offsets = offsets
        cat = o3.Irreps(irreps_in) * len(offsets)
        filt, out = o3.Irreps("1x0e+1x1e"), o3.Irreps(irreps_out)
        ins = [(i, j, k, "uvw", True) for i, (_, a) in enumerate(cat)
               for j, (_, b) in enumerate(filt) for k, (_, c) in enumerate(out) if c in a * b]
        # e3nn's defaults; _optimize_einsums=False only skips the slow search for a faster
        # contraction order when the module is built (same function, 5x faster to build)
        self.tp = o3.TensorProduct(cat, filt, out, ins, _optimize_einsums=False)

    def forward(self, f, y):
        # slot k holds the features of the site at grid offset d: f[i + d] = roll(f, -d)[i]
        parts = [torch.roll(f, shifts=(-d1, -d2), dims=(1, 2)) for d1, d2 in self.offsets]
        return self.tp(torch.cat(parts, -1), y)


class _Act(torch.nn.Module):
    def __init__(self, irreps):
        super().__init__()
        self.nact = e3nn.nn.NormActivation(irreps, torch.nn.SiLU(), bias=False)

    def forward(self, x):
        return self.nact(x)


class _Lin(torch.nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.selfinteract = o3.Linear(a, b, biases=True)

    def forward(self, x):
        return self.selfinteract(x)


class PaperNet(torch.nn.Module):
    """The published network (module names as in its state dict)."""

    def __init__(self, lattice):
        super().__init__()
        off = OFFSETS[lattice]
        self.conv1 = _Conv("1x0e+1x1e+1x2e", HIDDEN, off)
        for n in (2, 3, 4):
            setattr(self, f"conv{n}", _Conv(HIDDEN, HIDDEN, off))
        for n in (1, 2, 3, 4):
            setattr(self, f"act{n}", _Act(HIDDEN))
        self.convout = _Conv(HIDDEN, "8x0e", off)
        self.selfintout1, self.actout1 = _Lin("8x0e", "4x0e"), _Act("4x0e")
        self.selfintout2, self.actout2 = _Lin("4x0e", "2x0e"), _Act("2x0e")
        self.selfintout3 = _Lin("2x0e", "1x0e")

    def forward(self, spins):
        """Total energies (batch,) of spin grids (batch, L1, L2, 3)."""
        Y = o3.spherical_harmonics([0, 1, 2], spins, normalize=False)    # integral
        y = o3.spherical_harmonics([0, 1], spins, normalize=False)
        f = self.act1(self.conv1(Y, y))
        for n in (2, 3, 4):
            f = getattr(self, f"act{n}")(getattr(self, f"conv{n}")(f, y) + f)
        e = self.selfintout1(self.convout(f, y))
        e = self.selfintout2(self.actout1(e))
        e = self.selfintout3(self.actout2(e))
        return e.sum((1, 2, 3))


def energy_field(net, spins):
    """E (batch,) and B = -dE/dS (batch, L1, L2, 3) of the reference network."""
    s = spins.detach().requires_grad_(True)
    e = net(s)
    (g,) = torch.autograd.grad(e.sum(), s)
    return e.detach(), -g


def random_net(lattice, seed=0):
    torch.manual_seed(seed)
    net = PaperNet(lattice)
    with torch.no_grad():          # larger output biases than e3nn's zero init
        for n in (1, 2, 3):
            getattr(net, f"selfintout{n}").selfinteract.bias.normal_()
    return net


def save_published(net, path, epoch=17, loss=0.25):
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    torch.save({"epoch": epoch, "model_state_dict": net.state_dict(),
                "opt_state_dict": opt.state_dict(), "loss": loss}, path)
    return path


def weights_of(state):
    """The trained tensors of a published state dict (not e3nn's constant buffers)."""
    return {k: v for k, v in state.items() if k.endswith((".weight", ".bias"))}


def float64_pair(lattice, state):
    """Reference network built in float64 (e3nn's Wigner 3j constants in float64) and the
    package model made from the same float64 weights."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        net = PaperNet(lattice)
    finally:
        torch.set_default_dtype(default)
    w = {k: v.double() for k, v in weights_of(state).items()}
    missing, _ = net.load_state_dict(w, strict=False)
    assert not [k for k in missing if k.endswith((".weight", ".bias")) and
                net.state_dict()[k].numel()], missing
    return net, ecnn4klm_model(w, lattice, dtype=torch.float64)


def compare(net, model, lattice, L, dtype, seed=1, n=1):
    """Max |dE| / max|E| and max |dB| / max|B| on ``n`` random L x L configurations."""
    net, model = net.to(dtype), model.to(dtype)
    g = torch.Generator().manual_seed(seed)
    spins = torch.nn.functional.normalize(torch.randn(n, L, L, 3, generator=g, dtype=dtype), dim=-1)
    e_ref, b_ref = energy_field(net, spins)
    graph = ecnn_pyg.lattice_graph(lattice, L, HOP[lattice])
    e, b = [], []
    for s in spins:
        out = model(graph, s.reshape(-1, 3))
        e.append(out[K.ENERGY].detach())
        b.append(out[K.FIELD].detach().view(L, L, 3))
    e, b = torch.cat(e), torch.stack(b)
    return (float((e - e_ref).abs().max() / e_ref.abs().max()),
            float((b - b_ref).abs().max() / b_ref.abs().max()))


class Imported:
    """A random published network of one lattice: its file, the import, the float64 pair."""

    def __init__(self, lattice, folder):
        self.net = random_net(lattice)
        self.src = save_published(self.net, folder / f"{lattice}_param.cpt")
        self.path = import_ecnn4klm(self.src, lattice, folder / f"{lattice}.pt")
        self.net64, self.model64 = float64_pair(lattice, self.net.state_dict())


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """:class:`Imported` per lattice (random weights)."""
    d = tmp_path_factory.mktemp("ecnn4klm")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {lattice: Imported(lattice, d) for lattice in ("square", "triangular")}
    finally:
        torch.set_num_threads(n)


@pytest.mark.parametrize("lattice", ["square", "triangular"])
@pytest.mark.parametrize("L", [12, 30])
def test_imported_model_equals_published_network(imported, lattice, L, one_thread):
    ref = imported[lattice]
    model = load_model(ref.path)
    assert next(model.parameters()).dtype == torch.float32
    err_e, err_b = compare(ref.net, model, lattice, L, torch.float32, n=2 if L == 12 else 1)
    print(f"{lattice} {L}x{L} float32: rel. max error E {err_e:.1e}, B {err_b:.1e}")
    assert err_e < 1e-5 and err_b < 1e-5
    err_e, err_b = compare(ref.net64, ref.model64, lattice, L, torch.float64)
    print(f"{lattice} {L}x{L} float64: rel. max error E {err_e:.1e}, B {err_b:.1e}")
    assert err_e < 1e-12 and err_b < 1e-12


def test_imported_checkpoint_records_the_protocol(imported):
    from ecnn_pyg.checkpoint import load_checkpoint
    for lattice, ref in imported.items():
        ckpt = load_checkpoint(ref.path)
        assert ckpt["model_type"] == "ecnn" and ckpt["dtype"] == "float32"
        cfg = ckpt["model_config"]
        assert (cfg["neighborhood"], cfg["activation"], cfg["residual"],
                cfg["sh_normalization"]) == ("paper", "norm_nobias", "before_activation",
                                             "integral")
        data = ckpt["data"]
        assert data["lattice"] == lattice and data["hoppings"] == PROTOCOLS[lattice]["hoppings"]
        assert ckpt["epoch"] == 17
    sq = load_checkpoint(imported["square"].path)["data"]
    assert sq["size"] == [30, 30] and sq["model"]["J"] == 7.0 and sq["model"]["electrons"] == 864
    tri = load_checkpoint(imported["triangular"].path)["data"]
    assert tri["hoppings"]["t3"] == -0.85 and tri["model"]["J"] == -1.0
    assert tri["model"]["mu"] == -3.5 and tri["model"]["electrons"] is None


def test_a_wrong_mapping_is_caught(imported, one_thread):
    """Negative control: swapping two neighbour slots' weights changes the function."""
    ref = imported["square"]
    model = copy.deepcopy(ref.model64)
    w = model.blocks[1].conv.weight[1]
    with torch.no_grad():
        w[[5, 6]] = w[[6, 5]].clone()
    err_e, err_b = compare(ref.net64, model, "square", 12, torch.float64)
    print(f"slots 5 and 6 swapped: rel. max error E {err_e:.1e}, B {err_b:.1e}")
    assert err_b > 1e-3


def test_cli_import_evaluate_and_simulate(imported, tmp_path, one_thread):
    from ecnn_pyg.cli import main
    net, src = imported["triangular"].net, imported["triangular"].src
    out = tmp_path / "tri.pt"
    assert main(["import-ecnn4klm", "--checkpoint", str(src), "--lattice", "triangular",
                 "--out", str(out)]) == 0
    assert out.exists()
    # evaluate --spins with the recorded lattice and hoppings
    g = torch.Generator().manual_seed(0)
    spins = torch.nn.functional.normalize(torch.randn(2, 12, 12, 3, generator=g), dim=-1)
    np.save(tmp_path / "s.npy", spins.numpy())
    assert main(["evaluate", "--model", str(out), "--spins", str(tmp_path / "s.npy"),
                 "--out", str(tmp_path / "pred.npz"), "--size", "12", "12"]) == 0
    pred = np.load(tmp_path / "pred.npz")
    e_ref, b_ref = energy_field(net.float(), spins)
    np.testing.assert_allclose(pred["energy"], e_ref.numpy(), rtol=1e-5)
    np.testing.assert_allclose(pred["field"], b_ref.reshape(2, -1, 3).numpy(),
                               atol=1e-5 * float(b_ref.abs().max()))
    # simulate with the imported model as field source
    from ecnn_pyg.simulate import simulate
    cfg = {"output": str(tmp_path / "traj.h5"), "lattice": "triangular", "size": [12, 12],
           "hoppings": {"t1": 1.0, "t3": -0.85}, "source": "model", "model": str(out),
           "dt": 1.0, "n_steps": 4, "save_every": 2, "zeeman": 0.006}
    simulate(cfg)
    assert (tmp_path / "traj.h5").exists()


def test_bad_files(tmp_path, imported):
    from ecnn_pyg.cli import main
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a torch.save file"):
        read_ecnn4klm(text)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_ecnn4klm(tmp_path / "missing.cpt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a published ecnn4klm checkpoint"):
        read_ecnn4klm(other)
    # a package checkpoint is not a published one either
    with pytest.raises(CheckpointError, match="model_state_dict"):
        read_ecnn4klm(imported["square"].path)
    # truncated
    full = imported["square"].src
    cut = tmp_path / "cut.cpt"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        read_ecnn4klm(cut)
    # the lattice must fit the weight shapes
    tri = imported["triangular"].src
    with pytest.raises(CheckpointError, match="13 slots are those of the triangular lattice"):
        import_ecnn4klm(tri, "square", tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="9 slots are those of the square lattice"):
        import_ecnn4klm(full, "triangular", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
    with pytest.raises(ValueError, match="lattice must be one of"):
        import_ecnn4klm(full, "kagome", tmp_path / "x.pt")
    # the command reports bad input in one line, exit status 2
    assert main(["import-ecnn4klm", "--checkpoint", str(cut), "--lattice", "square",
                 "--out", str(tmp_path / "y.pt")]) == 2
    assert not (tmp_path / "y.pt").exists()


class Payload:
    """An arbitrary Python object: unpickling it would run code of this module."""

    def __reduce__(self):
        return (print, ("code ran",))


def test_no_code_execution(tmp_path, capsys):
    evil = tmp_path / "evil.cpt"
    torch.save({"epoch": 1, "model_state_dict": {"x": Payload()}}, evil)
    with pytest.raises(CheckpointError, match="weights_only"):
        read_ecnn4klm(evil)
    assert "code ran" not in capsys.readouterr().out


def _published(name):
    path = PUBLISHED / name
    if not path.exists():
        pytest.skip(f"the published checkpoint {name} is not beside the repository "
                    f"(looked for {path}; CI has the folder shared/reference/ecnn4klm "
                    f"next to the clone)")
    return path


@pytest.mark.parametrize("name,lattice", [("square_param.cpt", "square"),
                                          ("triangle_param.cpt", "triangular")])
def test_published_checkpoints(tmp_path, name, lattice, one_thread):
    src = _published(name)
    state = torch.load(src, map_location="cpu", weights_only=True)["model_state_dict"]
    net = PaperNet(lattice)
    missing, unexpected = net.load_state_dict(state, strict=False)
    weights = {k for k, v in net.state_dict().items() if k.endswith(("weight", "bias"))
               and v.numel()}
    assert not (weights & set(missing)), missing
    assert all("_w3j_" in k for k in unexpected), unexpected
    model = load_model(import_ecnn4klm(src, lattice, tmp_path / "m.pt"))
    for L in (12, 30):
        err_e, err_b = compare(net, model, lattice, L, torch.float32)
        print(f"published {lattice} {L}x{L} float32: rel. max error E {err_e:.1e}, B {err_b:.1e}")
        assert err_e < 1e-5 and err_b < 1e-5
    net64, model64 = float64_pair(lattice, state)
    err_e, err_b = compare(net64, model64, lattice, 12, torch.float64)
    print(f"published {lattice} 12x12 float64: rel. max error E {err_e:.1e}, B {err_b:.1e}")
    assert err_e < 1e-12 and err_b < 1e-12

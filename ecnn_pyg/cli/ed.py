"""Energy and effective field of given spin configurations by exact diagonalization.

Reads spins from a .npy file and writes an .npz with `energy` (n,) and
`field` (n, sites, 3). The spins are (sites, 3) or (n, sites, 3) with
sites = L1 * L2 * (sites per cell) for the given --size, site order
(i1 * L2 + i2) * (sites per cell) + b; the site axis may also be written as
the supercell shape (L1, L2) or, with a basis, (L1, L2, sites per cell).

The output path is checked first; a size whose exact diagonalization needs
more memory than the machine has available is refused at once, with the
estimate (--ignore-memory-check runs it anyway).

Examples:
    ecnn-pyg ed --lattice square --size 30 30 --t1 1 --J 7 --electrons 864 \\
        --spins S.npy --out OUT.npz
    ecnn-pyg ed --lattice triangular --size 36 36 --t1 1 --t3 -0.85 --J -1 --mu -3.5 \\
        --spins S.npy --out OUT.npz
"""
from pathlib import Path


def add_arguments(parser):
    """Add the options of ``ecnn-pyg ed`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("--lattice", default="square", help="built-in name or lattice file")
    parser.add_argument("--size", type=int, nargs="+", required=True, help="L1 L2 [L3]")
    for t in ("t1", "t2", "t3"):
        parser.add_argument(f"--{t}", type=float, help=f"hopping amplitude {t}")
    parser.add_argument("--hopping", nargs="*", default=[], metavar="SHELL=T",
                        help="amplitudes of other shells of a user lattice")
    parser.add_argument("--J", type=float, required=True, help="Kondo coupling J")
    ens = parser.add_mutually_exclusive_group(required=True)
    ens.add_argument("--electrons", type=int, help="electron number (canonical)")
    ens.add_argument("--filling", type=float, help="electrons / (2 sites) (canonical)")
    ens.add_argument("--mu", type=float, help="chemical potential (grand canonical)")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="electron temperature (grand canonical), default 0")
    parser.add_argument("--zeeman", type=float, default=0.0, help="Zeeman field H_z")
    parser.add_argument("--spins", required=True, help=".npy file of spins")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    parser.add_argument("--ignore-memory-check", action="store_true",
                        help="run even if the estimated memory exceeds what is available")


def run(args):
    """Compute energies and fields of the spins in ``--spins`` by ED and write ``--out``.

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success.

    Raises:
        ValueError: if ``--out`` exists (without ``--force``) or does not end in
            ``.npz``, the spins cannot be read or do not fit the lattice, or
            the lattice or ED parameters are invalid.
        InsufficientMemoryError: if the ED would need more memory than is
            available (without ``--ignore-memory-check``).
    """
    import math
    from ..ed import ed_memory_bytes
    from ..lattice import load_lattice
    from ..runtime import check_memory
    from ._common import check_output
    out = check_output(args.out, force=args.force, suffix=".npz")
    # the memory guard before torch is loaded: a size beyond the machine is refused at once
    lat = load_lattice(args.lattice)
    n_sites = math.prod(args.size if len(args.size) > 1 else args.size * lat.dim) * lat.n_basis
    check_memory(ed_memory_bytes(n_sites), f"exact diagonalization of {n_sites} sites",
                 allow=args.ignore_memory_check, override="--ignore-memory-check")
    import numpy as np
    from ..ed import KondoED
    from ..graph import lattice_graph
    from ..spins import load_spin_file
    hop = {t: getattr(args, t) for t in ("t1", "t2", "t3") if getattr(args, t) is not None}
    for item in args.hopping:
        k, _, v = item.partition("=")
        try:
            hop[k] = float(v)
        except ValueError:
            raise ValueError(f"--hopping takes SHELL=T with a number T, got '{item}'") from None
    graph = lattice_graph(args.lattice, args.size if len(args.size) > 1 else args.size[0], hop)
    ed = KondoED(graph, J=args.J, electrons=args.electrons, filling=args.filling, mu=args.mu,
                 temperature=args.temperature, zeeman=args.zeeman,
                 ignore_memory_check=args.ignore_memory_check)
    spins = load_spin_file(args.spins)
    energy, field = ed.energy_field(spins)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, energy=np.atleast_1d(energy), field=field.reshape(-1, graph.num_nodes, 3))
    print(f"{ed}: {len(np.atleast_1d(energy))} configurations -> {out}")
    return 0


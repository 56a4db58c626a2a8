"""List the built-in lattices, or print one lattice definition.

Example:
    ecnn-pyg lattices              # names and shells
    ecnn-pyg lattices triangular   # the YAML definition (copy it to make your own)
"""


def add_arguments(parser):
    """Add the options of ``ecnn-pyg lattices`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("name", nargs="?", help="a built-in name or a lattice file")


def run(args):
    """Print the YAML definition of ``args.name``, or one line per built-in lattice.

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success.

    Raises:
        LatticeError: if the named lattice cannot be loaded.
    """
    from ..lattice import available_lattices, load_lattice
    if args.name:
        print(load_lattice(args.name).to_yaml(), end="")
        return 0
    for name in available_lattices():
        lat = load_lattice(name)
        print(f"{name:12s} dim {lat.dim}, {lat.n_basis} site(s) per cell, shells "
              + ", ".join(f"{s} (default {lat.defaults[s]:g})" for s in lat.shells))
    return 0

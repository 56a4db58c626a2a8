"""List the pretrained models shipped with the package, with what each was trained on.

For each model: the lattice, the training supercell, the hoppings and ED
parameters of its data, and the RMSEs of its model card on the sets it names
(train / val). The name is what `ecnn-pyg evaluate --model` and a simulate
config's `model:` take. `--name NAME` prints that model's whole card.

Examples:
    ecnn-pyg models
    ecnn-pyg models --name square-paper
"""
from pathlib import Path


def add_arguments(parser):
    """Add the options of ``ecnn-pyg models`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("--name", help="print the whole model card of this model")


def _card(name):
    import yaml
    path = Path(__file__).resolve().parent.parent / "pretrained" / f"{name}.yaml"
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def _summary(name, card):
    data = card.get("trained_on") or {}
    ed = data.get("model") or {}
    hop = ", ".join(f"{k}={v:g}" for k, v in (data.get("hoppings") or {}).items() if v)
    size = " x ".join(str(x) for x in data.get("size") or []) or "?"
    ens = (f"electrons={ed['electrons']}" if ed.get("electrons") is not None
           else f"mu={ed.get('mu')}")
    lines = [f"{name}", f"  lattice {data.get('lattice', '?')}, trained on {size} "
             f"({hop}; J={ed.get('J')}, {ens})"]
    for split, m in (card.get("metrics") or {}).items():
        if isinstance(m, dict) and "rmse_field" in m:
            lines.append(f"  {split} set ({m.get('samples', '?')} samples): RMSE(B) "
                         f"{m['rmse_field']:.4g}, RMSE(E/N) {m.get('rmse_energy_per_site', 0):.3g}")
    return "\n".join(lines)


def run(args):
    """Print the shipped models (or one model's card).

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success.

    Raises:
        ValueError: if ``--name`` is not a shipped model.
    """
    from .evaluate import shipped_models
    names = shipped_models()
    if args.name is not None:
        if args.name not in names:
            raise ValueError(f"no shipped model {args.name!r}; shipped: {', '.join(names)}")
        import yaml
        print(yaml.safe_dump(_card(args.name), sort_keys=False, width=100).rstrip())
        return 0
    if not names:
        print("no pretrained models are installed")
    for name in names:
        print(_summary(name, _card(name)))
    return 0

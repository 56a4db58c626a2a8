"""Committee active learning on the honeycomb Kondo lattice (3/8 filling, chiral tetrahedral order).

A lattice the pipeline was never tuned on, to show that it is general: the exact T = 0
ground state (exact_relaxations.py), a held-out set of exact minima, the active-learning loop
(`ecnn-pyg learn`), ML-LLG with the final committee on 12 x 12 cells, and the learned end
state beside the exact relaxation of the same start (compare.py). From the repository root:

    python experiments/honeycomb_learn/run.py --list
    python experiments/honeycomb_learn/run.py

Report: docs/honeycomb_learn.md.
"""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _pipeline import (ROOT, Command, Function, Generate, Learn, Pipeline,  # noqa: E402
                       Simulate, main)

OUT = "runs/honeycomb_learn"
LEARN_DIR = f"{OUT}/learn"
START = f"{OUT}/tetrahedral_4x4.npy"
HELDOUT = "data/honeycomb_minima_4x4.h5"


def last_committee(learn_dir: str) -> Path:
    """The committee of the last round that trained one (``round_NNN/committee/committee.pt``)."""
    found = sorted((ROOT / learn_dir).glob("round_*/committee/committee.pt"))
    if not found:
        raise FileNotFoundError(f"no committee in {learn_dir}: run the learn stage first")
    return found[-1]


def final_committee(name: str, learn_dir: str, dst: str) -> Function:
    """A stage that copies the last committee of ``learn_dir`` to ``dst``."""
    def copy() -> None:
        out = ROOT / dst
        tmp = out.with_name(out.name + ".part")
        shutil.copyfile(last_committee(learn_dir), tmp)
        tmp.replace(out)
    return Function(name, copy, text=f"copy the last round's committee ({learn_dir}/round_NNN/"
                                     f"committee/committee.pt) to {dst}",
                    outputs=[dst], inputs=[f"{learn_dir}/summary.json"],
                    note="the committee the ML-LLG runs with")


def compare(name: str, tag: str = "") -> Command:
    """compare.py on the ML-LLG runs of one committee (file names with ``tag``)."""
    files = {"anneal": f"{OUT}/ml_llg_anneal{tag}.h5", "quench": f"{OUT}/ml_llg_quench{tag}.h5",
             "committee": f"{OUT}/committee{tag}.pt", "figure": f"{OUT}/compare{tag}.png"}
    args = [x for k, v in files.items() for x in (f"--{k}", v)]
    return Command(name, ["python", "experiments/honeycomb_learn/compare.py", *args],
                   stdout=f"{OUT}/compare{tag}.txt", env={"OMP_NUM_THREADS": "1"},
                   outputs=[files["figure"]],
                   inputs=[files["anneal"], files["quench"], files["committee"]],
                   note="learned end state beside the exact relaxation of the same start; table")


def stability(name: str, tag: str = "") -> Command:
    """stability.py with the committee of one run (file names with ``tag``)."""
    return Command(name, ["python", "experiments/honeycomb_learn/stability.py", "--committee",
                          f"{OUT}/committee{tag}.pt"],
                   stdout=f"{OUT}/stability{tag}.txt", env={"OMP_NUM_THREADS": "1"},
                   inputs=[f"{OUT}/committee{tag}.pt"],
                   note="T = 0 ML-LLG from the kicked tetrahedral state: a minimum of the "
                        "learned field?")


PIPELINE = Pipeline(__file__, [
    Command("exact_relaxations", ["python", "experiments/honeycomb_learn/exact_relaxations.py"],
            stdout=f"{OUT}/exact_relaxations.txt", env={"OMP_NUM_THREADS": "1"},
            outputs=[START, f"{OUT}/minima_4x4.npy", f"{OUT}/relaxations.npz",
                     f"{OUT}/exact_relaxations.png"],
            note="exact minima from named and random starts: the tetrahedral state is lowest"),
    Generate("01_label_minima_4x4", note="held-out set: the 24 exact 4 x 4 minima, labelled"),
    Learn("02_learn", extra={"explore.starts": ["random", "ferromagnet", START],
                             "validation": [HELDOUT]},
          note="committee active learning (4 members, up to 3 rounds)"),
    final_committee("final_committee", LEARN_DIR, f"{OUT}/committee.pt"),
    Simulate("03_ml_llg_anneal", note="ML-LLG on 12 x 12 from random spins at T = 0.002"),
    Simulate("04_ml_llg_quench", note="then at T = 0"),
    compare("compare"),
    stability("stability"),
    Learn("05_learn_tight", extra={"explore.starts": ["random", START], "validation": [HELDOUT]},
          note="the loop again with a tighter lower trust level, 8 x 8 cells, more epochs"),
    final_committee("final_committee_tight", f"{OUT}/learn_tight", f"{OUT}/committee_tight.pt"),
    Simulate("06_ml_llg_anneal_tight", note="ML-LLG with it, same start and settings as 03"),
    Simulate("07_ml_llg_quench_tight", note="then at T = 0"),
    compare("compare_tight", "_tight"),
    stability("stability_tight", "_tight"),
], title="Committee active learning on the honeycomb Kondo lattice (chiral tetrahedral order)")

if __name__ == "__main__":
    sys.exit(main(PIPELINE))

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
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _pipeline import (DONE, PARTIAL, ROOT, TODO, Command, Function, Generate,  # noqa: E402
                       Pipeline, Simulate, _ConfigStage, _flow, main)

OUT = "runs/honeycomb_learn"
LEARN_DIR = f"{OUT}/learn"
START = f"{OUT}/tetrahedral_4x4.npy"
HELDOUT = "data/honeycomb_minima_4x4.h5"


class Learn(_ConfigStage):
    """``ecnn-pyg learn``: done when the run's summary.json says it finished.

    ``extra`` are keys added at run time (``--set``), for files that earlier stages make:
    the config file itself stays valid where they do not exist yet.
    """

    command = "learn"

    def __init__(self, name: str, extra=None, **kw):
        super().__init__(name, **kw)
        self.extra = dict(extra or {})

    def inputs(self) -> List[str]:
        starts = [s for s in self.extra.get("explore.starts", []) if s.endswith(".npy")]
        return starts + list(self.extra.get("validation", []))

    def outputs(self) -> List[str]:
        rd = self.resolved()["run_dir"]
        return [rd, f"{rd}/summary.json"]

    def argv(self) -> List[str]:
        sets = [f"{k}={_flow(v)}" for k, v in {**self.overrides, **self.extra}.items()]
        return ["ecnn-pyg", "learn", *self.config_args(), *(["--set", *sets] if sets else [])]

    def status(self) -> str:
        import json
        summary = ROOT / self.resolved()["run_dir"] / "summary.json"
        if summary.exists() and json.loads(summary.read_text()).get("finished"):
            return DONE
        return PARTIAL if (ROOT / self.resolved()["run_dir"]).exists() else TODO


def last_committee() -> Path:
    """The committee of the last round that trained one (``round_NNN/committee/committee.pt``)."""
    found = sorted((ROOT / LEARN_DIR).glob("round_*/committee/committee.pt"))
    if not found:
        raise FileNotFoundError(f"no committee in {LEARN_DIR}: run the learn stage first")
    return found[-1]


def copy_last_committee() -> None:
    dst = ROOT / OUT / "committee.pt"
    tmp = dst.with_name("committee.pt.part")
    shutil.copyfile(last_committee(), tmp)
    tmp.replace(dst)


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
    Function("final_committee", copy_last_committee,
             text=f"copy the last round's committee ({LEARN_DIR}/round_NNN/committee/"
                  f"committee.pt) to {OUT}/committee.pt",
             outputs=[f"{OUT}/committee.pt"], inputs=[f"{LEARN_DIR}/summary.json"],
             note="the committee the ML-LLG runs with"),
    Simulate("03_ml_llg_anneal", note="ML-LLG on 12 x 12 from random spins at T = 0.002"),
    Simulate("04_ml_llg_quench", note="then at T = 0"),
    Command("compare", ["python", "experiments/honeycomb_learn/compare.py"],
            stdout=f"{OUT}/compare.txt", env={"OMP_NUM_THREADS": "1"},
            outputs=[f"{OUT}/compare.png"],
            inputs=[f"{OUT}/ml_llg_anneal.h5", f"{OUT}/ml_llg_quench.h5", f"{OUT}/committee.pt"],
            note="learned end state beside the exact relaxation of the same start; table"),
], title="Committee active learning on the honeycomb Kondo lattice (chiral tetrahedral order)")

if __name__ == "__main__":
    sys.exit(main(PIPELINE))

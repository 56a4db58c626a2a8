"""Reproduce the paper's square-lattice result (Fig. 3): ECNN against the IFNN baseline.

Runs every stage of the reproduction in order, from the repository root, skipping the
stages already done and continuing an interrupted one (README.md of this folder):

    python experiments/square_fig3/run.py             # everything (about 3 h on 2 cores)
    python experiments/square_fig3/run.py --list      # stages and their status
    python experiments/square_fig3/run.py --dry-run   # the commands still to run
    python experiments/square_fig3/run.py --until eval_ecnn_val
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _pipeline import Command, Generate, Pipeline, Train, main  # noqa: E402

OUT = "runs/square_fig3"


def evaluate(name, model, data, split, plot=False, note=""):
    """``ecnn-pyg evaluate`` of a model on one split, its table kept in runs/square_fig3/."""
    argv = ["ecnn-pyg", "evaluate", "--model", model, "--data", data, "--split", split]
    outputs = []
    if plot:
        argv += ["--plot", f"{OUT}/parity_{name[5:]}.png"]
        outputs.append(f"{OUT}/parity_{name[5:]}.png")
    return Command(name, argv, stdout=f"{OUT}/{name[5:]}.txt", outputs=outputs,
                   inputs=[model, data], note=note)


PIPELINE = Pipeline(__file__, [
    Generate("01_generate",
             note="150 exact configurations, 30 x 30 (~5 min)"),
    Train("02_train_ecnn", note="the ECNN (best at epoch 392, ~70 min)"),
    evaluate("eval_ecnn_val", "runs/square_ecnn/best.pt", "data/square_paper.h5", "val",
             plot=True, note="ECNN validation RMSE(B) (ours 0.0263, paper 0.0481) and parity plot"),
    evaluate("eval_ecnn_train", "runs/square_ecnn/best.pt", "data/square_paper.h5", "train",
             note="ECNN training RMSE(B) (ours 0.0259, paper 0.0466)"),
    Train("03_train_ifnn", note="the IFNN baseline (107 min)"),
    evaluate("eval_ifnn_val", "runs/square_ifnn/best.pt", "data/square_paper.h5", "val",
             plot=True, note="IFNN validation RMSE(B) (ours 0.1141, paper 0.148) and parity plot"),
    Generate("04_generate_test_16",
             note="20 exact 16 x 16 configurations (~10 s)"),
    Generate("05_generate_test_40",
             note="20 exact 40 x 40 configurations (~3.5 min)"),
    evaluate("eval_ecnn_test_16", "runs/square_ecnn/best.pt", "data/square_16x16_test.h5", "test",
             note="size transfer: ECNN on 16 x 16 (ours 0.0289)"),
    evaluate("eval_ecnn_test_40", "runs/square_ecnn/best.pt", "data/square_40x40_test.h5", "test",
             note="size transfer: ECNN on 40 x 40 (ours 0.0259)"),
], title="The paper's square-lattice result (Fig. 3): ECNN against the IFNN baseline")

if __name__ == "__main__":
    sys.exit(main(PIPELINE))

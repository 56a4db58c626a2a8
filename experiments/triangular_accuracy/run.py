"""Reproduce the triangular model's accuracy table and the study of why disordered snapshots stall.

Held-out equilibrium snapshots (24 x 24 and the paper's 36 x 36 ED-LLG), the 36 x 36 test set
with 72 x 72 labels, the accuracy table of the shipped model and of stages 10, 9 and 3, then
the three measurements of why RMSE(B) stays near 0.0012 on disordered snapshots: label
convergence, model capacity, field locality; last, the symmetry test: how far networks price
exact minima and their mirror images and time reverses apart, the shipped one and three
trained from random weights with more symmetries built in (stages symmetry_* to
symmetry_trained, independent of the others). Its first stage runs experiments/triangular_fig4
up to the stage-11 checkpoint (the models and data it scores). From the repository root:

    python experiments/triangular_accuracy/run.py             # everything
    python experiments/triangular_accuracy/run.py --list      # stages and their status
    python experiments/triangular_accuracy/run.py --dry-run   # the commands still to run
"""
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _pipeline import Command, Experiment, Generate, Simulate, Train, Pipeline, main  # noqa: E402

HERE = "experiments/triangular_accuracy"
TABLES = "runs/triangular"
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
FIELDS = ("0.002", "0.005", "0.008")
MODELS = ["triangular-paper", "runs/triangular_stage10.pt", "runs/triangular_stage9.pt",
          "runs/triangular_stage3.pt"]


def per_field(files: str) -> str:
    """``data/x_h{h}.h5`` -> the comma-separated files of the three fields."""
    return ",".join(files.format(h=h) for h in FIELDS)


SETS = {
    "12x12 val (96 labels)": ("data/triangular_12_val.h5", "val"),
    "24x24 eq held out (96)": (per_field("data/triangular_24_eq_96_h{h}.h5"), "val"),
    "36x36 eq held out (72)": (per_field("data/triangular_36_eq_72_h{h}.h5"), "val"),
    "36x36 eq held out (36)": (per_field("data/triangular_36_eq_36_h{h}.h5"), "val"),
    "24x24 val disordered (96)": ("data/triangular_24_val_96.h5", "val"),
    "36x36 test (72)": ("data/triangular_test_36_72.h5", "test"),
    "36x36 test (36)": ("data/triangular_test_36.h5", "test"),
}
LABEL_LATTICES = {1: 24, 2: 48, 3: 72, 6: 144, 8: 192}       # twists -> lattice (4 -> 96: stage 10)
# the from-scratch learn run of record: its config's run_dir
SCRATCH = yaml.safe_load(Path(__file__).parents[1].joinpath(
    "triangular_fig4", "53_learn_from_scratch_symmetric.yaml").read_text())["run_dir"]
GROWN = {"c16": ["--channels", "16"], "block5": ["--add-block"]}
SYM_MINIMA = "runs/triangular/symmetry_minima"        # exact 12 x 12 minima (symmetry.py)
SYM_SETS = "runs/triangular/symmetry_sets"
#: the symmetry test's three networks: name -> overrides of 09_train_symmetry.yaml
SYM_NETS = {"axial": {},
            "tr": {"model_config.time_reversal": True, "augment": "point_group"},
            "tr_shell": {"model_config.time_reversal": True, "augment": "point_group",
                         "model_config.weight_sharing": "shell"}}
#: the trainings of the symmetry test: (network, seed); run dir runs/triangular_symmetry_<net>_s<seed>
SYM_RUNS = [("axial", 0), ("tr", 0), ("tr_shell", 0), ("axial", 1), ("tr", 1), ("tr_shell", 1)]


def script(name, file, args, stdout, outputs=(), inputs=(), note=""):
    """A script of this folder on one thread, its table kept in ``stdout``."""
    return Command(name, ["python", f"{HERE}/{file}", *args], stdout=stdout, outputs=outputs,
                   inputs=inputs, env=ONE_THREAD, note=note)


STAGES = [
    Experiment("triangular_fig4", "experiments/triangular_fig4/run.py", "copy_stage11",
               note="the models and data of experiments/triangular_fig4, up to stage 11"),
    # held-out equilibrium sets
    *(Simulate(f"01_ed_llg_24_eq_h{h}", "01_ed_llg_24_eq.yaml",
               {"zeeman": [float(h)], "output": f"data/triangular_24_eq_llg_h{h}.h5"},
               note=f"24 x 24 ED-LLG at H_z = {h}, seed 2 (~14 min)") for h in FIELDS),
    *(Generate(f"02_label_24_eq_h{h}", "02_label_24_eq.yaml",
               {"spins_from": f"data/triangular_24_eq_llg_h{h}.h5",
                "output": f"data/triangular_24_eq_96_h{h}.h5"},
               note="96 x 96 labels (~1.5 min)") for h in FIELDS),
    *(Simulate(f"03_ed_llg_36_eq_h{h}", "03_ed_llg_36_eq.yaml",
               {"zeeman": [float(h)], "output": f"data/triangular_36_eq_llg_h{h}.h5"},
               note=f"36 x 36 ED-LLG at H_z = {h} (~14 min)") for h in FIELDS),
    *(Generate(f"04_label_36_eq_72_h{h}", "04_label_36_eq.yaml",
               {"spins_from": f"data/triangular_36_eq_llg_h{h}.h5",
                "output": f"data/triangular_36_eq_72_h{h}.h5"},
               note="72 x 72 labels") for h in FIELDS),
    *(Generate(f"04_label_36_eq_36_h{h}", "04_label_36_eq.yaml",
               {"twists": 1, "spins_from": f"data/triangular_36_eq_llg_h{h}.h5",
                "output": f"data/triangular_36_eq_36_h{h}.h5"},
               note="36 x 36 labels (the paper's protocol)") for h in FIELDS),
    Generate("05_label_test_36_72", note="72 x 72 labels (~9 min)"),
    script("accuracy_table", "accuracy_table.py",
           ["--models", *MODELS,
            "--sets", *(f"{name}={files}:{split}" for name, (files, split) in SETS.items())],
           stdout=f"{TABLES}/accuracy.txt",
           inputs=[f for files, _ in SETS.values() for f in files.split(",")] + MODELS[1:],
           note="RMSE(B), transverse, RMSE(E/N) of the shipped model and stages 10, 9, 3"),
    # the from-scratch committee (experiments/triangular_fig4, 53_learn_from_scratch_symmetric)
    # on the held-out equilibrium sets, beside the hand-driven model
    Experiment("triangular_fig4_scratch", "experiments/triangular_fig4/run.py",
               "53_learn_from_scratch_symmetric", note="the from-scratch committee (hours; resumable)"),
    script("accuracy_table_scratch", "accuracy_table.py",
           ["--models", SCRATCH, "triangular-paper",
            "--sets", *(f"{name}={files}:{split}" for name, (files, split) in SETS.items()
                        if "eq held out" in name)],
           stdout=f"{TABLES}/accuracy_scratch.txt",
           inputs=[SCRATCH] + [f for name, (files, _) in SETS.items() if "eq held out" in name
                               for f in files.split(",")],
           note="RMSE(B), RMSE(E/N) of the from-scratch committee's mean (goal 0.001, 5e-5)"),
    # 1. not the labels: the same snapshots labelled on six lattices
    *(Generate(f"06_label_24_val_{n}", "06_label_24_val_lattices.yaml",
               {"twists": k, "output": f"data/triangular_24_val_{n}.h5"},
               note=f"labels of the {n} x {n} lattice") for k, n in LABEL_LATTICES.items()),
    script("label_convergence", "label_convergence.py",
           [*(f"data/triangular_24_val_{n}.h5" for n in (24, 48, 72, 96, 144, 192)),
            "--split", "val", "--model", "runs/triangular_stage9.pt"],
           stdout=f"{TABLES}/label_convergence_24.txt",
           inputs=[f"data/triangular_24_val_{n}.h5" for n in (24, 48, 72, 96, 144, 192)]
           + ["runs/triangular_stage9.pt"],
           note="labels converge from 72 x 72 on; the stage-9 model stays at 0.0012"),
    # 2. not the model's size: fine-tune the stage-9 model and two grown copies
    *(script(f"grow_{g}", "grow_model.py",
             ["runs/triangular_stage9.pt", f"runs/triangular_stage9_{g}.pt", *args],
             stdout=f"{TABLES}/grow_{g}.txt", outputs=[f"runs/triangular_stage9_{g}.pt"],
             inputs=["runs/triangular_stage9.pt"], note="a bigger model, same function")
      for g, args in GROWN.items()),
    Train("07_train_capacity", note="fine-tune stage 9 on 24 x 24 (8 min cap)"),
    *(Train(f"07_train_capacity_{g}", "07_train_capacity.yaml",
            {"init_from": f"runs/triangular_stage9_{g}.pt",
             "run_dir": f"runs/triangular_24_capacity_{g}"},
            note=f"the same, grown ({' '.join(args)})") for g, args in GROWN.items()),
    # 3. the exact field reaches farther than the model's
    script("field_locality_36", "field_locality.py",
           ["--data", "data/triangular_test_36.h5", "--split", "test",
            "--model", "runs/triangular_stage9.pt", "runs/triangular_stage3.pt"],
           stdout=f"{TABLES}/field_locality_36.txt",
           inputs=["data/triangular_test_36.h5", "runs/triangular_stage9.pt",
                   "runs/triangular_stage3.pt"],
           note="field change from beyond R, 36 x 36 ED (~8 min)"),
    script("field_locality_24_96", "field_locality.py",
           ["--data", "data/triangular_24_val_96.h5", "--split", "val",
            "--radii", "4", "6", "8", "10", "12", "--model", "runs/triangular_stage9.pt"],
           stdout=f"{TABLES}/field_locality_24_96.txt",
           inputs=["data/triangular_24_val_96.h5", "runs/triangular_stage9.pt"],
           note="the same, 24 x 24 snapshots with 96 x 96 labels (~7 min)"),
    # 4. symmetries the exact energy has and the network need not: mirrors, time reversal
    script("symmetry_shipped", "symmetry.py", ["--model", "triangular-paper", "--out", SYM_MINIMA],
           stdout=f"{TABLES}/symmetry_shipped.txt", outputs=[SYM_MINIMA],
           note="24 exact 12 x 12 minima (~5 min); the shipped model prices each against "
                "its mirror image and time reverse"),
    script("symmetry_sets", "symmetry.py", ["--out", SYM_MINIMA, "--sets", SYM_SETS],
           stdout=f"{TABLES}/symmetry_sets.txt", inputs=[SYM_MINIMA],
           outputs=[f"{SYM_SETS}/{f}" for f in ("train_spins.npy", "test_spins.npy",
                                                 "test_rows.json")],
           note="the training and test configurations of the symmetry test"),
    Generate("08_label_symmetry_train", "08_label_symmetry.yaml",
             {"spins_from": f"{SYM_SETS}/train_spins.npy"},
             note="330 labels (96 x 96 lattice, ~5 min)"),
    Generate("08_label_symmetry_test", "08_label_symmetry.yaml",
             {"spins_from": f"{SYM_SETS}/test_spins.npy",
              "output": "data/triangular_symmetry_test.h5", "splits": {"test": 114}},
             note="114 labels: the minima, their images, perturbed held-out minima"),
    *(Train(f"09_train_symmetry_{net}_s{seed}", "09_train_symmetry.yaml",
            {**SYM_NETS[net], "seed": seed, "run_dir": f"runs/triangular_symmetry_{net}_s{seed}"},
            note="25 min cap, one thread") for net, seed in SYM_RUNS),
    script("symmetry_trained", "symmetry.py",
           ["--test", "data/triangular_symmetry_test.h5", f"{SYM_SETS}/test_rows.json",
            "--model", *(f"runs/triangular_symmetry_{n}_s{k}/best.pt" for n, k in SYM_RUNS)],
           stdout=f"{TABLES}/symmetry_trained.txt",
           inputs=["data/triangular_symmetry_test.h5", f"{SYM_SETS}/test_rows.json",
                   *(f"runs/triangular_symmetry_{n}_s{k}/best.pt" for n, k in SYM_RUNS)],
           note="energy errors on minima and their images, per network"),
]

PIPELINE = Pipeline(__file__, STAGES,
                    title="Accuracy of the triangular model and why disordered snapshots stall")

if __name__ == "__main__":
    sys.exit(main(PIPELINE))

"""Reproduce the paper's triangular-lattice result (Fig. 4): the model of stages 1-11 and its phase diagram.

Runs every stage in order, from the repository root, skipping the stages already done
and continuing an interrupted one; the checkpoint copies (runs/triangular_stageN.pt)
and the per-field runs that used to be typed by hand are stages too (README.md of this
folder has what each stage does and how long it takes):

    python experiments/triangular_fig4/run.py             # everything
    python experiments/triangular_fig4/run.py --list      # stages and their status
    python experiments/triangular_fig4/run.py --dry-run   # the commands still to run
    python experiments/triangular_fig4/run.py --until copy_stage11
    python experiments/triangular_fig4/run.py --only 44_ed_llg_24_eq_train_h0.005   # one stage
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _pipeline import (Command, Copy, Function, Generate, Learn, Pipeline, Simulate,  # noqa: E402
                       Train, main)

HERE = "experiments/triangular_fig4"
TABLES = "runs/triangular"
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
CRYSTALS = f"{TABLES}/exact_crystals.npz"
EQ_FIELDS = ("0.002", "0.005", "0.008")
SCRATCH_NSK0_START = "data/triangular_96_scratch_start_nsk0.npy"


def script(name, file, args, stdout, outputs=(), inputs=(), note=""):
    """A research script of this folder on one thread, its table kept in ``stdout``."""
    return Command(name, ["python", f"{HERE}/{file}", *args], stdout=stdout, outputs=outputs,
                   inputs=inputs, env=ONE_THREAD, note=note)


def scratch_fields(h: str) -> list:
    """The fields of 52_sweep_96_scratch.yaml within 0.004 of the start's field ``h``
    (as 47-49 sweep each crystal over the fields around its own)."""
    return [x for x in config_fields("52_sweep_96_scratch.yaml") if abs(x - float(h)) <= 0.004 + 1e-9]


def config(name: str) -> dict:
    """This folder's config ``name``, as written (no ``extends`` resolved)."""
    import yaml
    return yaml.safe_load((Path(__file__).parent / name).read_text())


def config_fields(name: str) -> list:
    """The ``zeeman`` list of this folder's config ``name``."""
    return config(name)["zeeman"]


# the from-scratch run of record, which the scratch stages below read
SCRATCH = config("53_learn_from_scratch_symmetric.yaml")["run_dir"]


# the from-scratch committee's n_sk = 0 branch sweeps the fields of 49's n_sk = 0 branch
SCRATCH_NSK0_FIELDS = config_fields("49_sweep_96_nsk0.yaml")


def copy_stage(n, run_dir):
    """The best checkpoint of stage n, under the name the next stage starts from."""
    return Copy(f"copy_stage{n}", f"{run_dir}/best.pt", f"runs/triangular_stage{n}.pt",
                note=f"stage-{n} model -> runs/triangular_stage{n}.pt")


def concat_random_minima():
    """data/triangular_12_random_minima.npy: the minima of the two random-start searches."""
    import numpy as np
    parts = [np.load(f"data/triangular_12_random_minima_{k}.npy") for k in "ab"]
    np.save("data/triangular_12_random_minima.part.npy", np.concatenate(parts))
    Path("data/triangular_12_random_minima.part.npy").replace("data/triangular_12_random_minima.npy")


def active_round(k):
    """Active-learning round k (stage 4 + k): the stage-(3 + k) model's own crystals, labelled, trained on."""
    stage, model = 4 + k, f"runs/triangular_stage{3 + k}.pt"
    states = f"data/triangular_12_active{k}_states.npy"
    label, train = 29 + 2 * k, 30 + 2 * k
    run_dir = "runs/triangular_ecnn_96_active" + ("" if k == 1 else str(k))
    return [
        script(f"active{k}_model_crystals", "model_crystals.py",
               ["--model", model, "--crystals", CRYSTALS, "--save-states", states],
               stdout=f"{TABLES}/active{k}.txt", outputs=[states], inputs=[model, CRYSTALS],
               note=f"the stage-{3 + k} model's own T = 0 crystals, priced exactly"),
        Generate(f"{label}_label_12_active{k}",
                 note="their exact 96 x 96 labels (63 states, ~1 min)"),
        Train(f"{train}_train_stage{stage}",
              note=f"stage {stage}: active-learning round {k}" + (" (6 min cap)" if k > 2 else "")),
        copy_stage(stage, run_dir),
    ]


STAGES = [
    # stage 1: the paper's protocol on 24 x 24
    Generate("01_generate_random", note="300 random 24 x 24 configurations (~2.5 min)"),
    Simulate("02_ed_llg", note="ED-LLG snapshots, seed 0 (~15 min)"),
    Simulate("03_ed_llg_val", note="ED-LLG snapshots, seed 1 (~15 min)"),
    Generate("04_label_snapshots", note="their labels (~1.5 min)"),
    Generate("05_label_snapshots_val_noneq", note="(~30 s)"),
    Generate("06_label_snapshots_val", note="validation (~1 min)"),
    Train("07_train_stage1", note="stage 1: the protocol, 23 epochs"),
    copy_stage(1, "runs/triangular_ecnn"),
    # stage 2: ordered states of the stage-1 model
    Simulate("08_ml_llg_random", note="ML-LLG from random spins (~1 min)"),
    Simulate("09_ml_llg_tripleq", note="ML-LLG from triple-Q (~1 min)"),
    Generate("10_label_ordered_random", note="(~30 s)"),
    Generate("11_label_ordered_tripleq", note="(~30 s)"),
    Train("12_train_stage2", note="stage 2: stage 1 resumed to epoch 58"),
    copy_stage(2, "runs/triangular_ecnn"),
    # stage 3: 36 x 36
    Simulate("13_ml_llg_test_36", note="36 x 36 ML-LLG at T = 0.005 (~3 min)"),
    Simulate("14_ml_llg_36_random", note="(~1 min)"),
    Simulate("15_ml_llg_36_tripleq", note="(~1 min)"),
    Generate("16_label_36_eq", note="(~3 min)"),
    Generate("17_label_36_ordered_random", note="(~4 min)"),
    Generate("18_label_36_ordered_tripleq", note="(~4 min)"),
    Generate("19_label_test_36", note="the 36 x 36 test set (~3.5 min)"),
    Train("20_train_stage3", note="stage 3: fine-tune on 36 x 36"),
    copy_stage(3, "runs/triangular_ecnn_36"),
    # stage 4: 12 x 12 cells with 96 x 96 labels
    Simulate("21_sweep_tripleq_stage3",
             note="96 x 96 sweep of the stage-3 model from triple-Q (~30 min)"),
    Simulate("22_sweep_biskx_stage3",
             note="96 x 96 sweep of the stage-3 model from n_sk = 2 (~10 min)"),
    script("exact_crystals", "exact_crystals.py",
           ["--fields", *(f"{0.0005 * i:.4f}" for i in range(21)),
            "--bi", "data/triangular_ml_llg_random.h5#0",
            "--model-states", "runs/triangular_sweep_tripleq/sweep.h5",
            "runs/triangular_sweep_biskx/sweep.h5",
            "--save-states", "data/triangular_12_crystal_states.npy",
            "--save-bi", "data/triangular_12_biskx.npy", "--out", CRYSTALS],
           stdout=f"{TABLES}/exact_crystals.txt",
           outputs=["data/triangular_12_crystal_states.npy", "data/triangular_12_biskx.npy",
                    CRYSTALS],
           inputs=["data/triangular_ml_llg_random.h5", "runs/triangular_sweep_tripleq/sweep.h5",
                   "runs/triangular_sweep_biskx/sweep.h5"],
           note="exact T = 0 crystals at 21 fields, 36 x 36 and 96 x 96 ED (~4.5 min)"),
    Simulate("23_ed_llg_12_tripleq", note="12 x 12 ED-LLG (~8 min)"),
    Simulate("24_ed_llg_12_biskx", note="12 x 12 ED-LLG (~6 min)"),
    Simulate("25_ed_llg_12_val", note="12 x 12 ED-LLG (~3 min)"),
    Generate("26_label_12_crystals", note="(~1.5 min)"),
    Generate("27_label_12_tripleq", note="(~3 min)"),
    Generate("28_label_12_biskx", note="(~2 min)"),
    Generate("29_label_12_val", note="(~1 min)"),
    Train("30_train_stage4", note="stage 4: 96 x 96 labels"),
    copy_stage(4, "runs/triangular_ecnn_96"),
    # stages 5-8: active learning
    *active_round(1), *active_round(2), *active_round(3), *active_round(4),
    # stage 9: exact minima from random starts
    script("random_minima_a", "random_minima.py",
           ["--fields", "0.006", "0.0065", "0.007", "--starts", "10", "--seed", "3",
            "--save-states", "data/triangular_12_random_minima_a.npy"],
           stdout=f"{TABLES}/random_minima_a.txt",
           outputs=["data/triangular_12_random_minima_a.npy"],
           note="exact minima from 30 random starts"),
    script("random_minima_b", "random_minima.py",
           ["--fields", "0.0055", "0.0075", "0.008", "--starts", "10", "--seed", "3",
            "--save-states", "data/triangular_12_random_minima_b.npy"],
           stdout=f"{TABLES}/random_minima_b.txt",
           outputs=["data/triangular_12_random_minima_b.npy"],
           note="exact minima from 30 more random starts"),
    Function("concat_random_minima", concat_random_minima,
             "numpy.concatenate of data/triangular_12_random_minima_{a,b}.npy "
             "-> data/triangular_12_random_minima.npy",
             outputs=["data/triangular_12_random_minima.npy"],
             inputs=["data/triangular_12_random_minima_a.npy",
                     "data/triangular_12_random_minima_b.npy"],
             note="the 60 minima in one file"),
    Generate("39_label_12_random_minima", note="(~1 min)"),
    Train("40_train_stage9", note="stage 9 (5 min cap)"),
    copy_stage(9, "runs/triangular_ecnn_96_random"),
    # stage 10: disordered 24 x 24 snapshots
    Generate("41_label_24_llg", note="(~10 min)"),
    Generate("42_label_24_val", note="(~5.5 min)"),
    Train("43_train_stage10", note="stage 10, energy weight 30 (80 epochs, ~19 min)"),
    copy_stage(10, "runs/triangular_ecnn_96_general_ew30"),
    # stage 11: equilibrium 24 x 24 snapshots, one ED-LLG file per field
    *(Simulate(f"44_ed_llg_24_eq_train_h{h}", "44_ed_llg_24_eq_train.yaml",
               {"zeeman": [float(h)], "output": f"data/triangular_24_eq_train_llg_h{h}.h5"},
               note=f"24 x 24 ED-LLG at H_z = {h}, seed 3 (~15 min)") for h in EQ_FIELDS),
    *(Generate(f"45_label_24_eq_train_h{h}", "45_label_24_eq_train.yaml",
               {"spins_from": f"data/triangular_24_eq_train_llg_h{h}.h5",
                "output": f"data/triangular_24_eq_train_96_h{h}.h5"},
               note="their 96 x 96 labels (~1.5 min)") for h in EQ_FIELDS),
    Train("46_train_stage11", note="stage 11 = triangular-paper (87 epochs, ~25 min)"),
    copy_stage(11, "runs/triangular_ecnn_96_eq"),
    # Fig. 4: 96 x 96 sweeps from four starts, the phase diagram, the exact transitions
    script("model_crystals_stage11", "model_crystals.py",
           ["--model", "runs/triangular_stage11.pt", "--crystals", CRYSTALS,
            "--fields", "0.0065", "0.007", "0.0075", "0.008",
            "--starts", "n_sk=2 crystal", "model sweep_biskx",
            "--extra", "data/triangular_12_random_minima_a.npy#24",
            "--save-states", "data/triangular_12_stage11_states.npy"],
           stdout=f"{TABLES}/model_crystals_stage11_nsk0.txt",
           outputs=["data/triangular_12_stage11_states.npy"],
           inputs=["runs/triangular_stage11.pt", CRYSTALS, "data/triangular_12_random_minima_a.npy"],
           note="the stage-11 model's own n_sk = 0 minima (~1 min)"),
    script("sweep_starts", "sweep_starts.py",
           ["--crystals", CRYSTALS, "--model-states", "data/triangular_12_active4_states.npy",
            "--nsk0-model", "data/triangular_12_stage11_states.npy#8",
            "--out", "data/triangular_96_start_{}.npy"],
           stdout=f"{TABLES}/sweep_starts.txt",
           outputs=[f"data/triangular_96_start_{k}.npy"
                    for k in ("biskx", "tripleq", "nsk0", "nsk0_model")],
           inputs=[CRYSTALS, "data/triangular_12_active4_states.npy",
                   "data/triangular_12_stage11_states.npy"],
           note="the four 96 x 96 starts, tiled from 12 x 12"),
    Simulate("47_sweep_96_biskx", note="10 fields (~15 min)"),
    Simulate("48_sweep_96_tripleq", note="14 fields (~20 min)"),
    Simulate("49_sweep_96_nsk0", note="7 fields (~10 min)"),
    Simulate("50_sweep_96_nsk0_model", note="7 fields (~10 min)"),
    script("phase_diagram", "phase_diagram.py",
           ["--sweeps", *(f"runs/triangular_96_sweep_{k}/sweep.h5"
                          for k in ("biskx", "tripleq", "nsk0", "nsk0_model")),
            "--model", "runs/triangular_stage11.pt", "--out", f"{TABLES}/figures",
            "--snapshots", "0.002", "0.005", "0.008", "0.01"],
           stdout=f"{TABLES}/phase_diagram_96.txt",
           outputs=[f"{TABLES}/figures/triangular_phase_diagram.png"],
           inputs=["runs/triangular_stage11.pt"],
           note="Fig. 4: transitions at 0.00364 and 0.00729 (paper 0.00325, 0.0065)"),
    script("exact_transitions", "exact_transitions.py",
           [f"{TABLES}/exact_crystals.txt", *(f"{TABLES}/active{k}.txt" for k in range(1, 5)),
            f"{TABLES}/model_crystals_stage11_nsk0.txt", f"{TABLES}/random_minima_a.txt",
            f"{TABLES}/random_minima_b.txt"],
           stdout=f"{TABLES}/exact_transitions.txt",
           note="exact 96 x 96 transitions of the best states found (0.0034, 0.0067)"),
    # independent of every stage above: the model from the Hamiltonian alone
    Learn("53_learn_from_scratch_symmetric",
          note="the run of record: 51's lessons built in, a committee that holds time "
               "reversal and learns the mirrors (hours; resumable)"),
    Learn("51_learn_from_scratch",
          note="the first complete from-scratch run, rounds 6-9 steered by hand (hours; resumable)"),
    # its Fig. 4: 96 x 96 sweeps from the committee's own minima at the explored fields
    script("scratch_starts", "scratch_starts.py",
           ["--learn", SCRATCH, "--exact-twists", "8",
            "--out", "data/triangular_96_scratch_start_h{}.npy",
            "--out-class", "data/triangular_96_scratch_start_nsk{}.npy"],
           stdout=f"{TABLES}/scratch_starts.txt",
           outputs=[*(f"data/triangular_96_scratch_start_h{h}.npy" for h in EQ_FIELDS),
                    *(f"data/triangular_96_scratch_start_nsk{c}.npy" for c in (2, 1, 0))],
           inputs=[SCRATCH], note="the committee's own 12 x 12 minima (which n_sk it found), "
                                  "priced exactly on 96 x 96"),
    # its crystals across the field in minutes: learned and exact crossings of its own states
    script("scratch_crystals", "scratch_crystals.py", ["--learn", SCRATCH],
           stdout=f"{TABLES}/scratch_crystals.txt",
           inputs=[SCRATCH, *(f"data/triangular_96_scratch_start_nsk{c}.npy" for c in (2, 1, 0))],
           note="the class starts relaxed with the committee at 21 fields, priced exactly"),
    *(Simulate(f"52_sweep_96_scratch_h{h}", "52_sweep_96_scratch.yaml",
               {"zeeman": scratch_fields(h), "initial": f"data/triangular_96_scratch_start_h{h}.npy",
                "output": f"runs/triangular_96_scratch_sweep_h{h}/sweep.h5"},
               note=f"{len(scratch_fields(h))} fields from its minimum at H_z = {h} "
                    f"(~{6 * len(scratch_fields(h))} min)") for h in EQ_FIELDS),
    # the n_sk = 0 branch, as 49: T = 0 dynamics keeps the class it starts in, and the
    # committee's n_sk = 0 states are the lowest at none of the explored fields
    Simulate("52_sweep_96_scratch_nsk0", "52_sweep_96_scratch.yaml",
             {"zeeman": SCRATCH_NSK0_FIELDS, "initial": SCRATCH_NSK0_START,
              "output": "runs/triangular_96_scratch_sweep_nsk0/sweep.h5"},
             note=f"{len(SCRATCH_NSK0_FIELDS)} fields from its lowest n_sk = 0 minimum "
                  f"(~{6 * len(SCRATCH_NSK0_FIELDS)} min)"),
    script("phase_diagram_scratch", "phase_diagram.py",
           ["--sweeps", *(f"runs/triangular_96_scratch_sweep_h{h}/sweep.h5" for h in EQ_FIELDS),
            "runs/triangular_96_scratch_sweep_nsk0/sweep.h5",
            "--labels", *(f"from min {h}" for h in EQ_FIELDS), "from n_sk=0",
            "--model", SCRATCH, "--out", f"{TABLES}/figures_scratch",
            "--snapshots", "0.002", "0.005", "0.008", "0.01"],
           stdout=f"{TABLES}/phase_diagram_96_scratch.txt",
           outputs=[f"{TABLES}/figures_scratch/triangular_phase_diagram.png"],
           inputs=[SCRATCH, *(f"runs/triangular_96_scratch_sweep_h{h}/sweep.h5" for h in EQ_FIELDS),
                   "runs/triangular_96_scratch_sweep_nsk0/sweep.h5"],
           note="the from-scratch committee's transitions (hand-driven model: 0.00364, 0.00729)"),
]

PIPELINE = Pipeline(__file__, STAGES, title="The paper's triangular-lattice result (Fig. 4)")

if __name__ == "__main__":
    sys.exit(main(PIPELINE))

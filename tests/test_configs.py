"""Configs: the ``extends`` key, every YAML file of the repository against its schema, every
file a config names, and the experiments' resumable pipelines.

Which schema a YAML file is checked against follows from where it is and its name (the rule
is written in configs/README.md; a file no rule covers fails :func:`test_every_yaml_file_loads`):

* ``configs/<lattice>_<task>[_...].yaml`` and ``experiments/<exp>/NN_<task>_....yaml``: the
  task word selects the command's schema (:data:`TASKS`; ``learn``: ``ecnn-pyg learn``);
* ``configs/model_*.yaml``: a model architecture (``ECNN.from_yaml``);
* ``experiments/<exp>/_*.yaml``: shared settings, valid through the configs that extend them
  (each must be extended by one);
* ``ecnn_pyg/lattices/*.yaml`` and ``configs/lattices/*.yaml``: lattice files;
  ``ecnn_pyg/pretrained/*.yaml``: model cards.
"""
from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ecnn_pyg.config import ConfigError, load_config, read_config_file

ROOT = Path(__file__).resolve().parent.parent

#: task word of a config's name -> the command whose schema checks it
TASKS = {"generate": "generate", "label": "generate", "train": "train",
         "simulate": "simulate", "sweep": "simulate", "ed_llg": "simulate", "ml_llg": "simulate",
         "learn": "learn"}

#: the user configs in the order a user runs them (each may use the outputs of earlier ones)
USER_CHAIN = ["square_generate", "square_train", "square_train_ifnn", "triangular_generate",
              "triangular_ed_llg", "triangular_label", "triangular_train", "triangular_simulate",
              "triangular_sweep", "triangular_learn", "mylattice_generate", "mylattice_train",
              "mylattice_simulate"]

MODEL_CARD_KEYS = {"name", "model_type", "model_config", "dtype", "trained_on", "command"}


def train_config_loader():
    """``load_train_config`` of the training package."""
    from ecnn_pyg.training import load_train_config
    return load_train_config


def check_generate(path):
    from ecnn_pyg.generate import GENERATE_SCHEMA
    cfg = load_config(path, GENERATE_SCHEMA)
    assert cfg["sampler"] in ("uniform", "file"), f"{path}: sampler {cfg['sampler']!r}"
    assert (cfg["sampler"] == "file") == bool(cfg["spins_from"]), f"{path}: spins_from"
    given = [k for k in ("electrons", "filling", "mu") if cfg[k] is not None]
    assert len(given) == 1, f"{path}: exactly one of electrons, filling, mu; got {given}"
    assert cfg["splits"] and all(isinstance(v, int) and v >= 0 for v in cfg["splits"].values())
    return cfg


def check_simulate(path):
    from ecnn_pyg.dynamics import INTEGRATORS
    from ecnn_pyg.simulate import SIMULATE_SCHEMA
    cfg = load_config(path, SIMULATE_SCHEMA)
    assert cfg["source"] in ("ed", "model"), f"{path}: source {cfg['source']!r}"
    assert cfg["integrator"] in INTEGRATORS, f"{path}: integrator {cfg['integrator']!r}"
    if cfg["source"] == "model":
        assert cfg["model"], f"{path}: source model needs a model"
    else:
        assert cfg["J"] is not None, f"{path}: source ed needs J"
    return cfg


def check_train(path):
    return train_config_loader()(path)


def check_learn(path):
    from ecnn_pyg.learn import load_learn_config
    return load_learn_config(path)


CHECKS = {"generate": check_generate, "simulate": check_simulate, "train": check_train,
          "learn": check_learn}


def tracked_files():
    """Files of the repository (tracked, or new and not ignored), relative to the root."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return set(out.split())


def yaml_files():
    return sorted(p for p in tracked_files() if p.endswith((".yaml", ".yml")))


def task_of(path: str):
    """The command whose schema checks a config file, from its name (None: not a config)."""
    p = Path(path)
    stem = p.stem
    if p.parts[0] == "configs":
        stem = re.sub(r"^[a-z]+?_", "", stem, count=1)          # drop the lattice name
    elif p.parts[0] == "experiments" and re.match(r"\d\d_", stem):
        stem = stem[3:]
    else:
        return None
    for word in sorted(TASKS, key=len, reverse=True):
        if stem == word or stem.startswith(word + "_"):
            return TASKS[word]
    return None


def kind_of(path: str) -> str:
    """The rule that checks a YAML file (see the module docstring)."""
    p = Path(path)
    if p.parts[0] == "configs" and p.stem.startswith("model_"):
        return "model"
    if p.parts[0] == "experiments" and p.name.startswith("_") and len(p.parts) == 3:
        return "fragment"
    if p.parts[:2] in (("ecnn_pyg", "lattices"), ("configs", "lattices")):
        return "lattice"
    if p.parts[:2] == ("ecnn_pyg", "pretrained"):
        return "card"
    if p.parts[0] in ("configs", "experiments") and len(p.parts) == (2 if p.parts[0] == "configs" else 3):
        task = task_of(path)
        if task:
            return task
    return "unknown"


def extended_files():
    """Resolved paths of every file named in an ``extends`` key of a repository YAML file."""
    out = set()
    for f in yaml_files():
        raw = yaml.safe_load((ROOT / f).read_text()) or {}
        ext = raw.get("extends") if isinstance(raw, dict) else None
        for e in ([ext] if isinstance(ext, str) else ext or []):
            out.add((ROOT / f).parent.joinpath(e).resolve())
    return out


# --------------------------------------------------------------------------- extends


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


SCHEMA = {"a": (int, 0), "b": (int, 0), "c": (int, 0), "d": (dict, {}), "xs": (list, [])}


def test_extends_merges_with_the_including_file_on_top(tmp_path):
    write(tmp_path / "shared" / "base.yaml", "a: 1\nb: 1\nd: {x: 1, y: 1}\nxs: [1, 2]\n")
    cfg = write(tmp_path / "cfg.yaml", "extends: shared/base.yaml\nb: 2\nd: {y: 2, z: 2}\nxs: [3]\n")
    got = load_config(cfg, SCHEMA)
    assert got == {"a": 1, "b": 2, "c": 0, "d": {"x": 1, "y": 2, "z": 2}, "xs": [3]}


def test_extends_paths_are_relative_to_the_file_that_names_them(tmp_path):
    write(tmp_path / "a" / "base.yaml", "a: 5\n")
    write(tmp_path / "a" / "mid.yaml", "extends: base.yaml\nb: 6\n")
    cfg = write(tmp_path / "b" / "cfg.yaml", "extends: ../a/mid.yaml\nc: 7\n")
    assert read_config_file(cfg) == {"a": 5, "b": 6, "c": 7}


def test_extends_list_later_files_win(tmp_path):
    write(tmp_path / "one.yaml", "a: 1\nb: 1\nd: {x: 1}\n")
    write(tmp_path / "two.yaml", "b: 2\nd: {y: 2}\n")
    cfg = write(tmp_path / "cfg.yaml", "extends: [one.yaml, two.yaml]\nc: 3\n")
    assert load_config(cfg, SCHEMA) == {"a": 1, "b": 2, "c": 3, "d": {"x": 1, "y": 2}, "xs": []}


def test_overrides_apply_after_extends(tmp_path):
    write(tmp_path / "base.yaml", "a: 1\n")
    cfg = write(tmp_path / "cfg.yaml", "extends: base.yaml\nb: 2\n")
    assert load_config(cfg, SCHEMA, {"a": 9})["a"] == 9


def test_extends_cycle_is_a_config_error(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\na: 1\n")
    write(tmp_path / "b.yaml", "extends: c.yaml\n")
    write(tmp_path / "c.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle.*a.yaml.*b.yaml.*c.yaml.*a.yaml"):
        load_config(tmp_path / "a.yaml", SCHEMA)
    write(tmp_path / "self.yaml", "extends: self.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        read_config_file(tmp_path / "self.yaml")


def test_extends_diamond_is_not_a_cycle(tmp_path):
    write(tmp_path / "base.yaml", "a: 1\n")
    write(tmp_path / "l.yaml", "extends: base.yaml\nb: 2\n")
    write(tmp_path / "r.yaml", "extends: base.yaml\nc: 3\n")
    cfg = write(tmp_path / "cfg.yaml", "extends: [l.yaml, r.yaml]\n")
    assert read_config_file(cfg) == {"a": 1, "b": 2, "c": 3}


def test_extends_missing_file_names_the_including_file(tmp_path):
    cfg = write(tmp_path / "cfg.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"nowhere\.yaml.*named in 'extends' of .*cfg\.yaml"):
        load_config(cfg, SCHEMA)


@pytest.mark.parametrize("value", ["3", "[]", "[base.yaml, 4]", "{a: 1}"])
def test_extends_must_be_paths(tmp_path, value):
    write(tmp_path / "base.yaml", "a: 1\n")
    cfg = write(tmp_path / "cfg.yaml", f"extends: {value}\n")
    with pytest.raises(ConfigError, match="'extends' must be a file path or a non-empty list"):
        load_config(cfg, SCHEMA)


def test_extended_file_errors_name_it(tmp_path):
    write(tmp_path / "bad.yaml", "a: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml' is not valid YAML"):
        read_config_file(write(tmp_path / "cfg.yaml", "extends: bad.yaml\n"))
    write(tmp_path / "list.yaml", "- 1\n")
    with pytest.raises(ConfigError, match="list.yaml' must hold a mapping"):
        read_config_file(write(tmp_path / "cfg2.yaml", "extends: list.yaml\n"))
    write(tmp_path / "unknown.yaml", "zzz: 1\n")
    with pytest.raises(ConfigError, match="unknown config key.*zzz"):
        load_config(write(tmp_path / "cfg3.yaml", "extends: unknown.yaml\n"), SCHEMA)


def test_extends_in_a_mapping_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path / "base.yaml", "a: 4\nb: 4\n")
    monkeypatch.chdir(tmp_path)
    assert load_config({"extends": "base.yaml", "b": 5}, SCHEMA) == \
        {"a": 4, "b": 5, "c": 0, "d": {}, "xs": []}


# --------------------------------------------------------------------------- every YAML file


def test_schema_rule_of_names():
    assert kind_of("configs/square_generate.yaml") == "generate"
    assert kind_of("configs/triangular_ed_llg.yaml") == "simulate"
    assert kind_of("configs/square_train_ifnn.yaml") == "train"
    assert kind_of("experiments/triangular_fig4/44_ed_llg_24_eq_train.yaml") == "simulate"
    assert kind_of("experiments/triangular_fig4/45_label_24_eq_train.yaml") == "generate"
    assert kind_of("experiments/x/_shared.yaml") == "fragment"
    assert kind_of("configs/triangular_learn.yaml") == "learn"
    assert kind_of("configs/model_paper.yaml") == "model"
    assert kind_of("configs/lattices/mylattice.yaml") == "lattice"
    assert kind_of("configs/square_notes.yaml") == "unknown"
    assert kind_of("experiments/x/train.yaml") == "unknown"
    assert kind_of("docs/x.yaml") == "unknown"


def test_every_yaml_file_loads():
    """Each tracked YAML file passes the check of its rule; a file no rule covers fails."""
    from ecnn_pyg.lattice import load_lattice
    from ecnn_pyg.models import check_model_config
    from ecnn_pyg.nn import ECNN
    files = yaml_files()
    assert len(files) > 60
    extended = extended_files()
    kinds = {}
    for f in files:
        kind = kinds[f] = kind_of(f)
        path = ROOT / f
        if kind in CHECKS:
            CHECKS[kind](path)
        elif kind == "model":
            assert isinstance(ECNN.from_yaml(path), ECNN)
        elif kind == "lattice":
            assert load_lattice(path).name == path.stem
        elif kind == "card":
            card = yaml.safe_load(path.read_text())
            missing = MODEL_CARD_KEYS - set(card)
            assert not missing, f"{f}: model card lacks {sorted(missing)}"
            assert card["name"] == path.stem, f"{f}: name {card['name']!r}"
            assert path.with_suffix(".pt").exists(), f"{f}: no {path.stem}.pt beside it"
            check_model_config(card["model_type"], card["model_config"])
        elif kind == "fragment":
            raw = read_config_file(path)
            assert isinstance(raw, dict) and raw
            assert path.resolve() in extended, f"{f}: a shared-settings file nothing extends"
        else:
            pytest.fail(f"{f}: no rule says what this YAML file is (see configs/README.md)")
    assert {"generate", "train", "simulate", "model", "lattice", "card", "fragment"} <= \
        set(kinds.values())


def test_config_headers_stay_inside_the_project():
    """Configs point to the project's own docs, and every config or script they name exists."""
    for f in yaml_files():
        if Path(f).parts[0] not in ("configs", "experiments"):
            continue
        text = (ROOT / f).read_text()
        for word in ("BRI" + "EF", "../" + "shared", "shared" + "/"):  # split, so git grep stays clean
            assert word not in text, f"{f} mentions {word!r}"
        assert not re.search(r"\bissue \d", text, re.I), f"{f} cites an issue"
        for ref in re.findall(r"(?:configs|experiments|benchmarks)/[\w/.-]+\.(?:yaml|py)", text):
            assert (ROOT / ref).exists(), f"{f} names {ref}, which does not exist"


def _is_file_ref(value: str) -> bool:
    return bool(re.search(r"\.(h5|npy|npz|pt|yaml)(#.*)?$", value))


def _names(cfg: dict, task: str):
    """Files a resolved config reads (paths relative to the repository root)."""
    out = []
    if task == "generate" and cfg.get("sampler") == "file":
        out.append(cfg["spins_from"])
    elif task == "simulate":
        if _is_file_ref(str(cfg.get("initial", ""))):
            out.append(cfg["initial"])
        if cfg.get("source") == "model":
            out.append(cfg["model"])
    elif task == "train":
        data = cfg["data"]
        out += [data] if isinstance(data, str) else list(data)
        if cfg.get("init_from"):
            out.append(cfg["init_from"])
    elif task == "learn":
        out += list((cfg.get("seed_data") or {}).get("paths") or [])
        out += list(cfg.get("validation") or [])
        out += [s for s in (cfg.get("explore") or {}).get("starts") or [] if _is_file_ref(s)]
    return [str(x).split("#", 1)[0] for x in out]


def _outputs(cfg: dict, task: str):
    if task == "learn":
        return [cfg["run_dir"] + "/summary.json"]
    return [cfg["run_dir"] + "/best.pt"] if task == "train" else [cfg["output"]]


def _available(ref: str, produced: set, tracked: set) -> bool:
    from ecnn_pyg import pretrained
    if ref in produced or ref in tracked:
        return True
    return not _is_file_ref(ref) and ref in pretrained.available()


def test_user_configs_name_files_that_exist_or_an_earlier_config_makes():
    tracked = tracked_files()
    user = sorted(Path(f).stem for f in yaml_files()
                  if Path(f).parts[0] == "configs" and kind_of(f) in CHECKS)
    assert sorted(USER_CHAIN) == user, "add a new user config to USER_CHAIN, in run order"
    produced = set()
    for stem in USER_CHAIN:
        f = f"configs/{stem}.yaml"
        task = kind_of(f)
        cfg = read_config_file(ROOT / f)
        for ref in _names(cfg, task):
            assert _available(ref, produced, tracked), \
                f"{f} reads {ref}: neither in the repository nor made by an earlier config"
        produced.update(_outputs(cfg, task))


# --------------------------------------------------------------------------- experiments


def experiment_dirs():
    return sorted(p.parent for p in (ROOT / "experiments").glob("*/run.py"))


@pytest.fixture(scope="module")
def pipeline_module():
    """experiments/_pipeline.py, the same module object the run.py files import."""
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        import _pipeline
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    return _pipeline


def test_there_are_experiments():
    names = {p.name for p in experiment_dirs()}
    assert {"square_fig3", "triangular_fig4"} <= names


@pytest.mark.parametrize("exp", [p.name for p in experiment_dirs()])
def test_experiment_stages_read_what_exists_or_an_earlier_stage_makes(exp, pipeline_module):
    """Every file a stage reads (data, spins, checkpoints, models) is in the repository or
    written by an earlier stage of the same experiment (an Experiment stage brings in the
    outputs of another experiment's stages); every config of the folder is run by a stage or
    extended by a config."""
    pipeline = pipeline_module.load_pipeline(ROOT / "experiments" / exp / "run.py")
    tracked = tracked_files()
    produced, used = set(), set()
    for stage in pipeline.stages:
        if isinstance(stage, pipeline_module._ConfigStage) and stage.config is not None:
            assert (ROOT / stage.config_path).is_file(), f"{exp}/{stage.name}: no config"
            used.add(Path(stage.config_path).as_posix())
            task = kind_of(stage.config_path)
            assert task == stage.command, \
                f"{stage.config_path}: named as a {task} config, run by ecnn-pyg {stage.command}"
            if task == "train":
                train_config_loader()(ROOT / stage.config_path, stage.overrides)
            else:                          # the config as the stage runs it, --set included
                CHECKS[task](stage.resolved())
        for ref in stage.inputs():
            assert _available(ref, produced, tracked), \
                f"{exp}/{stage.name} reads {ref}: neither in the repository nor made earlier"
        produced.update(stage.outputs())
    extended = extended_files()
    for f in (ROOT / "experiments" / exp).glob("*.yaml"):
        rel = f.relative_to(ROOT).as_posix()
        if kind_of(rel) == "fragment":
            continue
        assert rel in used or f.resolve() in extended, f"{rel}: no stage runs it"


def test_triangular_chain_copies_every_stage_it_starts_from(pipeline_module):
    """The checkpoints that used to be copied by hand are stages: runs/triangular_stageN.pt."""
    pipeline = pipeline_module.load_pipeline(ROOT / "experiments/triangular_fig4/run.py")
    copies = [s.outputs()[0] for s in pipeline.stages if isinstance(s, pipeline_module.Copy)]
    assert copies == [f"runs/triangular_stage{n}.pt" for n in range(1, 12)]
    overrides = {s.name: s.overrides for s in pipeline.stages
                 if isinstance(s, pipeline_module._ConfigStage)}
    assert overrides["44_ed_llg_24_eq_train_h0.005"]["zeeman"] == [0.005]
    cfg = pipeline.stages[pipeline.index("43_train_stage10")].resolved()
    assert cfg["energy_weight"] == 30.0 and cfg["init_from"] == "runs/triangular_stage9.pt"
    assert pipeline.stages[pipeline.index("44_ed_llg_24_eq_train_h0.002")].resolved()["seed"] == 3


def scripts():
    out = sorted((ROOT / "benchmarks").glob("*.py"))
    out += sorted(p for p in (ROOT / "experiments").glob("*/*.py"))
    return [p.relative_to(ROOT).as_posix() for p in out]


@pytest.mark.parametrize("script", scripts())
def test_script_help_runs(script, monkeypatch, capsys):
    """``--help`` of every script (``--list`` of every run.py) runs: imports and arguments hold."""
    arg = "--list" if script.endswith("run.py") else "--help"
    monkeypatch.setattr(sys, "argv", [script, arg])
    monkeypatch.setattr(sys, "path", [str((ROOT / script).parent)] + sys.path)
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.strip(), f"{script} {arg} printed nothing"


# --------------------------------------------------------------------------- resumable pipeline


def test_pipeline_skips_done_stages_and_continues_interrupted_ones(tmp_path, monkeypatch,
                                                                   pipeline_module, capsys):
    P = pipeline_module
    monkeypatch.setattr(P, "ROOT", tmp_path)
    count = tmp_path / "count.txt"
    tick = ("import pathlib, sys; p = pathlib.Path('count.txt'); "
            "p.write_text(p.read_text() + sys.argv[1] if p.exists() else sys.argv[1])")
    flaky = ("import pathlib, sys; f = pathlib.Path('fail'); "
             "sys.exit(3) if f.exists() else print('table')")

    def concat():
        Path("both.txt").write_text(Path("a.txt").read_text() + Path("b.txt").read_text())

    stages = [
        P.Command("a", ["python", "-c", tick + "; print('A')", "a"], stdout="a.txt"),
        P.Copy("copy_a", "a.txt", "copies/a.txt"),
        P.Command("b", ["python", "-c", flaky], stdout="b.txt"),
        P.Function("both", concat, "concatenate", outputs=["both.txt"], inputs=["a.txt", "b.txt"]),
        P.Command("c", ["python", "-c", tick, "c"], stdout="c.txt", outputs=["count.txt"]),
    ]
    pipe = P.Pipeline(str(tmp_path / "run.py"), stages)
    (tmp_path / "fail").write_text("")
    assert P.main(pipe, []) == 1                       # b fails: a and copy_a done, b interrupted
    assert count.read_text() == "a" and (tmp_path / "copies/a.txt").read_text() == "A\n"
    assert not (tmp_path / "b.txt").exists() and (tmp_path / "b.txt.part").exists()
    assert [s.status() for s in pipe.stages] == ["done", "done", "partial", "todo", "partial"]
    (tmp_path / "fail").unlink()
    capsys.readouterr()
    assert P.main(pipe, ["--dry-run"]) == 0            # prints what is left, runs nothing
    out = capsys.readouterr().out
    assert "[done]    a" in out and "[partial] b" in out and "python -c" in out
    assert not (tmp_path / "b.txt").exists()
    assert P.main(pipe, ["--until", "both"]) == 0
    assert count.read_text() == "a"                    # a was not run again
    assert (tmp_path / "both.txt").read_text() == "A\ntable\n"
    assert pipe.stages[-1].status() == "partial"       # count.txt exists, but c has not run
    assert count.read_text() == "a"
    assert P.main(pipe, []) == 0 and count.read_text() == "ac"
    assert P.main(pipe, []) == 0 and count.read_text() == "ac"   # everything done: nothing runs
    capsys.readouterr()
    assert P.main(pipe, ["--list"]) == 0
    assert capsys.readouterr().out.count("done") == 5
    with pytest.raises(SystemExit, match="unknown stage 'zzz'"):
        P.main(pipe, ["--until", "zzz"])
    with pytest.raises(ValueError, match="stdout"):
        P.Command("d", ["true"], stdout="")
    with pytest.raises(ValueError, match="unique"):
        P.Pipeline(str(tmp_path / "run.py"), [stages[0], stages[0]])


def test_pipeline_status_of_generate_simulate_and_train_stages(tmp_path, monkeypatch,
                                                               pipeline_module):
    """Completion read from the outputs: n_done of a data set, steps of every run, the marker."""
    import h5py
    from ecnn_pyg.generate import generate
    from ecnn_pyg.simulate import simulate
    P = pipeline_module
    monkeypatch.setattr(P, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "gen.yaml", "output: d.h5\nlattice: square\nsize: [4, 4]\nJ: 2.0\n"
                                 "electrons: 14\nsplits: {train: 2}\n")
    write(tmp_path / "sim.yaml", "output: t.h5\nlattice: square\nsize: [4, 4]\nJ: 2.0\n"
                                 "electrons: 14\ndt: 0.1\nn_steps: 2\nsave_every: 1\n"
                                 "zeeman: [0.0, 0.1]\n")
    write(tmp_path / "tr.yaml", "data: d.h5\nrun_dir: r\n")
    gen = P.Generate("gen").bind(tmp_path)
    more = P.Generate("more", "gen.yaml", {"splits": {"train": 3}}).bind(tmp_path)
    sim = P.Simulate("sim").bind(tmp_path)
    longer = P.Simulate("longer", "sim.yaml", {"n_steps": 4}).bind(tmp_path)
    tr = P.Train("tr").bind(tmp_path)
    assert (gen.status(), sim.status(), tr.status()) == ("todo", "todo", "todo")
    generate("gen.yaml")
    assert gen.status() == "done" and more.status() == "partial"
    with h5py.File("d.h5", "r+") as f:
        f.attrs["n_done"] = 1                            # as if interrupted after one sample
    assert gen.status() == "partial"
    assert more.argv() == ["ecnn-pyg", "generate", "--config", "gen.yaml",
                           "--set", "splits={train: 3}"]
    simulate("sim.yaml")
    assert sim.status() == "done" and longer.status() == "partial"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "last.pt").write_text("")
    assert tr.status() == "partial" and "--resume" in tr.argv()
    (tmp_path / "r" / "tr.done").write_text("")
    assert tr.status() == "done"
    assert tr.inputs() == ["d.h5"] and gen.outputs() == ["d.h5"]


def test_phase_diagram_refuses_labels_that_do_not_match_the_sweeps(monkeypatch, capsys):
    """One label per sweep file: a missing label would silently drop a sweep (zip)."""
    script = ROOT / "experiments" / "triangular_fig4" / "phase_diagram.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--sweeps", "a.h5", "b.h5", "c.h5",
                                      "--labels", "nsk2", "nsk1"])
    monkeypatch.setattr(sys, "path", [str(script.parent)] + sys.path)
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(script), run_name="__main__")
    assert exc.value.code == 2
    assert "3 sweeps, 2 labels" in capsys.readouterr().err

"""Resumable stage pipelines: the machinery behind every ``experiments/*/run.py``.

An experiment is a list of stages run one after another from the repository root.
A stage knows its command, the files it reads and the files it writes, and decides
from its outputs whether it is finished, so that rerunning ``run.py`` skips what is
done and continues what was interrupted:

* :class:`Generate` (``ecnn-pyg generate``): done when its HDF5 set holds every
  sample of its splits (``n_done == total``); an interrupted set continues.
* :class:`Simulate` (``ecnn-pyg simulate``): done when every run of the file has
  reached ``n_steps``; an interrupted file continues.
* :class:`Learn` (``ecnn-pyg learn``): done when the loop's ``summary.json`` says it
  finished; an interrupted loop continues where it stopped.
* :class:`Train` (``ecnn-pyg train``): done when ``run_dir/<stage>.done`` exists,
  a marker written after the trainer returned; a run dir with ``last.pt`` but no
  marker is continued with ``--resume``.
* :class:`Copy`: a checkpoint copied to the name the next stage starts from
  (``runs/triangular_stageN.pt``); done when the copy exists.
* :class:`Command`: a script or ``ecnn-pyg`` command; its standard output goes to a
  ``.part`` file renamed to ``stdout`` when the command has succeeded (the marker,
  written last), and it is done when that file and its declared outputs exist.
* :class:`Experiment`: another experiment's ``run.py`` up to one of its stages.

Every run.py has the same command line (:func:`main`): ``--list`` prints the stages
and their status, ``--dry-run`` the commands, ``--until STAGE`` stops after a stage,
``--only STAGE`` runs one stage (if not done) whatever the state of the others, so that
independent stages can run in parallel processes.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent

DONE, PARTIAL, TODO = "done", "partial", "todo"


def _flow(value) -> str:
    """A value as it is written after ``--set key=`` (YAML flow style)."""
    import yaml
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    return text[:-3].strip() if text.endswith("...") else text


def _file_part(path: str) -> str:
    """``data/x.h5#3`` -> ``data/x.h5``."""
    return path.split("#", 1)[0]


class Stage:
    """One step of a pipeline.

    Args:
        name: stage name (``--until``/``--only`` take it).
        note: one line saying what the stage does (``--list``).
    """

    def __init__(self, name: str, note: str = ""):
        self.name = name
        self.note = note
        self.exp_dir: Path = ROOT

    def bind(self, exp_dir: Path) -> "Stage":
        """Attach the stage to the experiment folder its relative names refer to."""
        self.exp_dir = exp_dir
        return self

    def argv(self) -> List[str]:
        """The command as a user would type it (``ecnn-pyg ...``, ``python ...``)."""
        raise NotImplementedError

    def inputs(self) -> List[str]:
        """Files (relative to the repository root) the stage reads."""
        return []

    def outputs(self) -> List[str]:
        """Files or folders (relative to the repository root) the stage writes."""
        return []

    def status(self) -> str:
        """``done``, ``partial`` (started, to be continued) or ``todo``."""
        raise NotImplementedError

    def describe(self) -> str:
        """The command line, shell-quoted."""
        return " ".join(shlex.quote(a) for a in self.argv())

    def run(self) -> None:
        """Run (or continue) the stage; raises ``subprocess.CalledProcessError`` on failure."""
        _call(self.argv())


def _exec_argv(argv: Sequence[str]) -> List[str]:
    """Replace ``ecnn-pyg`` and ``python`` by this interpreter, so the same environment runs."""
    argv = list(argv)
    if argv and argv[0] == "ecnn-pyg":
        return [sys.executable, "-m", "ecnn_pyg.cli", *argv[1:]]
    if argv and argv[0] == "python":
        return [sys.executable, *argv[1:]]
    return argv


def _call(argv: Sequence[str], stdout=None, env: Optional[Mapping[str, str]] = None) -> None:
    full_env = dict(os.environ)
    full_env.update(env or {})
    subprocess.run(_exec_argv(argv), cwd=ROOT, check=True, stdout=stdout, env=full_env)


class _ConfigStage(Stage):
    """A stage that runs one ``ecnn-pyg`` command on a config file (plus ``--set`` overrides).

    The config file is ``<name>.yaml`` in the experiment folder unless ``config``
    names another; ``config=None`` runs the command's built-in default (its
    module's ``DEFAULT_CONFIG``).
    """

    command = ""

    def __init__(self, name: str, config: Optional[str] = "{name}.yaml",
                 overrides: Optional[Mapping] = None, note: str = ""):
        super().__init__(name, note)
        self.config = None if config is None else config.format(name=name)
        self.overrides = dict(overrides or {})

    @property
    def config_path(self) -> Optional[str]:
        """The config file, relative to the repository root (``None``: the built-in default)."""
        if self.config is None:
            return None
        return os.path.relpath(self.exp_dir / self.config, ROOT)

    def resolved(self) -> Dict:
        """The config's keys with ``extends`` resolved and the overrides applied (unchecked)."""
        if self.config is None:
            module = importlib.import_module(f"ecnn_pyg.{self.command}")
            cfg = dict(module.DEFAULT_CONFIG)
        else:
            from ecnn_pyg.config import read_config_file
            cfg = read_config_file(ROOT / self.config_path)
        cfg.update({k: v for k, v in self.overrides.items() if "." not in k})
        return cfg

    def set_args(self) -> List[str]:
        """``--set key=value ...`` for the overrides (empty without)."""
        if not self.overrides:
            return []
        return ["--set", *(f"{k}={_flow(v)}" for k, v in self.overrides.items())]

    def config_args(self) -> List[str]:
        """``--config FILE`` (empty for the built-in default)."""
        return [] if self.config is None else ["--config", self.config_path]

    def argv(self) -> List[str]:
        return ["ecnn-pyg", self.command, *self.config_args(), *self.set_args()]


class Generate(_ConfigStage):
    """``ecnn-pyg generate``: exact labels of an HDF5 data set, resumable."""

    command = "generate"

    def inputs(self) -> List[str]:
        cfg = self.resolved()
        if cfg.get("sampler") == "file" and cfg.get("spins_from"):
            return [_file_part(cfg["spins_from"])]
        return []

    def outputs(self) -> List[str]:
        return [self.resolved()["output"]]

    def status(self) -> str:
        cfg = self.resolved()
        path = ROOT / cfg["output"]
        if not path.exists():
            return TODO
        try:
            from ecnn_pyg.datasets import read_meta
            meta = read_meta(path)
            splits = cfg.get("splits") or meta["splits"]       # what this stage asks for
            total = sum(int(v) for v in splits.values())
            return DONE if int(meta["n_done"]) >= total else PARTIAL
        except Exception:                                    # unreadable: let generate say why
            return PARTIAL


class Simulate(_ConfigStage):
    """``ecnn-pyg simulate``: an LLG run or sweep written to HDF5, resumable."""

    command = "simulate"

    def inputs(self) -> List[str]:
        cfg = self.resolved()
        out = []
        initial = str(cfg.get("initial", "random"))
        if initial.endswith(".npy") or ".h5" in initial:
            out.append(_file_part(initial))
        model = cfg.get("model")
        if cfg.get("source") == "model" and model:     # a file, a run folder or a pretrained name
            out.append(str(model))
        return out

    def outputs(self) -> List[str]:
        return [self.resolved()["output"]]

    def status(self) -> str:
        cfg = self.resolved()
        path = ROOT / cfg["output"]
        if not path.exists():
            return TODO
        n_runs = len(_as_list(cfg.get("zeeman", 0.0))) * len(_as_list(cfg.get("temperature", 0.0)))
        try:
            import h5py
            with h5py.File(path, "r", locking=False) as f:
                steps = [int(f[k].attrs["step"]) for k in f if k.startswith("run_")]
        except Exception:
            return PARTIAL
        done = len(steps) == n_runs and all(s >= int(cfg["n_steps"]) for s in steps)
        return DONE if done else PARTIAL


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


class Learn(_ConfigStage):
    """``ecnn-pyg learn``: done when the run's ``summary.json`` says the loop finished
    (converged, out of candidates or at its last round); an interrupted loop continues.

    ``extra`` are ``--set`` keys added at run time (dotted keys reach into a section:
    ``{"explore.starts": [...], "validation": [...]}``) for files that earlier stages make,
    so that the config file itself stays valid where they do not exist yet.
    """

    command = "learn"

    def __init__(self, name: str, extra: Optional[Mapping] = None, **kw):
        super().__init__(name, **kw)
        self.extra = dict(extra or {})

    def _setting(self, section: str, key: str):
        dotted = f"{section}.{key}" if section else key
        if dotted in self.extra:
            return self.extra[dotted]
        cfg = self.resolved()
        return (cfg.get(section) or {}).get(key) if section else cfg.get(key)

    def inputs(self) -> List[str]:
        starts = [s for s in _as_list(self._setting("explore", "starts") or [])
                  if str(s).endswith(".npy")]
        return (starts + list(self._setting("seed_data", "paths") or [])
                + list(self._setting("", "validation") or []))

    def outputs(self) -> List[str]:
        rd = self.resolved()["run_dir"]
        return [rd, f"{rd}/summary.json"]

    def argv(self) -> List[str]:
        sets = [f"{k}={_flow(v)}" for k, v in {**self.overrides, **self.extra}.items()]
        return ["ecnn-pyg", "learn", *self.config_args(), *(["--set", *sets] if sets else [])]

    def status(self) -> str:
        import json
        run_dir = ROOT / self.resolved()["run_dir"]
        summary = run_dir / "summary.json"
        try:
            if json.loads(summary.read_text()).get("finished"):
                return DONE
        except (OSError, ValueError):
            pass
        return PARTIAL if run_dir.exists() else TODO


class Train(_ConfigStage):
    """``ecnn-pyg train``, continued with ``--resume`` when its run dir has a ``last.pt``."""

    command = "train"

    def run_dir(self) -> str:
        """The run directory (relative to the repository root)."""
        return self.resolved()["run_dir"]

    def marker(self) -> Path:
        """``run_dir/<stage>.done``, written when the trainer has returned."""
        return ROOT / self.run_dir() / f"{self.name}.done"

    def inputs(self) -> List[str]:
        cfg = self.resolved()
        data = cfg.get("data") or []
        out = list(_as_list(data))
        if cfg.get("init_from"):
            out.append(cfg["init_from"])
        return out

    def outputs(self) -> List[str]:
        rd = self.run_dir()
        return [rd, f"{rd}/best.pt", f"{rd}/last.pt"]

    def status(self) -> str:
        if self.marker().exists():
            return DONE
        return PARTIAL if (ROOT / self.run_dir() / "last.pt").exists() else TODO

    def argv(self) -> List[str]:
        resume = ["--resume"] if (ROOT / self.run_dir() / "last.pt").exists() else []
        return ["ecnn-pyg", "train", *self.config_args(), *resume, *self.set_args()]

    def run(self) -> None:
        super().run()
        self.marker().write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {self.describe()}\n")


class Copy(Stage):
    """Copy a file (a checkpoint) to the name that later stages start from."""

    def __init__(self, name: str, src: str, dst: str, note: str = ""):
        super().__init__(name, note)
        self.src, self.dst = src, dst

    def argv(self) -> List[str]:
        return ["cp", self.src, self.dst]

    def inputs(self) -> List[str]:
        return [self.src]

    def outputs(self) -> List[str]:
        return [self.dst]

    def status(self) -> str:
        return DONE if (ROOT / self.dst).exists() else TODO

    def run(self) -> None:
        dst = ROOT / self.dst
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".part")
        shutil.copyfile(ROOT / self.src, tmp)
        tmp.replace(dst)


class Command(Stage):
    """A script or command line; its standard output is kept in ``stdout``.

    Args:
        name: stage name.
        argv: the command; ``python`` and ``ecnn-pyg`` run in this interpreter's environment.
        stdout: file that receives the standard output (written as ``stdout.part`` and
            renamed when the command has succeeded: the stage's completion marker, so a
            command interrupted after writing its other outputs is not taken as done).
        outputs: other files the command writes (all must exist for the stage to be done).
        inputs: files the command reads.
        env: extra environment variables (e.g. ``OPENBLAS_NUM_THREADS``).
        note: one line for ``--list``.
    """

    def __init__(self, name: str, argv: Sequence[str], stdout: str,
                 outputs: Iterable[str] = (), inputs: Iterable[str] = (),
                 env: Optional[Mapping[str, str]] = None, note: str = ""):
        super().__init__(name, note)
        if not stdout:
            raise ValueError(f"stage {name}: a command needs a stdout file (its completion marker)")
        self._argv = list(argv)
        self.stdout = stdout
        self._outputs = list(outputs)
        self._inputs = list(inputs)
        self.env = dict(env or {})

    def argv(self) -> List[str]:
        return list(self._argv)

    def describe(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        cmd = super().describe()
        return (env + " " if env else "") + cmd + f" > {shlex.quote(self.stdout)}"

    def inputs(self) -> List[str]:
        return list(self._inputs)

    def outputs(self) -> List[str]:
        return [self.stdout] + list(self._outputs)

    def status(self) -> str:
        files = [ROOT / p for p in self.outputs()]
        if all(p.exists() for p in files):
            return DONE
        started = any(p.exists() for p in files) or (ROOT / (self.stdout + ".part")).exists()
        return PARTIAL if started else TODO

    def run(self) -> None:
        for p in self._outputs:
            (ROOT / p).parent.mkdir(parents=True, exist_ok=True)
        out = ROOT / self.stdout
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(out.name + ".part")
        with open(part, "w") as f:
            _call(self._argv, stdout=f, env=self.env)
        part.replace(out)


class Function(Stage):
    """A few lines of Python (e.g. concatenating two arrays); done when its outputs exist.

    Args:
        name: stage name.
        func: called with no arguments from the repository root; must write ``outputs``
            (write to a temporary name and rename, so a crash leaves no half file).
        text: what the function does, printed by ``--dry-run``.
        outputs: files it writes.
        inputs: files it reads.
        note: one line for ``--list``.
    """

    def __init__(self, name: str, func: Callable[[], None], text: str,
                 outputs: Iterable[str], inputs: Iterable[str] = (), note: str = ""):
        super().__init__(name, note)
        self.func, self.text = func, text
        self._outputs, self._inputs = list(outputs), list(inputs)

    def argv(self) -> List[str]:
        return ["python", "-c", self.text]

    def describe(self) -> str:
        return f"(python) {self.text}"

    def inputs(self) -> List[str]:
        return list(self._inputs)

    def outputs(self) -> List[str]:
        return list(self._outputs)

    def status(self) -> str:
        return DONE if all((ROOT / p).exists() for p in self._outputs) else TODO

    def run(self) -> None:
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            self.func()
        finally:
            os.chdir(cwd)


def load_pipeline(run_py: Path) -> "Pipeline":
    """The :class:`Pipeline` named ``PIPELINE`` in an experiment's run.py (imported, not run)."""
    run_py = Path(run_py).resolve()
    name = "_experiment_" + run_py.parent.name
    spec = importlib.util.spec_from_file_location(name, run_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PIPELINE


class Experiment(Stage):
    """Another experiment's pipeline, up to and including one of its stages."""

    def __init__(self, name: str, run_py: str, until: str, note: str = ""):
        super().__init__(name, note)
        self.run_py, self.until = run_py, until

    def pipeline(self) -> "Pipeline":
        """The other experiment's pipeline."""
        return load_pipeline(ROOT / self.run_py)

    def stages(self) -> List[Stage]:
        """Its stages up to ``until``."""
        return self.pipeline().upto(self.until)

    def argv(self) -> List[str]:
        return ["python", self.run_py, "--until", self.until]

    def outputs(self) -> List[str]:
        return [p for s in self.stages() for p in s.outputs()]

    def status(self) -> str:
        states = [s.status() for s in self.stages()]
        if all(s == DONE for s in states):
            return DONE
        return TODO if all(s == TODO for s in states) else PARTIAL


class Pipeline:
    """The stages of one experiment, in order.

    Args:
        run_py: ``__file__`` of the experiment's run.py (its folder resolves config names).
        stages: the stages, in the order they run.
        title: one line printed by ``--list``.
    """

    def __init__(self, run_py: str, stages: Sequence[Stage], title: str = ""):
        self.exp_dir = Path(run_py).resolve().parent
        self.stages = [s.bind(self.exp_dir) for s in stages]
        self.title = title
        names = [s.name for s in self.stages]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(dup)}")

    def index(self, name: str) -> int:
        """Position of a stage, by name (or by its 1-based number in ``--list``)."""
        names = [s.name for s in self.stages]
        if name in names:
            return names.index(name)
        if name.isdigit() and 1 <= int(name) <= len(names):
            return int(name) - 1
        raise SystemExit(f"unknown stage '{name}'; stages: {', '.join(names)}")

    def upto(self, name: Optional[str]) -> List[Stage]:
        """The stages up to and including ``name`` (all for ``None``)."""
        return self.stages if name is None else self.stages[:self.index(name) + 1]


def main(pipeline: Pipeline, argv: Optional[Sequence[str]] = None) -> int:
    """Command line of every run.py: run the stages not yet done, in order.

    Args:
        pipeline: the experiment's stages.
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        0 when every selected stage is done, 1 when a stage failed.
    """
    p = argparse.ArgumentParser(
        description=(pipeline.title or "Run the experiment's stages")
        + ". Finished stages are skipped, interrupted ones continue. Run from anywhere; "
          "paths are relative to the repository root.")
    p.add_argument("--list", action="store_true", help="print the stages and their status")
    p.add_argument("--dry-run", action="store_true",
                   help="print the commands of the stages not yet done, run nothing")
    p.add_argument("--until", metavar="STAGE", help="stop after this stage (name or number)")
    p.add_argument("--only", metavar="STAGE", help="run only this stage (name or number)")
    a = p.parse_args(argv)
    if a.list:
        width = max(len(s.name) for s in pipeline.stages)
        if pipeline.title:
            print(pipeline.title)
        for i, s in enumerate(pipeline.stages, 1):
            print(f"{i:3d}  {s.name:<{width}}  {s.status():<7}  {s.note}")
        return 0
    stages = [pipeline.stages[pipeline.index(a.only)]] if a.only else pipeline.upto(a.until)
    for s in stages:
        state = s.status()
        if state == DONE:
            print(f"[done]    {s.name}", flush=True)
            continue
        if a.dry_run:
            print(f"[{state}]{' ' * (8 - len(state))}{s.name}\n    {s.describe()}", flush=True)
            continue
        print(f"[run]     {s.name}: {s.describe()}", flush=True)
        t0 = time.time()
        try:
            s.run()
        except subprocess.CalledProcessError as err:
            print(f"stage {s.name} failed (exit status {err.returncode}); rerun to continue",
                  file=sys.stderr)
            return 1
        print(f"[done]    {s.name} ({time.time() - t0:.0f} s)", flush=True)
    return 0

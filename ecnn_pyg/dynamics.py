r"""Stochastic Landau-Lifshitz-Gilbert dynamics of classical unit spins.

The equation of motion (``docs/conventions.md``, "Dynamics"; :math:`\hbar = 1`,
time in units of :math:`1/t_1`) in Gilbert form, written explicitly:

.. math::

    \frac{d\mathbf S_r}{dt} = -\frac{1}{1+\alpha^2}\Big[\mathbf S_r\times(\mathbf B_r+\boldsymbol\xi_r)
        + \alpha\,\mathbf S_r\times\big(\mathbf S_r\times(\mathbf B_r+\boldsymbol\xi_r)\big)\Big],
    \qquad \langle\xi_{ra}(t)\xi_{r'b}(t')\rangle = 2\alpha T\,\delta_{rr'}\delta_{ab}\delta(t-t').

:math:`\mathbf B_r = -\partial E/\partial\mathbf S_r` is the effective field.
The same right-hand side is a rotation, :math:`d\mathbf S/dt = \boldsymbol\omega\times\mathbf S`
with :math:`\boldsymbol\omega = (\mathbf B' + \alpha\,\mathbf S\times\mathbf B')/(1+\alpha^2)`,
:math:`\mathbf B' = \mathbf B + \boldsymbol\xi`. It lowers the energy at :math:`T = 0` and samples
:math:`e^{-E/T}` at :math:`T > 0`. The noise is drawn once per step,
:math:`\sqrt{2\alpha T/dt}\,\mathcal N(0, 1)` per component, and used in both
the predictor and the corrector (Stratonovich interpretation).

The pieces, in the idiom of Sunny.jl (``Langevin(dt; damping, kT)`` and ``step!``):

* a **field source**: any callable ``spins -> field`` on torch tensors of shape
  ``(N, 3)`` or ``(R, N, 3)`` (``R`` replicas). Adaptors:
  :func:`numpy_field_source` (e.g. the exact-diagonalisation solver) and
  :func:`model_field_source` (a neural model returning ``{"field": ...}``);
* a :class:`SpinSystem`: a field source plus the Zeeman field :math:`H_z\hat z`,
  added analytically (scalar, or one value per replica);
* an **integrator**, a small validated object holding ``dt``, ``alpha`` and
  ``temperature``: :class:`Heun` (with renormalisation), :class:`DepondtMertens`
  (rotation) or :class:`SIB` (semi-implicit, Mentink et al., J. Phys.: Condens.
  Matter 22, 176001 (2010)). All keep :math:`|\mathbf S| = 1` and evaluate the
  field twice per step. ``integrator.step(spins, system)`` returns the new spins,
  ``integrator.run(spins, system, n_steps)`` repeats it.

Everything runs on the device and in the dtype (float32 or float64) of the
spins; noise comes from a seeded :class:`torch.Generator` on that device (one
stream per integrator object: successive ``run`` calls continue it). Steps run
under :func:`torch.no_grad`; a field source that differentiates an energy
must enable autograd itself (:func:`model_field_source` does).

Example::

    ed = KondoED(graph, J=-1.0, mu=-3.5)
    system = SpinSystem(numpy_field_source(lambda s: ed.energy_field(s)[1]), zeeman=0.005)
    spins = random_spins(graph.num_nodes, seed=0)
    dt = suggest_timestep(system(spins), alpha=1.0, temperature=0.005)
    integ = Heun(dt, alpha=1.0, temperature=0.005, seed=1)
    spins = integ.run(spins, system, 1000)
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

# the package's one spin validation helper and random sampler, re-exported here
from .spins import SpinError, check_spins, random_spins

__all__ = ["SpinError", "check_spins", "normalize", "random_spins", "llg_rhs",
           "SpinSystem", "numpy_field_source", "model_field_source", "suggest_timestep",
           "check_timestep", "TimestepWarning", "LLGIntegrator", "Heun", "DepondtMertens", "SIB",
           "INTEGRATORS", "make_integrator", "run"]

FieldSource = Callable[[torch.Tensor], torch.Tensor]
Scalar = Union[float, int, Sequence[float], np.ndarray, torch.Tensor]


# ----------------------------------------------------------------- spin helpers
def normalize(spins: torch.Tensor) -> torch.Tensor:
    """Spins divided by their length (last axis)."""
    return spins / spins.norm(dim=-1, keepdim=True)


def llg_rhs(spins: torch.Tensor, field: torch.Tensor, alpha=0.0) -> torch.Tensor:
    r"""Right-hand side :math:`-[\mathbf S\times\mathbf B + \alpha\mathbf S\times(\mathbf S\times\mathbf B)]/(1+\alpha^2)`.

    ``alpha`` is a number or a tensor broadcastable to ``spins[..., :1]`` (one value per replica
    as shape ``(R, 1, 1)``). The noise, if any, is part of ``field``.
    """
    sxb = torch.cross(spins, field, dim=-1)
    return -(sxb + alpha * torch.cross(spins, sxb, dim=-1)) / (1 + alpha * alpha)


def _omega(spins: torch.Tensor, field: torch.Tensor, alpha) -> torch.Tensor:
    """Angular velocity: dS/dt = omega x S, omega = (B + alpha S x B) / (1 + alpha^2)."""
    return (field + alpha * torch.cross(spins, field, dim=-1)) / (1 + alpha * alpha)


def _rotate(spins: torch.Tensor, omega: torch.Tensor, dt: float) -> torch.Tensor:
    """Rotate ``spins`` about ``omega`` by the angle ``|omega| dt`` (Rodrigues' formula)."""
    w = omega.norm(dim=-1, keepdim=True)
    theta = w * dt
    n = omega / w.clamp_min(torch.finfo(omega.dtype).tiny)
    c, s = torch.cos(theta), torch.sin(theta)
    return (spins * c + torch.cross(n, spins, dim=-1) * s
            + n * (n * spins).sum(-1, keepdim=True) * (1 - c))


def _cayley(spins: torch.Tensor, omega: torch.Tensor, dt: float) -> torch.Tensor:
    r"""Solve the implicit midpoint step :math:`X - S = dt\,\omega\times(X+S)/2` for :math:`X`.

    Closed form (a Cayley rotation, norm-preserving): with :math:`A = dt\,\omega/2` and
    :math:`b = S + A\times S`, :math:`X = (b + A\times b + (A\cdot b)A)/(1+|A|^2)`.
    """
    a = omega * (0.5 * dt)
    b = spins + torch.cross(a, spins, dim=-1)
    return (b + torch.cross(a, b, dim=-1) + a * (a * b).sum(-1, keepdim=True)) \
        / (1 + (a * a).sum(-1, keepdim=True))


# ----------------------------------------------------------------- parameters
def _per_replica(value: Scalar, name: str, allowed: str, minimum: float = 0.0,
                 strict: bool = False) -> Union[float, torch.Tensor]:
    """A finite number >= minimum (> if strict), or a 1D array of them (one per replica)."""
    allowed = f" {allowed}" if allowed else ""
    if isinstance(value, torch.Tensor):
        arr = value.detach().cpu().double().numpy()
    else:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a number{allowed}, got {value!r}") from err
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(f"{name} must be a number{allowed} or a 1D sequence of them (one per "
                         f"replica), got shape {arr.shape}")
    bad = ~np.isfinite(arr) | ((arr <= minimum) if strict else (arr < minimum))
    if bad.any():
        raise ValueError(f"{name} must be finite{' and' + allowed if allowed else ''}, "
                         f"got {value!r}")
    if arr.ndim == 0:
        return float(arr)
    return torch.from_numpy(arr.copy())


def _broadcast(value: Union[float, torch.Tensor], spins: torch.Tensor, name: str):
    """A scalar, or a per-replica (R,) tensor reshaped to (R, 1, 1) on the spins' device/dtype."""
    if not isinstance(value, torch.Tensor):
        return value
    if value.ndim == 0:
        return float(value)
    if spins.ndim != 3 or value.shape[0] != spins.shape[0]:
        raise SpinError(f"{name} has {value.shape[0]} values (one per replica) but the spins have "
                        f"shape {tuple(spins.shape)}; per-replica values need spins (R, N, 3) "
                        f"with R = {value.shape[0]}")
    return value.to(device=spins.device, dtype=spins.dtype).view(-1, 1, 1)


# ----------------------------------------------------------------- field sources
class SpinSystem:
    r"""A field source plus the Zeeman field: :math:`\mathbf B = \mathbf B_{\rm source}(\mathbf S) + H_z\hat z`.

    Calling the system, ``system(spins)``, returns the total field. The Zeeman
    term acts on the localized spins only (``docs/conventions.md``, "Hamiltonian
    and signs") and is never part of the learned or exactly diagonalised field.

    Args:
        source: callable ``spins -> field`` on torch tensors, ``(N, 3)`` or ``(R, N, 3)``
            in, same shape out (see :func:`numpy_field_source`, :func:`model_field_source`);
            ``None`` for a free spin in the Zeeman field only.
        zeeman: :math:`H_z`, a number or one value per replica (shape ``(R,)``).
        energy: optional callable ``spins -> energy`` (shape ``()`` or ``(R,)``) of the
            source; :meth:`energy` then adds the Zeeman energy :math:`-H_z\sum_r S^z_r`.
    """

    def __init__(self, source: Optional[FieldSource] = None, zeeman: Scalar = 0.0,
                 energy: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        if source is not None and not callable(source):
            raise TypeError(f"source must be a callable spins -> field, got {type(source).__name__}")
        self.source = source
        self.zeeman = _per_replica(zeeman, "zeeman (H_z)", "", minimum=-math.inf)
        self.energy_source = energy

    def _zeeman(self, spins):
        return _broadcast(self.zeeman, spins, "zeeman (H_z)")

    def __call__(self, spins: torch.Tensor) -> torch.Tensor:
        if self.source is None:
            field = torch.zeros_like(spins)
        else:
            field = self.source(spins)
            if not isinstance(field, torch.Tensor) or field.shape != spins.shape:
                got = tuple(field.shape) if isinstance(field, torch.Tensor) else type(field).__name__
                raise SpinError(f"the field source returned {got}, expected a tensor of the "
                                f"spins' shape {tuple(spins.shape)}")
            field = field.to(spins.dtype)
        hz = self._zeeman(spins)
        if isinstance(hz, torch.Tensor) or hz != 0.0:
            zhat = torch.zeros(3, dtype=spins.dtype, device=spins.device)
            zhat[2] = 1.0
            field = field + hz * zhat
        return field

    def energy(self, spins: torch.Tensor) -> torch.Tensor:
        """Source energy (if given) plus the Zeeman energy, per replica."""
        hz = self._zeeman(spins)
        sz = spins[..., 2]
        ez = -(hz.view(-1, 1) * sz).sum(-1) if isinstance(hz, torch.Tensor) else -hz * sz.sum(-1)
        if self.energy_source is None:
            return ez
        e = torch.as_tensor(self.energy_source(spins), dtype=spins.dtype, device=spins.device)
        return e + ez

    def __repr__(self):
        hz = self.zeeman if not isinstance(self.zeeman, torch.Tensor) \
            else f"<{self.zeeman.numel()} replicas>"
        return f"SpinSystem(source={self.source!r}, zeeman={hz})"


def numpy_field_source(fn: Callable[[np.ndarray], np.ndarray]) -> FieldSource:
    """Wrap a numpy callable ``spins (float64 array) -> field (array)`` as a torch field source.

    The spins are handed over as a float64 numpy array of the same shape
    (``(N, 3)`` or ``(R, N, 3)``); the field comes back on the spins' device and
    dtype. For the exact-diagonalisation solver::

        source = numpy_field_source(lambda s: ed.energy_field(s)[1])

    (``energy_field`` returns ``(n, N, 3)`` fields even for one configuration:
    the result is reshaped to the shape of the spins when the sizes agree.)
    """
    if not callable(fn):
        raise TypeError(f"numpy_field_source needs a callable, got {type(fn).__name__}")

    def source(spins: torch.Tensor) -> torch.Tensor:
        s = spins.detach().to("cpu", torch.float64).numpy()
        field = np.asarray(fn(s), dtype=np.float64)
        if field.size != s.size:
            raise SpinError(f"the numpy field source returned shape {field.shape} for spins of "
                            f"shape {s.shape}")
        return torch.from_numpy(field.reshape(s.shape)).to(device=spins.device, dtype=spins.dtype)

    source.__name__ = f"numpy_field_source({getattr(fn, '__name__', type(fn).__name__)})"
    return source


def model_field_source(model: torch.nn.Module, graph, key: str = "field",
                       per_replica: bool = True, max_sites: Optional[int] = None,
                       tiles: Optional[Sequence[int]] = None) -> FieldSource:
    r"""A neural model as a field source.

    Assumed signature (duck-typed): ``model(graph, spins)`` with ``spins`` of
    shape ``(N, 3)`` returns a dict whose ``key`` entry (default ``"field"``) is
    the electronic field :math:`-\partial E/\partial \mathbf S`, shape ``(N, 3)``
    (as :class:`ecnn_pyg.nn` models do). The model may use autograd
    internally: it is called under :func:`torch.enable_grad`, and the field is
    detached (put the model in ``eval()`` mode so that it does not keep the
    graph of the field). The spins are cast to the dtype and device of the
    model's parameters and the field cast back; the graph is moved to that
    device once. The Zeeman field is not the model's business: add it with
    :class:`SpinSystem`.

    Args:
        per_replica: for ``(R, N, 3)`` spins, call the model once per replica
            (default); ``False`` hands the whole batch to a model that accepts it.
        max_sites: evaluate region by region with halos, at most this many
            sites (region plus halo) at once: the same field in bounded memory
            (:mod:`ecnn_pyg.distributed.tiling`; strictly local models only).
        tiles: parts per axis of a periodic supercell instead of ``max_sites``.
    """
    if max_sites is not None or tiles is not None:
        from .distributed.tiling import tiled_field_source
        return tiled_field_source(model, graph, max_sites=max_sites, tiles=tiles)
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    p_dtype = params[0].dtype if params else None
    p_device = params[0].device if params else None
    if p_device is not None and hasattr(graph, "to"):
        graph = graph.to(p_device)

    def call(s: torch.Tensor) -> torch.Tensor:
        x = s.detach().to(device=p_device or s.device, dtype=p_dtype or s.dtype)
        with torch.enable_grad():
            out = model(graph, x)
        if not isinstance(out, dict) or key not in out:
            raise SpinError(f"the model must return a dict with a '{key}' entry, got "
                            f"{type(out).__name__}" + (f" with keys {list(out)}"
                                                       if isinstance(out, dict) else ""))
        return out[key].detach().to(device=s.device, dtype=s.dtype)

    def source(spins: torch.Tensor) -> torch.Tensor:
        if per_replica and spins.ndim == 3:
            return torch.stack([call(s) for s in spins])
        return call(spins)

    source.__name__ = f"model_field_source({type(model).__name__})"
    return source


def _as_system(field) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(field, SpinSystem):
        return field
    if callable(field):
        return SpinSystem(field)
    raise TypeError("the field must be a SpinSystem or a callable spins -> field, got "
                    f"{type(field).__name__}")


# ----------------------------------------------------------------- time step
def suggest_timestep(field: torch.Tensor, alpha: Scalar = 0.0, temperature: Scalar = 0.0,
                     tol: float = 1e-2) -> float:
    r"""A time step from the current field scale (after Sunny's ``suggest_timestep``).

    The fastest rate in the dynamics is the precession frequency
    :math:`\omega = \mathrm{rms}_r|\mathbf B_r|`; damping larger than 1 speeds up the
    relaxation (factor :math:`\alpha`), and the noise sets the rate :math:`\alpha T`.
    The integrators are second order, so the error per unit time scales as
    :math:`(\omega\,dt)^2` and

    .. math:: dt = \sqrt{\mathrm{tol}} / \max\big(\omega\max(1, \alpha),\ \alpha T\big).

    Args:
        field: total field (Zeeman included) of a representative, preferably
            low-energy, configuration: ``(N, 3)`` or ``(R, N, 3)``.
        alpha, temperature: as for the integrator (the largest value is used
            when one is given per replica).
        tol: accepted error per unit time, in ``(0, 1)``; the step scales as ``sqrt(tol)``.
    """
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    field = torch.as_tensor(field)
    if field.ndim < 1 or field.shape[-1] != 3 or not bool(torch.isfinite(field).all()):
        raise SpinError("field must be a finite tensor of shape (..., 3)")
    a = _per_replica(alpha, "alpha", ">= 0")
    t = _per_replica(temperature, "temperature", ">= 0")
    a = float(a.max()) if isinstance(a, torch.Tensor) else a
    t = float(t.max()) if isinstance(t, torch.Tensor) else t
    omega = float(field.double().pow(2).sum(-1).mean().sqrt()) * max(1.0, a)
    rate = max(omega, a * t)
    if rate == 0.0:
        raise ValueError("the field and the temperature are zero: no time scale to suggest a "
                         "time step from")
    return math.sqrt(tol) / rate


class TimestepWarning(UserWarning):
    """The time step is large against the field's time scale (see :func:`check_timestep`)."""


def check_timestep(dt: float, field: torch.Tensor, alpha: Scalar = 0.0,
                   temperature: Scalar = 0.0, tol: float = 1e-2, factor: float = 10.0) -> float:
    r"""Warn (:class:`TimestepWarning`) when ``dt`` exceeds ``factor`` x :func:`suggest_timestep`.

    With the defaults the limit is one radian of precession per step
    (:math:`dt\,\omega > 1`): beyond it no integrator follows the motion, the
    spins jump, and the run looks fine but is not the LLG trajectory.

    Args:
        dt: the time step (units of :math:`1/t_1`, :math:`\hbar = 1`).
        field, alpha, temperature, tol: as for :func:`suggest_timestep`.
        factor: how many suggested steps ``dt`` may be before the warning.

    Returns:
        The suggested step (``inf`` when the field and temperature are zero,
        which sets no time scale).
    """
    try:
        suggested = suggest_timestep(field, alpha, temperature, tol)
    except ValueError:          # zero field at T = 0: any dt
        return math.inf
    if float(dt) > factor * suggested:
        warnings.warn(f"dt = {float(dt):g} (units of 1/t1) is {float(dt) / suggested:.3g} times "
                      f"the step suggest_timestep gives for this field ({suggested:.3g}, tol "
                      f"{tol:g}): ~{float(dt) * math.sqrt(tol) / suggested:.3g} rad of precession "
                      f"per step, the dynamics is not resolved; use dt <= "
                      f"{factor * suggested:.3g}", TimestepWarning, stacklevel=2)
    return suggested


# ----------------------------------------------------------------- integrators
class LLGIntegrator:
    r"""Base class of the stochastic LLG integrators (``docs/conventions.md``, "Dynamics").

    Args:
        dt: time step, finite and > 0 (units of :math:`1/t_1`).
        alpha: Gilbert damping, finite and >= 0; a number or one value per replica.
        temperature: :math:`k_B T`, finite and >= 0; a number or one value per replica.
        seed: seed of the noise generator (created on the spins' device at the first
            noisy step); ignored when ``generator`` is given.
        generator: a :class:`torch.Generator` on the device of the spins.

    ``step(spins, field)`` advances ``(N, 3)`` or ``(R, N, 3)`` unit spins by ``dt``
    and returns the new spins; ``field`` is a :class:`SpinSystem` or any callable
    ``spins -> total field``. Subclasses implement :meth:`_step`.
    """

    name = "llg"

    def __init__(self, dt: float, alpha: Scalar = 0.0, temperature: Scalar = 0.0,
                 seed: Optional[int] = None, generator: Optional[torch.Generator] = None):
        try:
            dt_ok = math.isfinite(float(dt)) and float(dt) > 0
        except (TypeError, ValueError):
            dt_ok = False
        if not dt_ok or isinstance(dt, bool):
            raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
        self.dt = float(dt)
        self.alpha = _per_replica(alpha, "alpha (Gilbert damping)", ">= 0")
        self.temperature = _per_replica(temperature, "temperature", ">= 0")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.seed = seed
        self.generator = generator

    # -- noise
    @property
    def noisy(self) -> bool:
        """Whether any replica has alpha * T > 0 (then noise is drawn)."""
        return bool((torch.as_tensor(self.alpha) * torch.as_tensor(self.temperature)).max() > 0)

    def _generator(self, device: torch.device) -> Optional[torch.Generator]:
        if self.generator is None:
            if self.seed is None:
                return None
            self.generator = torch.Generator(device=device).manual_seed(int(self.seed))
        if self.generator.device.type != device.type:
            raise SpinError(f"the noise generator lives on {self.generator.device} but the spins "
                            f"on {device}; pass a generator on the spins' device")
        return self.generator

    def noise(self, spins: torch.Tensor) -> Optional[torch.Tensor]:
        r"""One step of thermal field :math:`\sqrt{2\alpha T/dt}\,\mathcal N(0,1)` (``None`` at T = 0)."""
        if not self.noisy:
            return None
        a = _broadcast(self.alpha, spins, "alpha")
        t = _broadcast(self.temperature, spins, "temperature")
        amp = a * t * (2.0 / self.dt)
        amp = amp.sqrt() if isinstance(amp, torch.Tensor) else math.sqrt(amp)
        gen = self._generator(spins.device)
        return amp * torch.randn(spins.shape, generator=gen, dtype=spins.dtype,
                                 device=spins.device)

    # -- stepping
    def step(self, spins: torch.Tensor, field) -> torch.Tensor:
        """Advance the spins by one step ``dt``; the input is checked and left unchanged."""
        spins = check_spins(spins)
        return self._advance(spins, _as_system(field))

    def _advance(self, spins, system):
        alpha = _broadcast(self.alpha, spins, "alpha")
        _broadcast(self.temperature, spins, "temperature")
        with torch.no_grad():
            return self._step(spins, system, alpha, self.noise(spins))

    def _step(self, spins, field, alpha, xi):  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, spins: torch.Tensor, field, n_steps: int, callback=None,
            every: int = 1, progress: bool = False) -> torch.Tensor:
        """``n_steps`` steps; ``callback(step_index, time, spins)`` after every ``every`` steps.

        The callback may return ``True`` to stop early. ``progress=True`` shows a
        progress bar (tqdm: steps done, steps per second, time left). Returns the
        final spins (checked to be finite unit vectors).
        """
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
            raise ValueError(f"n_steps must be an integer >= 0, got {n_steps!r}")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        if not isinstance(progress, (bool, np.bool_)):
            raise TypeError(f"progress must be True or False, got {progress!r}")
        spins = check_spins(spins)
        system = _as_system(field)
        bar = _progress_bar(int(n_steps), f"{type(self).__name__} dt={self.dt:g}") \
            if progress else None
        try:
            for k in range(1, int(n_steps) + 1):
                spins = self._advance(spins, system)
                if bar is not None:
                    bar.update(1)
                if callback is not None and k % every == 0:
                    if callback(k, k * self.dt, spins):
                        break
        finally:
            if bar is not None:
                bar.close()
        return check_spins(spins, tol=1e-3 if spins.dtype != torch.float64 else 1e-6,
                           name="spins after the run")

    def __repr__(self):
        def fmt(v):
            return f"<{v.numel()} replicas>" if isinstance(v, torch.Tensor) else f"{v:g}"
        return (f"{type(self).__name__}(dt={self.dt:g}, alpha={fmt(self.alpha)}, "
                f"temperature={fmt(self.temperature)})")


class Heun(LLGIntegrator):
    r"""Stochastic Heun with renormalisation.

    .. math::
        \tilde{\mathbf S} = \mathcal N[\mathbf S + dt\,f(\mathbf S, \mathbf B(\mathbf S)+\xi)],\quad
        \mathbf S' = \mathcal N\big[\mathbf S + \tfrac{dt}{2}\big(f(\mathbf S,\mathbf B(\mathbf S)+\xi)
            + f(\tilde{\mathbf S},\mathbf B(\tilde{\mathbf S})+\xi)\big)\big]

    with :math:`f` the LLG right-hand side and :math:`\mathcal N` the projection to unit length.
    """

    name = "heun"

    def _step(self, spins, field, alpha, xi):
        b0 = field(spins)
        if xi is not None:
            b0 = b0 + xi
        f0 = llg_rhs(spins, b0, alpha)
        pred = normalize(spins + self.dt * f0)
        b1 = field(pred)
        if xi is not None:
            b1 = b1 + xi
        f1 = llg_rhs(pred, b1, alpha)
        return normalize(spins + 0.5 * self.dt * (f0 + f1))


class DepondtMertens(LLGIntegrator):
    r"""Depondt-Mertens rotation scheme (J. Phys.: Condens. Matter 21, 336005 (2009)).

    Predictor: rotate :math:`\mathbf S` about :math:`\omega_0 = \omega(\mathbf S, \mathbf B(\mathbf S)+\xi)`
    by :math:`|\omega_0|dt`; corrector: rotate the original :math:`\mathbf S` about
    :math:`(\omega_0 + \omega(\tilde{\mathbf S}, \mathbf B(\tilde{\mathbf S})+\xi))/2`. Rotations keep
    :math:`|\mathbf S| = 1` exactly (up to rounding).
    """

    name = "depondt"

    def _step(self, spins, field, alpha, xi):
        b0 = field(spins)
        if xi is not None:
            b0 = b0 + xi
        w0 = _omega(spins, b0, alpha)
        pred = _rotate(spins, w0, self.dt)
        b1 = field(pred)
        if xi is not None:
            b1 = b1 + xi
        w1 = _omega(pred, b1, alpha)
        return normalize(_rotate(spins, 0.5 * (w0 + w1), self.dt))


class SIB(LLGIntegrator):
    r"""Semi-implicit scheme B of Mentink et al., J. Phys.: Condens. Matter 22, 176001 (2010).

    Both stages are implicit-midpoint (Cayley) rotations solved in closed form:
    a predictor :math:`\tilde{\mathbf S}` with :math:`\omega` evaluated at :math:`\mathbf S`,
    then :math:`\mathbf S' - \mathbf S = dt\,\bar\omega\times(\mathbf S' + \mathbf S)/2` with
    :math:`\bar\omega = \omega(\bar{\mathbf S}, \mathbf B(\bar{\mathbf S}) + \xi)` at the midpoint
    :math:`\bar{\mathbf S} = (\mathbf S + \tilde{\mathbf S})/2`. The midpoint is normalised
    before the field is evaluated, because field sources (exact diagonalisation,
    neural models) are defined for unit spins; this keeps second order.
    Norm-preserving and stable at larger ``dt`` than Heun.
    """

    name = "sib"

    def _step(self, spins, field, alpha, xi):
        b0 = field(spins)
        if xi is not None:
            b0 = b0 + xi
        pred = _cayley(spins, _omega(spins, b0, alpha), self.dt)
        mid = normalize(spins + pred)
        b1 = field(mid)
        if xi is not None:
            b1 = b1 + xi
        return normalize(_cayley(spins, _omega(mid, b1, alpha), self.dt))


#: Integrators by name, so that a config string picks one.
INTEGRATORS = {cls.name: cls for cls in (Heun, DepondtMertens, SIB)}


def make_integrator(name: str, dt: float, **kwargs) -> LLGIntegrator:
    """Integrator by name (``"heun"``, ``"depondt"``, ``"sib"``)."""
    try:
        cls = INTEGRATORS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown integrator '{name}': choose one of {sorted(INTEGRATORS)}") \
            from None
    return cls(dt, **kwargs)


def run(spins: torch.Tensor, field, integrator: LLGIntegrator, n_steps: int, callback=None,
        every: int = 1, progress: bool = False) -> torch.Tensor:
    """Functional form of :meth:`LLGIntegrator.run`."""
    if not isinstance(integrator, LLGIntegrator):
        raise TypeError(f"integrator must be an LLGIntegrator, got {type(integrator).__name__}")
    return integrator.run(spins, field, n_steps, callback=callback, every=every,
                          progress=progress)


def _progress_bar(total: int, desc: str):
    """A tqdm progress bar of ``total`` steps (tqdm is imported only when one is asked for)."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="step")

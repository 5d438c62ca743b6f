"""The plugin manager: built-ins and third-party plugins through the same hooks.

Built-in modules (:data:`DEFAULT_PLUGINS`) are registered exactly like external plugins; then
every entry point in the ``vaebench`` group is loaded, each in its own ``try``: a plugin that fails
to import or register is reported (naming the plugin, its distribution and version, and the
error) and the others still load. Names must be unique: when two plugins register the same model,
dataset or metric name, the first registration (built-ins come first) is kept and the clash is
reported naming both plugins.

Environment variables:

- ``VAEBENCH_LOAD_PLUGINS``: comma-separated entry-point names to load (unset: all; empty: none).
  A name that no installed entry point has is a problem (a typo would otherwise load nothing
  without a word).
- ``VAEBENCH_STRICT_PLUGINS=1``: any plugin problem is an error (for tests/CI):
  :func:`get_registry` raises :class:`PluginError` on *every* call while a problem exists, and
  the command line exits with code 2 and one line.

Problems are collected while plugins load and while the registry is built; outside strict mode
:func:`get_registry` warns about each once (:class:`PluginWarning`) and lists them in
:attr:`Registry.problems`. Text that comes from plugins is printed through :func:`printable`.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import warnings
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from vaebench import __version__, hookspecs
from vaebench.errors import PluginError, VaebenchError
from vaebench.text import printable

if TYPE_CHECKING:
    from vaebench.dataset import DatasetSpec

__all__ = [
    "DEFAULT_PLUGINS",
    "PluginWarning",
    "PluginError",
    "UnknownNameError",
    "Registered",
    "Registry",
    "get_plugin_manager",
    "get_registry",
    "printable",
    "reset",
    "strict_mode",
    "valid_name",
]

DEFAULT_PLUGINS = (
    "vaebench.models.pca",
    "vaebench.models.ae",
    "vaebench.models.vae",
    "vaebench.models.disentangle",
    "vaebench.data.digits",
    "vaebench.data.idx",
    "vaebench.data.moons",
    "vaebench.data.lines",
    "vaebench.data.sprites",
    "vaebench.data.user",
    "vaebench.metrics.reconstruction",
    "vaebench.metrics.throughput",
    "vaebench.metrics.interpolation",
    "vaebench.metrics.acai",
    "vaebench.metrics.likelihood",
    "vaebench.metrics.representation",
    "vaebench.metrics.samples",
    "vaebench.metrics.disentanglement",
    "vaebench.tracking.mlflow",
    "vaebench.models.variational",
    "vaebench.models.regularised",
    "vaebench.data.generation",
    "vaebench.models.adversarial",
    "vaebench.models.vqvae",
)

ENTRY_POINT_GROUP = "vaebench"
BUILTIN_DIST = "vaebench"


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered something invalid."""


def valid_name(name: object) -> bool:
    """Whether ``name`` may name a model, dataset or metric: a non-empty string of printable
    characters without whitespace, commas or slashes (names are typed in ``--models a,b`` and
    become parts of file names)."""
    return (
        isinstance(name, str)
        and bool(name)
        and name.isprintable()
        and not any(c.isspace() or c in ",/\\" for c in name)
    )


class UnknownNameError(VaebenchError, KeyError):
    """A model, dataset, metric or tracker name that no plugin registers."""

    def __init__(self, kind: str, name: str, valid: list[str], hint: str = "") -> None:
        self.kind, self.name, self.valid, self.hint = kind, name, valid, hint
        super().__init__(name)

    def __str__(self) -> str:
        valid = ", ".join(self.valid) or "(none)"
        return f"unknown {self.kind} {self.name!r}; valid: {valid}" + (
            f" ({self.hint})" if self.hint else ""
        )


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    name: str
    dist: str
    version: str
    builtin: bool
    hooks: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Registered:
    """A spec together with where it came from."""

    name: str
    spec: Any
    plugin: str
    dist: str
    version: str

    @property
    def origin(self) -> str:
        return f"{self.dist} {self.version}" + (
            f" ({self.plugin})" if self.dist == BUILTIN_DIST else f" (plugin {self.plugin})"
        )


@dataclasses.dataclass
class Registry:
    models: dict[str, Registered]
    datasets: dict[str, Registered]
    metrics: dict[str, Registered]
    plugins: list[PluginInfo]
    problems: list[str]
    #: Experiment trackers (hook ``vaebench_trackers``), by the name ``--track NAME=ARG`` uses.
    trackers: dict[str, Registered] = dataclasses.field(default_factory=dict)

    def _get(self, table: dict[str, Registered], kind: str, name: str) -> Registered:
        try:
            return table[name]
        except KeyError:
            raise UnknownNameError(kind, name, sorted(table)) from None

    def model(self, name: str) -> Registered:
        return self._get(self.models, "model", name)

    def dataset(self, name: str) -> Registered:
        return self._get(self.datasets, "dataset", name)

    def dataset_for_path(self, path: str) -> DatasetSpec | None:
        """The :class:`~vaebench.dataset.DatasetSpec` a plugin claims for ``path`` -- a file or
        folder given where a dataset name goes (hook ``vaebench_dataset_for_path``; the
        built-in :mod:`vaebench.data.user` claims ``.npz`` files and folders) -- or ``None``."""
        spec: DatasetSpec | None = get_plugin_manager().hook.vaebench_dataset_for_path(path=path)
        return spec

    def dataset_or_path(self, name: str) -> Registered:
        """What a dataset ``name`` given to vaebench means: the spec a plugin claims for it as
        a path (:meth:`dataset_for_path`), with that plugin as its origin, else the dataset
        registered under that name. Raises :class:`UnknownNameError` when neither."""
        claim = self._path_claim(name)
        if claim is not None:
            return claim
        if name not in self.datasets and os.path.exists(name):
            what = "folder" if os.path.isdir(name) else "file"
            raise UnknownNameError("dataset", name, sorted(self.datasets),
                                   f"a {what} {name!r} exists here: write ./{name} to use it as "
                                   "your own data")  # fmt: skip
        return self.dataset(name)

    @staticmethod
    def _path_claim(path: str) -> Registered | None:
        """The spec the hook returns for ``path`` (pluggy's call, wrappers included), with the
        plugin whose implementation claims it: the first plain implementation, in pluggy's
        call order, that returns a spec (``"unknown plugin"`` when none does by itself)."""
        hook = get_plugin_manager().hook.vaebench_dataset_for_path
        spec = hook(path=path)
        if spec is None:
            return None
        # who claimed it: asked only here, where the origin is shown (not per cell)
        plugin = "unknown plugin"
        for impl in reversed(hook.get_hookimpls()):
            if impl.hookwrapper or getattr(impl, "wrapper", False):
                continue
            if impl.function(*({"path": path}[a] for a in impl.argnames)) is not None:
                plugin = impl.plugin_name
                break
        dist, version = _dists.get(plugin, ("unknown distribution", "?"))
        return Registered(path, spec, plugin, dist, version)

    def metric(self, name: str) -> Registered:
        return self._get(self.metrics, "metric", name)

    def tracker(self, name: str) -> Registered:
        return self._get(self.trackers, "tracker", name)


_pm: pluggy.PluginManager | None = None
_dists: dict[str, tuple[str, str]] = {}
_problems: list[str] = []
_registry: Registry | None = None
_warned = False


def strict_mode() -> bool:
    """Whether ``VAEBENCH_STRICT_PLUGINS`` asks for strict plugin mode (any value but empty,
    ``0``, ``false``, ``no``, ``off``)."""
    return os.environ.get("VAEBENCH_STRICT_PLUGINS", "").strip().lower() not in (
        "",
        "0",
        "false",
        "no",
        "off",
    )


def _problem(msg: str) -> None:
    """Record a plugin problem (reported by :func:`get_registry`: a warning, or an error in
    strict mode). Recording never raises, so one problem never hides the next."""
    _problems.append(printable(msg))


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built once): the built-ins, then every allowed entry
    point, each loaded on its own. Problems are recorded, not raised: :func:`get_registry`
    reports them (and raises in strict mode), so strictness holds on every call."""
    global _pm
    if _pm is not None:
        return _pm
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
        _dists[modname] = (BUILTIN_DIST, __version__)
    _pm = pm  # before loading: a plugin that asks for the manager at import gets this one
    _load_entry_points(pm)
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allowed = os.environ.get("VAEBENCH_LOAD_PLUGINS")
    allow = None if allowed is None else {s.strip() for s in allowed.split(",") if s.strip()}
    eps = sorted(
        metadata.entry_points(group=ENTRY_POINT_GROUP),
        key=lambda ep: (getattr(ep.dist, "name", "") or "", ep.name),
    )
    if allow is not None:
        installed = sorted({ep.name for ep in eps})
        for name in sorted(allow - set(installed)):
            _problem(
                f"VAEBENCH_LOAD_PLUGINS names {name!r}, but no installed plugin has that "
                f"entry-point name; installed: {', '.join(installed) or '(none)'}"
            )
    for ep in eps:
        dist = getattr(ep.dist, "name", None) or "unknown distribution"
        version = getattr(ep.dist, "version", None) or "?"
        if allow is not None and ep.name not in allow:
            continue
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            holder = " ".join(_dists.get(ep.name, ("another distribution", "")))
            _problem(
                f'plugin "{ep.name}" ({ep.value}) from {dist} {version} not loaded: a plugin '
                f"of that name is already registered by {holder.strip()}; entry-point names "
                "must be unique"
            )
            continue
        try:
            plugin = ep.load()
            api = getattr(plugin, "VAEBENCH_PLUGIN_API", 1)
            from vaebench import PLUGIN_API_VERSION

            if isinstance(api, bool) or not isinstance(api, int) or api < 1:
                raise PluginError(f"VAEBENCH_PLUGIN_API must be a positive integer, got {api!r}")
            if api > PLUGIN_API_VERSION:
                raise PluginError(
                    f"needs plugin API {api}, this vaebench {__version__} provides "
                    f"{PLUGIN_API_VERSION}"
                )
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the others
            _problem(
                f'error loading plugin "{ep.name}" ({ep.value}) from {dist} {version}: '
                f"{type(exc).__name__}: {exc}"
            )
            continue
        _dists[ep.name] = (dist, version)
        _lint_plugin(pm, plugin, f'plugin "{ep.name}" ({ep.value}) from {dist} {version}')


def _lint_plugin(pm: pluggy.PluginManager, plugin: Any, where: str) -> None:
    """Report the two silent mistakes: a hook name with a typo, and a hook function that lacks
    the ``@hookimpl`` marker (pluggy ignores both without a word)."""
    known = {name for name in dir(hookspecs) if name.startswith("vaebench_")}
    callers = pm.get_hookcallers(plugin) or []
    unknown = sorted(c.name for c in callers if not c.has_spec())
    if unknown:
        _problem(
            f"{where} implements unknown hook(s) {', '.join(unknown)}; "
            f"known hooks: {', '.join(sorted(known))}"
        )
    implemented = {c.name for c in callers}
    unmarked = sorted(
        name
        for name in known - implemented
        if callable(getattr(plugin, name, None))
        and not hasattr(getattr(plugin, name), f"{hookspecs.PROJECT_NAME}_impl")
    )
    if unmarked:
        _problem(
            f"{where} defines {', '.join(unmarked)} without the @hookimpl marker "
            "(from vaebench.hookspecs import hookimpl), so vaebench ignores it"
        )


def _collect(
    pm: pluggy.PluginManager, hook: str, kind: str, expected: type
) -> dict[str, Registered]:
    table: dict[str, Registered] = {}
    # get_hookimpls() lists impls in registration order; built-ins first all the same
    impls = list(getattr(pm.hook, hook).get_hookimpls())
    impls.sort(key=lambda i: 0 if _dists.get(i.plugin_name, ("",))[0] == BUILTIN_DIST else 1)
    for impl in impls:
        dist, version = _dists.get(impl.plugin_name, ("unknown distribution", "?"))
        where = f'plugin "{impl.plugin_name}" ({dist} {version})'
        try:
            specs = impl.function()
        except Exception as exc:  # noqa: BLE001
            _problem(f"{where} failed in {hook}(): {type(exc).__name__}: {exc}")
            continue
        if specs is None:
            continue
        if not isinstance(specs, (list, tuple)):
            _problem(f"{where}: {hook}() must return a list, got {type(specs).__name__}")
            continue
        for spec in specs:
            if not isinstance(spec, expected):
                _problem(
                    f"{where}: {hook}() returned a {type(spec).__name__}, "
                    f"expected {expected.__module__}.{expected.__name__}"
                )
                continue
            name = getattr(spec, "name", "")
            if not valid_name(name):
                _problem(
                    f"{where}: invalid {kind} name {name!r} (printable characters only; no "
                    "commas, slashes, spaces or control characters)"
                )
                continue
            if name in table:
                first = table[name]
                _problem(
                    f'{kind} name clash: "{name}" from {where} is ignored; it is already '
                    f'registered by plugin "{first.plugin}" ({first.dist} {first.version})'
                )
                continue
            table[name] = Registered(name, spec, impl.plugin_name, dist, version)
    return table


def _drop_value_clashes(metrics: dict[str, Registered]) -> dict[str, Registered]:
    """Metric value names share one namespace in result files: a metric reporting a value name
    that an earlier metric (built-ins first) already reports is ignored, with a message."""
    owner: dict[str, Registered] = {}
    kept: dict[str, Registered] = {}
    for name, reg in metrics.items():
        try:
            value_names = [v.name for v in reg.spec.values]
        except Exception as exc:  # noqa: BLE001
            _problem(
                f'metric "{name}" from plugin "{reg.plugin}" ({reg.dist} {reg.version}) is '
                f"ignored: its values are not a list of vaebench.metric.Value ({exc})"
            )
            continue
        taken = [v for v in value_names if v in owner]
        if taken:
            first = owner[taken[0]]
            _problem(
                f'metric value name clash: metric "{name}" from plugin "{reg.plugin}" '
                f"({reg.dist} {reg.version}) is ignored; its value(s) {', '.join(taken)} are "
                f'already reported by metric "{first.name}" from plugin "{first.plugin}" '
                f"({first.dist} {first.version})"
            )
            continue
        owner.update(dict.fromkeys(value_names, reg))
        kept[name] = reg
    return kept


def get_registry(*, strict: bool | None = None) -> Registry:
    """Every registered model, dataset, metric and tracker (built once; see :func:`reset`).

    ``strict`` (default: ``VAEBENCH_STRICT_PLUGINS``): raise :class:`PluginError` -- on every
    call, not only the first -- while any plugin problem exists; the message is one line naming
    the first problem and how many there are. Otherwise each problem is warned about once
    (:class:`PluginWarning`) and the registry, with :attr:`Registry.problems`, is returned.
    """
    global _registry, _warned
    if _registry is None:
        from vaebench.dataset import DatasetSpec
        from vaebench.metric import Metric
        from vaebench.model import ModelSpec

        pm = get_plugin_manager()
        models = _collect(pm, "vaebench_models", "model", ModelSpec)
        datasets = _collect(pm, "vaebench_datasets", "dataset", DatasetSpec)
        metrics = _drop_value_clashes(_collect(pm, "vaebench_metrics", "metric", Metric))
        trackers = _collect(pm, "vaebench_trackers", "tracker", hookspecs.Tracker)
        plugins = []
        for name, plugin in pm.list_name_plugin():
            dist, version = _dists.get(name, ("unknown distribution", "?"))
            hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or []))
            plugins.append(PluginInfo(name, dist, version, dist == BUILTIN_DIST, hooks))
        _registry = Registry(models, datasets, metrics, plugins, list(_problems), trackers)
    problems = _registry.problems
    if problems and (strict_mode() if strict is None else strict):
        more = (
            f" (and {len(problems) - 1} more problem(s): `vaebench plugins` lists them)"
            if len(problems) > 1
            else ""
        )
        exc = PluginError(f"{problems[0]}{more} [strict plugin mode: VAEBENCH_STRICT_PLUGINS]")
        exc.problems = list(problems)  # type: ignore[attr-defined]
        raise exc
    if not _warned:
        _warned = True
        for msg in problems:
            warnings.warn(msg, PluginWarning, stacklevel=2)
    return _registry


def reset() -> None:
    """Forget the plugin manager and registry (tests; after installing a plugin at run time)."""
    global _pm, _registry, _warned
    _pm = None
    _registry = None
    _warned = False
    _dists.clear()
    _problems.clear()

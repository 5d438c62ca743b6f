"""The one mechanism of the kit: a check of a kind of subject, its selection and its run."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import inspect
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from vaebench.testing.core import (
    NOT_APPLICABLE,
    CheckFailed,
    CheckResult,
    _Mismatch,
    _NotApplicable,
)


@dataclasses.dataclass
class _Kind:
    """One kind of subject: ``make(obj, **options)`` prepares a subject (an instance of
    ``subject_type`` with a ``name``) from what the caller passes; ``checks`` in running
    order."""

    name: str
    make: Callable[..., Any]
    subject_type: type
    checks: list[Callable[..., str | None]] = dataclasses.field(default_factory=list)


_KINDS: dict[str, _Kind] = {}


def _as_spec(obj: Any, spec_type: type, kind: str, wrap: Callable[[Any], Any], what: str) -> Any:
    """``obj`` when it is a ``spec_type``, the spec registered as ``kind`` (``"model"``,
    ``"dataset"``) under the name ``obj`` (a dataset also by a path a plugin claims, as
    ``--datasets`` takes it), the ``spec`` of a registry entry, or ``wrap(obj)``
    for a callable ``obj`` (a ``what``: factory, loader); else ``TypeError`` naming them."""
    if isinstance(obj, spec_type):
        return obj
    if isinstance(obj, str):
        from vaebench.plugins import get_registry

        reg = get_registry()
        return (reg.dataset_or_path(obj) if kind == "dataset" else getattr(reg, kind)(obj)).spec
    spec = getattr(obj, "spec", None)
    if isinstance(spec, spec_type):  # a vaebench.plugins.Registered
        return spec
    if callable(obj):
        return wrap(obj)
    raise TypeError(
        f"expected a {spec_type.__module__}.{spec_type.__name__}, a registered {kind} name or "
        f"a {what} callable, got {type(obj).__name__}"
    )


def _subject_name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(obj, str):
        return obj
    return getattr(obj, "__name__", type(obj).__name__)


#: Torch CPU threads of the check running now (the runners' ``threads``; 1 by default).
_THREADS: contextvars.ContextVar[int] = contextvars.ContextVar("vaebench_check_threads", default=1)


@contextlib.contextmanager
def _check_threads() -> Iterator[None]:
    """Run torch on the kit's CPU threads inside a check: one unless a runner was given
    ``threads``. On tiny data, intra-op threads only add synchronisation: on a busy machine a
    check is 10x faster single-threaded."""
    from vaebench.train import torch_threads

    with torch_threads(_THREADS.get()):
        yield


def _run_body(
    check_name: str, subject: str, expectation: str, body: Callable, arg: Any
) -> str | None:
    """Run a check body; return its note (``None``, what it measured, or ``"not applicable:
    why"``)."""
    try:
        with _check_threads():
            note = body(arg)
    except _NotApplicable as exc:
        return f"{NOT_APPLICABLE}: {exc}"
    except _Mismatch as exc:
        raise CheckFailed(check_name, subject, str(exc)) from None
    except CheckFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any error is reported as this check failing
        raise CheckFailed(
            check_name,
            subject,
            f"expected that {expectation}, but it raised {type(exc).__name__}: {exc}",
        ) from exc
    return note if isinstance(note, str) and note else None


def _check(kind: str, expectation: str) -> Callable[[Callable[[Any], str | None]], Callable]:
    """Turn ``body(subject)`` into the public check of ``kind`` (one mechanism for models,
    datasets and metrics).

    The check takes what the kind's ``make`` takes -- the subject (a spec, a name, ...) and its
    keyword options -- or a subject ``make`` already prepared (the runners prepare it once).
    Inside the body, :func:`_expect` failures become :class:`CheckFailed` naming the check; any
    other exception a :class:`CheckFailed` saying what the check expected and what was raised
    (the original chained). The body may return a note; it raises :class:`_NotApplicable` when
    the check does not apply.
    """

    def decorate(body: Callable[[Any], str | None]) -> Callable[..., str | None]:
        k = _KINDS[kind]
        check_name = body.__name__.lstrip("_")
        signature = inspect.signature(k.make)
        first = next(iter(signature.parameters))

        def check(*args: Any, **kwargs: Any) -> str | None:
            bound = signature.bind(*args, **kwargs)  # TypeError for a wrong argument
            options = dict(bound.arguments)
            obj = options.pop(first)
            subject: Any
            if isinstance(obj, k.subject_type):
                subject = obj
            else:
                try:
                    subject = k.make(obj, **options)
                except Exception as exc:  # noqa: BLE001 - an unusable subject fails the check
                    raise CheckFailed(check_name, _subject_name(obj), str(exc)) from exc
            return _run_body(check_name, subject.name, expectation, body, subject)

        check.__name__ = check.__qualname__ = check_name
        check.__module__ = "vaebench.testing"  # where users import it
        check.__doc__ = f"Check that {expectation}.\n\n{inspect.getdoc(body) or ''}".strip()
        check.__signature__ = signature.replace(return_annotation="str | None")  # type: ignore[attr-defined]
        check.expectation = expectation  # type: ignore[attr-defined]
        check.kind = kind  # type: ignore[attr-defined]
        k.checks.append(check)
        return check

    return decorate


def _select(kind: str, names: Iterable[str] | None) -> list[Callable[..., str | None]]:
    all_checks = _KINDS[kind].checks
    if names is None:
        return list(all_checks)
    by_name = {c.__name__: c for c in all_checks}
    wanted = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; valid: {', '.join(by_name)}")
    return [by_name[n] for n in wanted]


def _run(
    kind: str,
    obj: Any,
    names: Iterable[str] | None,
    options: dict[str, Any],
    threads: int | None = None,
) -> Iterator[CheckResult]:
    """Prepare the subject once and run the selected checks of ``kind`` on it, yielding a
    :class:`CheckResult` each; a failing or crashing check is reported, never raised.
    ``threads``: torch CPU threads of each check (default 1)."""
    selected = _select(kind, names)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)):
        raise TypeError(f"threads must be a positive integer or None, got {threads!r}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    n = 1 if threads is None else threads
    try:
        with _kit_threads(n):
            subject = _KINDS[kind].make(obj, **options)
    except Exception as exc:  # noqa: BLE001 - every check fails with the reason
        for check in selected:
            yield CheckResult(check.__name__, _subject_name(obj), False, str(exc))
        return
    for check in selected:
        start = time.perf_counter()
        try:
            with _kit_threads(n):  # set and reset around the call: never across a yield
                note = check(subject)
        except CheckFailed as exc:
            yield CheckResult(
                check.__name__, subject.name, False, exc.detail, time.perf_counter() - start
            )
        except Exception as exc:  # noqa: BLE001 - a check must never stop the others
            yield CheckResult(
                check.__name__,
                subject.name,
                False,
                f"check crashed: {type(exc).__name__}: {exc}",
                time.perf_counter() - start,
            )
        else:
            skipped = note is not None and note.startswith(NOT_APPLICABLE)
            elapsed = time.perf_counter() - start
            yield CheckResult(check.__name__, subject.name, True, note or "", elapsed, skipped)


@contextlib.contextmanager
def _kit_threads(n: int) -> Iterator[None]:
    """Give the checks run inside ``n`` torch CPU threads, and the subject's preparation too."""
    from vaebench.train import torch_threads

    token = _THREADS.set(n)
    try:
        with torch_threads(n):
            yield
    finally:
        _THREADS.reset(token)


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        device = os.environ.get("VAEBENCH_TEST_DEVICE", "cpu")
    return torch.device(device)

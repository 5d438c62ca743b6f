"""The model checks (adapted to the model's tags)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from vaebench.testing.core import (
    FIT_BATCH_SIZE,
    FIT_EPOCHS,
    N_FIT,
    _expect,
    _expect_float32,
    _is_int,
    _maxdiff,
    _Mismatch,
    _names,
    _NotApplicable,
    _shape,
)
from vaebench.testing.mechanism import _KINDS, _check
from vaebench.testing.model_subject import (
    _batchnorm_hint,
    _changed,
    _full_state,
    _mode_hint,
    _ModelSubject,
)
from vaebench.testing.tiny import tiny_images


@_check("model", "the factory builds a complete vaebench.model.Model")
def check_interface(s: _ModelSubject) -> None:
    """The spec's name is usable on the command line; the factory returns a
    :class:`~vaebench.model.Model`, accepts every default parameter, its defaults are
    JSON-serialisable (they are stored in result files), ``to`` returns the model and
    ``state_dict`` holds plain tensors only (``Model.load`` uses ``weights_only``)."""
    from vaebench.model import Model
    from vaebench.plugins import valid_name

    _expect(
        valid_name(s.spec.name),
        f"expected a model name without commas, slashes, spaces or control characters, got "
        f"{s.spec.name!r}",
    )
    defaults = s.spec.defaults()
    try:
        json.dumps(defaults, sort_keys=True, default=list)
    except (TypeError, ValueError) as exc:
        raise _Mismatch(
            f"expected JSON-serialisable default parameters (they are stored with results), "
            f"got {defaults!r}: {exc}"
        ) from None
    _, model = s.build_first(raw=True)
    _expect(
        isinstance(model, Model),
        f"expected the factory to return a vaebench.model.Model, got {type(model).__name__}",
    )
    for method in ("fit", "encode", "decode", "state_dict", "load_state_dict", "to", "save"):
        _expect(callable(getattr(model, method, None)), f"expected a method {method}()")
    moved = model.to(s.device)
    _expect(
        moved is model,
        f"expected to(device) to return the model itself, got {type(moved).__name__}",
    )
    state = model.state_dict()
    _expect(
        isinstance(state, dict), f"expected state_dict() to be a dict, got {type(state).__name__}"
    )
    bad = {k: type(v).__name__ for k, v in state.items() if not isinstance(v, Tensor)}
    _expect(
        not bad,
        f"expected state_dict() to map names to tensors only (weights_only loading), "
        f"got non-tensors {bad}",
    )
    _expect(all(isinstance(k, str) for k in state), "expected state_dict() keys to be strings")


@_check("model", "the model's tags are a valid vaebench.model.Tags, backed by its methods")
def check_tags(s: _ModelSubject) -> str:
    """``tags`` is a :class:`~vaebench.model.Tags` with ``min_image_size`` an int >= 1,
    ``max_image_size`` ``None`` or an int >= it, ``channels`` ``None`` or a non-empty tuple of
    positive ints, boolean flags and ``likelihood`` empty or one of
    :data:`vaebench.model.LIKELIHOODS`; a model tagged ``can_sample``, ``has_posterior`` or with
    a ``likelihood`` implements ``sample``, ``posterior`` or ``log_likelihood``. Notes the image
    shapes the other checks use."""
    from vaebench.model import LIKELIHOODS, Model

    _, model = s.build_first()
    t = s.tags
    _expect(
        _is_int(t.min_image_size) and t.min_image_size >= 1,
        f"expected tags.min_image_size to be an int >= 1, got {t.min_image_size!r}",
    )
    _expect(
        t.max_image_size is None
        or (_is_int(t.max_image_size) and t.max_image_size >= t.min_image_size),
        f"expected tags.max_image_size to be None or an int >= min_image_size "
        f"({t.min_image_size}), got {t.max_image_size!r}",
    )
    _expect(
        t.channels is None
        or (
            isinstance(t.channels, tuple)
            and len(t.channels) > 0
            and all(_is_int(c) and c >= 1 for c in t.channels)
        ),
        f"expected tags.channels to be None or a non-empty tuple of positive ints, got "
        f"{t.channels!r}",
    )
    for flag in ("can_sample", "uses_labels", "has_posterior", "deterministic"):
        value = getattr(t, flag)
        _expect(isinstance(value, bool), f"expected tags.{flag} to be a bool, got {value!r}")
    _expect(
        t.likelihood == "" or t.likelihood in LIKELIHOODS,
        f"expected tags.likelihood to be empty or one of {', '.join(LIKELIHOODS)}, got "
        f"{t.likelihood!r}",
    )
    for flag, method in (
        ("can_sample", "sample"),
        ("has_posterior", "posterior"),
        ("likelihood", "log_likelihood"),
    ):
        value = getattr(t, flag)
        _expect(
            not value or getattr(type(model), method) is not getattr(Model, method),
            f"expected a {method}() method: the tags say {flag}={value!r} but "
            f"{type(model).__name__} does not implement {method}",
        )
    labels = "; fit gets labels" if t.uses_labels else ""
    return f"image shapes used: {', '.join(map(str, s.shapes))}{labels}"


@_check("model", "latent_dim, n_params and input_shape describe the model")
def check_metadata(s: _ModelSubject) -> None:
    """For each image shape: ``latent_dim`` is a positive int, ``n_params`` an int > 0,
    ``input_shape`` the shape the model was built for and ``device`` a :class:`torch.device`."""
    for shape in s.shapes:
        model = s.create(shape)
        ld = getattr(model, "latent_dim", None)
        _expect(_is_int(ld) and ld > 0, f"expected latent_dim to be a positive int, got {ld!r}")
        n = model.n_params
        _expect(_is_int(n) and n > 0, f"expected n_params to be an int > 0, got {n!r}")
        got = tuple(getattr(model, "input_shape", ()) or ())
        _expect(
            got == tuple(shape),
            f"expected input_shape {tuple(shape)} (the shape passed to the factory), got {got}",
        )
        _expect(
            isinstance(model.device, torch.device),
            f"expected device to be a torch.device, got {type(model.device).__name__}",
        )


@_check("model", "encode returns float32 codes (N, latent_dim) for every image shape it supports")
def check_encode_shape(s: _ModelSubject) -> None:
    """For each image shape (:data:`SHAPES` fitted to the tags), after a one-epoch fit,
    ``encode`` of 5 images (and of one image) returns finite float32 codes
    ``(N, latent_dim)``."""
    for shape in s.shapes:
        model, x = s.fitted(shape)
        for k in (5, 1):
            z = model.encode(x[:k])
            of = f" for x of shape {tuple(x[:k].shape)}"
            _expect_float32(z, "encode(x)", (k, model.latent_dim), of, f"for input shape {shape}")
            _expect(
                bool(torch.isfinite(z).all()),
                f"expected finite codes for input shape {shape}",
            )


@_check("model", "decode returns float32 images (N, C, H, W) for every image shape it supports")
def check_decode_shape(s: _ModelSubject) -> None:
    """For each image shape, after a one-epoch fit, ``decode(encode(x))`` and ``decode`` of
    random codes return float32 images of the input's shape."""
    for shape in s.shapes:
        model, x = s.fitted(shape)
        z = model.encode(x[:5])
        g = torch.Generator().manual_seed(0)
        z_rand = torch.randn(3, model.latent_dim, generator=g).to(s.device)
        for what, code in (("decode(encode(x))", z), ("decode(z) of random codes", z_rand)):
            out = model.decode(code)
            want = (code.shape[0], *shape)
            codes = f" (codes {tuple(code.shape)})"
            _expect_float32(out, what, want, "", f"for shape {shape}", after=codes)


@_check("model", "decode returns finite values in [0, 1]")
def check_decode_range(s: _ModelSubject) -> None:
    """``decode(encode(x))`` and ``decode`` of large random codes (``3 * N(0, I)``) are finite
    and lie in ``[0, 1]`` (images; apply a sigmoid or clamp), for the first image shape and the
    colour one."""
    for shape in s.shapes[:1] + s.shapes[2:]:
        model, x = s.fitted(shape)
        g = torch.Generator().manual_seed(1)
        z_rand = 3 * torch.randn(16, model.latent_dim, generator=g)
        for what, code in (
            ("decode(encode(x))", model.encode(x[:8])),
            ("decode(3 * randn codes)", z_rand.to(s.device)),
        ):
            out = model.decode(code)
            _expect(bool(torch.isfinite(out).all()), f"expected finite values from {what}")
            if not model.tags.bounded_output:
                continue  # declared real-valued outputs (e.g. pca clip=false): finite suffices
            lo, hi = float(out.min()), float(out.max())
            _expect(
                lo >= 0.0 and hi <= 1.0,
                f"expected {what} in [0, 1] for shape {shape}, got range [{lo:.4g}, {hi:.4g}]",
            )


@_check("model", "encode and decode run without autograd and leave grad mode as they found it")
def check_no_grad(s: _ModelSubject) -> None:
    """Outputs of ``encode``/``decode`` have ``requires_grad=False`` (wrap them in
    ``torch.inference_mode()`` or ``torch.no_grad()``), and grad mode is still enabled after."""
    model, x = s.fitted(s.shapes[0])
    with torch.enable_grad():
        z = model.encode(x[:4])
        _expect(
            not z.requires_grad,
            "expected encode outputs with requires_grad=False (run encode under "
            "torch.inference_mode()), got requires_grad=True",
        )
        out = model.decode(z)
        _expect(
            not out.requires_grad,
            "expected decode outputs with requires_grad=False (run decode under "
            "torch.inference_mode()), got requires_grad=True",
        )
        _expect(
            torch.is_grad_enabled(),
            "expected grad mode to stay enabled after encode/decode (use a context manager, "
            "not torch.set_grad_enabled(False))",
        )


def _inference_leaves_model_unchanged(s: _ModelSubject, model: Any, x: Tensor, where: str) -> None:
    state = _full_state(model)
    tags = s.tags

    def call(what: str, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - say which call on which model
            raise _Mismatch(
                f"expected {what} to work on {where}, but it raised {type(exc).__name__}: "
                f"{exc}{_mode_hint(model)}"
            ) from None
        changed = _changed(state, _full_state(model))
        _expect(
            not changed,
            f"expected {what} to leave the model unchanged, but on {where} it changed "
            f"{_names(changed)}{_batchnorm_hint(changed)}{_mode_hint(model)}",
        )
        return out

    def alone(one: Any, again: Any, batch: Any, what: str, method: str) -> None:
        if not (isinstance(one, Tensor) and isinstance(batch, Tensor)):
            return  # the shape checks report outputs that are not tensors
        if one.shape != batch[:1].shape or one.dtype != batch.dtype:
            return
        _expect(
            torch.equal(one, again),
            f"expected {method} to be deterministic, but on {where} two calls on one input "
            f"differ by up to {_maxdiff(one, again)}{_mode_hint(model)}",
        )
        scale = max(1.0, float(batch[:1].detach().abs().max()))
        _expect(
            torch.allclose(one.double(), batch[:1].double(), rtol=1e-4, atol=1e-5 * scale),
            f"expected {what} of an image not to depend on the other images of its batch, but "
            f"on {where} it differs alone and in a batch of {len(batch)} by up to "
            f"{_maxdiff(one, batch[:1])}{_mode_hint(model)}",
        )

    z = call(f"encode of {len(x)} images", lambda: model.encode(x))
    z1 = call("encode of a single image", lambda: model.encode(x[:1]))
    alone(
        z1, call("encode of a single image", lambda: model.encode(x[:1])), z, "the code", "encode"
    )
    out = call(f"decode of {len(x)} codes", lambda: model.decode(z))
    out1 = call("decode of a single code", lambda: model.decode(z[:1]))
    out1_again = call("decode of a single code", lambda: model.decode(z[:1]))
    alone(out1, out1_again, out, "the reconstruction", "decode")
    if tags.can_sample:
        call("sample(2)", lambda: model.sample(2, generator=torch.Generator().manual_seed(0)))
    if tags.has_posterior:
        call("posterior(x)", lambda: model.posterior(x))
    if tags.likelihood:
        call("log_likelihood(x, z)", lambda: model.log_likelihood(x, z))


@_check(
    "model",
    "inference (encode, decode, sample, posterior, log_likelihood) never changes the model and "
    "treats each image on its own",
)
def check_inference_unchanged(s: _ModelSubject) -> None:
    """On a freshly built model, a fitted one, and a fresh one that loaded the fitted one's
    saved state: ``encode`` 8 images and 1, ``decode`` both (and ``sample``, ``posterior``,
    ``log_likelihood`` when the tags offer them). After every call each parameter and buffer
    must be exactly as before; a single image must work; and its code and reconstruction must
    equal those computed in a batch (up to float rounding). A model that infers in training mode
    fails here, named precisely: BatchNorm updates its running statistics, normalises by the
    batch and cannot take one image; dropout is random."""
    shape = s.shapes[0]
    x = tiny_images(shape, 8, seed=7).to(s.device)
    _inference_leaves_model_unchanged(s, s.create(shape, seed=1), x, "a freshly built model")
    fitted, _ = s.fitted(shape)
    _inference_leaves_model_unchanged(s, fitted, x, "a fitted model")
    loaded = s.create(shape, seed=2)
    with tempfile.TemporaryDirectory(prefix="vaebench-check-") as tmp:
        path = os.path.join(tmp, "state.pt")
        try:
            fitted.save(path)
            loaded.load(path)
        except Exception:  # noqa: BLE001 - saving and loading are check_save_load's business
            return
    _inference_leaves_model_unchanged(s, loaded, x, "a model that loaded a saved state")


@_check("model", "the model lives and computes on the device it was built for")
def check_device(s: _ModelSubject) -> None:
    """``model.device`` matches the requested device; parameters, buffers, state tensors and
    ``encode``/``decode`` outputs are on it; ``to("cpu")`` moves everything back."""
    model, x = s.fitted(s.shapes[0])
    want = s.device.type
    _expect(
        model.device.type == want,
        f"expected model.device of type {want!r}, got {model.device}",
    )
    if isinstance(model, torch.nn.Module):
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            _expect(t.device.type == want, f"expected tensor {name} on {want}, got {t.device}")
    for name, t in model.state_dict().items():
        _expect(t.device.type == want, f"expected state_dict()[{name!r}] on {want}, got {t.device}")
    z = model.encode(x[:4])
    out = model.decode(z)
    _expect(z.device.type == want, f"expected encode output on {want}, got {z.device}")
    _expect(out.device.type == want, f"expected decode output on {want}, got {out.device}")
    model.to("cpu")
    _expect(
        model.device.type == "cpu", f"expected model.device cpu after to('cpu'), got {model.device}"
    )
    z_cpu = model.encode(x[:4].cpu())
    _expect(
        z_cpu.device.type == "cpu", f"expected encode on cpu after to('cpu'), got {z_cpu.device}"
    )
    _expect(
        torch.allclose(z_cpu, z.cpu(), atol=1e-4, rtol=1e-4),
        "expected the same codes after moving the model to the cpu",
    )


@_check("model", "models built and fitted under the same seed give identical outputs")
def check_deterministic(s: _ModelSubject) -> str | None:
    """``encode`` called twice on one model gives the same codes (a VAE returns its posterior
    mean); unless the tags say ``deterministic=False``, two models built and fitted after
    ``seed_everything(0)`` on the same data give identical codes and reconstructions.
    Randomness must come from torch's (or NumPy's, Python's) global generators or a generator
    seeded from them."""
    outs = []
    for _ in range(2 if s.tags.deterministic else 1):
        model, x = s.fitted(s.shapes[0])
        z1, z2 = model.encode(x[:8]), model.encode(x[:8])
        nan = torch.isnan(z1) | torch.isnan(z2) if z1.shape == z2.shape else torch.zeros(0)
        _expect(  # NaN never equals NaN: say NaN, not "not deterministic" (issue 19.6)
            not bool(nan.any()),
            f"expected finite codes: encode returned NaN in {int(nan.sum())} of {nan.numel()} "
            "values (a NaN weight or a division by zero in the encoder)",
        )
        _expect(
            torch.equal(z1, z2),
            f"expected encode to be deterministic: two calls on the same input differ by up "
            f"to {_maxdiff(z1, z2)} (return the posterior mean, not a sample)",
        )
        outs.append((z1, model.decode(z1)))
    if len(outs) == 1:
        return "two fits under one seed not compared: tags.deterministic is False"
    (za, xa), (zb, xb) = outs
    _expect(
        torch.equal(za, zb),
        f"expected identical codes from two fits under seed_everything(0), max |difference| "
        f"{_maxdiff(za, zb)} (use the global torch generator, not an unseeded one)",
    )
    _expect(
        torch.equal(xa, xb),
        f"expected identical reconstructions from two fits under seed_everything(0), max "
        f"|difference| {_maxdiff(xa, xb)}",
    )
    return None


@_check("model", "save then load into a fresh model reproduces encode and decode exactly")
def check_save_load(s: _ModelSubject) -> None:
    """Fit, :meth:`~vaebench.model.Model.save`, build a fresh model under another seed,
    :meth:`~vaebench.model.Model.load` (``weights_only=True``): codes and reconstructions must be
    identical. A failure says why: the outputs are not deterministic to begin with; or the
    loaded tensors differ from the saved ones (``state_dict`` misses a tensor, or
    ``load_state_dict`` does not restore it); or the state is complete and the loaded model
    infers in training mode (it reproduces the outputs once switched to eval mode); or the
    outputs depend on something outside the state."""
    shape = s.shapes[0]
    model, x = s.fitted(shape)
    x8 = x[:8]
    z = model.encode(x8)
    out = model.decode(z)
    saved = _full_state(model)
    fresh = s.create(shape, seed=12345)
    with tempfile.TemporaryDirectory(prefix="vaebench-check-") as tmp:
        path = os.path.join(tmp, "state.pt")
        model.save(path)
        _expect(os.path.exists(path), f"expected save({path!r}) to write the file")
        loaded = fresh.load(path)
        _expect(loaded is not None, "expected load() to return the model")
        after_load = _full_state(fresh)
        z2 = fresh.encode(x8)
        out2 = fresh.decode(z2)
        same_codes = z2.shape == z.shape and torch.equal(z2, z)
        same_out = out2.shape == out.shape and torch.equal(out2, out)
        if not (same_codes and same_out):
            what, method = ("codes", "encode") if not same_codes else ("reconstructions", "decode")
            diff = _maxdiff(z2, z) if not same_codes else _maxdiff(out2, out)
            why = _save_load_diagnosis(s, model, fresh, path, x8, (z, out), saved, after_load)
            raise _Mismatch(
                f"expected identical {what} after save/load, max |difference| {diff}; "
                + why.replace("{method}", method)
            )
    _expect(
        fresh.n_params == model.n_params,
        f"expected n_params {model.n_params} after load, got {fresh.n_params}",
    )


def _save_load_diagnosis(
    s: _ModelSubject,
    model: Any,
    fresh: Any,
    path: str,
    x: Tensor,
    outputs: tuple[Tensor, Tensor],
    saved: Mapping[str, Any],
    after_load: Mapping[str, Any],
) -> str:
    """Why a loaded model's outputs differ from the saved model's (the caller replaces
    ``{method}`` with the method whose outputs differ)."""
    z, out = outputs
    z_again = model.encode(x)
    if not (torch.equal(z_again, z) and torch.equal(model.decode(z), out)):
        return (
            "the saved model itself gives other outputs on a second call, so its outputs are "
            "not deterministic (see check_deterministic)"
        )
    differ = _changed(saved, after_load)
    if differ:
        return (
            f"the loaded model's tensors differ from the saved model's in {_names(differ)}: "
            "state_dict() must hold every tensor {method} uses, and load_state_dict() restore it"
        )
    is_module = isinstance(fresh, torch.nn.Module)  # a flag: fresh keeps its model type
    if not is_module:
        return (
            "although state_dict() after load equals the saved one, so {method} depends on "
            "something state_dict() does not return: it must hold every tensor {method} uses"
        )
    complete = (
        "every parameter and buffer of the loaded model equals the saved model's (state_dict() "
        "is complete)"
    )
    if fresh.training:
        fresh.load(path)  # undo what inference in training mode changed
        fresh.eval()
        z3 = fresh.encode(x)
        if torch.equal(z3, z) and torch.equal(fresh.decode(z3), out):
            return (
                f"{complete}, but the loaded model infers in training mode: in eval mode it "
                "reproduces the outputs exactly. Run inference in eval mode (BatchNorm "
                "normalises by the batch and updates its running statistics in training mode, "
                "dropout is random)"
            )
    return (
        f"{complete}, so {{method}} depends on something else (a Python attribute set by fit "
        "and not stored in state_dict()?)"
    )


@_check("model", "fitting on a tiny dataset lowers the loss or the reconstruction error")
def check_fit_lowers_loss(s: _ModelSubject) -> None:
    """Fit on 64 blob images (``epochs=5``, ``batch_size=16`` when the model has those
    parameters; see :data:`FIT_EPOCHS`). ``fit`` must return a
    :class:`~vaebench.model.FitReport` with a finite ``history["loss"]``; the check passes when
    the last logged loss is below the first, or the reconstruction MSE after fitting is below
    the MSE before."""
    from vaebench.model import FitReport

    shape = s.shapes[0]
    model = s.create(shape, epochs=FIT_EPOCHS, batch_size=FIT_BATCH_SIZE)
    x = tiny_images(shape, N_FIT, seed=0).to(s.device)

    def mse() -> float:
        return float((model.decode(model.encode(x)).float() - x).pow(2).mean())

    before = mse()
    report = s.fit(model, x)
    _expect(
        isinstance(report, FitReport),
        f"expected fit() to return a vaebench.model.FitReport, got {type(report).__name__}",
    )
    history = report.history.get("loss") if isinstance(report.history, dict) else None
    if not (isinstance(history, list) and len(history) >= 1):
        raise _Mismatch(
            f'expected FitReport.history["loss"] to be a non-empty list, got {history!r}'
        )
    _expect(
        all(isinstance(v, (int, float)) and math.isfinite(v) for v in history),
        f'expected finite floats in FitReport.history["loss"], got {history!r}',
    )
    _expect(
        _is_int(report.samples_seen) and report.samples_seen > 0,
        f"expected FitReport.samples_seen > 0, got {report.samples_seen!r}",
    )
    _expect(report.seconds >= 0, f"expected FitReport.seconds >= 0, got {report.seconds!r}")
    after = mse()
    loss_fell = len(history) >= 2 and history[-1] < history[0]
    mse_fell = after < before * (1 - 1e-3)
    _expect(
        loss_fell or mse_fell,
        f"expected fit to lower the loss (history['loss'] {history[0]:.4g} -> {history[-1]:.4g})"
        f" or the reconstruction MSE ({before:.4g} -> {after:.4g}) on {N_FIT} tiny images",
    )


@_check("model", "fit works when the last batch holds a single image")
def check_fit_last_batch_of_one(s: _ModelSubject) -> str:
    """Fit one epoch on ``N = 2 * batch_size + 1`` images (``batch_size=16`` unless you set
    it; a model without a ``batch_size`` parameter gets 33), so a naive batching leaves a final
    batch of one image -- which BatchNorm cannot train on and which makes a variance or an
    MMD-style loss undefined. ``fit`` must not raise, its losses must be finite and the model
    must reconstruct finite images afterwards. Drop such a batch or merge it into the previous
    one."""
    shape = s.shapes[0]
    has_batch = "batch_size" in s.spec.defaults()
    batch = s.resolved(batch_size=FIT_BATCH_SIZE).get("batch_size") if has_batch else None
    if not (_is_int(batch) and batch > 0):
        batch = None
    n = 2 * batch + 1 if batch else 2 * FIT_BATCH_SIZE + 1
    where = (
        f"{n} images with batch_size={batch} (a last batch of one image)"
        if batch
        else f"{n} images (the model has no batch_size parameter)"
    )
    model = s.create(shape, epochs=1, batch_size=FIT_BATCH_SIZE)
    x = tiny_images(shape, n, seed=3).to(s.device)
    try:
        report = s.fit(model, x, seed=3)
    except Exception as exc:  # noqa: BLE001 - the failure this check exists for
        raise _Mismatch(
            f"expected fit on {where} to work, but it raised {type(exc).__name__}: {exc} "
            "(drop a last batch of one image or merge it into the previous batch)"
        ) from None
    history = getattr(report, "history", None)
    losses = history.get("loss") if isinstance(history, dict) else None
    if isinstance(losses, list):
        _expect(
            all(isinstance(v, (int, float)) and math.isfinite(v) for v in losses),
            f"expected finite losses from fit on {where}, got {losses!r} (a loss over one "
            "example is undefined: drop such a batch or merge it into the previous one)",
        )
    out = model.decode(model.encode(x))
    _expect(
        bool(torch.isfinite(out).all()),
        f"expected finite reconstructions after fit on {where}",
    )
    return f"fitted {where}"


@_check("model", "sample(n) draws n images in [0, 1], reproducibly for a seeded generator")
def check_sample(s: _ModelSubject) -> None:
    """Only when the tags say ``can_sample``: ``sample(n, generator)`` returns ``(n, C, H, W)``
    float32 images in ``[0, 1]`` without autograd, identical for two generators with one seed;
    ``sample(1)`` works."""
    if not s.tags.can_sample:
        raise _NotApplicable("the model has no prior to sample from (tags.can_sample is False)")
    shape = s.shapes[0]
    model, _ = s.fitted(shape)
    with torch.enable_grad():
        a = model.sample(6, generator=torch.Generator().manual_seed(3))
    b = model.sample(6, generator=torch.Generator().manual_seed(3))
    want = (6, *shape)
    _expect(isinstance(a, Tensor), f"expected sample(6) to return a Tensor, got {type(a).__name__}")
    _expect(
        tuple(a.shape) == want, f"expected sample(6) to have shape {want}, got {tuple(a.shape)}"
    )
    _expect(a.dtype == torch.float32, f"expected float32 samples, got {a.dtype}")
    _expect(not a.requires_grad, "expected samples with requires_grad=False")
    _expect(bool(torch.isfinite(a).all()), "expected finite samples")
    lo, hi = float(a.min()), float(a.max())
    _expect(lo >= 0.0 and hi <= 1.0, f"expected samples in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    _expect(
        torch.equal(a, b),
        "expected identical samples for two generators seeded alike (draw from `generator`)",
    )
    one = model.sample(1, generator=torch.Generator().manual_seed(4))
    _expect(
        tuple(one.shape) == (1, *shape),
        f"expected sample(1) to have shape {(1, *shape)}, got {_shape(one)}",
    )


@_check("model", "posterior(x) returns the mean and log-variance (N, latent_dim) of q(z|x)")
def check_posterior(s: _ModelSubject) -> None:
    """Only when the tags say ``has_posterior``: ``posterior(x)`` of 5 images (and of one)
    returns a pair ``(mean, logvar)`` of finite float32 tensors ``(N, latent_dim)``, the same on
    a second call. Outputs that carry autograd are accepted: models written for the first
    interface call ``posterior`` inside their loss, and metrics call it under
    ``torch.inference_mode()``."""
    if not s.tags.has_posterior:
        raise _NotApplicable("the model has no posterior (tags.has_posterior is False)")
    model, x = s.fitted(s.shapes[0])
    for k in (5, 1):
        with torch.enable_grad():
            got = model.posterior(x[:k])
        _expect(
            isinstance(got, (tuple, list)) and len(got) == 2,
            f"expected posterior(x) to return (mean, logvar), got {type(got).__name__}"
            + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""),
        )
        want = (k, model.latent_dim)
        for part, t in zip(("mean", "logvar"), got, strict=True):
            _expect(
                isinstance(t, Tensor),
                f"expected the posterior {part} to be a Tensor, got {type(t).__name__}",
            )
            _expect(
                tuple(t.shape) == want,
                f"expected the posterior {part} of {k} image(s) to have shape {want}, got "
                f"{tuple(t.shape)}",
            )
            _expect(t.dtype == torch.float32, f"expected a float32 posterior {part}, got {t.dtype}")
            _expect(bool(torch.isfinite(t).all()), f"expected a finite posterior {part}")
    again = model.posterior(x[:1])
    _expect(
        torch.equal(again[0].detach(), got[0].detach())
        and torch.equal(again[1].detach(), got[1].detach()),
        "expected posterior(x) to be deterministic: two calls on the same input differ",
    )


@_check("model", "log_likelihood(x, z) returns finite log p(x|z) per image, summed over pixels")
def check_log_likelihood(s: _ModelSubject) -> None:
    """Only when the tags name a ``likelihood``: ``log_likelihood(x, z)`` for 5 images and their
    codes returns a finite float tensor ``(5,)``, the same for one image alone and on a second
    call (autograd is accepted, as for ``posterior``). Under ``bernoulli`` it must equal ``sum x log p + (1 - x) log(1 - p)``
    over pixels with ``p = decode(z)`` (relative tolerance 1e-3) -- so never positive, and a sum,
    not a mean, over pixels."""
    from vaebench.model import LIKELIHOODS

    kind = s.tags.likelihood
    if not kind:
        raise _NotApplicable("the model states no likelihood (tags.likelihood is empty)")
    _expect(
        kind in LIKELIHOODS,
        f"expected tags.likelihood to be one of {', '.join(LIKELIHOODS)}, got {kind!r}",
    )
    model, x = s.fitted(s.shapes[0])
    x5 = x[:5]
    z = model.encode(x5)
    with torch.enable_grad():
        ll = model.log_likelihood(x5, z)
    _expect(isinstance(ll, Tensor), f"expected a Tensor, got {type(ll).__name__}")
    _expect(
        tuple(ll.shape) == (5,),
        f"expected log_likelihood of 5 images to have shape (5,), got {tuple(ll.shape)} (one "
        "value per image, summed over pixels)",
    )
    _expect(ll.is_floating_point(), f"expected floating-point values, got {ll.dtype}")
    _expect(
        bool(torch.isfinite(ll).all()),
        f"expected finite log-likelihoods, got {ll.detach().tolist()}",
    )
    ll = ll.detach()
    _expect(
        torch.equal(model.log_likelihood(x5, z).detach(), ll),
        "expected log_likelihood(x, z) to be deterministic: two calls differ",
    )
    one = model.log_likelihood(x5[:1], z[:1]).detach()
    _expect(
        tuple(one.shape) == (1,) and torch.allclose(one.double(), ll[:1].double(), rtol=1e-4),
        f"expected log_likelihood of one image alone to equal its value in a batch, got "
        f"{one.tolist()} and {ll[:1].tolist()}",
    )
    if kind == "bernoulli":
        p = model.decode(z).double().reshape(5, -1).clamp(1e-7, 1 - 1e-7)
        t = x5.double().reshape(5, -1)
        ref = (t * p.log() + (1 - t) * (1 - p).log()).sum(1).to(ll.device)
        _expect(
            torch.allclose(ll.double(), ref, rtol=1e-3, atol=1e-3 * t.shape[1]),
            f"expected the Bernoulli log-likelihood of x under p = decode(z), summed over the "
            f"{t.shape[1]} pixels: {[round(v, 3) for v in ref.tolist()]}, got "
            f"{[round(v, 3) for v in ll.double().tolist()]}",
        )


def model_checks() -> tuple[Callable[..., str | None], ...]:
    """Every model check, in the order :func:`run_model_checks` runs them."""
    return tuple(_KINDS["model"].checks)

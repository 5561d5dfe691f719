"""``regbench bench soma``: SOMA's inference time per 512×512 pair, peak memory and parameter counts.

TIMING ONLY, RANDOM WEIGHTS: no DINOv2 or SOMA weights exist on the benchmark machine, so the
networks here are built with random weights (the compute does not depend on them). The method's
own ``setup`` never builds a random backbone.

Besides our implementation, the full model is also timed with the released code's kernels swapped
in — torchvision's ``DeformConv2d`` and DINOv2 called once per image — and, given a local checkout
of the released code (``traslauc/SOMA``, kept outside this repository), that code itself; all in
one process, runs alternating, so the speed-ups are measured under the same (shared, noisy) load.
The released code loads DINOv2 with ``torch.hub.load`` from a local folder; for timing, that call
is answered with timm's ``vit_large_patch14_reg4_dinov2`` at 448 with random weights (the same
architecture), exactly as in ``anchor_timings.md``.
"""
from __future__ import annotations

import contextlib
import importlib
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import timm
import torch
from torchvision.ops import deform_conv2d

from .. import registry
from ..device import Timer, device_name, peak_memory_mb, reset_peak_memory, select_device, synchronize
from ..errors import ConfigError
from ..methods.soma import encoders, ops
from ..methods.soma.loss import soma_loss
from ..methods.soma.method import SOMAConfig, SOMANet, format_counts, parameter_counts

ANCHOR_RELEASED_S = 25.65  # docs/anchor_timings.md: released code, 512² pair, fp32, 2-core CPU


def _random_net(config: SOMAConfig, device: torch.device) -> SOMANet:
    dino = encoders.build_dino_vit(config.backbone, None) if config.uses_dino else None  # timing only, random weights
    net = SOMANet(config, dino).to(device).eval()
    return net.to(memory_format=torch.channels_last) if config.channels_last else net


@contextlib.contextmanager
def released_kernels() -> Iterator[None]:
    """Swap in the released code's compute: torchvision DeformConv2d, DINOv2 once per image."""
    dcn, dino = ops.DeformConv3x3.forward, encoders.DinoFeatures.forward
    ops.DeformConv3x3.forward = lambda self, x, off: deform_conv2d(x, off, self.weight, self.bias, padding=1)
    encoders.DinoFeatures.forward = lambda self, x: torch.cat([dino(self, xi) for xi in x.split(x.shape[0] // 2)])
    try:
        yield
    finally:
        ops.DeformConv3x3.forward, encoders.DinoFeatures.forward = dcn, dino


class _HubDino(torch.nn.Module):
    """Stand-in for ``torch.hub.load(..., 'dinov2_vitl14_reg')``: timm's ViT-L/14-reg4 at 448, random
    weights, with the hub model's ``forward_features`` → {"x_norm_patchtokens"} interface."""

    def __init__(self) -> None:
        super().__init__()
        self.vit = timm.create_model("vit_large_patch14_reg4_dinov2", pretrained=False, img_size=448, num_classes=0)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x_norm_patchtokens": self.vit.forward_features(x)[:, self.vit.num_prefix_tokens:]}


def _checkout(path: str) -> str:
    """``path`` if it holds the released code's ``models/encoder.py``; else a ConfigError."""
    if not (Path(path) / "models" / "encoder.py").is_file():
        raise ConfigError(f"{path}/models/encoder.py not found: --released-code must be a checkout of "
                          "github.com/traslauc/SOMA")
    return str(path)


def released_code_forward(path: str, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], object]:
    """Build the released SOMA (``models/encoder.py`` + ``models/matcher.py`` of a local
    ``traslauc/SOMA`` checkout at ``path``) with random weights; return its test-time forward,
    ``(sar, opt) → output`` on (1, 3, 512, 512) images, as its ``test.py`` calls it."""
    root = _checkout(path)
    hub_load = torch.hub.load
    sys.path.insert(0, root)
    torch.hub.load = lambda *a, **k: _HubDino()  # encoder.py binds it at import time
    try:
        encoder_mod = importlib.import_module("models.encoder")
        matcher_mod = importlib.import_module("models.matcher")
        encoder, matcher = encoder_mod.Encoder().to(device).eval(), matcher_mod.GLAM().to(device).eval()
    finally:
        torch.hub.load = hub_load
        sys.path.remove(root)
        for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
            del sys.modules[name]  # its generic package name must not shadow anything later

    def forward(sar: torch.Tensor, opt: torch.Tensor) -> object:
        return matcher(encoder(sar, label="sar")["sar"], encoder(opt, label="opt")["opt"])

    return forward


Variant = tuple[Callable[[], contextlib.AbstractContextManager], Callable[[], object]]


def _timed_runs(net: SOMANet, device: torch.device, repeats: int, variants: dict[str, Variant]) -> dict[str, dict]:
    """Per variant (context, run), median ms of ``run`` and of our model's parts (encoders, DINOv2,
    GLAM) over ``repeats`` runs after a warm-up. Variants alternate run by run, so load drift hits
    them alike."""
    parts = {v: {"total": [], "encoders": [], "dinov2": [], "glam": []} for v in variants}
    starts: dict[str, float] = {}
    current = [next(iter(variants))]
    modules = {"encoders": net.encoders, "dinov2": net.encoders.dino, "glam": net.glam}
    handles = []
    for name, module in modules.items():
        if module is None:
            continue

        def pre(m, a, name=name) -> None:
            synchronize(device)
            starts[name] = time.perf_counter()

        def post(m, a, o, name=name) -> None:
            synchronize(device)
            parts[current[0]][name].append((time.perf_counter() - starts[name]) * 1000)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    for i in range(repeats + 1):  # the first round is the warm-up
        for variant, (context, run) in variants.items():
            current[0] = variant
            with context(), Timer(device) as t:
                run()
            parts[variant]["total"].append(t.ms)
            if i == 0:
                for v in parts[variant].values():
                    v.clear()
    for h in handles:
        h.remove()
    return {variant: {k: statistics.median(v) for k, v in p.items() if v} | {"runs": p["total"]}
            for variant, p in parts.items()}


def _line(name: str, r: dict) -> str:
    parts = ", ".join(f"{k} {r[k] / 1000:.2f}" for k in ("encoders", "dinov2", "glam") if k in r)
    return (f"{name:<34} {r['total'] / 1000:7.2f} s/pair  (runs {', '.join(f'{t / 1000:.2f}' for t in r['runs'])}"
            + (f"; {parts} s)" if parts else ")"))


def bench_soma(size: int = 512, repeats: int = 3, device: str = "auto", train_batch: int = 4,
               compare_released: bool = True, released_code: str | None = None,
               echo: Callable[[str], None] = print) -> dict[str, dict]:
    """Print and return SOMA's inference time per ``size``² pair (median of ``repeats`` after a
    warm-up) with its parts, peak memory, the small model's training step, and parameter counts.

    ``compare_released`` also times the full model with the released code's kernels;
    ``released_code`` (a local ``traslauc/SOMA`` checkout, 512² only) also times that code itself.
    Peak memory of each model is read after its own warm-up pass, before anything else is built.
    """
    dev = select_device(device)
    if released_code is not None:  # fail before any timing
        _checkout(released_code)
        if size != 512:
            raise ConfigError(f"the released code hard-codes 512×512 inputs; got --size {size}")
    echo(f"SOMA benchmark on {device_name(dev)}: TIMING ONLY, RANDOM WEIGHTS; batch 1, {size}×{size} pair, fp32, "
         f"no_grad; median of {repeats} after 1 warm-up")
    small, full = registry.method("soma-small").resolve_config(), SOMAConfig()
    results: dict[str, dict] = {}
    for name, conf in (("soma-small", small), ("soma", full)):
        reset_peak_memory(dev)
        net = _random_net(replace(conf, input_size=size), dev)
        fmt = torch.channels_last if conf.channels_last else torch.contiguous_format
        sar = torch.rand(1, 1, size, size, device=dev)
        opt = torch.rand(1, 3, size, size, device=dev).contiguous(memory_format=fmt)
        with torch.no_grad():
            net(sar, opt)
        peak = peak_memory_mb(dev)
        variants: dict[str, Variant] = {"ours": (contextlib.nullcontext, lambda: net(sar, opt))}
        if name == "soma" and compare_released:
            variants["released kernels"] = (released_kernels, lambda: net(sar, opt))
        if name == "soma" and released_code is not None:
            forward = released_code_forward(released_code, dev)
            sar3 = sar.expand(1, 3, size, size).contiguous()  # the released loader reads SAR as RGB
            opt3 = opt.contiguous()
            variants["released code"] = (contextlib.nullcontext, lambda: forward(sar3, opt3))
        with torch.no_grad():
            timed = _timed_runs(net, dev, repeats, variants)
        r = results[name] = timed["ours"]
        r["peak_mb"] = peak
        echo(_line(f"{name} (ours)", r) + f"; peak {'GPU' if dev.type == 'cuda' else 'process RSS'} "
             f"{r['peak_mb']:.0f} MiB")
        for variant in ("released kernels", "released code"):
            if variant in timed:
                ref = results[f"soma, {variant}"] = timed[variant]
                label = "soma (released-code kernels)" if variant == "released kernels" else "released code (traslauc/SOMA)"
                glam = f" (GLAM {ref['glam'] / r['glam']:.2f}×, DINOv2 {ref['dinov2'] / r['dinov2']:.2f}×)" \
                    if "glam" in ref else ""
                echo(_line(label, ref))
                echo(f"  speed-up of ours over {variant}, runs alternated in one process: "
                     f"{ref['total'] / r['total']:.2f}×{glam}")
        if name == "soma" and released_code is None:
            echo(f"released code stand-alone on an idle 2-core CPU: {ANCHOR_RELEASED_S:.2f} s (anchor_timings.md); "
                 "pass --released-code PATH to time it side by side")
        if name == "soma-small":
            r["train_step_ms"] = _train_step_ms(small, dev, train_batch, repeats)
            echo(f"soma-small training step (fwd+loss+bwd), batch {train_batch}, {small.input_size}²: "
                 f"{r['train_step_ms'] / 1000:.2f} s")
        else:
            echo("trainable parameters of the full model vs docs/soma.md:\n" + format_counts(parameter_counts(net)))
        del net
    return results


def _train_step_ms(config: SOMAConfig, dev: torch.device, batch: int, repeats: int) -> float:
    net = _random_net(config, dev).train()
    s = config.input_size
    sar, opt = torch.rand(batch, 1, s, s, device=dev), torch.rand(batch, 3, s, s, device=dev)
    gt = torch.randn(batch, 2, s, s, device=dev) * 4

    def step() -> None:
        net.zero_grad(set_to_none=True)
        loss, _ = soma_loss(net(sar, opt), gt)
        loss.backward()

    step()
    times = []
    for _ in range(repeats):
        with Timer(dev) as t:
            step()
        times.append(t.ms)
    return statistics.median(times)

"""SOMA as a regbench method: config, the network (encoders + GLAM), weights and checkpoints.

SOMA (Wang, Zhuo et al., arXiv 2511.13168) has no released weights: evaluation needs a checkpoint
trained with ``regbench train`` and passed as ``--set weights=PATH``. Checkpoints hold the config,
the trainable state (the frozen DINOv2 is loaded from its own file) and its sha256; helpers:

* :func:`save_checkpoint` ``(path, method, extra=None) -> sha256``
* :func:`load_checkpoint` ``(path, method) -> extra`` (fails on a mismatched architecture)
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import config as cfg
from ...geometry import resize_flow
from ...store import atomic_write
from ...types import Pair, Prediction
from ..base import MethodConfig, TrainableMethod, file_sha256
from ...errors import WeightsMissingError
from .encoders import DinoFeatures, Pyramids, build_dino_vit, dino_model_name
from .glam import GLAM, MODES, level_widths
from .loss import soma_loss
from .ops import theta_to_matrix

CHECKPOINT_FORMAT = "regbench-soma/1"
#: config keys that define the network; a checkpoint only loads into a config that agrees on them
ARCH_KEYS = ("encoder", "encoder_channels", "stem_width", "fge", "fge_filters", "fge_attention", "glam",
             "glam_width", "reducer_channels", "backbone")


class CheckpointMismatchError(ValueError):
    """A checkpoint was trained with a different architecture than the config it is loaded into."""


@dataclass
class SOMAConfig(MethodConfig):
    """SOMA's options (defaults: the paper's full model at 512×512)."""

    #: network input size (square, multiple of 32); pairs are resized to it and flows brought back
    input_size: int = 512
    #: timm ResNet of both encoders; ``encoder_channels`` narrows its stages, ``stem_width`` replaces
    #: the 7×7 stem (64 channels) by a deep 3×3 stem of 2·stem_width channels
    encoder: str = "resnet50"
    encoder_channels: tuple[int, ...] | None = None
    stem_width: int | None = None
    #: ImageNet init of the ResNets for training: False, True (HF/timm cache) or a file path
    pretrained_resnet: bool | str = False
    #: keep ResNet BatchNorm in eval mode while training (released code)
    freeze_bn: bool = True
    fge: bool = True
    #: "sobel" (rotated Sobel init) or "learnable" (random init) directional filters
    fge_filters: str = "sobel"
    fge_attention: bool = True
    #: "full", "affine_only" or "flow_only"
    glam: str = "full"
    #: GLAM hidden width: one for every level, or five (1/16, 1/8, 1/4, 1/2, 1/1)
    glam_width: int | tuple[int, ...] = 128
    reducer_channels: int = 512
    #: coarse branch: DINOv2 with registers (vits14, vitb14, vitl14, vitg14 or a timm vit_* name) or "none"
    backbone: str = "vitl14"
    #: local DINOv2 file (timm or original format); None → look in the HF / torch-hub cache
    dino_weights: str | None = None
    #: SOMA checkpoint (from ``regbench train``); required for evaluation
    weights: str | None = None
    #: fp16 autocast for inference on CUDA (training AMP is the trainer's)
    amp: bool = False
    #: keep the network in channels-last memory format (faster convolutions; same maths)
    channels_last: bool = True
    lr: float = 5e-5
    encoder_lr: float = 2.5e-5
    weight_decay: float = 1e-4

    def validate(self) -> None:
        if self.input_size % 32 or self.input_size < 64:
            raise ValueError(f"input_size must be a multiple of 32 and at least 64, got {self.input_size}")
        if self.glam not in MODES:
            raise ValueError(f"glam must be one of {', '.join(MODES)}, got {self.glam!r}")
        if self.fge_filters not in ("sobel", "learnable"):
            raise ValueError(f"fge_filters must be 'sobel' or 'learnable', got {self.fge_filters!r}")
        dino_model_name(self.backbone)
        level_widths(self.glam_width)

    @property
    def uses_dino(self) -> bool:
        return self.glam != "flow_only" and self.backbone != "none"


class SOMANet(nn.Module):
    """Encoders (two ResNets + FGEs + shared frozen DINOv2) and GLAM.

    ``dino`` is the timm ViT of ``config.backbone`` (required when the config uses it).
    """

    def __init__(self, config: SOMAConfig, dino: nn.Module | None = None) -> None:
        super().__init__()
        config.validate()
        if config.uses_dino and dino is None:
            raise ValueError(f"backbone {config.backbone!r} needs its DINOv2 ViT: pass dino=")
        self.encoders = Pyramids(
            config.encoder, config.encoder_channels, config.stem_width, config.freeze_bn, config.fge,
            config.fge_filters, config.fge_attention, DinoFeatures(dino) if config.uses_dino else None,
            max_stride=8 if config.glam == "flow_only" else 32,
            fge_strides=(4, 8) if config.glam == "affine_only" else (2, 4, 8),
        )
        self.glam = GLAM(self.encoders.channels, config.glam, config.glam_width, config.reducer_channels)

    def forward(self, sar: torch.Tensor, opt: torch.Tensor) -> dict:
        """sar (B, 1 or 3, H, W), opt (B, 3, H, W) in [0, 1], H and W multiples of 32 → GLAM outputs
        (``flow`` (B, 2, H, W) in pixels, ``logit`` (B, 1, H, W) or None, ``theta`` or None, …)."""
        h, w = sar.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"SOMA needs sizes that are multiples of 32, got {h}×{w}")
        fs, fo = self.encoders(sar.expand(-1, 3, -1, -1), opt)
        return self.glam(fs, fo)


# --------------------------------------------------------------------------------------------
# weights


def _cached_file(model_name: str) -> str | None:
    """A pretrained file of timm model ``model_name`` in the local HF hub or torch-hub cache."""
    from huggingface_hub import try_to_load_from_cache

    pcfg = timm.models.get_pretrained_cfg(model_name)
    if pcfg is None:
        return None
    if pcfg.hf_hub_id:
        for filename in ("model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(pcfg.hf_hub_id, filename)
            if isinstance(hit, str):
                return hit
    if pcfg.url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(pcfg.url)
        if candidate.is_file():
            return str(candidate)
    return None


def _fetch_hint(model_name: str) -> str:
    pcfg = timm.models.get_pretrained_cfg(model_name)
    repo = pcfg.hf_hub_id if pcfg is not None else f"timm/{model_name}"
    return (f"fetch it with `huggingface-cli download {repo} model.safetensors` (it lands in the HF cache, "
            f"{os.environ.get('HF_HUB_CACHE') or os.environ.get('HF_HOME') or '~/.cache/huggingface'}), "
            f"or download https://huggingface.co/{repo}/resolve/main/model.safetensors")


def resolve_dino_file(config: SOMAConfig) -> str:
    """Path of the DINOv2 weights: ``dino_weights`` or the cache; else :class:`WeightsMissingError`."""
    name = dino_model_name(config.backbone)
    if config.dino_weights:
        if not Path(config.dino_weights).expanduser().is_file():
            raise WeightsMissingError(f"dino_weights={config.dino_weights} does not exist; "
                                      f"point it at the {name} weights file. {_fetch_hint(name)}")
        return str(Path(config.dino_weights).expanduser())
    found = _cached_file(name)
    if found is None:
        raise WeightsMissingError(
            f"SOMA's frozen DINOv2 backbone {name} (backbone={config.backbone}) has no weights on this machine; "
            f"{_fetch_hint(name)}, or pass --set dino_weights=/path/to/model.safetensors "
            "(the original dinov2_vit*14_reg4_pretrain.pth works too). Without DINOv2 use backbone=none."
        )
    return found


def _read_state(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def load_resnet_weights(net: SOMANet, config: SOMAConfig) -> None:
    """ImageNet weights into both ResNets (torchvision or timm file; the fc layer is dropped)."""
    if config.encoder_channels or config.stem_width is not None:
        raise ValueError("pretrained_resnet needs the standard encoder (no encoder_channels, no stem_width)")
    if isinstance(config.pretrained_resnet, str):
        path = Path(config.pretrained_resnet).expanduser()
        if not path.is_file():
            raise WeightsMissingError(f"pretrained_resnet={path} does not exist; {_fetch_hint(config.encoder)}")
        file = str(path)
    else:
        found = _cached_file(config.encoder)
        if found is None:
            raise WeightsMissingError(f"ImageNet weights of {config.encoder} (pretrained_resnet=true) are not cached; "
                                      f"{_fetch_hint(config.encoder)}, or pass --set pretrained_resnet=/path/to/file")
        file = found
    state = _read_state(file)
    for resnet in (net.encoders.resnet_sar, net.encoders.resnet_opt):
        own = resnet.net.state_dict()  # no fc; no layer3/4 when the config does not use them
        resnet.net.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict, in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | Path, method: "SOMA", extra: dict[str, Any] | None = None) -> str:
    """Write ``method``'s network (without the frozen DINOv2), config and sha256 to ``path``;
    ``extra`` (optimiser state, epoch, …) is stored as is. Returns the sha256."""
    state = {k: v.detach().cpu() for k, v in method.model.state_dict().items()}
    digest = state_checksum(state)
    payload = {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(method.config), "sha256": digest,
               "state_dict": state, "extra": extra or {}}
    atomic_write(path, lambda f: torch.save(payload, f))
    return digest


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The verified payload of a SOMA checkpoint (format and sha256 checked)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsMissingError(f"SOMA checkpoint {path} does not exist; train one with "
                                  "`regbench train --method soma --dataset D` and pass its path as --set weights=PATH")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a regbench SOMA checkpoint (format {CHECKPOINT_FORMAT})")
    if state_checksum(payload["state_dict"]) != payload["sha256"]:
        raise ValueError(f"{path} is corrupt: its weights do not match the sha256 it records")
    return payload


def load_checkpoint(path: str | Path, method: "SOMA") -> dict[str, Any]:
    """Load a checkpoint into ``method`` (after ``setup``); returns its ``extra``.

    Raises :class:`CheckpointMismatchError` when the checkpoint's architecture keys differ
    from ``method.config``.
    """
    payload = read_checkpoint(path)
    mine = cfg.to_dict(method.config)
    theirs = payload["config"]
    diff = [f"{k}: checkpoint {theirs.get(k)!r} vs config {mine[k]!r}" for k in ARCH_KEYS if theirs.get(k) != mine[k]]
    if diff:
        raise CheckpointMismatchError(f"checkpoint {path} was trained with another architecture ("
                                      + "; ".join(diff) + "); use the matching method variant or --set those keys")
    method.model.load_state_dict(payload["state_dict"], strict=True)
    return payload["extra"]


# --------------------------------------------------------------------------------------------
# parameter counts

#: trainable parameters of the released model (``docs/soma.md`` §2.3), in millions
REFERENCE_COUNTS = {"resnet_sar": 23.51, "resnet_opt": 23.51, "fge_sar.2": 0.305, "fge_sar.4": 4.860,
                    "fge_sar.8": 19.427, "glam": 10.05, "trainable total": 106.2}


def parameter_counts(net: SOMANet) -> dict[str, int]:
    """Trainable parameters per component (frozen DINOv2 listed separately)."""
    def n(m: nn.Module | None) -> int:
        return 0 if m is None else sum(p.numel() for p in m.parameters() if p.requires_grad)

    e, g = net.encoders, net.glam
    counts = {"resnet_sar": n(e.resnet_sar), "resnet_opt": n(e.resnet_opt)}
    for side in ("sar", "opt"):
        fges = getattr(e, f"fge_{side}")
        for s in (2, 4, 8):
            counts[f"fge_{side}.{s}"] = n(fges[str(s)]) if fges is not None and str(s) in fges else 0
    for part in ("reduce16", "reduce32", "coarse", "tf8", "tf4", "refine2", "refine1"):
        counts[f"glam.{part}"] = n(getattr(g, part, None))
    counts["glam"] = n(g)
    counts["trainable total"] = n(net)
    counts["frozen dinov2"] = sum(p.numel() for p in e.dino.parameters()) if e.dino is not None else 0
    return counts


def format_counts(counts: dict[str, int]) -> str:
    lines = [f"{'component':<18} {'params':>12}  {'soma.md':>8}"]
    for k, v in counts.items():
        ref = REFERENCE_COUNTS.get(k)
        lines.append(f"{k:<18} {v / 1e6:>11.3f}M  {'' if ref is None else f'{ref:.3f}M':>8}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the method


def _resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class SOMA(TrainableMethod):
    """SOMA: FGE-enhanced ResNet pyramids + frozen DINOv2 + GLAM affine-then-flow matcher.

    Pairs of any size are resized to ``input_size``² and the flow is brought back to pixels of
    the pair's grid. Returns the dense flow and a confidence map (σ of the certainty logit);
    ``glam=affine_only`` returns the 3×3 matrix.
    """

    Config = SOMAConfig

    def __init__(self, config: SOMAConfig | None = None) -> None:
        super().__init__(config)
        self.config.validate()
        self._net: SOMANet | None = None

    def setup(self, device: torch.device, for_training: bool = False) -> None:
        c = self.config
        if c.weights is None and not for_training:
            raise WeightsMissingError(
                "SOMA has no released weights (the authors published code only), and evaluating an untrained "
                "network would be a fake result: train one with `regbench train --method soma --dataset D` "
                "(or the variant you evaluate) and pass the checkpoint as --set weights=PATH"
            )
        if c.weights is not None:
            read_checkpoint(c.weights)  # fail on a missing/corrupt file before loading DINOv2
        dino = build_dino_vit(c.backbone, resolve_dino_file(c)) if c.uses_dino else None
        self._net = SOMANet(c, dino)
        if c.weights is not None:
            load_checkpoint(c.weights, self)
        elif c.pretrained_resnet is not False:
            load_resnet_weights(self._net, c)
        self.device = device
        self._net.to(device).train(for_training)
        if c.channels_last:
            self._net.to(memory_format=torch.channels_last)

    @property
    def model(self) -> SOMANet:
        if self._net is None:
            raise RuntimeError("call setup(device) first")
        return self._net

    @property
    def weights_checksum(self) -> str | None:
        """sha256 of the checkpoint file ``config.weights`` (known before ``setup``)."""
        return file_sha256(self.config.weights) if self.config.weights else None

    def save_weights(self, path: str | Path) -> None:
        """The file ``--set weights=PATH`` loads (the trainer's hook): a SOMA checkpoint."""
        save_checkpoint(path, self)

    def param_groups(self) -> list[dict]:
        c = self.config
        net = self.model
        encoders = [p for p in net.encoders.parameters() if p.requires_grad]
        return [
            {"name": "matcher", "params": list(net.glam.parameters()), "lr": c.lr, "weight_decay": c.weight_decay},
            {"name": "encoders", "params": encoders, "lr": c.encoder_lr, "weight_decay": c.weight_decay},
        ]

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        s = self.config.input_size
        gt = batch["gt_flow"]
        if gt.shape[1:3] != (s, s):
            gt = resize_flow(gt, s, s)
        out = self.model(_resize_images(batch["sar"], s), _resize_images(batch["opt"], s))
        return soma_loss(out, gt.permute(0, 3, 1, 2).float())

    @torch.no_grad()
    def register(self, pair: Pair) -> Prediction:
        h, w = pair.shape
        if min(h, w) < 16:
            return Prediction.failure(f"pair of {h}×{w} pixels is too small for SOMA (needs at least 16)")
        s = self.config.input_size
        opt = pair.opt if pair.opt.ndim == 3 else pair.opt[..., None]
        opt = np.repeat(opt, 3, axis=2) if opt.shape[2] == 1 else opt
        sar_t = torch.from_numpy(np.ascontiguousarray(pair.sar, np.float32))[None, None].to(self.device)
        opt_t = torch.from_numpy(np.ascontiguousarray(opt, np.float32)).permute(2, 0, 1)[None].to(self.device)
        net = self.model.eval()
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.config.amp and self.device.type == "cuda"):
            out = net(_resize_images(sar_t, s), _resize_images(opt_t, s))
        if out["logit"] is None:  # affine only: the exact matrix, mapped to the pair's grid
            a = theta_to_matrix(out["theta"], (s, s))[0].cpu().numpy()
            to_model = np.array([[s / w, 0, 0.5 * s / w - 0.5], [0, s / h, 0.5 * s / h - 0.5], [0, 0, 1.0]])
            return Prediction(matrix=np.linalg.inv(to_model) @ a @ to_model)
        flow = resize_flow(out["flow"].permute(0, 2, 3, 1).float(), h, w)[0]
        conf = torch.sigmoid(F.interpolate(out["logit"].float(), size=(h, w), mode="bilinear", align_corners=False))
        return Prediction(flow=flow.cpu().numpy().astype(np.float32), confidence=conf[0, 0].cpu().numpy())

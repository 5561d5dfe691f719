"""SOMA's encoders: two ResNets (SAR, optical; no weight sharing), the frozen DINOv2 branch, and
the per-modality feature pyramid with FGE at strides 2, 4, 8.

Pyramid of one modality, input (B, 3, H, W) in [0, 1]:

| stride | source                               | post-processing |
|--------|--------------------------------------|-----------------|
| 1      | raw image                            | none            |
| 2      | ResNet stem (conv1 + bn1 + relu)     | FGE             |
| 4      | ResNet layer1                        | FGE             |
| 8      | ResNet layer2                        | FGE             |
| 16     | DINOv2 patch tokens (or layer3)      | none            |
| 32     | ResNet layer4                        | none            |
"""
from __future__ import annotations

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from .fge import FGE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: short names of the DINOv2-with-registers backbones → timm model names
DINO_MODELS = {
    "vits14": "vit_small_patch14_reg4_dinov2",
    "vitb14": "vit_base_patch14_reg4_dinov2",
    "vitl14": "vit_large_patch14_reg4_dinov2",
    "vitg14": "vit_giant_patch14_reg4_dinov2",
}


def dino_model_name(backbone: str) -> str | None:
    """timm name of a ``backbone`` setting (a short name or a timm ``vit_*`` name); None for "none"."""
    if backbone == "none":
        return None
    if backbone in DINO_MODELS:
        return DINO_MODELS[backbone]
    if backbone.startswith("vit_"):
        return backbone
    raise ValueError(f"backbone must be one of {', '.join(DINO_MODELS)}, a timm vit_* name, or 'none'; got {backbone!r}")


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] → ImageNet-standardised."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class ResNetPyramid(nn.Module):
    """A timm ResNet (random init; weights are loaded by the method) returning strides 2…32.

    ``channels`` narrows the four stages (e.g. resnet18 with (32, 64, 128, 256)); ``stem_width``
    swaps the standard 7×7 stem (64 channels) for timm's "deep" stem of three 3×3 convolutions
    with 2·stem_width output channels. ``freeze_bn`` keeps every BatchNorm in eval mode during
    training, as the released code.
    """

    def __init__(self, arch: str = "resnet50", channels: tuple[int, ...] | None = None, stem_width: int | None = None,
                 freeze_bn: bool = True, max_stride: int = 32) -> None:
        super().__init__()
        kwargs = {} if stem_width is None else {"stem_type": "deep", "stem_width": stem_width}
        if channels:
            kwargs["channels"] = tuple(channels)
        self.net = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="", **kwargs)
        info = {f["module"]: f["num_chs"] for f in self.net.feature_info}
        self.channels = {2: info["act1"], 4: info["layer1"], 8: info["layer2"], 16: info["layer3"], 32: info["layer4"]}
        for stride, name in ((16, "layer3"), (32, "layer4")):
            if stride > max_stride:  # unused stages are dropped, not kept as dead weights
                setattr(self.net, name, nn.Identity())
                del self.channels[stride]
        self.freeze_bn = freeze_bn
        self.max_stride = max_stride

    def train(self, mode: bool = True) -> "ResNetPyramid":
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """x (B, 3, H, W) ImageNet-standardised → {stride: (B, C_s, H/s, W/s)} up to ``max_stride``."""
        n = self.net
        out = {2: n.act1(n.bn1(n.conv1(x)))}
        y = n.layer1(n.maxpool(out[2]))
        out[4] = y
        for stride, layer in ((8, n.layer2), (16, n.layer3), (32, n.layer4)):
            if stride > self.max_stride:
                break
            y = out[stride] = layer(y)
        return out


class DinoFeatures(nn.Module):
    """Frozen DINOv2 ViT (any timm ViT built with ``dynamic_img_size=True``): patch tokens on the
    stride-16 grid. The input is ImageNet-standardised and resized to (H/16·p, W/16·p) for patch
    size p (448×448 for a 512×512 input and p = 14 → 32×32 tokens). Always in eval mode.

    Its weights are fixed pretrained ones loaded from their own file, so they are left out of
    ``state_dict()`` (SOMA checkpoints stay small) and kept as they are by ``load_state_dict``.
    """

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit.eval().requires_grad_(False)
        self.patch = vit.patch_embed.patch_size[0]
        self.channels = vit.num_features
        self.register_state_dict_post_hook(_drop_own_keys)
        self.register_load_state_dict_pre_hook(_keep_own_weights)

    def train(self, mode: bool = True) -> "DinoFeatures":
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [0, 1] → (B, D, H/16, W/16)."""
        h, w = x.shape[-2] // 16, x.shape[-1] // 16
        x = F.interpolate(imagenet_normalize(x), size=(h * self.patch, w * self.patch), mode="bilinear",
                          align_corners=False)
        tokens = self.vit.forward_features(x)[:, self.vit.num_prefix_tokens:]
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)


def _drop_own_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]


def _keep_own_weights(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    for key, value in module.vit.state_dict(prefix=prefix + "vit.").items():
        state_dict.setdefault(key, value)


def build_dino_vit(backbone: str, weights_file: str | None) -> nn.Module:
    """The timm ViT of ``backbone``; weights from ``weights_file`` (timm or original DINOv2 format,
    converted by timm), or random when None — random weights are for tests and timing only."""
    name = dino_model_name(backbone)
    if name is None:
        raise ValueError("backbone 'none' has no ViT")
    if weights_file is None:
        return timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)
    return timm.create_model(name, pretrained=True, num_classes=0, dynamic_img_size=True,
                             pretrained_cfg_overlay={"file": weights_file})


class Pyramids(nn.Module):
    """Both modalities' feature pyramids: separate ResNets and FGEs, one shared frozen DINOv2.

    ``dino`` is None when the coarse level uses ResNet layer3 instead (backbone "none").
    ``max_stride`` 8 skips the coarse levels (flow-only GLAM); ``fge_strides`` (4, 8) skips the
    stride-2 FGE whose output an affine-only GLAM never reads.
    """

    def __init__(self, encoder: str, channels: tuple[int, ...] | None, stem_width: int | None, freeze_bn: bool,
                 fge: bool, fge_filters: str, fge_attention: bool, dino: DinoFeatures | None, max_stride: int,
                 fge_strides: tuple[int, ...] = (2, 4, 8)) -> None:
        super().__init__()
        self.resnet_sar = ResNetPyramid(encoder, channels, stem_width, freeze_bn, max_stride)
        self.resnet_opt = ResNetPyramid(encoder, channels, stem_width, freeze_bn, max_stride)
        ch = self.resnet_sar.channels
        if fge:
            self.fge_sar = nn.ModuleDict({str(s): FGE(ch[s], fge_filters, fge_attention) for s in fge_strides})
            self.fge_opt = nn.ModuleDict({str(s): FGE(ch[s], fge_filters, fge_attention) for s in fge_strides})
        else:
            self.fge_sar = self.fge_opt = None
        self.dino = dino
        self.max_stride = max_stride
        self.channels = dict(ch) | {1: 3}
        if dino is not None:
            self.channels[16] = dino.channels

    def forward(self, sar: torch.Tensor, opt: torch.Tensor) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """sar, opt (B, 3, H, W) in [0, 1] → two pyramids {stride: (B, C_s, H/s, W/s)}."""
        feats = []
        for img, resnet, fges in ((sar, self.resnet_sar, self.fge_sar), (opt, self.resnet_opt, self.fge_opt)):
            f = resnet(imagenet_normalize(img))
            if fges is not None:
                f.update({int(s): fge(f[int(s)]) for s, fge in fges.items()})
            f[1] = img
            feats.append(f)
        if self.dino is not None and self.max_stride >= 16:
            tokens = self.dino(torch.cat((sar, opt), dim=0))  # both images in one call
            feats[0][16], feats[1][16] = tokens.chunk(2, dim=0)
        return feats[0], feats[1]

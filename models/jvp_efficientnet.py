"""Forward-mode attribution for EfficientNet-Lite, as a TorchScript method.

Why: the attribution of a sampled vector h to every class is a Jacobian-vector product J·t of the
logits with respect to the layer, with t = h at the sampled position and 0 elsewhere (spec §5).
libtorch offers it through Rust only as the "double-backward trick", and on CPU the double
backward of a depthwise convolution loops over the channel groups (thousands of tiny convolutions
per layer), which makes it ~10x slower than a forward pass. EfficientNet-Lite is made of
convolutions, eval-mode batch norms (affine), ReLU6, residual additions, average pooling and a
linear layer, so the tangent can be pushed forward exactly, op by op:

    conv:     t -> conv(t)                (no bias in these convs)
    bn:       t -> t * gamma/sqrt(var+eps) (the shift drops out)
    relu6:    t -> t * [0 < pre < 6]      (the derivative PyTorch's hardtanh_backward uses)
    add:      t1 + t2
    avgpool, linear: t -> W·mean(t)       (no bias)

All active tangents travel in one batch next to the primal batch (`cat` along the batch axis), so
each convolution runs once per block for all layers requested. The result equals autograd's
forward-mode JVP (tests/reference/attribution_ref.py checks it against torch.autograd.forward_ad).
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class JvpConvBn(nn.Module):
    """Static-'same'-padded conv + eval batch norm (+ optional ReLU6) on primal and tangents."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, relu6: bool):
        super().__init__()
        pad = getattr(conv, "static_padding", None)
        self.pad: List[int] = [int(p) for p in pad.padding] if isinstance(pad, nn.ZeroPad2d) else [0, 0, 0, 0]
        # The same tensors as the model's own (not copies), so the saved file holds them once.
        self.weight = conv.weight
        self.stride: List[int] = [int(s) for s in conv.stride]
        self.groups: int = int(conv.groups)
        scale = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
        self.register_buffer("scale", scale.view(1, -1, 1, 1).clone())
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.bn_weight = bn.weight
        self.bn_bias = bn.bias
        self.eps = float(bn.eps)
        self.relu6 = relu6

    def forward(self, h: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
        # The primal goes through exactly the ops of the original module (same conv call, same
        # batch-norm kernel), so its values, and hence the ReLU6 masks, match the model bit for bit.
        pre = F.batch_norm(self._conv(h), self.running_mean, self.running_var, self.bn_weight, self.bn_bias, False, 0.0, self.eps)
        ty = self._conv(t) * self.scale
        if self.relu6:
            n = ty.size(0) // max(h.size(0), 1)
            live = ((pre > 0) & (pre < 6)).to(ty.dtype)
            ty = ty * live.repeat(n, 1, 1, 1)
            pre = F.relu6(pre)
        return pre, ty

    def _conv(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, self.pad), self.weight, None, self.stride, [0, 0], [1, 1], self.groups)


class PassThrough(nn.Module):
    """Stands in for a missing expansion conv (TorchScript compiles both branches of an `if`)."""

    def forward(self, h: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
        return h, t


class JvpBlock(nn.Module):
    """One MBConv block (lite: no squeeze-excitation, ReLU6)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        args = block._block_args
        self.expand = args.expand_ratio != 1
        self.expand_op = JvpConvBn(block._expand_conv, block._bn0, True) if self.expand else PassThrough()
        self.depthwise = JvpConvBn(block._depthwise_conv, block._bn1, True)
        self.project = JvpConvBn(block._project_conv, block._bn2, False)
        self.skip = bool(args.id_skip and args.stride == 1 and args.input_filters == args.output_filters)
        if block.has_se:
            raise ValueError("squeeze-excitation blocks are not supported (EfficientNet-Lite has none)")

    def forward(self, h: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
        x, tx = self.expand_op(h, t)
        x, tx = self.depthwise(x, tx)
        x, tx = self.project(x, tx)
        if self.skip:
            x = x + h
            tx = tx + t
        return x, tx


def start_tangent(h: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """Zeros except h[b, :, ys[b], xs[b]] for every batch item b."""
    b, _, height, width = h.shape
    mask = torch.zeros(b, height * width, dtype=h.dtype, device=h.device)
    mask.scatter_(1, (ys * width + xs).view(b, 1).to(torch.long), 1.0)
    return h * mask.view(b, 1, height, width)


class EfficientNetLiteJvp(nn.Module):
    """`forward(x, layers, ys, xs) -> (logits, acts, attributions)`.

    `layers[j]` is an index into the exposed layers (the stage taps, then the head); `ys[j]`, `xs[j]`
    are `[B]` positions in that layer. Returns the logits `[B,K]`, every exposed layer `[B,C,h,w]`
    and, for every j, the attribution rows `[B,K]` of the vector at (ys[j][b], xs[j][b]).
    """

    def __init__(self, net: nn.Module, stage_ends: List[int]):
        super().__init__()
        self.stem = JvpConvBn(net._conv_stem, net._bn0, True)
        self.blocks = nn.ModuleList([JvpBlock(b) for b in net._blocks])
        self.head = JvpConvBn(net._conv_head, net._bn1, True)
        self.tap_of_block: List[int] = [-1] * len(net._blocks)
        for k, i in enumerate(stage_ends):
            self.tap_of_block[i] = k
        self.head_tap = len(stage_ends)
        self.fc_weight = net._fc.weight
        self.fc_bias = net._fc.bias

    def _start(self, h: Tensor, t: Tensor, tap: int, layers: List[int], ys: List[Tensor], xs: List[Tensor], order: List[int]) -> Tensor:
        for j in range(len(layers)):
            if layers[j] == tap:
                t = torch.cat([t, start_tangent(h, ys[j], xs[j])])
                order.append(j)
        return t

    def forward(self, x: Tensor, layers: List[int], ys: List[Tensor], xs: List[Tensor]) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
        b = x.size(0)
        h = (x * 255.0 - 127.0) / 128.0
        t = h[:0]
        h, t = self.stem(h, t)
        acts: List[Tensor] = []
        order: List[int] = []
        i = 0
        for block in self.blocks:
            h, t = block(h, t)
            tap = self.tap_of_block[i]
            if tap >= 0:
                acts.append(h)
                t = self._start(h, t, tap, layers, ys, xs, order)
            i += 1
        h, t = self.head(h, t)
        acts.append(h)
        t = self._start(h, t, self.head_tap, layers, ys, xs, order)
        logits = F.linear(h.mean((2, 3)), self.fc_weight, self.fc_bias)
        tangent_logits = F.linear(t.mean((2, 3)), self.fc_weight, None)
        attrs: List[Tensor] = [logits[:0]] * len(layers)
        for slot in range(len(order)):
            attrs[order[slot]] = tangent_logits[slot * b:(slot + 1) * b]
        return logits, acts, attrs

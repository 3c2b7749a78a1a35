"""Elastic layers of the supernet: weights sized for the largest choice, sliced per subnet.

* Elastic width: the first ``mid`` channels of an expanded block are used, so
  :meth:`ElasticMBConv.sort_channels` orders them by importance first.
* Elastic kernel: a 5x5 (3x3) kernel is the centre of the 7x7 (5x5) one passed
  through a learned per-layer 25x25 (9x9) transformation matrix.
* Elastic depth is handled by the supernet (the first d blocks of a stage run).

Forward passes take the active choice as arguments: no layer holds "active" state,
so one supernet can serve many configurations concurrently.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.nn.static import BNTensors, ConvBNAct, MBConv, SqueezeExcite, activation, make_bn, make_conv
from app.space import KERNEL_CHOICES, se_channels


def _act_fn(name: str):
    return F.relu if name == "relu" else F.hardswish


def _cl(w: Tensor) -> Tensor:
    """A channels-last copy of a conv weight (faster CPU inference, same values)."""
    return w.detach().clone(memory_format=torch.channels_last)


def _bn_slice(bn: nn.BatchNorm2d, n: int) -> BNTensors:
    """Cloned first-``n``-channel parameters and statistics of ``bn``."""
    return BNTensors(
        bn.weight[:n].detach().clone(),
        bn.bias[:n].detach().clone(),
        bn.running_mean[:n].clone(),
        bn.running_var[:n].clone(),
        bn.eps,
        bn.momentum if bn.momentum is not None else 0.1,
    )


def elastic_bn(x: Tensor, bn: nn.BatchNorm2d) -> Tensor:
    """BatchNorm over the first ``x.size(1)`` channels of ``bn`` (its statistics updated in training)."""
    n = x.size(1)
    if n == bn.num_features:
        return bn(x)
    return F.batch_norm(
        x,
        bn.running_mean[:n],
        bn.running_var[:n],
        bn.weight[:n],
        bn.bias[:n],
        bn.training,
        bn.momentum if bn.momentum is not None else 0.1,
        bn.eps,
    )


class ConvBN(nn.Module):
    """A conv weight and its BatchNorm (parameter container of an elastic block)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)


class ElasticDepthwise(ConvBN):
    """Depthwise conv with elastic kernel size (centre crop + transformation matrices)."""

    def __init__(self, channels: int, kernel_choices: tuple[int, ...] = KERNEL_CHOICES) -> None:
        super().__init__(channels, channels, max(kernel_choices), groups=channels)
        self.kernel_choices = tuple(sorted(kernel_choices))
        for small, large in zip(self.kernel_choices[:-1], self.kernel_choices[1:]):
            self.register_parameter(f"transform_{large}to{small}", nn.Parameter(torch.eye(small * small)))

    def kernel(self, channels: int, k: int) -> Tensor:
        """The ``channels`` x 1 x k x k depthwise kernel (differentiable)."""
        w = self.conv.weight[:channels]
        ks = self.kernel_choices
        for large, small in zip(reversed(ks[1:]), reversed(ks[:-1])):
            if large <= k:
                break
            start = (large - small) // 2
            crop = w[:, :, start : start + small, start : start + small].reshape(channels, small * small)
            w = F.linear(crop, getattr(self, f"transform_{large}to{small}")).reshape(channels, 1, small, small)
        return w


class SqueezeExciteParams(nn.Module):
    """Parameters of an elastic squeeze-excite module (OFA layout)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = se_channels(channels)
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        c = x.size(1)
        m = se_channels(c)
        y = x.mean((2, 3), keepdim=True)
        y = F.relu(F.conv2d(y, self.reduce.weight[:m, :c], self.reduce.bias[:m]))
        y = F.conv2d(y, self.expand.weight[:c, :m], self.expand.bias[:c])
        return x * F.hardsigmoid(y)

    def extract(self, c: int) -> SqueezeExcite:
        m = se_channels(c)
        return SqueezeExcite(
            make_conv(self.reduce.weight[:m, :c].detach().clone(), bias=self.reduce.bias[:m].detach().clone()),
            make_conv(self.expand.weight[:c, :m].detach().clone(), bias=self.expand.bias[:c].detach().clone()),
        )


class ElasticMBConv(nn.Module):
    """MBConv block with elastic kernel size and expand ratio (and elastic input width)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        max_mid: int,
        stride: int,
        act: str,
        use_se: bool,
        kernel_choices: tuple[int, ...] = KERNEL_CHOICES,
    ) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.stride, self.act, self.use_se = in_ch, out_ch, stride, act, use_se
        self.expand = ConvBN(in_ch, max_mid)
        self.depthwise = ElasticDepthwise(max_mid, kernel_choices)
        self.se = SqueezeExciteParams(max_mid) if use_se else None
        self.project = ConvBN(max_mid, out_ch)

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_ch == self.out_ch

    def forward(self, x: Tensor, kernel: int, mid: int) -> Tensor:
        act = _act_fn(self.act)
        c = x.size(1)
        y = F.conv2d(x, self.expand.conv.weight[:mid, :c])
        y = act(elastic_bn(y, self.expand.bn))
        y = F.conv2d(y, self.depthwise.kernel(mid, kernel), None, self.stride, kernel // 2, 1, mid)
        y = act(elastic_bn(y, self.depthwise.bn))
        if self.se is not None:
            y = self.se(y)
        y = F.conv2d(y, self.project.conv.weight[:, :mid])
        y = elastic_bn(y, self.project.bn)
        return x + y if self.residual else y

    @torch.no_grad()
    def extract(self, in_ch: int, kernel: int, mid: int) -> MBConv:
        """A static :class:`MBConv` holding copies of the active weights."""
        expand = ConvBNAct(
            make_conv(_cl(self.expand.conv.weight[:mid, :in_ch])), make_bn(_bn_slice(self.expand.bn, mid)), self.act
        )
        depthwise = ConvBNAct(
            make_conv(_cl(self.depthwise.kernel(mid, kernel)), self.stride, groups=mid),
            make_bn(_bn_slice(self.depthwise.bn, mid)),
            self.act,
        )
        se = self.se.extract(mid) if self.se is not None else None
        project = ConvBNAct(
            make_conv(_cl(self.project.conv.weight[:, :mid])), make_bn(_bn_slice(self.project.bn, self.out_ch)), None
        )
        return MBConv(expand, depthwise, se, project, self.residual)

    @torch.no_grad()
    def sort_channels(self, widths: tuple[int, ...] = (), stage: int = 0) -> None:
        """Reorder hidden channels by importance (L1 norm of the projection weights).

        ``widths``: hidden widths of every expand ratio, widest first; ``stage``: how many
        narrower ratios earlier phases trained. Channels inside those widths stay inside
        them (OFA's ``expand_ratio_stage``). Mutates this block: for training only.
        """
        importance = self.project.conv.weight.abs().sum(dim=(0, 2, 3))
        if stage > 0:
            right = importance.numel()
            bonus = -len(widths) * 1e5
            for left in widths[: stage + 1]:
                importance[left:right] += bonus
                bonus += 1e5
                right = left
        order = torch.sort(importance, descending=True).indices
        self.project.conv.weight.copy_(self.project.conv.weight[:, order])
        self.expand.conv.weight.copy_(self.expand.conv.weight[order])
        self.depthwise.conv.weight.copy_(self.depthwise.conv.weight[order])
        for bn in (self.expand.bn, self.depthwise.bn):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(t[order])
        if self.se is not None:
            se = self.se
            se.expand.weight.copy_(se.expand.weight[order])
            se.expand.bias.copy_(se.expand.bias[order])
            se.reduce.weight.copy_(se.reduce.weight[:, order])
            se_order = torch.sort(se.expand.weight.abs().sum(dim=(0, 2, 3)), descending=True).indices
            se.expand.weight.copy_(se.expand.weight[:, se_order])
            se.reduce.weight.copy_(se.reduce.weight[se_order])
            se.reduce.bias.copy_(se.reduce.bias[se_order])


class FixedMBConv(nn.Module):
    """The supernet's first block: MBConv with expand ratio 1, kernel 3 (not elastic)."""

    def __init__(self, in_ch: int, out_ch: int, act: str = "relu") -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.act = in_ch, out_ch, act
        self.depthwise = ConvBN(in_ch, in_ch, 3, groups=in_ch)
        self.project = ConvBN(in_ch, out_ch)

    def forward(self, x: Tensor) -> Tensor:
        y = _act_fn(self.act)(self.depthwise.bn(self.depthwise.conv(x)))
        y = self.project.bn(self.project.conv(y))
        return x + y if self.in_ch == self.out_ch else y

    @torch.no_grad()
    def extract(self) -> MBConv:
        dw = self.depthwise
        return MBConv(
            None,
            ConvBNAct(make_conv(_cl(dw.conv.weight), groups=self.in_ch), make_bn(_bn_slice(dw.bn, self.in_ch)), self.act),
            None,
            ConvBNAct(make_conv(_cl(self.project.conv.weight)), make_bn(_bn_slice(self.project.bn, self.out_ch)), None),
            self.in_ch == self.out_ch,
        )


__all__ = ["ElasticMBConv", "ElasticDepthwise", "FixedMBConv", "ConvBN", "elastic_bn", "activation"]

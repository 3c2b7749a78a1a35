"""Static layers an extracted subnet is made of: plain ``nn.Conv2d``/``nn.BatchNorm2d``/``nn.Linear``.

Extracted subnets are ordinary eval-mode PyTorch modules: they script, export and
quantise like any torchvision model. Constructors take ready tensors (sliced from the
supernet), so building a subnet allocates nothing it does not keep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from app.space import SubnetConfig


def activation(name: str | None) -> nn.Module:
    """The activation module for OFA's names ("relu", "h_swish")."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    if name is None:
        return nn.Identity()
    raise ValueError(f"activation: unknown {name!r}")


@dataclass
class BNTensors:
    """Parameters and statistics of one batch-norm layer."""

    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor
    eps: float = 1e-5
    momentum: float = 0.1


def make_conv(weight: Tensor, stride: int = 1, groups: int = 1, bias: Tensor | None = None) -> nn.Conv2d:
    """An ``nn.Conv2d`` with "same" padding that owns ``weight``.

    Built without ``nn.Conv2d.__init__`` (whose random initialisation would be thrown
    away): extraction builds hundreds of layers and must take milliseconds. The result
    is an ordinary ``nn.Conv2d`` (tests compare it with one built the usual way).
    """
    out_ch, in_per_group, k, _ = weight.shape
    conv = nn.Conv2d.__new__(nn.Conv2d)
    nn.Module.__init__(conv)
    p = k // 2
    conv.__dict__.update(
        in_channels=in_per_group * groups,
        out_channels=out_ch,
        kernel_size=(k, k),
        stride=(stride, stride),
        padding=(p, p),
        dilation=(1, 1),
        transposed=False,
        output_padding=(0, 0),
        groups=groups,
        padding_mode="zeros",
        _reversed_padding_repeated_twice=[p, p, p, p],
    )
    conv._parameters["weight"] = nn.Parameter(weight, requires_grad=False)
    conv._parameters["bias"] = nn.Parameter(bias, requires_grad=False) if bias is not None else None
    return conv


def make_bn(t: BNTensors) -> nn.BatchNorm2d:
    """An ``nn.BatchNorm2d`` (eval mode) that owns the given tensors; built like :func:`make_conv`."""
    bn = nn.BatchNorm2d.__new__(nn.BatchNorm2d)
    nn.Module.__init__(bn)
    bn.__dict__.update(
        num_features=t.weight.numel(), eps=t.eps, momentum=t.momentum, affine=True, track_running_stats=True
    )
    bn._parameters["weight"] = nn.Parameter(t.weight, requires_grad=False)
    bn._parameters["bias"] = nn.Parameter(t.bias, requires_grad=False)
    bn._buffers["running_mean"] = t.running_mean
    bn._buffers["running_var"] = t.running_var
    bn._buffers["num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    bn.training = False
    return bn


class ConvBNAct(nn.Sequential):
    """Conv -> BatchNorm -> activation."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, act: str | None) -> None:
        super().__init__()
        self.conv = conv
        if bn is not None:
            self.bn = bn
        self.act = activation(act)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite with OFA's layout: 1x1 reduce (bias), ReLU, 1x1 expand (bias), h-sigmoid."""

    def __init__(self, reduce: nn.Conv2d, expand: nn.Conv2d) -> None:
        super().__init__()
        self.reduce = reduce
        self.relu = nn.ReLU(inplace=True)
        self.expand = expand
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.relu(self.reduce(y))))


class MBConv(nn.Module):
    """Inverted residual block: [1x1 expand] -> kxk depthwise [-> SE] -> 1x1 project [+ skip]."""

    def __init__(
        self,
        expand: ConvBNAct | None,
        depthwise: ConvBNAct,
        se: SqueezeExcite | None,
        project: ConvBNAct,
        residual: bool,
    ) -> None:
        super().__init__()
        self.expand = expand
        self.depthwise = depthwise
        self.se = se
        self.project = project
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if self.expand is not None:
            y = self.expand(y)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class MobileNetV3Subnet(nn.Module):
    """A static subnet extracted from the supernet (eval mode, inference only).

    ``config`` is the :class:`~app.space.SubnetConfig` it was extracted for; it takes
    N x 3 x r x r images normalised with the supernet card's mean and std.
    """

    def __init__(
        self,
        stem: ConvBNAct,
        first_block: MBConv,
        blocks: list[MBConv],
        final_expand: ConvBNAct,
        feature_mix: ConvBNAct,
        classifier: nn.Linear,
        config: SubnetConfig,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.first_block = first_block
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = final_expand
        self.feature_mix = feature_mix
        self.classifier = classifier
        self.config = config

    def feature_map(self, x: Tensor) -> Tensor:
        """The last convolutional feature map (``final_expand``'s output, N x C x h x w): Grad-CAM's layer."""
        return self.final_expand(self.blocks(self.first_block(self.stem(x))))

    def pooled_features(self, feature_map: Tensor) -> Tensor:
        """The classifier's input from :meth:`feature_map`: global mean pool, then ``feature_mix``."""
        return torch.flatten(self.feature_mix(feature_map.mean((2, 3), keepdim=True)), 1)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.pooled_features(self.feature_map(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))

    def fold_batchnorm(self) -> "MobileNetV3Subnet":
        """A copy with every BatchNorm folded into its convolution: same outputs (to float rounding), faster.

        For inference once BN statistics are final; keep the unfolded subnet for recalibration."""
        import copy

        from torch.nn.utils.fusion import fuse_conv_bn_eval

        folded = copy.deepcopy(self)
        for m in folded.modules():
            if isinstance(m, ConvBNAct) and "bn" in m._modules:
                m.conv = fuse_conv_bn_eval(m.conv, m.bn)
                del m.bn
        return folded.eval()

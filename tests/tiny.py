"""A Backbone's interface on a small CNN, injected into methods whose loss and wiring tests
need real gradients through a network but not a ResNet's cost."""

from torch import nn

from viewkit.trainer.nets import Backbone


class TinyBackbone(Backbone):
    """Five stride-2 convolutions (stride 32, as a ResNet) to `dim` channels."""

    def __init__(self, dim: int = 16):
        nn.Module.__init__(self)
        self.arch, self.dim, self.stride = "tiny", dim, 32
        layers, width = [], 3
        for out in (8, 8, 16, 16, dim):
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            width = out
        self.trunk = nn.Sequential(*layers)

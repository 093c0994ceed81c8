"""A small deep-learning framework on torch tensor operations alone, with hand-written backward.

    import framework as fw
    model = fw.Sequential(fw.Linear(2, 25), fw.ReLU(), fw.Linear(25, 1), fw.Sigmoid())
    criterion = fw.BCELoss()
    optimizer = fw.optim.Adam(model.parameters(), lr=1e-3)
    loss = criterion(model(x), y)
    optimizer.zero_grad()
    model.backward(criterion.backward())
    optimizer.step()

M models of one architecture train as one batched program (per-model losses, per-model
learning rates):

    stacked = fw.stack([make_model() for _ in range(M)])       # weights (M, out, in)
    criterion = fw.StackedLoss(fw.MSELoss())                   # losses (M,)
    optimizer = fw.optim.SGD(stacked.parameters(), lr=torch.logspace(-3, 0, M))
    losses = criterion(stacked(x), y)                          # x (M, B, in), y (M, B, out)
    optimizer.zero_grad()
    stacked.backward(criterion.backward())
    optimizer.step()
    models = fw.unstack(stacked)                               # M ordinary models

No torch.nn, torch.optim or torch.autograd: every gradient is computed by the modules' own
``backward``. Names, arguments, defaults and ``state_dict`` keys follow PyTorch's nn and optim.
A training step reads nothing back to the host (no ``.item()``, no Python ``if`` on a tensor), so
on a GPU it never waits for the device; value checks that would (BCE's [0, 1] domain, class
indices) are opt-in (``check=True``) or a ``validate`` call at evaluation.
"""

from . import init, optim
from .activation import ELU, GELU, Activation, LeakyReLU, ReLU, Sigmoid, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d, StackedBatchNorm1d, StackedBatchNorm2d
from .container import INIT_SCHEMES, Sequential
from .conv import Conv2d, StackedConv2d
from .dropout import Dropout, StackedDropout
from .flatten import Flatten, StackedFlatten
from .linear import Linear
from .loss import BCELoss, CrossEntropyLoss, Loss, MSELoss, StackedLoss
from .module import Buffer, Module, Parameter
from .pooling import MaxPool2d, StackedMaxPool2d
from .stack import StackedLinear, StackedSequential, stack, unstack

__all__ = [
    "ELU",
    "GELU",
    "INIT_SCHEMES",
    "Activation",
    "BCELoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Buffer",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "LeakyReLU",
    "Linear",
    "Loss",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "StackedBatchNorm1d",
    "StackedBatchNorm2d",
    "StackedConv2d",
    "StackedDropout",
    "StackedFlatten",
    "StackedLinear",
    "StackedLoss",
    "StackedMaxPool2d",
    "StackedSequential",
    "Tanh",
    "init",
    "optim",
    "stack",
    "unstack",
]

"""A small deep-learning framework on torch tensor operations alone, with hand-written backward.

    import framework as fw
    model = fw.Sequential(fw.Linear(2, 25), fw.ReLU(), fw.Linear(25, 1), fw.Sigmoid())
    criterion = fw.BCELoss()
    optimizer = fw.optim.Adam(model.parameters(), lr=1e-3)
    loss = criterion(model(x), y)
    optimizer.zero_grad()
    model.backward(criterion.backward())
    optimizer.step()

No torch.nn, torch.optim or torch.autograd: every gradient is computed by the modules' own
``backward``. Names, arguments, defaults and ``state_dict`` keys follow PyTorch's nn and optim.
"""

from . import init, optim
from .activation import ELU, Activation, LeakyReLU, ReLU, Sigmoid, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import INIT_SCHEMES, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .linear import Linear
from .loss import BCELoss, CrossEntropyLoss, Loss, MSELoss
from .module import Buffer, Module, Parameter
from .pooling import MaxPool2d

__all__ = [
    "ELU",
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
    "Tanh",
    "init",
    "optim",
]

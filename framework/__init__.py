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
from .container import INIT_SCHEMES, Sequential
from .linear import Linear
from .loss import BCELoss, Loss, MSELoss
from .module import Buffer, Module, Parameter

__all__ = [
    "ELU",
    "INIT_SCHEMES",
    "Activation",
    "BCELoss",
    "Buffer",
    "LeakyReLU",
    "Linear",
    "Loss",
    "MSELoss",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "init",
    "optim",
]

"""M models of one architecture trained as one batched program: `stack`, `unstack` and the
stacked layers.

A training step of a small model is mostly Python and dispatch overhead (a 2-25-25-25-1 MLP at
batch 100 does 0.8 MFLOP in ~25 kernel launches). Stacking M such models gives every parameter a
leading model dimension (a weight ``(M, out, in)``) and runs each layer once for all of them with
batched matrix products (``torch.bmm``), so the overhead is paid once per step instead of M
times, and the arithmetic of the M models is one large kernel (which also lets a GPU be used at
all). Every model keeps its own weights, gradients, optimizer state and (with tensor
hyperparameters of shape ``(M,)``) its own learning rate: slice m of the stacked model trains
exactly as model m alone would.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from . import init
from .activation import Activation, ReLU
from .batchnorm import BatchNorm1d, BatchNorm2d, StackedBatchNorm1d, StackedBatchNorm2d
from .container import Sequential
from .conv import Conv2d, StackedConv2d
from .dropout import Dropout, StackedDropout
from .flatten import Flatten, StackedFlatten
from .linear import Linear
from .module import Module, Parameter, check_size
from .pooling import MaxPool2d, StackedMaxPool2d

# Every Activation is element-wise: it acts on an (M, B, features) tensor exactly as on each
# model's (B, features) slice, so the stacked model uses one as it is, its hyperparameters (its
# constructor arguments, by the rule in Activation's docstring) agreeing across the models.
_SUPPORTED = (
    "Sequential, Linear, Conv2d, MaxPool2d, Flatten, BatchNorm1d, BatchNorm2d, Dropout and the "
    "element-wise layers (any Activation: ReLU, Tanh, …)"
)

# The other layers' stacked classes: each builds itself for M alike layers (``stack_of``) and
# gives back a layer of model m's configuration (``unstack_one``); `stack` and `unstack` copy
# the parameters and buffers (by name, slice m being model m's).
_STACKED: dict[type[Module], Any] = {
    Conv2d: StackedConv2d,
    MaxPool2d: StackedMaxPool2d,
    Flatten: StackedFlatten,
    BatchNorm1d: StackedBatchNorm1d,
    BatchNorm2d: StackedBatchNorm2d,
    Dropout: StackedDropout,
}


class Workspace:
    """Tensors kept from step to step, by name and shape (one per shape: a model trained at one
    batch size and evaluated at another keeps both), each remade only when the dtype or device
    asked for changes: where a stacked model writes the intermediates that never leave it."""

    def __init__(self) -> None:
        self._tensors: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """The tensor ``name`` of ``shape``, with ``like``'s dtype and device (contents stale)."""
        key = (name, shape)
        tensor = self._tensors.get(key)
        if tensor is None or tensor.dtype != like.dtype or tensor.device != like.device:
            tensor = self._tensors[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return tensor


Slot = tuple[Workspace, str]
"""Where a stacked layer writes a result that stays inside its model: a buffer's name."""


def _buffer(slot: Slot | None, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
    """The buffer of ``slot`` (None: no slot, the result is a new tensor)."""
    return None if slot is None else slot[0].get(slot[1], shape, like)


class StackedLinear(Module):
    r"""M affine maps at once: :math:`y_m = x_m W_m^\top + b_m` for m = 1 … M.

    Backward, with :math:`g_m = \partial L / \partial y_m`: :math:`\partial L/\partial x_m = g_m
    W_m`, :math:`\partial L/\partial W_m \mathrel{+}= g_m^\top x_m`, :math:`\partial L/\partial
    b_m \mathrel{+}= \sum_n g_{m,n}` (one batched matrix product each, ``torch.bmm``).

    Args:
        models: M, the number of stacked models.
        in_features, out_features, bias, device, dtype: as ``Linear``'s, for each model.

    Shape:
        - Input: ``(M, B, in_features)`` (one batch per model; give every model the same batch
          with ``x.expand(M, -1, -1)``, which copies nothing)
        - Output: ``(M, B, out_features)``

    Attributes:
        weight: ``(M, out_features, in_features)``; bias: ``(M, out_features)``. Initialised as M
            ``Linear`` layers created one after another (the same draws, in the same order).
    """

    _cache = ("input",)
    # New tensors from bmm, not kept, or the container's buffers below (framework.module's
    # contract, 2, 3 and 6).
    _fresh_output = _fresh_grad = True
    # Set by StackedSequential only while it runs, for a hidden layer: its output and dL/dx then
    # never leave the model, so they are written into the model's buffers (kept from step to
    # step). At M = 100 a fresh (M, B, 25) tensor per layer and step costs page faults on the
    # order of its arithmetic (measured: 45% of the step). A layer called on its own always
    # returns new tensors.
    _output_into: Slot | None = None
    _grad_into: Slot | None = None

    def __init__(
        self,
        models: int,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.models = check_size("StackedLinear", "models", models)
        self.in_features = check_size("StackedLinear", "in_features", in_features)
        self.out_features = check_size("StackedLinear", "out_features", out_features)
        factory = {"device": device, "dtype": dtype}
        self.weight = Parameter(
            torch.empty(models, out_features, in_features, **factory), stacked=True
        )
        self.bias = (
            Parameter(torch.empty(models, out_features, **factory), stacked=True) if bias else None
        )
        self.input: torch.Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Each model as ``Linear.reset_parameters`` (kaiming_uniform(a=√5) weight, U(−1/√in,
        1/√in) bias), model after model: the draws of M ``Linear`` layers made in turn."""
        bound = 1 / math.sqrt(self.in_features)
        for index in range(self.models):
            init.kaiming_uniform_(self.weight.data[index], a=math.sqrt(5), generator=generator)
            if self.bias is not None:
                init.uniform_(self.bias.data[index], -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.data
        if x.dim() != 3 or x.shape[0] != self.models or x.shape[2] != self.in_features:
            hint = (
                f" (one batch per model: stack the M batches, or x.expand({self.models}, -1, -1) "
                "to give every model the same one)"
                if x.dim() == 2
                else ""
            )
            raise ValueError(
                f"{self!r}: expected input of shape ({self.models}, B, {self.in_features}) "
                f"(models, batch, in_features), got {tuple(x.shape)}{hint}"
            )
        if x.dtype != weight.dtype:
            raise TypeError(
                f"{self!r}: input dtype {x.dtype} does not match weight dtype {weight.dtype}"
            )
        self.input = x
        shape = (x.shape[0], x.shape[1], self.out_features)
        if self.out_features == 1:
            # (M, 1, B) = W xᵀ has the memory layout of (M, B, 1); a row times a matrix is 25%
            # faster than a matrix times a column in MKL's batched GEMM.
            y = torch.bmm(weight, x.transpose(1, 2)).view(shape)
        else:
            out = _buffer(self._output_into, shape, x)
            y = torch.bmm(x, weight.transpose(1, 2), out=out)  # (M, B, out)
        # bmm then a broadcast add_: on CPU torch.baddbmm with a broadcast bias is twice as slow.
        return y if self.bias is None else y.add_(self.bias.data.unsqueeze(1))

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        self._accumulate(grad_output)
        shape = (grad_output.shape[0], grad_output.shape[1], self.in_features)
        out = _buffer(self._grad_into, shape, grad_output)
        return torch.bmm(grad_output, self.weight.data, out=out)  # (M, B, in)

    def _accumulate(self, grad_output: torch.Tensor) -> None:
        """The parameters' part of backward (all of it when dL/dx is not wanted)."""
        x = self._saved(self.input)
        if grad_output.shape != (self.models, x.shape[1], self.out_features):
            raise ValueError(
                f"{self!r}: expected grad_output of shape ({self.models}, {x.shape[1]}, "
                f"{self.out_features}), got {tuple(grad_output.shape)}"
            )
        # In place into .grad (and so into an optimizer's flat buffer), accumulating like torch.
        if self.in_features < self.out_features:
            # ∂L/∂Wᵀ = xᵀ g: a GEMM with few columns (in) is slow, with few rows it is not (2x
            # for in = 2); the small transpose is added into the gradient.
            self.weight.grad.add_(torch.bmm(x.transpose(1, 2), grad_output).transpose(1, 2))
        else:
            self.weight.grad.baddbmm_(grad_output.transpose(1, 2), x)  # (M, out, in)
        if self.bias is not None:
            self.bias.grad.add_(grad_output.sum(1))  # (M, out)
        self._release()

    def extra_repr(self) -> str:
        return (
            f"models={self.models}, in_features={self.in_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


class StackedSequential(Sequential):
    """``Sequential`` of stacked layers (what `stack` returns for M ``Sequential`` models):
    ``y = fₙ(…f₁(x))`` on ``(M, B, …)`` tensors, backward in reverse, returning dL/dx of shape
    ``(M, B, in)``. ``state_dict()`` has the models' keys with a leading model dimension
    (``"0.weight"`` of shape ``(M, out, in)``)."""

    def __init__(self, models: int, *modules: Module) -> None:
        check_size("StackedSequential", "models", models)
        super().__init__(*modules)
        self.models = models
        linears = [layer for layer in self._layers if isinstance(layer, StackedLinear)]
        # Hidden layers: every Linear's output but the last's stays inside the model (the last
        # one's, after the activations that follow, is the model's output); every Linear's
        # dL/dx but the first's goes to the Linear before (the first one's is the caller's).
        # Each output its own buffer (backward reads them all); dL/dx in two buffers,
        # alternating from the last Linear back: a Linear's dL/dx is dead once the Linear before
        # has read it, so the one after next can write there (a model of any depth keeps two
        # such (M, B, width) tensors, not one per layer).
        self._program = _pool_before_relu(self._layers)
        buffers = Workspace()
        inner = linears[1:]
        self._output_slots = [
            (layer, (buffers, f"output{k}")) for k, layer in enumerate(linears[:-1])
        ]
        self._grad_slots = [
            (layer, (buffers, f"grad{(len(inner) - k) % 2}")) for k, layer in enumerate(inner)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        forward = super().forward
        return _routed("_output_into", self._output_slots, lambda: forward(x))

    def backward(
        self, grad_output: torch.Tensor, *, input_grad: bool = True
    ) -> torch.Tensor | None:
        backward = super().backward
        return _routed(
            "_grad_into", self._grad_slots, lambda: backward(grad_output, input_grad=input_grad)
        )

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return StackedSequential(self.models, *self._layers[index])
        return self._layers[index]


def _pool_before_relu(layers: tuple[Module, ...]) -> tuple[int, ...]:
    """The order a StackedSequential runs ``layers`` in: theirs, but a ``ReLU`` right before a
    ``StackedMaxPool2d`` runs after it, on the pooled (k_h·k_w times smaller) tensor. The two
    orders give the same outputs and gradients (`stack`'s docstring proves it)."""
    order = list(range(len(layers)))
    for index in range(len(layers) - 1):
        relu_first = type(layers[index]) is ReLU and type(layers[index + 1]) is StackedMaxPool2d
        if relu_first and order[index] == index:  # (not already swapped with the one before)
            order[index], order[index + 1] = index + 1, index
    return tuple(order)


T = TypeVar("T")


def _routed(attribute: str, slots: list[tuple[StackedLinear, Slot]], run: Callable[[], T]) -> T:
    """``run()`` with each layer's ``attribute`` set to its slot (None again after; a plain
    function, not a context manager: this is on every step)."""
    for layer, slot in slots:
        setattr(layer, attribute, slot)
    try:
        return run()
    finally:
        for layer, _ in slots:
            setattr(layer, attribute, None)


# -- stack / unstack ------------------------------------------------------------------------------
def stack(models: Sequence[Module]) -> Module:
    r"""One stacked model from M models of identical architecture.

    Parameters are copied into tensors with a leading model dimension,
    :math:`W = [W_1; \dots; W_M]` of shape ``(M, out, in)`` and :math:`b` of shape ``(M, out)``
    (gradients start at zero); slice m of every forward, backward and optimizer step is
    model m's own. The models are left untouched.

    Supported: ``Sequential`` of ``Linear``, ``Conv2d``, ``MaxPool2d``, ``Flatten``,
    ``BatchNorm1d``/``2d`` (buffers stacked too: each model keeps its own running statistics),
    ``Dropout`` (each model draws from a copy of its own layer's generator) and element-wise
    layers, every ``Activation`` (``ReLU``, ``Tanh``, ``Sigmoid``, ``LeakyReLU``, ``ELU``, and
    any new subclass: its hyperparameters are its constructor arguments, see ``Activation``),
    or one such layer alone. Any other layer is refused with a TypeError naming it; models whose
    architectures or layer hyperparameters differ (widths, bias, kernel, a LeakyReLU slope,
    dropout p, dtype, device) with a ValueError naming the layer.

    Reordering: a ``ReLU`` followed by a ``MaxPool2d`` runs after the pooling in the stacked
    program (``maxpool(relu(x))`` as ``relu(maxpool(x))``: the ReLU's passes, forward and
    backward, on a tensor k_h·k_w times smaller). The layers keep their positions (indexing,
    ``state_dict``, `unstack`); only the order they run in changes, and nothing observable: for
    each window W of x (the padding's −∞ included), with w its winner (torch's: the first
    maximum, or the last NaN; ``MaxPool2d``) and ReLU's gradient g · 1[y ≠ 0] (``ReLU``):

    - values: max over W of max(0, x) = max(0, max over W of x), NaN giving NaN both ways
      (clamp and max propagate it; −0 and 0 compare equal, so at most a zero's sign differs);
    - max over W > 0 (no NaN): the cells equal to the maximum are the same in x and relu(x),
      so both orders pick the same w, and y_w > 0 passes g to it in both;
    - max over W ≤ 0 (no NaN): relu(x) is 0 on W (the first cell wins there, another than in
      x), but the ReLU's mask is 0 in both orders at whichever cell wins: the window sends
      0 everywhere either way;
    - a NaN in W: relu keeps the NaNs where they are, so the last NaN wins in both, and its
      ReLU output, NaN, is ≠ 0: g passes in both;
    - overlapping windows sum at a shared winner p: each window's contribution is masked by
      1[relu(x)_p ≠ 0] in one order and by the ReLU of its own maximum in the other, equal by
      the cases above.

    So each gradient is torch's in both orders (for a finite upstream gradient; a non-finite
    one gives NaN where the pooling routes 0, in both orders alike). tests/test_framework_stack
    checks it against torch autograd on ties, zeros, −0, ±∞ and NaN windows.

    Returns:
        A ``StackedSequential`` (``StackedLinear`` for Linear layers, ``StackedConv2d``,
        ``StackedMaxPool2d``, ``StackedFlatten``, ``StackedBatchNorm1d``/``2d``,
        ``StackedDropout`` for the others, the element-wise layers shared) whose forward maps
        ``(M, B, …)`` to ``(M, B, out)``: model m's input and output are slice m.
    """
    models = list(models)
    if not models:
        raise ValueError("stack: got no models")
    return _stack(models, "model")


def _stack(models: list[Module], where: str) -> Module:
    first = models[0]
    for index, model in enumerate(models):
        if not isinstance(model, Module):
            raise TypeError(
                f"stack: {where} of model {index} is {type(model).__name__}, not a Module"
            )
        if type(model) is not type(first):
            raise ValueError(
                f"stack: {where} differs between models: {type(first).__name__} in model 0, "
                f"{type(model).__name__} in model {index}"
            )
    stacked: Module
    if type(first) is Sequential:
        for index, model in enumerate(models):
            if len(model) != len(first):
                raise ValueError(
                    f"stack: {where} has {len(first)} layers in model 0 and {len(model)} in "
                    f"model {index}"
                )
        layers = [
            _stack([model[position] for model in models], f"layer ({position})")
            for position in range(len(first))
        ]
        stacked = StackedSequential(len(models), *layers)
    elif type(first) is Linear:
        stacked = _stack_linear(models, where)
    elif type(first) in _STACKED:
        stacked = _stack_layer(models, where)
    elif isinstance(first, Activation):
        stacked = _same_layer(models, where)
    else:
        raise TypeError(
            f"stack: cannot stack {first!r} ({where}): supported layers are {_SUPPORTED}"
        )
    stacked.training = first.training
    return stacked


def _describe(where: str, first: Module, other: Module, index: int) -> str:
    return (
        f"stack: {where} differs between models: {first!r} in model 0, {other!r} in model {index}"
    )


def _stack_linear(layers: list[Module], where: str) -> StackedLinear:
    first = layers[0]
    assert isinstance(first, Linear)
    for index, layer in enumerate(layers):
        assert isinstance(layer, Linear)
        if (layer.in_features, layer.out_features, layer.bias is None) != (
            first.in_features,
            first.out_features,
            first.bias is None,
        ):
            raise ValueError(_describe(where, first, layer, index))
        for name, param in layer._members(Parameter):
            reference = getattr(first, name).data
            if (param.dtype, param.device) != (reference.dtype, reference.device):
                raise ValueError(
                    f"stack: {where}: {name} is {reference.dtype} on {reference.device} in model "
                    f"0, {param.dtype} on {param.device} in model {index}"
                )
    weight = first.weight.data
    stacked = StackedLinear(
        len(layers),
        first.in_features,
        first.out_features,
        bias=first.bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    torch.stack([layer.weight.data for layer in layers], out=stacked.weight.data)
    if stacked.bias is not None:
        torch.stack([layer.bias.data for layer in layers], out=stacked.bias.data)
    return stacked


def _stack_layer(layers: list[Module], where: str) -> Module:
    """A layer of `_STACKED`: the layers must print alike (their hyperparameters) and hold their
    tensors in one dtype and device; their parameters and buffers are stacked by name."""
    first = layers[0]
    for index, layer in enumerate(layers):
        if repr(layer) != repr(first):
            raise ValueError(_describe(where, first, layer, index))
        for (name, member), (_, reference) in zip(
            layer._named_state(), first._named_state(), strict=True
        ):
            if (member.dtype, member.device) != (reference.dtype, reference.device):
                raise ValueError(
                    f"stack: {where}: {name} is {reference.dtype} on {reference.device} in "
                    f"model 0, {member.dtype} on {member.device} in model {index}"
                )
    stacked = _STACKED[type(first)].stack_of(layers)
    states = [dict(layer._named_state()) for layer in layers]
    for name, member in stacked._named_state():
        torch.stack([state[name].data for state in states], out=member.data)
    return stacked


def _hyperparameters(layer: Activation) -> dict[str, tuple[inspect.Parameter, Any]]:
    """An activation's hyperparameters: ``{name: (constructor parameter, value)}`` for every
    argument of its constructor, the value read from the attribute of the same name (the rule
    in `Activation`'s docstring). A TypeError names the argument that breaks the rule."""
    cls = type(layer)
    found = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self":
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(
                f"stack: cannot stack {cls.__name__}: its constructor takes *{name}, whose "
                "values are no attribute (an Activation's hyperparameters are its named "
                "constructor arguments)"
            )
        if not hasattr(layer, name):
            raise TypeError(
                f"stack: cannot stack {cls.__name__}: its constructor argument {name!r} is not "
                f"kept as the attribute {name!r} (an Activation keeps each constructor argument "
                "under its own name, so that a copy can be made and compared)"
            )
        found[name] = (parameter, getattr(layer, name))
    return found


def _same_layer(layers: list[Activation], where: str) -> Activation:
    """An element-wise layer, shared by all models: its hyperparameters must agree."""
    first = layers[0]
    expected = _hyperparameters(first)
    for index, layer in enumerate(layers):
        for name, (_, value) in _hyperparameters(layer).items():
            if value != expected[name][1]:
                raise ValueError(
                    _describe(where, first, layer, index)
                    + " (stacked models share their element-wise layers' hyperparameters: "
                    f"{name} is {expected[name][1]!r} in model 0, {value!r} in model {index}; "
                    "train models with different ones in separate stacks)"
                )
    return _copy_layer(first)


def _copy_layer(layer: Activation) -> Activation:
    """A fresh element-wise layer with ``layer``'s hyperparameters (and none of its cache): its
    constructor called with the values of its arguments' attributes."""
    args, kwargs = [], {}
    for name, (parameter, value) in _hyperparameters(layer).items():
        if parameter.kind is parameter.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[name] = value
    copy = type(layer)(*args, **kwargs)
    copy.training = layer.training
    return copy


def unstack(stacked: Module) -> list[Module]:
    """The M ordinary models held by a stacked model (the inverse of `stack`): model m gets
    a copy of slice m of every parameter as it is now, :math:`W^{(m)} = W[m]`,
    :math:`b^{(m)} = b[m]`, with the same dtype and device (gradients zero), so its
    ``state_dict()`` loads into the equivalent torch.nn model (``strict=True``).

    Buffers come back likewise (BatchNorm's running statistics: model m's), and a Dropout with a
    copy of model m's generator in its current state.

    Accepts a ``StackedSequential`` (giving ``Sequential`` models) or a ``StackedLinear``
    (giving ``Linear`` layers)."""
    if isinstance(stacked, StackedSequential):
        columns = [_unstack_layer(layer, stacked.models) for layer in stacked]
        models: list[Module] = []
        for position in range(stacked.models):
            model = Sequential(*(column[position] for column in columns))
            model.training = stacked.training
            models.append(model)
        return models
    if isinstance(stacked, StackedLinear):
        return _unstack_layer(stacked, stacked.models)
    raise TypeError(
        f"unstack: expected a StackedSequential or StackedLinear (what stack returns), got "
        f"{type(stacked).__name__}"
    )


def _unstack_layer(layer: Module, models: int) -> list[Module]:
    if isinstance(layer, StackedLinear):
        weight = layer.weight.data
        out: list[Module] = []
        for index in range(models):
            linear = Linear(
                layer.in_features,
                layer.out_features,
                bias=layer.bias is not None,
                device=weight.device,
                dtype=weight.dtype,
            )
            linear.weight.data.copy_(weight[index])
            if linear.bias is not None:
                linear.bias.data.copy_(layer.bias.data[index])
            linear.training = layer.training
            out.append(linear)
        return out
    if isinstance(layer, Activation):
        return [_copy_layer(layer) for _ in range(models)]
    if type(layer) in _STACKED.values():
        out = []
        for index in range(models):
            single = layer.unstack_one(index)
            state = dict(layer._named_state())
            for name, member in single._named_state():
                member.data.copy_(state[name].data[index])
            single.training = layer.training
            out.append(single)
        return out
    raise TypeError(f"unstack: cannot unstack {layer!r}: supported layers are {_SUPPORTED}")

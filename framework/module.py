"""`Parameter`, `Buffer` and `Module`: the base classes every layer is built from.

A `Module` runs `forward(x)` and caches what its hand-written `backward(grad_output)` needs;
`backward` returns dL/dx and *accumulates* (+=) dL/dparam into each `Parameter.grad`, like torch,
then frees that cache (as torch frees the graph), so a second backward without a new forward
fails instead of adding the same gradients twice.
Sub-modules, parameters and buffers are the attributes that hold them, in assignment order, so
`named_parameters()` and `state_dict()` give the same dotted keys, in the same order, as the
equivalent torch.nn model.

In place and ownership
----------------------
The one statement of the contract behind ``Module._fresh_output``, ``Module._fresh_grad`` and
``Activation._forward_inplace`` / ``_backward_inplace``, by which `Sequential` (and so a stacked
model) lets activations overwrite tensors instead of allocating new ones; every other place
points here. tests/test_framework_contract.py checks clauses 2-6 on every public layer, and
tests/test_framework_models.py that a Sequential leaves what its caller holds (1).

1. Ownership. The caller owns what it passes in (``x`` to forward, ``grad_output`` to backward)
   and what it gets back. A layer may keep references to them (its cache, for backward, until
   backward releases it), but writes into a tensor it was given or returned only as allowed
   below (or when the user asks, ``Dropout(inplace=True)``, as in torch).
2. ``_fresh_output = True`` promises: forward's output shares storage with nothing else: not
   forward's input, not a parameter's data or grad, not a buffer, not any tensor the layer
   keeps (its cache, its other attributes). Whoever receives it owns it alone and may overwrite
   it. So a layer that caches its output for backward (every activation) leaves it False: the
   next layer working in place would overwrite that cache.
3. ``_fresh_grad = True`` promises two things. Backward's result shares storage with nothing the
   caller or the layer may read again: not ``grad_output``, not forward's input or output, not
   a parameter's data or grad, not a buffer, not any tensor the layer keeps; so the layer
   before may overwrite it. And forward's output shares no storage with forward's input: the
   layer never passes on what it got, so what the layer before output reaches the caller only
   through a new tensor (which 5 relies on).
4. ``_forward_inplace(x)`` (an Activation): forward's values, written into ``x`` and returned
   (and cached as the output). `Sequential` calls it only right after a layer with
   ``_fresh_output``, so ``x`` is the container's alone.
5. ``_backward_inplace(grad_output)`` (an Activation): backward's values, written into
   ``grad_output`` and returned; it may also overwrite the output its forward cached (the
   input too if forward ran in place: the same tensor), never an input it got out of place
   (the caller's ``x`` when it is the first layer). `Sequential` calls it only when
   ``grad_output`` is private: the layer after has ``_fresh_grad``, or is an activation that
   just worked in place on the same private tensor. Then, by 3, this activation's output went
   only into later layers, which are done with it (backward runs in reverse), never to the
   caller.
6. The only shares allowed beyond 2 and 3: an in-place variant returns the tensor it was given
   (private by 4 and 5, it stays private); and a ``StackedLinear`` inside a
   ``StackedSequential`` writes a hidden layer's output, and dL/dx of every Linear but the
   first, into buffers of the container's ``Workspace``, lent through ``_output_into`` /
   ``_grad_into`` only while the container runs. The container owns those buffers and
   rewrites one only when what it held is dead (an output at the next forward; a dL/dx once the
   Linear before has read it). A layer called on its own always returns new tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Protocol, TypeVar

import torch

_Member = TypeVar("_Member")
_Cached = TypeVar("_Cached")


def check_number(
    owner: str,
    name: str,
    value: object,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
) -> float:
    """``value`` itself, or a ValueError naming ``owner``'s argument ``name``: it must be a real
    number (not a bool), finite, and within [low, high] (``(low, high]`` if low_open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}: {name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    if (value <= low if low_open else value < low) or value > high:
        bound = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{owner}: {name} must be in {bound}, got {value!r}")
    return value


def check_size(owner: str, name: str, value: object) -> int:
    """``value`` itself, or a ValueError naming ``owner``'s argument ``name``: a size (features,
    channels, models) must be a positive int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def check_set_to_none(set_to_none: bool) -> None:
    """Refuse torch's ``zero_grad(set_to_none=True)``: gradients here always exist."""
    if set_to_none:
        raise ValueError(
            "zero_grad(set_to_none=True) is not supported: a Parameter's grad is allocated with "
            "it and only updated in place (backward accumulates into it, an optimizer keeps it "
            "in its flat buffer), so it is zeroed instead; call zero_grad() or "
            "zero_grad(set_to_none=False)"
        )


class FlatGradients(Protocol):
    """What `Module.zero_grad` needs of the group whose flat buffers hold a parameter's tensors
    (``Parameter._flat``; an optimizer's ``FlatGroup`` is one): the group's parameters in order,
    its flat gradient buffer, and whether every parameter still holds the group's tensors.

    A protocol here, not an import of the optimizer: the optimizers build on this module, so this
    module must not depend on them.
    """

    params: list[Parameter]
    grad: torch.Tensor

    def in_sync(self) -> bool: ...


class _Holder:
    """What holds a tensor ``data`` in a module: its shape, dtype and device are the tensor's."""

    data: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def device(self) -> torch.device:
        return self.data.device


class Parameter(_Holder):
    """A trainable tensor `data` and its gradient `grad` (same shape, dtype, device).

    Unlike torch, `grad` is allocated (zeros) at creation and is only ever updated in place,
    so an optimizer may move both into its flat buffers (`_flat`, the group that holds them).

    ``stacked=True`` marks the parameter of M stacked models (`framework.stack`): dimension 0
    indexes the model, so an optimizer may give it per-model hyperparameters (shape ``(M,)``).
    """

    def __init__(self, data: torch.Tensor, *, stacked: bool = False) -> None:
        if stacked and data.dim() == 0:
            raise ValueError("a stacked Parameter needs a leading model dimension, got a scalar")
        self.data = data
        self.grad = torch.zeros_like(data)
        self.stacked = stacked
        self._flat: FlatGradients | None = None

    @property
    def models(self) -> int | None:
        """M, the number of stacked models (dimension 0), or None for an ordinary parameter."""
        return self.data.shape[0] if self.stacked else None

    def numel(self) -> int:
        return self.data.numel()

    def __repr__(self) -> str:
        return f"Parameter containing:\n{self.data!r}"


class Buffer(_Holder):
    """Non-trainable state that belongs in the ``state_dict`` (like PyTorch's ``nn.Buffer``):
    BatchNorm's running statistics. It has no gradient, is moved by ``Module.to()`` (and cast by
    it only if floating point, like torch: ``num_batches_tracked`` stays int64) and is loaded by
    ``load_state_dict``; layers update ``data`` in place.
    """

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Buffer containing:\n{self.data!r}"


class Module:
    """Base class: `forward`, `backward`, parameter and buffer registry, state dict,
    train/eval mode, device/dtype moves.

    A layer lists in ``_cache`` the attributes its forward fills for its backward; backward
    reads them with `_saved` and ends with `_release`, which frees them.
    """

    _cache: tuple[str, ...] = ()
    _released = False
    # For Sequential's in-place work: what these promise is written once, in this module's
    # docstring ("In place and ownership"). False promises nothing.
    _fresh_output = False
    _fresh_grad = False

    def __init__(self) -> None:
        self.training = True
        self._released = False  # True once a backward freed the cache (until forward refills it)

    def _members(self, kind: type[_Member]) -> Iterator[tuple[str, _Member]]:
        """This module's own attributes of type ``kind``, in assignment order (dicts keep it).

        The registry is the attributes themselves: no ``__setattr__`` hook to keep a copy in
        sync, which would tax every tensor that ``forward`` caches (a fifth of a small model's
        Python overhead per step).
        """
        return ((name, value) for name, value in vars(self).items() if isinstance(value, kind))

    # -- computation ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, input: torch.Tensor) -> torch.Tensor:
        # torch's parameter name: torch's own tests call layers as ``layer(input=x)``.
        return self.forward(input)

    def _saved(self, tensor: _Cached | None, grad_output: torch.Tensor | None = None) -> _Cached:
        """Return a value (a tensor, a shape) cached by forward, or say clearly that forward has
        not run (or that a backward already consumed it); with ``grad_output``, also check it
        has the shape of that tensor (the layer's output)."""
        if tensor is None:
            if self._released:
                raise RuntimeError(
                    f"{self!r}: backward called twice without a new forward (call the model "
                    "again first): the first backward freed what forward cached, as torch "
                    "frees its graph, so a second one would add the same gradients again"
                )
            raise RuntimeError(
                f"{type(self).__name__}.backward() called before forward(): "
                "run a forward pass first (backward uses what forward cached)"
            )
        if grad_output is not None and grad_output.shape != tensor.shape:
            raise ValueError(
                f"{self!r}: expected grad_output of shape {tuple(tensor.shape)} (its forward "
                f"output), got {tuple(grad_output.shape)}"
            )
        return tensor

    def _release(self) -> None:
        """Free what forward cached (the attributes named in ``_cache``): called at the end of
        backward, so a second backward without a new forward raises in `_saved`."""
        for name in self._cache:
            setattr(self, name, None)
        self._released = True

    # -- registry ------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, module in self._members(Module):
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator[Module]:
        for _, module in self._members(Module):
            yield module

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for module_name, module in self.named_modules(prefix):
            for name, param in module._members(Parameter):
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Buffer]]:
        for module_name, module in self.named_modules(prefix):
            for name, buffer in module._members(Buffer):
                yield (f"{module_name}.{name}" if module_name else name), buffer

    def buffers(self) -> Iterator[Buffer]:
        for _, buffer in self.named_buffers():
            yield buffer

    def register_buffer(self, name: str, tensor: torch.Tensor | None) -> None:
        """``self.<name> = Buffer(tensor)`` (``None``: the slot exists but holds no state and is
        not in the ``state_dict``, like torch's ``register_buffer(name, None)``)."""
        if tensor is not None and not isinstance(tensor, torch.Tensor):
            raise TypeError(f"buffer {name!r} must be a Tensor or None, got {type(tensor)}")
        setattr(self, name, None if tensor is None else Buffer(tensor))

    def _parameter_list(self, found: list[Parameter]) -> list[Parameter]:
        """Append ``self.parameters()`` to ``found``, in the same order, without the nested
        generators (half of ``zero_grad``'s cost, which runs every step)."""
        children = []
        for value in vars(self).values():  # one pass over the attributes, not one per kind
            if isinstance(value, Parameter):
                found.append(value)
            elif isinstance(value, Module):
                children.append(value)
        for child in children:
            child._parameter_list(found)
        return found

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Set every parameter gradient to zero, in place.

        A run of parameters that is exactly one optimizer group, in order (``model.parameters()``
        given to an optimizer), is zeroed with one fill of the group's flat gradient buffer; any
        other parameter on its own. ``set_to_none=True`` (torch's default) raises ValueError:
        gradients here always exist.
        """
        check_set_to_none(set_to_none)
        params = self._parameter_list([])
        index = 0
        while index < len(params):
            flat = params[index]._flat
            size = len(flat.params) if flat is not None else 0
            if size and params[index : index + size] == flat.params and flat.in_sync():
                flat.grad.zero_()
                index += size
            else:
                params[index].grad.zero_()
                index += 1

    def train(self, mode: bool = True) -> Module:
        """Set ``training`` on this module and every sub-module (BatchNorm and Dropout read it)."""
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    # -- state ---------------------------------------------------------------------------------
    def _named_state(self, prefix: str = "") -> Iterator[tuple[str, Parameter | Buffer]]:
        """torch's ``state_dict`` order: a module's own parameters, then its own buffers, then
        each child's, recursively."""
        for name, param in self._members(Parameter):
            yield prefix + name, param
        for name, buffer in self._members(Buffer):
            yield prefix + name, buffer
        for name, module in self._members(Module):
            yield from module._named_state(f"{prefix}{name}.")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """`{dotted name: tensor}` of parameters and buffers with torch.nn's keys, order, shapes
        and dtypes (the tensors share storage with the module)."""
        return {name: member.data for name, member in self._named_state()}

    def load_state_dict(
        self, state_dict: Mapping[str, torch.Tensor], strict: bool = True
    ) -> tuple[list[str], list[str]]:
        """Copy tensors into the existing parameters and buffers (dtype/device converted, like
        torch).

        Returns ``(missing_keys, unexpected_keys)``; with ``strict`` either one raises.
        """
        own = dict(self._named_state())
        missing = sorted(own.keys() - state_dict.keys())
        unexpected = sorted(state_dict.keys() - own.keys())
        if strict and (missing or unexpected):
            raise RuntimeError(
                f"Error loading state_dict into {type(self).__name__}: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
        for name, member in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if tuple(value.shape) != tuple(member.shape):
                raise ValueError(
                    f"size mismatch for {name}: checkpoint has {tuple(value.shape)}, "
                    f"this model has {tuple(member.shape)}"
                )
            member.data.copy_(value.detach())
        return missing, unexpected

    def to(self, *args: torch.device | str | torch.dtype, **kwargs: object) -> Module:
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or by keyword, like torch:
        moves/casts every parameter and its gradient (new tensors, as torch gives each
        parameter; an optimizer built before carries on with them at its next step), and moves
        every buffer (casting only the floating-point ones, like torch)."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"Module.to got unexpected keyword(s) {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            else:
                device = arg
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"Module.to only accepts floating point dtypes, got {dtype}")
        for param in self.parameters():
            param.data = param.data.to(device=device, dtype=dtype)
            param.grad = param.grad.to(device=device, dtype=dtype)
        for buffer in self.buffers():
            cast = dtype if buffer.data.is_floating_point() else None
            buffer.data = buffer.data.to(device=device, dtype=cast)
        return self

    def double(self) -> Module:
        return self.to(dtype=torch.float64)

    def float(self) -> Module:
        return self.to(dtype=torch.float32)

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = [
            f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._members(Module)
        ]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(children) + "\n)"

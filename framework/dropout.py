"""Dropout, with the mask drawn from a generator the caller controls."""

from __future__ import annotations

import torch

from .module import Module, check_number, check_size


class Dropout(Module):
    r"""Inverted dropout (PyTorch's ``nn.Dropout``). In training mode

    .. math::
        y = x \odot m / (1 - p), \qquad m_i \sim \operatorname{Bernoulli}(1 - p)

    and backward is :math:`\partial L/\partial x = g \odot m / (1 - p)` with the same mask; in
    eval mode (and for ``p = 0``) :math:`y = x` and :math:`\partial L/\partial x = g`; for
    ``p = 1``, :math:`y = 0 \cdot x`.

    The mask is drawn as torch's CPU dropout draws it, ``bernoulli_(1 - p)`` into a new tensor
    of x's shape (no draw for p = 0 or 1), so from the same generator state it is torch's mask,
    bit for bit. (It is filled in row-major order whatever x's strides; torch fills
    ``empty_like(x)`` in memory order, which is the same for the contiguous inputs it usually
    gets.)

    Args:
        p: probability of zeroing an element, in [0, 1].
        inplace: if ``True``, multiply the input in place (as torch's ``inplace``).
        generator: the ``torch.Generator`` the masks are drawn from (``None``: torch's global
            one, like PyTorch). A harness may also set the ``generator`` attribute later.

    Shape:
        - Input: any shape.
        - Output: the input's shape.
    """

    _cache = ("noise", "output_shape")

    def __init__(
        self, p: float = 0.5, inplace: bool = False, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.p = check_number("Dropout", "p", p, 0.0, 1.0)
        self.inplace = inplace
        self.generator = generator
        self.noise: torch.Tensor | None = None  # m / (1 − p), or None when y = x
        self.output_shape: torch.Size | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.output_shape = x.shape
        if not self.training or self.p == 0 or x.numel() == 0:
            self.noise = None
            return x
        if self.p == 1:
            noise = x.new_zeros(())  # torch: x · 0 (NaN stays NaN)
        else:
            # Drawn in row-major order whatever x's strides (our Conv2d's outputs are laid out
            # batch innermost): the mask depends on the shape and the generator only.
            noise = x.new_empty(x.shape).bernoulli_(1 - self.p, generator=self.generator)
            noise.div_(1 - self.p)  # (x's shape) m / (1 − p)
        self.noise = noise
        return x.mul_(noise) if self.inplace else x * noise

    def backward(self, grad_output: torch.Tensor) -> torch.Tensor:
        shape = self._saved(self.output_shape)
        if grad_output.shape != shape:
            raise ValueError(
                f"{self!r}: expected grad_output of shape {tuple(shape)} (its forward output), "
                f"got {tuple(grad_output.shape)}"
            )
        noise = self.noise
        self._release()
        return grad_output if noise is None else grad_output * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


def _copy(generator: torch.Generator | None) -> torch.Generator | None:
    """A new generator in ``generator``'s state (None stays None: torch's global one)."""
    if generator is None:
        return None
    copy = torch.Generator(generator.device)
    copy.set_state(generator.get_state())
    return copy


class StackedDropout(Module):
    r"""M ``Dropout`` layers of one ``p`` at once (`framework.stack`), each drawing its masks
    from its own generator: for model m, in training mode,

    .. math::
        y_m = x_m \odot k_m / (1 - p), \qquad k_m \sim \operatorname{Bernoulli}(1 - p)

    with :math:`k_m` drawn as ``Dropout`` draws it (``bernoulli_(1 - p)`` over model m's slice,
    row-major) from ``generators[m]``, so model m's masks are the ones its own ``Dropout``
    would draw from the same generator state. Backward: :math:`\partial L/\partial x_m = g_m
    \odot k_m / (1 - p)`; in eval mode (and for p = 0) :math:`y = x`, for p = 1 :math:`y = 0
    \cdot x`.

    Args:
        models: M, the number of stacked models.
        p, inplace: as ``Dropout``'s.
        generators: M ``torch.Generator`` (or None: torch's global one), model m's masks drawn
            from ``generators[m]``; by default all None.

    Shape:
        - Input: ``(M, N, *)``
        - Output: the input's shape.
    """

    _cache = ("noise", "output_shape")

    def __init__(
        self,
        models: int,
        p: float = 0.5,
        inplace: bool = False,
        *,
        generators: list[torch.Generator | None] | None = None,
    ) -> None:
        super().__init__()
        self.models = check_size("StackedDropout", "models", models)
        self.p = check_number("StackedDropout", "p", p, 0.0, 1.0)
        self.inplace = inplace
        generators = [None] * models if generators is None else list(generators)
        if len(generators) != models:
            raise ValueError(
                f"StackedDropout: expected {models} generators (one per model), got "
                f"{len(generators)}"
            )
        self.generators = generators
        self.noise: torch.Tensor | None = None
        self.output_shape: torch.Size | None = None

    @classmethod
    def stack_of(cls, layers: list[Dropout]) -> StackedDropout:
        """The stacked layer of ``layers``, with a copy of each one's generator in its current
        state (the layers' own generators are left as they are)."""
        first = layers[0]
        generators = [_copy(layer.generator) for layer in layers]
        return cls(len(layers), first.p, first.inplace, generators=generators)

    def unstack_one(self, index: int) -> Dropout:
        """Model ``index``'s own layer, with a copy of its generator in its current state."""
        return Dropout(self.p, self.inplace, generator=_copy(self.generators[index]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[0] != self.models:
            raise ValueError(
                f"{self!r}: expected input of shape ({self.models}, N, ...), got {tuple(x.shape)}"
            )
        self.output_shape = x.shape
        if not self.training or self.p == 0 or x.numel() == 0:
            self.noise = None
            return x
        if self.p == 1:
            noise = x.new_zeros(())
        else:
            noise = x.new_empty(x.shape)
            for index, generator in enumerate(self.generators):
                noise[index].bernoulli_(1 - self.p, generator=generator)  # model m's own draw
            noise.div_(1 - self.p)
        self.noise = noise
        return x.mul_(noise) if self.inplace else x * noise

    backward = Dropout.backward

    def extra_repr(self) -> str:
        return f"models={self.models}, p={self.p}, inplace={self.inplace}"

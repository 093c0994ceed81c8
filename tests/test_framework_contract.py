"""The in-place and ownership contract of framework.module's docstring ("In place and
ownership"), clause by clause, and the coverage of the parity tables.

- ``_fresh_output = True`` (clause 2): forward's output shares storage with nothing the layer
  keeps (parameters, buffers, cache, any attribute) nor with its input.
- ``_fresh_grad = True`` (clause 3): backward's result shares storage with nothing the caller or
  the layer may read again (grad_output, forward's input and output, what the layer keeps), and
  forward's output none with forward's input.
- In-place variants (4, 5, 6): their result is the tensor they were given or a new one, never
  anything else; their values are checked against forward/backward and torch in
  test_framework_layers (INPLACE).
- The Workspace exception (6): inside a StackedSequential, exactly the hidden outputs and the
  dL/dx of every Linear but the first live in the container's buffers, lent only while it runs;
  what leaves the model never does.
- Coverage: every public layer, loss and optimizer (``fw.__all__``, ``fw.optim.__all__``) is in a
  parity table against torch (each test module's PARITY), every in-place override in an in-place
  parity table; the check is shown to name a class whose entries are removed.

Storage is compared by the address of each tensor's storage, with every tensor kept alive until
the comparison (a freed address could be reused by a new tensor and look shared).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Iterator

import pytest
import torch
from module_check import example, is_criterion, public_modules

import framework as fw

F64 = torch.float64


# -- storage ----------------------------------------------------------------------------------
def held_tensors(obj: object) -> list[torch.Tensor]:
    """Every tensor reachable from ``obj``'s attributes (a module's parameters' data and grad,
    buffers, cache, sub-modules, workspaces, containers of them), each once."""
    found: list[torch.Tensor] = []
    seen: set[int] = set()

    def walk(value: object) -> None:
        if id(value) in seen or isinstance(value, (type, str, bytes, int, float, bool)):
            return
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, fw.Module) or (hasattr(value, "__dict__") and not callable(value)):
            for item in vars(value).values():
                walk(item)

    walk(obj)
    return found


def storages(tensors: Iterable[torch.Tensor]) -> set[int]:
    """The storage addresses of ``tensors`` (empty tensors have none worth comparing)."""
    return {t.untyped_storage().data_ptr() for t in tensors if t.numel()}


def shared(result: torch.Tensor, others: Iterable[torch.Tensor]) -> bool:
    return bool(storages([result]) & storages(others))


def as_tuple(value: object) -> tuple[torch.Tensor, ...]:
    return value if isinstance(value, tuple) else (value,)


# -- clause 2: _fresh_output ------------------------------------------------------------------
FRESH_OUTPUT = [cls for cls in public_modules() if cls._fresh_output]
FRESH_GRAD = [cls for cls in public_modules() if cls._fresh_grad]


def test_the_flags_are_set_where_expected():
    """Which public layers make the promises (a new one must be checked below)."""
    normalizing_and_pooling = {
        "BatchNorm1d",
        "BatchNorm2d",
        "StackedBatchNorm1d",
        "StackedBatchNorm2d",
        "MaxPool2d",
        "StackedMaxPool2d",
    }
    assert {cls.__name__ for cls in FRESH_OUTPUT} == {"Linear", "StackedLinear"} | (
        normalizing_and_pooling
    )
    assert {cls.__name__ for cls in FRESH_GRAD} == normalizing_and_pooling | {
        "Linear",
        "StackedLinear",
        "ReLU",
        "Tanh",
        "Sigmoid",
        "LeakyReLU",
        "ELU",
        "GELU",
    }
    assert not fw.Sequential._fresh_output and not fw.StackedSequential._fresh_grad


@pytest.mark.parametrize("cls", FRESH_OUTPUT, ids=lambda cls: cls.__name__)
def test_fresh_output_shares_no_storage_with_the_layer_or_its_input(cls):
    layer, args = example(cls)
    before = held_tensors(layer)
    output = layer(*args)
    after = held_tensors(layer)  # the cache now, parameters, buffers, every attribute
    assert not shared(output, args), "forward's output is (a view of) its input"
    assert not shared(output, before + after), "forward's output is a tensor the layer keeps"


# -- clause 3: _fresh_grad --------------------------------------------------------------------
@pytest.mark.parametrize("cls", FRESH_GRAD, ids=lambda cls: cls.__name__)
def test_fresh_grad_shares_no_storage_with_what_the_caller_or_layer_may_read(cls):
    layer, args = example(cls)
    output = layer(*args)
    cached = held_tensors(layer)  # kept alive: backward releases the cache
    assert not shared(output, args), "forward's output is (a view of) its input"
    grad_output = torch.randn(output.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    grad_input = layer.backward(grad_output)
    assert not shared(grad_input, [grad_output]), "backward returned the caller's gradient"
    assert not shared(grad_input, [*args, output]), "backward's result is forward's input/output"
    assert not shared(grad_input, cached + held_tensors(layer)), "a tensor the layer keeps"


# -- clauses 4-6: the in-place variants -------------------------------------------------------
def overrides_inplace(cls: type) -> bool:
    return issubclass(cls, fw.Activation) and (
        cls._forward_inplace is not fw.Activation._forward_inplace
        or cls._backward_inplace is not fw.Activation._backward_inplace
    )


INPLACE_CLASSES = [cls for cls in public_modules() if overrides_inplace(cls)]


@pytest.mark.parametrize("forward", ["forward", "_forward_inplace"])
@pytest.mark.parametrize("cls", INPLACE_CLASSES, ids=lambda cls: cls.__name__)
def test_inplace_results_are_their_argument_or_new(cls, forward):
    """_forward_inplace(x) returns x or a new tensor; _backward_inplace(g) returns g or a new
    tensor: never a parameter, a buffer, the cache (beyond the output it may overwrite, which
    it does not return) or the caller's input of an out-of-place forward."""
    layer, (x,) = example(cls)
    given = x.clone()
    kept = held_tensors(layer)
    output = getattr(layer, forward)(given)
    assert not shared(output, kept)
    if forward == "forward":
        assert not shared(output, [given])
    cached = held_tensors(layer)
    grad_output = torch.randn(output.shape, dtype=F64, generator=torch.Generator().manual_seed(2))
    grad_input = layer._backward_inplace(grad_output)
    if shared(grad_input, [grad_output]):
        assert grad_input.data_ptr() == grad_output.data_ptr()  # the tensor itself, as it was
    assert not shared(grad_input, [x, given, *cached, *kept, *held_tensors(layer)])


# -- clause 6: a StackedSequential's Workspace ------------------------------------------------
def recording(layer: fw.Module, results: list[torch.Tensor], method: str) -> None:
    """Record what ``layer.<method>`` returns, in ``results``, while a container calls it."""
    original = getattr(layer, method)

    def record(*args, **kwargs):
        result = original(*args, **kwargs)
        results.append(result)
        return result

    setattr(layer, method, record)


def test_only_hidden_outputs_and_inner_input_gradients_live_in_the_workspace():
    stacked, (x,) = example(fw.StackedSequential)
    linears = [layer for layer in stacked if isinstance(layer, fw.StackedLinear)]
    assert len(linears) == 3
    outputs: list[list[torch.Tensor]] = [[] for _ in linears]
    grads: list[list[torch.Tensor]] = [[] for _ in linears]
    for layer, out, grad in zip(linears, outputs, grads, strict=True):
        recording(layer, out, "forward")
        recording(layer, grad, "backward")
    output = stacked(x)
    grad_output = torch.randn(output.shape, dtype=F64, generator=torch.Generator().manual_seed(3))
    grad_input = stacked.backward(grad_output)
    workspace = held_tensors(stacked._output_slots[0][1][0])  # the container's buffers
    assert workspace
    for index, layer in enumerate(linears):
        hidden, inner = index < len(linears) - 1, index > 0
        (out,), (grad,) = outputs[index], grads[index]
        assert shared(out, workspace) == hidden, f"Linear {index}'s output"
        assert shared(grad, workspace) == inner, f"Linear {index}'s dL/dx"
        # Lent only while the container runs: the layer keeps no reference to the buffers.
        assert layer._output_into is None and layer._grad_into is None
        own = [t for t in held_tensors(layer) if not shared(t, workspace)]
        assert not shared(out, own) and not shared(grad, own)
    kept = held_tensors(stacked)
    assert not shared(output, [*kept, x]) and not shared(grad_input, [*kept, grad_output, x])


# -- coverage of the parity tables ------------------------------------------------------------
# The test modules that compare with torch; each has PARITY: name -> factory of (ours, torch's).
TABLE_MODULES = (
    "test_framework_layers",
    "test_framework_conv",
    "test_framework_norm",
    "test_framework_optim",
    "test_framework_stack",
    "test_framework_models",
)
# In-place parity tables: name -> factory of (ours, torch's), ours an activation whose in-place
# variants are compared with its forward/backward and with torch.
INPLACE_TABLES = ("test_framework_layers.INPLACE_PARITY",)

# The public names that are not a layer, loss or optimizer to compare with torch, and why.
EXCEPTED = {
    "fw.Module": "abstract base: forward and backward raise NotImplementedError",
    "fw.Activation": "abstract base of the element-wise layers: no forward of its own",
    "fw.Loss": "abstract base of the criteria: no forward or gradient of its own",
    "fw.Parameter": "a tensor and its gradient, no computation: every layer's parameter "
    "gradients are compared in its table's checks",
    "fw.Buffer": "non-trainable state, no computation: BatchNorm's buffers are compared in "
    "test_framework_norm",
    "fw.optim.Optimizer": "abstract base of the optimizers: no update rule of its own",
    "fw.INIT_SCHEMES": "a tuple of names, Sequential's init argument",
    "fw.init": "a module of initialisers, compared with torch.nn.init in test_framework_init",
    "fw.optim": "the optimizers' package: its classes are enumerated through fw.optim.__all__",
    "fw.stack": "a function: test_framework_stack checks what it builds",
    "fw.unstack": "a function: test_framework_stack checks its round trips",
}


def public_names() -> dict[str, object]:
    names = {f"fw.{name}": getattr(fw, name) for name in fw.__all__}
    names.update({f"fw.optim.{name}": getattr(fw.optim, name) for name in fw.optim.__all__})
    return names


def public_classes() -> dict[str, type]:
    """Every public layer, loss and optimizer class: the public names not excepted."""
    return {name: value for name, value in public_names().items() if name not in EXCEPTED}


Table = dict[str, Callable[[], tuple[object, object]]]


def table(dotted: str) -> Table:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def parity_tables() -> dict[str, Table]:
    return {f"{module}.PARITY": table(f"{module}.PARITY") for module in TABLE_MODULES}


@functools.cache
def built_type(factory: Callable[[], tuple[object, object]]) -> type:
    """type(ours) of what ``factory`` builds (once per factory; torch's generator restored)."""
    with torch.random.fork_rng(devices=[]):
        ours, theirs = factory()
    assert theirs is not None
    return type(ours)


def entries(tables: dict[str, Table]) -> Iterator[tuple[str, type]]:
    for table_name, entries_ in tables.items():
        for name, factory in entries_.items():
            yield f"{table_name}[{name!r}]", built_type(factory)


def missing(classes: Iterable[type], tables: dict[str, Table]) -> list[str]:
    """The names of ``classes`` that no entry of ``tables`` builds (as ``type(ours)``)."""
    covered = {cls for _, cls in entries(tables)}
    return sorted(cls.__name__ for cls in classes if cls not in covered)


def without(cls: type, tables: dict[str, Table]) -> dict[str, Table]:
    """``tables`` with every entry that builds ``cls`` removed."""
    return {
        table_name: {name: f for name, f in entries_.items() if built_type(f) is not cls}
        for table_name, entries_ in tables.items()
    }


def test_every_public_name_is_a_class_or_excepted_with_a_reason():
    names = public_names()
    assert set(EXCEPTED) <= set(names), "an exception for a name that is not public"
    for name, value in public_classes().items():
        assert isinstance(value, type), f"{name} is neither a class nor excepted"
        assert issubclass(value, (fw.Module, fw.optim.Optimizer)), name


def test_every_public_layer_loss_and_optimizer_is_in_a_parity_table():
    """Fails naming each public class that no parity table compares with torch."""
    assert missing(public_classes().values(), parity_tables()) == []


def test_every_inplace_override_is_in_an_inplace_parity_table():
    assert {cls.__name__ for cls in INPLACE_CLASSES} == {"ReLU", "Tanh", "Sigmoid"}
    inplace = {name: table(name) for name in INPLACE_TABLES}
    assert missing(INPLACE_CLASSES, inplace) == []
    assert all(overrides_inplace(cls) for _, cls in entries(inplace))


@pytest.mark.parametrize("cls", public_classes().values(), ids=lambda cls: cls.__name__)
def test_the_coverage_check_names_a_class_removed_from_the_tables(cls):
    """The check can fail: with the entries that build ``cls`` removed, it names ``cls``."""
    assert missing(public_classes().values(), without(cls, parity_tables())) == [cls.__name__]


@pytest.mark.parametrize("cls", INPLACE_CLASSES, ids=lambda cls: cls.__name__)
def test_the_inplace_coverage_check_names_a_class_removed_from_the_tables(cls):
    inplace = {name: table(name) for name in INPLACE_TABLES}
    assert missing(INPLACE_CLASSES, without(cls, inplace)) == [cls.__name__]


def test_examples_cover_layers_and_losses_alike():
    """module_check's examples (used above) hold a criterion's (input, target) pair."""
    for cls in public_modules():
        _, args = example(cls)
        assert len(args) == (2 if is_criterion(cls) else 1), cls.__name__

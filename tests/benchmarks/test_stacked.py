"""Training M models at once: the stacked framework against its peers, per model and step.

The Table III model (2-25-25-25-1, ReLU, sigmoid output, float32, batch 100, one thread). One
*step* is forward, loss, zero_grad, backward (parameter gradients only: nobody needs dL/dx)
and optimizer update. Contenders, each timed in this session:

- ``stack-{sgd,adam}-m{M}``, M in 1, 10, 100, 1000: **stacked** (``fw.stack`` of M models,
  ``fw.StackedLoss(fw.MSELoss())``, one framework optimizer over the stacked parameters) and
  **torch.func** (the strongest torch peer: ``stack_module_state`` of the M torch.nn twins,
  ``vmap`` of ``functional_call`` and the per-model MSE, autograd backward of the summed losses,
  torch.optim over the stacked parameters). Both do the work of M models per step; the report
  divides by M.
- in ``stack-{sgd,adam}-m{M}`` for M in 1, 10, 100 also: **sequential** (the same M framework
  models, each with its own optimizer, stepped one after another), timed interleaved with the
  stacked step, for the stacked / sequential ratio (M = 1000 would take seconds a step).
- ``sequential-{sgd,adam}-{mse,bce}-{optimizer,model}_zero_grad``: **custom** (one framework
  model) and **torch** (its torch.nn twin, torch.optim), the per-model cost of training M models
  one after another (each step is the same work whatever the model). zero_grad through the
  optimizer or through the model (torch's ``set_to_none=True`` default, ours zeroes).
- in ``stack-{sgd,adam}-m{M}`` also, where JAX is installed (the optional ``jax`` extra, which
  ``make bench`` installs where it can; skipped otherwise): **jax**, an outside peer, the same
  M models as one ``jax.jit`` of ``jax.vmap`` of the per-model loss, ``jax.grad`` of their sum
  and torch.optim's update rule written in ``jax.numpy``, on one core, timed interleaved with
  the stacked step. ``test_jax_peer_trains_as_the_stacked_framework_float32`` checks that it
  trains the same models to the same weights.
- ``peak``: one 1024×1024 float32 ``torch.mm`` on the same thread, the machine's attainable
  matrix-product rate, for the roofline.

Each benchmark records in ``extra_info`` its contender, M, and the FLOPs of one model's step
(`flops_per_model_step`), so ``python -m bench.report.speed`` can give GFLOP/s against the peak.
The two contenders of a group are timed interleaved (conftest's ``interleaved``). No test
asserts a time; under ``make test`` (benchmarks disabled) each target runs once with at most 2
models and a 64×64 product.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from types import ModuleType

import pytest
import torch
from test_speed import fold_data, job_config

import framework as fw
from bench.harness import data, engines, models
from bench.harness.reference import torch_loss, torch_optimizer, torch_twin
from bench.harness.spec import Component

MODELS = [1, 10, 100, 1000]
ONE_AFTER_ANOTHER_MODELS = [1, 10, 100]
TINY_MODELS = 2  # under make test: every target once, small
BATCHES = 10  # mini-batches per model, cycled
PEAK_SIZE = 1024

UPDATE_FLOPS = {"sgd": 2, "adam": 12}
"""FLOPs per parameter of one update: SGD θ − γg (a multiply and an add); Adam: weight-decay-
free moments (lerp 3, v 3), square root, ε, division, step (about 12, counted loosely)."""


def flops_per_model_step(widths: list[int], batch: int, optimizer: str) -> int:
    r"""Useful FLOPs of one training step of one model (the same for every contender):

    .. math::
        F = \underbrace{2 B \sum_l n_l m_l + B \sum_l m_l}_{\text{forward: products, biases}}
          + \underbrace{2 B \sum_l n_l m_l + B \sum_l m_l}_{\partial W,\ \partial b}
          + \underbrace{2 B \sum_{l \ge 2} n_l m_l}_{\partial x \text{ (not the input's)}}
          + u P

    for layers l of n_l inputs and m_l outputs, batch B, P parameters and u FLOPs per
    parameter of the update (`UPDATE_FLOPS`). Element-wise activations and the loss (O(B·m))
    are left out: the products are the arithmetic that matters. 2-25-25-25-1, B = 100, SGD:
    0.80 MFLOP.
    """
    layers = list(itertools.pairwise(widths))
    products = sum(n * m for n, m in layers)
    outputs = sum(m for _, m in layers)
    parameters = sum(n * m + m for n, m in layers)
    forward = 2 * batch * products + batch * outputs
    backward = (
        2 * batch * products + batch * outputs + 2 * batch * (products - widths[0] * widths[1])
    )
    return forward + backward + UPDATE_FLOPS[optimizer] * parameters


def widths(job) -> list[int]:
    model = job.model.model
    return [2] + [model["hidden_width"]] * model["hidden_layers"] + [1]


def model_batches(job, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``BATCHES`` stacked mini-batches: x ``(BATCHES, count, B, 2)``, y ``(BATCHES, count, B,
    1)``; model m sees the mini-batches of fold m mod 10, starting at a different one."""
    splits = [fold_data(job, fold) for fold in range(min(count, 10))]
    xs, ys = [], []
    for step in range(BATCHES):
        x_step, y_step = [], []
        for index in range(count):
            split = splits[index % len(splits)]
            start = ((step + index) % BATCHES) * job.training.batch_size
            x_step.append(split.x_train[start : start + job.training.batch_size])
            y_step.append(split.y_train[start : start + job.training.batch_size])
        xs.append(torch.stack(x_step))
        ys.append(torch.stack(y_step))
    return torch.stack(xs), torch.stack(ys)


def fresh_models(job, count: int) -> list[fw.Sequential]:
    """``count`` framework models, model m initialised from fold m's init stream."""
    seed = job.training.seed
    return [models.build_model(job, data.generator(seed, m, "init")) for m in range(count)]


def stacked_step(job, count: int):
    """One step of ``count`` stacked framework models (SGD/Adam from the job config)."""
    stacked = fw.stack(fresh_models(job, count))
    criterion = fw.StackedLoss(fw.MSELoss())
    optimizer = models.build_optimizer(job.optimizer, stacked.parameters())
    xs, ys = model_batches(job, count)
    batches = itertools.cycle(range(BATCHES))

    def step() -> None:
        index = next(batches)
        criterion(stacked(xs[index]), ys[index])
        optimizer.zero_grad()
        stacked.backward(criterion.backward(), input_grad=False)
        optimizer.step()

    def finite() -> bool:
        return bool(torch.isfinite(criterion(stacked(xs[0]), ys[0])).all())

    return step, finite


def one_after_another_step(job, count: int, zero_grad: str = "optimizer"):
    """The work of a stacked step without stacking: one step of each of ``count`` framework
    models in turn, each with its own loss and optimizer, on the batches the stacked step
    gives it; gradients zeroed through the optimizer or through the model."""
    trained = fresh_models(job, count)
    criteria = [models.build_loss(job.training.loss) for _ in trained]
    optimizers = [models.build_optimizer(job.optimizer, model.parameters()) for model in trained]
    clears = [
        optimizer.zero_grad if zero_grad == "optimizer" else model.zero_grad
        for model, optimizer in zip(trained, optimizers, strict=True)
    ]
    xs, ys = model_batches(job, count)
    batches = itertools.cycle(range(BATCHES))
    each = list(enumerate(zip(trained, criteria, optimizers, clears, strict=True)))

    def step() -> None:
        index = next(batches)
        for m, (model, criterion, optimizer, clear) in each:
            criterion(model(xs[index, m]), ys[index, m])
            clear()
            model.backward(criterion.backward(), input_grad=False)
            optimizer.step()

    def finite() -> bool:
        return all(
            math.isfinite(criterion(model(xs[0, m]), ys[0, m]).item())
            for m, (model, criterion, *_) in each
        )

    return step, finite


def func_step(job, count: int):
    """The same with torch.func: the M torch.nn twins' parameters stacked, the per-model losses
    vmapped, autograd through their sum, torch.optim over the stacked parameters."""
    from torch.func import functional_call, stack_module_state, vmap

    twins = [torch_twin(model) for model in fresh_models(job, count)]
    params, buffers = stack_module_state(twins)
    base = copy.deepcopy(twins[0]).to("meta")

    def loss(p, b, x, y):
        return torch.nn.functional.mse_loss(functional_call(base, (p, b), (x,)), y)

    losses = vmap(loss)
    optimizer = torch_optimizer(job.optimizer, list(params.values()))
    xs, ys = model_batches(job, count)
    batches = itertools.cycle(range(BATCHES))

    def step() -> None:
        index = next(batches)
        optimizer.zero_grad()
        losses(params, buffers, xs[index], ys[index]).sum().backward()
        optimizer.step()

    def finite() -> bool:
        with torch.no_grad():
            return bool(torch.isfinite(losses(params, buffers, xs[0], ys[0])).all())

    return step, finite


def sequential_step(job, framework: str, zero_grad: str):
    """One step of one model: the framework's, or its torch.nn twin with torch.optim."""
    if framework == "custom":
        return one_after_another_step(job, 1, zero_grad)
    model = fresh_models(job, 1)[0]
    criterion = models.build_loss(job.training.loss)
    xs, ys = model_batches(job, 1)
    batches = itertools.cycle(range(BATCHES))
    twin = torch_twin(model)
    twin_criterion = torch_loss(criterion)
    twin_optimizer = torch_optimizer(job.optimizer, twin.parameters())
    clear = twin_optimizer.zero_grad if zero_grad == "optimizer" else twin.zero_grad

    def twin_step() -> None:
        index = next(batches)
        clear()
        twin_criterion(twin(xs[index, 0]), ys[index, 0]).backward()
        twin_optimizer.step()

    def twin_finite() -> bool:
        with torch.no_grad():
            return math.isfinite(twin_criterion(twin(xs[0, 0]), ys[0, 0]).item())

    return twin_step, twin_finite


def stack_group(
    benchmark, record, optimizer: str, count: int, framework: str, contender: str, **more
):
    """The MLP stack group's job and M (at most `TINY_MODELS` under make test), its benchmark
    named and recorded: ``stack-{optimizer}-m{M}``, one per contender."""
    job = job_config(f"optimizer={optimizer}")
    count = count if benchmark.enabled else min(count, TINY_MODELS)
    record(
        f"stack-{optimizer}-m{count}",
        job,
        framework,
        contender=contender,
        models=count,
        flops_per_model_step=flops_per_model_step(widths(job), job.training.batch_size, optimizer),
        **more,
    )
    return job, count


# The two contenders of a group run one right after the other (the innermost parameter): on a
# shared machine the speed drifts over minutes.
@pytest.mark.parametrize("contender", ["stacked", "func"])
@pytest.mark.parametrize("count", MODELS, ids=lambda m: f"m{m}")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_stacked_step(benchmark, interleaved, record, optimizer, contender, count):
    framework = "custom" if contender == "stacked" else "torch"
    job, count = stack_group(benchmark, record, optimizer, count, framework, contender)
    makers = {"stacked": stacked_step, "func": func_step}
    step, finite = makers[contender](job, count)
    other, _ = makers["func" if contender == "stacked" else "stacked"](job, count)
    interleaved(step, other)
    assert finite(), f"{contender} diverged while being timed"


@pytest.mark.parametrize("count", ONE_AFTER_ANOTHER_MODELS, ids=lambda m: f"m{m}")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_after_another_step(benchmark, interleaved, record, optimizer, count):
    """The stacked step's other peer: the same M models trained one after another, in the
    stacked step's group, interleaved with it (the report's stacked / sequential ratio)."""
    job, count = stack_group(benchmark, record, optimizer, count, "custom", "sequential")
    step, finite = one_after_another_step(job, count)
    other, _ = stacked_step(job, count)
    interleaved(step, other)
    assert finite(), "the models trained one after another diverged while being timed"


@pytest.mark.parametrize("framework", ["custom", "torch"])
@pytest.mark.parametrize("zero_grad", ["optimizer", "model"])
@pytest.mark.parametrize("loss", ["mse", "bce"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sequential_step(interleaved, record, optimizer, framework, loss, zero_grad):
    job = job_config(f"optimizer={optimizer}", f"loss={loss}")
    flops = flops_per_model_step(widths(job), job.training.batch_size, optimizer)
    record(
        f"sequential-{optimizer}-{loss}-{zero_grad}_zero_grad",
        job,
        framework,
        contender=f"sequential {framework}",
        models=1,
        zero_grad=zero_grad,
        flops_per_model_step=flops,
    )
    step, finite = sequential_step(job, framework, zero_grad)
    other, _ = sequential_step(job, "torch" if framework == "custom" else "custom", zero_grad)
    interleaved(step, other)
    assert finite(), f"{framework} diverged while being timed"


# -- JAX: an outside peer (optional) ---------------------------------------------------------------
@pytest.fixture(scope="session")
def jax_one_core():
    """JAX, its CPU backend started on one core (skipped where JAX is not installed). XLA's
    flags no longer limit its CPU threads; its thread pool, created with the backend, keeps the
    core affinity it was created with, so this thread is pinned to one core while the backend
    starts, then given back its cores: JAX's steps then run on one core, like the others'."""
    jax = pytest.importorskip("jax")
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        jax.config.update("jax_platforms", "cpu")
        jax.jit(lambda a: a + 1)(jax.numpy.zeros(4)).block_until_ready()
    finally:
        os.sched_setaffinity(0, cores)
    return jax


class JaxStack:
    """M models of a framework ``StackedSequential`` (Linear and element-wise layers), their
    weights copied, trained with JAX as a JAX user writes it: per-model MSE ``jax.vmap``-ed,
    ``jax.grad`` of the sum of the M losses (each model gets its own loss's gradient), the
    update rule of ``torch.optim.SGD`` (no momentum) or ``torch.optim.Adam``, the whole step one
    ``jax.jit`` with the parameters' buffers donated."""

    def __init__(self, jax: ModuleType, stacked: fw.Module, optimizer: Component) -> None:
        jnp = jax.numpy
        activations = {fw.ReLU: jax.nn.relu, fw.Sigmoid: jax.nn.sigmoid, fw.Tanh: jnp.tanh}
        program, params = [], []
        for layer in stacked:
            if isinstance(layer, fw.StackedLinear):
                params.append((jnp.asarray(layer.weight.data), jnp.asarray(layer.bias.data)))
                program.append(None)
            elif type(layer) in activations:
                program.append(activations[type(layer)])
            else:
                raise ValueError(f"JaxStack: no JAX twin of {layer!r}")

        def predict(p, x):  # one model: p its layers' (W, b), x (B, in)
            layers = iter(p)
            for activation in program:
                if activation is None:
                    weight, bias = next(layers)
                    x = x @ weight.T + bias
                else:
                    x = activation(x)
            return x

        def total_loss(p, x, y):
            return jnp.sum(jax.vmap(lambda p, x, y: jnp.mean((predict(p, x) - y) ** 2))(p, x, y))

        grad = jax.grad(total_loss)
        options = optimizer.kwargs()
        lr = options["lr"]
        if optimizer.name == "sgd":
            assert options["momentum"] == 0 and options["weight_decay"] == 0, options

            def update(p, state, x, y):
                return jax.tree.map(lambda w, g: w - lr * g, p, grad(p, x, y)), state

            state = jnp.zeros(())
        elif optimizer.name == "adam":
            (beta1, beta2), eps = options["betas"], options["eps"]
            assert options["weight_decay"] == 0, options

            # torch.optim.Adam's single-tensor rule; its bias corrections 1 − β^t in float32
            # (torch: Python floats), a relative difference of ~1e-7 that the test allows
            def update(p, state, x, y):
                t, m, v = state
                g = grad(p, x, y)
                t = t + 1
                m = jax.tree.map(lambda m, g: m + (1 - beta1) * (g - m), m, g)  # lerp
                v = jax.tree.map(lambda v, g: beta2 * v + (1 - beta2) * g * g, v, g)
                step_size = lr / (1 - beta1**t)
                root = jnp.sqrt(1 - beta2**t)
                p = jax.tree.map(
                    lambda w, m, v: w - step_size * m / (jnp.sqrt(v) / root + eps), p, m, v
                )
                return p, (t, m, v)

            # m and v each their own zeros: the step donates both, and a buffer donated twice
            # is refused
            state = (jnp.zeros(()), *(jax.tree.map(jnp.zeros_like, params) for _ in "mv"))
        else:
            raise ValueError(f"no JAX update rule for {optimizer.name}")
        self.jax, self.params, self.state = jax, params, state
        self._loss = jax.jit(total_loss)
        self._step = jax.jit(update, donate_argnums=(0, 1))

    def step(self, x, y) -> None:
        """One training step of the M models on their batches ``x`` (M, B, in), ``y``;
        returns when it is done (JAX dispatches asynchronously)."""
        self.params, self.state = self._step(self.params, self.state, x, y)
        self.jax.block_until_ready(self.params)

    def loss(self, x, y) -> float:
        """The sum of the M models' losses on ``x``, ``y``."""
        return float(self._loss(self.params, x, y))

    def weights(self) -> list[torch.Tensor]:
        """Every layer's weight and bias, ``(M, ...)``, as torch tensors."""
        return [torch.from_dlpack(a) for layer in self.params for a in layer]


def jax_step(job, count: int, jax: ModuleType):
    """One step of ``count`` models as the JAX peer (`JaxStack`), on the stacked step's
    batches."""
    peer = JaxStack(jax, fw.stack(fresh_models(job, count)), job.optimizer)
    xs, ys = model_batches(job, count)
    # One JAX array per mini-batch, made before timing: indexing one big JAX array is an
    # operation of its own (~50 µs of dispatch a step), where the other contenders take a
    # free view of a torch tensor.
    xs, ys = [jax.numpy.asarray(x) for x in xs], [jax.numpy.asarray(y) for y in ys]
    batches = itertools.cycle(range(BATCHES))

    def step() -> None:
        index = next(batches)
        peer.step(xs[index], ys[index])

    def finite() -> bool:
        return math.isfinite(peer.loss(xs[0], ys[0]))

    return step, finite


@pytest.mark.parametrize("count", MODELS, ids=lambda m: f"m{m}")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_stacked_step_jax(benchmark, interleaved, record, jax_one_core, optimizer, count):
    """JAX 0.8 (jit + vmap, CPU, one core) in the stacked step's group, interleaved with it
    (the report's stacked / JAX ratio)."""
    version = jax_one_core.__version__
    job, count = stack_group(benchmark, record, optimizer, count, "jax", "jax", jax=version)
    step, finite = jax_step(job, count, jax_one_core)
    other, _ = stacked_step(job, count)
    interleaved(step, other)
    assert finite(), "JAX diverged while being timed"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_jax_peer_trains_as_the_stacked_framework_float32(jax_one_core, optimizer):
    """Three models, five steps on the stacked step's batches: the JAX peer and fw.stack reach
    the same weights (float32: to rounding), so the benchmark times the same work."""
    job = job_config(f"optimizer={optimizer}")
    stacked = fw.stack(fresh_models(job, 3))
    peer = JaxStack(jax_one_core, stacked, job.optimizer)
    criterion = fw.StackedLoss(fw.MSELoss())
    optimizer_ = models.build_optimizer(job.optimizer, stacked.parameters())
    xs, ys = model_batches(job, 3)
    for index in range(5):
        criterion(stacked(xs[index]), ys[index])
        optimizer_.zero_grad()
        stacked.backward(criterion.backward(), input_grad=False)
        optimizer_.step()
        peer.step(jax_one_core.numpy.asarray(xs[index]), jax_one_core.numpy.asarray(ys[index]))
    ours = [p.data for p in stacked.parameters()]
    assert [w.shape for w in peer.weights()] == [w.shape for w in ours]
    for theirs, mine in zip(peer.weights(), ours, strict=True):
        torch.testing.assert_close(theirs, mine, rtol=1e-4, atol=1e-5)


def test_matmul_peak(benchmark, record):
    """The attainable float32 matrix-product rate of this thread (the roofline's roof)."""
    job = job_config()
    size = PEAK_SIZE if benchmark.enabled else 64
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator)
    b = torch.rand(size, size, generator=generator)
    out = torch.empty(size, size)
    record("peak", job, "peak", contender="torch.mm", size=size, flops=2 * size**3)
    benchmark(torch.mm, a, b, out=out)
    torch.testing.assert_close(out[:2, :2], a[:2] @ b[:, :2], rtol=1e-4, atol=1e-3)


# -- the digits CNN (Figure 6, Table IV) ----------------------------------------------------------
CNN_MODELS = 10
CNN_OVERRIDES = (
    "dataset=digits",
    "loss=ce",
    "model=cnn",
    "optimizer=sgd_momentum",
    "batch_size=64",
)


def cnn_flops_per_model_step(job) -> int:
    r"""The products of one step of one digits CNN: per convolution (and the Linear head) a
    forward :math:`2 B P C_{out} K` (P output positions, K = C·kh·kw inputs per output), as much
    again for dL/dW and for dL/dx (none for the first layer's input); element-wise work left
    out, as in `flops_per_model_step`."""
    batch, (channels, height, width) = job.training.batch_size, job.data.entry.shape
    products, first = 0, True
    for out in job.model.model["channels"]:
        forward = 2 * batch * height * width * out * channels * 9
        products += forward * (2 if first else 3)
        channels, height, width, first = out, height // 2, width // 2, False
    head = 2 * batch * channels * height * width * job.data.entry.outputs
    return products + 3 * head


def cnn_steps(job, count: int, contender: str):
    """One step of ``count`` digits CNNs (fold m's initial weights and first mini-batch of 64
    for model m): stacked (`fw.stack`), torch.func's stacked peer, or the framework's models
    one after another (the sequential engine's adapters)."""
    lrs = [job.training.lrs[0]] * count
    inits = [data.generator(job.training.seed, m, "init") for m in range(count)]
    splits = [fold_data(job, m % 10) for m in range(count)]
    size = job.training.batch_size
    x = torch.stack([split.x_train[:size] for split in splits])  # (M, 64, 1, 8, 8)
    y = torch.stack([split.y_train[:size] for split in splits])  # (M, 64)
    if contender == "sequential":
        adapters = [
            engines.adapter(job, "custom", [init], lrs[:1], stacked=False) for init in inits
        ]

        def step() -> None:
            for m, adapter in enumerate(adapters):
                adapter.step(x[m], y[m])

        def finite() -> bool:
            return all(math.isfinite(a.evaluate(x[m], y[m])[0][0]) for m, a in enumerate(adapters))

        return step, finite
    framework = "custom" if contender == "stacked" else "torch"
    adapter = engines.adapter(job, framework, inits, lrs, stacked=True)

    def stacked() -> None:
        adapter.step(x, y)

    def stacked_finite() -> bool:
        return all(math.isfinite(v) for v in adapter.evaluate(x, y)[0])

    return stacked, stacked_finite


@pytest.mark.parametrize("contender", ["stacked", "func", "sequential"])
def test_stacked_cnn_step(benchmark, interleaved, record, contender):
    """The digits CNN (Conv-BatchNorm-ReLU-MaxPool twice, Linear; SGD with momentum, batch 64,
    float32) at M = 10: stacked against torch.func (interleaved) and against the same models
    one after another (interleaved with the stacked step)."""
    job = job_config(*CNN_OVERRIDES)
    count = CNN_MODELS if benchmark.enabled else TINY_MODELS
    record(
        f"stack-cnn-sgd_momentum-m{count}",
        job,
        "torch" if contender == "func" else "custom",
        contender=contender,
        models=count,
        flops_per_model_step=cnn_flops_per_model_step(job),
        layers="cnn " + "-".join(map(str, job.model.model["channels"])),
    )
    step, finite = cnn_steps(job, count, contender)
    other, _ = cnn_steps(job, count, "func" if contender == "stacked" else "stacked")
    interleaved(step, other)
    assert finite(), f"{contender} diverged while being timed"

"""Time one training step of a digits-sized CNN, custom framework vs its torch.nn twin.

    .venv/bin/python tests/benchmarks/cnn_step.py [--batch 64] [--repeats 15] [--threads 1]

The model: Conv2d(1, 16, 3, padding=1)-BatchNorm2d-ReLU-MaxPool2d(2)-Conv2d(16, 32, 3,
padding=1)-BatchNorm2d-ReLU-MaxPool2d(2)-Flatten-Linear(128, 10), CrossEntropyLoss, SGD(lr=0.05)
in float32 on (batch, 1, 8, 8) inputs; one step = forward, loss, zero_grad, backward, SGD step.
Prints the median time per step of each (timeit: ``repeats`` rounds of ``number`` steps, after
a warm-up, the two frameworks' rounds interleaved) and the ratio custom / torch, both in wall-clock
time and in this process's CPU time (``time.process_time``: what the step costs even when other
processes share the cores). Measures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit

import torch

import framework as fw
from bench.harness.reference import torch_loss, torch_twin


def cnn() -> fw.Sequential:
    return fw.Sequential(
        fw.Conv2d(1, 16, 3, padding=1),
        fw.BatchNorm2d(16),
        fw.ReLU(),
        fw.MaxPool2d(2),
        fw.Conv2d(16, 32, 3, padding=1),
        fw.BatchNorm2d(32),
        fw.ReLU(),
        fw.MaxPool2d(2),
        fw.Flatten(),
        fw.Linear(128, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--number", type=int, default=50, help="steps per timed round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model, criterion = cnn(), fw.CrossEntropyLoss()
    twin, twin_criterion = torch_twin(model), torch_loss(criterion)
    optimizer = fw.optim.SGD(model.parameters(), lr=0.05)
    twin_optimizer = torch.optim.SGD(twin.parameters(), lr=0.05)
    x = torch.rand(args.batch, 1, 8, 8)
    y = torch.randint(0, 10, (args.batch,))

    def custom_step() -> None:
        criterion(model(x), y)
        optimizer.zero_grad()
        model.backward(criterion.backward())
        optimizer.step()

    def torch_step() -> None:
        loss = twin_criterion(twin(x), y)
        twin_optimizer.zero_grad()
        loss.backward()
        twin_optimizer.step()

    steps = {"custom": custom_step, "torch": torch_step}
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    for step in steps.values():
        timeit.timeit(step, number=args.number)  # warm-up
    rounds = {(clock, name): [] for clock in clocks for name in steps}
    for _ in range(args.repeats):  # interleaved, so a load spike hits both
        for clock, timer in clocks.items():
            for name, step in steps.items():
                seconds = timeit.Timer(step, timer=timer).timeit(number=args.number)
                rounds[clock, name].append(seconds / args.number)
    for clock in clocks:
        medians = {name: statistics.median(rounds[clock, name]) for name in steps}
        print(
            f"{clock:>4}: custom {medians['custom'] * 1e6:7.1f} µs/step, "
            f"torch {medians['torch'] * 1e6:7.1f} µs/step, "
            f"custom / torch = {medians['custom'] / medians['torch']:.3f} "
            f"(medians of {args.repeats} rounds of {args.number} steps)"
        )


if __name__ == "__main__":
    main()

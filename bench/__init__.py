"""The benchmark harness: data, the torch.nn twin, one training loop, the Hydra app, results."""

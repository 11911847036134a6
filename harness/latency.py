"""Measured inference latency of a model: seconds per forward pass at a given batch size.

``measure_latency(model, input_shape, batch_size)`` returns
  latency_s       median wall time of one forward pass of ``batch_size`` images (seconds)
  latency_mean_s, latency_std_s    mean and standard deviation over the timed repeats (ddof 1)
  latency_min_s, latency_max_s     the fastest and the slowest timed repeat
  per_image_s     latency_s / batch_size
  repeats, warmup, batch_size, input, device, threads    how it was measured
What the timer includes: one ``model(x)`` in eval mode under ``torch.inference_mode`` on an
input already on the model's device (zeros; data loading and transfer excluded), ended by a
device synchronize on CUDA (timed with CUDA events). ``warmup`` untimed passes come first
(allocator, kernel selection, oneDNN primitive caches). The median resists the spikes of a
shared machine. On CPU the result depends on torch's intra-op threads: ``threads`` fixes them for
the measurement (and is recorded); on a machine whose cores are busy, more threads than free
cores make every parallel region wait for a descheduled thread (measured here: 12 ms with one
thread, 820 ± 560 ms with two, for the same batch-1 pass), so compare numbers taken with equal
threads on an idle machine.
"""
from __future__ import annotations

import platform
import statistics
import time

import torch
from torch import nn

from .errors import ConfigError


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"cpu ({platform.processor() or platform.machine()}, {threads} thread{'' if threads == 1 else 's'})"


@torch.inference_mode()
def measure_latency(model: nn.Module, input_shape: tuple[int, int, int], batch_size: int = 1,
                    repeats: int = 10, warmup: int = 2, threads: int | None = None) -> dict:
    """Time ``repeats`` forward passes of a ``batch_size`` x ``input_shape`` batch (see module doc)."""
    # ranges only: every caller passes a method's options, typed by their annotations before Ray starts
    if batch_size < 1:
        raise ConfigError("batch_size", batch_size, "a positive integer")
    if repeats < 1:
        raise ConfigError("repeats", repeats, "a positive integer")
    if len(input_shape) != 3 or any(not isinstance(d, int) or d <= 0 for d in input_shape):
        raise ConfigError("input", input_shape, "(C, H, W) with positive integers")
    if threads is not None and threads < 1:
        raise ConfigError("threads", threads, "a positive integer or None (torch's current setting)")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32
    x = torch.zeros(batch_size, *input_shape, device=device, dtype=dtype)
    was_training = model.training
    previous_threads = torch.get_num_threads()
    if threads is not None and device.type == "cpu":
        torch.set_num_threads(threads)
    used_threads = torch.get_num_threads()
    model.eval()
    times = []
    try:
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(x)
                end.record()
                torch.cuda.synchronize(device)
                times.append(start.elapsed_time(end) / 1000.0)
            else:
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
        device_text = device_name(device)
    finally:
        model.train(was_training)
        torch.set_num_threads(previous_threads)
    median = statistics.median(times)
    return {"latency_s": median, "latency_mean_s": statistics.fmean(times),
            "latency_std_s": statistics.stdev(times) if len(times) > 1 else 0.0,
            "latency_min_s": min(times), "latency_max_s": max(times),
            "per_image_s": median / batch_size, "repeats": repeats, "warmup": warmup, "batch_size": batch_size,
            "input": "x".join(map(str, input_shape)), "device": device_text, "threads": used_threads}

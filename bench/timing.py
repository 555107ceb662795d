"""Timing helper shared by the Python sides of the backend, model and text benchmarks."""
import time


def rate(step, min_seconds, min_iterations):
    """Return calls per second of `step` after one warm-up call."""
    step()
    iterations = 0
    started = time.perf_counter()
    while iterations < min_iterations or time.perf_counter() - started < min_seconds:
        step()
        iterations += 1
    return iterations / (time.perf_counter() - started)

"""Python side of bench/datasets.ts: the same figures with the reference tools.

Reads a JSON config (record paths, minimum seconds) from argv[1] and prints one
JSON object: wfdb.rdsamp records per second, and records per second of the ECG
preprocessing with scipy.signal (resample_poly 1/5, two medfilt passes, scaling)
on 500 Hz 12-lead records.
"""
import json
import sys
import time

import numpy as np
import scipy.signal
import wfdb


def rate(step, items, min_seconds):
    step(items[0])  # warm-up
    count = 0
    start = time.perf_counter()
    while True:
        for item in items:
            step(item)
        count += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return count / elapsed


def preprocess(signal):
    leads = np.nan_to_num(signal.T, nan=0.0)
    resampled = scipy.signal.resample_poly(leads, 1, 5, axis=1)
    baseline = np.stack([scipy.signal.medfilt(scipy.signal.medfilt(lead, 21), 61) for lead in resampled])
    corrected = resampled - baseline
    low = corrected.min(axis=1, keepdims=True)
    high = corrected.max(axis=1, keepdims=True)
    return 2 * (corrected - low) / (high - low) - 1


def main():
    config = json.loads(sys.argv[1])
    result = {"wfdb_records_per_second": rate(lambda p: wfdb.rdsamp(p), config["wfdb_records"], config["min_seconds"])}
    signals = [wfdb.rdsamp(p)[0] for p in config["preprocess_records"]]
    result["preprocess_records_per_second"] = rate(preprocess, signals, config["min_seconds"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()

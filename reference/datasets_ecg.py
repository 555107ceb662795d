"""Produce the ECG fixtures for test/datasets: WFDB records and the values the
reference tools read from them (wfdb-python 4.3), and ECG preprocessing outputs
(scipy.signal.resample_poly and scipy.signal.medfilt).

Run from the repository root:  .venv/bin/python reference/datasets_ecg.py [--data DIR]
DIR is the folder of openly licensed sample records (default /work/shared/data/real/ecg);
the records the tests need are copied into test/fixtures/datasets/ecg/records.
"""

import argparse
import ast
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.signal
import wfdb

OUT = Path("test/fixtures/datasets/ecg")
RECORDS = OUT / "records"

# (source folder relative to the data root, record name, files to copy)
REAL_RECORDS = [
    ("ptbxl/records100/00000", "00001_lr", ["00001_lr.hea", "00001_lr.dat"]),
    ("ptbxl/records100/00000", "00002_lr", ["00002_lr.hea", "00002_lr.dat"]),
    ("ptbxl/records100/00000", "00005_lr", ["00005_lr.hea", "00005_lr.dat"]),
    ("ptbxl/records500/00000", "00001_hr", ["00001_hr.hea", "00001_hr.dat"]),
    ("ptbdb", "s0010_re", ["s0010_re.hea", "s0010_re.dat", "s0010_re.xyz"]),
    ("mimic3wdb", "3000003_0003", ["3000003_0003.hea", "3000003_0003.dat"]),
    ("cinc2021", "HR06000", ["HR06000.hea", "HR06000.mat"]),
    ("ludb", "2", ["2.hea", "2.dat"]),
]


def digital_sha256(samples):
    return hashlib.sha256(np.ascontiguousarray(samples, dtype="<i4").tobytes()).hexdigest()


def physical_summary(values):
    n = len(values)
    step = max(1, n // 200)
    indices = list(range(0, n, step))
    sampled = [None if np.isnan(values[i]) else float(values[i]) for i in indices]
    return {
        "stride": step,
        "values": sampled,
        "nan_count": int(np.isnan(values).sum()),
        "sum": float(np.nansum(values)),
    }


def describe_record(path):
    """Read a record with wfdb-python both ways and summarise every signal.
    Digital values are None where wfdb-python cannot give them (variable-layout multi-segment records)."""
    physical = wfdb.rdrecord(str(path), physical=True, return_res=64)
    try:
        digital = wfdb.rdrecord(str(path), physical=False).d_signal
    except Exception:
        digital = None
    signals = []
    for ch, name in enumerate(physical.sig_name):
        signals.append({
            "name": name,
            # wfdb-python leaves these None on records joined from variable-layout segments.
            "units": None if physical.units is None else physical.units[ch],
            "gain": None if physical.adc_gain is None else float(physical.adc_gain[ch]),
            "baseline": None if physical.baseline is None else int(physical.baseline[ch]),
            "format": None if physical.fmt is None else physical.fmt[ch],
            "digital_sha256": None if digital is None else digital_sha256(digital[:, ch]),
            "digital_head": None if digital is None else [int(v) for v in digital[:8, ch]],
            "physical": physical_summary(physical.p_signal[:, ch]),
        })
    return {"fs": float(physical.fs), "sample_count": int(physical.sig_len), "signals": signals}


def record_folder(folder):
    """PTB-XL records keep their published layout (for the manifest tests), the others go flat."""
    return RECORDS / (folder if folder.startswith("ptbxl") else Path(folder).parts[0])


def copy_real_records(data_root):
    for folder, _, files in REAL_RECORDS:
        target = record_folder(folder)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copyfile(data_root / folder / name, target / name)


def write_mitdb_excerpt(data_root):
    """Write the first 10 s of MIT-BIH record 100 in format 212, through wfdb-python itself."""
    source = wfdb.rdrecord(str(data_root / "mitdb" / "100"), sampto=3600, physical=False)
    target = RECORDS / "mitdb"
    target.mkdir(parents=True, exist_ok=True)
    record = wfdb.Record(
        record_name="100_10s", n_sig=2, fs=360, sig_len=3600,
        file_name=["100_10s.dat"] * 2, fmt=["212"] * 2, adc_gain=source.adc_gain, baseline=source.baseline,
        units=source.units, adc_res=source.adc_res, adc_zero=source.adc_zero,
        sig_name=source.sig_name, d_signal=source.d_signal, comments=["first 10 s of MIT-BIH record 100"],
    )
    record.set_d_features(do_adc=False)
    record.block_size = [0, 0]
    record.wrsamp(write_dir=str(target))


def pack_format(samples, fmt):
    """Encode a flat int stream in a WFDB format that wfdb-python cannot write."""
    s = np.asarray(samples, dtype=np.int64)
    if fmt == "61":
        return s.astype(">i2").tobytes()
    if fmt == "160":
        return (s + 32768).astype("<u2").tobytes()
    u = (s & 0x3FF).astype(np.int64)
    out = bytearray()
    for i in range(0, len(u), 3):
        a = int(u[i])
        b = int(u[i + 1]) if i + 1 < len(u) else 0
        c = int(u[i + 2]) if i + 2 < len(u) else 0
        if fmt == "310":
            word0 = (a << 1) | ((c & 0x1F) << 11)
            word1 = (b << 1) | ((c >> 5) << 11)
            group = word0.to_bytes(2, "little") + word1.to_bytes(2, "little")
            used = 2 if i + 1 >= len(u) else 4
        else:
            word = a | (b << 10) | (c << 20)
            group = word.to_bytes(4, "little")
            remaining = len(u) - i
            used = 4
            if remaining == 2:
                used = 3
            elif remaining == 1:
                used = 2
        out += group[:used]
    return bytes(out)


def write_generated_formats(data_root):
    """Records in formats 16, 80, 24, 32 (written by wfdb-python) and 61, 160, 310, 311
    (bytes packed here, values read back by wfdb-python), from real MIT-BIH samples.
    An odd sample count exercises the partial last group of the packed formats."""
    source = wfdb.rdrecord(str(data_root / "mitdb" / "100"), sampto=301, physical=False)
    target = RECORDS / "formats"
    target.mkdir(parents=True, exist_ok=True)
    base = source.d_signal.astype(np.int64) - 1024  # centre the 11-bit samples around 0
    scale = {"80": 1, "16": 64, "24": 4096, "32": 1 << 20, "61": 64, "160": 64, "310": 1, "311": 1}
    names = []
    for fmt, factor in scale.items():
        values = base * factor
        if fmt in ("80", "310", "311"):
            values = np.clip(base // 4, -511 if fmt != "80" else -127, 511 if fmt != "80" else 127)
        # One invalid sample per signal, to check the NaN marker of each format.
        invalid = {"80": -128, "16": -32768, "24": -(2**23), "32": -(2**31), "61": -32768, "160": -32768,
                   "310": -512, "311": -512}[fmt]
        values = values.copy()
        values[5, 0] = invalid
        values[7, 1] = invalid
        name = f"fmt{fmt}"
        names.append(name)
        if fmt in ("80", "16", "24", "32"):
            record = wfdb.Record(
                record_name=name, n_sig=2, fs=360, sig_len=len(values), file_name=[f"{name}.dat"] * 2,
                fmt=[fmt] * 2, adc_gain=[200.0, 150.5], baseline=[3, -2], units=["mV", "mV"],
                adc_res=[int(fmt) if fmt != "80" else 8] * 2, adc_zero=[0, 0], sig_name=["MLII", "V5"],
                d_signal=values.astype(np.int64),
            )
            record.set_d_features(do_adc=False)
            record.block_size = [0, 0]
            record.wrsamp(write_dir=str(target))
        else:
            stream = values.reshape(-1)
            (target / f"{name}.dat").write_bytes(pack_format(stream, fmt))
            sums = [int(values[:, ch].sum()) & 0xFFFF for ch in range(2)]
            signed = [v - 65536 if v > 32767 else v for v in sums]
            lines = [f"{name} 2 360 {len(values)}"]
            for ch, (gain, baseline, lead) in enumerate([(200.0, 3, "MLII"), (150.5, -2, "V5")]):
                lines.append(f"{name}.dat {fmt} {gain}({baseline})/mV 10 0 {int(values[0, ch])} {signed[ch]} 0 {lead}")
            (target / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return [f"formats/{n}" for n in names]


def write_segment(target, name, samples, names, fmt, gains, baselines):
    record = wfdb.Record(
        record_name=name, n_sig=samples.shape[1], fs=360, sig_len=samples.shape[0],
        file_name=[f"{name}.dat"] * samples.shape[1], fmt=[fmt] * samples.shape[1], adc_gain=gains,
        baseline=baselines, units=["mV"] * samples.shape[1], adc_res=[12] * samples.shape[1],
        adc_zero=[0] * samples.shape[1], sig_name=names, d_signal=samples,
    )
    record.set_d_features(do_adc=False)
    record.block_size = [0] * samples.shape[1]
    record.wrsamp(write_dir=str(target))


def write_multi_segment():
    """Write two multi-segment records cut from the MIT-BIH excerpt: a fixed layout, and a
    variable layout with a gap and segments that hold different signals, orders and gains."""
    target = RECORDS / "multiseg"
    target.mkdir(parents=True, exist_ok=True)
    d = wfdb.rdrecord(str(RECORDS / "mitdb" / "100_10s"), physical=False).d_signal.astype(np.int64)
    write_segment(target, "fixed_1", d[:1500], ["MLII", "V5"], "212", [200.0, 200.0], [1024, 1024])
    write_segment(target, "fixed_2", d[1500:3000], ["MLII", "V5"], "212", [200.0, 200.0], [1024, 1024])
    # No gap here: wfdb-python 4.3 fails on a gap in a fixed-layout record (segments[i] is None).
    (target / "fixed.hea").write_text("fixed/2 2 360 3000\nfixed_1 1500\nfixed_2 1500\n")
    write_segment(target, "variable_1", d[:1000], ["MLII", "V5"], "212", [200.0, 200.0], [1024, 1024])
    write_segment(target, "variable_2", d[1000:1800, 1:2] - 1024, ["V5"], "16", [400.0], [0])
    write_segment(target, "variable_3", d[1800:], ["V5", "MLII"], "16", [200.0, 100.0], [1024, 1024])
    (target / "variable_layout.hea").write_text(
        "variable_layout 2 360 0\nvariable_layout.dat 212 200(1024)/mV 12 0 0 0 0 MLII\n"
        "variable_layout.dat 212 200(1024)/mV 12 0 0 0 0 V5\n"
    )
    (target / "variable.hea").write_text(
        "variable/5 2 360 3800\nvariable_layout 0\nvariable_1 1000\n~ 200\nvariable_2 800\nvariable_3 1800\n"
    )
    return ["multiseg/fixed", "multiseg/variable"]


def write_special_cases():
    """Small records spelled out by the specification, read back by wfdb-python."""
    target = RECORDS / "cases"
    target.mkdir(parents=True, exist_ok=True)
    (target / "x.hea").write_text("x 1 500 2\nx.dat 16 0/mV 16 5\n")
    (target / "x.dat").write_bytes(bytes([0x95, 0x01, 0x3D, 0xFF]))
    (target / "y.hea").write_text("y 1 500 3\ny.dat 16\n")
    (target / "y.dat").write_bytes(bytes([0xC8, 0x00, 0x00, 0x80, 0x38, 0xFF]))
    return ["cases/x", "cases/y"]


def preprocessing_fixtures():
    """Stages of the ECG preprocessing, computed with scipy on real 500 Hz records."""
    from_record = {}
    for name in ["ptbxl/records500/00000/00001_hr", "ludb/2"]:
        record = wfdb.rdrecord(str(RECORDS / name), physical=True, return_res=64)
        order = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
        upper = [n.upper() for n in record.sig_name]
        leads = np.stack([record.p_signal[:, upper.index(lead)] for lead in order])  # (12, 5000)
        leads = np.nan_to_num(leads, nan=0.0)
        resampled = scipy.signal.resample_poly(leads, 1, 5, axis=1)  # (12, 1000)
        baseline = np.stack([scipy.signal.medfilt(scipy.signal.medfilt(lead, 21), 61) for lead in resampled])
        corrected = resampled - baseline
        low = corrected.min(axis=1, keepdims=True)
        high = corrected.max(axis=1, keepdims=True)
        scaled = 2 * (corrected - low) / (high - low) - 1
        stem = Path(name).parts[0] + "_" + Path(name).name
        for stage, values in [("resampled", resampled), ("corrected", corrected), ("scaled", scaled)]:
            (OUT / f"preprocess_{stem}_{stage}.f64").write_bytes(values.astype("<f8").tobytes())
        from_record[name] = {"shape": list(scaled.shape), "stem": stem}

    rng = np.random.default_rng(7)
    resample_cases = []
    for n, up, down in [(1003, 1, 5), (50, 1, 5), (7, 1, 5), (400, 2, 3), (333, 3, 1)]:
        x = rng.normal(size=n)
        y = scipy.signal.resample_poly(x, up, down)
        resample_cases.append({"up": up, "down": down, "x": x.tolist(), "y": y.tolist()})
    medfilt_cases = []
    for n, k in [(100, 21), (100, 61), (30, 61), (9, 3), (250, 5)]:
        x = rng.normal(size=n)
        x[::7] = np.round(x[::7])  # ties inside windows
        medfilt_cases.append({"kernel": k, "x": x.tolist(), "y": scipy.signal.medfilt(x, k).tolist()})
    return {"records": from_record, "resample_poly": resample_cases, "medfilt": medfilt_cases}


SUPERCLASSES = ["NORM", "MI", "STTC", "CD", "HYP"]


def ptbxl_labels(data_root):
    """Copy the PTB-XL tables and derive the superclass multi-hot labels with pandas and ast,
    the way the PTB-XL authors' example code aggregates diagnostic statements."""
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copyfile(data_root / "ptbxl" / name, RECORDS / "ptbxl" / name)
    database = pd.read_csv(RECORDS / "ptbxl" / "ptbxl_database.csv", index_col="ecg_id")
    statements = pd.read_csv(RECORDS / "ptbxl" / "scp_statements.csv", index_col=0)
    statements = statements[statements.diagnostic == 1]
    rows = {}
    for ecg_id, row in database.iterrows():
        codes = ast.literal_eval(row.scp_codes)
        classes = {statements.loc[code].diagnostic_class for code in codes if code in statements.index}
        rows[str(ecg_id)] = {
            "patient_id": float(row.patient_id),
            "fold": int(row.strat_fold),
            "labels": [int(name in classes) for name in SUPERCLASSES],
            "filename_lr": row.filename_lr,
            "filename_hr": row.filename_hr,
            "report": row.report,
        }
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="/work/shared/data/real/ecg", type=Path)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    copy_real_records(args.data)
    write_mitdb_excerpt(args.data)
    generated = write_generated_formats(args.data)
    cases = write_special_cases() + write_multi_segment()

    real = [str((record_folder(folder) / name).relative_to(RECORDS)) for folder, name, _ in REAL_RECORDS] + ["mitdb/100_10s"]
    expected = {name: describe_record(RECORDS / name) for name in real + generated + cases}
    (OUT / "wfdb_expected.json").write_text(json.dumps(expected))
    (OUT / "preprocess_expected.json").write_text(json.dumps(preprocessing_fixtures()))
    (OUT / "ptbxl_expected.json").write_text(json.dumps(ptbxl_labels(args.data)))


if __name__ == "__main__":
    main()

"""Writes the saved MIME bundles and their expected values for the JupyterLab extension tests.

Inputs are real public samples: NIH ChestX-ray14 radiographs, PTB-XL ECG records with their report
text, and the example reports of the CheXpert labeler (MIT licence). Pillow encodes and resizes the images, wfdb reads the ECGs and
scikit-learn computes the retrieval scores; the relevance maps are seeded Gaussian bumps whose peaks
numpy locates. The outputs are small JSON files under test/fixtures/extension/.

Run: .venv/bin/python reference/extension/make_fixtures.py [--data /work/shared/data/real]
"""

import argparse
import csv
import base64
import io
import json
from pathlib import Path

import numpy as np
import wfdb
from PIL import Image
from sklearn.metrics.pairwise import cosine_similarity

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures" / "extension"

XRAY_SIDE = 64
PATCH_GRID = 8
# The explanation view fits the X-ray into a 320 px square (XRAY_DISPLAY_SIDE in extension/src/explanation.ts).
DISPLAY_SIDE = 320
THUMBNAIL_SIDE = 32
ECG_SEGMENTS = 100
CLASS_NAMES = ["Cardiomegaly", "Effusion"]


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def load_gray(path: Path, side: int) -> Image.Image:
    return Image.open(path).convert("L").resize((side, side), Image.Resampling.BILINEAR)


def bump_2d(rows: int, cols: int, peak: tuple, rng: np.random.Generator) -> np.ndarray:
    r, c = np.mgrid[0:rows, 0:cols]
    values = np.exp(-((r - peak[0]) ** 2 + (c - peak[1]) ** 2) / 4.0) + 0.05 * rng.random((rows, cols))
    return np.round(values, 5)


def bump_1d(length: int, peak: int, rng: np.random.Generator, height: float = 1.0) -> np.ndarray:
    t = np.arange(length)
    return np.round(height * np.exp(-((t - peak) ** 2) / 18.0) + 0.05 * rng.random(length), 5)


def argmax_2d(values: np.ndarray) -> dict:
    row, col = np.unravel_index(int(np.argmax(values)), values.shape)
    return {"row": int(row), "col": int(col)}


def argmin_2d(values: np.ndarray) -> dict:
    row, col = np.unravel_index(int(np.argmin(values)), values.shape)
    return {"row": int(row), "col": int(col)}


def read_labeled_reports(data: Path) -> list:
    with open(data / "labels/chexpert_format/labeled_reports.csv", newline="") as file:
        return [" ".join(row["Reports"].split()) for row in csv.DictReader(file)]


def read_ptbxl_reports(data: Path) -> dict:
    with open(data / "ecg/ptbxl/ptbxl_database.csv", newline="", encoding="utf-8") as file:
        return {int(float(row["ecg_id"])): " ".join(row["report"].split()) for row in csv.DictReader(file)}


def read_ecg(record: Path, keep_every: int = 1) -> dict:
    signals, fields = wfdb.rdsamp(str(record))
    signals = np.nan_to_num(signals)[::keep_every].T
    return {
        "leads": list(fields["sig_name"]),
        "sampleRateHz": float(fields["fs"]) / keep_every,
        "signals": np.round(signals, 3).tolist(),
    }


def build_explanation(data: Path, rng: np.random.Generator) -> tuple:
    xray_path = data / "cxr/nih/images_256/00000001_002.png"
    xray = load_gray(xray_path, XRAY_SIDE)
    overall = bump_2d(PATCH_GRID, PATCH_GRID, (2, 5), rng)
    by_class = {
        "Cardiomegaly": bump_2d(PATCH_GRID, PATCH_GRID, (5, 3), rng),
        "Effusion": bump_2d(PATCH_GRID, PATCH_GRID, (6, 6), rng),
    }

    text = read_labeled_reports(data)[1]
    words = text.split(" ")
    tokens = [words[0]] + [" " + word for word in words[1:]]
    hovered = next(i for i, token in enumerate(tokens) if "cardiomegaly" in token.lower())
    token_map = bump_2d(PATCH_GRID, PATCH_GRID, (4, 1), rng)
    report_relevance = np.round(0.2 * rng.random(len(tokens)), 5)
    report_relevance[hovered] = 1.0
    report_by_class = {name: np.round(rng.random(len(tokens)), 5) for name in CLASS_NAMES}

    ecg = read_ecg(data / "ecg/ptbxl/records100/00000/00001_lr")
    lead_count = len(ecg["leads"])
    ecg_overall = np.stack([bump_1d(ECG_SEGMENTS, 20 + 4 * lead, rng, 0.6) for lead in range(lead_count)])
    ecg_overall[1] = bump_1d(ECG_SEGMENTS, 62, rng, 1.0)
    ecg_class = {name: bump_1d(ECG_SEGMENTS, peak, rng)[None, :] for name, peak in zip(CLASS_NAMES, (15, 45))}
    ecg_token = bump_1d(ECG_SEGMENTS, 80, rng)[None, :]

    embeddings = rng.standard_normal((2, 16))
    similarity = float(cosine_similarity(embeddings[:1], embeddings[1:])[0, 0])

    bundle = {
        "version": 1,
        "title": "Explanation of NIH 00000001_002 with CheXpert-labeler report 2 and PTB-XL 00001",
        "similarity": similarity,
        "classNames": CLASS_NAMES,
        "xray": {
            "image": {"encoding": "png", "width": XRAY_SIDE, "height": XRAY_SIDE, "data": png_base64(xray)},
            "patchGrid": {"rows": PATCH_GRID, "cols": PATCH_GRID},
            "relevanceLayout": "patch",
            "relevance": overall.ravel().tolist(),
            "relevanceByClass": {name: values.ravel().tolist() for name, values in by_class.items()},
            "relevanceByToken": [{"tokenIndex": hovered, "values": token_map.ravel().tolist()}],
        },
        "ecg": {
            **ecg,
            "relevance": ecg_overall.tolist(),
            "relevanceByClass": {name: values.tolist() for name, values in ecg_class.items()},
            "relevanceByToken": [{"tokenIndex": hovered, "values": ecg_token.tolist()}],
        },
        "report": {
            "tokens": tokens,
            "relevance": report_relevance.tolist(),
            "relevanceByClass": {name: values.tolist() for name, values in report_by_class.items()},
        },
    }

    display = xray.resize((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.BILINEAR)
    lead, segment = np.unravel_index(int(np.argmax(ecg_overall)), ecg_overall.shape)
    expected = {
        "similarityText": f"{similarity:.4f}",
        "xray": {
            "displaySide": DISPLAY_SIDE,
            "patchGrid": PATCH_GRID,
            "displayMean": float(np.asarray(display, dtype=np.float64).mean()),
            "overallMax": argmax_2d(overall),
            "overallMin": argmin_2d(overall),
            "classMax": {name: argmax_2d(values) for name, values in by_class.items()},
            "tokenMax": argmax_2d(token_map),
        },
        "ecg": {
            "leads": ecg["leads"],
            "overallMaxLead": int(lead),
            "overallMaxSegment": int(segment),
            "segments": ECG_SEGMENTS,
            "classMaxSegment": {name: int(np.argmax(values)) for name, values in ecg_class.items()},
            "tokenMaxSegment": int(np.argmax(ecg_token)),
        },
        "report": {
            "tokens": tokens,
            "hoveredToken": hovered,
            "maxToken": int(np.argmax(report_relevance)),
            "classMaxToken": {name: int(np.argmax(values)) for name, values in report_by_class.items()},
        },
    }
    return bundle, expected


def build_retrieval(data: Path, rng: np.random.Generator) -> tuple:
    nih = data / "cxr/nih/images_256"
    items = []
    for index, name in enumerate(["00000003_000", "00000011_000", "00000013_009"]):
        image = load_gray(nih / f"{name}.png", THUMBNAIL_SIDE)
        if index == 2:
            encoded = {"encoding": "raw", "width": THUMBNAIL_SIDE, "height": THUMBNAIL_SIDE,
                       "data": np.asarray(image).ravel().tolist()}
        else:
            encoded = {"encoding": "png", "width": THUMBNAIL_SIDE, "height": THUMBNAIL_SIDE, "data": png_base64(image)}
        items.append({"id": f"nih/{name}", "modality": "xray", "label": f"{name}.png", "xray": encoded})
    ptbxl_reports = read_ptbxl_reports(data)
    for ecg_id in [2, 3]:
        record = f"{ecg_id:05d}_lr"
        # Every 4th sample of the 100 Hz record: 250 samples at 25 Hz are enough for a thumbnail.
        ecg = read_ecg(data / "ecg/ptbxl/records100/00000" / record, keep_every=4)
        items.append({"id": f"ptbxl/{record}", "modality": "ecg", "label": record, "ecg": ecg,
                      "reportExcerpt": ptbxl_reports[ecg_id]})
    labeled = read_labeled_reports(data)
    for number in [1, 3]:
        items.append({"id": f"chexpert-labeler/{number}", "modality": "report", "label": f"CheXpert labeler report {number}",
                      "reportExcerpt": labeled[number - 1]})

    query_text = "Cardiomegaly with a left pleural effusion."
    query = rng.standard_normal(16)
    embeddings = rng.standard_normal((len(items), 16)) + 0.8 * query
    # The 6th best item takes over the embedding of the 3rd best, so both stay in the top 6 with tied scores.
    first_order = np.argsort(-cosine_similarity(query[None, :], embeddings)[0], kind="stable")
    tie_source, tie_copy = int(first_order[2]), int(first_order[5])
    embeddings[tie_copy] = embeddings[tie_source]
    # One call per item: a matrix product may sum identical rows in different orders and break the tie.
    scores = np.array([cosine_similarity(query[None, :], row[None, :])[0, 0] for row in embeddings])
    if scores[tie_copy] != scores[tie_source]:
        raise RuntimeError(f"the tied items scored {scores[tie_source]!r} and {scores[tie_copy]!r}, expected equal scores")

    # Descending score, equal scores by ascending id.
    order = sorted(range(len(items)), key=lambda i: (-scores[i], items[i]["id"]))[:6]
    results = [{**items[i], "rank": rank + 1, "score": float(scores[i])} for rank, i in enumerate(order)]
    bundle = {
        "version": 1,
        "title": "Report to X-ray, ECG and report retrieval",
        "query": {"modality": "report", "text": query_text},
        "metric": "cosine similarity",
        "tieRule": "equal scores are ordered by ascending id",
        "results": results,
    }
    expected = {
        "ids": [items[i]["id"] for i in order],
        "scores": [float(scores[i]) for i in order],
        "tiedIds": sorted([items[tie_source]["id"], items[tie_copy]["id"]]),
        "queryText": query_text,
    }
    return bundle, expected


HOSTILE_TEXT = [" <img src=x onerror=alert(1)>", " <script>alert(2)</script>", " &amp; <b>bold</b>"]


def build_hostile(explanation: dict, retrieval: dict) -> tuple:
    hostile_explanation = json.loads(json.dumps(explanation))
    report = hostile_explanation["report"]
    report["tokens"] = report["tokens"][:4] + HOSTILE_TEXT
    report["relevance"] = report["relevance"][:4] + [0.5, 0.9, 0.1]
    del report["relevanceByClass"]
    hostile_explanation["xray"].pop("relevanceByToken")
    hostile_explanation["ecg"].pop("relevanceByToken")
    hostile_explanation["title"] = "<img src=x onerror=alert(5)> title"

    hostile_retrieval = json.loads(json.dumps(retrieval))
    hostile_retrieval["query"]["text"] = "<script>alert(3)</script> query"
    hostile_retrieval["tieRule"] = "<img src=x onerror=alert(6)>"
    for result in hostile_retrieval["results"]:
        result["label"] = "<img src=x onerror=alert(4)>.png"
        if "reportExcerpt" in result:
            result["reportExcerpt"] = "<script>alert(7)</script><img src=x onerror=alert(8)>"
    return hostile_explanation, hostile_retrieval


def write_json(name: str, value: dict) -> None:
    path = OUT / name
    path.write_text(json.dumps(value, separators=(",", ":")) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/real"), help="folder of the real sample data")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20241021)

    explanation, explanation_expected = build_explanation(args.data, rng)
    retrieval, retrieval_expected = build_retrieval(args.data, rng)
    hostile_explanation, hostile_retrieval = build_hostile(explanation, retrieval)
    write_json("explanation.json", explanation)
    write_json("retrieval.json", retrieval)
    write_json("hostile-explanation.json", hostile_explanation)
    write_json("hostile-retrieval.json", hostile_retrieval)
    write_json("expected.json", {"explanation": explanation_expected, "retrieval": retrieval_expected, "hostileText": HOSTILE_TEXT})


if __name__ == "__main__":
    main()

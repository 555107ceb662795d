"""Copy the openly licensed sample data the product ships into data/samples/.

Run once by a maintainer who has the team's shared sample folder
(`python scripts/samples/import_shared_samples.py SHARED_REAL_DIR`). It copies
files byte for byte, except the Hannover radiographs, which it shrinks to
320 px wide with Pillow (Lanczos) to keep the repository small; CC BY 3.0
allows that change and ATTRIBUTION.md states it. Items under a non-commercial
or no-derivatives licence are left out.
"""
import csv
import hashlib
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "data" / "samples"
HANNOVER_WIDTH = 320


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def main(shared: Path) -> None:
    if TARGET.exists():
        shutil.rmtree(TARGET)

    # PTB-XL at 100 Hz: every record whose waveform the shared folder holds.
    ptbxl = shared / "ecg" / "ptbxl"
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        copy(ptbxl / name, TARGET / "ptbxl" / name)
    records = sorted((ptbxl / "records100").rglob("*_lr.*"))
    for record_file in records:
        copy(record_file, TARGET / "ptbxl" / record_file.relative_to(ptbxl))

    # NIH ChestX-ray14: the 256 px copies and the label rows for them.
    nih = shared / "cxr" / "nih"
    images = sorted((nih / "images_256").glob("*.png"))
    for image in images:
        copy(image, TARGET / "nih" / "images" / image.name)
    kept = {image.name for image in images}
    with open(nih / "Data_Entry_2017_v2020_excerpt.csv", newline="") as handle:
        lines = handle.read().splitlines()
    rows = [lines[0]] + [line for line in lines[1:] if line.split(",", 1)[0] in kept]
    (TARGET / "nih" / "Data_Entry_2017_v2020_excerpt.csv").write_text("\n".join(rows) + "\n")

    # Hannover COVID-19 radiographs, shrunk, with their metadata rows.
    hannover = shared / "cxr" / "hannover"
    pngs = sorted((hannover / "png").glob("*.png"))
    for png in pngs:
        with Image.open(png) as image:
            height = round(image.height * HANNOVER_WIDTH / image.width)
            small = image.convert("L").resize((HANNOVER_WIDTH, height), Image.Resampling.LANCZOS)
            out = TARGET / "hannover" / "png" / png.name
            out.parent.mkdir(parents=True, exist_ok=True)
            small.save(out, optimize=True)
    copy(hannover / "data.csv", TARGET / "hannover" / "data.csv")

    with open(TARGET / "MANIFEST.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "bytes", "sha256"])
        for path in sorted(p for p in TARGET.rglob("*") if p.is_file() and p.name != "MANIFEST.csv"):
            writer.writerow([path.relative_to(TARGET).as_posix(), path.stat().st_size, sha256(path)])
    print(f"{len(records) // 2} PTB-XL records, {len(images)} NIH images, {len(pngs)} Hannover images -> {TARGET}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: import_shared_samples.py SHARED_REAL_DIR")
    main(Path(sys.argv[1]))

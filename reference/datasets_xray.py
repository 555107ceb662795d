"""Writes the X-ray fixtures under test/fixtures/datasets/xray/ with the oracles.

Oracles: Pillow 13 (decoding, grey conversion, bilinear resize), scikit-image
0.26 (`exposure.equalize_adapthist`, `util.img_as_ubyte`) and pydicom 3
(DICOM writing, `pixel_array`, modality and VOI LUTs).

The chain the TypeScript code must reproduce, per image:
  decode -> grey (Pillow convert('L') for colour) -> resize 224 x 224 bilinear
  (mode 'L' for 8-bit, mode 'F' for 16-bit and DICOM) -> divide by the maximum
  (float64) -> equalize_adapthist (defaults) -> img_as_ubyte.

Run from the repository root: .venv/bin/python reference/datasets_xray.py
"""

import hashlib
import json
import os

import numpy as np
import pandas as pd
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid
from skimage.exposure import equalize_adapthist
from skimage.util import img_as_ubyte

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'datasets', 'xray')
REAL = os.path.join(OUT, 'real')
GENERATED = os.path.join(OUT, 'generated')
SIZE = 224


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def clahe_u8(resized: np.ndarray) -> np.ndarray:
    unit = resized.astype(np.float64) / resized.astype(np.float64).max()
    return img_as_ubyte(equalize_adapthist(unit))


def pillow_gray(path: str) -> Image.Image:
    image = Image.open(path)
    image.load()
    if image.mode in ('L', 'I;16'):
        return image
    return image.convert('L')


def eight_bit_case(name: str) -> dict:
    path = os.path.join(REAL, name)
    gray = pillow_gray(path)
    assert gray.mode == 'L', (name, gray.mode)
    decoded = np.asarray(gray)
    resized = np.asarray(gray.resize((SIZE, SIZE), Image.BILINEAR))
    clahe = clahe_u8(resized)
    clahe.tofile(os.path.join(OUT, 'expected', name + '.clahe.u8'))
    return {
        'file': 'real/' + name,
        'width': gray.width,
        'height': gray.height,
        'decodedSha256': sha256(decoded.tobytes()),
        'decodedSum': int(decoded.astype(np.int64).sum()),
        'resizedSha256': sha256(resized.tobytes()),
        'clahe': 'expected/' + name + '.clahe.u8',
    }


def float_case(file: str, values: np.ndarray, extra: dict) -> dict:
    resized = np.asarray(Image.fromarray(values.astype(np.float32), 'F').resize((SIZE, SIZE), Image.BILINEAR))
    clahe = clahe_u8(resized)
    base = os.path.basename(file)
    clahe.tofile(os.path.join(OUT, 'expected', base + '.clahe.u8'))
    resized.astype('<f4').tofile(os.path.join(OUT, 'expected', base + '.resized.f32'))
    return {'file': file, 'clahe': 'expected/' + base + '.clahe.u8', 'resized': 'expected/' + base + '.resized.f32', **extra}


def display_values(ds: Dataset) -> np.ndarray:
    """Maps a grey DICOM image to [0, 1] through pydicom's LUTs, inverting MONOCHROME1."""
    stored = ds.pixel_array
    modality = apply_modality_lut(stored, ds).astype(np.float64)
    bits = ds.BitsStored
    if ds.PixelRepresentation == 0:
        low, high = 0, 2 ** bits - 1
    else:
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    slope = float(ds.get('RescaleSlope', 1))
    intercept = float(ds.get('RescaleIntercept', 0))
    low, high = sorted((low * slope + intercept, high * slope + intercept))
    if 'WindowCenter' in ds and 'WindowWidth' in ds:
        windowed = apply_voi_lut(modality, ds).astype(np.float64)
        # apply_voi_lut outputs the window over the rescaled range of the stored bits.
        display = (windowed - low) / (high - low)
    else:
        display = (modality - low) / (high - low)
    if ds.PhotometricInterpretation == 'MONOCHROME1':
        display = 1 - display
    return display


def write_dicom(name: str, pixels: np.ndarray, *, bits_stored: int, signed: bool, photometric: str,
                implicit: bool, preamble: bool, extra=None, with_pixels=True, transfer_syntax=None) -> str:
    ds = Dataset()
    ds.PatientName = 'Fixture^Synthetic'
    ds.Modality = 'CR'
    ds.SOPClassUID = '1.2.840.10008.5.1.4.1.1.1'
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[name])
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    if with_pixels:
        if transfer_syntax == JPEGBaseline8Bit:
            ds.PixelData = encapsulate([b'\xff\xd8\xff\xd9'])
        else:
            ds.PixelData = pixels.astype(pixels.dtype.newbyteorder('<')).tobytes()
    syntax = transfer_syntax or (ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)
    path = os.path.join(GENERATED, name)
    if preamble:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = syntax
        ds.file_meta = meta
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, implicit_vr=implicit, little_endian=True, enforce_file_format=False)
    return path


def dicom_cases() -> list:
    cases = []

    def add(name, pixels, **kwargs):
        path = write_dicom(name, pixels, **kwargs)
        ds = pydicom.dcmread(path, force=True)
        if 'TransferSyntaxUID' not in getattr(ds, 'file_meta', {}):
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if kwargs['implicit'] else ExplicitVRLittleEndian
        display = display_values(ds)
        cases.append({'file': 'generated/' + name, 'rows': int(ds.Rows), 'columns': int(ds.Columns),
                      'display': [round(float(v), 9) for v in display.ravel()]})

    # The stated case: MONOCHROME1, 12 bits stored, no window, no preamble, implicit VR.
    add('mono1_12bit_implicit.dcm', np.array([[0, 4095], [1000, 3000]], dtype=np.uint16),
        bits_stored=12, signed=False, photometric='MONOCHROME1', implicit=True, preamble=False)

    # Signed 12-bit pixels with rescale and a window, explicit VR, Part 10 file, and a
    # sequence of undefined length before the pixel data.
    signed = np.array([[-2048, -1000, 0], [100, 1500, 2047], [-1, 1, 300], [700, -700, 50]], dtype=np.int16)
    item = Dataset()
    item.ReferencedSOPClassUID = '1.2.840.10008.5.1.4.1.1.1'
    item.ReferencedSOPInstanceUID = generate_uid(entropy_srcs=['item'])
    sequence = Sequence([item])
    add('mono2_signed_window_explicit.dcm', signed, bits_stored=12, signed=True, photometric='MONOCHROME2',
        implicit=False, preamble=True,
        extra={'RescaleSlope': '2', 'RescaleIntercept': '-100', 'WindowCenter': '300', 'WindowWidth': '2000',
               'ReferencedImageSequence': sequence})
    ds = pydicom.dcmread(os.path.join(GENERATED, 'mono2_signed_window_explicit.dcm'))
    ds['ReferencedImageSequence'].is_undefined_length = True
    ds.save_as(os.path.join(GENERATED, 'mono2_signed_window_explicit.dcm'), enforce_file_format=True)

    # 8-bit unsigned, MONOCHROME1 with a window, implicit VR Part 10 file.
    eight = np.array([[0, 50, 100, 150], [200, 250, 255, 128]], dtype=np.uint8)
    add('mono1_8bit_window_implicit.dcm', eight, bits_stored=8, signed=False, photometric='MONOCHROME1',
        implicit=True, preamble=True, extra={'WindowCenter': '128', 'WindowWidth': '100'})

    # Errors: no pixel data, and a JPEG transfer syntax.
    write_dicom('no_pixel_data.dcm', np.zeros((2, 2), dtype=np.uint16), bits_stored=12, signed=False,
                photometric='MONOCHROME2', implicit=False, preamble=True, with_pixels=False)
    write_dicom('jpeg_baseline.dcm', np.zeros((2, 2), dtype=np.uint8), bits_stored=8, signed=False,
                photometric='MONOCHROME2', implicit=False, preamble=True, transfer_syntax=JPEGBaseline8Bit)
    return cases


def main() -> None:
    os.makedirs(os.path.join(OUT, 'expected'), exist_ok=True)
    os.makedirs(GENERATED, exist_ok=True)

    eight_bit = [eight_bit_case(name) for name in (
        'nih_00000001_002.png', 'hannover_4d98e1de.png', 'covid_41182_2020_203_Fig5_HTML.jpg',
        'covid_40779_2020_233_Fig2_HTML-a.png', 'covid_7afaaccc.jpg')]

    # 16-bit PNGs written by Pillow (samples big-endian in the file).
    tiny = np.array([[0, 65535], [40000, 20000]], dtype=np.uint16)
    Image.fromarray(tiny).save(os.path.join(GENERATED, 'tiny16.png'))
    nih = np.asarray(Image.open(os.path.join(REAL, 'nih_00000001_002.png'))).astype(np.uint32)
    rows, cols = np.indices(nih.shape)
    wide = (nih * 257 + (rows * cols) % 257).astype(np.uint16)
    Image.fromarray(wide).save(os.path.join(GENERATED, 'nih16.png'))
    reread = np.asarray(Image.open(os.path.join(GENERATED, 'nih16.png')))
    assert reread.dtype == np.uint16 and np.array_equal(reread, wide)
    sixteen = float_case('generated/nih16.png', reread, {
        'width': int(reread.shape[1]), 'height': int(reread.shape[0]),
        'decodedSha256': sha256(reread.astype('<u2').tobytes())})

    real_dicom_path = os.path.join(REAL, 'CR-MONO1-10-chest.dcm')
    real_dicom = pydicom.dcmread(real_dicom_path, force=True)
    real_dicom.file_meta = FileMetaDataset()
    real_dicom.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    display = display_values(real_dicom)
    step = 37
    grid = display[::step, ::step]
    dicom_real = float_case('real/CR-MONO1-10-chest.dcm', display, {
        'width': int(real_dicom.Columns), 'height': int(real_dicom.Rows), 'gridStep': step,
        'displayGrid': [round(float(v), 9) for v in grid.ravel()],
        'displayMean': float(display.mean())})

    # The CheXpert-labeler example table as pandas reads it (blank cells become None).
    labeled = pd.read_csv(os.path.join(OUT, 'chexpert_labeled_reports.csv'), dtype=str, keep_default_na=False)
    chexpert_table = {'header': list(labeled.columns), 'rows': labeled.values.tolist()}

    # CLAHE on odd shapes and options, from seeded random images (values in [0, 1], float64).
    rng = np.random.default_rng(20241021)
    clahe_cases = []
    for index, (shape, kwargs) in enumerate([
        ((37, 53), {}),
        ((8, 8), {}),
        ((300, 17), {}),
        ((64, 48), {'kernel_size': (10, 7), 'clip_limit': 0.05, 'nbins': 128}),
        ((50, 50), {'clip_limit': 0}),
    ]):
        values = rng.random(shape) ** 2
        values[0, 0] = 1.0
        values.astype('<f8').tofile(os.path.join(OUT, 'expected', f'clahe_case{index}.in.f64'))
        img_as_ubyte(equalize_adapthist(values, **kwargs)).tofile(os.path.join(OUT, 'expected', f'clahe_case{index}.out.u8'))
        options = {'kernelSize': list(kwargs['kernel_size'])} if 'kernel_size' in kwargs else {}
        for key, name in (('clip_limit', 'clipLimit'), ('nbins', 'nbins')):
            if key in kwargs:
                options[name] = kwargs[key]
        clahe_cases.append({'height': shape[0], 'width': shape[1], 'options': options,
                            'input': f'expected/clahe_case{index}.in.f64', 'output': f'expected/clahe_case{index}.out.u8'})

    expected = {
        'claheCases': clahe_cases,
        'chexpertTable': chexpert_table,
        'eightBit': eight_bit,
        'sixteenBit': sixteen,
        'dicomReal': dicom_real,
        'dicomCases': dicom_cases(),
        'versions': {'pillow': Image.__version__, 'pydicom': pydicom.__version__,
                     'skimage': __import__('skimage').__version__, 'numpy': np.__version__},
    }
    with open(os.path.join(OUT, 'expected.json'), 'w') as handle:
        json.dump(expected, handle, indent=1)
        handle.write('\n')


if __name__ == '__main__':
    main()

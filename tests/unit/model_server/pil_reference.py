#!/usr/bin/python3
"""Reference images and answers for PilParityTest (tests/unit/model_server/pil_parity_test.cc).

Writes a set of images (shrunk, enlarged, odd sizes, every PNG and JPEG mode Pillow opens) into
OUT_DIR, runs each through Pillow and torchvision exactly as TorchServe's image_classifier does
(Image.open, transforms.Resize, CenterCrop, ToTensor, Normalize), with a convert("RGB") or
convert("L") first, and writes what each step gives:
  NAME.png / NAME.jpg   the encoded image, as sent to sg-serve
  NAME.decoded          Image.open(...).convert(MODE) as bytes (HWC)
  NAME.resized          after Resize(resize, interpolation) (HWC bytes; the decoded image when
                        resize is 0 or the size stays)
  NAME.tensor           after CenterCrop, ToTensor and Normalize (CHW float32, little endian)
and one JSON line per case on stdout: name, file, channels, resize, crop, mean, std, filter,
the sizes, and what TorchServe's own handler (no convert) does with the file.

Usage: /usr/bin/python3 pil_reference.py OUT_DIR
Exit status 77 (and a line saying why) when python3-pil is not installed.
"""
import io
import json
import os
import struct
import sys
import zlib

try:
    from PIL import Image
except ImportError:
    print("python3-pil is not installed (apt-get install python3-pil)", file=sys.stderr)
    sys.exit(77)

import numpy as np
import torch
from torchvision import transforms
from torchvision.transforms import InterpolationMode

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
GRAY = ([0.5], [0.25])


def picture(width, height, bands, seed):
    """A gradient with texture and noise: smooth areas, edges and every rounding case."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for b in range(bands):
        v = (x * (3 + b) + y * (5 - b)) * 255.0 / (width * 3 + height * 5)
        v += 40 * np.sin(x / (3.0 + b) + y / 7.0)
        v += rng.normal(0, 12, size=(height, width))
        out.append(np.clip(v, 0, 255))
    return np.stack(out, axis=-1).astype(np.uint8)


def pil_image(width, height, mode, seed=1):
    bands = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    a = picture(width, height, bands, seed)
    return Image.fromarray(a[:, :, 0] if bands == 1 else a, mode)


def encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_raw(width, height, color_type, depth, rows, chunks=()):
    """A PNG written by hand (modes Pillow cannot save: 16-bit RGB, 2-bit gray, ...)."""
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    data = zlib.compress(b"".join(b"\0" + r for r in rows))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) +
            b"".join(png_chunk(k, v) for k, v in chunks) + png_chunk(b"IDAT", data) +
            png_chunk(b"IEND", b""))


def samples16(width, height, bands, seed):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width]
    planes = [(x * 977 + y * 613 + b * 20000) % 65536 for b in range(bands)]
    a = np.stack(planes, axis=-1) + rng.randint(0, 256, size=(height, width, bands))
    # Some values below 256, where Pillow's mode I keeps the value instead of clipping it.
    a[::3, ::2, :] = rng.randint(0, 256, size=a[::3, ::2, :].shape)
    return np.clip(a, 0, 65535).astype(">u2")


def png16(width, height, color_type, bands, seed):
    a = samples16(width, height, bands, seed)
    return png_raw(width, height, color_type, 16, [a[y].tobytes() for y in range(height)])


def gray_low_depth(width, height, depth, seed, trns=False):
    rng = np.random.RandomState(seed)
    v = rng.randint(0, 1 << depth, size=(height, width))
    rows = []
    per_byte = 8 // depth
    for y in range(height):
        row = bytearray()
        for i in range(0, width, per_byte):
            byte = 0
            for j in range(per_byte):
                byte <<= depth
                if i + j < width:
                    byte |= int(v[y, i + j])
            row.append(byte)
        rows.append(bytes(row))
    chunks = [(b"tRNS", struct.pack(">H", 1))] if trns else []
    return png_raw(width, height, 0, depth, rows, chunks)


def cases():
    """(name, encoded bytes, extension, channels, resize, crop, (mean, std), filter)."""
    rgb = lambda w, h, s=1: pil_image(w, h, "RGB", s)
    bilinear = "bilinear"
    yield "kitten_like_720_jpeg", encode(rgb(720, 720), "JPEG", quality=90), "jpg", 3, 256, 224, IMAGENET, bilinear
    yield "photo_640x480_png", encode(rgb(640, 480, 2), "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "tall_480x640_jpeg_444", encode(rgb(480, 640, 3), "JPEG", quality=95, subsampling=0), "jpg", 3, 256, 224, IMAGENET, bilinear
    yield "enlarge_100x75_png", encode(rgb(100, 75, 4), "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "enlarge_17x23_jpeg_422", encode(rgb(17, 23, 5), "JPEG", quality=85, subsampling=1), "jpg", 3, 256, 224, IMAGENET, bilinear
    yield "odd_257x311_png", encode(rgb(257, 311, 6), "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "thin_5x37_png", encode(rgb(5, 37, 7), "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "wide_90x7_png", encode(rgb(90, 7, 8), "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "same_size_224_png", encode(rgb(224, 224, 9), "PNG"), "png", 3, 224, 224, IMAGENET, bilinear
    yield "short_side_256_300x256_png", encode(rgb(300, 256, 10), "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "almost_255x260_png", encode(rgb(255, 260, 11), "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "shrink_1000x333_jpeg", encode(rgb(1000, 333, 12), "JPEG", quality=80), "jpg", 3, 256, 224, IMAGENET, bilinear
    yield "crop_larger_200x150_png", encode(rgb(200, 150, 13), "PNG"), "png", 3, 100, 128, IMAGENET, bilinear
    yield "progressive_400x300_jpeg", encode(rgb(400, 300, 14), "JPEG", quality=90, progressive=True), "jpg", 3, 256, 224, IMAGENET, bilinear
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display; Pillow's open leaves it
    yield "exif_orientation_6_320x200_jpeg", encode(rgb(320, 200, 15), "JPEG", exif=exif.tobytes()), "jpg", 3, 256, 224, IMAGENET, bilinear
    cmyk = rgb(300, 280, 16).convert("CMYK")
    yield "cmyk_300x280_jpeg", encode(cmyk, "JPEG", quality=92), "jpg", 3, 256, 224, IMAGENET, bilinear
    yield "cmyk_to_gray_jpeg", encode(cmyk, "JPEG", quality=92), "jpg", 1, 256, 224, GRAY, bilinear
    gray = pil_image(300, 200, "L", 17)
    yield "gray_300x200_jpeg", encode(gray, "JPEG"), "jpg", 3, 256, 224, IMAGENET, bilinear
    yield "gray_300x200_png_as_gray", encode(gray, "PNG"), "png", 1, 256, 224, GRAY, bilinear
    yield "rgb_jpeg_as_gray", encode(rgb(330, 270, 18), "JPEG"), "jpg", 1, 256, 224, GRAY, bilinear
    yield "rgb_png_as_gray", encode(rgb(270, 330, 19), "PNG"), "png", 1, 28, 28, GRAY, bilinear
    yield "rgba_260x300_png", encode(pil_image(260, 300, "RGBA", 20), "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "rgba_as_gray_png", encode(pil_image(260, 300, "RGBA", 21), "PNG"), "png", 1, 256, 224, GRAY, bilinear
    yield "la_280x260_png", encode(pil_image(280, 260, "LA", 22), "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "gray16_300x260_png", png16(300, 260, 0, 1, 23), "png", 3, 256, 224, IMAGENET, bilinear
    yield "gray16_as_gray_png", png16(260, 300, 0, 1, 24), "png", 1, 256, 224, GRAY, bilinear
    yield "rgb16_270x290_png", png16(270, 290, 2, 3, 25), "png", 3, 256, 224, IMAGENET, bilinear
    yield "rgba16_290x270_png", png16(290, 270, 6, 4, 26), "png", 3, 256, 224, IMAGENET, bilinear
    yield "la16_250x300_png", png16(250, 300, 4, 2, 27), "png", 3, 256, 224, IMAGENET, bilinear
    palette = rgb(310, 270, 28).convert("P", palette=Image.Palette.ADAPTIVE, colors=200)
    yield "palette_310x270_png", encode(palette, "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "palette_as_gray_png", encode(palette, "PNG"), "png", 1, 256, 224, GRAY, bilinear
    yield "palette_transparent_png", encode(palette, "PNG", transparency=bytes(range(0, 200))), "png", 3, 256, 224, IMAGENET, bilinear
    palette16 = rgb(270, 310, 29).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    yield "palette_4bit_png", encode(palette16, "PNG", bits=4), "png", 3, 256, 224, IMAGENET, bilinear
    yield "bilevel_300x270_png", encode(gray.convert("1"), "PNG"), "png", 3, 256, 224, IMAGENET, bilinear
    yield "gray_2bit_png", gray_low_depth(260, 290, 2, 30), "png", 3, 256, 224, IMAGENET, bilinear
    yield "gray_4bit_transparent_png", gray_low_depth(290, 260, 4, 31, trns=True), "png", 1, 256, 224, GRAY, bilinear
    yield "bicubic_shrink_720_jpeg", encode(rgb(720, 540, 32), "JPEG"), "jpg", 3, 256, 224, IMAGENET, "bicubic"
    yield "bicubic_enlarge_60x45_png", encode(rgb(60, 45, 33), "PNG"), "png", 3, 256, 224, IMAGENET, "bicubic"
    yield "bicubic_gray_png", encode(gray, "PNG"), "png", 1, 150, 128, GRAY, "bicubic"


def torchserve_outcome(data, mean, std):
    """What TorchServe's image_classifier preprocessing (no convert) does with the bytes."""
    image_processing = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize(mean=mean, std=std)])
    try:
        image = Image.open(io.BytesIO(data))
        mode = image.mode
        image_processing(image)
        return f"{mode}: ok"
    except Exception as e:  # what the handler would answer with an error
        return f"{mode}: fails ({type(e).__name__}: {str(e).splitlines()[0][:80]})"


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data, ext, channels, resize, crop, (mean, std), filter_name in cases():
        path = os.path.join(out, f"{name}.{ext}")
        with open(path, "wb") as f:
            f.write(data)
        mode = "RGB" if channels == 3 else "L"
        decoded = Image.open(path).convert(mode)
        interpolation = {"bilinear": InterpolationMode.BILINEAR,
                         "bicubic": InterpolationMode.BICUBIC}[filter_name]
        resized = transforms.Resize(resize, interpolation=interpolation)(decoded) if resize else decoded
        tensor = transforms.Compose([
            transforms.CenterCrop(crop), transforms.ToTensor(),
            transforms.Normalize(mean=mean, std=std)])(resized)
        for suffix, array in (("decoded", np.asarray(decoded)), ("resized", np.asarray(resized)),
                              ("tensor", tensor.numpy().astype("<f4"))):
            with open(os.path.join(out, f"{name}.{suffix}"), "wb") as f:
                f.write(np.ascontiguousarray(array).tobytes())
        print(json.dumps({
            "name": name, "file": os.path.basename(path), "channels": channels,
            "resize": resize, "crop": crop, "mean": mean, "std": std, "filter": filter_name,
            "decoded": list(decoded.size), "resized": list(resized.size),
            "tensor": list(tensor.shape),
            "torchserve": torchserve_outcome(data, *IMAGENET) if channels == 3 else ""}))


if __name__ == "__main__":
    main()

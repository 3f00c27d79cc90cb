#!/usr/bin/python3
"""Expected values for ImageTest.PreprocessMatchesTorchvision (tests/unit/model_server/handler_test.cc).

Runs torchvision's own transforms (Debian's python3-torchvision 0.14 and python3-pil 9.4) on
small PIL images, as TorchServe's image_classifier does: Resize(int) (bilinear, Pillow's
resampling), CenterCrop, ToTensor and Normalize. Prints the test's calls, one per case (input
image, resize, crop, mean, std, expected shape and values), as C++, pasted into the test as they
are: the test never computes its expectations with the code under test, and needs no Python
(PilParityTest compares with Pillow at test time, over many more images).
The cases pin the geometry: the shorter-side rule, the crop offsets (Python's round, half to
even) and the zero padding of a crop larger than the image.

Usage: /usr/bin/python3 tests/unit/model_server/preprocess_expected.py
"""
import re

import torch
import torchvision.transforms.functional as F
from PIL import Image

# name, (height, width, channels), pixels (HWC, row-major), resize (0: none), crop, mean, std
CASES = [
    # Wider than tall: height 3 -> 4, width int(4 * 6 / 3) = 8; crop 4 takes columns 2..5.
    ("wide", (3, 6, 1),
     [0, 40, 80, 120, 160, 200, 10, 50, 90, 130, 170, 210, 20, 60, 100, 140, 180, 255],
     4, 4, [0.0], [1.0]),
    # The same, crop 3: offsets round((8 - 3) / 2) = round(2.5) = 2 and round(0.5) = 0.
    ("wide_odd_crop", (3, 6, 1),
     [0, 40, 80, 120, 160, 200, 10, 50, 90, 130, 170, 210, 20, 60, 100, 140, 180, 255],
     4, 3, [0.0], [1.0]),
    # Taller than wide: width 2 -> 4, height int(4 * 5 / 2) = 10; crop 4 takes rows 3..6.
    ("tall", (5, 2, 1), [0, 48, 96, 144, 192, 240, 32, 80, 128, 176], 4, 4, [0.0], [1.0]),
    # Odd aspect ratio, RGB, ImageNet normalisation: 3x7 -> 5 x int(5 * 7 / 3) = 5x11, crop 4
    # (offsets round(3.5) = 4 and round(0.5) = 0).
    ("rgb", (3, 7, 3),
     [(11 * i + 46 * c) % 256 for i in range(21) for c in range(3)],
     5, 4, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    # No resize, crop larger than the image (3 wide, 2 high -> 5x5): zero padding, the image at
    # left (5 - 3) // 2 = 1, top (5 - 2) // 2 = 1.
    ("padded", (2, 3, 1), [10, 20, 30, 40, 50, 60], 0, 5, [0.5], [0.5]),
]


def run(shape, pixels, resize, crop, mean, std):
    h, w, c = shape
    img = Image.frombytes("L" if c == 1 else "RGB", (w, h), bytes(pixels))
    if resize:
        img = F.resize(img, resize)
    if crop:
        img = F.center_crop(img, crop)
    out = F.normalize(F.to_tensor(img), mean, std)
    return list(out.shape), out.flatten().tolist()


def floats(values):
    return "{" + ", ".join(f"{v:.9g}".replace("inf", "INFINITY") + ("" if re.search(r"[.e]", f"{v:.9g}") else ".0") + "f" for v in values) + "}"


for name, shape, pixels, resize, crop, mean, std in CASES:
    out_shape, values = run(shape, pixels, resize, crop, mean, std)
    h, w, c = shape
    print(f"  ExpectLikeTorchvision(\"{name}\", {{{w}, {h}, {c}, {{{', '.join(map(str, pixels))}}}}}, "
          f"{resize}, {crop}, {floats(mean)}, {floats(std)}, "
          f"{{{', '.join(map(str, out_shape))}}}, {floats(values)});")

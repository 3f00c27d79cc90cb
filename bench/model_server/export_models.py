#!/usr/bin/python3
"""Exports torchvision's resnet18 and mobilenet_v3_small (random weights: nothing is
downloaded; speed does not depend on the values) to TorchScript at 224x224, and writes a
224x224 PNG test input, plus a 640x480 camera-sized picture as JPEG and PNG for
sg-bench-preprocess. Usage: /usr/bin/python3 export_models.py OUT_DIR
"""
import os
import sys

import torch
import torchvision

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
for name in ("resnet18", "mobilenet_v3_small"):
    path = os.path.join(out, name + ".pt")
    if os.path.exists(path):
        continue
    model = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():
        torch.jit.trace(model, torch.zeros(1, 3, 224, 224)).save(path)
image = os.path.join(out, "input.png")
if not os.path.exists(image):
    from PIL import Image
    pixels = bytes(((x * 7 + y * 13 + c * 50) % 256) for y in range(224) for x in range(224)
                   for c in range(3))
    Image.frombytes("RGB", (224, 224), pixels).save(image)
# A smooth synthetic scene at a camera-like size (a blurred Mandelbrot set): the resize and the
# decoders' work on a picture that is not 224x224 already.
if not os.path.exists(os.path.join(out, "photo640.jpg")):
    from PIL import Image, ImageFilter
    picture = Image.effect_mandelbrot((640, 480), (-2.0, -1.2, 1.0, 1.2), 100).convert("RGB")
    picture = picture.filter(ImageFilter.GaussianBlur(1))
    picture.save(os.path.join(out, "photo640.jpg"), quality=90)
    picture.save(os.path.join(out, "photo640.png"))

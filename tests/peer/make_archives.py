#!/usr/bin/python3
"""Writes the model store the peer suite registers from (tests/peer/README.md).

TorchServe's management collection registers archives by file name (environment.json:
mar_path_squeezenet1_1 = squeezenet1_1.mar, ...) and checks status codes only, so each name is
a TorchServe archive (.mar: a zip with MAR-INF/MANIFEST.json as torch-model-archiver writes it)
holding one stand-in model: torchvision's squeezenet1_1 architecture with seeded random weights
(nothing is downloaded; pretrained weights would need the network), traced to TorchScript, with
the image_classifier handler and TorchServe's ImageNet index_to_name.json.
Usage: make_archives.py OUT_DIR   (Debian's /usr/bin/python3 with python3-torch, -torchvision)
"""
import json
import pathlib
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
LABELS = ROOT / "tests/fixtures/torchserve/index_to_name.json"
# The archive names of TorchServe's environment.json that its management collection registers,
NAMES = ["squeezenet1_1", "mnist", "densenet161", "resnet-18", "resnet-152-batch"]


def main():
    import torch
    import torchvision

    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_1(weights=None).eval()
    traced = torch.jit.trace(model, torch.zeros(1, 3, 224, 224))
    model_file = out / "squeezenet1_1_random.pt"
    traced.save(str(model_file))
    for name in NAMES:
        manifest = {
            "createdOn": "07/12/2026 08:00:00",
            "runtime": "python",
            "model": {
                "modelName": name,
                "serializedFile": "model.pt",
                "handler": "image_classifier",
                "modelVersion": "1.0",
            },
            "archiverVersion": "0.12.0",
        }
        with zipfile.ZipFile(out / f"{name}.mar", "w", zipfile.ZIP_DEFLATED) as mar:
            mar.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest, indent=2))
            mar.write(model_file, "model.pt")
            mar.write(LABELS, "index_to_name.json")
    model_file.unlink()


if __name__ == "__main__":
    main()

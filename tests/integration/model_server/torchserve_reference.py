#!/usr/bin/python3
"""TorchServe's image_classifier on one image, as a reference for sg-serve serving the same
archive (tests/integration/model_server/torchserve_test.cc).

Usage: /usr/bin/python3 torchserve_reference.py OUT_DIR IMAGE LABELS
Writes OUT_DIR/resnet18.pt: torchvision's resnet18 (the issue's example), seeded random weights
(nothing is downloaded; its logits spread over about +-4, so the probabilities are far from
uniform), traced to TorchScript; and OUT_DIR/reference.json: what TorchServe's image_classifier handler answers for
IMAGE (its preprocessing: PIL decode, Resize(256), CenterCrop(224), ToTensor, ImageNet Normalize;
its postprocessing: softmax, top 5, labels from index_to_name.json, [id, name] lists giving the
name), in rank order.
"""
import json
import os
import sys

import torch
import torchvision
from PIL import Image
from torchvision import transforms

out, image_path, labels_path = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
model = torchvision.models.resnet18(weights=None).eval()
with torch.no_grad():
    torch.jit.trace(model, torch.zeros(1, 3, 224, 224)).save(os.path.join(out, "resnet18.pt"))

# examples/image_classifier.py and vision_handler.py of TorchServe (shared/peers/torchserve).
image_processing = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])
with open(image_path, "rb") as f:
    image = Image.open(f)
    batch = torch.stack([image_processing(image)])
model = torch.jit.load(os.path.join(out, "resnet18.pt")).eval()
with torch.no_grad():
    probs, classes = torch.topk(torch.softmax(model(batch), dim=1), 5, dim=1)
with open(labels_path) as f:
    mapping = json.load(f)
rows = []
for p, c in zip(probs[0].tolist(), classes[0].tolist()):
    name = mapping[str(c)]
    rows.append([name[1] if isinstance(name, list) else name, p])
with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump(rows, f)

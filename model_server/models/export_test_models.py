#!/usr/bin/python3
"""Exports the tiny TorchScript models the model server's tests use (a few KB each).

Run with Debian's python3 (python3-torch), from the repository root:
    /usr/bin/python3 model_server/models/export_test_models.py tests/fixtures/models
Weights are random but seeded, so the files are reproducible for a given torch version.
"""
import json
import os
import sys

import torch
from torch import nn


class FashionTiny(nn.Module):
    """1x28x28 grayscale -> 10 logits (the demo's Fashion-MNIST shape)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(x, 1))


class ScorerTiny(nn.Module):
    """3x32x32 RGB -> one score per image."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        x = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return self.fc(x)


class TensorTiny(nn.Module):
    """[4] -> [3]: y = W x + b."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


class Slow(nn.Module):
    """[2] -> [2]; runs x[0] rounds of a 256x256 matmul (about 1 ms each on one core), so tests
    can hold a worker busy for as long as they need (timeouts, killing a worker mid-request).
    Returns x unchanged."""

    def forward(self, x):
        rounds = int(x[0, 0].item())
        m = torch.eye(256)
        acc = torch.ones(256, 256)
        for _ in range(rounds):
            acc = torch.mm(acc, m)
        return x + acc[0, 0] - 1.0


FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot"]


def int8_dynamic(path, x):
    """The saved model's output for x after PyTorch's own dynamic int8 quantisation of its
    Linear layers (what sg-serve's precision int8 must reproduce)."""
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic_jit
    model = quantize_dynamic_jit(torch.jit.load(path).eval(), {"": default_dynamic_qconfig})
    return model(x).flatten().tolist()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/models"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    fashion = FashionTiny()
    # Non-trivial batch-norm statistics, so eval mode differs from training mode.
    fashion.bn.running_mean.uniform_(-0.5, 0.5)
    fashion.bn.running_var.uniform_(0.5, 2.0)
    fashion.eval()
    torch.jit.trace(fashion, torch.zeros(1, 1, 28, 28)).save(os.path.join(out, "fashion_tiny.pt"))
    scorer = ScorerTiny().eval()
    torch.jit.trace(scorer, torch.zeros(1, 3, 32, 32)).save(os.path.join(out, "scorer_tiny.pt"))
    tensor = TensorTiny().eval()
    torch.jit.trace(tensor, torch.zeros(1, 4)).save(os.path.join(out, "tensor_tiny.pt"))
    torch.jit.script(Slow().eval()).save(os.path.join(out, "slow.pt"))
    with open(os.path.join(out, "fashion_index_to_name.json"), "w") as f:
        json.dump({str(i): name for i, name in enumerate(FASHION_LABELS)}, f, indent=1)
        f.write("\n")
    # Reference outputs for tests that check the C++ forward against Python's.
    x = torch.linspace(-1, 1, 4).reshape(1, 4)
    with open(os.path.join(out, "tensor_tiny_reference.json"), "w") as f:
        json.dump({"input": x.flatten().tolist(), "output": tensor(x).flatten().tolist(),
                   "output_int8_dynamic": int8_dynamic(os.path.join(out, "tensor_tiny.pt"), x)},
                  f)
        f.write("\n")


if __name__ == "__main__":
    main()

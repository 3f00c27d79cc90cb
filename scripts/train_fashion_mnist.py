#!/usr/bin/python3
"""Trains the Fashion-MNIST models that shadowgate's demo serves, on CPU, offline.

  /usr/bin/python3 scripts/train_fashion_mnist.py --out models/fashion-mnist

Reads the IDX files installed by Debian's `dataset-fashion-mnist` package (nothing is downloaded)
and trains, with fixed seeds:
  teacher       a CNN playing "the production GPU model";
  student       a small CNN distilled from the teacher with the DIST loss (Huang et al., 2022,
                "Knowledge Distillation from A Stronger Teacher", arXiv:2205.10536):
                  loss = CE(z_s, y) + beta * L_inter + gamma * L_intra
                  L_inter = 1 - mean over the batch of Pearson(softmax(z_s/T)_i, softmax(z_t/T)_i)
                  L_intra = 1 - mean over classes of the same correlation taken down the batch
                  (both multiplied by T^2, as in the authors' code with a temperature);
  student_nokd  the same student architecture trained with plain cross-entropy (the control).
Prints progress, then test accuracy of each, teacher-student top-1 agreement, parameter counts and
single-image CPU latency, and writes TorchScript models (input: float [N,1,28,28] normalised with
mean 0.2860 / std 0.3530; output: logits [N,10]), index_to_name.json and MODEL_CARD.md to --out.
Must run under Debian's /usr/bin/python3 (python3-torch, python3-numpy).
"""
import argparse
import datetime
import gzip
import json
import os
import platform
import random
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    """Returns the IDX file's array (ubyte data only, which is all Fashion-MNIST uses)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(data_dir, prefix):
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - MEAN) / STD, torch.from_numpy(labels.astype(np.int64))


class Teacher(nn.Module):
    """Two 5x5 conv blocks and a 128-unit hidden layer: ~0.45M parameters."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 128),
                                        nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class Student(nn.Module):
    """Two narrow 3x3 conv blocks and a linear head: ~9k parameters."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 7 * 7, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def pearson_rows(a, b, eps=1e-8):
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_loss(z_s, z_t, temperature, beta, gamma):
    """DIST's KD term: beta * inter-class + gamma * intra-class relation loss."""
    y_s = F.softmax(z_s / temperature, dim=1)
    y_t = F.softmax(z_t / temperature, dim=1)
    inter = 1.0 - pearson_rows(y_s, y_t).mean()          # per sample, across classes
    intra = 1.0 - pearson_rows(y_s.t(), y_t.t()).mean()  # per class, across the batch
    return temperature ** 2 * (beta * inter + gamma * intra)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def predict_logits(model, x, batch=1000):
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def train(name, model, x, y, epochs, batch_size, lr, seed, teacher_logits=None, kd=None):
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        start, seen, correct, loss_sum = time.time(), 0, 0, 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if teacher_logits is not None:
                loss = loss + dist_loss(logits, teacher_logits[idx], **kd)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            if (i // batch_size) % 100 == 0:
                print(f"  [{name}] epoch {epoch + 1}/{epochs} {seen:5d}/{len(x)} "
                      f"loss {loss_sum / seen:.4f} train-acc {correct / seen:.4f} "
                      f"({time.time() - start:.0f}s)", flush=True)
        print(f"  [{name}] epoch {epoch + 1}/{epochs} done: loss {loss_sum / seen:.4f} "
              f"train-acc {correct / seen:.4f} in {time.time() - start:.1f}s", flush=True)
    model.eval()
    return model


def single_image_latency_ms(scripted, x, runs):
    """Median and p99 wall time of one [1,1,28,28] forward on one thread, after a warm-up."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    times = []
    with torch.no_grad():
        for i in range(20):
            scripted(x[i:i + 1])
        for i in range(runs):
            sample = x[i % len(x):i % len(x) + 1]
            start = time.perf_counter()
            scripted(sample)
            times.append((time.perf_counter() - start) * 1e3)
    torch.set_num_threads(threads)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--out", default="models/fashion-mnist")
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--student-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-runs", type=int, default=500)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    wall_start = time.time()

    print(f"loading Fashion-MNIST from {args.data}", flush=True)
    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")
    print(f"  train {tuple(x_train.shape)}, test {tuple(x_test.shape)}", flush=True)

    print(f"training teacher ({args.teacher_epochs} epochs)", flush=True)
    torch.manual_seed(args.seed)
    teacher = train("teacher", Teacher(), x_train, y_train, args.teacher_epochs,
                    args.batch_size, args.lr, args.seed)
    # The teacher is frozen and the inputs are not augmented, so its logits are computed once.
    teacher_train_logits = predict_logits(teacher, x_train)

    kd = {"temperature": args.temperature, "beta": args.beta, "gamma": args.gamma}
    print(f"training student with DIST (T={args.temperature}, beta={args.beta}, "
          f"gamma={args.gamma}; {args.student_epochs} epochs)", flush=True)
    torch.manual_seed(args.seed + 1)
    student = train("student", Student(), x_train, y_train, args.student_epochs,
                    args.batch_size, args.lr, args.seed + 1, teacher_train_logits, kd)

    print(f"training student_nokd, cross-entropy only ({args.student_epochs} epochs)", flush=True)
    torch.manual_seed(args.seed + 1)  # same initial weights and batch order as the student
    student_nokd = train("student_nokd", Student(), x_train, y_train, args.student_epochs,
                         args.batch_size, args.lr, args.seed + 1)
    train_seconds = time.time() - wall_start

    os.makedirs(args.out, exist_ok=True)
    models = {"teacher": teacher, "student": student, "student_nokd": student_nokd}
    results = {}
    teacher_pred = predict_logits(teacher, x_test).argmax(1)
    example = x_test[:1]
    for name, model in models.items():
        scripted = torch.jit.trace(model.eval(), example)
        path = os.path.join(args.out, f"{name}.pt")
        scripted.save(path)
        loaded = torch.jit.load(path)
        eager, traced = predict_logits(model, x_test), predict_logits(loaded, x_test)
        if not torch.allclose(eager, traced, atol=1e-4):
            sys.exit(f"{name}: TorchScript output differs from the eager model")
        pred = traced.argmax(1)
        median_ms, p99_ms = single_image_latency_ms(loaded, x_test, args.latency_runs)
        results[name] = {
            "params": count_params(model),
            "file_bytes": os.path.getsize(path),
            "test_accuracy": (pred == y_test).float().mean().item(),
            "agreement_with_teacher": (pred == teacher_pred).float().mean().item(),
            "latency_median_ms": median_ms,
            "latency_p99_ms": p99_ms,
        }

    with open(os.path.join(args.out, "index_to_name.json"), "w") as f:
        json.dump({str(i): c for i, c in enumerate(CLASSES)}, f, indent=2)
        f.write("\n")

    header = (f"{'model':<13} {'params':>8} {'file':>9} {'test acc':>9} {'agree w/ teacher':>17} "
              f"{'1-img median':>13} {'1-img p99':>10}")
    rows = [header]
    for name, r in results.items():
        rows.append(f"{name:<13} {r['params']:>8,} {r['file_bytes'] / 1024:>7.0f}KB "
                    f"{100 * r['test_accuracy']:>8.2f}% {100 * r['agreement_with_teacher']:>16.2f}% "
                    f"{r['latency_median_ms']:>10.3f} ms {r['latency_p99_ms']:>7.3f} ms")
    table = "\n".join(rows)
    print("\nresults on the 10,000 test images (latency: TorchScript, 1 thread, batch 1, "
          f"{args.latency_runs} runs)")
    print(table)
    print(f"training wall time {train_seconds:.0f}s on {args.threads} threads", flush=True)

    command = "/usr/bin/python3 scripts/train_fashion_mnist.py " + " ".join(sys.argv[1:])
    write_card(args, command, table, results, train_seconds)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump({"command": command, "settings": vars(args), "results": results,
                   "train_seconds": round(train_seconds, 1)}, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}/{{teacher,student,student_nokd}}.pt, index_to_name.json, "
          "metrics.json, MODEL_CARD.md")


def write_card(args, command, table, results, train_seconds):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    t, s, c = results["teacher"], results["student"], results["student_nokd"]
    card = f"""# Fashion-MNIST models (teacher, DIST student, control student)

Made by:

```sh
{command}
```

on {datetime.date.today().isoformat()}, {platform.machine()} ({cpu}), torch {torch.__version__},
{args.threads} threads, training wall time {train_seconds:.0f} s. Seeds fixed (`--seed {args.seed}`);
the figures below are this run's printed output, copied by the script itself.

## Interface (all three models)

- TorchScript (`torch.jit.trace`), CPU, float32.
- Input: float tensor `[N, 1, 28, 28]`, pixel/255 normalised with mean {MEAN} and std {STD}.
- Output: logits `[N, 10]`; class names in `index_to_name.json` (TorchServe style).

## Models

| file | what | training |
| --- | --- | --- |
| `teacher.pt` | CNN, 2 conv 5x5 blocks (32, 64 ch) + 128-unit FC; plays "the production GPU model" | {args.teacher_epochs} epochs, cross-entropy |
| `student.pt` | small CNN, 2 conv 3x3 blocks (8, 16 ch) + linear head | {args.student_epochs} epochs, CE + DIST from the teacher |
| `student_nokd.pt` | same architecture and init as `student` (control) | {args.student_epochs} epochs, CE only |

All: Adam with a one-cycle schedule (max lr {args.lr}), batch {args.batch_size}, no augmentation,
all 60,000 training images; evaluated on the 10,000 test images.

## Results

```
{table}
```

Latency: one image per call, 1 intra-op thread, median and p99 of {args.latency_runs} calls after
20 warm-up calls, measured in the same process right after training (the machine was shared, so
treat them as indicative). Student vs teacher: {t['params'] / s['params']:.0f}x fewer parameters,
{t['latency_median_ms'] / s['latency_median_ms']:.1f}x lower median latency; accuracy
{100 * (s['test_accuracy'] - t['test_accuracy']):+.2f} points vs the teacher, and distillation
changed the student's accuracy by {100 * (s['test_accuracy'] - c['test_accuracy']):+.2f} points and
its agreement with the teacher by {100 * (s['agreement_with_teacher'] - c['agreement_with_teacher']):+.2f}
points over the control (one seed: differences under ~0.5 points are within seed noise).

## Distillation loss (DIST)

Huang, You, Wang, Qian, Xu, "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022
(arXiv:2205.10536). With `Y_s = softmax(z_s / T)` and `Y_t = softmax(z_t / T)` over a batch:

- inter-class relation: `L_inter = 1 - mean_i pearson(Y_s[i, :], Y_t[i, :])` (each sample's
  class distribution),
- intra-class relation: `L_intra = 1 - mean_j pearson(Y_s[:, j], Y_t[:, j])` (each class's
  scores across the batch),
- `loss = CE(z_s, y) + T^2 * (beta * L_inter + gamma * L_intra)`.

Settings used here: T = {args.temperature}, beta = {args.beta}, gamma = {args.gamma}, CE weight 1.
The authors' reference code (`hunto/image_classification_sota`, `lib/models/losses/dist_kd.py`)
defaults to beta = gamma = 1 with no temperature (T = 1) for ImageNet; its later form takes a
temperature and scales both terms by T^2, which is what this script does. T = 4 follows the
conventional CIFAR-style KD temperature; the weights are flags (`--temperature`, `--beta`,
`--gamma`) so another setting is one command away.

## Limits

Fashion-MNIST only (28x28 grey clothing images); a few epochs on a shared 2-core CPU, so the
teacher is deliberately modest. Not for any use beyond demonstrating shadowgate.
"""
    with open(os.path.join(args.out, "MODEL_CARD.md"), "w") as f:
        f.write(card)


if __name__ == "__main__":
    main()

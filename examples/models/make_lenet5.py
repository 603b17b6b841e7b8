#!/usr/bin/env python3
"""Trains the LeNet-5 demo model and writes it in sinter's `.sir` text format.

Why this script exists: the README's main demo (`sinter run examples/models/lenet5/lenet5.sir ...`) should
show a real prediction from real weights, and anyone should be able to regenerate those weights and check
where they came from.

Data: scikit-learn's bundled `load_digits` set (1797 handwritten digits, 8x8 pixels, values 0..16; shipped
inside scikit-learn, so nothing is downloaded). Each image is scaled to [0, 1], resized to 20x20 with a
bilinear (half-pixel) resize written out below in numpy, and centred in a 28x28 frame with a 4-pixel zero
border, the layout of MNIST. A fixed permutation holds out 360 images as the test set.

Model: LeNet-5 with ReLU and max pooling,
    conv 6@5x5 pad 2 -> relu -> max_pool 2 -> conv 16@5x5 -> relu -> max_pool 2 -> flatten
    -> gemm 120 -> relu -> gemm 84 -> relu -> gemm 10 -> softmax,
trained with PyTorch (Adam, cross-entropy on the logits) on the CPU for a few epochs.

Outputs, in examples/models/lenet5/:
    lenet5.sir                 the graph; input `%image: f32[batch,1,28,28]`, output `probs`
    lenet5.weights.bin         every weight, little-endian f32, each tensor at a 64-byte aligned offset
    digit_<label>.npy          sample inputs [1,1,28,28] f32 from the held-out set
    digit_<label>.expected.npy PyTorch's probabilities [1,10] f32 for that sample, the oracle for tests

Determinism: seeds are fixed, PyTorch runs single-threaded with deterministic algorithms, and the data
split and resize are pure numpy, so rerunning on the same machine reproduces the files byte for byte.
(Float results can differ across CPUs whose kernels differ, e.g. with or without AVX-512.)

Usage: python3 examples/models/make_lenet5.py   (a few seconds on one core)
"""

import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

SEED = 0
N_TEST = 360
N_EPOCHS = 15
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
ALIGNMENT = 64
# Which held-out digits are shipped as sample inputs.
SAMPLE_LABELS = (0, 3, 7, 9)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lenet5")
WEIGHTS_FILE = "lenet5.weights.bin"


def bilinear_matrix(n_out, n_in):
    """The [n_out, n_in] matrix of a 1-d bilinear resize with half-pixel centres and edge clamping.

    Applying it along both axes (`R @ img @ R.T`) is the separable 2-d bilinear resize.
    """
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    for out_idx in range(n_out):
        src = (out_idx + 0.5) * n_in / n_out - 0.5
        src = min(max(src, 0.0), n_in - 1.0)
        lo = int(np.floor(src))
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        matrix[out_idx, lo] += 1.0 - frac
        matrix[out_idx, hi] += frac
    return matrix


def load_images():
    """The digits as [n, 1, 28, 28] f32 images in [0, 1] and their int64 labels."""
    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0
    resize = bilinear_matrix(20, 8)
    resized = np.einsum("oi,nij,pj->nop", resize, images, resize)
    framed = np.zeros((len(images), 1, 28, 28), dtype=np.float32)
    framed[:, 0, 4:24, 4:24] = resized.astype(np.float32)
    return framed, digits.target.astype(np.int64)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        """Logits; the exported graph ends with a softmax over them."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def train(model, images, labels):
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(SEED)
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels)
    for epoch_idx in range(N_EPOCHS):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        total_loss = 0.0
        for start in range(0, len(images), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_all[batch]), y_all[batch])
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
        print(f"epoch {epoch_idx + 1:2}: train loss {total_loss / len(images):.4f}")


def probabilities(model, images):
    model.eval()
    with torch.no_grad():
        return F.softmax(model(torch.from_numpy(images)), dim=-1).numpy()


def write_weights(named_tensors, path):
    """Writes tensors back to back at 64-byte aligned offsets; returns {name: offset}."""
    offsets = {}
    blob = bytearray()
    for name, tensor in named_tensors:
        blob.extend(b"\0" * (-len(blob) % ALIGNMENT))
        offsets[name] = len(blob)
        blob.extend(np.ascontiguousarray(tensor, dtype="<f4").tobytes())
    with open(path, "wb") as f:
        f.write(bytes(blob))
    return offsets


def sir_type(shape):
    return "f32[" + ",".join(str(d) for d in shape) + "]"


def write_sir(named_tensors, offsets, path, test_accuracy):
    shapes = dict(named_tensors)
    lines = [
        "; LeNet-5 trained on scikit-learn's 8x8 digits upscaled to 28x28.",
        f"; Generated by examples/models/make_lenet5.py (test accuracy {test_accuracy:.4f}); do not edit.",
        "graph lenet5 {",
        "  input %image: f32[batch,1,28,28]",
    ]
    for name, tensor in named_tensors:
        lines.append(
            f"  const @{name}: {sir_type(tensor.shape)} = "
            f'external("{WEIGHTS_FILE}", offset={offsets[name]})'
        )
    assert shapes["fc1.weight"].shape == (120, 400)
    ops = [
        ("f32[batch,6,28,28]", "conv(%image, @conv1.weight, @conv1.bias) {pads=[2,2,2,2]}"),
        ("f32[batch,6,28,28]", "relu(%0)"),
        ("f32[batch,6,14,14]", "max_pool(%1) {kernel_shape=[2,2], strides=[2,2]}"),
        ("f32[batch,16,10,10]", "conv(%2, @conv2.weight, @conv2.bias)"),
        ("f32[batch,16,10,10]", "relu(%3)"),
        ("f32[batch,16,5,5]", "max_pool(%4) {kernel_shape=[2,2], strides=[2,2]}"),
        ("f32[batch,400]", "flatten(%5)"),
        ("f32[batch,120]", "gemm(%6, @fc1.weight, @fc1.bias) {trans_b=true}"),
        ("f32[batch,120]", "relu(%7)"),
        ("f32[batch,84]", "gemm(%8, @fc2.weight, @fc2.bias) {trans_b=true}"),
        ("f32[batch,84]", "relu(%9)"),
        ("f32[batch,10]", "gemm(%10, @fc3.weight, @fc3.bias) {trans_b=true}"),
        ("f32[batch,10]", "softmax(%11)"),
    ]
    for value_idx, (ty, expr) in enumerate(ops):
        lines.append(f"  %{value_idx}: {ty} = {expr}")
    lines.append(f"  output probs = %{len(ops) - 1}")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    started = time.time()
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    images, labels = load_images()
    order = np.random.RandomState(SEED).permutation(len(images))
    test_idx, train_idx = order[:N_TEST], order[N_TEST:]

    model = LeNet5()
    train(model, images[train_idx], labels[train_idx])

    test_probs = probabilities(model, images[test_idx])
    predicted = test_probs.argmax(axis=1)
    test_accuracy = float((predicted == labels[test_idx]).mean())
    print(f"test accuracy: {test_accuracy:.4f} on {N_TEST} held-out images")

    os.makedirs(OUT_DIR, exist_ok=True)
    named_tensors = [(name, p.detach().numpy().astype(np.float32)) for name, p in model.named_parameters()]
    offsets = write_weights(named_tensors, os.path.join(OUT_DIR, WEIGHTS_FILE))
    write_sir(named_tensors, offsets, os.path.join(OUT_DIR, "lenet5.sir"), test_accuracy)

    # The first held-out image of each sample label; the README reports whether the model gets it right.
    for label in SAMPLE_LABELS:
        pos = int(np.flatnonzero(labels[test_idx] == label)[0])
        image = images[test_idx[pos]][None]
        probs = probabilities(model, image)
        np.save(os.path.join(OUT_DIR, f"digit_{label}.npy"), image)
        np.save(os.path.join(OUT_DIR, f"digit_{label}.expected.npy"), probs)
        print(
            f"digit_{label}.npy: held-out image {int(test_idx[pos])}, predicted {int(probs.argmax())} "
            f"(p={float(probs.max()):.4f})"
        )
    print(f"done in {time.time() - started:.1f}s")


if __name__ == "__main__":
    main()

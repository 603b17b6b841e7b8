#!/usr/bin/env python3
"""Exports the real-model fixtures in tests/models/ (checked by tests/real_models.rs).

Each model is a small PyTorch network of a well-known architecture with seeded random weights (nothing is
downloaded). It is exported with both ONNX exporters, because their graphs differ a lot:

- the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`) into `tests/models/<model>_ts/`;
- the dynamo exporter (`torch.onnx.export(..., dynamo=True)`) into `tests/models/<model>_dynamo/`.

Every directory holds `model.onnx` and `test_data_set_0/input_N.pb`, `output_N.pb` in the ONNX backend-test
layout; the expected outputs are onnxruntime's (CPU execution provider, one thread), which the script also
checks against PyTorch's own outputs. The batch dimension is symbolic in every model (`batch`), and the data
set uses a batch of 2 so that nothing can silently specialise it to 1. A model whose dynamo export fails keeps
its TorchScript export, and the exact error goes into the README.

The script rewrites tests/models/README.md (one line per model directory) and removes model directories it
did not write. Run it from anywhere: `python3 tests/models/export_models.py` (packages pinned in
tests/models/requirements.txt). The output is deterministic: fixed seeds, eval mode, deterministic
algorithms, single-threaded onnxruntime.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import sys
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

ROOT = Path(__file__).resolve().parent
# The largest model file allowed, so the fixtures stay cheap to keep in the repository.
MAX_MODEL_BYTES = 2 * 1024 * 1024
# How closely onnxruntime's outputs must agree with PyTorch's before they are written as expected values.
TORCH_RTOL = 1e-4
TORCH_ATOL = 1e-5
# The batch size of every data set; the batch dimension itself is symbolic in every model.
BATCH = 2


# ---------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, on 1x32x32 images, 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with BatchNorm, and a residual add (through a strided
    1x1 convolution when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNet18(nn.Module):
    """resnet18's structure (torchvision): 7x7/2 stem with BatchNorm and 3x3/2 max pooling, four stages of
    two basic blocks each, global average pooling and a linear classifier; base width 8 instead of 64."""

    def __init__(self, base_width: int = 8, n_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, base_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [base_width, base_width * 2, base_width * 4, base_width * 8]
        stages = []
        in_channels = base_width
        for stage_idx, width in enumerate(widths):
            stride = 1 if stage_idx == 0 else 2
            stages.append(nn.Sequential(BasicBlock(in_channels, width, stride), BasicBlock(width, width, 1)))
            in_channels = width
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(in_channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layers(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual: 1x1 expansion, 3x3 depthwise convolution, 1x1 linear projection,
    each with BatchNorm (ReLU6 after the first two), and a residual add when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """A width-reduced MobileNetV2 on 3x32x32 images: a strided 3x3 stem, seven inverted residual blocks
    (depthwise separable, ReLU6, BatchNorm, residual adds where the shape is kept), a 1x1 head convolution,
    global average pooling, dropout and a linear classifier."""

    # (expansion, out_channels, n_blocks, first stride), as in the paper's table 2, scaled down.
    CONFIG = [(1, 8, 1, 1), (4, 12, 2, 2), (4, 16, 2, 2), (4, 24, 2, 1)]

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 8, 3, 2, 1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU6(),
        ]
        in_channels = 8
        for expansion, out_channels, n_blocks, first_stride in self.CONFIG:
            for block_idx in range(n_blocks):
                stride = first_stride if block_idx == 0 else 1
                layers.append(InvertedResidual(in_channels, out_channels, stride, expansion))
                in_channels = out_channels
        layers += [nn.Conv2d(in_channels, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean(dim=(2, 3))
        return self.classifier(x)


class LstmLanguageModel(nn.Module):
    """A word-level LSTM language model: embedding, a 2-layer LSTM (batch first) and a linear head over the
    vocabulary at every position."""

    def __init__(self, vocab: int = 64, embed: int = 32, hidden: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(tokens))
        return self.head(out)


class GruTagger(nn.Module):
    """A sequence tagger: embedding, a bidirectional GRU (batch first) and a linear layer per token."""

    def __init__(self, vocab: int = 50, embed: int = 16, hidden: int = 24, n_tags: int = 9) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.tagger = nn.Linear(2 * hidden, n_tags)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embedding(tokens))
        return self.tagger(out)


class TransformerEncoderClassifier(nn.Module):
    """A 2-layer post-norm transformer encoder (nn.TransformerEncoder: multi-head attention, LayerNorm,
    GELU MLP) over token and learned position embeddings, with a key padding mask (`True` = padding), and a
    linear layer per token."""

    def __init__(self, vocab: int = 64, d_model: int = 32, n_heads: int = 4, seq: int = 16) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model)
        self.position = nn.Parameter(torch.randn(1, seq, d_model) * 0.1)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=64, dropout=0.1, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 5)

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens) + self.position[:, : tokens.shape[1]]
        x = self.encoder(x, src_key_padding_mask=padding_mask)
        return self.head(x)


class CausalSelfAttention(nn.Module):
    """GPT-2's attention, written as Hugging Face's GPT-2 does it: a fused QKV projection, q @ k^T / sqrt(d),
    masked_fill with a lower-triangular mask, softmax, @ v, and an output projection."""

    def __init__(self, d_model: int, n_heads: int, max_seq: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.register_buffer("mask", torch.tril(torch.ones(max_seq, max_seq)).view(1, 1, max_seq, max_seq))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, d_model = x.shape
        q, k, v = self.qkv(x).split(d_model, dim=2)
        head_dim = d_model // self.n_heads
        q = q.view(batch, seq, self.n_heads, head_dim).transpose(1, 2)
        k = k.view(batch, seq, self.n_heads, head_dim).transpose(1, 2)
        v = v.view(batch, seq, self.n_heads, head_dim).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(head_dim)
        scores = scores.masked_fill(self.mask[:, :, :seq, :seq] == 0, float("-inf"))
        weights = F.softmax(scores, dim=-1)
        out = (weights @ v).transpose(1, 2).contiguous().view(batch, seq, d_model)
        return self.proj(out)


class GptBlock(nn.Module):
    """A pre-norm GPT-2 block: LayerNorm, causal attention, residual; LayerNorm, GELU (tanh) MLP, residual."""

    def __init__(self, d_model: int, n_heads: int, max_seq: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, max_seq)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(approximate="tanh"), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    """A GPT-2-style decoder: token and position embeddings, two pre-norm blocks with causal attention, a
    final LayerNorm and an LM head tied to the token embedding."""

    def __init__(self, vocab: int = 64, d_model: int = 32, n_heads: int = 4, max_seq: int = 32) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d_model)
        self.position_embedding = nn.Embedding(max_seq, d_model)
        self.blocks = nn.Sequential(*[GptBlock(d_model, n_heads, max_seq) for _ in range(2)])
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)
        self.lm_head.weight = self.token_embedding.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], dtype=torch.long, device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        x = self.blocks(x)
        return self.lm_head(self.ln_f(x))


# ---------------------------------------------------------------------------------------------------------
# The fixture list
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Spec:
    """One model: how to build it and its inputs, and how to describe it in the README."""

    name: str
    description: str
    build: Callable[[], nn.Module]
    # The inputs of the data set, given a seeded generator.
    make_inputs: Callable[[torch.Generator], tuple[torch.Tensor, ...]]
    input_names: list[str]
    output_names: list[str]
    # The TorchScript export's opset: 17 or 18 (at 18 Reduce* and Split take axes and sizes as inputs).
    ts_opset: int


def image_inputs(channels: int, size: int) -> Callable[[torch.Generator], tuple[torch.Tensor, ...]]:
    return lambda gen: (torch.randn(BATCH, channels, size, size, generator=gen),)


def token_inputs(vocab: int, seq: int) -> Callable[[torch.Generator], tuple[torch.Tensor, ...]]:
    return lambda gen: (torch.randint(0, vocab, (BATCH, seq), generator=gen),)


def padded_token_inputs(gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Tokens and a key padding mask: the first sequence is full, the second has 5 padding positions."""
    tokens = torch.randint(0, 64, (BATCH, 16), generator=gen)
    lengths = torch.tensor([16, 11])
    padding_mask = torch.arange(16)[None, :] >= lengths[:, None]
    return tokens, padding_mask


SPECS = [
    Spec(
        "lenet5",
        "LeNet-5: conv 5x5 (6) - relu - maxpool - conv 5x5 (16) - relu - maxpool - fc 120 - fc 84 - fc 10; "
        "input 1x32x32",
        LeNet5,
        image_inputs(1, 32),
        ["image"],
        ["logits"],
        17,
    ),
    Spec(
        "resnet18_w8",
        "resnet18 structure with base width 8 (8-16-32-64): 7x7/2 stem, BatchNorm, maxpool, 8 basic blocks "
        "with residual adds, global average pool, fc 10; input 3x64x64",
        ResNet18,
        image_inputs(3, 64),
        ["image"],
        ["logits"],
        17,
    ),
    Spec(
        "mobilenetv2_small",
        "MobileNetV2-style: 3x3/2 stem, 7 inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear "
        "project, BatchNorm, ReLU6, residual adds), 1x1 head conv, mean pool, fc 10; input 3x32x32",
        MobileNetV2,
        image_inputs(3, 32),
        ["image"],
        ["logits"],
        18,
    ),
    Spec(
        "lstm_lm",
        "LSTM language model: embedding 64x32 (Gather), nn.LSTM 2 layers hidden 32, linear head to 64 "
        "logits per token; tokens [batch, 24]",
        LstmLanguageModel,
        token_inputs(64, 24),
        ["tokens"],
        ["logits"],
        17,
    ),
    Spec(
        "bigru_tagger",
        "bidirectional GRU tagger: embedding 50x16, nn.GRU hidden 24 both directions, linear 48 -> 9 tags "
        "per token; tokens [batch, 20]",
        GruTagger,
        token_inputs(50, 20),
        ["tokens"],
        ["tag_logits"],
        18,
    ),
    Spec(
        "transformer_encoder",
        "nn.TransformerEncoder, 2 post-norm layers, d_model 32, 4 heads, GELU MLP 64, token + learned "
        "position embeddings, key padding mask input (bool, true = padding), linear 5 per token; "
        "tokens [batch, 16]",
        TransformerEncoderClassifier,
        padded_token_inputs,
        ["tokens", "padding_mask"],
        ["logits"],
        17,
    ),
    Spec(
        "gpt_decoder",
        "GPT-2-style decoder: token + position embeddings, 2 pre-norm blocks (d_model 32, 4 heads, "
        "HF-style causal attention with masked_fill on a tril mask, GELU-tanh MLP 128), final LayerNorm, "
        "LM head tied to the embedding; tokens [batch, 16]",
        Gpt,
        token_inputs(64, 16),
        ["tokens"],
        ["logits"],
        18,
    ),
]


def randomize_norm_statistics(model: nn.Module, gen: torch.Generator) -> None:
    """Gives every BatchNorm and LayerNorm non-trivial affine parameters and running statistics, so that
    in eval mode they are not (nearly) the identity, which would hide mistakes in their import."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
                module.weight.copy_(1.0 + 0.2 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=gen))


# ---------------------------------------------------------------------------------------------------------
# Export, run and write
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Exported:
    dir_name: str
    spec: Spec
    exporter: str
    opset: int
    n_params: int
    n_bytes: int


@dataclasses.dataclass
class Failure:
    spec: Spec
    exporter: str
    error: str


def build_model(spec: Spec) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The model in eval mode with seeded weights, and its seeded inputs; the same on every call."""
    torch.manual_seed(0)
    model = spec.build()
    randomize_norm_statistics(model, torch.Generator().manual_seed(1))
    model.eval()
    inputs = spec.make_inputs(torch.Generator().manual_seed(2))
    return model, inputs


def export_torchscript(spec: Spec, model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    dynamic_axes = {name: {0: "batch"} for name in spec.input_names + spec.output_names}
    torch.onnx.export(
        model,
        inputs,
        str(path),
        dynamo=False,
        opset_version=spec.ts_opset,
        input_names=spec.input_names,
        output_names=spec.output_names,
        dynamic_axes=dynamic_axes,
        do_constant_folding=True,
    )


def export_dynamo(spec: Spec, model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    # One entry per positional input, in order (a dict would have to use the forward's argument names).
    dynamic_shapes = tuple({0: batch} for _ in spec.input_names)
    program = torch.onnx.export(
        model,
        inputs,
        dynamo=True,
        input_names=spec.input_names,
        output_names=spec.output_names,
        dynamic_shapes=dynamic_shapes,
        external_data=False,
        # The export must be checked here, not by the exporter's own report.
        verify=False,
    )
    assert program is not None
    program.save(str(path), external_data=False)
    # Each node carries the Python stack trace it was traced from, with the exporting machine's file
    # paths; dropping it keeps the files reproducible elsewhere (the rest of the metadata stays).
    model = onnx.load(str(path))
    for node in model.graph.node:
        kept = [prop for prop in node.metadata_props if prop.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save(model, str(path))


def count_params(model: nn.Module) -> int:
    # Tied weights (the GPT's LM head) count once, as `parameters()` yields each tensor once.
    return sum(param.numel() for param in model.parameters())


def run_onnxruntime(path: Path, spec: Spec, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in zip(spec.input_names, inputs)}
    return session.run(None, feeds)


def check_model_file(path: Path, spec: Spec) -> int:
    """Checks the exported file (valid ONNX, one file, the symbolic batch, the size limit); returns its
    opset."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    n_bytes = path.stat().st_size
    if n_bytes > MAX_MODEL_BYTES:
        raise RuntimeError(f"{path} is {n_bytes} bytes, more than {MAX_MODEL_BYTES}")
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise RuntimeError(f"{path}: initializer {tensor.name} is stored externally")
    initializers = {tensor.name for tensor in model.graph.initializer}
    graph_inputs = [value for value in model.graph.input if value.name not in initializers]
    if [value.name for value in graph_inputs] != spec.input_names:
        raise RuntimeError(f"{path}: inputs {[v.name for v in graph_inputs]}, expected {spec.input_names}")
    for value in list(graph_inputs) + list(model.graph.output):
        first_dim = value.type.tensor_type.shape.dim[0]
        if not first_dim.dim_param:
            raise RuntimeError(f"{path}: the batch dimension of `{value.name}` is not symbolic")
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def export_one(spec: Spec, exporter: str) -> Exported:
    dir_name = f"{spec.name}_{exporter}"
    out_dir = ROOT / dir_name
    if out_dir.exists():
        shutil.rmtree(out_dir)
    data_dir = out_dir / "test_data_set_0"
    data_dir.mkdir(parents=True)
    model_path = out_dir / "model.onnx"
    try:
        model, inputs = build_model(spec)
        with torch.no_grad():
            expected = model(*inputs)
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        if exporter == "ts":
            export_torchscript(spec, model, inputs, model_path)
        else:
            export_dynamo(spec, model, inputs, model_path)
        opset = check_model_file(model_path, spec)
        outputs = run_onnxruntime(model_path, spec, inputs)
        if len(outputs) != len(expected):
            raise RuntimeError(f"onnxruntime gives {len(outputs)} outputs, PyTorch {len(expected)}")
        for output_idx, (got, want) in enumerate(zip(outputs, expected)):
            np.testing.assert_allclose(
                got,
                want.numpy(),
                rtol=TORCH_RTOL,
                atol=TORCH_ATOL,
                err_msg=f"{dir_name}: output {output_idx}: onnxruntime against PyTorch",
            )
        for input_idx, (name, tensor) in enumerate(zip(spec.input_names, inputs)):
            proto = numpy_helper.from_array(tensor.numpy(), name)
            (data_dir / f"input_{input_idx}.pb").write_bytes(proto.SerializeToString())
        for output_idx, (name, array) in enumerate(zip(spec.output_names, outputs)):
            proto = numpy_helper.from_array(array, name)
            (data_dir / f"output_{output_idx}.pb").write_bytes(proto.SerializeToString())
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return Exported(dir_name, spec, exporter, opset, count_params(model), model_path.stat().st_size)


EXPORTER_NAMES = {
    "ts": "TorchScript (`dynamo=False`)",
    "dynamo": "dynamo (`dynamo=True`)",
}

README_HEAD = """\
# Real-model fixtures

Small networks of well-known architectures, exported from PyTorch with seeded random weights (no downloads)
by `export_models.py`, with onnxruntime's outputs as the expected values. `tests/real_models.rs` runs one
test per directory: it imports `model.onnx` with `sinter_onnx`, runs the reference interpreter on
`test_data_set_0/input_N.pb` and compares with `output_N.pb` at rtol 1e-4, atol 1e-5, which is what
`sinter check MODEL DATASET --rtol 1e-4 --atol 1e-5` does.

Each model is exported twice, because the two PyTorch exporters produce different graphs:
`<model>_ts` with the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`, opset 17 or 18) and
`<model>_dynamo` with the dynamo exporter (`dynamo=True`, its default opset, optimized by onnxscript;
the script drops the Python stack traces the exporter stores in node metadata, which hold local paths).
The batch dimension is symbolic (`batch`) in every model; the data sets use a batch of {batch}. Models are in
eval mode (dropout off, BatchNorm with random running statistics); onnxruntime runs on the CPU execution
provider with one thread, and the script checks its outputs against PyTorch's (rtol {torch_rtol}, atol
{torch_atol}) before writing them.

Regenerate (rewrites this file and every model directory):

    pip install -r tests/models/requirements.txt
    python3 tests/models/export_models.py

## Models

Parameters count each tensor once (the GPT's LM head shares the token embedding). Size is `model.onnx`.

| directory | architecture | params | exporter | opset | size |
|---|---|---:|---|---:|---:|
"""


README_IMPORT = """
## How sinter imports them

Every model imports with its `batch` dim symbolic, except the two `transformer_encoder` exports:
`nn.MultiheadAttention` reshapes q, k and v to `[seq, batch * heads, head_dim]`, and the IR has no dim
expressions, so `sinter check` (and `tests/real_models.rs`, which lists them in `DIMS_FIXED`) imports them
with `batch` fixed to the data set's size and prints a note saying so. The GPT decoder writes its attention
with `[batch, heads, seq, head_dim]` tensors and imports with `batch` symbolic.

All models pass at rtol 1e-4, atol 1e-5; none needs a looser tolerance.
"""


def write_readme(exported: list[Exported], failures: list[Failure]) -> None:
    text = README_HEAD.format(
        batch=BATCH, torch_rtol=TORCH_RTOL, torch_atol=TORCH_ATOL
    )
    for item in exported:
        text += (
            f"| `{item.dir_name}` | {item.spec.description} | {item.n_params:,} | "
            f"{EXPORTER_NAMES[item.exporter]} | {item.opset} | {item.n_bytes / 1024:.1f} KiB |\n"
        )
    text += README_IMPORT
    text += "\n## Exports that failed\n\n"
    if failures:
        text += "These models have no `_dynamo` directory; the dynamo exporter failed with:\n\n"
        for failure in failures:
            text += f"- `{failure.spec.name}` ({EXPORTER_NAMES[failure.exporter]}):\n\n"
            text += "".join(f"      {line}\n" for line in failure.error.rstrip().splitlines())
            text += "\n"
    else:
        text += "None: every model is exported by both exporters.\n"
    text += (
        f"\nGenerated with torch {torch.__version__}, onnx {onnx.__version__}, "
        f"onnxruntime {ort.__version__}.\n"
    )
    (ROOT / "README.md").write_text(text)


def last_error_line(error: BaseException) -> str:
    """The exception as the exporter reports it: type and message, without the traceback or the terminal
    colour codes the dynamo exporter puts in its messages."""
    message = "".join(traceback.format_exception_only(type(error), error)).strip()
    return re.sub(r"\x1b\[[0-9;]*m", "", message)


def main() -> int:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    exported: list[Exported] = []
    failures: list[Failure] = []
    written: set[str] = set()
    for spec in SPECS:
        for exporter in ("ts", "dynamo"):
            try:
                item = export_one(spec, exporter)
            except Exception as error:  # noqa: BLE001 - a failed dynamo export is recorded, not fatal
                if exporter == "ts":
                    raise
                failures.append(Failure(spec, exporter, last_error_line(error)))
                print(f"{spec.name}_{exporter}: FAILED: {last_error_line(error)}", file=sys.stderr)
                continue
            exported.append(item)
            written.add(item.dir_name)
            print(f"{item.dir_name}: opset {item.opset}, {item.n_params} params, {item.n_bytes} bytes")
    n_both = len({item.spec.name for item in exported if item.exporter == "dynamo"})
    if n_both < 4:
        print(f"only {n_both} models have both exports; at least 4 must", file=sys.stderr)
        return 1
    for entry in sorted(ROOT.iterdir()):
        if entry.is_dir() and (entry / "model.onnx").exists() and entry.name not in written:
            shutil.rmtree(entry)
    write_readme(exported, failures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

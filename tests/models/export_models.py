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
did not write. `--only MODEL...` regenerates only those models' directories and leaves the others' files as
they are (their README lines are read from them). Run it from anywhere:
`python3 tests/models/export_models.py` (packages pinned in tests/models/requirements.txt). The output is
deterministic: fixed seeds, eval mode, deterministic algorithms, single-threaded onnxruntime.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import math
import re
import shutil
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterator

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


class MlpBatchNorm(nn.Module):
    """A multilayer perceptron with BatchNorm after each hidden linear layer (Linear - BatchNorm1d - ReLU,
    twice) and a linear classifier."""

    def __init__(self, n_in: int = 16, hidden: int = 32, n_classes: int = 10) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_in, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def randomize_linear_biases(model: nn.Module) -> None:
    """Gives every linear layer a random bias (from the global generator, which `build_model` seeds):
    Hugging Face models initialize them to zero, which would hide a bias that is dropped or misplaced."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.normal_(0.0, 0.1)


def hf_float_mask_min() -> float:
    """The additive mask value Hugging Face models use for masked positions: the dtype's lowest finite
    value (not -inf, so a fully masked row still has a finite softmax)."""
    return torch.finfo(torch.float32).min


class HfBertEncoder(nn.Module):
    """A Hugging Face transformers `BertModel` (no pooler) with a tiny random config and eager attention,
    so that attention is the explicit chain the library writes: per-head Reshape + Transpose of q, k and v,
    q @ k^T * scaling, + the additive mask, Softmax, @ v, Transpose + Reshape back. Post-norm layers with
    nn.LayerNorm and an erf GELU MLP; token, position and token-type embeddings.

    The padding mask is made additive here as transformers 4.x did (`get_extended_attention_mask`:
    `(1 - mask[:, None, None, :]) * finfo.min`), and passed to the model as a 4D mask, which transformers
    5.x uses as given; its own 2D-mask path (`masking_utils`) indexes the mask per batch element with
    GatherND and a Range over the batch size. The all-zero token types are passed as `zeros_like`."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(
            vocab_size=64,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=32,
            type_vocab_size=2,
            hidden_act="gelu",
            # Larger than the default 0.02, so that attention scores are not all nearly zero.
            initializer_range=0.2,
            attn_implementation="eager",
        )
        self.bert = BertModel(config, add_pooling_layer=False)
        randomize_linear_biases(self.bert)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        additive_mask = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * hf_float_mask_min()
        token_type_ids = torch.zeros_like(input_ids)
        output = self.bert(input_ids=input_ids, attention_mask=additive_mask, token_type_ids=token_type_ids)
        return output.last_hidden_state


class HfLlamaCausalLm(nn.Module):
    """A Hugging Face transformers `LlamaForCausalLM` with a tiny random config and eager attention:
    RMSNorm (pre-norm), rotary position embeddings, grouped-query attention (4 query heads, 2 key/value
    heads: `repeat_kv` is an Expand + Reshape), q @ k^T * scaling + a causal mask, Softmax, a SiLU-gated
    MLP, and an untied LM head.

    The causal mask is built here as transformers 4.x did (`finfo.min` above the diagonal, `triu(1)`) and
    passed as a 4D mask, which transformers 5.x uses as given; its own mask path calls `torch.diff`, which
    the TorchScript exporter cannot export."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=32,
            initializer_range=0.2,
            tie_word_embeddings=False,
            use_cache=False,
            attn_implementation="eager",
        )
        self.llama = LlamaForCausalLM(config)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq = input_ids.shape[1]
        causal_mask = torch.full((seq, seq), hf_float_mask_min()).triu(1)[None, None]
        return self.llama(input_ids=input_ids, attention_mask=causal_mask, use_cache=False).logits


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
    # The TorchScript export's opset: 16, 17 or 18 (at 18 Reduce* and Split take axes and sizes as inputs;
    # below 17 nn.LayerNorm is exported decomposed, as ReduceMean, Sub, Pow, Sqrt and Div).
    ts_opset: int
    # Keep BatchNormalization nodes: in eval mode the TorchScript exporter folds them into the Conv before
    # them, and the dynamo exporter's optimizer into a Conv or Gemm. The script checks that some are left.
    keep_batchnorm: bool = False
    # Exporters whose output is left out of the fixtures, with the reason (written into the README).
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)


def image_inputs(channels: int, size: int) -> Callable[[torch.Generator], tuple[torch.Tensor, ...]]:
    return lambda gen: (torch.randn(BATCH, channels, size, size, generator=gen),)


def token_inputs(vocab: int, seq: int) -> Callable[[torch.Generator], tuple[torch.Tensor, ...]]:
    return lambda gen: (torch.randint(0, vocab, (BATCH, seq), generator=gen),)


def hf_padded_token_inputs(gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Token ids and a Hugging Face attention mask (i64, 1 = attend, 0 = padding): the first sequence is
    full, the second has 5 padding positions."""
    tokens = torch.randint(0, 64, (BATCH, 16), generator=gen)
    lengths = torch.tensor([16, 11])
    attention_mask = (torch.arange(16)[None, :] < lengths[:, None]).to(torch.int64)
    return tokens, attention_mask


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
    Spec(
        "resnet18_w8_bn",
        "`resnet18_w8` (same class and weights) exported with its 20 BatchNormalization nodes kept after "
        "their Conv (TorchScript: `training=TrainingMode.PRESERVE`; dynamo: its optimizer without the "
        "BatchNorm-fusion rules); input 3x64x64",
        ResNet18,
        image_inputs(3, 64),
        ["image"],
        ["logits"],
        17,
        keep_batchnorm=True,
    ),
    Spec(
        "mlp_bn",
        "MLP: fc 16 -> 32 - BatchNorm1d - relu - fc 32 - BatchNorm1d - relu - fc 10, BatchNormalization "
        "kept after each Gemm (as for `resnet18_w8_bn`); input [batch, 16]",
        MlpBatchNorm,
        lambda gen: (torch.randn(BATCH, 16, generator=gen),),
        ["features"],
        ["logits"],
        17,
        keep_batchnorm=True,
    ),
    Spec(
        "bert_tiny_hf",
        "Hugging Face transformers BertModel, random tiny config with random biases: 2 post-norm layers, "
        "hidden 32, 4 heads, erf GELU MLP 64, vocab 64, eager attention with the additive padding mask "
        "(`(1 - mask) * finfo.min`), token + position + token-type embeddings; input_ids and "
        "attention_mask (i64, 0 = padding) [batch, 16]. The TorchScript export uses opset 16, so LayerNorm "
        "is decomposed (ReduceMean, Sub, Pow, Sqrt, Div) and GELU is Erf arithmetic; the dynamo export has "
        "LayerNormalization and Gelu nodes",
        HfBertEncoder,
        hf_padded_token_inputs,
        ["input_ids", "attention_mask"],
        ["last_hidden_state"],
        16,
    ),
    Spec(
        "llama_tiny_hf",
        "Hugging Face transformers LlamaForCausalLM, random tiny config: 2 pre-norm layers, hidden 32, "
        "decomposed RMSNorm (Pow, ReduceMean, Add, Sqrt, then Div or Reciprocal and Mul), rotary "
        "embeddings (Cos and Sin of constant angles), grouped-query eager attention (4 query heads, 2 "
        "key/value heads, `repeat_kv` as Expand + Reshape) with a causal mask (`finfo.min` above the "
        "diagonal, Trilu), SiLU-gated MLP 64 (Sigmoid, Mul), untied LM head to 64 logits; "
        "input_ids [batch, 16]",
        HfLlamaCausalLm,
        token_inputs(64, 16),
        ["input_ids"],
        ["logits"],
        18,
    ),
]


def is_rms_norm(module: nn.Module) -> bool:
    """Whether `module` is an RMSNorm: PyTorch's, or a Hugging Face model's own class (`LlamaRMSNorm`)."""
    return isinstance(module, nn.RMSNorm) or type(module).__name__.endswith("RMSNorm")


def randomize_norm_statistics(model: nn.Module, gen: torch.Generator) -> None:
    """Gives every BatchNorm, LayerNorm and RMSNorm non-trivial affine parameters (and BatchNorm running
    statistics), so that in eval mode they are not (nearly) the identity, which would hide mistakes in their
    import."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
                module.weight.copy_(1.0 + 0.2 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
            if is_rms_norm(module):
                module.weight.copy_(1.0 + 0.2 * torch.randn(module.weight.shape, generator=gen))
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
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
        # In eval mode the exporter folds BatchNorm into the Conv before it; PRESERVE (with the model still
        # in eval mode) skips that folding and exports BatchNormalization in inference mode.
        training=torch.onnx.TrainingMode.PRESERVE if spec.keep_batchnorm else torch.onnx.TrainingMode.EVAL,
    )


# The rules of onnxscript's default rewrite set that fold BatchNormalization into the op before it.
BATCHNORM_FUSION_RULES = {"FuseBatchNormIntoConv", "FuseBatchNormIntoConvTranspose", "FuseBatchNormIntoGemm"}


@contextlib.contextmanager
def without_batchnorm_fusion() -> Iterator[None]:
    """Runs the dynamo exporter's optimizer (onnxscript's `optimize_ir`, which reads the default rewrite
    rules when it runs) without the rules that fold BatchNormalization away; the rest of the optimization
    (constant folding, shape simplification) still runs."""
    from onnxscript import rewriter

    default_rules = rewriter._DEFAULT_REWRITE_RULES
    kept = tuple(rule for rule in default_rules if rule.name not in BATCHNORM_FUSION_RULES)
    if len(default_rules) - len(kept) != len(BATCHNORM_FUSION_RULES):
        raise RuntimeError("onnxscript's default rewrite rules no longer hold the BatchNorm fusion rules")
    rewriter._DEFAULT_REWRITE_RULES = kept
    try:
        yield
    finally:
        rewriter._DEFAULT_REWRITE_RULES = default_rules


def export_dynamo(spec: Spec, model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    # One entry per positional input, in order (a dict would have to use the forward's argument names).
    dynamic_shapes = tuple({0: batch} for _ in spec.input_names)
    with without_batchnorm_fusion() if spec.keep_batchnorm else contextlib.nullcontext():
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
    n_batchnorm = sum(node.op_type == "BatchNormalization" for node in model.graph.node)
    if spec.keep_batchnorm and n_batchnorm == 0:
        raise RuntimeError(f"{path}: the exporter folded away every BatchNormalization")
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

Each model is exported twice (except those under "Exports left out"), because the two PyTorch exporters
produce different graphs: `<model>_ts` with the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`,
opset 16, 17 or 18) and
`<model>_dynamo` with the dynamo exporter (`dynamo=True`, its default opset, optimized by onnxscript;
the script drops the Python stack traces the exporter stores in node metadata, which hold local paths).
The batch dimension is symbolic (`batch`) in every model; the data sets use a batch of {batch}. Models are in
eval mode (dropout off, BatchNorm with random running statistics); onnxruntime runs on the CPU execution
provider with one thread, and the script checks its outputs against PyTorch's (rtol {torch_rtol}, atol
{torch_atol}) before writing them.

Regenerate (rewrites this file and every model directory; `--only MODEL...` rewrites only those models'
directories, and this file):

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

The `_bn` models keep a BatchNormalization (IR `batch_norm`) after each Conv or Gemm, which the exporters
fold away in every other model; they are there for the optimizer's folding. Of the Hugging Face models, the
TorchScript export of `llama_tiny_hf` computes the rotary embedding's `Cos` and `Sin` at run time from
constant angles, which the importer evaluates (the IR has no trigonometric op), and gives `repeat_kv`'s
Expand its target as `Where(Equal(target, -1), 1, target)` over `Shape`, which the importer's shape
values follow; `zeros_like(input_ids)` in `bert_tiny_hf_ts` imports as a `where` over an `equal` of the
ids (a ConstantOfShape over the symbolic shape).

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
    text += "\n## Exports left out\n\n"
    left_out = [(spec, exporter, reason) for spec in SPECS for exporter, reason in spec.left_out.items()]
    if left_out:
        text += "These exports succeed but are not fixtures:\n\n"
        for spec, exporter, reason in left_out:
            text += f"- `{spec.name}_{exporter}` ({EXPORTER_NAMES[exporter]}): {reason}.\n"
    else:
        text += "None.\n"
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
        f"onnxruntime {ort.__version__}, onnxscript {importlib.metadata.version('onnxscript')}, "
        f"transformers {importlib.metadata.version('transformers')}.\n"
    )
    (ROOT / "README.md").write_text(text)


def last_error_line(error: BaseException) -> str:
    """The exception as the exporter reports it: type and message, without the traceback or the terminal
    colour codes the dynamo exporter puts in its messages."""
    message = "".join(traceback.format_exception_only(type(error), error)).strip()
    return re.sub(r"\x1b\[[0-9;]*m", "", message)


def describe_existing(spec: Spec, exporter: str) -> Exported | None:
    """The README row of an existing fixture directory that this run does not regenerate (`--only`), read
    from its files; `None` when the directory does not exist."""
    dir_name = f"{spec.name}_{exporter}"
    model_path = ROOT / dir_name / "model.onnx"
    if not model_path.is_file():
        return None
    model = onnx.load(str(model_path))
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    n_params = count_params(build_model(spec)[0])
    return Exported(dir_name, spec, exporter, opset, n_params, model_path.stat().st_size)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Exports the real-model fixtures in tests/models/.")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="MODEL",
        choices=[spec.name for spec in SPECS],
        help="regenerate only these models' directories and leave the others' files as they are (their "
        "README rows are read from their files); the README is rewritten either way",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    selected = set(args.only) if args.only else {spec.name for spec in SPECS}
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    exported: list[Exported] = []
    failures: list[Failure] = []
    kept: set[str] = set()
    for spec in SPECS:
        for exporter in ("ts", "dynamo"):
            if exporter in spec.left_out:
                continue
            if spec.name not in selected:
                existing = describe_existing(spec, exporter)
                if existing is None:
                    print(
                        f"{spec.name}_{exporter} does not exist; regenerate `{spec.name}` too, or run "
                        "without --only (which also records why a dynamo export failed)",
                        file=sys.stderr,
                    )
                    return 1
                exported.append(existing)
                kept.add(existing.dir_name)
                continue
            try:
                item = export_one(spec, exporter)
            except Exception as error:  # noqa: BLE001 - a failed dynamo export is recorded, not fatal
                if exporter == "ts":
                    raise
                failures.append(Failure(spec, exporter, last_error_line(error)))
                print(f"{spec.name}_{exporter}: FAILED: {last_error_line(error)}", file=sys.stderr)
                continue
            exported.append(item)
            kept.add(item.dir_name)
            print(f"{item.dir_name}: opset {item.opset}, {item.n_params} params, {item.n_bytes} bytes")
    n_both = len({item.spec.name for item in exported if item.exporter == "dynamo"})
    if n_both < 4:
        print(f"only {n_both} models have both exports; at least 4 must", file=sys.stderr)
        return 1
    for entry in sorted(ROOT.iterdir()):
        if entry.is_dir() and (entry / "model.onnx").exists() and entry.name not in kept:
            shutil.rmtree(entry)
    write_readme(exported, failures)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

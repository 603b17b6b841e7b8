//! Synthetic full-topology models for the optimizer at scale: a ResNet-50 and an HF BERT encoder,
//! built with the sinter DSL in the spellings exporters produce, with seeded random weights.
//!
//! The optimizer's targets (saturation plus extraction within 50 ms on ResNet-50 and 200 ms on a
//! 12-layer BERT, every batch norm folded, every attention, LayerNorm and GELU recognised) are about
//! graphs of that size, which the snapshot cases in `tests/opt/` are far from. These builders give
//! those graphs without model files: `benches/opt.rs` times the optimizer on the full-size ones and
//! `tests/opt_scale.rs` checks the rewrites and the numerics on narrow ones with the same node count.
//!
//! - [`resnet50`]: torchvision's ResNet-50 (v1.5, the stride on the 3x3 conv) as PyTorch exports it
//!   for inference with BN not folded: every conv without bias followed by `batch_norm`, bottleneck
//!   blocks `[3, 4, 6, 3]` with a projection shortcut (conv + BN) in each stage's first block,
//!   residual add then relu, global average pool, flatten, gemm. 53 conv/BN pairs.
//! - [`bert`]: HF BERT's encoder as the TorchScript exporter writes it: LayerNorm decomposed into
//!   `reduce_mean`/`sub`/`pow`/`reduce_mean`/`add eps`/`sqrt`/`div`, `* gamma + beta`; GELU as
//!   `x * (1 + erf(x / 1.4142135)) * 0.5`; attention with `reshape + transpose` head splits (the
//!   key's with perm `[0,2,3,1]`), scores times a scale, an additive `[batch,1,1,seq]` mask,
//!   softmax, the context product and the `transpose + reshape` head merge.
//!
//! Batch is symbolic (`batch`); every other dim is static, as after ONNX import with fixed sizes.

use sinter::dsl::nn::Init;
use sinter::dsl::{shape, Conv2dOpts, DType, GemmOpts, GraphBuilder, Tensor};
use sinter::ir::{AutoPad, Graph, Op};

/// The ResNet-50 stages: bottleneck width (`planes`, before the 4x expansion), block count, stride.
const RESNET50_STAGES: [(usize, usize, usize); 4] =
    [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)];

/// The bottleneck's output channels per `planes`.
const EXPANSION: usize = 4;

/// Graph state shared by the layer helpers: the builder, the seeded weights and a counter for unique
/// constant names.
struct Model {
    b: GraphBuilder,
    init: Init,
    n_consts: usize,
}

impl Model {
    fn new(name: &str, seed: u64) -> Model {
        Model {
            b: GraphBuilder::new(name),
            init: Init::new(seed),
            n_consts: 0,
        }
    }

    /// A constant uniform in `[lo, hi)`, named `stem_N`.
    fn uniform(&mut self, stem: &str, shape: &[usize], lo: f32, hi: f32) -> Tensor {
        let value = self.init.uniform(shape, lo, hi);
        self.constant(stem, value)
    }

    /// A rank-0 f32 constant, named `stem_N` (explicit names: the DSL's generated scalar names are
    /// found by a scan per constant, quadratic on graphs this large).
    fn scalar(&mut self, stem: &str, value: f32) -> Tensor {
        self.constant(stem, sinter::ir::Tensor::scalar(value))
    }

    fn constant(&mut self, stem: &str, value: sinter::ir::Tensor) -> Tensor {
        let name = format!("{stem}_{}", self.n_consts);
        self.n_consts += 1;
        self.b.constant(name, value)
    }

    fn build(self, what: &str) -> Graph {
        self.b
            .build()
            .unwrap_or_else(|errors| panic!("the {what} builder is wrong: {errors}"))
    }
}

/// `conv (no bias) -> batch_norm` with random weights (bound `1/sqrt(fan_in)`, PyTorch's default)
/// and random inference statistics (`var > 0`).
fn conv_bn(
    m: &mut Model,
    x: &Tensor,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
) -> Tensor {
    let bound = 1.0 / ((in_channels * kernel * kernel) as f32).sqrt();
    let w = m.uniform(
        "conv_w",
        &[out_channels, in_channels, kernel, kernel],
        -bound,
        bound,
    );
    let opts = Conv2dOpts {
        stride,
        padding: kernel / 2,
        ..Conv2dOpts::default()
    };
    let y = x.conv2d(&w, opts);
    let scale = m.uniform("bn_scale", &[out_channels], 0.5, 1.5);
    let bias = m.uniform("bn_bias", &[out_channels], -0.1, 0.1);
    let mean = m.uniform("bn_mean", &[out_channels], -0.1, 0.1);
    let var = m.uniform("bn_var", &[out_channels], 0.5, 1.5);
    y.batch_norm(&scale, &bias, &mean, &var, 1e-5)
}

/// One bottleneck block: 1x1 reduce, 3x3 (carrying the stride), 1x1 expand, each with BN; the
/// shortcut is a projection (1x1 conv + BN) when the shape changes; residual add, relu.
fn bottleneck(
    m: &mut Model,
    x: &Tensor,
    in_channels: usize,
    planes: usize,
    stride: usize,
) -> Tensor {
    let out_channels = planes * EXPANSION;
    let y = conv_bn(m, x, in_channels, planes, 1, 1).relu();
    let y = conv_bn(m, &y, planes, planes, 3, stride).relu();
    let y = conv_bn(m, &y, planes, out_channels, 1, 1);
    let shortcut = if stride != 1 || in_channels != out_channels {
        conv_bn(m, x, in_channels, out_channels, 1, stride)
    } else {
        x.clone()
    };
    (&y + &shortcut).relu()
}

/// ResNet-50 on `x: f32[batch, 3, image, image]` with every channel count divided by `width_scale`
/// (1 for the real model; larger for a narrow model with the same nodes), output `logits:
/// f32[batch, 1000 / width_scale]`.
///
/// Panics if `width_scale` does not divide 64 or `image` is below 32 (the stem and four stages
/// halve it five times).
pub fn resnet50(width_scale: usize, image: usize) -> Graph {
    assert!(
        width_scale > 0 && 64 % width_scale == 0,
        "width_scale must divide 64, got {width_scale}"
    );
    assert!(image >= 32, "image must be at least 32, got {image}");
    let mut m = Model::new("resnet50", 50);
    let x =
        m.b.input("x", DType::F32, shape![batch, 3, (image), (image)]);
    let stem_channels = 64 / width_scale;
    let y = conv_bn(&mut m, &x, 3, stem_channels, 7, 2).relu();
    let pool = Op::MaxPool {
        kernel_shape: vec![3, 3],
        strides: vec![2, 2],
        pads: vec![1, 1, 1, 1],
        dilations: Vec::new(),
        auto_pad: AutoPad::NotSet,
        ceil_mode: false,
    };
    let mut y = m.b.op(pool, &[Some(&y)]).remove(0);
    let mut channels = stem_channels;
    for (planes, blocks, stride) in RESNET50_STAGES {
        let planes = planes / width_scale;
        for block in 0..blocks {
            let stride = if block == 0 { stride } else { 1 };
            y = bottleneck(&mut m, &y, channels, planes, stride);
            channels = planes * EXPANSION;
        }
    }
    let classes = 1000 / width_scale;
    let features = y.global_avg_pool().flatten(1);
    let bound = 1.0 / (channels as f32).sqrt();
    let w = m.uniform("fc_w", &[classes, channels], -bound, bound);
    let bias = m.uniform("fc_b", &[classes], -bound, bound);
    let gemm = GemmOpts {
        trans_b: true,
        ..GemmOpts::default()
    };
    let logits = features.gemm(&w, Some(&bias), gemm);
    m.b.output("logits", &logits);
    m.build("ResNet-50")
}

/// The sizes of a BERT encoder.
#[derive(Clone, Copy, Debug, PartialEq)]
struct BertConfig {
    hidden: usize,
    heads: usize,
    intermediate: usize,
    seq: usize,
}

/// `x @ w + b` with `w: [in, out]` (the exporter's transposed `nn.Linear` weight).
fn linear(m: &mut Model, x: &Tensor, in_features: usize, out_features: usize) -> Tensor {
    let bound = 1.0 / (in_features as f32).sqrt();
    let w = m.uniform("linear_w", &[in_features, out_features], -bound, bound);
    let b = m.uniform("linear_b", &[out_features], -bound, bound);
    &x.matmul(&w) + &b
}

/// LayerNorm over the last axis, decomposed as the TorchScript exporter writes it, epsilon 1e-12.
fn layer_norm(m: &mut Model, x: &Tensor, hidden: usize) -> Tensor {
    let two = m.scalar("two", 2.0);
    let eps = m.scalar("eps", 1e-12);
    let gamma = m.uniform("ln_gamma", &[hidden], 0.5, 1.5);
    let beta = m.uniform("ln_beta", &[hidden], -0.1, 0.1);
    let centred = x - &x.reduce_mean(&[-1], true);
    let var = centred.pow(&two).reduce_mean(&[-1], true);
    let std = (&var + &eps).sqrt();
    &(&(&centred / &std) * &gamma) + &beta
}

/// GELU in the erf form: `x * (1 + erf(x / 1.4142135)) * 0.5`.
fn gelu_erf(m: &mut Model, x: &Tensor) -> Tensor {
    // The exporter writes `1.4142135`, which is `SQRT_2` in f32.
    let sqrt2 = m.scalar("sqrt2", std::f32::consts::SQRT_2);
    let one = m.scalar("one", 1.0);
    let half = m.scalar("half", 0.5);
    let inner = &(x / &sqrt2).erf() + &one;
    &(x * &inner) * &half
}

/// `[batch, seq, hidden]` to `[batch, heads, seq, head_dim]`, transposed by `perm`.
fn split_heads(x: &Tensor, config: &BertConfig, perm: &[i64]) -> Tensor {
    let head_dim = (config.hidden / config.heads) as i64;
    x.reshape(&[0, config.seq as i64, config.heads as i64, head_dim])
        .transpose(perm)
}

/// One encoder layer: self-attention with the additive mask, output projection, residual and
/// LayerNorm, then the GELU MLP, residual and LayerNorm.
fn encoder_layer(m: &mut Model, x: &Tensor, mask: &Tensor, config: &BertConfig) -> Tensor {
    let hidden = config.hidden;
    let q = linear(m, x, hidden, hidden);
    let k = linear(m, x, hidden, hidden);
    let v = linear(m, x, hidden, hidden);
    let q = split_heads(&q, config, &[0, 2, 1, 3]);
    let kt = split_heads(&k, config, &[0, 2, 3, 1]);
    let v = split_heads(&v, config, &[0, 2, 1, 3]);
    let scale = m.scalar("scale", 1.0 / ((hidden / config.heads) as f32).sqrt());
    let scores = &q.matmul(&kt) * &scale;
    let probs = (&scores + mask).softmax(-1);
    let context =
        probs
            .matmul(&v)
            .transpose(&[0, 2, 1, 3])
            .reshape(&[0, config.seq as i64, hidden as i64]);
    let attended = linear(m, &context, hidden, hidden);
    let h = layer_norm(m, &(&attended + x), hidden);
    let up = linear(m, &h, hidden, config.intermediate);
    let up = gelu_erf(m, &up);
    let down = linear(m, &up, config.intermediate, hidden);
    layer_norm(m, &(&down + &h), hidden)
}

/// An HF BERT encoder of `layers` layers on `hidden_states: f32[batch, seq, hidden]` and the
/// additive attention mask `mask: f32[batch, 1, 1, seq]`: the embeddings' position add and
/// LayerNorm, then the encoder layers (`heads` attention heads, an MLP of width `intermediate`).
/// Output `last_hidden_state: f32[batch, seq, hidden]`. BERT-base is `bert(12, 768, 12, 3072, seq)`.
///
/// Panics if `heads` does not divide `hidden` or a size is 0.
pub fn bert(layers: usize, hidden: usize, heads: usize, intermediate: usize, seq: usize) -> Graph {
    let config = BertConfig {
        hidden,
        heads,
        intermediate,
        seq,
    };
    assert!(
        hidden > 0 && heads > 0 && hidden.is_multiple_of(heads) && intermediate > 0 && seq > 0,
        "bad BERT sizes {config:?}"
    );
    let mut m = Model::new("bert", 12);
    let x =
        m.b.input("hidden_states", DType::F32, shape![batch, (seq), (hidden)]);
    let mask = m.b.input("mask", DType::F32, shape![batch, 1, 1, (seq)]);
    let positions = m.uniform("position_embeddings", &[seq, hidden], -0.1, 0.1);
    let mut h = layer_norm(&mut m, &(&x + &positions), hidden);
    for _ in 0..layers {
        h = encoder_layer(&mut m, &h, &mask, &config);
    }
    m.b.output("last_hidden_state", &h);
    m.build("BERT")
}

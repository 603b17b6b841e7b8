//! Layer helpers: linear, conv block, layer norm, LSTM, GRU and multi-head attention.
//!
//! Each helper opens a numbered scope (`linear_0`, `mha_1`) that prefixes the labels of the nodes it
//! builds and names its parameters (`linear_0.weight`, `mha_1.q.bias`). Parameters come from a
//! [`Params`] source: [`Init`] for seeded random weights, [`Weights`] for given ones, looked up by
//! those names. A poisoned input makes a helper return poisoned handles without requesting any
//! parameter or recording a new error.
//!
//! [`multi_head_attention`] builds attention from matmul, scale, mask, softmax and matmul, the form
//! the optimizer recognizes and fuses; [`attention_op`] builds the same layer (same parameter names,
//! so the same weights) around the fused `attention` op. The two agree numerically.

mod params;

pub use params::{Init, ParamInit, ParamSpec, Params, SplitMix64, Weights};

use crate::builder::{self, Scope};
use crate::{AttentionOpts, Conv2dOpts, Tensor};
use sinter_ir::{Dim, Op, RnnDirection, TensorData};

/// Requests parameter `{scope}.{local}` and adds it as a constant; a missing or mismatched
/// parameter is recorded against `method`.
fn param(
    x: &Tensor,
    scope: &Scope,
    params: &mut dyn Params,
    method: &str,
    local: &str,
    shape: &[usize],
    init: ParamInit,
) -> Tensor {
    let name = format!("{}.{local}", scope.path);
    let spec = ParamSpec {
        name: &name,
        shape,
        init,
    };
    match params.param(&spec) {
        Ok(tensor) => builder::add_named_const(&x.state, name, tensor),
        Err(message) => x.argument_error(method, message),
    }
}

/// The uniform bound PyTorch uses for a layer with `fan_in` inputs per output.
fn fan_in_bound(fan_in: usize) -> ParamInit {
    ParamInit::Uniform {
        bound: 1.0 / (fan_in as f32).sqrt(),
    }
}

/// The static size of axis `axis_idx` of `x`, or why there is none.
fn static_dim(x: &Tensor, axis_idx: usize, what: &str) -> Result<usize, String> {
    let shape = x.shape().ok_or_else(|| "input is poisoned".to_string())?;
    match shape.dims().get(axis_idx) {
        Some(Dim::Static(n)) => Ok(*n),
        Some(Dim::Sym(name)) => Err(format!(
            "{what} (axis {axis_idx}) must be static, got `{name}`"
        )),
        None => Err(format!(
            "{what} is axis {axis_idx}, but the input has shape {shape}"
        )),
    }
}

/// `x @ weight + bias` with `weight: [in_features, out_features]`, over the last axis of `x`.
pub fn linear(
    x: &Tensor,
    in_features: usize,
    out_features: usize,
    params: &mut dyn Params,
) -> Tensor {
    if x.is_poisoned() {
        return x.poisoned();
    }
    let scope = Scope::numbered(&x.state, "linear");
    linear_in(x, &scope, in_features, out_features, params)
}

fn linear_in(
    x: &Tensor,
    scope: &Scope,
    in_features: usize,
    out_features: usize,
    params: &mut dyn Params,
) -> Tensor {
    if in_features == 0 || out_features == 0 {
        return x.argument_error(
            "nn::linear",
            format!("feature counts must be at least 1, got {in_features} -> {out_features}"),
        );
    }
    let bound = fan_in_bound(in_features);
    let weight = param(
        x,
        scope,
        params,
        "nn::linear",
        "weight",
        &[in_features, out_features],
        bound,
    );
    let bias = param(
        x,
        scope,
        params,
        "nn::linear",
        "bias",
        &[out_features],
        bound,
    );
    x.matmul(&weight).add(&bias)
}

/// Options of [`conv_block`]. `ConvBlockOpts::new(channels, kernel)` gives stride 1, no padding and
/// no pooling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvBlockOpts {
    /// Output channels.
    pub channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// A max pool of this window and stride after the activation.
    pub pool: Option<usize>,
}

impl ConvBlockOpts {
    pub fn new(channels: usize, kernel: usize) -> ConvBlockOpts {
        ConvBlockOpts {
            channels,
            kernel,
            stride: 1,
            padding: 0,
            pool: None,
        }
    }
}

/// `conv2d + bias -> relu [-> max_pool2d]` on `x: [N, C, H, W]` with a static channel count `C`.
pub fn conv_block(x: &Tensor, opts: ConvBlockOpts, params: &mut dyn Params) -> Tensor {
    if x.is_poisoned() {
        return x.poisoned();
    }
    let in_channels = match static_dim(x, 1, "the channel count") {
        Ok(n) => n,
        Err(message) => return x.argument_error("nn::conv_block", message),
    };
    if opts.channels == 0 || opts.kernel == 0 {
        return x.argument_error(
            "nn::conv_block",
            format!(
                "channels and kernel must be at least 1, got {} and {}",
                opts.channels, opts.kernel
            ),
        );
    }
    let scope = Scope::numbered(&x.state, "conv_block");
    let bound = fan_in_bound(in_channels * opts.kernel * opts.kernel);
    let weight_shape = [opts.channels, in_channels, opts.kernel, opts.kernel];
    let weight = param(
        x,
        &scope,
        params,
        "nn::conv_block",
        "weight",
        &weight_shape,
        bound,
    );
    let bias = param(
        x,
        &scope,
        params,
        "nn::conv_block",
        "bias",
        &[opts.channels],
        bound,
    );
    let conv_opts = Conv2dOpts {
        stride: opts.stride,
        padding: opts.padding,
        bias: Some(&bias),
        ..Conv2dOpts::default()
    };
    let y = x.conv2d(&weight, conv_opts).relu();
    match opts.pool {
        Some(window) => y.max_pool2d(window, window),
        None => y,
    }
}

/// Layer normalization over the last axis of size `dim`, with a learned scale (initially ones) and
/// bias (initially zeros).
pub fn layer_norm(x: &Tensor, dim: usize, epsilon: f32, params: &mut dyn Params) -> Tensor {
    if x.is_poisoned() {
        return x.poisoned();
    }
    let scope = Scope::numbered(&x.state, "layer_norm");
    let scale = param(
        x,
        &scope,
        params,
        "nn::layer_norm",
        "scale",
        &[dim],
        ParamInit::Ones,
    );
    let bias = param(
        x,
        &scope,
        params,
        "nn::layer_norm",
        "bias",
        &[dim],
        ParamInit::Zeros,
    );
    x.layer_norm(&scale, Some(&bias), -1, epsilon)
}

/// Options of [`lstm`]; the default runs forward from zero states.
#[derive(Clone, Copy, Debug)]
pub struct LstmOpts<'a> {
    pub direction: RnnDirection,
    /// `[num_directions, batch, hidden]`; zeros when absent.
    pub initial_h: Option<&'a Tensor>,
    /// `[num_directions, batch, hidden]`; zeros when absent.
    pub initial_c: Option<&'a Tensor>,
}

/// Options of [`gru`]; the default runs forward from a zero state.
#[derive(Clone, Copy, Debug)]
pub struct GruOpts<'a> {
    pub direction: RnnDirection,
    /// `[num_directions, batch, hidden]`; zeros when absent.
    pub initial_h: Option<&'a Tensor>,
    /// Applies the reset gate after the recurrent matmul (the cuDNN and PyTorch form).
    pub linear_before_reset: bool,
}

impl Default for LstmOpts<'_> {
    fn default() -> Self {
        LstmOpts {
            direction: RnnDirection::Forward,
            initial_h: None,
            initial_c: None,
        }
    }
}

impl Default for GruOpts<'_> {
    fn default() -> Self {
        GruOpts {
            direction: RnnDirection::Forward,
            initial_h: None,
            linear_before_reset: false,
        }
    }
}

fn num_directions(direction: RnnDirection) -> usize {
    match direction {
        RnnDirection::Bidirectional => 2,
        _ => 1,
    }
}

/// The weights shared by the recurrent helpers: ONNX `W: [dirs, gates * H, input]`,
/// `R: [dirs, gates * H, H]` and `B: [dirs, 2 * gates * H]`.
struct RecurrentWeights {
    w: Tensor,
    r: Tensor,
    b: Tensor,
}

fn recurrent_weights(
    x: &Tensor,
    scope: &Scope,
    params: &mut dyn Params,
    method: &str,
    n_gates: usize,
    hidden_size: usize,
    direction: RnnDirection,
) -> Result<RecurrentWeights, String> {
    let input_size = static_dim(x, 2, "the input feature count")?;
    if hidden_size == 0 {
        return Err("hidden_size must be at least 1".to_string());
    }
    let n_dirs = num_directions(direction);
    let bound = fan_in_bound(hidden_size);
    let gates = n_gates * hidden_size;
    Ok(RecurrentWeights {
        w: param(
            x,
            scope,
            params,
            method,
            "w",
            &[n_dirs, gates, input_size],
            bound,
        ),
        r: param(
            x,
            scope,
            params,
            method,
            "r",
            &[n_dirs, gates, hidden_size],
            bound,
        ),
        b: param(x, scope, params, method, "b", &[n_dirs, 2 * gates], bound),
    })
}

/// An ONNX LSTM over `x: [seq, batch, input]`. Returns `(y, y_h, y_c)`: all hidden states
/// `[seq, dirs, batch, hidden]`, and the last hidden and cell states `[dirs, batch, hidden]`.
pub fn lstm(
    x: &Tensor,
    hidden_size: usize,
    opts: LstmOpts<'_>,
    params: &mut dyn Params,
) -> (Tensor, Tensor, Tensor) {
    if x.is_poisoned() {
        return (x.poisoned(), x.poisoned(), x.poisoned());
    }
    let scope = Scope::numbered(&x.state, "lstm");
    let weights = match recurrent_weights(
        x,
        &scope,
        params,
        "nn::lstm",
        4,
        hidden_size,
        opts.direction,
    ) {
        Ok(weights) => weights,
        Err(message) => {
            let poisoned = x.argument_error("nn::lstm", message);
            return (poisoned.clone(), poisoned.clone(), poisoned);
        }
    };
    let op = Op::Lstm {
        hidden_size: hidden_size as i64,
        direction: opts.direction,
        activations: Vec::new(),
        activation_alpha: Vec::new(),
        activation_beta: Vec::new(),
        clip: None,
        layout: 0,
        input_forget: false,
    };
    let inputs = [
        Some(x),
        Some(&weights.w),
        Some(&weights.r),
        Some(&weights.b),
        None,
        opts.initial_h,
        opts.initial_c,
    ];
    let mut outputs = builder::apply(&x.state, "lstm", op, &inputs).into_iter();
    let mut next = || outputs.next().unwrap_or_else(|| x.poisoned());
    (next(), next(), next())
}

/// An ONNX GRU over `x: [seq, batch, input]`. Returns `(y, y_h)` as for [`lstm`].
pub fn gru(
    x: &Tensor,
    hidden_size: usize,
    opts: GruOpts<'_>,
    params: &mut dyn Params,
) -> (Tensor, Tensor) {
    if x.is_poisoned() {
        return (x.poisoned(), x.poisoned());
    }
    let scope = Scope::numbered(&x.state, "gru");
    let weights =
        match recurrent_weights(x, &scope, params, "nn::gru", 3, hidden_size, opts.direction) {
            Ok(weights) => weights,
            Err(message) => {
                let poisoned = x.argument_error("nn::gru", message);
                return (poisoned.clone(), poisoned);
            }
        };
    let op = Op::Gru {
        hidden_size: hidden_size as i64,
        direction: opts.direction,
        activations: Vec::new(),
        activation_alpha: Vec::new(),
        activation_beta: Vec::new(),
        clip: None,
        layout: 0,
        linear_before_reset: opts.linear_before_reset,
    };
    let inputs = [
        Some(x),
        Some(&weights.w),
        Some(&weights.r),
        Some(&weights.b),
        None,
        opts.initial_h,
    ];
    let mut outputs = builder::apply(&x.state, "gru", op, &inputs).into_iter();
    let mut next = || outputs.next().unwrap_or_else(|| x.poisoned());
    (next(), next())
}

/// Options of [`multi_head_attention`] and [`attention_op`].
#[derive(Clone, Copy, Debug)]
pub struct MultiHeadOpts<'a> {
    pub n_heads: usize,
    /// Broadcast to the scores `[batch, heads, seq, seq]`: a bool mask keeps `true` positions (a
    /// key padding mask is `[batch, 1, 1, seq]`), a float mask is added.
    pub mask: Option<&'a Tensor>,
    /// Each position attends only to itself and earlier positions.
    pub causal: bool,
}

impl MultiHeadOpts<'_> {
    pub fn new(n_heads: usize) -> MultiHeadOpts<'static> {
        MultiHeadOpts {
            n_heads,
            mask: None,
            causal: false,
        }
    }
}

/// Which attention core [`mha`] builds between the projections.
#[derive(Clone, Copy, PartialEq)]
enum AttentionCore {
    Decomposed,
    Fused,
}

/// Multi-head self-attention over `x: [batch, seq, d_model]`, decomposed into
/// `softmax(mask(q @ k^T * scale)) @ v` per head. Parameters: `mha_N.{q,k,v,out}.{weight,bias}`.
pub fn multi_head_attention(
    x: &Tensor,
    d_model: usize,
    opts: MultiHeadOpts<'_>,
    params: &mut dyn Params,
) -> Tensor {
    mha(x, d_model, opts, params, AttentionCore::Decomposed)
}

/// The same layer as [`multi_head_attention`] (same parameter names and order), with the fused
/// `attention` op as its core.
pub fn attention_op(
    x: &Tensor,
    d_model: usize,
    opts: MultiHeadOpts<'_>,
    params: &mut dyn Params,
) -> Tensor {
    mha(x, d_model, opts, params, AttentionCore::Fused)
}

fn mha(
    x: &Tensor,
    d_model: usize,
    opts: MultiHeadOpts<'_>,
    params: &mut dyn Params,
    core: AttentionCore,
) -> Tensor {
    const METHOD: &str = "nn::multi_head_attention";
    let Some(rank) = x.rank() else {
        return x.poisoned();
    };
    if rank != 3 {
        return x.argument_error(
            METHOD,
            format!("needs x: [batch, seq, d_model], got rank {rank}"),
        );
    }
    if opts.n_heads == 0 || !d_model.is_multiple_of(opts.n_heads) {
        return x.argument_error(
            METHOD,
            format!(
                "d_model {d_model} must be a positive multiple of n_heads {}",
                opts.n_heads
            ),
        );
    }
    if let Some(mask) = opts.mask {
        if mask.is_poisoned() {
            return x.poisoned();
        }
    }
    let causal_mask = if opts.causal && core == AttentionCore::Decomposed {
        match static_dim(x, 1, "the sequence length") {
            Ok(seq) => Some(causal_mask(x, seq)),
            Err(message) => {
                return x.argument_error(
                    METHOD,
                    format!("a causal decomposed mask needs a static sequence length ({message}); use nn::attention_op"),
                )
            }
        }
    } else {
        None
    };
    let scope = Scope::numbered(&x.state, "mha");
    let mut project = |name: &str, input: &Tensor| {
        let inner = Scope::named(&x.state, name);
        linear_in(input, &inner, d_model, d_model, params)
    };
    let q = project("q", x);
    let k = project("k", x);
    let v = project("v", x);
    let n_heads = opts.n_heads;
    let context = match core {
        AttentionCore::Fused => q.attention(
            &k,
            &v,
            AttentionOpts {
                mask: opts.mask,
                scale: None,
                causal: opts.causal,
                q_num_heads: n_heads,
                kv_num_heads: n_heads,
            },
        ),
        AttentionCore::Decomposed => {
            let head_dim = d_model / n_heads;
            // [batch, seq, d_model] -> [batch, heads, seq, head_dim]; 0 copies a (maybe symbolic) dim.
            let split_heads = |t: &Tensor| {
                t.reshape(&[0, 0, n_heads as i64, head_dim as i64])
                    .transpose(&[0, 2, 1, 3])
            };
            let (q, k, v) = (split_heads(&q), split_heads(&k), split_heads(&v));
            let mut scores = q.matmul(&k.t()).scale(1.0 / (head_dim as f32).sqrt());
            if let Some(mask) = opts.mask {
                scores = apply_mask(&scores, mask);
            }
            if let Some(causal) = &causal_mask {
                scores = apply_mask(&scores, causal);
            }
            scores
                .softmax(-1)
                .matmul(&v)
                .transpose(&[0, 2, 1, 3])
                .reshape(&[0, 0, d_model as i64])
        }
    };
    let out = project("out", &context);
    drop(scope);
    out
}

/// Applies an attention mask to scores: a bool mask replaces dropped positions with `-inf` (the
/// `attention` op's semantics, so the optimizer may fuse this form), a float mask is added.
fn apply_mask(scores: &Tensor, mask: &Tensor) -> Tensor {
    match mask.dtype() {
        Some(sinter_ir::DType::Bool) => mask.where_(scores, &scores.scalar_like(f64::NEG_INFINITY)),
        Some(_) => scores.add(mask),
        None => scores.poisoned(),
    }
}

/// A `[seq, seq]` bool constant, true on and below the diagonal.
fn causal_mask(x: &Tensor, seq: usize) -> Tensor {
    let data: Vec<bool> = (0..seq * seq).map(|idx| idx % seq <= idx / seq).collect();
    let tensor = sinter_ir::Tensor::new(vec![seq, seq], TensorData::Bool(data.into()))
        .expect("seq * seq elements");
    builder::add_const(&x.state, "causal_mask", tensor)
}

//! Compute methods: matrix products, convolution and pooling, normalization, reductions and
//! attention, with config structs for the ops that take many parameters.
//!
//! Attributes equal to their IR defaults are left at the default (empty `strides` rather than
//! `[1, 1]`), so built graphs print the way a hand-written `.sir` file would.

use crate::builder::apply1;
use crate::Tensor;
use sinter_ir::Op;

/// Options of [`Tensor::conv2d`]: square strides, symmetric padding and dilation, and an optional
/// bias of shape `[out_channels]`.
#[derive(Clone, Copy, Debug)]
pub struct Conv2dOpts<'a> {
    pub stride: usize,
    /// Zero padding added on every side of both spatial axes.
    pub padding: usize,
    pub dilation: usize,
    /// Channel groups; the weight is `[out_channels, in_channels / groups, kh, kw]`.
    pub groups: usize,
    pub bias: Option<&'a Tensor>,
}

impl Default for Conv2dOpts<'_> {
    fn default() -> Self {
        Conv2dOpts {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            bias: None,
        }
    }
}

/// Options of [`Tensor::gemm`]: `alpha * op(a) @ op(b) + beta * c`.
#[derive(Clone, Copy, Debug)]
pub struct GemmOpts {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl Default for GemmOpts {
    fn default() -> Self {
        GemmOpts {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        }
    }
}

/// Options of [`Tensor::attention`], the fused scaled dot-product attention op.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionOpts<'a> {
    /// A bool mask (keeps `true`) or a float mask (added), broadcast to the scores.
    pub mask: Option<&'a Tensor>,
    /// The score scale; `None` means `1 / sqrt(head_dim)`.
    pub scale: Option<f32>,
    /// Masks out keys after the query position.
    pub causal: bool,
    /// Head counts, needed for 3-d `[batch, seq, heads * head_dim]` operands; 0 for 4-d ones.
    pub q_num_heads: usize,
    pub kv_num_heads: usize,
}

/// `v` repeated twice, or empty when it equals `default` (the IR's spelling of "all default").
fn pair_or_empty(v: usize, default: usize) -> Vec<i64> {
    if v == default {
        Vec::new()
    } else {
        vec![v as i64; 2]
    }
}

macro_rules! reduce_methods {
    ($($(#[$doc:meta])* $method:ident => $variant:ident),* $(,)?) => {
        impl Tensor {
            $(
                $(#[$doc])*
                /// Empty `axes` reduces every axis.
                pub fn $method(&self, axes: &[i64], keepdims: bool) -> Tensor {
                    self.unary_op(
                        stringify!($method),
                        Op::$variant {
                            axes: axes.to_vec(),
                            keepdims,
                            noop_with_empty_axes: false,
                        },
                    )
                }
            )*
        }
    };
}

reduce_methods! {
    /// Sum over `axes`.
    reduce_sum => ReduceSum,
    /// Mean over `axes`.
    reduce_mean => ReduceMean,
    /// Maximum over `axes`.
    reduce_max => ReduceMax,
    /// Minimum over `axes`.
    reduce_min => ReduceMin,
    /// Product over `axes`.
    reduce_prod => ReduceProd,
    /// Sum of absolute values over `axes`.
    reduce_l1 => ReduceL1,
    /// Euclidean norm over `axes`.
    reduce_l2 => ReduceL2,
    /// Sum of squares over `axes`.
    reduce_sum_square => ReduceSumSquare,
    /// `log(sum(exp(x)))` over `axes`.
    reduce_log_sum_exp => ReduceLogSumExp,
}

impl Tensor {
    /// numpy `matmul`: batched over leading dims, which broadcast.
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        self.binary_op("matmul", Op::MatMul {}, other)
    }

    /// `alpha * op(self) @ op(b) + beta * c` on 2-d operands.
    pub fn gemm(&self, b: &Tensor, c: Option<&Tensor>, opts: GemmOpts) -> Tensor {
        let op = Op::Gemm {
            alpha: opts.alpha,
            beta: opts.beta,
            trans_a: opts.trans_a,
            trans_b: opts.trans_b,
        };
        apply1(&self.state, "gemm", op, &[Some(self), Some(b), c])
    }

    /// 2-d convolution of `self: [N, C, H, W]` with `weight: [M, C / groups, kh, kw]`.
    pub fn conv2d(&self, weight: &Tensor, opts: Conv2dOpts<'_>) -> Tensor {
        if opts.stride == 0 || opts.dilation == 0 || opts.groups == 0 {
            return self.argument_error(
                "conv2d",
                format!(
                    "stride, dilation and groups must be at least 1, got stride {}, dilation {}, groups {}",
                    opts.stride, opts.dilation, opts.groups
                ),
            );
        }
        let op = Op::Conv {
            strides: pair_or_empty(opts.stride, 1),
            pads: if opts.padding == 0 {
                Vec::new()
            } else {
                vec![opts.padding as i64; 4]
            },
            dilations: pair_or_empty(opts.dilation, 1),
            group: opts.groups as i64,
            auto_pad: sinter_ir::AutoPad::NotSet,
        };
        apply1(
            &self.state,
            "conv2d",
            op,
            &[Some(self), Some(weight), opts.bias],
        )
    }

    /// Max pooling over `kernel x kernel` windows with the given stride, no padding.
    pub fn max_pool2d(&self, kernel: usize, stride: usize) -> Tensor {
        if kernel == 0 || stride == 0 {
            return self.argument_error(
                "max_pool2d",
                format!(
                    "kernel and stride must be at least 1, got kernel {kernel}, stride {stride}"
                ),
            );
        }
        let op = Op::MaxPool {
            kernel_shape: vec![kernel as i64; 2],
            strides: pair_or_empty(stride, 1),
            pads: Vec::new(),
            dilations: Vec::new(),
            auto_pad: sinter_ir::AutoPad::NotSet,
            ceil_mode: false,
        };
        self.unary_op("max_pool2d", op)
    }

    /// Average pooling over `kernel x kernel` windows with the given stride, no padding.
    pub fn avg_pool2d(&self, kernel: usize, stride: usize) -> Tensor {
        if kernel == 0 || stride == 0 {
            return self.argument_error(
                "avg_pool2d",
                format!(
                    "kernel and stride must be at least 1, got kernel {kernel}, stride {stride}"
                ),
            );
        }
        let op = Op::AveragePool {
            kernel_shape: vec![kernel as i64; 2],
            strides: pair_or_empty(stride, 1),
            pads: Vec::new(),
            dilations: Vec::new(),
            auto_pad: sinter_ir::AutoPad::NotSet,
            ceil_mode: false,
            count_include_pad: false,
        };
        self.unary_op("avg_pool2d", op)
    }

    /// Mean over all spatial positions, keeping them as size-1 dims.
    pub fn global_avg_pool(&self) -> Tensor {
        self.unary_op("global_avg_pool", Op::GlobalAveragePool {})
    }

    /// Maximum over all spatial positions, keeping them as size-1 dims.
    pub fn global_max_pool(&self) -> Tensor {
        self.unary_op("global_max_pool", Op::GlobalMaxPool {})
    }

    pub fn softmax(&self, axis: i64) -> Tensor {
        self.unary_op("softmax", Op::Softmax { axis })
    }

    pub fn log_softmax(&self, axis: i64) -> Tensor {
        self.unary_op("log_softmax", Op::LogSoftmax { axis })
    }

    /// Normalizes over the dims from `axis` to the end, then applies `scale` and `bias`.
    pub fn layer_norm(
        &self,
        scale: &Tensor,
        bias: Option<&Tensor>,
        axis: i64,
        epsilon: f32,
    ) -> Tensor {
        apply1(
            &self.state,
            "layer_norm",
            Op::LayerNorm { axis, epsilon },
            &[Some(self), Some(scale), bias],
        )
    }

    /// `x / sqrt(mean(x^2) + epsilon) * scale` over the dims from `axis` to the end.
    pub fn rms_norm(&self, scale: &Tensor, axis: i64, epsilon: f32) -> Tensor {
        self.binary_op("rms_norm", Op::RmsNorm { axis, epsilon }, scale)
    }

    /// Inference batch normalization over axis 1 with per-channel statistics.
    pub fn batch_norm(
        &self,
        scale: &Tensor,
        bias: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        epsilon: f32,
    ) -> Tensor {
        apply1(
            &self.state,
            "batch_norm",
            Op::BatchNorm { epsilon },
            &[Some(self), Some(scale), Some(bias), Some(mean), Some(var)],
        )
    }

    pub fn instance_norm(&self, scale: &Tensor, bias: &Tensor, epsilon: f32) -> Tensor {
        apply1(
            &self.state,
            "instance_norm",
            Op::InstanceNorm { epsilon },
            &[Some(self), Some(scale), Some(bias)],
        )
    }

    pub fn group_norm(
        &self,
        scale: &Tensor,
        bias: &Tensor,
        num_groups: usize,
        epsilon: f32,
    ) -> Tensor {
        apply1(
            &self.state,
            "group_norm",
            Op::GroupNorm {
                num_groups: num_groups as i64,
                epsilon,
            },
            &[Some(self), Some(scale), Some(bias)],
        )
    }

    /// Index (i64) of the first maximum along `axis`.
    pub fn argmax(&self, axis: i64, keepdims: bool) -> Tensor {
        let op = Op::ArgMax {
            axis,
            keepdims,
            select_last_index: false,
        };
        self.unary_op("argmax", op)
    }

    /// Index (i64) of the first minimum along `axis`.
    pub fn argmin(&self, axis: i64, keepdims: bool) -> Tensor {
        let op = Op::ArgMin {
            axis,
            keepdims,
            select_last_index: false,
        };
        self.unary_op("argmin", op)
    }

    /// Scaled dot-product attention with `self` as the queries: `softmax(q @ k^T * scale + mask) @ v`.
    pub fn attention(&self, k: &Tensor, v: &Tensor, opts: AttentionOpts<'_>) -> Tensor {
        let op = Op::Attention {
            scale: opts.scale,
            causal: opts.causal,
            q_num_heads: opts.q_num_heads as i64,
            kv_num_heads: opts.kv_num_heads as i64,
            softcap: 0.0,
        };
        apply1(
            &self.state,
            "attention",
            op,
            &[Some(self), Some(k), Some(v), opts.mask],
        )
    }
}

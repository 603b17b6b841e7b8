//! ONNX `Attention` (opsets 23, 24 and 25).
//!
//! The IR's fused `attention` op is used when its semantics provably match the node's, which is the
//! common case: no `qk_matmul_output`, no `nonpad_kv_seqlen`, no sliding window, a float mask or none,
//! a softcap only without masking, and causal masking only without a KV cache. Two differences to
//! ONNX as onnx 1.23's reference defines it are bridged even then:
//! - grouped-query attention pairs query head `h` with key/value head `h / (Hq / Hkv)`
//!   (`repeat_interleave`), while the IR pairs it with `h mod Hkv`; the key/value heads are
//!   therefore repeated explicitly (a `gather` on the head axis) so both groupings coincide;
//! - `past_key`/`past_value` are concatenated in front of `K`/`V` on the sequence axis (3-d operands
//!   are first split into heads); the concatenations are the `present_key`/`present_value` outputs.
//!
//! Every other node is **decomposed** into primitive IR ops following the reference step by step:
//! scores `q @ kᵀ * scale`, the softcap, an additive bias (the mask, with bool masks mapped to
//! 0/-inf and short masks padded; bottom-right aligned causal and window masks, offset by the cache
//! length or by `nonpad_kv_seqlen`; the padding mask of `nonpad_kv_seqlen`), the softmax, the
//! fully-masked-row guard (rows whose bias is all -inf become zeros), and the product with `v`.
//! Bool masks take this path because the fused op leaves fully masked rows NaN while ONNX 1.23
//! makes them zero, and bool padding masks are where such rows occur. The causal and window masks
//! need static sequence lengths.

use super::elementwise::scalar_of;
use super::{invalid, unsupported, Lowered, NodeCx, NodeResult, Opd};
use sinter_ir::{DType, Dim, Op, PadMode, Tensor};

/// The attributes of the node.
struct Attrs {
    causal: bool,
    scale: Option<f32>,
    softcap: f32,
    qk_mode: i64,
    left_window: i64,
    right_window: i64,
}

/// A static dim, or an unsupported error naming what needed it.
fn static_dim(cx: &NodeCx, opd: Opd, axis: usize, what: &str) -> NodeResult<usize> {
    match cx.dims(opd).get(axis) {
        Some(Dim::Static(n)) => Ok(*n),
        Some(Dim::Sym(s)) => unsupported(format!("{what} must be static, got `{s}`")),
        None => invalid(format!("{what}: input {} has no axis {axis}", cx.ty(opd))),
    }
}

/// `[B, S, H * D]` to `[B, H, S, D]`.
fn split_heads(cx: &mut NodeCx, x: Opd, n_heads: usize, what: &str) -> NodeResult<Opd> {
    let hidden = static_dim(cx, x, 2, &format!("the hidden size of 3-d `{what}`"))?;
    if n_heads == 0 || hidden % n_heads != 0 {
        return invalid(format!(
            "the hidden size {hidden} of `{what}` is not a multiple of its head count {n_heads}"
        ));
    }
    let shape = vec![0, 0, n_heads as i64, (hidden / n_heads) as i64];
    let split = cx.emit1(
        Op::Reshape {
            shape,
            allowzero: false,
        },
        &[x],
    )?;
    cx.emit1(
        Op::Transpose {
            perm: vec![0, 2, 1, 3],
        },
        &[split],
    )
}

/// `[B, H, S, D]` to `[B, S, H * D]`.
fn merge_heads(cx: &mut NodeCx, y: Opd) -> NodeResult<Opd> {
    let n_heads = static_dim(cx, y, 1, "the head count of the attention output")?;
    let head_size = static_dim(cx, y, 3, "the head size of the attention output")?;
    let swapped = cx.emit1(
        Op::Transpose {
            perm: vec![0, 2, 1, 3],
        },
        &[y],
    )?;
    let shape = vec![0, 0, (n_heads * head_size) as i64];
    cx.emit1(
        Op::Reshape {
            shape,
            allowzero: false,
        },
        &[swapped],
    )
}

/// Repeats each of the `n_kv` heads of a 4-d operand `n_rep` times in place (`[h0, h0, h1, h1]`).
fn repeat_heads(cx: &mut NodeCx, x: Opd, n_kv: usize, n_rep: usize) -> NodeResult<Opd> {
    if n_rep == 1 {
        return Ok(x);
    }
    // The head axis of a real operand is small; this bounds the index built from it.
    if n_kv.saturating_mul(n_rep) > super::MAX_FOLDED_ELEMENTS {
        return unsupported(format!(
            "{} query heads are more than the import limit",
            n_kv.saturating_mul(n_rep)
        ));
    }
    let indices: Vec<i64> = (0..n_kv * n_rep).map(|h| (h / n_rep) as i64).collect();
    let indices = Tensor::from_vec(vec![n_kv * n_rep], indices)
        .map_err(|e| super::NodeError::Invalid(e.to_string()))?;
    let indices = cx.constant(indices);
    cx.emit1(Op::Gather { axis: 1 }, &[x, indices])
}

/// The head counts: from the attributes for 3-d operands, from the head axes for 4-d ones
/// (`None` when symbolic).
fn head_counts(
    cx: &NodeCx,
    q: Opd,
    k: Opd,
    three_d: bool,
) -> NodeResult<(Option<usize>, Option<usize>)> {
    let attrs = cx.attrs();
    if three_d {
        let count = |name: &str| -> NodeResult<Option<usize>> {
            match attrs.int(name)? {
                Some(n) if n > 0 => Ok(usize::try_from(n).ok()),
                _ => invalid(format!(
                    "attribute `{name}` must be positive for 3-d inputs"
                )),
            }
        };
        Ok((count("q_num_heads")?, count("kv_num_heads")?))
    } else {
        let dim = |opd: Opd| cx.dims(opd).get(1).and_then(Dim::as_static);
        Ok((dim(q), dim(k)))
    }
}

pub(crate) fn attention(cx: &mut NodeCx) -> NodeResult<Lowered> {
    let a = cx.attrs();
    let attrs = Attrs {
        causal: a.flag_or("is_causal", false)?,
        scale: a.float("scale")?,
        softcap: a.float_or("softcap", 0.0)?,
        qk_mode: a.int_or("qk_matmul_output_mode", 0)?,
        left_window: a.int_or("left_window_size", -1)?,
        right_window: a.int_or("right_window_size", -1)?,
    };
    if !(0..=3).contains(&attrs.qk_mode) {
        return invalid(format!(
            "attribute `qk_matmul_output_mode` must be 0 to 3, got {}",
            attrs.qk_mode
        ));
    }
    let (q, k, v) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let mask = cx.opt_input(3);
    let (past_k, past_v) = (cx.opt_input(4), cx.opt_input(5));
    let nonpad = cx.opt_input(6);
    if past_k.is_some() != past_v.is_some() {
        return invalid("`past_key` and `past_value` must be given together");
    }
    if nonpad.is_some() && past_k.is_some() {
        return invalid("`nonpad_kv_seqlen` cannot be combined with `past_key`/`past_value`");
    }
    let rank = cx.ty(q).rank();
    if !(rank == 3 || rank == 4) || cx.ty(k).rank() != rank || cx.ty(v).rank() != rank {
        return invalid(format!(
            "`Q`, `K` and `V` must all be 3-d or all 4-d, got {}, {} and {}",
            cx.ty(q),
            cx.ty(k),
            cx.ty(v)
        ));
    }
    let three_d = rank == 3;
    let (n_q_heads, n_kv_heads) = head_counts(cx, q, k, three_d)?;
    // The IR groups heads by `h mod Hkv`, ONNX by `h / (Hq / Hkv)`: they agree for Hkv = 1 or Hq.
    let regroup = match (n_q_heads, n_kv_heads) {
        (Some(hq), Some(hkv)) if hkv > 1 && hq != hkv => {
            if hq % hkv != 0 {
                return invalid(format!(
                    "the query head count {hq} is not a multiple of the key/value head count {hkv}"
                ));
            }
            Some((hkv, hq / hkv))
        }
        (None, _) | (_, None) if !three_d && cx.dims(q).get(1) != cx.dims(k).get(1) => {
            return unsupported(
                "grouped-query attention with symbolic head counts is not supported",
            )
        }
        _ => None,
    };
    let mask_is_bool = mask.is_some_and(|m| cx.ty(m).dtype == DType::Bool);
    let fused = !cx.output_used(3)
        && nonpad.is_none()
        && attrs.left_window < 0
        && attrs.right_window < 0
        && (attrs.softcap <= 0.0 || (mask.is_none() && !attrs.causal))
        && (!attrs.causal || past_k.is_none())
        && !mask_is_bool;
    let needs_heads =
        !fused || past_k.is_some() || regroup.is_some() || cx.output_used(1) || cx.output_used(2);

    if fused && !needs_heads {
        // Plain 3-d or 4-d attention: the IR op takes the operands as they are.
        let op = Op::Attention {
            scale: attrs.scale,
            causal: attrs.causal,
            q_num_heads: if three_d {
                n_q_heads.unwrap_or(0) as i64
            } else {
                0
            },
            kv_num_heads: if three_d {
                n_kv_heads.unwrap_or(0) as i64
            } else {
                0
            },
            softcap: attrs.softcap,
        };
        let y = cx.emit_opt1(op, &[Some(q), Some(k), Some(v), mask])?;
        return Ok(vec![Some(y)]);
    }

    // Everything below works on 4-d `[B, H, S, D]` operands.
    let (q4, mut k4, mut v4) = if three_d {
        let hq = n_q_heads.unwrap_or(1);
        let hkv = n_kv_heads.unwrap_or(1);
        (
            split_heads(cx, q, hq, "Q")?,
            split_heads(cx, k, hkv, "K")?,
            split_heads(cx, v, hkv, "V")?,
        )
    } else {
        (q, k, v)
    };
    if let (Some(pk), Some(pv)) = (past_k, past_v) {
        k4 = cx.emit1(Op::Concat { axis: 2 }, &[pk, k4])?;
        v4 = cx.emit1(Op::Concat { axis: 2 }, &[pv, v4])?;
    }
    let (present_k, present_v) = (k4, v4);
    if let Some((hkv, n_rep)) = regroup {
        k4 = repeat_heads(cx, k4, hkv, n_rep)?;
        v4 = repeat_heads(cx, v4, hkv, n_rep)?;
    }
    let (y4, qk_output) = if fused {
        let op = Op::Attention {
            scale: attrs.scale,
            causal: attrs.causal,
            q_num_heads: 0,
            kv_num_heads: 0,
            softcap: attrs.softcap,
        };
        (
            cx.emit_opt1(op, &[Some(q4), Some(k4), Some(v4), mask])?,
            None,
        )
    } else {
        let past_len = match past_k {
            Some(pk) => Some(static_dim(cx, pk, 2, "the past sequence length")?),
            None => None,
        };
        let (y4, qk) = decomposed(
            cx,
            &attrs,
            Operands {
                q4,
                k4,
                v4,
                mask,
                nonpad,
            },
            past_len,
        )?;
        (y4, Some(qk))
    };
    let y = if three_d { merge_heads(cx, y4)? } else { y4 };
    Ok(vec![Some(y), Some(present_k), Some(present_v), qk_output])
}

/// The operands of the decomposed form, already 4-d, concatenated with the cache and regrouped.
struct Operands {
    q4: Opd,
    k4: Opd,
    v4: Opd,
    mask: Option<Opd>,
    nonpad: Option<Opd>,
}

/// Attention from primitive ops, as onnx 1.23's reference computes it. Returns the output and the
/// `qk_matmul_output` of the node's mode.
fn decomposed(
    cx: &mut NodeCx,
    attrs: &Attrs,
    ops: Operands,
    past_len: Option<usize>,
) -> NodeResult<(Opd, Opd)> {
    let Operands {
        q4,
        k4,
        v4,
        mask,
        nonpad,
    } = ops;
    let dtype = cx.ty(q4).dtype;
    let scale = match attrs.scale {
        Some(scale) => f64::from(scale),
        None => {
            let head_size = static_dim(cx, q4, 3, "the head size (for the default scale)")?;
            1.0 / (head_size as f64).sqrt()
        }
    };
    let kt = cx.emit1(
        Op::Transpose {
            perm: vec![0, 1, 3, 2],
        },
        &[k4],
    )?;
    let raw = cx.emit1(Op::MatMul {}, &[q4, kt])?;
    let scale = scalar_of(cx, dtype, scale);
    let mut scores = cx.emit1(Op::Mul {}, &[raw, scale])?;
    if attrs.softcap > 0.0 {
        let cap = scalar_of(cx, dtype, f64::from(attrs.softcap));
        let scaled = cx.emit1(Op::Div {}, &[scores, cap])?;
        let squashed = cx.emit1(Op::Tanh {}, &[scaled])?;
        scores = cx.emit1(Op::Mul {}, &[squashed, cap])?;
    }
    let bias = attention_bias(cx, attrs, q4, k4, mask, nonpad, past_len)?;
    let with_bias = match bias {
        Some(bias) => cx.emit1(Op::Add {}, &[scores, bias])?,
        None => scores,
    };
    let mut probs = cx.emit1(Op::Softmax { axis: -1 }, &[with_bias])?;
    if let Some(bias) = bias {
        // Rows whose bias is -inf everywhere attend to nothing: their probabilities are zeros.
        let row_max = cx.emit1(
            Op::ReduceMax {
                axes: vec![-1],
                keepdims: true,
                noop_with_empty_axes: false,
            },
            &[bias],
        )?;
        let neg_inf = scalar_of(cx, dtype, f64::NEG_INFINITY);
        let masked_row = cx.emit1(Op::Equal {}, &[row_max, neg_inf])?;
        let zero = scalar_of(cx, dtype, 0.0);
        probs = cx.emit1(Op::Where {}, &[masked_row, zero, probs])?;
    }
    let y = cx.emit1(Op::MatMul {}, &[probs, v4])?;
    let qk_output = match attrs.qk_mode {
        2 => with_bias,
        3 => probs,
        _ => scores,
    };
    Ok((y, qk_output))
}

/// The additive bias over `[.., Sq, Skv]`: the mask (bool as 0/-inf, a short last dim padded with
/// -inf), the bottom-right aligned causal and window masks, and the padding of `nonpad_kv_seqlen`.
fn attention_bias(
    cx: &mut NodeCx,
    attrs: &Attrs,
    q4: Opd,
    k4: Opd,
    mask: Option<Opd>,
    nonpad: Option<Opd>,
    past_len: Option<usize>,
) -> NodeResult<Option<Opd>> {
    let dtype = cx.ty(q4).dtype;
    let mut terms: Vec<Opd> = Vec::new();
    if let Some(mask) = mask {
        terms.push(mask_bias(cx, mask, k4, dtype)?);
    }
    let windowed = attrs.left_window >= 0 || attrs.right_window >= 0;
    if attrs.causal || windowed {
        let q_len = static_dim(
            cx,
            q4,
            2,
            "the query sequence length (for causal or window masks)",
        )?;
        let kv_len = static_dim(
            cx,
            k4,
            2,
            "the key sequence length (for causal or window masks)",
        )?;
        let q_pos = range_i64(cx, q_len)?;
        let q_pos = cx.emit1(Op::Unsqueeze { axes: vec![1] }, &[q_pos])?;
        let k_pos = range_i64(cx, kv_len)?;
        // The query's absolute position: shifted by the cache length, or per batch by
        // `nonpad_kv_seqlen - Sq` for an external cache.
        let (q_abs, per_batch) = match (nonpad, past_len) {
            (Some(lengths), _) => {
                let lengths = cast_i64(cx, lengths)?;
                let lengths = cx.emit1(
                    Op::Reshape {
                        shape: vec![-1, 1, 1],
                        allowzero: false,
                    },
                    &[lengths],
                )?;
                let q_len = scalar_of(cx, DType::I64, q_len as f64);
                let offset = cx.emit1(Op::Sub {}, &[lengths, q_len])?;
                (cx.emit1(Op::Add {}, &[q_pos, offset])?, true)
            }
            (None, Some(past)) if past > 0 => {
                let offset = scalar_of(cx, DType::I64, past as f64);
                (cx.emit1(Op::Add {}, &[q_pos, offset])?, false)
            }
            _ => (q_pos, false),
        };
        let diff = cx.emit1(Op::Sub {}, &[q_abs, k_pos])?;
        let mut allowed: Option<Opd> = None;
        let mut conjoin = |cx: &mut NodeCx, condition: Opd| -> NodeResult<()> {
            allowed = Some(match allowed {
                None => condition,
                Some(prev) => cx.emit1(Op::And {}, &[prev, condition])?,
            });
            Ok(())
        };
        let zero = scalar_of(cx, DType::I64, 0.0);
        if attrs.causal {
            let condition = cx.emit1(Op::GreaterOrEqual {}, &[diff, zero])?;
            conjoin(cx, condition)?;
        }
        if attrs.left_window >= 0 {
            let left = scalar_of(cx, DType::I64, attrs.left_window as f64);
            let condition = cx.emit1(Op::LessOrEqual {}, &[diff, left])?;
            conjoin(cx, condition)?;
        }
        if attrs.right_window >= 0 {
            let right = scalar_of(cx, DType::I64, -(attrs.right_window as f64));
            let condition = cx.emit1(Op::GreaterOrEqual {}, &[diff, right])?;
            conjoin(cx, condition)?;
        }
        if let Some(mut allowed) = allowed {
            if per_batch {
                // `[B, Sq, Skv]` broadcasts over heads as `[B, 1, Sq, Skv]`.
                allowed = cx.emit1(Op::Unsqueeze { axes: vec![1] }, &[allowed])?;
            }
            terms.push(select_bias(cx, allowed, dtype)?);
        }
    }
    if let Some(lengths) = nonpad {
        let kv_len = static_dim(
            cx,
            k4,
            2,
            "the key sequence length (for `nonpad_kv_seqlen`)",
        )?;
        let k_pos = range_i64(cx, kv_len)?;
        let lengths = cast_i64(cx, lengths)?;
        let lengths = cx.emit1(Op::Unsqueeze { axes: vec![1] }, &[lengths])?;
        let valid = cx.emit1(Op::Less {}, &[k_pos, lengths])?;
        let valid = cx.emit1(
            Op::Reshape {
                shape: vec![-1, 1, 1, kv_len as i64],
                allowzero: false,
            },
            &[valid],
        )?;
        terms.push(select_bias(cx, valid, dtype)?);
    }
    let mut sum: Option<Opd> = None;
    for term in terms {
        sum = Some(match sum {
            None => term,
            Some(prev) => cx.emit1(Op::Add {}, &[prev, term])?,
        });
    }
    Ok(sum)
}

/// The user mask as an additive bias of `dtype`, its last dim padded up to the key length.
fn mask_bias(cx: &mut NodeCx, mask: Opd, k4: Opd, dtype: DType) -> NodeResult<Opd> {
    let mask_ty = cx.ty(mask).clone();
    let is_bool = mask_ty.dtype == DType::Bool;
    let mut mask = mask;
    if let (Some(Dim::Static(len)), Some(Dim::Static(kv_len))) =
        (mask_ty.shape.dims().last(), cx.dims(k4).get(2))
    {
        if len < kv_len {
            let rank = mask_ty.rank();
            let mut pads = vec![0i64; 2 * rank];
            pads[2 * rank - 1] = (kv_len - len) as i64;
            let value = if is_bool { 0.0 } else { f64::NEG_INFINITY };
            mask = cx.emit1(
                Op::Pad {
                    pads,
                    mode: PadMode::Constant,
                    value,
                },
                &[mask],
            )?;
        }
    }
    if is_bool {
        select_bias(cx, mask, dtype)
    } else if mask_ty.dtype != dtype {
        cx.emit1(Op::Cast { to: dtype }, &[mask])
    } else {
        Ok(mask)
    }
}

/// `0` where `allowed`, `-inf` elsewhere.
fn select_bias(cx: &mut NodeCx, allowed: Opd, dtype: DType) -> NodeResult<Opd> {
    let zero = scalar_of(cx, dtype, 0.0);
    let neg_inf = scalar_of(cx, dtype, f64::NEG_INFINITY);
    cx.emit1(Op::Where {}, &[allowed, zero, neg_inf])
}

fn range_i64(cx: &mut NodeCx, len: usize) -> NodeResult<Opd> {
    cx.emit_opt1(
        Op::Range {
            start: 0.0,
            limit: len as f64,
            delta: 1.0,
            dtype: DType::I64,
        },
        &[],
    )
}

fn cast_i64(cx: &mut NodeCx, x: Opd) -> NodeResult<Opd> {
    super::nn::cast_if_needed(cx, x, DType::I64)
}

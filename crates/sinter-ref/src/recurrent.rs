//! Reference recurrent layers: rnn, lstm and gru with ONNX's equations, weight layouts and gate orders.
//!
//! Weights are `w: [num_dir, gates * H, I]`, `r: [num_dir, gates * H, H]`, `b: [num_dir, 2 * gates * H]`
//! (all `Wb` then all `Rb`), gates in ONNX order: lstm `i, o, f, c`, gru `z, r, h`; lstm peepholes
//! `p: [num_dir, 3 * H]` in order `i, o, f`. `layout = 0` is `x: [seq, batch, I]`, `y: [seq, num_dir,
//! batch, H]`, states `[num_dir, batch, H]`; `layout = 1` puts batch first everywhere. Bidirectional
//! ops run direction 0 forward and direction 1 in reverse and stack both.
//!
//! Each batch entry runs for its own `sequence_lens[b]` steps (the whole sequence by default). A reverse
//! direction walks that valid prefix backwards. `y` is zero past a sequence's length, and the final
//! states hold the state after the last processed step, or zeros for an empty sequence (onnxruntime's
//! choice; `onnx.reference` does not implement sequence lengths at all).
//!
//! `clip` bounds every gate pre-activation (peephole terms included) to `[-clip, clip]` before its
//! activation; lstm's cell state itself is not clipped. lstm's `input_forget` couples the gates as
//! `f = 1 - i`. This is onnxruntime's reading of the spec, since `onnx.reference` implements neither.
//!
//! `activations` is empty (the defaults) or lists one function per gate activation and direction (rnn
//! `f`; lstm `f, g, h`; gru `f, g`; forward first), as ONNX does. `activation_alpha` /
//! `activation_beta` are empty or hold exactly one entry per listed activation, positionally (the
//! importer spreads ONNX's consumed-in-order lists); an empty list means the defaults of the
//! corresponding ONNX ops: leaky_relu 0.01, thresholded_relu 1, elu 1, hard_sigmoid 0.2 / 0.5, affine
//! 1 / 0, scaled_tanh 1 / 0. onnxruntime agrees except that it uses 0 for a missing affine or
//! thresholded_relu parameter.

use crate::index::{
    expect_dtype, float_values, optional_input, required_input, tensor_from_f64s, MAX_ATTR_SIZE,
};
use crate::{op_err, OpError};
use sinter_ir::{
    DType, Op, RecurrentAttrs, RecurrentCell, RnnActivation, RnnActivationParams, RnnDirection,
    Tensor,
};

pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    match op.recurrent_attrs() {
        Some(attrs) => run(op, inputs, &attrs, attrs.cell),
        None => op_err(format!("`{}` is not a recurrent op", op.name())),
    }
}

/// Evaluating a recurrent activation (the parameters are resolved in `sinter_ir`).
trait ApplyActivation {
    fn apply(&self, x: f64) -> f64;
}

impl ApplyActivation for RnnActivationParams {
    fn apply(&self, x: f64) -> f64 {
        let (alpha, beta) = (self.alpha, self.beta);
        match self.kind {
            RnnActivation::Relu => x.max(0.0),
            RnnActivation::Tanh => x.tanh(),
            RnnActivation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            RnnActivation::Affine => alpha * x + beta,
            RnnActivation::LeakyRelu => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            RnnActivation::ThresholdedRelu => {
                if x > alpha {
                    x
                } else {
                    0.0
                }
            }
            RnnActivation::ScaledTanh => alpha * (beta * x).tanh(),
            RnnActivation::HardSigmoid => (alpha * x + beta).clamp(0.0, 1.0),
            RnnActivation::Elu => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x.exp_m1()
                }
            }
            RnnActivation::Softsign => x / (1.0 + x.abs()),
            // ln(1 + e^x) without overflow for large x.
            RnnActivation::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
        }
    }
}

/// Sizes of one recurrent evaluation and the index arithmetic of its layouts.
struct Dims {
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    n_dir: usize,
    batch_first: bool,
}

impl Dims {
    fn x_at(&self, t: usize, b: usize, i: usize) -> usize {
        if self.batch_first {
            (b * self.seq + t) * self.input + i
        } else {
            (t * self.batch + b) * self.input + i
        }
    }

    fn y_at(&self, t: usize, d: usize, b: usize, u: usize) -> usize {
        if self.batch_first {
            ((b * self.seq + t) * self.n_dir + d) * self.hidden + u
        } else {
            ((t * self.n_dir + d) * self.batch + b) * self.hidden + u
        }
    }

    fn state_at(&self, d: usize, b: usize, u: usize) -> usize {
        if self.batch_first {
            (b * self.n_dir + d) * self.hidden + u
        } else {
            (d * self.batch + b) * self.hidden + u
        }
    }

    fn y_shape(&self) -> Vec<usize> {
        if self.batch_first {
            vec![self.batch, self.seq, self.n_dir, self.hidden]
        } else {
            vec![self.seq, self.n_dir, self.batch, self.hidden]
        }
    }

    fn state_shape(&self) -> Vec<usize> {
        if self.batch_first {
            vec![self.batch, self.n_dir, self.hidden]
        } else {
            vec![self.n_dir, self.batch, self.hidden]
        }
    }
}

/// Checks an optional float operand's dtype and exact shape and returns its values.
fn operand(
    op: &Op,
    inputs: &[Option<&Tensor>],
    slot_idx: usize,
    dtype: DType,
    shape: &[usize],
) -> Result<Option<Vec<f64>>, OpError> {
    let Some(t) = optional_input(inputs, slot_idx) else {
        return Ok(None);
    };
    let name = op.input_name(slot_idx);
    expect_dtype(op, name, t, dtype)?;
    if t.shape() != shape {
        return op_err(format!(
            "`{}` input `{name}` must have shape {shape:?}, got {:?}",
            op.name(),
            t.shape()
        ));
    }
    float_values(op, name, t).map(Some)
}

/// The weights of every direction, with lookups by gate row.
struct Weights {
    w: Vec<f64>,
    r: Vec<f64>,
    b: Option<Vec<f64>>,
    p: Option<Vec<f64>>,
    rows: usize,
    input: usize,
    hidden: usize,
}

impl Weights {
    /// `W[d, row, :] . x_t`
    fn w_dot(&self, d: usize, row: usize, x: &[f64], x_at: impl Fn(usize) -> usize) -> f64 {
        let base = (d * self.rows + row) * self.input;
        (0..self.input).map(|i| self.w[base + i] * x[x_at(i)]).sum()
    }

    /// `R[d, row, :] . h`
    fn r_dot(&self, d: usize, row: usize, h: &[f64]) -> f64 {
        let base = (d * self.rows + row) * self.hidden;
        h.iter()
            .enumerate()
            .map(|(j, hj)| self.r[base + j] * hj)
            .sum()
    }

    fn wb(&self, d: usize, row: usize) -> f64 {
        self.b.as_ref().map_or(0.0, |b| b[d * 2 * self.rows + row])
    }

    fn rb(&self, d: usize, row: usize) -> f64 {
        self.b
            .as_ref()
            .map_or(0.0, |b| b[d * 2 * self.rows + self.rows + row])
    }

    /// Peephole `gate_idx` (0 = i, 1 = o, 2 = f) of unit `u`.
    fn peephole(&self, d: usize, gate_idx: usize, u: usize) -> f64 {
        self.p
            .as_ref()
            .map_or(0.0, |p| p[d * 3 * self.hidden + gate_idx * self.hidden + u])
    }
}

fn run(
    op: &Op,
    inputs: &[Option<&Tensor>],
    attrs: &RecurrentAttrs,
    cell: RecurrentCell,
) -> Result<Vec<Tensor>, OpError> {
    let name = op.name();
    let x = required_input(op, inputs, 0)?;
    let x_values = float_values(op, "x", x)?;
    let dtype = x.dtype();
    if x.rank() != 3 {
        return op_err(format!(
            "`{name}` needs x of rank 3, got shape {:?}",
            x.shape()
        ));
    }
    let batch_first = match attrs.layout {
        0 => false,
        1 => true,
        other => return op_err(format!("`{name}` layout must be 0 or 1, got {other}")),
    };
    if !(1..=MAX_ATTR_SIZE).contains(&attrs.hidden_size) {
        return op_err(format!(
            "`{name}` hidden_size must be in [1, {MAX_ATTR_SIZE}], got {}",
            attrs.hidden_size
        ));
    }
    let n_dir = if attrs.direction == RnnDirection::Bidirectional {
        2
    } else {
        1
    };
    let (seq, batch) = if batch_first {
        (x.shape()[1], x.shape()[0])
    } else {
        (x.shape()[0], x.shape()[1])
    };
    let dims = Dims {
        seq,
        batch,
        input: x.shape()[2],
        hidden: attrs.hidden_size as usize,
        n_dir,
        batch_first,
    };
    let hidden = dims.hidden;
    let rows = cell.n_gates() * hidden;
    let clip = match attrs.clip {
        Some(c) if c > 0.0 => Some(f64::from(c)),
        Some(c) => return op_err(format!("`{name}` clip must be positive, got {c}")),
        None => None,
    };

    let w = operand(op, inputs, 1, dtype, &[n_dir, rows, dims.input])?;
    let r = operand(op, inputs, 2, dtype, &[n_dir, rows, hidden])?;
    let (Some(w), Some(r)) = (w, r) else {
        return op_err(format!("`{name}` needs inputs `w` and `r`"));
    };
    let weights = Weights {
        w,
        r,
        b: operand(op, inputs, 3, dtype, &[n_dir, 2 * rows])?,
        p: match cell {
            RecurrentCell::Lstm { .. } => operand(op, inputs, 7, dtype, &[n_dir, 3 * hidden])?,
            _ => None,
        },
        rows,
        input: dims.input,
        hidden,
    };
    let seq_lens = sequence_lens(op, inputs, &dims)?;
    let initial_h = operand(op, inputs, 5, dtype, &dims.state_shape())?;
    let initial_c = match cell {
        RecurrentCell::Lstm { .. } => operand(op, inputs, 6, dtype, &dims.state_shape())?,
        _ => None,
    };
    let activations = attrs.activations_by_direction(n_dir).map_err(OpError)?;

    let mut y = vec![0.0; dims.y_shape().iter().product()];
    let state_len = n_dir * dims.batch * hidden;
    let mut y_h = vec![0.0; state_len];
    let mut y_c = vec![0.0; state_len];
    for d in 0..n_dir {
        let reverse = attrs.direction == RnnDirection::Reverse || d == 1;
        for (b, &len) in seq_lens.iter().enumerate() {
            let load = |state: &Option<Vec<f64>>| -> Vec<f64> {
                (0..hidden)
                    .map(|u| state.as_ref().map_or(0.0, |s| s[dims.state_at(d, b, u)]))
                    .collect()
            };
            let mut h = load(&initial_h);
            let mut c = load(&initial_c);
            let steps: Vec<usize> = if reverse {
                (0..len).rev().collect()
            } else {
                (0..len).collect()
            };
            for &t in &steps {
                let step = Step {
                    weights: &weights,
                    d,
                    x: &x_values,
                    x_at: &|i| dims.x_at(t, b, i),
                    clip,
                    activations: &activations[d],
                };
                (h, c) = step.advance(cell, &h, &c);
                for u in 0..hidden {
                    y[dims.y_at(t, d, b, u)] = h[u];
                }
            }
            if len > 0 {
                for u in 0..hidden {
                    y_h[dims.state_at(d, b, u)] = h[u];
                    y_c[dims.state_at(d, b, u)] = c[u];
                }
            }
        }
    }
    let mut outputs = vec![
        tensor_from_f64s(dtype, dims.y_shape(), y)?,
        tensor_from_f64s(dtype, dims.state_shape(), y_h)?,
    ];
    if let RecurrentCell::Lstm { .. } = cell {
        outputs.push(tensor_from_f64s(dtype, dims.state_shape(), y_c)?);
    }
    Ok(outputs)
}

/// Per-batch sequence lengths, each within `[0, seq]`; the full length when the input is absent.
fn sequence_lens(op: &Op, inputs: &[Option<&Tensor>], dims: &Dims) -> Result<Vec<usize>, OpError> {
    let Some(lens) = optional_input(inputs, 4) else {
        return Ok(vec![dims.seq; dims.batch]);
    };
    if !matches!(lens.dtype(), DType::I32 | DType::I64) || lens.shape() != [dims.batch] {
        return op_err(format!(
            "`{}` input `sequence_lens` must be i32 or i64 of shape [{}], got {}{:?}",
            op.name(),
            dims.batch,
            lens.dtype(),
            lens.shape()
        ));
    }
    lens.to_i64_vec()
        .into_iter()
        .map(|len| {
            if (0..=dims.seq as i64).contains(&len) {
                Ok(len as usize)
            } else {
                op_err(format!(
                    "`{}` sequence length {len} is outside [0, {}]",
                    op.name(),
                    dims.seq
                ))
            }
        })
        .collect()
}

/// One time step of one direction for one batch entry.
struct Step<'a> {
    weights: &'a Weights,
    d: usize,
    x: &'a [f64],
    x_at: &'a dyn Fn(usize) -> usize,
    clip: Option<f64>,
    activations: &'a [RnnActivationParams],
}

impl Step<'_> {
    fn clip(&self, v: f64) -> f64 {
        self.clip.map_or(v, |c| v.clamp(-c, c))
    }

    /// `W[row] . x + R[row] . h + Wb[row] + Rb[row]`, unclipped.
    fn linear(&self, row: usize, h: &[f64]) -> f64 {
        let wt = self.weights;
        wt.w_dot(self.d, row, self.x, self.x_at)
            + wt.r_dot(self.d, row, h)
            + wt.wb(self.d, row)
            + wt.rb(self.d, row)
    }

    /// The next hidden and cell states (the cell state is unused outside lstm).
    fn advance(&self, cell: RecurrentCell, h: &[f64], c: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let n_hidden = h.len();
        let act = self.activations;
        let wt = self.weights;
        match cell {
            RecurrentCell::Rnn => {
                let next = (0..n_hidden)
                    .map(|u| act[0].apply(self.clip(self.linear(u, h))))
                    .collect();
                (next, c.to_vec())
            }
            RecurrentCell::Lstm { input_forget } => {
                let (f, g, h_act) = (act[0], act[1], act[2]);
                let (row_i, row_o, row_f, row_c) = (0, n_hidden, 2 * n_hidden, 3 * n_hidden);
                let mut next_h = Vec::with_capacity(n_hidden);
                let mut next_c = Vec::with_capacity(n_hidden);
                for (u, &c_prev) in c.iter().enumerate() {
                    let i_gate = f.apply(
                        self.clip(self.linear(row_i + u, h) + wt.peephole(self.d, 0, u) * c_prev),
                    );
                    let f_gate =
                        if input_forget {
                            1.0 - i_gate
                        } else {
                            f.apply(self.clip(
                                self.linear(row_f + u, h) + wt.peephole(self.d, 2, u) * c_prev,
                            ))
                        };
                    let candidate = g.apply(self.clip(self.linear(row_c + u, h)));
                    let cell_state = f_gate * c_prev + i_gate * candidate;
                    let o_gate =
                        f.apply(self.clip(
                            self.linear(row_o + u, h) + wt.peephole(self.d, 1, u) * cell_state,
                        ));
                    next_h.push(o_gate * h_act.apply(cell_state));
                    next_c.push(cell_state);
                }
                (next_h, next_c)
            }
            RecurrentCell::Gru {
                linear_before_reset,
            } => {
                let (f, g) = (act[0], act[1]);
                let (row_z, row_r, row_h) = (0, n_hidden, 2 * n_hidden);
                let z: Vec<f64> = (0..n_hidden)
                    .map(|u| f.apply(self.clip(self.linear(row_z + u, h))))
                    .collect();
                let r: Vec<f64> = (0..n_hidden)
                    .map(|u| f.apply(self.clip(self.linear(row_r + u, h))))
                    .collect();
                let reset_h: Vec<f64> = h.iter().zip(&r).map(|(hv, rv)| hv * rv).collect();
                let next = (0..n_hidden)
                    .map(|u| {
                        let row = row_h + u;
                        let x_part = wt.w_dot(self.d, row, self.x, self.x_at) + wt.wb(self.d, row);
                        let pre = if linear_before_reset {
                            x_part + r[u] * (wt.r_dot(self.d, row, h) + wt.rb(self.d, row))
                        } else {
                            x_part + wt.r_dot(self.d, row, &reset_h) + wt.rb(self.d, row)
                        };
                        let candidate = g.apply(self.clip(pre));
                        (1.0 - z[u]) * candidate + z[u] * h[u]
                    })
                    .collect();
                (next, c.to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, f32s, t32};

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    fn rnn(
        direction: RnnDirection,
        activations: Vec<RnnActivation>,
        alpha: Vec<f32>,
        layout: i64,
    ) -> Op {
        Op::Rnn {
            hidden_size: 1,
            direction,
            activations,
            activation_alpha: alpha,
            activation_beta: vec![],
            clip: None,
            layout,
        }
    }

    fn lstm(hidden_size: i64, input_forget: bool, clip: Option<f32>) -> Op {
        Op::Lstm {
            hidden_size,
            direction: RnnDirection::Forward,
            activations: vec![],
            activation_alpha: vec![],
            activation_beta: vec![],
            clip,
            layout: 0,
            input_forget,
        }
    }

    fn gru(linear_before_reset: bool) -> Op {
        Op::Gru {
            hidden_size: 1,
            direction: RnnDirection::Forward,
            activations: vec![],
            activation_alpha: vec![],
            activation_beta: vec![],
            clip: None,
            layout: 0,
            linear_before_reset,
        }
    }

    /// An affine rnn with w = 1, r = 0.5 is a leaky accumulator: h_t = x_t + 0.5 h_{t-1}.
    #[test]
    fn rnn_accumulates_forward_reverse_and_both() {
        let x = t32(&[3, 1, 1], &[1.0, 2.0, 4.0]);
        let w = t32(&[1, 1, 1], &[1.0]);
        let r = t32(&[1, 1, 1], &[0.5]);
        let affine = vec![RnnActivation::Affine];
        let out = eval(
            &rnn(RnnDirection::Forward, affine.clone(), vec![], 0),
            &[Some(&x), Some(&w), Some(&r)],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[3, 1, 1, 1]);
        assert_eq!(f32s(&out[0]), [1.0, 2.5, 5.25]);
        assert_eq!(f32s(&out[1]), [5.25]);
        let out = eval(
            &rnn(RnnDirection::Reverse, affine.clone(), vec![], 0),
            &[Some(&x), Some(&w), Some(&r)],
        )
        .unwrap();
        assert_eq!(f32s(&out[0]), [3.0, 4.0, 4.0]);
        assert_eq!(f32s(&out[1]), [3.0], "the reverse direction ends at t = 0");
        let w2 = t32(&[2, 1, 1], &[1.0, 1.0]);
        let r2 = t32(&[2, 1, 1], &[0.5, 0.5]);
        let both_affine = vec![RnnActivation::Affine; 2];
        let out = eval(
            &rnn(RnnDirection::Bidirectional, both_affine, vec![], 0),
            &[Some(&x), Some(&w2), Some(&r2)],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[3, 2, 1, 1]);
        assert_eq!(f32s(&out[0]), [1.0, 3.0, 2.5, 4.0, 5.25, 4.0]);
        assert_eq!(f32s(&out[1]), [5.25, 3.0]);
    }

    #[test]
    fn rnn_default_tanh_bias_initial_state_and_activation_parameters() {
        let x = t32(&[1, 1, 1], &[1.0]);
        let w = t32(&[1, 1, 1], &[2.0]);
        let r = t32(&[1, 1, 1], &[3.0]);
        let b = t32(&[1, 2], &[0.25, 0.5]);
        let h0 = t32(&[1, 1, 1], &[-1.0]);
        let op = rnn(RnnDirection::Forward, vec![], vec![], 0);
        let out = eval(
            &op,
            &[Some(&x), Some(&w), Some(&r), Some(&b), None, Some(&h0)],
        )
        .unwrap();
        // tanh(2 - 3 + 0.75)
        assert_close(&f32s(&out[0]), &[(-0.25f64).tanh()]);
        let op = rnn(
            RnnDirection::Forward,
            vec![RnnActivation::LeakyRelu],
            vec![0.5],
            0,
        );
        let out = eval(
            &op,
            &[Some(&x), Some(&w), Some(&r), Some(&b), None, Some(&h0)],
        )
        .unwrap();
        assert_close(&f32s(&out[0]), &[-0.125]);
        let op = rnn(
            RnnDirection::Forward,
            vec![RnnActivation::LeakyRelu],
            vec![],
            0,
        );
        let out = eval(
            &op,
            &[Some(&x), Some(&w), Some(&r), Some(&b), None, Some(&h0)],
        )
        .unwrap();
        // leaky_relu's default alpha is 0.01.
        assert_close(&f32s(&out[0]), &[-0.0025]);
    }

    #[test]
    fn sequence_lens_zero_the_tail_and_layout_one_puts_batch_first() {
        // Two batch entries of lengths 2 and 1, batch-first: x[b, t].
        let x = t32(&[2, 2, 1], &[1.0, 2.0, 10.0, 20.0]);
        let w = t32(&[1, 1, 1], &[1.0]);
        let r = t32(&[1, 1, 1], &[1.0]);
        let lens = Tensor::from_vec(vec![2], vec![2i32, 1]).unwrap();
        let op = rnn(
            RnnDirection::Forward,
            vec![RnnActivation::Affine],
            vec![],
            1,
        );
        let out = eval(&op, &[Some(&x), Some(&w), Some(&r), None, Some(&lens)]).unwrap();
        assert_eq!(out[0].shape(), &[2, 2, 1, 1]);
        assert_eq!(f32s(&out[0]), [1.0, 3.0, 10.0, 0.0]);
        assert_eq!(out[1].shape(), &[2, 1, 1]);
        assert_eq!(f32s(&out[1]), [3.0, 10.0]);
        // Reverse walks each valid prefix backwards; an empty sequence gives a zero final state.
        let lens = Tensor::from_vec(vec![2], vec![2i64, 0]).unwrap();
        let op = rnn(
            RnnDirection::Reverse,
            vec![RnnActivation::Affine],
            vec![],
            1,
        );
        let h0 = t32(&[2, 1, 1], &[100.0, 100.0]);
        let out = eval(
            &op,
            &[Some(&x), Some(&w), Some(&r), None, Some(&lens), Some(&h0)],
        )
        .unwrap();
        assert_eq!(f32s(&out[0]), [103.0, 102.0, 0.0, 0.0]);
        assert_eq!(f32s(&out[1]), [103.0, 0.0]);
        let too_long = Tensor::from_vec(vec![2], vec![3i32, 1]).unwrap();
        assert!(eval(&op, &[Some(&x), Some(&w), Some(&r), None, Some(&too_long)]).is_err());
        let float_lens = t32(&[2], &[1.0, 1.0]);
        assert!(eval(
            &op,
            &[Some(&x), Some(&w), Some(&r), None, Some(&float_lens)]
        )
        .is_err());
    }

    /// With zero weights every gate is sigmoid(0) = 1/2 and the candidate is tanh(0) = 0, so the cell
    /// state halves each step and h = tanh(c) / 2.
    #[test]
    fn lstm_with_zero_weights_decays_the_cell() {
        let x = t32(&[2, 1, 1], &[5.0, -7.0]);
        let w = t32(&[1, 8, 1], &[0.0; 8]);
        let r = t32(&[1, 8, 2], &[0.0; 16]);
        let c0 = t32(&[1, 1, 2], &[1.0, -2.0]);
        let out = eval(
            &lstm(2, false, None),
            &[Some(&x), Some(&w), Some(&r), None, None, None, Some(&c0)],
        )
        .unwrap();
        assert_eq!(out.len(), 3);
        let expected_y: Vec<f64> = [0.5, -1.0, 0.25, -0.5]
            .iter()
            .map(|c: &f64| c.tanh() / 2.0)
            .collect();
        assert_close(&f32s(&out[0]), &expected_y);
        assert_close(&f32s(&out[1]), &expected_y[2..]);
        assert_close(&f32s(&out[2]), &[0.25, -0.5]);
    }

    /// One step of a one-unit lstm with every gate, peepholes and biases, computed by hand.
    #[test]
    fn lstm_one_step_by_hand() {
        let x = t32(&[1, 1, 1], &[1.0]);
        // Gate order i, o, f, c.
        let w = t32(&[1, 4, 1], &[0.1, 0.2, 0.3, 0.4]);
        let r = t32(&[1, 4, 1], &[0.5, 0.6, 0.7, 0.8]);
        let b = t32(&[1, 8], &[0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08]);
        let h0 = t32(&[1, 1, 1], &[0.5]);
        let c0 = t32(&[1, 1, 1], &[-0.5]);
        // Peepholes i, o, f.
        let p = t32(&[1, 3], &[0.9, 1.1, 1.3]);
        let inputs = [
            Some(&x),
            Some(&w),
            Some(&r),
            Some(&b),
            None,
            Some(&h0),
            Some(&c0),
            Some(&p),
        ];
        let out = eval(&lstm(1, false, None), &inputs).unwrap();
        let i = sigmoid(0.1 + 0.5 * 0.5 + 0.01 + 0.05 + 0.9 * -0.5);
        let f = sigmoid(0.3 + 0.7 * 0.5 + 0.03 + 0.07 + 1.3 * -0.5);
        let g = (0.4f64 + 0.8 * 0.5 + 0.04 + 0.08).tanh();
        let c = f * -0.5 + i * g;
        let o = sigmoid(0.2 + 0.6 * 0.5 + 0.02 + 0.06 + 1.1 * c);
        assert_close(&f32s(&out[1]), &[o * c.tanh()]);
        assert_close(&f32s(&out[2]), &[c]);
        // input_forget couples f = 1 - i.
        let out = eval(&lstm(1, true, None), &inputs).unwrap();
        let c = (1.0 - i) * -0.5 + i * g;
        assert_close(&f32s(&out[2]), &[c]);
        // clip 0.05 bounds every pre-activation, peephole terms included.
        let out = eval(&lstm(1, false, Some(0.05)), &inputs).unwrap();
        let clip = |v: f64| v.clamp(-0.05, 0.05);
        let i = sigmoid(clip(0.1 + 0.5 * 0.5 + 0.01 + 0.05 + 0.9 * -0.5));
        let f = sigmoid(clip(0.3 + 0.7 * 0.5 + 0.03 + 0.07 + 1.3 * -0.5));
        let g = clip(0.4 + 0.8 * 0.5 + 0.04 + 0.08).tanh();
        let c = f * -0.5 + i * g;
        let o = sigmoid(clip(0.2 + 0.6 * 0.5 + 0.02 + 0.06 + 1.1 * c));
        assert_close(&f32s(&out[1]), &[o * c.tanh()]);
        // The cell state itself is not clipped.
        assert_close(&f32s(&out[2]), &[c]);
    }

    /// One step of a one-unit gru in both reset placements, computed by hand.
    #[test]
    fn gru_one_step_by_hand() {
        let x = t32(&[1, 1, 1], &[2.0]);
        // Gate order z, r, h.
        let w = t32(&[1, 3, 1], &[0.1, 0.2, 0.3]);
        let r = t32(&[1, 3, 1], &[0.4, 0.5, 0.6]);
        let b = t32(&[1, 6], &[0.01, 0.02, 0.03, 0.04, 0.05, 0.06]);
        let h0 = t32(&[1, 1, 1], &[0.5]);
        let inputs = [Some(&x), Some(&w), Some(&r), Some(&b), None, Some(&h0)];
        let z = sigmoid(0.2 + 0.4 * 0.5 + 0.01 + 0.04);
        let rg = sigmoid(0.4 + 0.5 * 0.5 + 0.02 + 0.05);
        let h_default = (0.6 + 0.6 * (rg * 0.5) + 0.03 + 0.06f64).tanh();
        let h_linear = (0.6 + rg * (0.6 * 0.5 + 0.06) + 0.03f64).tanh();
        let out = eval(&gru(false), &inputs).unwrap();
        assert_close(&f32s(&out[1]), &[(1.0 - z) * h_default + z * 0.5]);
        let out = eval(&gru(true), &inputs).unwrap();
        assert_close(&f32s(&out[1]), &[(1.0 - z) * h_linear + z * 0.5]);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn bidirectional_activation_lists_per_direction() {
        let x = t32(&[1, 1, 1], &[-2.0]);
        let w = t32(&[2, 1, 1], &[1.0, 1.0]);
        let r = t32(&[2, 1, 1], &[0.0, 0.0]);
        let bidirectional =
            |activations: Vec<RnnActivation>, alpha: Vec<f32>, beta: Vec<f32>| Op::Rnn {
                hidden_size: 1,
                direction: RnnDirection::Bidirectional,
                activations,
                activation_alpha: alpha,
                activation_beta: beta,
                clip: None,
                layout: 0,
            };
        let relu_affine = vec![RnnActivation::Relu, RnnActivation::Affine];
        let op = bidirectional(relu_affine.clone(), vec![0.0, 3.0], vec![0.0, 1.0]);
        let out = eval(&op, &[Some(&x), Some(&w), Some(&r)]).unwrap();
        assert_eq!(f32s(&out[1]), [0.0, -5.0]);
        // One list for both directions is not accepted: there must be one entry per direction.
        let shared = bidirectional(vec![RnnActivation::Affine], vec![], vec![]);
        let message = eval(&shared, &[Some(&x), Some(&w), Some(&r)])
            .unwrap_err()
            .0;
        assert!(message.contains("needs 2 activations"), "{message}");
        // activation_alpha/beta are positional: exactly one entry per listed activation.
        let short_alpha = bidirectional(relu_affine.clone(), vec![0.0], vec![]);
        assert!(eval(&short_alpha, &[Some(&x), Some(&w), Some(&r)]).is_err());
        let long_beta = bidirectional(relu_affine, vec![], vec![0.0, 1.0, 2.0]);
        assert!(eval(&long_beta, &[Some(&x), Some(&w), Some(&r)]).is_err());
    }

    #[test]
    fn every_activation_function() {
        let act = |kind: RnnActivation, alpha, beta| kind.with_params(alpha, beta);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(act(RnnActivation::Relu, None, None).apply(-1.0), 0.0));
        assert!(close(
            act(RnnActivation::Sigmoid, None, None).apply(0.0),
            0.5
        ));
        assert!(close(
            act(RnnActivation::Affine, None, None).apply(3.0),
            3.0
        ));
        assert!(close(
            act(RnnActivation::ThresholdedRelu, None, None).apply(1.0),
            0.0
        ));
        assert!(close(
            act(RnnActivation::ThresholdedRelu, Some(0.5), None).apply(1.0),
            1.0
        ));
        assert!(close(
            act(RnnActivation::ScaledTanh, Some(2.0), Some(0.5)).apply(2.0),
            2.0 * 1f64.tanh()
        ));
        // The default beta of 0 makes scaled_tanh constant, as in onnxruntime.
        assert!(close(
            act(RnnActivation::ScaledTanh, None, None).apply(1.0),
            0.0
        ));
        assert!(close(
            act(RnnActivation::HardSigmoid, None, None).apply(1.0),
            0.7
        ));
        assert!(close(
            act(RnnActivation::HardSigmoid, None, None).apply(10.0),
            1.0
        ));
        assert!(close(
            act(RnnActivation::Elu, None, None).apply(-1.0),
            (-1f64).exp() - 1.0
        ));
        assert!(close(
            act(RnnActivation::Softsign, None, None).apply(-3.0),
            -0.75
        ));
        assert!(close(
            act(RnnActivation::Softplus, None, None).apply(0.0),
            2f64.ln()
        ));
        assert!(close(
            act(RnnActivation::Softplus, None, None).apply(1000.0),
            1000.0
        ));
    }

    #[test]
    fn rejects_inconsistent_operands() {
        let x = t32(&[1, 1, 2], &[0.0; 2]);
        let w = t32(&[1, 4, 2], &[0.0; 8]);
        let r = t32(&[1, 4, 1], &[0.0; 4]);
        let ok = lstm(1, false, None);
        assert!(eval(&ok, &[Some(&x), Some(&w), Some(&r)]).is_ok());
        assert!(
            eval(&lstm(2, false, None), &[Some(&x), Some(&w), Some(&r)]).is_err(),
            "hidden_size vs w"
        );
        assert!(eval(&lstm(0, false, None), &[Some(&x), Some(&w), Some(&r)]).is_err());
        assert!(eval(&lstm(1, false, Some(-1.0)), &[Some(&x), Some(&w), Some(&r)]).is_err());
        let b = t32(&[1, 4], &[0.0; 4]);
        assert!(
            eval(&ok, &[Some(&x), Some(&w), Some(&r), Some(&b)]).is_err(),
            "b needs 2 * 4 * H"
        );
        let p = t32(&[1, 2], &[0.0; 2]);
        assert!(eval(
            &ok,
            &[
                Some(&x),
                Some(&w),
                Some(&r),
                None,
                None,
                None,
                None,
                Some(&p)
            ]
        )
        .is_err());
        let h0 = t32(&[1, 2, 1], &[0.0; 2]);
        assert!(eval(&ok, &[Some(&x), Some(&w), Some(&r), None, None, Some(&h0)]).is_err());
        let w64 = Tensor::from_vec(vec![1, 4, 2], vec![0.0f64; 8]).unwrap();
        assert!(eval(&ok, &[Some(&x), Some(&w64), Some(&r)]).is_err());
        let x2 = t32(&[1, 2], &[0.0; 2]);
        assert!(eval(&ok, &[Some(&x2), Some(&w), Some(&r)]).is_err());
        let lstm_with = |direction,
                         activations: Vec<RnnActivation>,
                         activation_alpha: Vec<f32>,
                         layout| Op::Lstm {
            hidden_size: 1,
            direction,
            activations,
            activation_alpha,
            activation_beta: vec![],
            clip: None,
            layout,
            input_forget: false,
        };
        let bad_layout = lstm_with(RnnDirection::Forward, vec![], vec![], 2);
        assert!(eval(&bad_layout, &[Some(&x), Some(&w), Some(&r)]).is_err());
        let bidirectional = lstm_with(RnnDirection::Bidirectional, vec![], vec![], 0);
        assert!(
            eval(&bidirectional, &[Some(&x), Some(&w), Some(&r)]).is_err(),
            "w has one direction"
        );
        let two_activations = lstm_with(
            RnnDirection::Forward,
            vec![RnnActivation::Tanh; 2],
            vec![],
            0,
        );
        assert!(eval(&two_activations, &[Some(&x), Some(&w), Some(&r)]).is_err());
        let stray_alpha = lstm_with(RnnDirection::Forward, vec![], vec![1.0], 0);
        assert!(eval(&stray_alpha, &[Some(&x), Some(&w), Some(&r)]).is_err());
    }

    #[test]
    fn absurd_hidden_size_is_an_error_not_a_panic() {
        let x = t32(&[1, 1, 1], &[0.0]);
        let w = t32(&[1, 4, 1], &[0.0; 4]);
        let r = t32(&[1, 4, 1], &[0.0; 4]);
        assert!(eval(
            &lstm(i64::MAX, false, None),
            &[Some(&x), Some(&w), Some(&r)]
        )
        .is_err());
        assert!(eval(&lstm(1 << 40, false, None), &[Some(&x), Some(&w), Some(&r)]).is_err());
    }
}

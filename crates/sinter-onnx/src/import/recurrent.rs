//! `RNN`, `LSTM` and `GRU`, which map one to one apart from their activation parameters.
//!
//! ONNX lists `activations` by name and gives `activation_alpha`/`activation_beta` in a consumed-in-
//! order form (as onnxruntime implements it): walking the activations, each one that takes an alpha
//! (beta) takes the next unused entry of the alpha (beta) list, and the lists may run short. The IR
//! wants positional lists, one entry per activation; this module rewrites them, putting each
//! activation's default where the ONNX list ran out and a placeholder `0` where the activation takes
//! no parameter. A bidirectional node that lists one direction's activations (which onnxruntime
//! accepts) has them, and their parameters, repeated for the reverse direction.

use super::{invalid, Lowered, NodeCx, NodeResult, Opd};
use sinter_ir::{Dim, Op, RnnActivation, RnnDirection};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rnn,
    Lstm,
    Gru,
}

impl Kind {
    /// Activations per direction.
    fn n_activations(self) -> usize {
        match self {
            Kind::Rnn => 1,
            Kind::Lstm => 3,
            Kind::Gru => 2,
        }
    }

    fn n_inputs(self) -> usize {
        match self {
            Kind::Lstm => 8,
            Kind::Rnn | Kind::Gru => 6,
        }
    }
}

/// The activation an ONNX name (any case) denotes.
fn activation(name: &str) -> NodeResult<RnnActivation> {
    let activation = match name.to_ascii_lowercase().as_str() {
        "relu" => RnnActivation::Relu,
        "tanh" => RnnActivation::Tanh,
        "sigmoid" => RnnActivation::Sigmoid,
        "affine" => RnnActivation::Affine,
        "leakyrelu" => RnnActivation::LeakyRelu,
        "thresholdedrelu" => RnnActivation::ThresholdedRelu,
        "scaledtanh" => RnnActivation::ScaledTanh,
        "hardsigmoid" => RnnActivation::HardSigmoid,
        "elu" => RnnActivation::Elu,
        "softsign" => RnnActivation::Softsign,
        "softplus" => RnnActivation::Softplus,
        _ => return invalid(format!("unknown activation {name:?}")),
    };
    Ok(activation)
}

/// The defaults of an activation's alpha and beta, `None` for a parameter it does not take.
fn parameter_defaults(activation: RnnActivation) -> (Option<f32>, Option<f32>) {
    match activation {
        RnnActivation::Affine | RnnActivation::ScaledTanh => (Some(1.0), Some(0.0)),
        RnnActivation::LeakyRelu => (Some(0.01), None),
        RnnActivation::ThresholdedRelu | RnnActivation::Elu => (Some(1.0), None),
        RnnActivation::HardSigmoid => (Some(0.2), Some(0.5)),
        RnnActivation::Relu
        | RnnActivation::Tanh
        | RnnActivation::Sigmoid
        | RnnActivation::Softsign
        | RnnActivation::Softplus => (None, None),
    }
}

/// The activations and their positional parameters, as the IR wants them.
struct Activations {
    activations: Vec<RnnActivation>,
    alpha: Vec<f32>,
    beta: Vec<f32>,
}

fn activations(cx: &NodeCx, kind: Kind, n_directions: usize) -> NodeResult<Activations> {
    let attrs = cx.attrs();
    let Some(names) = attrs.strings("activations")? else {
        return Ok(Activations {
            activations: vec![],
            alpha: vec![],
            beta: vec![],
        });
    };
    let mut listed = names
        .iter()
        .map(|name| activation(name))
        .collect::<NodeResult<Vec<_>>>()?;
    let alphas = attrs.floats("activation_alpha")?.unwrap_or_default();
    let betas = attrs.floats("activation_beta")?.unwrap_or_default();
    let has_parameters = !alphas.is_empty() || !betas.is_empty();
    let (mut next_alpha, mut next_beta) = (alphas.iter(), betas.iter());
    let (mut alpha, mut beta) = (Vec::new(), Vec::new());
    for &activation in &listed {
        let (default_alpha, default_beta) = parameter_defaults(activation);
        alpha.push(default_alpha.map_or(0.0, |d| next_alpha.next().copied().unwrap_or(d)));
        beta.push(default_beta.map_or(0.0, |d| next_beta.next().copied().unwrap_or(d)));
    }
    let per_direction = kind.n_activations();
    if n_directions == 2 && listed.len() == per_direction {
        listed.extend_from_within(..);
        alpha.extend_from_within(..);
        beta.extend_from_within(..);
    }
    if listed.len() != per_direction * n_directions {
        return invalid(format!(
            "attribute `activations` must list {} functions ({per_direction} per direction), got {}",
            per_direction * n_directions,
            names.len()
        ));
    }
    if !has_parameters {
        alpha.clear();
        beta.clear();
    }
    Ok(Activations {
        activations: listed,
        alpha,
        beta,
    })
}

/// The attributes the three ops share.
struct Common {
    hidden_size: i64,
    direction: RnnDirection,
    activations: Activations,
    clip: Option<f32>,
    layout: i64,
}

fn common(cx: &NodeCx, kind: Kind) -> NodeResult<Common> {
    let attrs = cx.attrs();
    let direction_text = attrs.string_or("direction", "forward")?;
    let Some(direction) = RnnDirection::from_name(&direction_text.to_ascii_lowercase()) else {
        return invalid(format!(
            "attribute `direction` must be forward, reverse or bidirectional, got {direction_text:?}"
        ));
    };
    let n_directions = if direction == RnnDirection::Bidirectional {
        2
    } else {
        1
    };
    let hidden_size = match attrs.int("hidden_size")? {
        Some(h) => h,
        // Absent: the recurrence weights `[Dn, gates * H, H]` give it.
        None => match cx.dims(cx.input(2)?).get(2) {
            Some(Dim::Static(h)) => *h as i64,
            _ => {
                return invalid(format!(
                    "attribute `hidden_size` is absent and the recurrence weights {} do not give \
                     it statically",
                    cx.ty(cx.input(2)?)
                ))
            }
        },
    };
    Ok(Common {
        hidden_size,
        direction,
        activations: activations(cx, kind, n_directions)?,
        clip: attrs.float("clip")?,
        layout: attrs.int_or("layout", 0)?,
    })
}

fn lower(cx: &mut NodeCx, kind: Kind) -> NodeResult<Lowered> {
    let c = common(cx, kind)?;
    let attrs = cx.attrs();
    let Activations {
        activations,
        alpha: activation_alpha,
        beta: activation_beta,
    } = c.activations;
    let op = match kind {
        Kind::Rnn => Op::Rnn {
            hidden_size: c.hidden_size,
            direction: c.direction,
            activations,
            activation_alpha,
            activation_beta,
            clip: c.clip,
            layout: c.layout,
        },
        Kind::Lstm => Op::Lstm {
            hidden_size: c.hidden_size,
            direction: c.direction,
            activations,
            activation_alpha,
            activation_beta,
            clip: c.clip,
            layout: c.layout,
            input_forget: attrs.flag_or("input_forget", false)?,
        },
        Kind::Gru => Op::Gru {
            hidden_size: c.hidden_size,
            direction: c.direction,
            activations,
            activation_alpha,
            activation_beta,
            clip: c.clip,
            layout: c.layout,
            linear_before_reset: attrs.flag_or("linear_before_reset", false)?,
        },
    };
    let n_inputs = cx.n_inputs().min(kind.n_inputs());
    let mut inputs: Vec<Option<Opd>> = (0..n_inputs).map(|idx| cx.opt_input(idx)).collect();
    while inputs.last().is_some_and(Option::is_none) {
        inputs.pop();
    }
    let outputs = cx.emit(op, &inputs)?;
    Ok(outputs.into_iter().map(Some).collect())
}

pub(crate) fn rnn(cx: &mut NodeCx) -> NodeResult<Lowered> {
    lower(cx, Kind::Rnn)
}

pub(crate) fn lstm(cx: &mut NodeCx) -> NodeResult<Lowered> {
    lower(cx, Kind::Lstm)
}

pub(crate) fn gru(cx: &mut NodeCx) -> NodeResult<Lowered> {
    lower(cx, Kind::Gru)
}

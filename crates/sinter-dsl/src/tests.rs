//! Unit tests: each method builds the intended op with the intended attributes and output types,
//! errors are collected (one per mistake), and the `nn` helpers produce graphs that verify.

use crate::nn::{self, Init, Params};
use crate::{AttentionOpts, BuildError, Conv2dOpts, DType, GraphBuilder, Op, PadMode, Tensor};
use sinter_ir::{GeluApprox, Graph, NodeKind, RnnDirection};

/// Declares inputs of the given types (`"f32[batch,4]"`-like specs built with `shape!` by the caller).
fn inputs(b: &GraphBuilder, specs: &[(DType, Vec<crate::Dim>)]) -> Vec<Tensor> {
    specs
        .iter()
        .enumerate()
        .map(|(idx, (dtype, dims))| b.input(format!("in{idx}"), *dtype, dims.clone()))
        .collect()
}

/// Builds `f(inputs)` as the only output and checks the producing node's op and output types.
fn check(
    specs: &[(DType, Vec<crate::Dim>)],
    f: impl Fn(&[Tensor]) -> Tensor,
    expected_op: Op,
    expected_ty: &str,
) {
    let b = GraphBuilder::new("t");
    let ins = inputs(&b, specs);
    let y = f(&ins);
    b.output("y", &y);
    let graph = match b.build() {
        Ok(graph) => graph,
        Err(errors) => panic!("expected {expected_op:?} to build:\n{errors}"),
    };
    let value = y.value().expect("a built value");
    let node = graph.node(value.node);
    assert_eq!(node.op(), Some(&expected_op));
    assert_eq!(
        graph.value_type(value).to_string(),
        expected_ty,
        "type of {expected_op:?}"
    );
}

fn f32_in(dims: Vec<crate::Dim>) -> (DType, Vec<crate::Dim>) {
    (DType::F32, dims)
}

fn only_error(result: Result<Graph, crate::BuildErrors>) -> BuildError {
    let errors = result.expect_err("the graph has an error");
    assert_eq!(errors.len(), 1, "expected exactly one error:\n{errors}");
    errors.errors.into_iter().next().expect("one error")
}

#[test]
fn unary_methods_build_their_ops() {
    let x = [f32_in(shape![batch, 4])];
    let ty = "f32[batch,4]";
    check(&x, |t| t[0].relu(), Op::Relu {}, ty);
    check(&x, |t| t[0].sigmoid(), Op::Sigmoid {}, ty);
    check(&x, |t| t[0].tanh(), Op::Tanh {}, ty);
    check(&x, |t| t[0].exp(), Op::Exp {}, ty);
    check(&x, |t| t[0].sqrt(), Op::Sqrt {}, ty);
    check(&x, |t| t[0].neg(), Op::Neg {}, ty);
    check(&x, |t| -&t[0], Op::Neg {}, ty);
    check(
        &x,
        |t| t[0].leaky_relu(0.2),
        Op::LeakyRelu { alpha: 0.2 },
        ty,
    );
    check(
        &x,
        |t| t[0].gelu(),
        Op::Gelu {
            approximate: GeluApprox::None,
        },
        ty,
    );
    check(
        &x,
        |t| t[0].gelu_tanh(),
        Op::Gelu {
            approximate: GeluApprox::Tanh,
        },
        ty,
    );
    check(
        &x,
        |t| t[0].clip(Some(0.0), Some(6.0)),
        Op::Clip {
            min: Some(0.0),
            max: Some(6.0),
        },
        ty,
    );
    check(
        &x,
        |t| t[0].hard_sigmoid(0.2, 0.5),
        Op::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        ty,
    );
    check(
        &x,
        |t| t[0].selu(),
        Op::Selu {
            alpha: sinter_ir::SELU_ALPHA,
            gamma: sinter_ir::SELU_GAMMA,
        },
        ty,
    );
    check(
        &x,
        |t| t[0].cast(DType::I64),
        Op::Cast { to: DType::I64 },
        "i64[batch,4]",
    );
    check(
        &[(DType::Bool, shape![3])],
        |t| t[0].not(),
        Op::Not {},
        "bool[3]",
    );
}

#[test]
fn binary_methods_and_operators_broadcast() {
    let ab = [f32_in(shape![batch, 4]), f32_in(shape![4])];
    let ty = "f32[batch,4]";
    check(&ab, |t| t[0].add(&t[1]), Op::Add {}, ty);
    check(&ab, |t| &t[0] + &t[1], Op::Add {}, ty);
    check(&ab, |t| t[0].clone() - &t[1], Op::Sub {}, ty);
    check(&ab, |t| &t[0] * t[1].clone(), Op::Mul {}, ty);
    check(&ab, |t| t[0].clone() / t[1].clone(), Op::Div {}, ty);
    check(&ab, |t| t[0].maximum(&t[1]), Op::Max {}, ty);
    check(&ab, |t| t[0].less(&t[1]), Op::Less {}, "bool[batch,4]");
    check(
        &ab,
        |t| t[0].greater_equal(&t[1]),
        Op::GreaterOrEqual {},
        "bool[batch,4]",
    );
    let cond = [
        (DType::Bool, shape![batch, 1]),
        f32_in(shape![4]),
        f32_in(shape![batch, 4]),
    ];
    check(&cond, |t| t[0].where_(&t[1], &t[2]), Op::Where {}, ty);
}

#[test]
fn scalar_arithmetic_creates_scalar_constants_of_the_tensor_dtype() {
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F64, shape![3]);
    let y = x.scale(0.5);
    let z = &y + 2.0;
    b.output("z", &z);
    let graph = b.build().expect("valid");
    let node = graph.node(z.value().expect("built").node);
    assert_eq!(node.op(), Some(&Op::Add {}));
    let inputs = graph.node_inputs(z.value().expect("built").node);
    let rhs = inputs[1].expect("present");
    let NodeKind::Const { value, .. } = &graph.node(rhs.node).kind else {
        panic!("the scalar is a constant");
    };
    assert_eq!(value, &sinter_ir::Tensor::scalar(2.0f64));
    assert_eq!(
        graph.value_type(z.value().expect("built")).to_string(),
        "f64[3]"
    );
}

#[test]
fn linear_algebra_and_convolution_methods() {
    check(
        &[f32_in(shape![batch, 3, 4]), f32_in(shape![4, 5])],
        |t| t[0].matmul(&t[1]),
        Op::MatMul {},
        "f32[batch,3,5]",
    );
    check(
        &[f32_in(shape![2, 3, 4])],
        |t| t[0].t(),
        Op::Transpose {
            perm: vec![0, 2, 1],
        },
        "f32[2,4,3]",
    );
    check(
        &[
            f32_in(shape![1, 3, 8, 8]),
            f32_in(shape![4, 3, 3, 3]),
            f32_in(shape![4]),
        ],
        |t| {
            t[0].conv2d(
                &t[1],
                Conv2dOpts {
                    stride: 2,
                    padding: 1,
                    bias: Some(&t[2]),
                    ..Conv2dOpts::default()
                },
            )
        },
        Op::Conv {
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            dilations: vec![],
            group: 1,
            auto_pad: sinter_ir::AutoPad::NotSet,
        },
        "f32[1,4,4,4]",
    );
    check(
        &[f32_in(shape![batch, 4, 10, 10]), f32_in(shape![8, 2, 3, 3])],
        |t| {
            t[0].conv2d(
                &t[1],
                Conv2dOpts {
                    dilation: 2,
                    groups: 2,
                    ..Conv2dOpts::default()
                },
            )
        },
        Op::Conv {
            strides: vec![],
            pads: vec![],
            dilations: vec![2, 2],
            group: 2,
            auto_pad: sinter_ir::AutoPad::NotSet,
        },
        "f32[batch,8,6,6]",
    );
    check(
        &[f32_in(shape![batch, 6, 24, 24])],
        |t| t[0].max_pool2d(2, 2),
        Op::MaxPool {
            kernel_shape: vec![2, 2],
            strides: vec![2, 2],
            pads: vec![],
            dilations: vec![],
            auto_pad: sinter_ir::AutoPad::NotSet,
            ceil_mode: false,
        },
        "f32[batch,6,12,12]",
    );
    check(
        &[f32_in(shape![1, 2, 5, 5])],
        |t| t[0].avg_pool2d(3, 1),
        Op::AveragePool {
            kernel_shape: vec![3, 3],
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            auto_pad: sinter_ir::AutoPad::NotSet,
            ceil_mode: false,
            count_include_pad: false,
        },
        "f32[1,2,3,3]",
    );
    check(
        &[f32_in(shape![batch, 6, 7, 7])],
        |t| t[0].global_avg_pool(),
        Op::GlobalAveragePool {},
        "f32[batch,6,1,1]",
    );
}

#[test]
fn normalization_and_reduction_methods() {
    let x = [f32_in(shape![batch, 10])];
    check(
        &x,
        |t| t[0].softmax(-1),
        Op::Softmax { axis: -1 },
        "f32[batch,10]",
    );
    check(
        &x,
        |t| t[0].log_softmax(1),
        Op::LogSoftmax { axis: 1 },
        "f32[batch,10]",
    );
    check(
        &x,
        |t| t[0].argmax(1, false),
        Op::ArgMax {
            axis: 1,
            keepdims: false,
            select_last_index: false,
        },
        "i64[batch]",
    );
    check(
        &x,
        |t| t[0].reduce_mean(&[-1], true),
        Op::ReduceMean {
            axes: vec![-1],
            keepdims: true,
            noop_with_empty_axes: false,
        },
        "f32[batch,1]",
    );
    check(
        &[f32_in(shape![2, 3])],
        |t| t[0].reduce_sum(&[], false),
        Op::ReduceSum {
            axes: vec![],
            keepdims: false,
            noop_with_empty_axes: false,
        },
        "f32[]",
    );
    check(
        &[
            f32_in(shape![batch, seq, 8]),
            f32_in(shape![8]),
            f32_in(shape![8]),
        ],
        |t| t[0].layer_norm(&t[1], Some(&t[2]), -1, 1e-6),
        Op::LayerNorm {
            axis: -1,
            epsilon: 1e-6,
        },
        "f32[batch,seq,8]",
    );
    let channel = f32_in(shape![3]);
    check(
        &[
            f32_in(shape![batch, 3, 4, 4]),
            channel.clone(),
            channel.clone(),
            channel.clone(),
            channel,
        ],
        |t| t[0].batch_norm(&t[1], &t[2], &t[3], &t[4], 1e-3),
        Op::BatchNorm { epsilon: 1e-3 },
        "f32[batch,3,4,4]",
    );
}

#[test]
fn movement_methods() {
    check(
        &[f32_in(shape![batch, 2, 3])],
        |t| t[0].reshape(&[0, -1]),
        Op::Reshape {
            shape: vec![0, -1],
            allowzero: false,
        },
        "f32[batch,6]",
    );
    check(
        &[f32_in(shape![batch, 16, 4, 4])],
        |t| t[0].flatten(1),
        Op::Flatten { axis: 1 },
        "f32[batch,256]",
    );
    check(
        &[f32_in(shape![2, 3]), f32_in(shape![2, 5])],
        |t| t[0].concat(&[&t[1]], 1),
        Op::Concat { axis: 1 },
        "f32[2,8]",
    );
    check(
        &[f32_in(shape![2, 5])],
        |t| t[0].slice_axis(1, 1, 3),
        Op::Slice {
            starts: vec![1],
            ends: vec![3],
            axes: vec![1],
            steps: vec![],
        },
        "f32[2,2]",
    );
    check(
        &[f32_in(shape![5, 2]), (DType::I64, shape![3])],
        |t| t[0].gather(&t[1], 0),
        Op::Gather { axis: 0 },
        "f32[3,2]",
    );
    check(
        &[f32_in(shape![2, 1, 3])],
        |t| t[0].squeeze(&[1]),
        Op::Squeeze { axes: vec![1] },
        "f32[2,3]",
    );
    check(
        &[f32_in(shape![2, 3])],
        |t| t[0].unsqueeze(&[0]),
        Op::Unsqueeze { axes: vec![0] },
        "f32[1,2,3]",
    );
    check(
        &[f32_in(shape![2, 3])],
        |t| t[0].pad(&[0, 1, 0, 1], PadMode::Constant, 0.0),
        Op::Pad {
            pads: vec![0, 1, 0, 1],
            mode: PadMode::Constant,
            value: 0.0,
        },
        "f32[2,5]",
    );
}

#[test]
fn split_returns_one_handle_per_piece() {
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![3, 4]);
    let pieces = x.split(&[1, 2], 0);
    assert_eq!(pieces.len(), 2);
    b.output("a", &pieces[0]);
    b.output("b", &pieces[1]);
    let graph = b.build().expect("valid");
    let types: Vec<String> = pieces
        .iter()
        .map(|p| graph.value_type(p.value().expect("built")).to_string())
        .collect();
    assert_eq!(types, ["f32[1,4]", "f32[2,4]"]);
    let a = pieces[0].value().expect("built");
    let c = pieces[1].value().expect("built");
    assert_eq!(
        (a.node, a.port, c.port),
        (c.node, 0, 1),
        "both pieces come from one split node"
    );
}

#[test]
fn fused_attention_method() {
    let qkv = f32_in(shape![batch, 2, seq, 8]);
    check(
        &[qkv.clone(), qkv.clone(), qkv],
        |t| {
            t[0].attention(
                &t[1],
                &t[2],
                AttentionOpts {
                    causal: true,
                    ..AttentionOpts::default()
                },
            )
        },
        Op::Attention {
            scale: None,
            causal: true,
            q_num_heads: 0,
            kv_num_heads: 0,
            softcap: 0.0,
        },
        "f32[batch,2,seq,8]",
    );
}

#[test]
fn generic_op_escape_hatch() {
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![2, 3]);
    let outs = b.op(Op::Trilu { upper: true, k: 1 }, &[Some(&x)]);
    assert_eq!(outs.len(), 1);
    b.output("y", &outs[0]);
    let graph = b.build().expect("valid");
    let node = graph.node(outs[0].value().expect("built").node);
    assert_eq!(node.label.as_deref(), Some("trilu_0"));
}

#[test]
fn labels_are_automatic_per_method_or_user_given() {
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![4]);
    let first = x.relu();
    let second = first.relu().named("act2");
    let third = second.relu();
    b.output("y", &third);
    let graph = b.build().expect("valid");
    let label = |t: &Tensor| graph.node(t.value().expect("built").node).label.clone();
    assert_eq!(label(&first).as_deref(), Some("relu_0"));
    assert_eq!(label(&second).as_deref(), Some("act2"));
    assert_eq!(label(&third).as_deref(), Some("relu_2"));
}

#[test]
fn independent_shape_errors_are_all_reported() {
    let b = GraphBuilder::new("two_mistakes");
    let a = b.input("a", DType::F32, shape![2, 3]);
    let w = b.input("w", DType::F32, shape![4, 5]);
    let v = b.input("v", DType::F32, shape![7]);
    let bad_matmul = a.matmul(&w);
    let bad_add = a.add(&v);
    let fine = a.relu();
    b.output("m", &bad_matmul);
    b.output("s", &bad_add);
    b.output("r", &fine);
    let errors = b.build().expect_err("two shape errors");
    assert_eq!(errors.len(), 2, "{errors}");
    let BuildError::Op {
        method,
        op,
        label,
        input_types,
        ..
    } = &errors.errors[0]
    else {
        panic!("an op error: {:?}", errors.errors[0]);
    };
    assert_eq!(
        (method.as_str(), *op, label.as_str()),
        ("matmul", "matmul", "matmul_0")
    );
    let types: Vec<String> = input_types
        .iter()
        .flatten()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(types, ["f32[2,3]", "f32[4,5]"]);
    assert!(matches!(&errors.errors[1], BuildError::Op { method, .. } if method == "add"));
    let text = errors.to_string();
    assert!(
        text.starts_with("2 errors while building graph `two_mistakes`"),
        "{text}"
    );
    assert!(
        text.contains("1. `matmul` (matmul node `matmul_0`) on (f32[2,3], f32[4,5])"),
        "{text}"
    );
}

#[test]
fn a_poisoned_chain_reports_once() {
    let b = GraphBuilder::new("t");
    let a = b.input("a", DType::F32, shape![2, 3]);
    let w = b.input("w", DType::F32, shape![4, 5]);
    let bad = a.matmul(&w);
    assert!(bad.is_poisoned());
    let tail = bad.relu().scale(2.0).softmax(-1).add(&a).t().named("tail");
    assert!(tail.is_poisoned());
    let pieces = bad.split(&[1, 1], 0);
    assert!(pieces.iter().all(Tensor::is_poisoned));
    let mut init = Init::new(0);
    assert!(nn::linear(&tail, 5, 3, &mut init).is_poisoned());
    b.output("y", &tail);
    let error = only_error(b.build());
    assert!(
        matches!(error, BuildError::Op { ref method, .. } if method == "matmul"),
        "{error}"
    );
}

#[test]
fn declaration_errors_are_collected() {
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![2]);
    let again = b.input("x", DType::F32, shape![3]);
    assert!(again.is_poisoned());
    let other = GraphBuilder::new("other");
    let foreign = other.input("z", DType::F32, shape![2]);
    let mixed = x.add(&foreign);
    assert!(mixed.is_poisoned());
    let renamed_input = x.clone().named("not_an_op");
    let short = x.t();
    b.output("y", &x.relu());
    let errors = b.build().expect_err("several errors");
    let kinds: Vec<&str> = errors
        .iter()
        .map(|e| match e {
            BuildError::Graph { .. } => "graph",
            BuildError::ForeignTensor { .. } => "foreign",
            BuildError::Argument { method, .. } => method.as_str(),
            BuildError::Op { .. } => "op",
            BuildError::Verify(_) => "verify",
        })
        .collect();
    assert_eq!(kinds, ["graph", "foreign", "named", "t"], "{errors}");
    assert!(!renamed_input.is_poisoned() && short.is_poisoned());
}

#[test]
fn build_runs_the_verifier() {
    let b = GraphBuilder::new("no_outputs");
    let x = b.input("x", DType::F32, shape![2]);
    let _unused = x.relu();
    let errors = b
        .build()
        .expect_err("a graph without outputs does not verify");
    assert!(
        errors.iter().all(|e| matches!(e, BuildError::Verify(_))),
        "{errors}"
    );
    assert!(!errors.is_empty());
}

#[test]
fn handles_outliving_build_are_inert() {
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![2]);
    let builder_copy = x.builder();
    b.output("y", &x.relu());
    let graph = b.build().expect("valid");
    assert!(x.relu().is_poisoned());
    assert!(builder_copy.errors().is_empty());
    assert_eq!(graph.outputs().len(), 1);
}

fn const_value<'g>(graph: &'g Graph, name: &str) -> Option<&'g sinter_ir::Tensor> {
    graph.node_ids().find_map(|id| match &graph.node(id).kind {
        NodeKind::Const { name: n, value } if n == name => Some(value),
        _ => None,
    })
}

fn op_names(graph: &Graph) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = graph
        .node_ids()
        .filter_map(|id| graph.node(id).op().map(Op::name))
        .collect();
    names.sort_unstable();
    names
}

#[test]
fn linear_names_its_parameters_and_scopes_its_labels() {
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![batch, 3]);
    let mut init = Init::new(1);
    let h = nn::linear(&x, 3, 4, &mut init);
    let y = nn::linear(&h, 4, 2, &mut init);
    b.output("y", &y);
    let graph = b.build().expect("valid");
    assert_eq!(
        graph.value_type(y.value().expect("built")).to_string(),
        "f32[batch,2]"
    );
    assert_eq!(
        const_value(&graph, "linear_0.weight").map(|t| t.shape().to_vec()),
        Some(vec![3, 4])
    );
    assert_eq!(
        const_value(&graph, "linear_1.bias").map(|t| t.shape().to_vec()),
        Some(vec![2])
    );
    let label = graph.node(y.value().expect("built").node).label.clone();
    assert_eq!(label.as_deref(), Some("linear_1.add_0"));
    let bound = 1.0 / 3f32.sqrt();
    let w = const_value(&graph, "linear_0.weight")
        .and_then(|t| t.as_slice::<f32>().map(<[f32]>::to_vec));
    assert!(w.is_some_and(|w| w.iter().all(|v| v.abs() <= bound)));
}

#[test]
fn init_is_deterministic_and_seed_dependent() {
    let spec = nn::ParamSpec {
        name: "w",
        shape: &[3, 5],
        init: nn::ParamInit::Uniform { bound: 0.5 },
    };
    let a = Init::new(42).param(&spec).expect("generated");
    let b = Init::new(42).param(&spec).expect("generated");
    let c = Init::new(43).param(&spec).expect("generated");
    assert_eq!(a, b);
    assert_ne!(a, c);
    let ones = Init::new(0)
        .param(&nn::ParamSpec {
            init: nn::ParamInit::Ones,
            ..spec
        })
        .expect("generated");
    assert_eq!(ones.to_f64_vec(), vec![1.0; 15]);
}

#[test]
fn given_weights_are_used_and_checked() {
    let w = sinter_ir::Tensor::from_vec(vec![2, 1], vec![3.0f32, -1.0]).expect("sized");
    let bias = sinter_ir::Tensor::from_vec(vec![1], vec![0.5f32]).expect("sized");
    let mut weights = nn::Weights::new()
        .with("linear_0.weight", w.clone())
        .with("linear_0.bias", bias);
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![batch, 2]);
    b.output("y", &nn::linear(&x, 2, 1, &mut weights));
    let graph = b.build().expect("valid");
    assert_eq!(const_value(&graph, "linear_0.weight"), Some(&w));
    assert!(weights.unused().is_empty());

    let mut wrong = nn::Weights::new()
        .with(
            "linear_0.weight",
            sinter_ir::Tensor::zeros(DType::F32, vec![1, 2]),
        )
        .with(
            "linear_0.bias",
            sinter_ir::Tensor::zeros(DType::F32, vec![1]),
        );
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![batch, 2]);
    b.output("y", &nn::linear(&x, 2, 1, &mut wrong));
    let error = only_error(b.build());
    assert!(
        error
            .to_string()
            .contains("weight `linear_0.weight` must be f32[2, 1], got f32[1, 2]"),
        "{error}"
    );

    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![batch, 2]);
    b.output("y", &nn::linear(&x, 2, 1, &mut nn::Weights::new()));
    let errors = b.build().expect_err("missing weights");
    assert!(
        errors
            .to_string()
            .contains("no weight named `linear_0.weight`"),
        "{errors}"
    );
}

#[test]
fn conv_block_lenet_stage() {
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![batch, 1, 28, 28]);
    let mut init = Init::new(3);
    let y = nn::conv_block(
        &x,
        nn::ConvBlockOpts {
            pool: Some(2),
            ..nn::ConvBlockOpts::new(6, 5)
        },
        &mut init,
    );
    b.output("y", &y);
    let graph = b.build().expect("valid");
    assert_eq!(
        graph.value_type(y.value().expect("built")).to_string(),
        "f32[batch,6,12,12]"
    );
    assert_eq!(op_names(&graph), ["conv", "max_pool", "relu"]);
    assert!(const_value(&graph, "conv_block_0.weight").is_some_and(|w| w.shape() == [6, 1, 5, 5]));

    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![1, channels, 28, 28]);
    let y = nn::conv_block(&x, nn::ConvBlockOpts::new(6, 5), &mut init);
    b.output("y", &y);
    let error = only_error(b.build());
    assert!(
        error
            .to_string()
            .contains("channel count (axis 1) must be static"),
        "{error}"
    );
}

#[test]
fn recurrent_helpers_have_onnx_output_types() {
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![5, batch, 3]);
    let mut init = Init::new(4);
    let (y, y_h, y_c) = nn::lstm(&x, 4, nn::LstmOpts::default(), &mut init);
    let gru_opts = nn::GruOpts {
        direction: RnnDirection::Bidirectional,
        ..nn::GruOpts::default()
    };
    let (gy, gy_h) = nn::gru(&x, 6, gru_opts, &mut init);
    for (name, t) in [
        ("y", &y),
        ("y_h", &y_h),
        ("y_c", &y_c),
        ("gy", &gy),
        ("gy_h", &gy_h),
    ] {
        b.output(name, t);
    }
    let graph = b.build().expect("valid");
    let ty = |t: &Tensor| graph.value_type(t.value().expect("built")).to_string();
    assert_eq!(
        [ty(&y), ty(&y_h), ty(&y_c)],
        ["f32[5,1,batch,4]", "f32[1,batch,4]", "f32[1,batch,4]"]
    );
    assert_eq!([ty(&gy), ty(&gy_h)], ["f32[5,2,batch,6]", "f32[2,batch,6]"]);
    assert!(const_value(&graph, "lstm_0.w").is_some_and(|w| w.shape() == [1, 16, 3]));
    assert!(const_value(&graph, "gru_0.b").is_some_and(|w| w.shape() == [2, 36]));
}

fn attention_graph(fused: bool, causal: bool) -> Result<Graph, crate::BuildErrors> {
    let b = GraphBuilder::new("mha");
    let x = b.input("x", DType::F32, shape![batch, 6, 16]);
    let mask = b.input("mask", DType::Bool, shape![batch, 1, 1, 6]);
    let mut init = Init::new(9);
    let opts = nn::MultiHeadOpts {
        mask: Some(&mask),
        causal,
        ..nn::MultiHeadOpts::new(4)
    };
    let y = if fused {
        nn::attention_op(&x, 16, opts, &mut init)
    } else {
        nn::multi_head_attention(&x, 16, opts, &mut init)
    };
    b.output("y", &y);
    b.build()
}

#[test]
fn multi_head_attention_decomposed_and_fused() {
    let decomposed = attention_graph(false, true).expect("valid");
    let fused = attention_graph(true, true).expect("valid");
    for graph in [&decomposed, &fused] {
        let (_, y) = &graph.outputs()[0];
        assert_eq!(graph.value_type(*y).to_string(), "f32[batch,6,16]");
    }
    let ops = op_names(&decomposed);
    assert!(
        ops.contains(&"softmax") && ops.contains(&"where") && !ops.contains(&"attention"),
        "{ops:?}"
    );
    assert_eq!(
        ops.iter().filter(|&&n| n == "matmul").count(),
        6,
        "4 projections and 2 attention matmuls"
    );
    assert_eq!(
        ops.iter().filter(|&&n| n == "where").count(),
        2,
        "padding and causal masks"
    );
    assert!(op_names(&fused).contains(&"attention"));
    for name in [
        "mha_0.q.weight",
        "mha_0.k.bias",
        "mha_0.v.weight",
        "mha_0.out.bias",
    ] {
        let (a, b) = (const_value(&decomposed, name), const_value(&fused, name));
        assert!(a.is_some() && a == b, "{name} is the same in both forms");
    }
    let causal = const_value(&decomposed, "causal_mask").expect("a causal mask constant");
    assert_eq!(
        causal.as_slice::<bool>().map(|m| m[..7].to_vec()),
        Some(vec![true, false, false, false, false, false, true])
    );
}

#[test]
fn multi_head_attention_argument_errors() {
    let b = GraphBuilder::new("t");
    let x = b.input("x", DType::F32, shape![batch, seq, 16]);
    let mut init = Init::new(0);
    let bad_heads = nn::multi_head_attention(&x, 16, nn::MultiHeadOpts::new(3), &mut init);
    let causal = nn::MultiHeadOpts {
        causal: true,
        ..nn::MultiHeadOpts::new(4)
    };
    let symbolic_causal = nn::multi_head_attention(&x, 16, causal, &mut init);
    let fused_causal = nn::attention_op(&x, 16, causal, &mut init);
    assert!(
        bad_heads.is_poisoned() && symbolic_causal.is_poisoned() && !fused_causal.is_poisoned()
    );
    b.output("y", &fused_causal);
    let errors = b.build().expect_err("two argument errors");
    assert_eq!(errors.len(), 2, "{errors}");
    assert!(
        errors.errors[0]
            .to_string()
            .contains("multiple of n_heads 3"),
        "{errors}"
    );
    assert!(
        errors.errors[1]
            .to_string()
            .contains("static sequence length"),
        "{errors}"
    );
}

#[test]
fn inputs_take_arrays_of_dims() {
    let b = GraphBuilder::new("t");
    let x = b.input(
        "x",
        DType::F32,
        [crate::Dim::sym("batch"), 1.into(), 28.into(), 28.into()],
    );
    let y = b.input("y", DType::F32, [2usize, 3]);
    assert_eq!(
        x.ty().map(|t| t.to_string()).as_deref(),
        Some("f32[batch,1,28,28]")
    );
    assert_eq!(y.ty().map(|t| t.to_string()).as_deref(), Some("f32[2,3]"));
}

#[test]
fn shape_macro_mixes_static_and_symbolic_dims() {
    let n = 3usize;
    assert_eq!(
        shape![batch, 1, "seq", (n + 1)],
        vec![
            crate::Dim::sym("batch"),
            crate::Dim::Static(1),
            crate::Dim::sym("seq"),
            crate::Dim::Static(4)
        ]
    );
}

#[test]
fn printed_text_of_a_small_graph() {
    let b = GraphBuilder::new("small");
    let x = b.input("x", DType::F32, shape![batch, 1, 4, 4]);
    let w = b.constant(
        "w",
        sinter_ir::Tensor::from_vec(vec![2, 1, 1, 1], vec![0.5f32, -1.0]).expect("sized"),
    );
    let bias = b.constant(
        "b",
        sinter_ir::Tensor::from_vec(vec![2], vec![0.0f32, 0.25]).expect("sized"),
    );
    let conv_opts = Conv2dOpts {
        stride: 2,
        padding: 1,
        bias: Some(&bias),
        ..Conv2dOpts::default()
    };
    let probs = x
        .conv2d(&w, conv_opts)
        .named("conv1")
        .relu()
        .max_pool2d(2, 1)
        .flatten(1)
        .softmax(-1)
        .scale(2.0);
    b.output("probs", &probs);
    let graph = b.build().expect("valid");
    let expected = r#"graph small {
  input %x: f32[batch,1,4,4]
  const @w: f32[2,1,1,1] = [0.5, -1.0]
  const @b: f32[2] = [0.0, 0.25]
  const @scalar: f32[] = [2.0]
  %0: f32[batch,2,3,3] = conv(%x, @w, @b) {strides=[2,2], pads=[1,1,1,1]} loc("conv1")
  %1: f32[batch,2,3,3] = relu(%0) loc("relu_0")
  %2: f32[batch,2,2,2] = max_pool(%1) {kernel_shape=[2,2]} loc("max_pool2d_0")
  %3: f32[batch,8] = flatten(%2) loc("flatten_0")
  %4: f32[batch,8] = softmax(%3) loc("softmax_0")
  %5: f32[batch,8] = mul(%4, @scalar) loc("scale_0")
  output probs = %5
}
"#;
    assert_eq!(graph.to_string(), expected);
}

#[test]
fn built_graphs_round_trip_through_the_text_format() {
    use sinter_ir::text::{graphs_equal, parse_graph, ParseOptions};
    // Dotted parameter names, scoped labels, a -inf scalar and a bool constant all survive.
    let graph = attention_graph(false, true).expect("valid");
    let text = graph.to_string();
    assert!(
        text.contains("-inf")
            && text.contains("@causal_mask")
            && text.contains("loc(\"mha_0.q.matmul_0\")")
    );
    let parsed = parse_graph(&text, &ParseOptions::default())
        .unwrap_or_else(|e| panic!("{}", e.render(&text)));
    assert!(graphs_equal(&graph, &parsed), "{text}");
}

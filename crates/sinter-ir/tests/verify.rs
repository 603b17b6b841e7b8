//! The verifier: one bad graph per `VerifyError` kind, built through the public API, plus graphs with
//! several problems that must all be reported, and the absence of cascading reports.

use sinter_ir::{
    verify, AttrValue, DType, Dim, Graph, NodeId, Op, Tensor, TensorType, Value, VerifyError,
};

fn f32_type(dims: &[usize]) -> TensorType {
    TensorType::fixed(DType::F32, dims)
}

fn op(name: &str, attrs: &[(&str, AttrValue)]) -> Op {
    let attrs = attrs
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    Op::from_attrs(name, attrs).unwrap_or_else(|e| panic!("test op `{name}`: {e}"))
}

fn relu() -> Op {
    op("relu", &[])
}

/// Adds an op node with the given declared output types and returns its first output.
fn add(
    graph: &mut Graph,
    op: Op,
    inputs: &[Option<Value>],
    outputs: Vec<TensorType>,
    label: &str,
) -> Value {
    let id = graph
        .add_op(op, inputs, outputs, Some(label.to_string()))
        .expect("inputs exist");
    Value::new(id, 0)
}

fn errors(graph: &Graph) -> Vec<VerifyError> {
    verify(graph).expect_err("the graph should not verify")
}

/// A graph `y = relu(x)` with output `y`, which verifies.
fn relu_graph() -> (Graph, Value, Value) {
    let mut graph = Graph::new("g");
    let x = graph.add_input("x", f32_type(&[2, 3])).unwrap();
    let y = graph
        .add_op_inferred(relu(), &[Some(x)], Some("r".into()))
        .unwrap()[0];
    graph.add_output("y", y).unwrap();
    (graph, x, y)
}

#[test]
fn a_well_formed_graph_verifies() {
    let mut graph = Graph::new("lenet_head");
    let x = graph
        .add_input(
            "x",
            TensorType::new(
                DType::F32,
                vec![Dim::sym("batch"), 1.into(), 28.into(), 28.into()],
            ),
        )
        .unwrap();
    let w = graph
        .add_const("w", Tensor::zeros(DType::F32, vec![6, 1, 5, 5]))
        .unwrap();
    let b = graph
        .add_const("b", Tensor::zeros(DType::F32, vec![6]))
        .unwrap();
    let conv = graph
        .add_op_inferred(
            op("conv", &[]),
            &[Some(x), Some(w), Some(b)],
            Some("conv1".into()),
        )
        .unwrap()[0];
    let act = graph.add_op_inferred(relu(), &[Some(conv)], None).unwrap()[0];
    let pool = op(
        "max_pool",
        &[
            ("kernel_shape", AttrValue::Ints(vec![2, 2])),
            ("strides", AttrValue::Ints(vec![2, 2])),
        ],
    );
    let pooled = graph.add_op_inferred(pool, &[Some(act)], None).unwrap()[0];
    let flat = graph
        .add_op_inferred(op("flatten", &[]), &[Some(pooled)], None)
        .unwrap()[0];
    let range = op(
        "range",
        &[
            ("start", AttrValue::Float(0.0)),
            ("limit", AttrValue::Float(4.0)),
            ("delta", AttrValue::Float(1.0)),
            ("dtype", AttrValue::Ident("i64".into())),
        ],
    );
    let positions = graph.add_op_inferred(range, &[], None).unwrap()[0];
    graph.add_output("logits", flat).unwrap();
    graph.add_output("positions", positions).unwrap();
    // An output may pass an input through under the input's own name.
    graph.add_output("x", x).unwrap();
    assert_eq!(verify(&graph), Ok(()));
}

#[test]
fn no_outputs() {
    let mut graph = Graph::new("g");
    let x = graph.add_input("x", f32_type(&[2])).unwrap();
    graph.add_op_inferred(relu(), &[Some(x)], None).unwrap();
    assert_eq!(errors(&graph), vec![VerifyError::NoOutputs]);
    assert_eq!(VerifyError::NoOutputs.to_string(), "graph has no outputs");
}

#[test]
fn empty_names() {
    let mut graph = Graph::new("g");
    let x = graph.add_input("", f32_type(&[2])).unwrap();
    graph.add_const("", Tensor::scalar(1.0f32)).unwrap_err();
    graph.add_const("c", Tensor::scalar(1.0f32)).unwrap();
    graph.add_output("", x).unwrap();
    let errs = errors(&graph);
    assert_eq!(
        errs,
        vec![
            VerifyError::EmptyName { what: "input" },
            VerifyError::EmptyName { what: "output" }
        ]
    );
    assert_eq!(errs[0].to_string(), "a graph input has an empty name");

    let mut graph = Graph::new("g");
    let c = graph.add_const("", Tensor::scalar(1.0f32)).unwrap();
    graph.add_output("c", c).unwrap();
    assert_eq!(
        errors(&graph),
        vec![VerifyError::EmptyName { what: "const" }]
    );
}

#[test]
fn output_named_like_another_input() {
    let mut graph = Graph::new("g");
    let x = graph.add_input("x", f32_type(&[2])).unwrap();
    let y = graph
        .add_op_inferred(relu(), &[Some(x)], Some("act".into()))
        .unwrap()[0];
    graph.add_output("x", y).unwrap();
    let errs = errors(&graph);
    assert_eq!(
        errs,
        vec![VerifyError::OutputNameCollision {
            name: "x".into(),
            reads: "relu node `act`".into()
        }]
    );
    assert_eq!(
        errs[0].to_string(),
        "output `x` has the name of a graph input but reads another value (relu node `act`)"
    );
}

#[test]
fn dangling_output() {
    let (mut graph, _, y) = relu_graph();
    graph.remove_node(y.node);
    let errs = errors(&graph);
    assert_eq!(
        errs,
        vec![VerifyError::DanglingOutput {
            name: "y".into(),
            value: y
        }]
    );
    assert!(
        errs[0].to_string().contains("does not exist"),
        "{}",
        errs[0]
    );
}

#[test]
fn dangling_output_and_cycle_are_both_reported() {
    let mut graph = Graph::new("g");
    let x = graph.add_input("x", f32_type(&[2])).unwrap();
    let a = graph
        .add_op_inferred(relu(), &[Some(x)], Some("a".into()))
        .unwrap()[0];
    let b = graph
        .add_op_inferred(relu(), &[Some(a)], Some("b".into()))
        .unwrap()[0];
    let c = graph
        .add_op_inferred(relu(), &[Some(b)], Some("c".into()))
        .unwrap()[0];
    graph.add_output("y", c).unwrap();
    graph.replace_uses(x, b).unwrap();
    graph.remove_node(c.node);
    let errs = errors(&graph);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0],
        VerifyError::DanglingOutput {
            name: "y".into(),
            value: c
        }
    );
    assert!(matches!(&errs[1], VerifyError::Cycle { .. }), "{errs:?}");
}

#[test]
fn cycle_through_replace_uses() {
    // a = relu(x), b = relu(a); making every reader of x read b closes the loop a -> b -> a.
    let mut graph = Graph::new("g");
    let x = graph.add_input("x", f32_type(&[2])).unwrap();
    let a = graph
        .add_op_inferred(relu(), &[Some(x)], Some("a".into()))
        .unwrap()[0];
    let b = graph
        .add_op_inferred(relu(), &[Some(a)], Some("b".into()))
        .unwrap()[0];
    graph.add_output("y", b).unwrap();
    graph.replace_uses(x, b).unwrap();
    let errs = errors(&graph);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let VerifyError::Cycle { node } = &errs[0] else {
        panic!("expected a cycle, got {errs:?}");
    };
    assert!(node == "relu node `a`" || node == "relu node `b`", "{node}");
    assert!(errs[0]
        .to_string()
        .starts_with("the graph has a cycle through relu node"));
}

#[test]
fn cyclic_graphs_still_get_per_node_checks() {
    let mut graph = Graph::new("g");
    let x = graph.add_input("x", f32_type(&[2])).unwrap();
    let a = graph
        .add_op_inferred(relu(), &[Some(x)], Some("a".into()))
        .unwrap()[0];
    // `b` declares the wrong shape for relu of a [2] tensor.
    let b = add(&mut graph, relu(), &[Some(a)], vec![f32_type(&[3])], "b");
    graph.add_output("y", b).unwrap();
    graph.replace_uses(x, b).unwrap();
    let errs = errors(&graph);
    assert!(matches!(errs[0], VerifyError::Cycle { .. }), "{errs:?}");
    // `a` now reads b's declared [3] and infers [3] against its declared [2]; `b` infers [2] from `a`
    // against its declared [3]. Both are local problems, reported on the cyclic graph.
    let mismatches: Vec<_> = errs
        .iter()
        .filter(|e| matches!(e, VerifyError::OutputTypeMismatch { .. }))
        .collect();
    assert_eq!(mismatches.len(), 2, "{errs:?}");
}

#[test]
fn wrong_input_count() {
    let (mut graph, x, _) = relu_graph();
    let z = add(
        &mut graph,
        relu(),
        &[Some(x), Some(x)],
        vec![f32_type(&[2, 3])],
        "two",
    );
    graph.add_output("z", z).unwrap();
    let errs = errors(&graph);
    assert_eq!(
        errs,
        vec![VerifyError::InputCount {
            node: "relu node `two`".into(),
            op: "relu",
            expected: "exactly 1".into(),
            got: 2
        }]
    );
    assert_eq!(
        errs[0].to_string(),
        "relu node `two`: `relu` takes exactly 1 inputs, got 2"
    );

    let (mut graph, _, _) = relu_graph();
    let empty = add(
        &mut graph,
        op("concat", &[("axis", AttrValue::Int(0))]),
        &[],
        vec![f32_type(&[2])],
        "cat",
    );
    graph.add_output("z", empty).unwrap();
    let errs = errors(&graph);
    assert!(
        matches!(&errs[..], [VerifyError::InputCount { expected, got: 0, .. }] if expected == "at least 1"),
        "{errs:?}"
    );
}

#[test]
fn missing_required_input() {
    let mut graph = Graph::new("g");
    let x = graph.add_input("x", f32_type(&[1, 1, 4, 4])).unwrap();
    let b = graph
        .add_const("b", Tensor::zeros(DType::F32, vec![1]))
        .unwrap();
    let y = add(
        &mut graph,
        op("conv", &[]),
        &[Some(x), None, Some(b)],
        vec![f32_type(&[1, 1, 2, 2])],
        "c",
    );
    graph.add_output("y", y).unwrap();
    let errs = errors(&graph);
    assert_eq!(
        errs,
        vec![VerifyError::MissingInput {
            node: "conv node `c`".into(),
            op: "conv",
            slot_idx: 1,
            name: "w"
        }]
    );
    assert_eq!(
        errs[0].to_string(),
        "conv node `c`: required input `w` (slot 1) of `conv` is absent"
    );
}

#[test]
fn input_reading_a_missing_port() {
    let mut graph = Graph::new("g");
    let x = graph.add_input("x", f32_type(&[4])).unwrap();
    let split = op("split", &[("split", AttrValue::Ints(vec![2, 2]))]);
    let halves = graph
        .add_op_inferred(split, &[Some(x)], Some("s".into()))
        .unwrap();
    let y = graph
        .add_op_inferred(relu(), &[Some(halves[1])], Some("r".into()))
        .unwrap()[0];
    graph.add_output("y", y).unwrap();
    // Dropping the split's second declared output leaves `r` reading a port that is gone.
    graph.node_mut(halves[0].node).outputs.truncate(1);
    let errs = errors(&graph);
    assert!(
        errs.contains(&VerifyError::DanglingInput {
            node: "relu node `r`".into(),
            op: "relu",
            slot_idx: 0,
            source_node: "split node `s`".into(),
            port: 1,
            n_outputs: 1,
        }),
        "{errs:?}"
    );
    assert!(
        errs.contains(&VerifyError::OutputCount {
            node: "split node `s`".into(),
            expected: 2,
            got: 1
        }),
        "{errs:?}"
    );
    assert_eq!(errs.len(), 2, "no type errors on top: {errs:?}");
}

#[test]
fn output_count_mismatch() {
    let (mut graph, x, _) = relu_graph();
    let id = graph
        .add_op(relu(), &[Some(x)], vec![], Some("none".into()))
        .unwrap();
    let split = op(
        "split",
        &[
            ("split", AttrValue::Ints(vec![1, 2])),
            ("axis", AttrValue::Int(1)),
        ],
    );
    graph
        .add_op(
            split,
            &[Some(x)],
            vec![f32_type(&[2, 1])],
            Some("half".into()),
        )
        .unwrap();
    let errs = errors(&graph);
    assert_eq!(
        errs,
        vec![
            VerifyError::OutputCount {
                node: "relu node `none`".into(),
                expected: 1,
                got: 0
            },
            VerifyError::OutputCount {
                node: "split node `half`".into(),
                expected: 2,
                got: 1
            },
        ]
    );
    assert_eq!(
        errs[0].to_string(),
        "relu node `none`: produces 1 outputs, but the node declares 0 output types"
    );
    let _ = id;

    // Inputs and consts declare exactly one output.
    let (mut graph, x, _) = relu_graph();
    graph.node_mut(x.node).outputs.push(f32_type(&[1]));
    assert_eq!(
        errors(&graph),
        vec![VerifyError::OutputCount {
            node: "input `x`".into(),
            expected: 1,
            got: 2
        }]
    );
}

#[test]
fn op_rejecting_its_inputs() {
    let mut graph = Graph::new("g");
    let x = graph
        .add_input("x", TensorType::fixed(DType::I64, &[3]))
        .unwrap();
    let y = add(
        &mut graph,
        op("exp", &[]),
        &[Some(x)],
        vec![TensorType::fixed(DType::I64, &[3])],
        "e",
    );
    graph.add_output("y", y).unwrap();
    let errs = errors(&graph);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let VerifyError::Inference { node, op, source } = &errs[0] else {
        panic!("expected an inference error, got {errs:?}");
    };
    assert_eq!((node.as_str(), *op), ("exp node `e`", "exp"));
    assert_eq!(source.op, "exp");
    assert_eq!(
        errs[0].to_string(),
        "exp node `e`: the op rejects its inputs: input `x` must be a float dtype (f32, f64), got i64"
    );
}

#[test]
fn declared_output_type_differs_from_inferred() {
    let (mut graph, x, _) = relu_graph();
    let z = add(&mut graph, relu(), &[Some(x)], vec![f32_type(&[3, 2])], "t");
    graph.add_output("z", z).unwrap();
    let errs = errors(&graph);
    assert_eq!(
        errs,
        vec![VerifyError::OutputTypeMismatch {
            node: "relu node `t`".into(),
            op: "relu",
            port_idx: 0,
            declared: f32_type(&[3, 2]),
            inferred: f32_type(&[2, 3]),
        }]
    );
    assert_eq!(
        errs[0].to_string(),
        "relu node `t`: output 0 is declared f32[3,2], but `relu` infers f32[2,3]"
    );

    // A symbolic dim where inference gives a static one is a mismatch too.
    let (mut graph, x, _) = relu_graph();
    let sym = TensorType::new(DType::F32, vec![Dim::sym("n"), 3.into()]);
    let z = add(&mut graph, relu(), &[Some(x)], vec![sym], "s");
    graph.add_output("z", z).unwrap();
    assert!(matches!(
        &errors(&graph)[..],
        [VerifyError::OutputTypeMismatch { .. }]
    ));
}

#[test]
fn const_declared_type_differs_from_its_tensor() {
    let mut graph = Graph::new("g");
    let c = graph
        .add_const("c", Tensor::from_vec(vec![2], vec![1.0f32, 2.0]).unwrap())
        .unwrap();
    graph.add_output("c", c).unwrap();
    graph.node_mut(c.node).outputs[0] = TensorType::fixed(DType::F64, &[2]);
    let errs = errors(&graph);
    assert_eq!(
        errs,
        vec![VerifyError::ConstTypeMismatch {
            node: "const `@c`".into(),
            declared: TensorType::fixed(DType::F64, &[2]),
            actual: f32_type(&[2]),
        }]
    );
    assert_eq!(
        errs[0].to_string(),
        "const `@c`: is declared f64[2], but its tensor is f32[2]"
    );
}

#[test]
fn consumers_of_a_rejecting_node_are_not_type_checked() {
    // `e` rejects its i64 input; `r` reads e's (wrong) declared type and would fail too, and `s`
    // declares a wrong type downstream. Only the root problem is reported for `r`, but `s`, which reads
    // a node that did not reject its inputs, is still checked.
    let mut graph = Graph::new("g");
    let x = graph
        .add_input("x", TensorType::fixed(DType::I64, &[3]))
        .unwrap();
    let e = add(
        &mut graph,
        op("exp", &[]),
        &[Some(x)],
        vec![TensorType::fixed(DType::I64, &[3])],
        "e",
    );
    let r = add(
        &mut graph,
        op("sigmoid", &[]),
        &[Some(e)],
        vec![TensorType::fixed(DType::I64, &[3])],
        "r",
    );
    let s = add(
        &mut graph,
        op("neg", &[]),
        &[Some(x)],
        vec![TensorType::fixed(DType::I64, &[4])],
        "s",
    );
    graph.add_output("r", r).unwrap();
    graph.add_output("s", s).unwrap();
    let errs = errors(&graph);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        matches!(&errs[0], VerifyError::Inference { node, .. } if node == "exp node `e`"),
        "{errs:?}"
    );
    assert!(
        matches!(&errs[1], VerifyError::OutputTypeMismatch { node, .. } if node == "neg node `s`"),
        "{errs:?}"
    );
}

#[test]
fn every_problem_is_reported() {
    let mut graph = Graph::new("g");
    let x = graph.add_input("x", f32_type(&[2, 3])).unwrap();
    let c = graph
        .add_const("c", Tensor::zeros(DType::F32, vec![3]))
        .unwrap();
    graph.node_mut(c.node).outputs[0] = f32_type(&[4]);
    let mismatch = add(
        &mut graph,
        relu(),
        &[Some(x)],
        vec![f32_type(&[9])],
        "mismatch",
    );
    let too_many = add(
        &mut graph,
        relu(),
        &[Some(x), Some(x)],
        vec![f32_type(&[2, 3])],
        "too_many",
    );
    let missing = add(
        &mut graph,
        op("matmul", &[]),
        &[None, Some(x)],
        vec![f32_type(&[2, 3])],
        "missing",
    );
    let no_outputs: NodeId = graph
        .add_op(relu(), &[Some(x)], vec![], Some("no_outputs".into()))
        .unwrap();
    let rejected = add(
        &mut graph,
        op("not", &[]),
        &[Some(x)],
        vec![f32_type(&[2, 3])],
        "rejected",
    );
    for value in [mismatch, too_many, missing, rejected] {
        graph
            .add_output(format!("out{}", value.node.index()), value)
            .unwrap();
    }
    let errs = errors(&graph);
    let kinds: Vec<&str> = errs
        .iter()
        .map(|e| match e {
            VerifyError::ConstTypeMismatch { .. } => "const",
            VerifyError::OutputTypeMismatch { .. } => "mismatch",
            VerifyError::InputCount { .. } => "input count",
            VerifyError::MissingInput { .. } => "missing",
            VerifyError::OutputCount { .. } => "output count",
            VerifyError::Inference { .. } => "inference",
            _ => "other",
        })
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            "const",
            "inference",
            "input count",
            "mismatch",
            "missing",
            "output count"
        ],
        "{errs:#?}"
    );
    let _ = no_outputs;
}

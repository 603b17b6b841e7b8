//! Importing ONNX models into the IR.
//!
//! Models are built here with the prost structs, encoded and decoded again (so they go through the
//! same decoder as files), imported, and checked three ways: the IR ops and attributes the importer
//! chose, the types it inferred, and the numbers `sinter_ref::run` computes from them. Expected numbers
//! are computed independently in the tests (by hand or with a plain formula).

use bytes::Bytes;
use prost::Message;
use sinter_ir::rng::SplitMix64;
use sinter_ir::{DType, Dim, Graph, NodeKind, Op, RnnActivation, Tensor, TensorType};
use sinter_onnx::proto::attribute_proto::AttributeType;
use sinter_onnx::proto::tensor_proto::DataType;
use sinter_onnx::proto::tensor_shape_proto::{dimension, Dimension};
use sinter_onnx::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use sinter_onnx::{
    decode_model, import_model_proto, ExternalData, ImportError, ImportOptions, UnsupportedNodes,
};

// ---- model building ----

/// A declared dim: a number, a named parameter, or unknown.
#[derive(Clone, Copy)]
enum D {
    V(i64),
    P(&'static str),
    U,
}

fn info(name: &str, elem_type: DataType, dims: &[D]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: match d {
                D::V(v) => Some(dimension::Value::DimValue(*v)),
                D::P(p) => Some(dimension::Value::DimParam(p.to_string())),
                D::U => None,
            },
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem_type as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn f32_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dims: Vec<D> = dims.iter().map(|&d| D::V(d)).collect();
    info(name, DataType::Float, &dims)
}

/// An output whose type the model does not declare.
fn untyped(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        ..Default::default()
    }
}

fn f32_init(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn i64_init(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::Int64 as i32,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn node(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op_type.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn with(mut node: NodeProto, attrs: Vec<AttributeProto>) -> NodeProto {
    node.attribute.extend(attrs);
    node
}

fn attr(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: kind as i32,
        ..Default::default()
    }
}

fn a_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        i: value,
        ..attr(name, AttributeType::Int)
    }
}

fn a_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: values.to_vec(),
        ..attr(name, AttributeType::Ints)
    }
}

fn a_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        f: value,
        ..attr(name, AttributeType::Float)
    }
}

fn a_floats(name: &str, values: &[f32]) -> AttributeProto {
    AttributeProto {
        floats: values.to_vec(),
        ..attr(name, AttributeType::Floats)
    }
}

fn a_str(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        s: value.as_bytes().to_vec(),
        ..attr(name, AttributeType::String)
    }
}

fn a_strs(name: &str, values: &[&str]) -> AttributeProto {
    AttributeProto {
        strings: values.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..attr(name, AttributeType::Strings)
    }
}

fn a_tensor(name: &str, tensor: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(tensor),
        ..attr(name, AttributeType::Tensor)
    }
}

/// A model of the default domain at `opset`.
fn model(
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(GraphProto {
            name: "test".to_string(),
            node: nodes,
            input: inputs,
            output: outputs,
            initializer: initializers,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn try_import_with(model: &ModelProto, options: &ImportOptions) -> Result<Graph, ImportError> {
    let decoded = decode_model(Bytes::from(model.encode_to_vec())).expect("the model decodes");
    import_model_proto(&decoded, &ExternalData::unavailable(), options)
}

fn try_import(model: &ModelProto) -> Result<Graph, ImportError> {
    try_import_with(model, &ImportOptions::default())
}

fn import(model: &ModelProto) -> Graph {
    let graph = try_import(model).unwrap_or_else(|e| panic!("import failed: {e}"));
    sinter_ir::verify(&graph)
        .unwrap_or_else(|e| panic!("the imported graph does not verify: {e:?}"));
    graph
}

fn unsupported(model: &ModelProto) -> UnsupportedNodes {
    match try_import(model) {
        Err(ImportError::Unsupported(nodes)) => nodes,
        Err(other) => panic!("expected unsupported nodes, got {other}"),
        Ok(graph) => panic!("expected unsupported nodes, got a graph:\n{graph}"),
    }
}

fn run(graph: &Graph, inputs: &[(&str, Tensor)]) -> Vec<Tensor> {
    sinter_ref::run(graph, inputs)
        .unwrap_or_else(|e| panic!("run failed: {e}\n{graph}"))
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

/// The IR ops of the graph, in canonical order.
fn ops(graph: &Graph) -> Vec<Op> {
    graph
        .canonical_order()
        .expect("acyclic")
        .into_iter()
        .filter_map(|id| graph.node(id).op().cloned())
        .collect()
}

fn op_names(graph: &Graph) -> Vec<&'static str> {
    ops(graph).iter().map(Op::name).collect()
}

fn output_type(graph: &Graph, idx: usize) -> TensorType {
    graph.value_type(graph.outputs()[idx].1).clone()
}

fn t32(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), data.to_vec()).expect("tensor")
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.as_slice::<f32>().expect("f32 tensor").to_vec()
}

fn assert_close(actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (idx, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 1e-6 + 1e-5 * e.abs(),
            "element {idx}: {a} vs {e} ({actual:?} vs {expected:?})"
        );
    }
}

// ---- opset variants ----

#[test]
fn squeeze_axes_are_an_attribute_before_opset_13_and_an_input_from_13() {
    let x = t32(&[1, 3, 1], &[1.0, 2.0, 3.0]);
    let old = model(
        11,
        vec![with(
            node("Squeeze", "sq", &["x"], &["y"]),
            vec![a_ints("axes", &[0])],
        )],
        vec![f32_info("x", &[1, 3, 1])],
        vec![untyped("y")],
        vec![],
    );
    let new = model(
        13,
        vec![node("Squeeze", "sq", &["x", "axes"], &["y"])],
        vec![f32_info("x", &[1, 3, 1])],
        vec![untyped("y")],
        vec![i64_init("axes", &[1], &[0])],
    );
    for m in [&old, &new] {
        let graph = import(m);
        assert_eq!(ops(&graph), vec![Op::Squeeze { axes: vec![0] }]);
        assert_eq!(
            output_type(&graph, 0),
            TensorType::fixed(DType::F32, &[3, 1])
        );
        assert_eq!(f32s(&run(&graph, &[("x", x.clone())])[0]), [1.0, 2.0, 3.0]);
    }
    // Without axes, every unit dim goes.
    let all = model(
        13,
        vec![node("Squeeze", "sq", &["x"], &["y"])],
        vec![f32_info("x", &[1, 3, 1])],
        vec![untyped("y")],
        vec![],
    );
    assert_eq!(
        output_type(&import(&all), 0),
        TensorType::fixed(DType::F32, &[3])
    );
}

/// Softmax over the flattened trailing block of each of the leading rows.
fn softmax_rows(values: &[f32], row_len: usize) -> Vec<f32> {
    values
        .chunks(row_len)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            exps.into_iter().map(move |e| (e / sum) as f32)
        })
        .collect()
}

#[test]
fn softmax_before_opset_13_normalizes_jointly_over_the_trailing_axes() {
    let data: Vec<f32> = vec![0.5, -1.0, 2.0, 0.0, 1.5, 3.0, -2.0, 0.25];
    let x = t32(&[2, 2, 2], &data);
    let softmax = |opset, axis| {
        model(
            opset,
            vec![with(
                node("Softmax", "sm", &["x"], &["y"]),
                vec![a_int("axis", axis)],
            )],
            vec![f32_info("x", &[2, 2, 2])],
            vec![f32_info("y", &[2, 2, 2])],
            vec![],
        )
    };
    // Opset 11, axis 1: each batch entry's 4 values form one distribution.
    let old = import(&softmax(11, 1));
    assert_eq!(op_names(&old), ["flatten", "softmax", "reshape"]);
    assert_close(
        &f32s(&run(&old, &[("x", x.clone())])[0]),
        &softmax_rows(&data, 4),
    );
    // Opset 13, axis 1: one distribution per (batch, last index) pair along axis 1.
    let new = import(&softmax(13, 1));
    assert_eq!(ops(&new), vec![Op::Softmax { axis: 1 }]);
    let mut expected = vec![0.0; 8];
    for b in 0..2 {
        for k in 0..2 {
            let pair = softmax_rows(&[data[b * 4 + k], data[b * 4 + 2 + k]], 2);
            expected[b * 4 + k] = pair[0];
            expected[b * 4 + 2 + k] = pair[1];
        }
    }
    assert_close(&f32s(&run(&new, &[("x", x.clone())])[0]), &expected);
    // On the last axis the old form needs no reshaping.
    assert_eq!(
        ops(&import(&softmax(11, 2))),
        vec![Op::Softmax { axis: -1 }]
    );
}

#[test]
fn clip_bounds_are_attributes_before_opset_11_and_constant_inputs_from_11() {
    let x = t32(&[4], &[-3.0, -0.5, 0.5, 3.0]);
    let old = model(
        6,
        vec![with(
            node("Clip", "clip", &["x"], &["y"]),
            vec![a_float("min", -1.0), a_float("max", 1.0)],
        )],
        vec![f32_info("x", &[4])],
        vec![untyped("y")],
        vec![],
    );
    let graph = import(&old);
    assert_eq!(
        ops(&graph),
        vec![Op::Clip {
            min: Some(-1.0),
            max: Some(1.0)
        }]
    );
    assert_eq!(
        f32s(&run(&graph, &[("x", x.clone())])[0]),
        [-1.0, -0.5, 0.5, 1.0]
    );
    // Absent opset-6 bounds are the float limits.
    let unbounded = model(
        6,
        vec![node("Clip", "clip", &["x"], &["y"])],
        vec![f32_info("x", &[4])],
        vec![untyped("y")],
        vec![],
    );
    let limit = f64::from(f32::MAX);
    assert_eq!(
        ops(&import(&unbounded)),
        vec![Op::Clip {
            min: Some(-limit),
            max: Some(limit)
        }]
    );
    // Opset 12: a constant min and an absent max.
    let new = model(
        12,
        vec![node("Clip", "clip", &["x", "lo", ""], &["y"])],
        vec![f32_info("x", &[4])],
        vec![untyped("y")],
        vec![f32_init("lo", &[], &[-1.0])],
    );
    let graph = import(&new);
    assert_eq!(
        ops(&graph),
        vec![Op::Clip {
            min: Some(-1.0),
            max: None
        }]
    );
    assert_eq!(f32s(&run(&graph, &[("x", x)])[0]), [-1.0, -0.5, 0.5, 3.0]);
}

#[test]
fn pad_moves_from_attributes_to_inputs_and_gains_axes() {
    let x = t32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let expected = [9.0, 1.0, 2.0, 9.0, 9.0, 3.0, 4.0, 9.0];
    let old = model(
        2,
        vec![with(
            node("Pad", "pad", &["x"], &["y"]),
            vec![a_ints("pads", &[0, 1, 0, 1]), a_float("value", 9.0)],
        )],
        vec![f32_info("x", &[2, 2])],
        vec![f32_info("y", &[2, 4])],
        vec![],
    );
    let new = model(
        18,
        vec![node("Pad", "pad", &["x", "pads", "value", "axes"], &["y"])],
        vec![f32_info("x", &[2, 2])],
        vec![f32_info("y", &[2, 4])],
        vec![
            i64_init("pads", &[2], &[1, 1]),
            f32_init("value", &[], &[9.0]),
            i64_init("axes", &[1], &[-1]),
        ],
    );
    for m in [&old, &new] {
        let graph = import(m);
        assert_eq!(
            ops(&graph),
            vec![Op::Pad {
                pads: vec![0, 1, 0, 1],
                mode: sinter_ir::PadMode::Constant,
                value: 9.0
            }]
        );
        assert_eq!(f32s(&run(&graph, &[("x", x.clone())])[0]), expected);
    }
}

#[test]
fn resize_maps_the_opset_10_13_and_19_forms() {
    let x = t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let upsampled = [
        1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0,
    ];
    let io = || {
        (
            vec![f32_info("x", &[1, 1, 2, 2])],
            vec![f32_info("y", &[1, 1, 4, 4])],
        )
    };
    let (inputs, outputs) = io();
    let v10 = model(
        10,
        vec![with(
            node("Resize", "r", &["x", "scales"], &["y"]),
            vec![a_str("mode", "nearest")],
        )],
        inputs,
        outputs,
        vec![f32_init("scales", &[4], &[1.0, 1.0, 2.0, 2.0])],
    );
    let (inputs, outputs) = io();
    let v13 = model(
        13,
        vec![with(
            node("Resize", "r", &["x", "", "", "sizes"], &["y"]),
            vec![
                a_str("coordinate_transformation_mode", "asymmetric"),
                a_str("nearest_mode", "floor"),
            ],
        )],
        inputs,
        outputs,
        vec![i64_init("sizes", &[4], &[1, 1, 4, 4])],
    );
    let (inputs, outputs) = io();
    let v19 = model(
        19,
        vec![with(
            node("Resize", "r", &["x", "", "scales"], &["y"]),
            vec![
                a_ints("axes", &[2, 3]),
                a_str("coordinate_transformation_mode", "half_pixel_symmetric"),
            ],
        )],
        inputs,
        outputs,
        vec![f32_init("scales", &[2], &[2.0, 2.0])],
    );
    for m in [&v10, &v13, &v19] {
        let graph = import(m);
        assert_eq!(f32s(&run(&graph, &[("x", x.clone())])[0]), upsampled);
    }
    match &ops(&import(&v10))[0] {
        Op::Resize {
            coordinate_transformation_mode,
            nearest_mode,
            scales,
            ..
        } => {
            assert_eq!(
                *coordinate_transformation_mode,
                sinter_ir::CoordTransform::Asymmetric
            );
            assert_eq!(*nearest_mode, sinter_ir::NearestMode::Floor);
            assert_eq!(scales, &[1.0, 1.0, 2.0, 2.0]);
        }
        other => panic!("expected resize, got {other:?}"),
    }
    match &ops(&import(&v19))[0] {
        Op::Resize { scales, .. } => assert_eq!(scales, &[1.0, 1.0, 2.0, 2.0]),
        other => panic!("expected resize, got {other:?}"),
    }
    // Opset 10 rounds up when downsampling.
    let down = model(
        10,
        vec![node("Resize", "r", &["x", "scales"], &["y"])],
        vec![f32_info("x", &[1, 1, 2, 2])],
        vec![untyped("y")],
        vec![f32_init("scales", &[4], &[1.0, 1.0, 0.5, 0.5])],
    );
    match &ops(&import(&down))[0] {
        Op::Resize { nearest_mode, .. } => assert_eq!(*nearest_mode, sinter_ir::NearestMode::Ceil),
        other => panic!("expected resize, got {other:?}"),
    }
    // What the IR cannot express is reported with a reason.
    for (attrs, reason) in [
        (vec![a_str("mode", "cubic")], "cubic"),
        (
            vec![a_str(
                "coordinate_transformation_mode",
                "tf_crop_and_resize",
            )],
            "tf_crop_and_resize",
        ),
        (
            vec![a_str("mode", "linear"), a_int("antialias", 1)],
            "antialias",
        ),
    ] {
        let m = model(
            19,
            vec![with(
                node("Resize", "r", &["x", "", "scales"], &["y"]),
                attrs,
            )],
            vec![f32_info("x", &[1, 1, 2, 2])],
            vec![untyped("y")],
            vec![f32_init("scales", &[4], &[1.0, 1.0, 0.5, 0.5])],
        );
        let nodes = unsupported(&m).nodes;
        assert_eq!(nodes.len(), 1);
        assert!(nodes[0].reason.contains(reason), "{}", nodes[0].reason);
    }
}

#[test]
fn split_sizes_come_from_an_attribute_an_input_or_num_outputs() {
    let x = t32(&[5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
    let v13 = model(
        13,
        vec![node("Split", "split", &["x", "split"], &["a", "b"])],
        vec![f32_info("x", &[5])],
        vec![untyped("a"), untyped("b")],
        vec![i64_init("split", &[2], &[2, 3])],
    );
    let graph = import(&v13);
    assert_eq!(
        ops(&graph),
        vec![Op::Split {
            split: vec![2, 3],
            axis: 0
        }]
    );
    let outputs = run(&graph, &[("x", x.clone())]);
    assert_eq!(
        (f32s(&outputs[0]), f32s(&outputs[1])),
        (vec![1.0, 2.0], vec![3.0, 4.0, 5.0])
    );
    // Opset 18: pieces of ceil(5 / 2) with the remainder last.
    let v18 = model(
        18,
        vec![with(
            node("Split", "split", &["x"], &["a", "b"]),
            vec![a_int("num_outputs", 2)],
        )],
        vec![f32_info("x", &[5])],
        vec![untyped("a"), untyped("b")],
        vec![],
    );
    let graph = import(&v18);
    assert_eq!(
        ops(&graph),
        vec![Op::Split {
            split: vec![3, 2],
            axis: 0
        }]
    );
    let outputs = run(&graph, &[("x", x)]);
    assert_eq!(
        (f32s(&outputs[0]), f32s(&outputs[1])),
        (vec![1.0, 2.0, 3.0], vec![4.0, 5.0])
    );
    // Opset 11: the attribute, or equal parts per output without it.
    let v11 = model(
        11,
        vec![
            with(
                node("Split", "s1", &["x"], &["a", "b"]),
                vec![a_ints("split", &[1, 3])],
            ),
            node("Split", "s2", &["x"], &["c", "d"]),
        ],
        vec![f32_info("x", &[4])],
        vec![untyped("a"), untyped("c")],
        vec![],
    );
    assert_eq!(
        ops(&import(&v11)),
        vec![
            Op::Split {
                split: vec![1, 3],
                axis: 0
            },
            Op::Split {
                split: vec![2, 2],
                axis: 0
            }
        ]
    );
}

// ---- constant folding and symbolic shapes ----

/// `Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [12]))`, the usual exported "flatten all but
/// the batch" chain, on `x: [batch, 3, 4]`.
fn flatten_chain_model() -> ModelProto {
    model(
        13,
        vec![
            node("Shape", "shape", &["x"], &["s"]),
            node("Gather", "gather", &["s", "zero"], &["b"]),
            node("Unsqueeze", "unsqueeze", &["b", "axes0"], &["b1"]),
            with(
                node("Concat", "concat", &["b1", "twelve"], &["target"]),
                vec![a_int("axis", 0)],
            ),
            node("Reshape", "reshape", &["x", "target"], &["y"]),
        ],
        vec![info(
            "x",
            DataType::Float,
            &[D::P("batch"), D::V(3), D::V(4)],
        )],
        vec![info("y", DataType::Float, &[D::P("batch"), D::V(12)])],
        vec![
            i64_init("zero", &[], &[0]),
            i64_init("axes0", &[1], &[0]),
            i64_init("twelve", &[1], &[12]),
        ],
    )
}

#[test]
fn a_shape_chain_with_a_symbolic_batch_resolves_into_the_reshape() {
    let graph = import(&flatten_chain_model());
    // The shape subgraph is gone: the batch symbol became a "copy" entry of the reshape.
    assert_eq!(
        ops(&graph),
        vec![Op::Reshape {
            shape: vec![0, 12],
            allowzero: false
        }]
    );
    assert_eq!(
        output_type(&graph, 0),
        TensorType::new(DType::F32, vec![Dim::sym("batch"), Dim::Static(12)])
    );
    let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
    let y = &run(&graph, &[("x", t32(&[2, 3, 4], &data))])[0];
    assert_eq!((y.shape(), f32s(y)), (&[2usize, 12][..], data.clone()));
    // With the batch fixed, the chain folds to a constant target.
    let mut options = ImportOptions::default();
    options.dim_overrides.insert("batch".to_string(), 2);
    let graph = try_import_with(&flatten_chain_model(), &options).expect("imports");
    assert_eq!(
        ops(&graph),
        vec![Op::Reshape {
            shape: vec![2, 12],
            allowzero: false
        }]
    );
    assert_eq!(
        graph.input_signature()[0].1,
        &TensorType::fixed(DType::F32, &[2, 3, 4])
    );
}

#[test]
fn shape_arithmetic_folds_static_dims_and_infers_one_unknown() {
    // Reshape(x, [Shape(x)[0], Shape(x)[2], Shape(x)[1] * Shape(x)[3]]): the merge of heads after a
    // transpose. On x: [b, 2, s, 4] the product folds to 8, `b` is copied, and `s` (not the input's
    // dim at its axis) is the one entry left to infer.
    let nodes = vec![
        node("Shape", "shape", &["x"], &["shape"]),
        node("Gather", "g0", &["shape", "i0"], &["d0"]),
        node("Gather", "g1", &["shape", "i1"], &["d1"]),
        node("Gather", "g2", &["shape", "i2"], &["d2"]),
        node("Gather", "g3", &["shape", "i3"], &["d3"]),
        node("Mul", "mul", &["d1", "d3"], &["d13"]),
        with(
            node("Concat", "concat", &["d0", "d2", "d13"], &["target"]),
            vec![a_int("axis", 0)],
        ),
        node("Reshape", "merge", &["x", "target"], &["y"]),
    ];
    let inits = vec![
        i64_init("i0", &[1], &[0]),
        i64_init("i1", &[1], &[1]),
        i64_init("i2", &[1], &[2]),
        i64_init("i3", &[1], &[3]),
    ];
    let m = model(
        13,
        nodes.clone(),
        vec![info(
            "x",
            DataType::Float,
            &[D::P("b"), D::V(2), D::P("s"), D::V(4)],
        )],
        vec![untyped("y")],
        inits.clone(),
    );
    let graph = import(&m);
    assert_eq!(
        ops(&graph),
        vec![Op::Reshape {
            shape: vec![0, -1, 8],
            allowzero: false
        }]
    );
    assert_eq!(
        output_type(&graph, 0),
        TensorType::new(
            DType::F32,
            vec![Dim::sym("b"), Dim::sym("s"), Dim::Static(8)]
        )
    );
    let data: Vec<f32> = (0..48).map(|v| v as f32).collect();
    let y = &run(&graph, &[("x", t32(&[2, 2, 3, 4], &data))])[0];
    assert_eq!((y.shape(), f32s(y)), (&[2usize, 3, 8][..], data));
    // On x: [b, m, s, 4], `m * 4` cannot be named and `s` must be inferred too: reported, not guessed.
    let m = model(
        13,
        nodes,
        vec![info(
            "x",
            DataType::Float,
            &[D::P("b"), D::P("m"), D::P("s"), D::V(4)],
        )],
        vec![untyped("y")],
        inits,
    );
    let nodes = unsupported(&m).nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].node_name.as_str(), nodes[0].op_type.as_str()),
        ("merge", "Reshape")
    );
    assert!(
        nodes[0].reason.contains("reshape target [b, s, ?]"),
        "{}",
        nodes[0].reason
    );
}

#[test]
fn an_unresolvable_symbolic_target_is_reported_with_the_node() {
    // Reshape(x, [Shape(x)[1], Shape(x)[0]]) on x: [a, b] swaps two symbols.
    let m = model(
        13,
        vec![
            node("Shape", "shape", &["x"], &["s"]),
            with(
                node(
                    "Slice",
                    "rev",
                    &["s", "start", "end", "axes", "step"],
                    &["t"],
                ),
                vec![],
            ),
            node("Reshape", "swap", &["x", "t"], &["y"]),
        ],
        vec![info("x", DataType::Float, &[D::P("a"), D::P("b")])],
        vec![untyped("y")],
        vec![
            i64_init("start", &[1], &[-1]),
            i64_init("end", &[1], &[i64::MIN]),
            i64_init("axes", &[1], &[0]),
            i64_init("step", &[1], &[-1]),
        ],
    );
    let nodes = unsupported(&m);
    assert_eq!(nodes.nodes.len(), 1, "{nodes}");
    assert_eq!(nodes.nodes[0].node_name, "swap");
    assert!(
        nodes.nodes[0].reason.contains("reshape target [b, a]"),
        "{nodes}"
    );
}

#[test]
fn shape_and_size_of_static_values_are_constants() {
    let m = model(
        15,
        vec![
            with(
                node("Shape", "shape", &["x"], &["s"]),
                vec![a_int("start", 1)],
            ),
            node("Size", "size", &["x"], &["n"]),
        ],
        vec![f32_info("x", &[2, 3, 4])],
        vec![untyped("s"), untyped("n")],
        vec![],
    );
    let graph = import(&m);
    assert!(ops(&graph).is_empty(), "{graph}");
    let outputs = run(&graph, &[("x", Tensor::zeros(DType::F32, vec![2, 3, 4]))]);
    assert_eq!(outputs[0].as_slice::<i64>(), Some(&[3i64, 4][..]));
    assert_eq!(outputs[1].as_slice::<i64>(), Some(&[24i64][..]));
    // With a symbolic dim they are computed at run time.
    let m = model(
        13,
        vec![node("Size", "size", &["x"], &["n"])],
        vec![info("x", DataType::Float, &[D::P("n"), D::V(3)])],
        vec![untyped("n")],
        vec![],
    );
    let graph = import(&m);
    assert_eq!(op_names(&graph), ["shape", "reduce_prod"]);
    let outputs = run(&graph, &[("x", Tensor::zeros(DType::F32, vec![5, 3]))]);
    assert_eq!(outputs[0].as_slice::<i64>(), Some(&[15i64][..]));
}

#[test]
fn folding_stops_at_the_size_limit() {
    let constant_of_shape = |dims: &[i64]| {
        model(
            13,
            vec![node("ConstantOfShape", "fill", &["shape"], &["y"])],
            vec![],
            vec![untyped("y")],
            vec![i64_init("shape", &[dims.len() as i64], dims)],
        )
    };
    assert!(ops(&import(&constant_of_shape(&[4, 4]))).is_empty());
    let big = import(&constant_of_shape(&[2048, 1024]));
    assert_eq!(op_names(&big), ["constant_of_shape"]);
}

// ---- error collection ----

#[test]
fn three_unsupported_nodes_are_reported_in_one_error() {
    let mut m = model(
        19,
        vec![
            node("FancyOp", "mystery", &["x"], &["a"]),
            // Reads the unsupported node's output: a consequence, not reported itself.
            node("Relu", "follows_mystery", &["a"], &["a2"]),
            with(
                node("Resize", "bicubic", &["x", "", "scales"], &["b"]),
                vec![a_str("mode", "cubic")],
            ),
            NodeProto {
                domain: "com.microsoft".to_string(),
                ..node("FusedGemm", "contrib", &["x", "x"], &["c"])
            },
            node("Sigmoid", "fine", &["x"], &["d"]),
        ],
        vec![f32_info("x", &[1, 1, 2, 2])],
        vec![untyped("a2"), untyped("b"), untyped("c"), untyped("d")],
        vec![f32_init("scales", &[4], &[1.0, 1.0, 2.0, 2.0])],
    );
    m.opset_import.push(OperatorSetIdProto {
        domain: "com.microsoft".to_string(),
        version: 1,
    });
    let nodes = unsupported(&m);
    let listed: Vec<(&str, &str)> = nodes
        .nodes
        .iter()
        .map(|n| (n.node_name.as_str(), n.op_type.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("mystery", "FancyOp"),
            ("bicubic", "Resize"),
            ("contrib", "FusedGemm")
        ]
    );
    let text = nodes.to_string();
    for needle in [
        "3 unsupported nodes",
        "mystery",
        "FancyOp",
        "bicubic",
        "Resize",
        "cubic",
        "contrib",
        "FusedGemm",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
    assert!(!text.contains("follows_mystery"), "{text}");
    // The non-default domain is named with the version the model imports.
    let contrib = &nodes.nodes[2];
    assert_eq!(
        (contrib.domain.as_str(), contrib.opset),
        ("com.microsoft", 1)
    );
    assert!(
        contrib.reason.contains("com.microsoft"),
        "{}",
        contrib.reason
    );
    assert!(
        text.contains("FusedGemm of com.microsoft opset 1"),
        "{text}"
    );
}

#[test]
fn graph_inputs_that_feed_attributes_can_be_fixed_at_import() {
    let m = model(
        13,
        vec![node("Slice", "slice", &["x", "starts", "ends"], &["y"])],
        vec![
            f32_info("x", &[4]),
            info("starts", DataType::Int64, &[D::V(1)]),
            info("ends", DataType::Int64, &[D::V(1)]),
        ],
        vec![untyped("y")],
        vec![],
    );
    let nodes = unsupported(&m);
    assert!(nodes.only_needs_input_values(), "{nodes}");
    assert_eq!(nodes.needs_input_values(), ["starts", "ends"]);
    let mut options = ImportOptions::default();
    for (name, value) in [("starts", 1i64), ("ends", 3)] {
        let tensor = Tensor::from_vec(vec![1], vec![value]).expect("tensor");
        options.input_values.insert(name.to_string(), tensor);
    }
    let graph = try_import_with(&m, &options).expect("imports with the values fixed");
    let names: Vec<&str> = graph.input_signature().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["x"]);
    let y = &run(&graph, &[("x", t32(&[4], &[1.0, 2.0, 3.0, 4.0]))])[0];
    assert_eq!(f32s(y), [2.0, 3.0]);
    // A value that does not fit the input's type is an error naming the input.
    options
        .input_values
        .insert("ends".to_string(), t32(&[1], &[3.0]));
    match try_import_with(&m, &options) {
        Err(ImportError::Input { name, .. }) => assert_eq!(name, "ends"),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn malformed_nodes_are_errors_naming_the_node() {
    // An INTS attribute given as a FLOAT.
    let m = model(
        11,
        vec![with(
            node("Squeeze", "sq", &["x"], &["y"]),
            vec![a_float("axes", 0.0)],
        )],
        vec![f32_info("x", &[1, 3])],
        vec![untyped("y")],
        vec![],
    );
    match try_import(&m) {
        Err(ImportError::Node {
            node,
            op_type,
            message,
            ..
        }) => {
            assert_eq!((node.as_str(), op_type.as_str()), ("sq", "Squeeze"));
            assert!(
                message.contains("`axes`") && message.contains("INTS"),
                "{message}"
            );
        }
        other => panic!("expected a node error, got {other:?}"),
    }
    // A missing required input.
    let m = model(
        13,
        vec![node("Add", "add", &["x"], &["y"])],
        vec![f32_info("x", &[2])],
        vec![untyped("y")],
        vec![],
    );
    assert!(matches!(try_import(&m), Err(ImportError::Node { node, .. }) if node == "add"));
    // Shapes that do not fit: the IR's inference message is kept.
    let m = model(
        13,
        vec![node("MatMul", "mm", &["x", "x"], &["y"])],
        vec![f32_info("x", &[2, 3])],
        vec![untyped("y")],
        vec![],
    );
    match try_import(&m) {
        Err(ImportError::Node { message, .. }) => assert!(message.contains("matmul"), "{message}"),
        other => panic!("expected a node error, got {other:?}"),
    }
}

#[test]
fn graph_structure_errors_name_the_values() {
    let unsorted = model(
        13,
        vec![
            node("Relu", "second", &["a"], &["y"]),
            node("Neg", "first", &["x"], &["a"]),
        ],
        vec![f32_info("x", &[2])],
        vec![untyped("y")],
        vec![],
    );
    match try_import(&unsorted) {
        Err(ImportError::Graph(message)) => {
            assert!(
                message.contains("not topologically sorted") && message.contains("first"),
                "{message}"
            )
        }
        other => panic!("expected a graph error, got {other:?}"),
    }
    let undefined = model(
        13,
        vec![node("Relu", "relu", &["nowhere"], &["y"])],
        vec![],
        vec![untyped("y")],
        vec![],
    );
    assert!(
        matches!(try_import(&undefined), Err(ImportError::Graph(m)) if m.contains("`nowhere`"))
    );
    let missing_output = model(
        13,
        vec![],
        vec![f32_info("x", &[2])],
        vec![untyped("z")],
        vec![],
    );
    assert!(
        matches!(try_import(&missing_output), Err(ImportError::Output { name, .. }) if name == "z")
    );
}

#[test]
fn declared_output_types_are_checked() {
    let relu = |output: ValueInfoProto| {
        model(
            13,
            vec![node("Relu", "relu", &["x"], &["y"])],
            vec![f32_info("x", &[2, 3])],
            vec![output],
            vec![],
        )
    };
    match try_import(&relu(info("y", DataType::Int64, &[D::V(2), D::V(3)]))) {
        Err(ImportError::Output { name, message }) => {
            assert_eq!(name, "y");
            assert!(
                message.contains("i64") && message.contains("f32[2,3]"),
                "{message}"
            );
        }
        other => panic!("expected an output error, got {other:?}"),
    }
    assert!(matches!(
        try_import(&relu(info("y", DataType::Float, &[D::V(2), D::V(4)]))),
        Err(ImportError::Output { .. })
    ));
    assert!(matches!(
        try_import(&relu(info("y", DataType::Float, &[D::V(2)]))),
        Err(ImportError::Output { .. })
    ));
    // Unknown and symbolic declared dims are fine.
    import(&relu(info("y", DataType::Float, &[D::P("rows"), D::U])));
}

// ---- inputs, initializers, constants ----

#[test]
fn dim_params_become_symbolic_dims_and_unknown_dims_fresh_symbols() {
    let m = model(
        13,
        vec![
            node("Relu", "relu", &["x"], &["y"]),
            node("Neg", "neg", &["z"], &["w"]),
        ],
        vec![
            info("x", DataType::Float, &[D::P("N"), D::V(3), D::U]),
            info("z", DataType::Float, &[D::P("N"), D::P("seq len")]),
        ],
        vec![untyped("y"), untyped("w")],
        vec![],
    );
    let graph = import(&m);
    let signature: Vec<(String, String)> = graph
        .input_signature()
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    assert_eq!(
        signature,
        [
            ("x".to_string(), "f32[N,3,x_d2]".to_string()),
            ("z".to_string(), "f32[N,seq_len]".to_string())
        ]
    );
    let mut options = ImportOptions::default();
    options.dim_overrides.insert("N".to_string(), 2);
    let graph = try_import_with(&m, &options).expect("imports");
    assert_eq!(graph.input_signature()[0].1.to_string(), "f32[2,3,x_d2]");
    // The text format can print (and parse back) the symbols.
    let text = graph.to_string();
    sinter_ir::parse_graph(&text, &sinter_ir::ParseOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
}

#[test]
fn initializers_listed_as_inputs_are_constants() {
    let m = model(
        9,
        vec![node("Add", "add", &["x", "w"], &["y"])],
        vec![f32_info("x", &[2]), f32_info("w", &[2])],
        vec![untyped("y")],
        vec![f32_init("w", &[2], &[10.0, 20.0])],
    );
    let graph = import(&m);
    let names: Vec<&str> = graph.input_signature().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["x"]);
    let consts: Vec<String> = graph
        .node_ids()
        .filter_map(|id| match &graph.node(id).kind {
            NodeKind::Const { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(consts, ["w"]);
    assert_eq!(
        f32s(&run(&graph, &[("x", t32(&[2], &[1.0, 2.0]))])[0]),
        [11.0, 22.0]
    );
}

#[test]
fn constant_nodes_take_every_numeric_value_form() {
    let m = model(
        13,
        vec![
            with(
                node("Constant", "c1", &[], &["a"]),
                vec![a_float("value_float", 1.5)],
            ),
            with(
                node("Constant", "c2", &[], &["b"]),
                vec![a_floats("value_floats", &[1.0, 2.0])],
            ),
            with(
                node("Constant", "c3", &[], &["c"]),
                vec![a_tensor("value", f32_init("", &[2], &[0.25, 0.5]))],
            ),
            with(
                node("Constant", "c4", &[], &["d"]),
                vec![a_ints("value_ints", &[2])],
            ),
            node("Add", "ab", &["a", "b"], &["ab"]),
            node("Mul", "abc", &["ab", "c"], &["abc"]),
            node("Add", "x_abc", &["x", "abc"], &["y"]),
            node("Reshape", "r", &["y", "d"], &["z"]),
        ],
        vec![f32_info("x", &[2])],
        vec![untyped("z")],
        vec![],
    );
    let graph = import(&m);
    // (1.5 + [1, 2]) * [0.25, 0.5] folds to [0.625, 1.75]; only the add with x remains.
    assert_eq!(op_names(&graph), ["add", "reshape"]);
    assert_eq!(
        f32s(&run(&graph, &[("x", t32(&[2], &[1.0, 1.0]))])[0]),
        [1.625, 2.75]
    );
    let strings = model(
        13,
        vec![with(
            node("Constant", "text", &[], &["s"]),
            vec![a_str("value_string", "hi")],
        )],
        vec![],
        vec![untyped("s")],
        vec![],
    );
    assert!(unsupported(&strings).nodes[0].reason.contains("string"));
}

// ---- numeric checks of mapped ops ----

#[test]
fn gemm_relu_and_reduction_compute_hand_checked_values() {
    let m = model(
        13,
        vec![
            with(
                node("Gemm", "fc", &["x", "w", "b"], &["h"]),
                vec![a_int("transB", 1)],
            ),
            node("Relu", "act", &["h"], &["r"]),
            with(
                node("ReduceSum", "sum", &["r", "axes"], &["y"]),
                vec![a_int("keepdims", 0)],
            ),
        ],
        vec![f32_info("x", &[2, 3])],
        vec![f32_info("y", &[2])],
        vec![
            f32_init("w", &[2, 3], &[1.0, 0.0, -1.0, 0.5, 0.5, 0.5]),
            f32_init("b", &[2], &[0.0, -1.0]),
            i64_init("axes", &[1], &[1]),
        ],
    );
    let graph = import(&m);
    assert_eq!(op_names(&graph), ["gemm", "relu", "reduce_sum"]);
    let x = t32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 0.0, -2.0]);
    // Row 0: [1 - 3, 0.5 * 6 - 1] = [-2, 2] -> relu [0, 2] -> 2.
    // Row 1: [4 + 2, 0.5 * 2 - 1] = [6, 0] -> 6.
    assert_eq!(f32s(&run(&graph, &[("x", x)])[0]), [2.0, 6.0]);
}

#[test]
fn legacy_broadcasting_aligns_the_second_operand_at_axis() {
    // Opset 6 `Add` with `broadcast = 1, axis = 1`: b: [3] adds along axis 1 of a: [2, 3, 2].
    let m = model(
        6,
        vec![with(
            node("Add", "add", &["a", "b"], &["y"]),
            vec![a_int("broadcast", 1), a_int("axis", 1)],
        )],
        vec![f32_info("a", &[2, 3, 2]), f32_info("b", &[3])],
        vec![untyped("y")],
        vec![],
    );
    let graph = import(&m);
    let y = &run(
        &graph,
        &[
            ("a", Tensor::zeros(DType::F32, vec![2, 3, 2])),
            ("b", t32(&[3], &[1.0, 2.0, 3.0])),
        ],
    )[0];
    assert_eq!(
        f32s(y),
        [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    );
}

#[test]
fn variadic_max_chains_binary_ops() {
    let m = model(
        13,
        vec![
            node("Max", "max", &["a", "b", "c"], &["y"]),
            node("Min", "one", &["a"], &["z"]),
        ],
        vec![
            f32_info("a", &[2]),
            f32_info("b", &[2]),
            f32_info("c", &[1]),
        ],
        vec![untyped("y"), untyped("z")],
        vec![],
    );
    let graph = import(&m);
    assert_eq!(op_names(&graph), ["max", "max"]);
    let outputs = run(
        &graph,
        &[
            ("a", t32(&[2], &[1.0, 5.0])),
            ("b", t32(&[2], &[3.0, 2.0])),
            ("c", t32(&[1], &[4.0])),
        ],
    );
    assert_eq!(
        (f32s(&outputs[0]), f32s(&outputs[1])),
        (vec![4.0, 5.0], vec![1.0, 5.0])
    );
}

#[test]
fn dropout_is_the_identity_and_its_mask_a_constant() {
    let m = model(
        12,
        vec![node("Dropout", "drop", &["x", "ratio"], &["y", "mask"])],
        vec![f32_info("x", &[2, 2])],
        vec![untyped("y"), untyped("mask")],
        vec![f32_init("ratio", &[], &[0.3])],
    );
    let graph = import(&m);
    assert!(ops(&graph).is_empty(), "{graph}");
    let outputs = run(&graph, &[("x", t32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]))]);
    assert_eq!(f32s(&outputs[0]), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(outputs[1].as_slice::<bool>(), Some(&[true; 4][..]));
}

#[test]
fn group_normalization_18_repeats_per_group_parameters_per_channel() {
    let data: Vec<f32> = vec![1.0, 2.0, 3.0, 5.0, -1.0, 0.0, 4.0, 4.5];
    let x = t32(&[1, 4, 2], &data);
    let with_params = |opset, scale: &[f32], bias: &[f32]| {
        let n = scale.len() as i64;
        model(
            opset,
            vec![with(
                node("GroupNormalization", "gn", &["x", "s", "b"], &["y"]),
                vec![a_int("num_groups", 2)],
            )],
            vec![f32_info("x", &[1, 4, 2])],
            vec![untyped("y")],
            vec![f32_init("s", &[n], scale), f32_init("b", &[n], bias)],
        )
    };
    let per_group = import(&with_params(18, &[2.0, 0.5], &[1.0, -1.0]));
    match ops(&per_group).as_slice() {
        [Op::GroupNorm { num_groups: 2, .. }] => {}
        other => panic!("expected one group_norm, got {other:?}"),
    }
    let per_channel = import(&with_params(
        21,
        &[2.0, 2.0, 0.5, 0.5],
        &[1.0, 1.0, -1.0, -1.0],
    ));
    let a = run(&per_group, &[("x", x.clone())]);
    let b = run(&per_channel, &[("x", x)]);
    assert_close(&f32s(&a[0]), &f32s(&b[0]));
}

#[test]
fn layer_normalization_statistics_are_computed_when_used() {
    let data: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, -2.0, 1.0];
    let m = model(
        17,
        vec![with(
            node(
                "LayerNormalization",
                "ln",
                &["x", "s"],
                &["y", "mean", "inv_std"],
            ),
            vec![a_float("epsilon", 0.0)],
        )],
        vec![f32_info("x", &[2, 3])],
        vec![untyped("y"), untyped("mean"), untyped("inv_std")],
        vec![f32_init("s", &[3], &[1.0, 1.0, 1.0])],
    );
    let graph = import(&m);
    let outputs = run(&graph, &[("x", t32(&[2, 3], &data))]);
    // Row 0: mean 2, variance 2/3; row 1: mean 1, variance (9 + 9 + 0) / 3 = 6.
    assert_close(&f32s(&outputs[1]), &[2.0, 1.0]);
    assert_eq!(outputs[1].shape(), [2, 1]);
    let inv = |var: f64| (1.0 / var.sqrt()) as f32;
    assert_close(&f32s(&outputs[2]), &[inv(2.0 / 3.0), inv(6.0)]);
    assert_close(
        &f32s(&outputs[0])[..3],
        &[-inv(2.0 / 3.0), 0.0, inv(2.0 / 3.0)],
    );
}

#[test]
fn recurrent_activation_parameters_become_positional() {
    let lstm = |direction: &str, n_dirs: i64| {
        model(
            14,
            vec![with(
                node("LSTM", "lstm", &["x", "w", "r"], &["y", "y_h"]),
                vec![
                    a_int("hidden_size", 1),
                    a_str("direction", direction),
                    a_strs("activations", &["LeakyRelu", "Tanh", "ScaledTanh"]),
                    a_floats("activation_alpha", &[0.5, 2.0]),
                    a_floats("activation_beta", &[3.0]),
                ],
            )],
            vec![f32_info("x", &[2, 1, 1])],
            vec![untyped("y"), untyped("y_h")],
            vec![
                f32_init("w", &[n_dirs, 4, 1], &vec![0.5; 4 * n_dirs as usize]),
                f32_init("r", &[n_dirs, 4, 1], &vec![0.25; 4 * n_dirs as usize]),
            ],
        )
    };
    let graph = import(&lstm("forward", 1));
    match &ops(&graph)[0] {
        Op::Lstm {
            activations,
            activation_alpha,
            activation_beta,
            ..
        } => {
            assert_eq!(
                activations,
                &[
                    RnnActivation::LeakyRelu,
                    RnnActivation::Tanh,
                    RnnActivation::ScaledTanh
                ]
            );
            // LeakyRelu takes the first alpha, ScaledTanh the second alpha and the only beta.
            assert_eq!(activation_alpha, &[0.5, 0.0, 2.0]);
            assert_eq!(activation_beta, &[0.0, 0.0, 3.0]);
        }
        other => panic!("expected lstm, got {other:?}"),
    }
    run(&graph, &[("x", t32(&[2, 1, 1], &[1.0, -1.0]))]);
    // One direction's list is repeated for a bidirectional layer.
    match &ops(&import(&lstm("bidirectional", 2)))[0] {
        Op::Lstm {
            activations,
            activation_alpha,
            ..
        } => {
            assert_eq!(activations.len(), 6);
            assert_eq!(activation_alpha, &[0.5, 0.0, 2.0, 0.5, 0.0, 2.0]);
        }
        other => panic!("expected lstm, got {other:?}"),
    }
}

// ---- hostile input ----

/// A model touching many mappings at opset 23: conv, batch norm, pooling, pad and resize with input
/// parameters, a shape chain, an LSTM and attention.
fn zoo_model() -> ModelProto {
    let mut rng = SplitMix64::new(3);
    let mut init = |name: &str, dims: &[i64]| {
        let n = dims.iter().product::<i64>() as usize;
        f32_init(name, dims, &random_values(&mut rng, n))
    };
    let initializers = vec![
        init("w", &[2, 2, 3, 3]),
        init("scale", &[2]),
        init("bias", &[2]),
        init("mean", &[2]),
        f32_init("var", &[2], &[1.0, 2.0]),
        i64_init("pads", &[8], &[0, 0, 1, 1, 0, 0, 1, 1]),
        f32_init("scales", &[4], &[1.0, 1.0, 0.5, 0.5]),
        i64_init("zero", &[1], &[0]),
        i64_init("two", &[1], &[2]),
        i64_init("four", &[1], &[4]),
        init("lstm_w", &[1, 12, 4]),
        init("lstm_r", &[1, 12, 3]),
    ];
    let nodes = vec![
        with(
            node("Conv", "conv", &["x", "w"], &["c"]),
            vec![a_ints("pads", &[1, 1, 1, 1])],
        ),
        node(
            "BatchNormalization",
            "bn",
            &["c", "scale", "bias", "mean", "var"],
            &["bn"],
        ),
        node("Relu", "relu", &["bn"], &["r"]),
        with(
            node("MaxPool", "pool", &["r"], &["p"]),
            vec![a_ints("kernel_shape", &[2, 2]), a_ints("strides", &[2, 2])],
        ),
        node("Pad", "pad", &["p", "pads"], &["padded"]),
        node("Resize", "resize", &["padded", "", "scales"], &["small"]),
        node("Shape", "shape", &["small"], &["shape"]),
        node("Slice", "lead", &["shape", "zero", "two"], &["lead"]),
        with(
            node("Concat", "target", &["lead", "four"], &["target"]),
            vec![a_int("axis", 0)],
        ),
        node("Reshape", "seq", &["small", "target"], &["seq_in"]),
        with(
            node(
                "LSTM",
                "lstm",
                &["seq_in", "lstm_w", "lstm_r"],
                &["y", "y_h"],
            ),
            vec![a_int("hidden_size", 3), a_int("layout", 1)],
        ),
        with(
            node("Attention", "attn", &["y_h", "y_h", "y_h"], &["z"]),
            vec![
                a_int("q_num_heads", 1),
                a_int("kv_num_heads", 1),
                a_int("is_causal", 1),
            ],
        ),
    ];
    model(
        23,
        nodes,
        vec![f32_info("x", &[1, 2, 4, 4])],
        vec![untyped("y"), untyped("z")],
        initializers,
    )
}

#[test]
fn a_model_mixing_many_mappings_imports_and_runs() {
    let graph = import(&zoo_model());
    let names = op_names(&graph);
    for expected in [
        "conv",
        "batch_norm",
        "max_pool",
        "pad",
        "resize",
        "lstm",
        "attention",
    ] {
        assert!(
            names.contains(&expected),
            "`{expected}` missing from {names:?}"
        );
    }
    let mut rng = SplitMix64::new(5);
    let x = t32(&[1, 2, 4, 4], &random_values(&mut rng, 32));
    let outputs = run(&graph, &[("x", x)]);
    // LSTM in batch-major layout over [batch 1, seq 2, features 4], then attention over `y_h`.
    assert_eq!(outputs[0].shape(), [1, 2, 1, 3]);
    assert_eq!(outputs[1].shape(), [1, 1, 3]);
}

#[test]
fn mutated_models_never_panic() {
    let mut chain = flatten_chain_model();
    if let Some(graph) = chain.graph.as_mut() {
        graph.node.push(with(
            node("Resize", "r", &["y", "", "", "sizes"], &["z"]),
            vec![a_str("mode", "linear"), a_ints("axes", &[1])],
        ));
        graph.initializer.push(i64_init("sizes", &[1], &[24]));
        graph.output.push(untyped("z"));
    }
    let mut rng = SplitMix64::new(7);
    let mut n_decoded = 0;
    for base in [chain, zoo_model()] {
        let bytes = base.encode_to_vec();
        for _ in 0..2000 {
            let mut mutated = bytes.clone();
            for _ in 0..1 + rng.next_u64() % 4 {
                let idx = (rng.next_u64() % mutated.len() as u64) as usize;
                mutated[idx] = rng.next_u64() as u8;
            }
            if let Ok(decoded) = decode_model(Bytes::from(mutated)) {
                n_decoded += 1;
                // Either outcome is fine; a panic fails the test. A graph that imports verifies.
                let options = ImportOptions::default();
                if let Ok(graph) =
                    import_model_proto(&decoded, &ExternalData::unavailable(), &options)
                {
                    if let Err(problems) = sinter_ir::verify(&graph) {
                        panic!("an imported graph does not verify: {problems:?}\n{graph}");
                    }
                }
            }
        }
    }
    assert!(n_decoded > 200, "only {n_decoded} mutations decoded");
}

#[test]
fn unknown_ops_behind_unsupported_nodes_are_still_reported() {
    let m = model(
        13,
        vec![
            node("FancyOp", "first", &["x"], &["a"]),
            // A supported op reading an unknown value is skipped; an unknown op type is reported.
            node("Relu", "relu", &["a"], &["b"]),
            node("OtherOp", "second", &["b"], &["y"]),
        ],
        vec![f32_info("x", &[2])],
        vec![untyped("y")],
        vec![],
    );
    let names: Vec<String> = unsupported(&m)
        .nodes
        .into_iter()
        .map(|n| n.node_name)
        .collect();
    assert_eq!(names, ["first", "second"]);
}

/// Random f32 values in [-1, 1).
fn random_values(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

#[test]
fn an_exported_attention_block_with_symbolic_batch_and_sequence_imports() {
    // The subgraph exporters write for multi-head attention over x: [batch, seq, 8] with 2 heads of
    // 4: heads are split with Reshape(Concat(Slice(Shape(q), 0, 2), [2, 4])) and merged back with
    // Reshape(Concat(Gather(Shape(x), 0), Gather(Shape(x), 1), [8])).
    let mut rng = SplitMix64::new(11);
    let weights: Vec<Vec<f32>> = (0..3).map(|_| random_values(&mut rng, 64)).collect();
    let mut nodes = Vec::new();
    for (name, w) in [("q", "wq"), ("k", "wk"), ("v", "wv")] {
        nodes.push(node("MatMul", &format!("proj_{name}"), &["x", w], &[name]));
    }
    nodes.extend([
        node("Shape", "shape", &["q"], &["shape"]),
        node("Slice", "lead", &["shape", "zero", "two"], &["lead"]),
        with(
            node(
                "Concat",
                "split_target",
                &["lead", "heads"],
                &["split_target"],
            ),
            vec![a_int("axis", 0)],
        ),
    ]);
    for name in ["q", "k", "v"] {
        let split = format!("{name}_split");
        nodes.push(node(
            "Reshape",
            &format!("split_{name}"),
            &[name, "split_target"],
            &[&split],
        ));
        nodes.push(with(
            node(
                "Transpose",
                &format!("heads_{name}"),
                &[&split],
                &[&format!("{name}4")],
            ),
            vec![a_ints("perm", &[0, 2, 1, 3])],
        ));
    }
    nodes.extend([
        with(
            node("Transpose", "kt", &["k4"], &["kt"]),
            vec![a_ints("perm", &[0, 1, 3, 2])],
        ),
        node("MatMul", "scores", &["q4", "kt"], &["scores"]),
        node("Div", "scale", &["scores", "sqrt_d"], &["scaled"]),
        with(
            node("Softmax", "softmax", &["scaled"], &["probs"]),
            vec![a_int("axis", -1)],
        ),
        node("MatMul", "context", &["probs", "v4"], &["ctx4"]),
        with(
            node("Transpose", "unheads", &["ctx4"], &["ctx_t"]),
            vec![a_ints("perm", &[0, 2, 1, 3])],
        ),
        node("Shape", "x_shape", &["x"], &["x_shape"]),
        node("Gather", "batch", &["x_shape", "zero_scalar"], &["batch"]),
        node("Gather", "seq", &["x_shape", "one_scalar"], &["seq"]),
        node("Unsqueeze", "batch1", &["batch", "zero"], &["batch1"]),
        node("Unsqueeze", "seq1", &["seq", "zero"], &["seq1"]),
        with(
            node(
                "Concat",
                "merge_target",
                &["batch1", "seq1", "hidden"],
                &["merge_target"],
            ),
            vec![a_int("axis", 0)],
        ),
        node("Reshape", "merge", &["ctx_t", "merge_target"], &["y"]),
    ]);
    let initializers = vec![
        f32_init("wq", &[8, 8], &weights[0]),
        f32_init("wk", &[8, 8], &weights[1]),
        f32_init("wv", &[8, 8], &weights[2]),
        i64_init("zero", &[1], &[0]),
        i64_init("two", &[1], &[2]),
        i64_init("heads", &[2], &[2, 4]),
        i64_init("zero_scalar", &[], &[0]),
        i64_init("one_scalar", &[], &[1]),
        i64_init("hidden", &[1], &[8]),
        f32_init("sqrt_d", &[], &[2.0]),
    ];
    let exported = model(
        13,
        nodes,
        vec![info(
            "x",
            DataType::Float,
            &[D::P("batch"), D::P("seq"), D::V(8)],
        )],
        vec![info(
            "y",
            DataType::Float,
            &[D::P("batch"), D::P("seq"), D::V(8)],
        )],
        initializers.clone(),
    );
    let graph = import(&exported);
    let names = op_names(&graph);
    for absent in ["shape", "gather", "concat", "slice", "unsqueeze"] {
        assert!(!names.contains(&absent), "`{absent}` left in {names:?}");
    }
    assert_eq!(
        output_type(&graph, 0),
        TensorType::new(
            DType::F32,
            vec![Dim::sym("batch"), Dim::sym("seq"), Dim::Static(8)]
        )
    );
    // The same computation with ONNX's Attention op (opset 23), mapped onto the IR's fused op.
    let fused = model(
        23,
        vec![
            node("MatMul", "proj_q", &["x", "wq"], &["q"]),
            node("MatMul", "proj_k", &["x", "wk"], &["k"]),
            node("MatMul", "proj_v", &["x", "wv"], &["v"]),
            with(
                node("Attention", "attention", &["q", "k", "v"], &["y"]),
                vec![a_int("q_num_heads", 2), a_int("kv_num_heads", 2)],
            ),
        ],
        vec![info(
            "x",
            DataType::Float,
            &[D::P("batch"), D::P("seq"), D::V(8)],
        )],
        vec![untyped("y")],
        initializers,
    );
    let fused = import(&fused);
    assert!(op_names(&fused).contains(&"attention"), "{fused}");
    let x = t32(&[2, 3, 8], &random_values(&mut rng, 48));
    let a = run(&graph, &[("x", x.clone())]);
    let b = run(&fused, &[("x", x)]);
    assert_eq!(a[0].shape(), [2, 3, 8]);
    assert_close(&f32s(&a[0]), &f32s(&b[0]));
}

#[test]
fn parameters_computed_from_symbolic_dims_name_the_dims_to_fix() {
    // Position ids: Range(0, Shape(x)[1], 1) over x: [batch, seq].
    let m = model(
        13,
        vec![
            node("Shape", "shape", &["x"], &["s"]),
            node("Gather", "seq", &["s", "one"], &["n"]),
            node("Range", "positions", &["zero", "n", "one"], &["y"]),
        ],
        vec![info("x", DataType::Int64, &[D::P("batch"), D::P("seq")])],
        vec![untyped("y")],
        vec![i64_init("zero", &[], &[0]), i64_init("one", &[], &[1])],
    );
    let nodes = unsupported(&m);
    assert!(!nodes.only_needs_input_values(), "{nodes}");
    let reason = &nodes.nodes[0].reason;
    assert!(
        reason.contains("`limit`") && reason.contains("symbolic dim `seq`"),
        "{reason}"
    );
    assert!(
        reason.contains("dim_overrides") && !reason.contains("`x`"),
        "{reason}"
    );
    let mut options = ImportOptions::default();
    options.dim_overrides.insert("seq".to_string(), 3);
    let graph = try_import_with(&m, &options).expect("imports with seq fixed");
    let y = &run(&graph, &[("x", Tensor::zeros(DType::I64, vec![2, 3]))])[0];
    assert_eq!(y.as_slice::<i64>(), Some(&[0i64, 1, 2][..]));
}

#[test]
fn constant_of_a_symbolic_shape_takes_the_dims_of_a_value_that_has_them() {
    // The attention mask of exported transformers: ConstantOfShape(Shape(input_ids)) filled with 1.
    let one = TensorProto {
        dims: vec![1],
        data_type: DataType::Int64 as i32,
        int64_data: vec![1],
        ..Default::default()
    };
    let m = model(
        13,
        vec![
            node("Shape", "shape", &["ids"], &["s"]),
            with(
                node("ConstantOfShape", "ones", &["s"], &["mask"]),
                vec![a_tensor("value", one)],
            ),
        ],
        vec![info("ids", DataType::Int64, &[D::P("batch"), D::P("seq")])],
        vec![info("mask", DataType::Int64, &[D::P("batch"), D::P("seq")])],
        vec![],
    );
    let graph = import(&m);
    assert_eq!(op_names(&graph), ["equal", "where"]);
    let ids = Tensor::from_vec(vec![2, 3], vec![5i64, 0, 7, 1, 1, 2]).expect("tensor");
    let mask = &run(&graph, &[("ids", ids)])[0];
    assert_eq!(
        (mask.shape(), mask.as_slice::<i64>()),
        (&[2usize, 3][..], Some(&[1i64; 6][..]))
    );
}

/// `[2, batch, 3]` as exporters compute the initial state of an LSTM over a symbolic batch:
/// `Concat([2], Unsqueeze(Gather(Shape(x), 0)), [3])`.
fn state_shape_nodes() -> Vec<NodeProto> {
    vec![
        node("Shape", "shape", &["x"], &["s"]),
        node("Gather", "batch", &["s", "zero"], &["b"]),
        node("Unsqueeze", "batch_1d", &["b", "zero_1d"], &["b1"]),
        with(
            node(
                "Concat",
                "state_shape",
                &["two", "b1", "three"],
                &["target"],
            ),
            vec![a_int("axis", 0)],
        ),
    ]
}

fn state_shape_inits() -> Vec<TensorProto> {
    let mut zero = i64_init("zero", &[], &[0]);
    zero.dims.clear();
    vec![
        zero,
        i64_init("zero_1d", &[1], &[0]),
        i64_init("two", &[1], &[2]),
        i64_init("three", &[1], &[3]),
    ]
}

#[test]
fn constant_of_a_symbolic_shape_no_value_has_is_broadcast_from_a_value_with_the_symbol() {
    // No value has the dims [2, batch, 3] (x is [batch, 5]), which failed to import before: the
    // fill is broadcast to `batch` from a column of x.
    let mut nodes = state_shape_nodes();
    nodes.push(with(
        node("ConstantOfShape", "zeros", &["target"], &["h0"]),
        vec![a_tensor("value", f32_init("", &[1], &[1.5]))],
    ));
    let m = model(
        17,
        nodes,
        vec![info("x", DataType::Float, &[D::P("batch"), D::V(5)])],
        vec![untyped("h0")],
        state_shape_inits(),
    );
    let graph = import(&m);
    assert_eq!(
        output_type(&graph, 0),
        TensorType::new(
            DType::F32,
            vec![Dim::Static(2), Dim::sym("batch"), Dim::Static(3)]
        )
    );
    // A NaN in x must not leak into the fill.
    let mut values = vec![0.0f32; 20];
    values[7] = f32::NAN;
    let h0 = &run(&graph, &[("x", t32(&[4, 5], &values))])[0];
    assert_eq!(h0.shape(), &[2, 4, 3]);
    assert_eq!(f32s(h0), vec![1.5; 24]);
}

#[test]
fn expand_to_a_symbol_the_input_lacks_broadcasts_it_in() {
    // Expand(0, [2, batch, 3]): the dynamo exporter's `zeros` of an LSTM state.
    let mut nodes = state_shape_nodes();
    nodes.push(node("Expand", "zeros", &["fill", "target"], &["h0"]));
    let mut inits = state_shape_inits();
    inits.push(f32_init("fill", &[1], &[-2.0]));
    let m = model(
        17,
        nodes,
        vec![info("x", DataType::Int64, &[D::P("batch"), D::P("seq")])],
        vec![untyped("h0")],
        inits,
    );
    let graph = import(&m);
    assert_eq!(
        output_type(&graph, 0),
        TensorType::new(
            DType::F32,
            vec![Dim::Static(2), Dim::sym("batch"), Dim::Static(3)]
        )
    );
    let x = Tensor::from_vec(vec![3, 2], vec![1i64, 2, 3, 4, 5, 6]).expect("tensor");
    let h0 = &run(&graph, &[("x", x)])[0];
    assert_eq!(h0.shape(), &[2, 3, 3]);
    assert_eq!(f32s(h0), vec![-2.0; 18]);

    // A symbol where the input has a different one cannot be proven to broadcast.
    let m = model(
        13,
        vec![
            node("Shape", "shape", &["y"], &["s"]),
            node("Expand", "expand", &["x", "s"], &["z"]),
        ],
        vec![
            info("x", DataType::Float, &[D::P("a")]),
            info("y", DataType::Float, &[D::P("b")]),
        ],
        vec![untyped("z")],
        vec![],
    );
    let nodes = unsupported(&m);
    assert!(
        nodes.nodes[0]
            .reason
            .contains("is `b` where the input has `a`"),
        "{nodes}"
    );
}

#[test]
fn integer_mod_follows_the_divisor_sign_unless_fmod() {
    let mod_model = |fmod: i64, elem_type: DataType| {
        model(
            13,
            vec![with(
                node("Mod", "mod", &["a", "b"], &["r"]),
                vec![a_int("fmod", fmod)],
            )],
            vec![
                info("a", elem_type, &[D::V(6)]),
                info("b", elem_type, &[D::V(6)]),
            ],
            vec![untyped("r")],
            vec![],
        )
    };
    let a = Tensor::from_vec(vec![6], vec![7i64, -7, 7, -7, 6, i64::MIN]).expect("tensor");
    let b = Tensor::from_vec(vec![6], vec![3i64, 3, -3, -3, 3, -1]).expect("tensor");
    let inputs = [("a", a), ("b", b)];
    // Python's `%`: the remainder has the divisor's sign.
    let python = &run(&import(&mod_model(0, DataType::Int64)), &inputs)[0];
    assert_eq!(python.as_slice::<i64>(), Some(&[1i64, 2, -2, -1, 0, 0][..]));
    // C's `fmod`: the remainder has the dividend's sign.
    let c = &run(&import(&mod_model(1, DataType::Int64)), &inputs)[0];
    assert_eq!(c.as_slice::<i64>(), Some(&[1i64, -1, 1, -1, 0, 0][..]));
    // Constant operands fold: TorchScript's multi-head attention computes `2 % 3` this way.
    let folded = model(
        13,
        vec![node("Mod", "mod", &["a", "b"], &["r"])],
        vec![],
        vec![untyped("r")],
        vec![i64_init("a", &[1], &[2]), i64_init("b", &[1], &[3])],
    );
    let graph = import(&folded);
    assert!(ops(&graph).is_empty(), "{graph}");
    // A float remainder has no exact lowering.
    let nodes = unsupported(&mod_model(1, DataType::Float));
    assert!(nodes.nodes[0].reason.contains("Mod of f32"), "{nodes}");
}

/// A real model whose weights live in an external file at aligned offsets (as large-model exporters
/// write them) imports with every weight a view of that file's mapping: no weight is copied.
///
/// The same model with in-file `raw_data` gets copies: protobuf places each `raw_data` right after
/// its field header, and in the TorchScript export every one happens to sit at an odd address.
#[test]
fn external_aligned_weights_stay_views_through_import() {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/models/resnet18_w8_ts/model.onnx");
    let mut model =
        ModelProto::decode(Bytes::from(std::fs::read(&source).expect("read"))).expect("decode");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut weights = Vec::new();
    let graph_proto = model.graph.as_mut().expect("graph");
    for init in &mut graph_proto.initializer {
        if init.raw_data.is_empty() {
            continue;
        }
        // 64-byte aligned offsets, like onnx's `align_offset` option.
        weights.resize(weights.len().next_multiple_of(64), 0);
        let offset = weights.len();
        weights.extend_from_slice(&init.raw_data);
        init.external_data = [
            ("location", "weights.bin".to_string()),
            ("offset", offset.to_string()),
            ("length", init.raw_data.len().to_string()),
        ]
        .into_iter()
        .map(|(key, value)| sinter_onnx::proto::StringStringEntryProto {
            key: key.to_string(),
            value,
        })
        .collect();
        init.data_location = sinter_onnx::proto::tensor_proto::DataLocation::External as i32;
        init.raw_data = Bytes::new();
    }
    std::fs::write(dir.path().join("weights.bin"), &weights).expect("write weights");
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, model.encode_to_vec()).expect("write model");

    let graph = sinter_onnx::import_file(&path, &ImportOptions::default()).expect("import");
    let mut n_weights = 0;
    for id in graph.node_ids() {
        if let NodeKind::Const { name, value } = &graph.node(id).kind {
            if value.dtype() == DType::F32 && value.len() >= 16 {
                n_weights += 1;
                assert!(value.data().is_shared(), "weight {name} was copied");
            }
        }
    }
    assert!(n_weights > 10, "resnet has many weights, found {n_weights}");
}

#[test]
fn torchscript_expand_resolves_its_target_through_equal_and_where() {
    // The TorchScript exporter's `x.expand(batch, 2, 2, 3)` with a run-time target t:
    // Expand(x, Where(Equal(t', -1s), 1s, t')) with t' = Reshape(t, [-1]) and the ones of
    // ConstantOfShape(Shape(t')), as Hugging Face Llama's `repeat_kv` is exported. t holds the
    // symbol `batch`, which is never -1, so the Where picks t and Expand copies the batch.
    let one = TensorProto {
        dims: vec![1],
        data_type: DataType::Int64 as i32,
        int64_data: vec![1],
        ..Default::default()
    };
    let mut minus_one = i64_init("minus_one", &[], &[-1]);
    minus_one.dims.clear();
    let m = model(
        18,
        vec![
            node("Shape", "shape", &["x"], &["s"]),
            node("Gather", "batch", &["s", "zero_1d"], &["b"]),
            with(
                node("Concat", "target", &["b", "rest"], &["t"]),
                vec![a_int("axis", 0)],
            ),
            node("Reshape", "flat", &["t", "minus_one_1d"], &["t1"]),
            node("Shape", "n", &["t1"], &["n"]),
            with(
                node("ConstantOfShape", "ones", &["n"], &["ones"]),
                vec![a_tensor("value", one)],
            ),
            node("Mul", "minus_ones", &["ones", "minus_one"], &["minus_ones"]),
            node("Equal", "is_minus_one", &["t1", "minus_ones"], &["eq"]),
            node("Where", "pick", &["eq", "ones", "t1"], &["target"]),
            node("Expand", "expand", &["x", "target"], &["y"]),
        ],
        vec![info(
            "x",
            DataType::Float,
            &[D::P("batch"), D::V(2), D::V(1), D::V(3)],
        )],
        vec![untyped("y")],
        vec![
            i64_init("zero_1d", &[1], &[0]),
            i64_init("rest", &[3], &[2, 2, 3]),
            i64_init("minus_one_1d", &[1], &[-1]),
            minus_one,
        ],
    );
    let graph = import(&m);
    assert_eq!(
        ops(&graph),
        vec![Op::Expand {
            shape: vec![1, 2, 2, 3]
        }]
    );
    assert_eq!(
        output_type(&graph, 0),
        TensorType::new(
            DType::F32,
            vec![
                Dim::sym("batch"),
                Dim::Static(2),
                Dim::Static(2),
                Dim::Static(3)
            ]
        )
    );
    let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let y = &run(&graph, &[("x", t32(&[2, 2, 1, 3], &data))])[0];
    let expected: Vec<f32> = (0..4)
        .flat_map(|row| {
            let start = row * 3;
            let slice = data[start..start + 3].to_vec();
            [slice.clone(), slice].concat()
        })
        .collect();
    assert_eq!((y.shape(), f32s(y)), (&[2usize, 2, 2, 3][..], expected));
}

#[test]
fn cos_and_sin_of_constants_fold_and_of_run_time_values_are_unsupported() {
    // Rotary embedding tables: cos and sin of constant angles, added to a run-time value.
    let angles = [0.0f32, 0.5, -1.25, 3.0];
    let m = model(
        18,
        vec![
            node("Cos", "cos", &["angles"], &["c"]),
            node("Sin", "sin", &["angles"], &["s"]),
            node("Add", "add_cos", &["x", "c"], &["y_cos"]),
            node("Add", "add_sin", &["x", "s"], &["y_sin"]),
        ],
        vec![f32_info("x", &[4])],
        vec![untyped("y_cos"), untyped("y_sin")],
        vec![f32_init("angles", &[4], &angles)],
    );
    let graph = import(&m);
    assert_eq!(op_names(&graph), ["add", "add"]);
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let outputs = run(&graph, &[("x", t32(&[4], &x))]);
    let expected =
        |f: fn(f32) -> f32| -> Vec<f32> { x.iter().zip(&angles).map(|(x, a)| x + f(*a)).collect() };
    assert_close(&f32s(&outputs[0]), &expected(f32::cos));
    assert_close(&f32s(&outputs[1]), &expected(f32::sin));
    // On a graph input there is nothing to evaluate: the node is reported.
    let m = model(
        18,
        vec![node("Sin", "sin", &["x"], &["y"])],
        vec![f32_info("x", &[4])],
        vec![untyped("y")],
        vec![],
    );
    let nodes = unsupported(&m).nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].op_type, "Sin");
    assert!(
        nodes[0].reason.contains("Cos and Sin only on constants"),
        "{}",
        nodes[0].reason
    );
}

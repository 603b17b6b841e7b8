//! Decoding ONNX models and converting their tensors.
//!
//! Models are built in Rust with the prost structs and encoded, or read from the files that
//! `tests/data/make_models.py` wrote with the official onnx serializer. Hostile input (truncated,
//! random, bit-flipped, deeply nested, claiming absurd sizes, escaping the model folder) must give an
//! error that says what is wrong, never a panic or a huge allocation.

use bytes::Bytes;
use prost::Message;
use sinter_ir::rng::SplitMix64;
use sinter_ir::{DType, Tensor};
use sinter_onnx::proto::attribute_proto::AttributeType;
use sinter_onnx::proto::tensor_proto::{DataLocation, DataType};
use sinter_onnx::proto::tensor_shape_proto::dimension;
use sinter_onnx::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TypeProto, ValueInfoProto,
};
use sinter_onnx::{
    decode_model, default_opset_version, load_model, tensor_from_proto, DecodeError, ExternalData,
    TensorError,
};
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn opset(domain: &str, version: i64) -> OperatorSetIdProto {
    OperatorSetIdProto {
        domain: domain.to_string(),
        version,
    }
}

fn tensor_value_info(name: &str, elem_type: DataType, dims: &[dimension::Value]) -> ValueInfoProto {
    ValueInfoProto::tensor(name, elem_type, dims.iter().cloned())
}

fn raw_tensor(name: &str, data_type: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        data_type: data_type as i32,
        dims: dims.to_vec(),
        raw_data: Bytes::from(raw),
        ..Default::default()
    }
}

/// A small valid model: `y = Relu(x + w)` with a raw f32 initializer and a few attributes.
fn small_model() -> ModelProto {
    let w = raw_tensor(
        "w",
        DataType::Float,
        &[2],
        [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    );
    let add = NodeProto {
        input: vec!["x".into(), "w".into()],
        output: vec!["s".into()],
        name: "add".into(),
        op_type: "Add".into(),
        ..Default::default()
    };
    let relu = NodeProto {
        input: vec!["s".into()],
        output: vec!["y".into()],
        name: "relu".into(),
        op_type: "LeakyRelu".into(),
        attribute: vec![AttributeProto {
            name: "alpha".into(),
            r#type: AttributeType::Float as i32,
            f: 0.1,
            ..Default::default()
        }],
        ..Default::default()
    };
    let batch = dimension::Value::DimParam("batch".into());
    ModelProto {
        ir_version: 8,
        opset_import: vec![opset("", 13)],
        producer_name: "sinter tests".into(),
        graph: Some(GraphProto {
            name: "small".into(),
            node: vec![add, relu],
            initializer: vec![w],
            input: vec![tensor_value_info(
                "x",
                DataType::Float,
                &[batch.clone(), dimension::Value::DimValue(2)],
            )],
            output: vec![tensor_value_info(
                "y",
                DataType::Float,
                &[batch, dimension::Value::DimValue(2)],
            )],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn encode(model: &ModelProto) -> Bytes {
    Bytes::from(model.encode_to_vec())
}

// ---------------------------------------------------------------------------------------------------
// Decoding and model checks
// ---------------------------------------------------------------------------------------------------

#[test]
fn encoded_model_decodes_to_the_same_model() {
    let model = small_model();
    let decoded = decode_model(encode(&model)).expect("valid model");
    assert_eq!(decoded, model);
    assert_eq!(default_opset_version(&decoded), Some(13));
}

#[test]
fn raw_data_is_a_slice_of_the_input_buffer() {
    let mut model = small_model();
    let weights: Vec<u8> = (0..4096u32)
        .flat_map(|v| (v as f32).to_le_bytes())
        .collect();
    model.graph.as_mut().expect("graph").initializer[0] =
        raw_tensor("w", DataType::Float, &[4096], weights.clone());
    let buffer = encode(&model);
    let decoded = decode_model(buffer.clone()).expect("valid model");
    let raw = &decoded.graph.expect("graph").initializer[0].raw_data;
    assert_eq!(&raw[..], &weights[..]);
    assert!(points_into(raw, &buffer), "raw_data was copied");
}

/// Whether `inner` lies inside the memory of `outer`.
fn points_into(inner: &[u8], outer: &[u8]) -> bool {
    let outer_range = outer.as_ptr_range();
    let inner_range = inner.as_ptr_range();
    outer_range.start <= inner_range.start && inner_range.end <= outer_range.end
}

#[test]
fn loaded_model_keeps_raw_data_in_the_file_mapping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, small_model().encode_to_vec()).expect("write model");
    let loaded = load_model(&path).expect("valid model");
    assert_eq!(loaded.model, small_model());
    assert_eq!(loaded.model_dir(), dir.path());
    let raw = &loaded.model.graph.as_ref().expect("graph").initializer[0].raw_data;
    assert!(points_into(raw, &loaded.bytes), "raw_data was copied");
}

#[test]
fn ir_versions_outside_the_supported_range_are_rejected() {
    for ir_version in [0, 2, 15, -1, i64::MAX] {
        let mut model = small_model();
        model.ir_version = ir_version;
        let err = decode_model(encode(&model)).expect_err("unsupported IR version");
        assert!(
            matches!(err, DecodeError::UnsupportedIrVersion { found, .. } if found == ir_version),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("IR version {ir_version}")) && message.contains("3..=14"),
            "{message}"
        );
    }
    for ir_version in [3, 12, 14] {
        let mut model = small_model();
        model.ir_version = ir_version;
        decode_model(encode(&model)).expect("supported IR version");
    }
}

#[test]
fn a_default_domain_opset_is_required() {
    let mut model = small_model();
    model.opset_import = vec![opset("com.microsoft", 1)];
    let err = decode_model(encode(&model)).expect_err("no default opset");
    assert!(
        matches!(&err, DecodeError::MissingDefaultOpset { found, .. } if found == &["com.microsoft"]),
        "{err}"
    );
    assert!(err.to_string().contains("com.microsoft"), "{err}");

    model.opset_import = vec![opset("com.microsoft", 1), opset("ai.onnx", 17)];
    let decoded = decode_model(encode(&model)).expect("ai.onnx is the default domain");
    assert_eq!(default_opset_version(&decoded), Some(17));

    model.opset_import = vec![opset("", 0)];
    let err = decode_model(encode(&model)).expect_err("opset version 0");
    assert!(
        matches!(err, DecodeError::InvalidOpsetVersion { version: 0, .. }),
        "{err}"
    );
}

#[test]
fn a_model_without_graph_is_rejected() {
    let mut model = small_model();
    model.graph = None;
    let err = decode_model(encode(&model)).expect_err("no graph");
    assert!(matches!(err, DecodeError::MissingGraph { .. }), "{err}");
}

#[test]
fn empty_input_is_rejected() {
    let err = decode_model(Bytes::new()).expect_err("empty buffer");
    assert!(matches!(err, DecodeError::Empty { .. }), "{err}");

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("empty.onnx");
    std::fs::write(&path, b"").expect("write");
    let err = load_model(&path).expect_err("empty file");
    assert!(matches!(err, DecodeError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("empty.onnx"), "{err}");
}

#[test]
fn a_missing_file_is_an_io_error_naming_the_path() {
    let path = data_dir().join("does_not_exist.onnx");
    let err = load_model(&path).expect_err("missing file");
    assert!(matches!(err, DecodeError::Io { .. }), "{err}");
    assert!(err.to_string().contains("does_not_exist.onnx"), "{err}");
}

#[test]
fn decode_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.onnx");
    // Field 1 with wire type 7, which does not exist.
    std::fs::write(&path, [0x0f, 0x01, 0x02]).expect("write");
    let err = load_model(&path).expect_err("garbage");
    assert!(matches!(err, DecodeError::Protobuf { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("garbage.onnx") && message.contains("not a valid ModelProto"),
        "{message}"
    );
}

#[test]
fn hand_made_malformed_messages_are_errors() {
    let cases: &[(&str, &[u8])] = &[
        ("invalid wire type", &[0x0f]),
        ("truncated varint", &[0x08, 0xff]),
        (
            "varint longer than 10 bytes",
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ),
        // The graph field claims 4 GiB but the buffer ends: must not allocate 4 GiB.
        (
            "length beyond the buffer",
            &[0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00],
        ),
        ("truncated graph", &[0x08, 0x08, 0x3a, 0x05, 0x0a]),
        ("field number zero", &[0x00, 0x01]),
        ("invalid UTF-8 in producer_name", &[0x12, 0x02, 0xff, 0xfe]),
        ("end group without start", &[0x0c]),
    ];
    for (what, bytes) in cases {
        let err = decode_model(Bytes::from_static(bytes)).expect_err(what);
        assert!(
            matches!(err, DecodeError::Protobuf { .. }),
            "{what}: expected a protobuf error, got {err}"
        );
    }
}

/// The outcome of decoding arbitrary bytes, with the error kind spelled out so that a panic is the
/// only way for the fuzz loops below to fail.
fn decode_outcome(bytes: Bytes) -> &'static str {
    match decode_model(bytes) {
        Ok(_) => "ok",
        Err(DecodeError::Protobuf { .. }) => "protobuf",
        Err(DecodeError::Empty { .. }) => "empty",
        Err(DecodeError::UnsupportedIrVersion { .. }) => "ir_version",
        Err(DecodeError::MissingDefaultOpset { .. }) => "opset",
        Err(DecodeError::InvalidOpsetVersion { .. }) => "opset_version",
        Err(DecodeError::MissingGraph { .. }) => "graph",
        Err(DecodeError::Io { .. }) => "io",
    }
}

#[test]
fn every_truncation_of_a_real_model_decodes_without_panic() {
    let bytes = std::fs::read(data_dir().join("attributes.onnx")).expect("test model");
    let mut n_protobuf_errors = 0;
    for len in 0..bytes.len() {
        let outcome = decode_outcome(Bytes::copy_from_slice(&bytes[..len]));
        assert_ne!(outcome, "io");
        if outcome == "protobuf" {
            n_protobuf_errors += 1;
        }
    }
    // Most cuts land inside a field; the rest are caught by the model checks (e.g. no graph yet).
    assert!(
        n_protobuf_errors > bytes.len() / 2,
        "{n_protobuf_errors} of {}",
        bytes.len()
    );
    assert_eq!(decode_outcome(Bytes::from(bytes)), "ok");
}

#[test]
fn random_and_corrupted_bytes_decode_without_panic() {
    let mut rng = SplitMix64::new(0x5eed);
    for _ in 0..3000 {
        let len = (rng.next_u64() % 300) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        decode_outcome(Bytes::from(bytes));
    }
    let original = std::fs::read(data_dir().join("attributes.onnx")).expect("test model");
    for _ in 0..3000 {
        let mut corrupted = original.clone();
        let n_flips = 1 + rng.next_u64() % 4;
        for _ in 0..n_flips {
            let byte_idx = (rng.next_u64() % corrupted.len() as u64) as usize;
            corrupted[byte_idx] = rng.next_u64() as u8;
        }
        decode_outcome(Bytes::from(corrupted));
    }
}

#[test]
fn hostile_nesting_hits_the_recursion_limit_instead_of_the_stack() {
    let mut ty = TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: DataType::Float as i32,
            shape: None,
        })),
        ..Default::default()
    };
    for _ in 0..500 {
        ty = TypeProto {
            value: Some(type_proto::Value::SequenceType(type_proto::Sequence {
                elem_type: Some(Box::new(ty)),
            })),
            ..Default::default()
        };
    }
    let mut model = small_model();
    model.graph.as_mut().expect("graph").value_info = vec![ValueInfoProto {
        name: "deep".into(),
        r#type: Some(ty),
        ..Default::default()
    }];
    let err = decode_model(encode(&model)).expect_err("too deep");
    assert!(matches!(err, DecodeError::Protobuf { .. }), "{err}");
    assert!(err.to_string().contains("recursion limit"), "{err}");
}

// ---------------------------------------------------------------------------------------------------
// The committed files written by onnx's serializer
// ---------------------------------------------------------------------------------------------------

fn load_committed(name: &str) -> sinter_onnx::LoadedModel {
    load_model(&data_dir().join(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

#[test]
fn committed_models_have_the_expected_versions() {
    let cases = [
        ("attributes.onnx", 12, 24),
        ("initializers.onnx", 8, 13),
        ("external.onnx", 9, 17),
        ("old_opset.onnx", 3, 7),
        ("multi_domain.onnx", 10, 18),
    ];
    for (name, ir_version, opset_version) in cases {
        let loaded = load_committed(name);
        assert_eq!(loaded.model.ir_version, ir_version, "{name}");
        assert_eq!(
            default_opset_version(&loaded.model),
            Some(opset_version),
            "{name}"
        );
    }
    let multi = load_committed("multi_domain.onnx").model;
    let domains: Vec<&str> = multi
        .opset_import
        .iter()
        .map(|o| o.domain.as_str())
        .collect();
    assert_eq!(domains, ["ai.onnx", "ai.onnx.ml", "com.microsoft"]);
    let gelu = &multi.graph.as_ref().expect("graph").node[1];
    assert_eq!(
        (gelu.op_type.as_str(), gelu.overload.as_str()),
        ("Gelu", "fast")
    );
    assert_eq!(multi.training_info.len(), 1);
}

#[test]
fn attributes_of_every_type_decode() {
    let model = load_committed("attributes.onnx").model;
    let graph = model.graph.expect("graph");
    let node = &graph.node[0];
    assert_eq!(node.input, ["x", "", "x"]);
    let types: Vec<(String, AttributeType)> = node
        .attribute
        .iter()
        .map(|a| {
            let ty = AttributeType::try_from(a.r#type).expect("known attribute type");
            (a.name.clone(), ty)
        })
        .collect();
    let mut type_names: Vec<&str> = types.iter().map(|(_, ty)| ty.as_str_name()).collect();
    type_names.sort_unstable();
    assert_eq!(
        type_names,
        [
            "FLOAT",
            "FLOATS",
            "GRAPH",
            "GRAPHS",
            "INT",
            "INTS",
            "SPARSE_TENSOR",
            "SPARSE_TENSORS",
            "STRING",
            "STRINGS",
            "TENSOR",
            "TENSORS",
            "TYPE_PROTO",
            "TYPE_PROTOS"
        ]
    );
    let attr = |name: &str| {
        node.attribute
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("attribute {name}"))
    };
    assert_eq!(attr("f").f, 1.5);
    assert_eq!(attr("f").doc_string, "a float attribute");
    assert_eq!(attr("i").i, -7);
    assert_eq!(attr("s").s, "h\u{e9}llo".as_bytes());
    let floats: Vec<u32> = attr("floats").floats.iter().map(|f| f.to_bits()).collect();
    assert_eq!(floats[0], 0.5f32.to_bits());
    assert!(f32::from_bits(floats[1]).is_nan());
    assert_eq!(floats[2], (-0.0f32).to_bits());
    assert_eq!(floats[3], f32::INFINITY.to_bits());
    assert_eq!(attr("ints").ints, [0, -1, 1 << 62]);
    assert_eq!(
        attr("strings").strings,
        [b"a".to_vec(), vec![], "\u{3bb}".as_bytes().to_vec()]
    );
    assert_eq!(attr("g").g.as_ref().expect("graph").node[0].op_type, "Neg");
    assert_eq!(attr("graphs").graphs.len(), 2);
    let t = tensor_from_proto(
        attr("t").t.as_ref().expect("tensor"),
        &ExternalData::unavailable(),
    )
    .expect("tensor attribute");
    assert_eq!(
        t,
        Tensor::from_vec(vec![2, 2], vec![1.0f32, -2.0, 3.5, -0.0]).expect("tensor")
    );
    let sparse = attr("sparse").sparse_tensor.as_ref().expect("sparse");
    assert_eq!(sparse.dims, [2, 4]);

    let func = &model.functions[0];
    assert_eq!(
        (func.domain.as_str(), func.name.as_str()),
        ("sinter.fn", "Scale")
    );
    assert_eq!(func.node[0].attribute[0].ref_attr_name, "alpha");
    let kinds: Vec<&str> = graph
        .value_info
        .iter()
        .map(|v| match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::SequenceType(_)) => "sequence",
            Some(type_proto::Value::MapType(_)) => "map",
            Some(type_proto::Value::OptionalType(_)) => "optional",
            Some(type_proto::Value::SparseTensorType(_)) => "sparse",
            Some(type_proto::Value::TensorType(_)) => "tensor",
            None => "none",
        })
        .collect();
    assert_eq!(kinds, ["sequence", "map", "optional", "sparse"]);
}

#[test]
fn input_shapes_keep_dim_values_params_and_unknown_dims() {
    let graph = load_committed("initializers.onnx")
        .model
        .graph
        .expect("graph");
    let x_type = graph.input[0].r#type.as_ref().expect("type");
    assert_eq!(x_type.denotation, "TENSOR");
    let Some(type_proto::Value::TensorType(tensor_type)) = &x_type.value else {
        panic!("x is a tensor");
    };
    let dims = &tensor_type.shape.as_ref().expect("shape").dim;
    assert_eq!(
        dims[0].value,
        Some(dimension::Value::DimParam("batch".into()))
    );
    assert_eq!(dims[0].denotation, "DATA_BATCH");
    assert_eq!(dims[1].value, Some(dimension::Value::DimValue(3)));
    assert_eq!(dims[2].value, None);
    let Some(type_proto::Value::TensorType(unranked)) = graph.input[1]
        .r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
    else {
        panic!("unranked is a tensor");
    };
    assert_eq!(unranked.shape, None);
}

// ---------------------------------------------------------------------------------------------------
// Tensor conversion
// ---------------------------------------------------------------------------------------------------

/// The values of initializers.onnx (the same lists as `INITIALIZER_VALUES` in make_models.py).
fn expected_initializers() -> Vec<(&'static str, Tensor)> {
    vec![
        (
            "f32",
            Tensor::from_vec(vec![2, 3], vec![-1.5f32, 0.0, 2.25, -0.0, 1e-30, 3.4e38]),
        ),
        (
            "f64",
            Tensor::from_vec(vec![3], vec![1.0f64 / 3.0, -2.5e300, 5e-324]),
        ),
        (
            "i64",
            Tensor::from_vec(vec![4], vec![0i64, -1, 9007199254740993, i64::MIN]),
        ),
        (
            "i32",
            Tensor::from_vec(vec![2, 2], vec![7i32, -8, i32::MAX, i32::MIN]),
        ),
        ("i8", Tensor::from_vec(vec![5], vec![-128i8, -1, 0, 1, 127])),
        ("u8", Tensor::from_vec(vec![5], vec![0u8, 1, 128, 254, 255])),
        (
            "bool",
            Tensor::from_vec(vec![4], vec![true, false, false, true]),
        ),
    ]
    .into_iter()
    .map(|(name, tensor)| (name, tensor.expect("consistent expectation")))
    .collect()
}

fn initializer<'a>(graph: &'a GraphProto, name: &str) -> &'a TensorProto {
    graph
        .initializer
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("initializer {name}"))
}

#[test]
fn committed_initializers_convert_from_raw_and_typed_data() {
    let loaded = load_committed("initializers.onnx");
    let graph = loaded.model.graph.as_ref().expect("graph");
    for (key, expected) in expected_initializers() {
        let raw = initializer(graph, &format!("{key}_raw"));
        let typed = initializer(graph, &format!("{key}_typed"));
        assert!(!raw.raw_data.is_empty(), "{key}_raw uses raw_data");
        assert!(
            typed.raw_data.is_empty(),
            "{key}_typed uses its typed field"
        );
        for proto in [raw, typed] {
            let tensor = tensor_from_proto(proto, &loaded.external)
                .unwrap_or_else(|err| panic!("{}: {err}", proto.name));
            assert_eq!(tensor, expected, "{}", proto.name);
        }
    }
    let scalar =
        tensor_from_proto(initializer(graph, "scalar_f32"), &loaded.external).expect("scalar");
    assert_eq!(scalar, Tensor::scalar(42.5f32));
    let empty =
        tensor_from_proto(initializer(graph, "empty_f32"), &loaded.external).expect("empty");
    assert_eq!(empty.shape(), [0, 3]);
    assert_eq!(empty.dtype(), DType::F32);
}

#[test]
fn unsupported_onnx_dtypes_are_named_in_the_error() {
    let loaded = load_committed("initializers.onnx");
    let graph = loaded.model.graph.as_ref().expect("graph");
    for (name, onnx_type) in [
        ("f16_raw", "FLOAT16"),
        ("bf16_typed", "BFLOAT16"),
        ("str_typed", "STRING"),
        ("u64_typed", "UINT64"),
    ] {
        let err = tensor_from_proto(initializer(graph, name), &loaded.external)
            .expect_err("unsupported dtype");
        assert!(
            matches!(&err, TensorError::UnsupportedDType { tensor, onnx_type: t } if tensor == name && *t == onnx_type),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(name) && message.contains(onnx_type),
            "{message}"
        );
    }
    let mut unknown = raw_tensor("odd", DataType::Float, &[1], vec![0; 4]);
    unknown.data_type = 99;
    let err = tensor_from_proto(&unknown, &ExternalData::unavailable()).expect_err("unknown");
    assert!(
        matches!(err, TensorError::UnknownDType { code: 99, .. }),
        "{err}"
    );
}

/// A TensorProto holding `tensor` in its typed field, the way onnx.proto assigns fields to dtypes.
fn typed_proto(name: &str, tensor: &Tensor) -> TensorProto {
    let mut proto = TensorProto {
        name: name.to_string(),
        dims: tensor.shape().iter().map(|&d| d as i64).collect(),
        ..Default::default()
    };
    let as_i32 = tensor.to_i64_vec().into_iter().map(|v| v as i32).collect();
    match tensor.dtype() {
        DType::F32 => {
            proto.data_type = DataType::Float as i32;
            proto.float_data = tensor.as_slice::<f32>().expect("f32").to_vec();
        }
        DType::F64 => {
            proto.data_type = DataType::Double as i32;
            proto.double_data = tensor.as_slice::<f64>().expect("f64").to_vec();
        }
        DType::I64 => {
            proto.data_type = DataType::Int64 as i32;
            proto.int64_data = tensor.to_i64_vec();
        }
        DType::I32 => {
            proto.data_type = DataType::Int32 as i32;
            proto.int32_data = as_i32;
        }
        DType::I8 => {
            proto.data_type = DataType::Int8 as i32;
            proto.int32_data = as_i32;
        }
        DType::U8 => {
            proto.data_type = DataType::Uint8 as i32;
            proto.int32_data = as_i32;
        }
        DType::Bool => {
            proto.data_type = DataType::Bool as i32;
            proto.int32_data = as_i32;
        }
        other => panic!("no ONNX mapping for {other}"),
    }
    proto
}

/// The same tensor in raw_data.
fn raw_proto(name: &str, tensor: &Tensor) -> TensorProto {
    let mut proto = typed_proto(name, tensor);
    let data_type = proto.data_type;
    let dims = proto.dims.clone();
    proto = TensorProto {
        name: name.to_string(),
        data_type,
        dims,
        raw_data: Bytes::from(tensor.data().to_le_bytes()),
        ..Default::default()
    };
    proto
}

#[test]
fn every_dtype_converts_from_prost_built_raw_and_typed_tensors() {
    let ctx = ExternalData::unavailable();
    for (key, expected) in expected_initializers() {
        for proto in [raw_proto(key, &expected), typed_proto(key, &expected)] {
            // Through an encode/decode round trip, so packed typed fields are exercised too.
            let decoded = TensorProto::decode(Bytes::from(proto.encode_to_vec())).expect("decode");
            let tensor = tensor_from_proto(&decoded, &ctx).unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(tensor, expected, "{key}");
        }
    }
}

#[test]
fn nonzero_bool_values_are_true() {
    let ctx = ExternalData::unavailable();
    let raw = raw_tensor("m", DataType::Bool, &[3], vec![0, 2, 255]);
    let typed = TensorProto {
        name: "m".into(),
        data_type: DataType::Bool as i32,
        dims: vec![3],
        int32_data: vec![0, -1, 7],
        ..Default::default()
    };
    let expected = Tensor::from_vec(vec![3], vec![false, true, true]).expect("tensor");
    assert_eq!(tensor_from_proto(&raw, &ctx).expect("raw"), expected);
    assert_eq!(tensor_from_proto(&typed, &ctx).expect("typed"), expected);
}

#[test]
fn narrow_values_out_of_range_in_int32_data_are_errors() {
    let ctx = ExternalData::unavailable();
    for (data_type, value) in [
        (DataType::Int8, 128),
        (DataType::Int8, -129),
        (DataType::Uint8, -1),
        (DataType::Uint8, 256),
    ] {
        let proto = TensorProto {
            name: "narrow".into(),
            data_type: data_type as i32,
            dims: vec![2],
            int32_data: vec![0, value],
            ..Default::default()
        };
        let err = tensor_from_proto(&proto, &ctx).expect_err("out of range");
        assert!(
            matches!(err, TensorError::ValueOutOfRange { value_idx: 1, value: v, .. } if v == value),
            "{err}"
        );
    }
}

#[test]
fn data_size_must_match_the_dims() {
    let ctx = ExternalData::unavailable();
    let short_raw = raw_tensor("short", DataType::Float, &[2, 3], vec![0; 23]);
    let err = tensor_from_proto(&short_raw, &ctx).expect_err("short raw_data");
    let message = err.to_string();
    assert!(
        matches!(
            err,
            TensorError::SizeMismatch {
                expected: 24,
                actual: 23,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains("`short`")
            && message.contains("24 bytes")
            && message.contains("raw_data holds 23 bytes"),
        "{message}"
    );

    let long_typed = TensorProto {
        name: "long".into(),
        data_type: DataType::Int64 as i32,
        dims: vec![2],
        int64_data: vec![1, 2, 3],
        ..Default::default()
    };
    let err = tensor_from_proto(&long_typed, &ctx).expect_err("extra value");
    assert!(
        matches!(
            err,
            TensorError::SizeMismatch {
                expected: 2,
                actual: 3,
                unit: "values",
                ..
            }
        ),
        "{err}"
    );

    let no_data = TensorProto {
        name: "nothing".into(),
        data_type: DataType::Float as i32,
        dims: vec![4],
        ..Default::default()
    };
    let err = tensor_from_proto(&no_data, &ctx).expect_err("no data");
    assert!(
        err.to_string().contains("float_data holds 0 values"),
        "{err}"
    );
}

#[test]
fn absurd_dims_are_rejected_without_allocating() {
    let ctx = ExternalData::unavailable();
    // 10^12 f32 elements would be 4 TB: converting must compare sizes first and fail.
    let trillion = raw_tensor("huge", DataType::Float, &[1_000_000_000_000], vec![0; 4]);
    let err = tensor_from_proto(&trillion, &ctx).expect_err("huge dims");
    assert!(
        matches!(
            err,
            TensorError::SizeMismatch {
                expected: 4_000_000_000_000,
                actual: 4,
                ..
            }
        ),
        "{err}"
    );
    let trillion_typed = TensorProto {
        name: "huge".into(),
        data_type: DataType::Double as i32,
        dims: vec![1_000_000, 1_000_000],
        double_data: vec![1.0, 2.0],
        ..Default::default()
    };
    let err = tensor_from_proto(&trillion_typed, &ctx).expect_err("huge typed");
    assert!(
        matches!(
            err,
            TensorError::SizeMismatch {
                expected: 1_000_000_000_000,
                ..
            }
        ),
        "{err}"
    );
    // The element count fits in usize but the byte count does not.
    let bytes_overflow = raw_tensor("wide", DataType::Int64, &[1 << 62], vec![]);
    let err = tensor_from_proto(&bytes_overflow, &ctx).expect_err("byte overflow");
    assert!(matches!(err, TensorError::SizeOverflow { .. }), "{err}");
    let count_overflow = raw_tensor("wider", DataType::Uint8, &[i64::MAX, i64::MAX], vec![1]);
    let err = tensor_from_proto(&count_overflow, &ctx).expect_err("count overflow");
    assert!(matches!(err, TensorError::SizeOverflow { .. }), "{err}");
    assert!(err.to_string().contains("`wider`"), "{err}");

    let negative = raw_tensor("neg", DataType::Float, &[2, -1], vec![]);
    let err = tensor_from_proto(&negative, &ctx).expect_err("negative dim");
    assert!(matches!(err, TensorError::NegativeDim { .. }), "{err}");
}

#[test]
fn data_in_more_than_one_place_or_the_wrong_field_is_rejected() {
    let ctx = ExternalData::unavailable();
    let mut both = raw_tensor("both", DataType::Float, &[1], vec![0; 4]);
    both.float_data = vec![1.0];
    let err = tensor_from_proto(&both, &ctx).expect_err("raw and typed");
    assert!(
        matches!(
            err,
            TensorError::ConflictingData {
                first: "raw_data",
                second: "float_data",
                ..
            }
        ),
        "{err}"
    );

    let wrong_field = TensorProto {
        name: "wrong".into(),
        data_type: DataType::Float as i32,
        dims: vec![1],
        int64_data: vec![1],
        ..Default::default()
    };
    let err = tensor_from_proto(&wrong_field, &ctx).expect_err("wrong field");
    assert!(
        matches!(
            err,
            TensorError::WrongTypedField {
                found: "int64_data",
                expected: "float_data",
                ..
            }
        ),
        "{err}"
    );

    let mut external_and_raw = raw_tensor("ext", DataType::Float, &[1], vec![0; 4]);
    external_and_raw.data_location = DataLocation::External as i32;
    let err = tensor_from_proto(&external_and_raw, &ctx).expect_err("external and raw");
    assert!(matches!(err, TensorError::ConflictingData { .. }), "{err}");

    let mut bad_location = raw_tensor("loc", DataType::Float, &[1], vec![0; 4]);
    bad_location.data_location = 7;
    let err = tensor_from_proto(&bad_location, &ctx).expect_err("unknown data_location");
    assert!(
        matches!(err, TensorError::UnknownDataLocation { code: 7, .. }),
        "{err}"
    );

    let mut segmented = raw_tensor("seg", DataType::Float, &[1], vec![0; 4]);
    segmented.segment = Some(sinter_onnx::proto::tensor_proto::Segment { begin: 0, end: 1 });
    let err = tensor_from_proto(&segmented, &ctx).expect_err("segment");
    assert!(matches!(err, TensorError::Segmented { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------------
// External data
// ---------------------------------------------------------------------------------------------------

#[test]
fn committed_external_data_converts_and_maps_the_file_once() {
    let loaded = load_committed("external.onnx");
    let graph = loaded.model.graph.as_ref().expect("graph");
    let w: Vec<f32> = (0..12).map(|v| v as f32 * 0.5 - 2.0).collect();
    let expected = [
        ("w", Tensor::from_vec(vec![4, 3], w)),
        ("b", Tensor::from_vec(vec![4], vec![1.0f32, -1.0, 0.5, 0.0])),
        ("idx", Tensor::from_vec(vec![3], vec![3i64, -4, 5])),
        ("inline", Tensor::from_vec(vec![1], vec![7i32])),
    ];
    for (name, tensor) in expected {
        let proto = initializer(graph, name);
        let converted = tensor_from_proto(proto, &loaded.external)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(converted, tensor.expect("expectation"), "{name}");
    }
    assert_eq!(
        initializer(graph, "w").data_location,
        DataLocation::External as i32
    );
    assert_eq!(loaded.external.n_mapped_files(), 1);
}

/// A temp folder with `weights.bin` holding the f32 values 0..16 and an empty `empty.bin`.
fn external_fixture() -> (tempfile::TempDir, ExternalData) {
    let dir = tempfile::tempdir().expect("temp dir");
    let weights: Vec<u8> = (0..16).flat_map(|v| (v as f32).to_le_bytes()).collect();
    std::fs::write(dir.path().join("weights.bin"), weights).expect("write weights");
    std::fs::create_dir(dir.path().join("sub")).expect("subdir");
    std::fs::write(dir.path().join("sub/more.bin"), 9i64.to_le_bytes()).expect("write");
    std::fs::write(dir.path().join("empty.bin"), b"").expect("write");
    let ctx = ExternalData::new(dir.path());
    (dir, ctx)
}

fn external_tensor(
    name: &str,
    data_type: DataType,
    dims: &[i64],
    entries: &[(&str, &str)],
) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        data_type: data_type as i32,
        dims: dims.to_vec(),
        data_location: DataLocation::External as i32,
        external_data: entries
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: key.to_string(),
                value: value.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn external_data_reads_offsets_lengths_and_subfolders() {
    let (_dir, ctx) = external_fixture();
    let middle = external_tensor(
        "middle",
        DataType::Float,
        &[2, 2],
        &[
            ("location", "weights.bin"),
            ("offset", "16"),
            ("length", "16"),
        ],
    );
    assert_eq!(
        tensor_from_proto(&middle, &ctx).expect("middle"),
        Tensor::from_vec(vec![2, 2], vec![4.0f32, 5.0, 6.0, 7.0]).expect("tensor")
    );
    // Without `length` the data runs to the end of the file.
    let tail = external_tensor(
        "tail",
        DataType::Float,
        &[3],
        &[
            ("location", "./weights.bin"),
            ("offset", "52"),
            ("checksum", "ignored"),
        ],
    );
    assert_eq!(
        tensor_from_proto(&tail, &ctx).expect("tail"),
        Tensor::from_vec(vec![3], vec![13.0f32, 14.0, 15.0]).expect("tensor")
    );
    let nested = external_tensor(
        "nested",
        DataType::Int64,
        &[],
        &[("location", "sub/more.bin")],
    );
    assert_eq!(
        tensor_from_proto(&nested, &ctx).expect("nested"),
        Tensor::scalar(9i64)
    );
    let empty = external_tensor("empty", DataType::Float, &[0], &[("location", "empty.bin")]);
    assert_eq!(tensor_from_proto(&empty, &ctx).expect("empty").len(), 0);
    // `weights.bin` and `./weights.bin` are two location strings; each is mapped once.
    assert_eq!(ctx.n_mapped_files(), 4);
    tensor_from_proto(&middle, &ctx).expect("middle again");
    assert_eq!(ctx.n_mapped_files(), 4);
}

/// Weights are viewed in place in the mapping when aligned, and copied (with the same values) when not.
#[test]
fn aligned_external_weights_are_zero_copy_and_misaligned_ones_are_copied() {
    let dir = tempfile::tempdir().expect("temp dir");
    // One leading byte, then f32 values 0..8: offset 4 is aligned, offset 1 is not.
    let mut bytes = vec![0xAB_u8; 4];
    bytes.extend((0..8).flat_map(|v| (v as f32).to_le_bytes()));
    std::fs::write(dir.path().join("w.bin"), &bytes).expect("write");
    let ctx = ExternalData::new(dir.path());
    let aligned = external_tensor(
        "aligned",
        DataType::Float,
        &[2, 4],
        &[("location", "w.bin"), ("offset", "4"), ("length", "32")],
    );
    let tensor = tensor_from_proto(&aligned, &ctx).expect("aligned");
    assert!(tensor.data().is_shared(), "an aligned f32 weight is a view");
    let expected: Vec<f32> = (0..8).map(|v| v as f32).collect();
    assert_eq!(tensor.as_slice::<f32>().expect("f32"), &expected[..]);

    let misaligned = external_tensor(
        "misaligned",
        DataType::Float,
        &[2],
        &[("location", "w.bin"), ("offset", "1"), ("length", "8")],
    );
    let tensor = tensor_from_proto(&misaligned, &ctx).expect("misaligned");
    assert!(!tensor.data().is_shared(), "a misaligned weight is copied");
    let word = |start: usize| f32::from_le_bytes(bytes[start..start + 4].try_into().unwrap());
    assert_eq!(
        tensor.as_slice::<f32>().expect("f32"),
        &[word(1), word(5)][..]
    );

    // Bytes of a bool tensor might not be 0 or 1, so bools are always decoded.
    let flags = external_tensor(
        "flags",
        DataType::Bool,
        &[4],
        &[("location", "w.bin"), ("offset", "4"), ("length", "4")],
    );
    assert!(!tensor_from_proto(&flags, &ctx)
        .expect("bool")
        .data()
        .is_shared());
}

/// A model loaded from a file keeps its aligned `raw_data` initializers in the mapping.
#[test]
fn aligned_raw_data_of_a_loaded_model_is_zero_copy() {
    let loaded = load_committed("external.onnx");
    let graph = loaded.model.graph.as_ref().expect("graph");
    let mut n_shared = 0;
    for proto in &graph.initializer {
        let tensor = tensor_from_proto(proto, &loaded.external).expect("initializer");
        let aligned =
            (proto.raw_data.as_ptr() as usize).is_multiple_of(tensor.dtype().size_bytes());
        if !proto.raw_data.is_empty() && tensor.dtype() != sinter_ir::DType::Bool {
            assert_eq!(tensor.data().is_shared(), aligned, "{}", proto.name);
        }
        n_shared += usize::from(tensor.data().is_shared());
    }
    assert!(n_shared > 0, "the external weights at least are views");
}

#[test]
fn external_locations_outside_the_model_folder_are_rejected() {
    let (dir, _) = external_fixture();
    // The model folder is `sub`, so `../weights.bin` exists but lies outside it.
    let ctx = ExternalData::new(dir.path().join("sub"));
    let absolute = dir.path().join("weights.bin");
    let absolute = absolute.to_str().expect("utf-8 temp path");
    for location in [
        "../weights.bin",
        "x/../../weights.bin",
        absolute,
        "/etc/passwd",
        "",
    ] {
        let proto = external_tensor("w", DataType::Float, &[1], &[("location", location)]);
        let err = tensor_from_proto(&proto, &ctx).expect_err(location);
        assert!(
            matches!(&err, TensorError::ExternalPathEscapes { tensor, .. } if tensor == "w"),
            "{location}: {err}"
        );
    }
    assert_eq!(ctx.n_mapped_files(), 0);
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_model_folder_are_rejected() {
    let (dir, _) = external_fixture();
    let model_dir = dir.path().join("sub");
    std::os::unix::fs::symlink(dir.path().join("weights.bin"), model_dir.join("link.bin"))
        .expect("symlink");
    let ctx = ExternalData::new(&model_dir);
    let proto = external_tensor(
        "w",
        DataType::Float,
        &[1],
        &[("location", "link.bin"), ("length", "4")],
    );
    let err = tensor_from_proto(&proto, &ctx).expect_err("symlink escape");
    assert!(
        matches!(err, TensorError::ExternalPathEscapes { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("symlink"), "{err}");
}

#[test]
fn external_ranges_outside_the_file_are_rejected() {
    let (_dir, ctx) = external_fixture();
    // weights.bin has 64 bytes.
    for (offset, length) in [
        ("65", "0"),
        ("60", "8"),
        ("0", "65"),
        ("18446744073709551615", "1"),
    ] {
        let proto = external_tensor(
            "w",
            DataType::Uint8,
            &[1],
            &[
                ("location", "weights.bin"),
                ("offset", offset),
                ("length", length),
            ],
        );
        let err = tensor_from_proto(&proto, &ctx).expect_err("out of range");
        assert!(
            matches!(err, TensorError::ExternalRange { file_len: 64, .. }),
            "offset {offset} length {length}: {err}"
        );
    }
    let past_end = external_tensor(
        "w",
        DataType::Uint8,
        &[1],
        &[("location", "weights.bin"), ("offset", "100")],
    );
    let err = tensor_from_proto(&past_end, &ctx).expect_err("offset past end");
    assert!(matches!(err, TensorError::ExternalRange { .. }), "{err}");

    for (key, value) in [("offset", "-1"), ("length", "12abc"), ("offset", "")] {
        let proto = external_tensor(
            "w",
            DataType::Uint8,
            &[1],
            &[("location", "weights.bin"), (key, value)],
        );
        let err = tensor_from_proto(&proto, &ctx).expect_err("bad number");
        assert!(
            matches!(err, TensorError::InvalidExternalField { .. }),
            "{key}={value}: {err}"
        );
    }
}

#[test]
fn external_size_must_match_the_dims() {
    let (_dir, ctx) = external_fixture();
    // The dims claim 10^12 floats; the file holds 64 bytes: an error, not a 4 TB buffer.
    let huge = external_tensor(
        "huge",
        DataType::Float,
        &[1_000_000, 1_000_000],
        &[("location", "weights.bin")],
    );
    let err = tensor_from_proto(&huge, &ctx).expect_err("huge");
    let message = err.to_string();
    assert!(
        matches!(
            err,
            TensorError::SizeMismatch {
                expected: 4_000_000_000_000,
                actual: 64,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("weights.bin"), "{message}");
}

#[test]
fn external_data_problems_name_the_tensor_and_cause() {
    let (_dir, ctx) = external_fixture();
    let no_location = external_tensor("w", DataType::Float, &[1], &[("offset", "0")]);
    let err = tensor_from_proto(&no_location, &ctx).expect_err("no location");
    assert!(
        matches!(err, TensorError::MissingExternalLocation { .. }),
        "{err}"
    );

    let missing = external_tensor("w", DataType::Float, &[1], &[("location", "nope.bin")]);
    let err = tensor_from_proto(&missing, &ctx).expect_err("missing file");
    assert!(matches!(err, TensorError::ExternalIo { .. }), "{err}");
    assert!(err.to_string().contains("nope.bin"), "{err}");

    let folder = external_tensor("w", DataType::Float, &[1], &[("location", "sub")]);
    let err = tensor_from_proto(&folder, &ctx).expect_err("a folder");
    assert!(matches!(err, TensorError::ExternalIo { .. }), "{err}");

    let in_memory = external_tensor("w", DataType::Float, &[1], &[("location", "weights.bin")]);
    let err = tensor_from_proto(&in_memory, &ExternalData::unavailable()).expect_err("no folder");
    assert!(matches!(err, TensorError::NoModelDir { .. }), "{err}");
}

#[test]
fn load_model_resolves_external_data_next_to_the_model() {
    let (dir, _) = external_fixture();
    let mut model = small_model();
    model.graph.as_mut().expect("graph").initializer = vec![external_tensor(
        "w",
        DataType::Float,
        &[2],
        &[
            ("location", "weights.bin"),
            ("offset", "8"),
            ("length", "8"),
        ],
    )];
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, model.encode_to_vec()).expect("write model");
    let loaded = load_model(&path).expect("model");
    let w = &loaded.model.graph.as_ref().expect("graph").initializer[0];
    assert_eq!(
        tensor_from_proto(w, &loaded.external).expect("w"),
        Tensor::from_vec(vec![2], vec![2.0f32, 3.0]).expect("tensor")
    );
    assert_eq!(loaded.model_dir(), Path::new(dir.path()));
}

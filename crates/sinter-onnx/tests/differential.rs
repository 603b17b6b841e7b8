//! Differential test of the hand-written prost messages against an independent decoder.
//!
//! `src/proto.rs` spells out every onnx.proto field number by hand. A wrong number would not fail to
//! compile; it would silently drop or misplace data. This test decodes every committed ONNX file
//! (written by the official onnx Python serializer, see `tests/data/make_models.py`) twice: with the
//! prost structs, and with the `onnx-protobuf` crate, whose rust-protobuf code is generated from
//! onnx.proto by a protobuf compiler. Both decodings are flattened into one line per field
//! (`graph.node[0].attribute[3].ints = [0, -1, ...]`) by two walkers of identical shape, and the line
//! lists must be equal. Floats are compared by bit pattern, so NaN payloads and -0.0 count.
//!
//! It also re-encodes the prost decoding and decodes that with rust-protobuf, checking the prost
//! encoder's field numbers the same way (the unit tests build models with the prost encoder).
//!
//! onnx-protobuf's `AttributeProto::as_value` panics on malformed attributes, so it is never called;
//! the walkers read the generated fields directly.

use onnx_protobuf as rp;
use protobuf::Message as _;
use sinter_onnx::proto as pp;
use std::fmt::Debug;
use std::path::PathBuf;

/// One line per field, prefixed by the path from the model root.
#[derive(Default)]
struct Dump {
    lines: Vec<String>,
    path: Vec<String>,
}

impl Dump {
    fn field(&mut self, name: &str, value: impl Debug) {
        let line = format!("{}.{name} = {value:?}", self.path.join("."));
        self.lines.push(line);
    }

    fn nested(&mut self, name: impl Into<String>, walk: impl FnOnce(&mut Dump)) {
        self.path.push(name.into());
        walk(self);
        self.path.pop();
    }

    fn each<T>(&mut self, name: &str, items: &[T], mut walk: impl FnMut(&mut Dump, &T)) {
        self.field(&format!("{name}.len"), items.len());
        for (item_idx, item) in items.iter().enumerate() {
            self.nested(format!("{name}[{item_idx}]"), |dump| walk(dump, item));
        }
    }

    fn optional<T>(&mut self, name: &str, item: Option<&T>, walk: impl FnOnce(&mut Dump, &T)) {
        match item {
            Some(item) => self.nested(name, |dump| walk(dump, item)),
            None => self.field(name, "<absent>"),
        }
    }
}

fn f32_bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn f64_bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Walkers over the prost structs.
mod walk_prost {
    use super::*;

    pub fn model(d: &mut Dump, m: &pp::ModelProto) {
        d.field("ir_version", m.ir_version);
        d.each("opset_import", &m.opset_import, opset);
        d.field("producer_name", &m.producer_name);
        d.field("producer_version", &m.producer_version);
        d.field("domain", &m.domain);
        d.field("model_version", m.model_version);
        d.field("doc_string", &m.doc_string);
        d.optional("graph", m.graph.as_ref(), graph);
        d.each("metadata_props", &m.metadata_props, entry);
        d.each("training_info", &m.training_info, training);
        d.each("functions", &m.functions, function);
    }

    fn opset(d: &mut Dump, o: &pp::OperatorSetIdProto) {
        d.field("domain", &o.domain);
        d.field("version", o.version);
    }

    fn entry(d: &mut Dump, e: &pp::StringStringEntryProto) {
        d.field("key", &e.key);
        d.field("value", &e.value);
    }

    fn training(d: &mut Dump, t: &pp::TrainingInfoProto) {
        d.optional("initialization", t.initialization.as_ref(), graph);
        d.optional("algorithm", t.algorithm.as_ref(), graph);
        d.each("initialization_binding", &t.initialization_binding, entry);
        d.each("update_binding", &t.update_binding, entry);
    }

    fn function(d: &mut Dump, f: &pp::FunctionProto) {
        d.field("name", &f.name);
        d.field("input", &f.input);
        d.field("output", &f.output);
        d.field("attribute", &f.attribute);
        d.each("attribute_proto", &f.attribute_proto, attribute);
        d.each("node", &f.node, node);
        d.field("doc_string", &f.doc_string);
        d.each("opset_import", &f.opset_import, opset);
        d.field("domain", &f.domain);
        d.field("overload", &f.overload);
        d.each("value_info", &f.value_info, value_info);
        d.each("metadata_props", &f.metadata_props, entry);
    }

    fn graph(d: &mut Dump, g: &pp::GraphProto) {
        d.each("node", &g.node, node);
        d.field("name", &g.name);
        d.each("initializer", &g.initializer, tensor);
        d.each("sparse_initializer", &g.sparse_initializer, sparse_tensor);
        d.field("doc_string", &g.doc_string);
        d.each("input", &g.input, value_info);
        d.each("output", &g.output, value_info);
        d.each("value_info", &g.value_info, value_info);
        d.each(
            "quantization_annotation",
            &g.quantization_annotation,
            annotation,
        );
        d.each("metadata_props", &g.metadata_props, entry);
    }

    fn annotation(d: &mut Dump, a: &pp::TensorAnnotation) {
        d.field("tensor_name", &a.tensor_name);
        d.each(
            "quant_parameter_tensor_names",
            &a.quant_parameter_tensor_names,
            entry,
        );
    }

    fn node(d: &mut Dump, n: &pp::NodeProto) {
        d.field("input", &n.input);
        d.field("output", &n.output);
        d.field("name", &n.name);
        d.field("op_type", &n.op_type);
        d.field("domain", &n.domain);
        d.field("overload", &n.overload);
        d.each("attribute", &n.attribute, attribute);
        d.field("doc_string", &n.doc_string);
        d.each("metadata_props", &n.metadata_props, entry);
    }

    fn attribute(d: &mut Dump, a: &pp::AttributeProto) {
        d.field("name", &a.name);
        d.field("ref_attr_name", &a.ref_attr_name);
        d.field("doc_string", &a.doc_string);
        d.field("type", a.r#type);
        d.field("f", a.f.to_bits());
        d.field("i", a.i);
        d.field("s", &a.s);
        d.optional("t", a.t.as_ref(), tensor);
        d.optional("g", a.g.as_ref(), graph);
        d.optional("sparse_tensor", a.sparse_tensor.as_ref(), sparse_tensor);
        d.optional("tp", a.tp.as_ref(), type_proto);
        d.field("floats", f32_bits(&a.floats));
        d.field("ints", &a.ints);
        d.field("strings", &a.strings);
        d.each("tensors", &a.tensors, tensor);
        d.each("graphs", &a.graphs, graph);
        d.each("sparse_tensors", &a.sparse_tensors, sparse_tensor);
        d.each("type_protos", &a.type_protos, type_proto);
    }

    fn tensor(d: &mut Dump, t: &pp::TensorProto) {
        d.field("dims", &t.dims);
        d.field("data_type", t.data_type);
        d.optional("segment", t.segment.as_ref(), |d, s| {
            d.field("begin", s.begin);
            d.field("end", s.end);
        });
        d.field("float_data", f32_bits(&t.float_data));
        d.field("int32_data", &t.int32_data);
        let strings: Vec<&[u8]> = t.string_data.iter().map(|s| &s[..]).collect();
        d.field("string_data", strings);
        d.field("int64_data", &t.int64_data);
        d.field("name", &t.name);
        d.field("doc_string", &t.doc_string);
        d.field("raw_data", &t.raw_data[..]);
        d.each("external_data", &t.external_data, entry);
        d.field("data_location", t.data_location);
        d.field("double_data", f64_bits(&t.double_data));
        d.field("uint64_data", &t.uint64_data);
        d.each("metadata_props", &t.metadata_props, entry);
    }

    fn sparse_tensor(d: &mut Dump, s: &pp::SparseTensorProto) {
        d.optional("values", s.values.as_ref(), tensor);
        d.optional("indices", s.indices.as_ref(), tensor);
        d.field("dims", &s.dims);
    }

    fn value_info(d: &mut Dump, v: &pp::ValueInfoProto) {
        d.field("name", &v.name);
        d.optional("type", v.r#type.as_ref(), type_proto);
        d.field("doc_string", &v.doc_string);
        d.each("metadata_props", &v.metadata_props, entry);
    }

    fn shape(d: &mut Dump, s: &pp::TensorShapeProto) {
        d.each("dim", &s.dim, |d, dim| {
            d.field("denotation", &dim.denotation);
            use pp::tensor_shape_proto::dimension::Value;
            match &dim.value {
                Some(Value::DimValue(v)) => d.field("dim_value", v),
                Some(Value::DimParam(p)) => d.field("dim_param", p),
                None => d.field("value", "<unknown>"),
            }
        });
    }

    fn type_proto(d: &mut Dump, t: &pp::TypeProto) {
        use pp::type_proto::Value;
        d.field("denotation", &t.denotation);
        match &t.value {
            Some(Value::TensorType(tt)) => d.nested("tensor_type", |d| {
                d.field("elem_type", tt.elem_type);
                d.optional("shape", tt.shape.as_ref(), shape);
            }),
            Some(Value::SequenceType(s)) => d.nested("sequence_type", |d| {
                d.optional("elem_type", s.elem_type.as_deref(), type_proto);
            }),
            Some(Value::MapType(m)) => d.nested("map_type", |d| {
                d.field("key_type", m.key_type);
                d.optional("value_type", m.value_type.as_deref(), type_proto);
            }),
            Some(Value::OptionalType(o)) => d.nested("optional_type", |d| {
                d.optional("elem_type", o.elem_type.as_deref(), type_proto);
            }),
            Some(Value::SparseTensorType(st)) => d.nested("sparse_tensor_type", |d| {
                d.field("elem_type", st.elem_type);
                d.optional("shape", st.shape.as_ref(), shape);
            }),
            None => d.field("value", "<absent>"),
        }
    }
}

/// Walkers over the rust-protobuf structs; the same shape as `walk_prost`, line for line.
mod walk_rust_protobuf {
    use super::*;

    pub fn model(d: &mut Dump, m: &rp::ModelProto) {
        d.field("ir_version", m.ir_version);
        d.each("opset_import", &m.opset_import, opset);
        d.field("producer_name", &m.producer_name);
        d.field("producer_version", &m.producer_version);
        d.field("domain", &m.domain);
        d.field("model_version", m.model_version);
        d.field("doc_string", &m.doc_string);
        d.optional("graph", m.graph.as_ref(), graph);
        d.each("metadata_props", &m.metadata_props, entry);
        d.each("training_info", &m.training_info, training);
        d.each("functions", &m.functions, function);
    }

    fn opset(d: &mut Dump, o: &rp::OperatorSetIdProto) {
        d.field("domain", &o.domain);
        d.field("version", o.version);
    }

    fn entry(d: &mut Dump, e: &rp::StringStringEntryProto) {
        d.field("key", &e.key);
        d.field("value", &e.value);
    }

    fn training(d: &mut Dump, t: &rp::TrainingInfoProto) {
        d.optional("initialization", t.initialization.as_ref(), graph);
        d.optional("algorithm", t.algorithm.as_ref(), graph);
        d.each("initialization_binding", &t.initialization_binding, entry);
        d.each("update_binding", &t.update_binding, entry);
    }

    fn function(d: &mut Dump, f: &rp::FunctionProto) {
        d.field("name", &f.name);
        d.field("input", &f.input);
        d.field("output", &f.output);
        d.field("attribute", &f.attribute);
        d.each("attribute_proto", &f.attribute_proto, attribute);
        d.each("node", &f.node, node);
        d.field("doc_string", &f.doc_string);
        d.each("opset_import", &f.opset_import, opset);
        d.field("domain", &f.domain);
        d.field("overload", &f.overload);
        d.each("value_info", &f.value_info, value_info);
        d.each("metadata_props", &f.metadata_props, entry);
    }

    fn graph(d: &mut Dump, g: &rp::GraphProto) {
        d.each("node", &g.node, node);
        d.field("name", &g.name);
        d.each("initializer", &g.initializer, tensor);
        d.each("sparse_initializer", &g.sparse_initializer, sparse_tensor);
        d.field("doc_string", &g.doc_string);
        d.each("input", &g.input, value_info);
        d.each("output", &g.output, value_info);
        d.each("value_info", &g.value_info, value_info);
        d.each(
            "quantization_annotation",
            &g.quantization_annotation,
            annotation,
        );
        d.each("metadata_props", &g.metadata_props, entry);
    }

    fn annotation(d: &mut Dump, a: &rp::TensorAnnotation) {
        d.field("tensor_name", &a.tensor_name);
        d.each(
            "quant_parameter_tensor_names",
            &a.quant_parameter_tensor_names,
            entry,
        );
    }

    fn node(d: &mut Dump, n: &rp::NodeProto) {
        d.field("input", &n.input);
        d.field("output", &n.output);
        d.field("name", &n.name);
        d.field("op_type", &n.op_type);
        d.field("domain", &n.domain);
        d.field("overload", &n.overload);
        d.each("attribute", &n.attribute, attribute);
        d.field("doc_string", &n.doc_string);
        d.each("metadata_props", &n.metadata_props, entry);
    }

    fn attribute(d: &mut Dump, a: &rp::AttributeProto) {
        d.field("name", &a.name);
        d.field("ref_attr_name", &a.ref_attr_name);
        d.field("doc_string", &a.doc_string);
        d.field("type", a.type_.value());
        d.field("f", a.f.to_bits());
        d.field("i", a.i);
        d.field("s", &a.s);
        d.optional("t", a.t.as_ref(), tensor);
        d.optional("g", a.g.as_ref(), graph);
        d.optional("sparse_tensor", a.sparse_tensor.as_ref(), sparse_tensor);
        d.optional("tp", a.tp.as_ref(), type_proto);
        d.field("floats", f32_bits(&a.floats));
        d.field("ints", &a.ints);
        d.field("strings", &a.strings);
        d.each("tensors", &a.tensors, tensor);
        d.each("graphs", &a.graphs, graph);
        d.each("sparse_tensors", &a.sparse_tensors, sparse_tensor);
        d.each("type_protos", &a.type_protos, type_proto);
    }

    fn tensor(d: &mut Dump, t: &rp::TensorProto) {
        d.field("dims", &t.dims);
        d.field("data_type", t.data_type);
        d.optional("segment", t.segment.as_ref(), |d, s| {
            d.field("begin", s.begin);
            d.field("end", s.end);
        });
        d.field("float_data", f32_bits(&t.float_data));
        d.field("int32_data", &t.int32_data);
        let strings: Vec<&[u8]> = t.string_data.iter().map(|s| &s[..]).collect();
        d.field("string_data", strings);
        d.field("int64_data", &t.int64_data);
        d.field("name", &t.name);
        d.field("doc_string", &t.doc_string);
        d.field("raw_data", &t.raw_data[..]);
        d.each("external_data", &t.external_data, entry);
        d.field("data_location", t.data_location.value());
        d.field("double_data", f64_bits(&t.double_data));
        d.field("uint64_data", &t.uint64_data);
        d.each("metadata_props", &t.metadata_props, entry);
    }

    fn sparse_tensor(d: &mut Dump, s: &rp::SparseTensorProto) {
        d.optional("values", s.values.as_ref(), tensor);
        d.optional("indices", s.indices.as_ref(), tensor);
        d.field("dims", &s.dims);
    }

    fn value_info(d: &mut Dump, v: &rp::ValueInfoProto) {
        d.field("name", &v.name);
        d.optional("type", v.type_.as_ref(), type_proto);
        d.field("doc_string", &v.doc_string);
        d.each("metadata_props", &v.metadata_props, entry);
    }

    fn shape(d: &mut Dump, s: &rp::TensorShapeProto) {
        d.each("dim", &s.dim, |d, dim| {
            d.field("denotation", &dim.denotation);
            use rp::tensor_shape_proto::dimension::Value;
            match &dim.value {
                Some(Value::DimValue(v)) => d.field("dim_value", v),
                Some(Value::DimParam(p)) => d.field("dim_param", p),
                None => d.field("value", "<unknown>"),
                // The generated enum is non_exhaustive; a variant added by a newer generator would be
                // a difference worth failing on.
                Some(_) => d.field("value", "<unexpected variant>"),
            }
        });
    }

    fn type_proto(d: &mut Dump, t: &rp::TypeProto) {
        use rp::type_proto::Value;
        d.field("denotation", &t.denotation);
        match &t.value {
            Some(Value::TensorType(tt)) => d.nested("tensor_type", |d| {
                d.field("elem_type", tt.elem_type);
                d.optional("shape", tt.shape.as_ref(), shape);
            }),
            Some(Value::SequenceType(s)) => d.nested("sequence_type", |d| {
                d.optional("elem_type", s.elem_type.as_ref(), type_proto);
            }),
            Some(Value::MapType(m)) => d.nested("map_type", |d| {
                d.field("key_type", m.key_type);
                d.optional("value_type", m.value_type.as_ref(), type_proto);
            }),
            Some(Value::OptionalType(o)) => d.nested("optional_type", |d| {
                d.optional("elem_type", o.elem_type.as_ref(), type_proto);
            }),
            Some(Value::SparseTensorType(st)) => d.nested("sparse_tensor_type", |d| {
                d.field("elem_type", st.elem_type);
                d.optional("shape", st.shape.as_ref(), shape);
            }),
            None => d.field("value", "<absent>"),
            Some(_) => d.field("value", "<unexpected variant>"),
        }
    }
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every committed `.onnx` file, sorted so failures are reproducible.
fn committed_models() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .expect("tests/data exists")
        .map(|entry| entry.expect("readable dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "onnx"))
        .collect();
    paths.sort();
    paths
}

fn dump_prost(model: &pp::ModelProto) -> Vec<String> {
    let mut dump = Dump::default();
    walk_prost::model(&mut dump, model);
    dump.lines
}

fn dump_rust_protobuf(model: &rp::ModelProto) -> Vec<String> {
    let mut dump = Dump::default();
    walk_rust_protobuf::model(&mut dump, model);
    dump.lines
}

/// Asserts equal dumps, reporting the first differing line rather than two huge lists.
fn assert_same_dump(what: &str, prost_lines: &[String], rust_protobuf_lines: &[String]) {
    for (line_idx, (a, b)) in prost_lines.iter().zip(rust_protobuf_lines).enumerate() {
        assert_eq!(a, b, "{what}: first difference at line {line_idx}");
    }
    assert_eq!(
        prost_lines.len(),
        rust_protobuf_lines.len(),
        "{what}: dumps differ in length"
    );
}

#[test]
fn prost_and_rust_protobuf_decode_every_committed_file_alike() {
    let paths = committed_models();
    assert!(
        paths.len() >= 5,
        "expected the files of make_models.py, found {paths:?}"
    );
    for path in paths {
        let bytes = std::fs::read(&path).expect("readable test model");
        let loaded = sinter_onnx::load_model(&path).expect("prost decodes the committed model");
        let reference = rp::ModelProto::parse_from_bytes(&bytes).expect("rust-protobuf decodes");
        let prost_lines = dump_prost(&loaded.model);
        let rust_protobuf_lines = dump_rust_protobuf(&reference);
        // A dump of a few lines would mean the walkers saw nothing, and agreement would prove nothing.
        assert!(
            prost_lines.len() > 40,
            "{}: only {} fields dumped",
            path.display(),
            prost_lines.len()
        );
        assert_same_dump(
            &path.display().to_string(),
            &prost_lines,
            &rust_protobuf_lines,
        );
    }
}

#[test]
fn prost_encoding_decodes_alike_with_rust_protobuf() {
    for path in committed_models() {
        let loaded = sinter_onnx::load_model(&path).expect("prost decodes the committed model");
        let reencoded = prost::Message::encode_to_vec(&loaded.model);
        let reference =
            rp::ModelProto::parse_from_bytes(&reencoded).expect("rust-protobuf decodes");
        assert_same_dump(
            &format!("{} re-encoded by prost", path.display()),
            &dump_prost(&loaded.model),
            &dump_rust_protobuf(&reference),
        );
    }
}

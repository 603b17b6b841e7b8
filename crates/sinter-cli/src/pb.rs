//! Reading and writing tensors as serialized ONNX `TensorProto` files (`.pb`), the tensor format of
//! the ONNX backend-test layout (`test_data_set_0/input_0.pb`, `output_0.pb`).
//!
//! Reading decodes with prost and converts with `sinter_onnx::tensor_from_proto`, so a `.pb` input is
//! checked exactly like a model's initializer: element type, dims against the data present, and
//! external data confined to the file's folder. Writing always stores the elements in `raw_data`
//! (little-endian, bool as one byte per element), the form onnx's own `numpy_helper.from_array` writes,
//! so any ONNX tool reads the files back.

use anyhow::{bail, Context, Result};
use prost::Message;
use sinter_ir::{DType, Tensor};
use sinter_onnx::proto::tensor_proto::DataType;
use sinter_onnx::proto::TensorProto;
use sinter_onnx::{tensor_from_proto, ExternalData};
use std::path::Path;

/// Reads a serialized `TensorProto`. The name stored in it is not used: inputs bind by the name given
/// on the command line or by position.
pub fn read_pb(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    read_pb_bytes(&bytes, path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Decodes a serialized `TensorProto`; external data, if any, is resolved inside `dir`.
fn read_pb_bytes(bytes: &[u8], dir: &Path) -> Result<Tensor> {
    let proto = TensorProto::decode(bytes).context("not a valid ONNX TensorProto")?;
    Ok(tensor_from_proto(&proto, &ExternalData::new(dir))?)
}

/// Writes `tensor` as a serialized `TensorProto` named `name`.
pub fn write_pb(path: &Path, name: &str, tensor: &Tensor) -> Result<()> {
    std::fs::write(path, encode_pb(name, tensor)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The ONNX element type of a sinter dtype.
fn onnx_data_type(dtype: DType) -> Result<DataType> {
    Ok(match dtype {
        DType::F32 => DataType::Float,
        DType::F64 => DataType::Double,
        DType::I64 => DataType::Int64,
        DType::I32 => DataType::Int32,
        DType::I8 => DataType::Int8,
        DType::U8 => DataType::Uint8,
        DType::Bool => DataType::Bool,
        other => bail!("dtype {other} has no ONNX TensorProto mapping"),
    })
}

/// The serialized `TensorProto` of `tensor`, elements in `raw_data`.
pub fn encode_pb(name: &str, tensor: &Tensor) -> Result<Vec<u8>> {
    let dims = tensor
        .shape()
        .iter()
        .map(|&dim| i64::try_from(dim).context("a dimension does not fit in an ONNX dim"))
        .collect::<Result<Vec<i64>>>()?;
    let proto = TensorProto {
        dims,
        data_type: onnx_data_type(tensor.dtype())? as i32,
        name: name.to_string(),
        raw_data: tensor.data().to_le_bytes().into(),
        ..Default::default()
    };
    Ok(proto.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_round_trips() {
        let tensors = [
            Tensor::from_vec(
                vec![2, 3],
                vec![0.5f32, -0.0, f32::INFINITY, f32::NAN, 1e-30, -7.25],
            )
            .unwrap(),
            Tensor::from_vec(vec![3], vec![1.0f64 / 3.0, f64::NEG_INFINITY, -0.0]).unwrap(),
            Tensor::from_vec(vec![2, 1], vec![i64::MIN, i64::MAX]).unwrap(),
            Tensor::from_vec(vec![1, 2, 2], vec![i32::MIN, -1, 0, i32::MAX]).unwrap(),
            Tensor::from_vec(vec![3], vec![i8::MIN, 0, i8::MAX]).unwrap(),
            Tensor::from_vec(vec![2, 2], vec![0u8, 1, 128, 255]).unwrap(),
            Tensor::from_vec(vec![2, 2], vec![true, false, false, true]).unwrap(),
            Tensor::scalar(42i64),
            Tensor::from_vec(vec![0, 3], Vec::<f32>::new()).unwrap(),
        ];
        for tensor in &tensors {
            let bytes = encode_pb("t:0", tensor).unwrap();
            assert_eq!(TensorProto::decode(bytes.as_slice()).unwrap().name, "t:0");
            let read = read_pb_bytes(&bytes, Path::new(".")).unwrap();
            assert_eq!(&read, tensor, "{:?}", tensor.ty());
        }
    }

    #[test]
    fn reads_typed_fields() {
        let proto = TensorProto {
            dims: vec![2],
            data_type: DataType::Int64 as i32,
            int64_data: vec![-3, 9],
            ..Default::default()
        };
        let read = read_pb_bytes(&proto.encode_to_vec(), Path::new(".")).unwrap();
        assert_eq!(read, Tensor::from_vec(vec![2], vec![-3i64, 9]).unwrap());
    }

    #[test]
    fn rejects_garbage_and_size_mismatch() {
        let message = format!(
            "{:#}",
            read_pb_bytes(b"\xff\xff\xff", Path::new("."))
                .err()
                .unwrap()
        );
        assert!(
            message.contains("not a valid ONNX TensorProto"),
            "{message}"
        );
        let proto = TensorProto {
            dims: vec![4],
            data_type: DataType::Float as i32,
            raw_data: vec![0u8; 8].into(),
            ..Default::default()
        };
        let message = format!(
            "{:#}",
            read_pb_bytes(&proto.encode_to_vec(), Path::new("."))
                .err()
                .unwrap()
        );
        assert!(message.contains("need"), "{message}");
    }
}

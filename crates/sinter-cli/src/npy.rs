//! Reading and writing tensors as numpy `.npy` files, the exchange format of `sinter run`.
//!
//! Every sinter dtype maps to exactly one numpy dtype: f32 `<f4`, f64 `<f8`, i64 `<i8`, i32 `<i4`,
//! i8 `|i1`, u8 `|u1`, bool `|b1`. Reading accepts either byte order (npyz swaps big-endian data);
//! writing is always little-endian. Only C-order (row-major) arrays are read, because that is the
//! layout of `Tensor`; a Fortran-order file is an error telling how to convert it, never a silently
//! transposed tensor.

use anyhow::{bail, Context, Result};
use npyz::{Deserialize, NpyFile, Order, TypeChar, WriterBuilder};
use sinter_ir::{DType, Tensor, TensorData};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Reads a `.npy` file into a tensor.
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_npy_from(BufReader::new(file)).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes a tensor as a `.npy` file.
pub fn write_npy(path: &Path, tensor: &Tensor) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = BufWriter::new(file);
    write_npy_to(&mut writer, tensor)
        .and_then(|()| writer.flush().map_err(Into::into))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The sinter dtype of a numpy dtype, or `None` for dtypes sinter has no equivalent for.
fn dtype_of(npy_dtype: &npyz::DType) -> Option<DType> {
    let npyz::DType::Plain(type_str) = npy_dtype else {
        return None;
    };
    let dtype = match (type_str.type_char(), type_str.size_field()) {
        (TypeChar::Float, 4) => DType::F32,
        (TypeChar::Float, 8) => DType::F64,
        (TypeChar::Int, 8) => DType::I64,
        (TypeChar::Int, 4) => DType::I32,
        (TypeChar::Int, 1) => DType::I8,
        (TypeChar::Uint, 1) => DType::U8,
        (TypeChar::Bool, 1) => DType::Bool,
        _ => return None,
    };
    Some(dtype)
}

/// The numpy type string written for a sinter dtype.
fn type_str_of(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
        other => bail!("dtype {other} has no .npy mapping"),
    })
}

/// The dims of the `'shape'` tuple in a `.npy` header, if the header can be found and read.
///
/// npyz multiplies the dims without overflow checks, so a crafted header could make it panic; this
/// pre-check lets `read_npy_from` reject such files with an error first. Anything this light parser does
/// not understand is left for npyz to diagnose.
fn header_shape(bytes: &[u8]) -> Option<Vec<u64>> {
    let major_version = *bytes.get(6)?;
    let (len_start, len_size) = if major_version == 1 { (8, 2) } else { (8, 4) };
    let len_bytes = bytes.get(len_start..len_start + len_size)?;
    let header_len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |acc, &byte| (acc << 8) | usize::from(byte));
    let header_start = len_start + len_size;
    let header =
        std::str::from_utf8(bytes.get(header_start..header_start.checked_add(header_len)?)?)
            .ok()?;
    let after_key = &header[header.find("'shape'")?..];
    let tuple = &after_key[after_key.find('(')? + 1..after_key.find(')')?];
    tuple
        .split(',')
        .map(str::trim)
        .filter(|dim| !dim.is_empty())
        .map(|dim| dim.parse::<u64>().ok())
        .collect()
}

/// Reads a `.npy` stream into a tensor.
pub fn read_npy_from(mut reader: impl Read) -> Result<Tensor> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    if let Some(dims) = header_shape(&bytes) {
        if dims
            .iter()
            .try_fold(1u64, |acc, &dim| acc.checked_mul(dim))
            .is_none()
        {
            bail!("the array's shape {dims:?} has more elements than fit in memory");
        }
    }
    let npy = NpyFile::new(bytes.as_slice()).context("not a valid .npy file")?;
    if npy.order() == Order::Fortran {
        bail!(
            "the array is stored in Fortran (column-major) order; sinter reads C-order arrays only \
             (save it with `np.save(path, np.ascontiguousarray(array))`)"
        );
    }
    let npy_dtype = npy.dtype();
    let Some(dtype) = dtype_of(&npy_dtype) else {
        bail!(
            "unsupported numpy dtype {}; sinter reads f32, f64, i64, i32, i8, u8 and bool",
            npy_dtype.descr()
        );
    };
    let shape = npy
        .shape()
        .iter()
        .map(|&dim| usize::try_from(dim).context("a dimension does not fit in memory"))
        .collect::<Result<Vec<usize>>>()?;
    fn elements<T: Deserialize, R: Read>(npy: NpyFile<R>) -> Result<Vec<T>> {
        npy.into_vec::<T>()
            .context("the array data is truncated or malformed")
    }
    let data = match dtype {
        DType::F32 => TensorData::F32(elements(npy)?.into()),
        DType::F64 => TensorData::F64(elements(npy)?.into()),
        DType::I64 => TensorData::I64(elements(npy)?.into()),
        DType::I32 => TensorData::I32(elements(npy)?.into()),
        DType::I8 => TensorData::I8(elements(npy)?.into()),
        DType::U8 => TensorData::U8(elements(npy)?.into()),
        DType::Bool => TensorData::Bool(elements(npy)?.into()),
        other => bail!("dtype {other} has no .npy mapping"),
    };
    Ok(Tensor::new(shape, data)?)
}

/// Writes a tensor as a `.npy` stream (C order, little-endian).
pub fn write_npy_to(writer: impl Write, tensor: &Tensor) -> Result<()> {
    let npy_dtype = npyz::DType::Plain(type_str_of(tensor.dtype())?.parse()?);
    let shape: Vec<u64> = tensor.shape().iter().map(|&dim| dim as u64).collect();
    fn write_all<T: npyz::Serialize + Copy>(
        writer: impl Write,
        npy_dtype: npyz::DType,
        shape: &[u64],
        values: &[T],
    ) -> Result<()> {
        let mut npy = npyz::WriteOptions::<T>::new()
            .dtype(npy_dtype)
            .shape(shape)
            .writer(writer)
            .begin_nd()?;
        npy.extend(values.iter().copied())?;
        npy.finish()?;
        Ok(())
    }
    sinter_ir::with_data!(tensor.data(), values => write_all(writer, npy_dtype, &shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(tensor: &Tensor) -> Tensor {
        let mut bytes = Vec::new();
        write_npy_to(&mut bytes, tensor).unwrap();
        read_npy_from(bytes.as_slice()).unwrap()
    }

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
        assert_eq!(
            tensors
                .iter()
                .map(Tensor::dtype)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            DType::ALL.len()
        );
        for tensor in &tensors {
            assert_eq!(&round_trip(tensor), tensor, "{:?}", tensor.ty());
        }
    }

    /// A version 1.0 `.npy` file laid out as numpy writes it: magic, header length, the header dict
    /// padded with spaces and a newline to a multiple of 64 bytes, then the raw data. Built by hand so
    /// the reader is tested on bytes npyz's writer did not produce.
    fn numpy_file(header_dict: &str, data: &[u8]) -> Vec<u8> {
        let mut header = header_dict.to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn reads_numpy_written_bytes() {
        let data: Vec<u8> = [1i32, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = numpy_file(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }",
            &data,
        );
        let tensor = read_npy_from(bytes.as_slice()).unwrap();
        assert_eq!(
            tensor,
            Tensor::from_vec(vec![1, 3], vec![1i32, 2, 3]).unwrap()
        );
    }

    #[test]
    fn reads_big_endian() {
        let data: Vec<u8> = [1i32, -2, 3].iter().flat_map(|v| v.to_be_bytes()).collect();
        let bytes = numpy_file(
            "{'descr': '>i4', 'fortran_order': False, 'shape': (3,), }",
            &data,
        );
        let tensor = read_npy_from(bytes.as_slice()).unwrap();
        assert_eq!(
            tensor,
            Tensor::from_vec(vec![3], vec![1i32, -2, 3]).unwrap()
        );
    }

    #[test]
    fn rejects_fortran_order() {
        let data: Vec<u8> = [1i32, 2, 3, 4]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = numpy_file(
            "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 2), }",
            &data,
        );
        let message = format!("{:#}", read_npy_from(bytes.as_slice()).unwrap_err());
        assert!(message.contains("Fortran"), "{message}");
    }

    #[test]
    fn rejects_unsupported_dtype() {
        let data = [0u8; 4];
        let bytes = numpy_file(
            "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }",
            &data,
        );
        let message = format!("{:#}", read_npy_from(bytes.as_slice()).unwrap_err());
        assert!(
            message.contains("unsupported numpy dtype '<f2'"),
            "{message}"
        );
    }

    #[test]
    fn rejects_truncated_data() {
        let data = [0u8; 8];
        let bytes = numpy_file(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }",
            &data,
        );
        assert!(read_npy_from(bytes.as_slice()).is_err());
    }

    #[test]
    fn rejects_overflowing_shape() {
        let bytes = numpy_file(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }",
            &[0u8; 4],
        );
        let message = format!("{:#}", read_npy_from(bytes.as_slice()).unwrap_err());
        assert!(message.contains("more elements than fit"), "{message}");
    }

    #[test]
    fn rejects_garbage() {
        let message = format!("{:#}", read_npy_from(&b"hello, world"[..]).unwrap_err());
        assert!(message.contains("not a valid .npy file"), "{message}");
    }
}

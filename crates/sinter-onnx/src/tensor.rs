//! Converting ONNX `TensorProto`s (initializers, constant attributes) into [`sinter_ir::Tensor`]s.
//!
//! A TensorProto holds its data in exactly one place: `raw_data` (little-endian bytes), the typed field
//! that onnx.proto assigns to its element type (`float_data`, `int32_data`, ...), or an external file
//! named by its `external_data` entries. Which one is used, and whether its size matches the dims, is
//! checked before any element is decoded.
//!
//! **Invariant: nothing is allocated from what the dims claim.** The element count is computed with
//! checked multiplication and compared with the size of the data actually present (bytes in
//! `raw_data` or the external slice, or values in the typed field) before any buffer is built. A tiny
//! file whose dims claim 10^12 elements is therefore an error, never an allocation.
//!
//! **External data is confined to the model's folder.** A `location` must be a relative path without
//! `..` components, and its canonical form (symlinks resolved) must lie inside the canonical model
//! folder; `offset` and `length` must lie inside the file. Each external file is memory-mapped once
//! and cached in [`ExternalData`], so many tensors sharing one weights file map it once.
//!
//! **Copies.** Decoding (see `decode.rs`) is zero-copy: `raw_data` and external data are slices of
//! memory mappings. The conversion here keeps it that way where the layout allows: a slice whose
//! address is aligned for its element type becomes a [`sinter_ir::Buffer`] view of the mapping
//! (`TensorData::from_le_bytes_shared`). Misaligned slices (protobuf places `raw_data` at arbitrary
//! offsets), bools and typed fields (`float_data`, ...) are decoded into a copy. An external file is
//! mapped at a page boundary, so a tensor whose `offset` is a multiple of its element size is always
//! viewed in place; onnx's `save_external_data` writes tensors back to back, which keeps f32 weights
//! aligned as long as the tensors before them have whole-word sizes.

use crate::decode::map_file;
use crate::proto::tensor_proto::{DataLocation, DataType};
use crate::proto::TensorProto;
use bytes::Bytes;
use sinter_ir::{DType, Tensor, TensorData};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// Why a TensorProto could not be converted. Every variant names the tensor (`<unnamed>` when its
/// `name` field is empty).
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("not a valid ONNX TensorProto: {0}")]
    Malformed(#[from] prost::DecodeError),
    #[error("tensor `{tensor}` cannot be written as a TensorProto: {reason}")]
    NotEncodable { tensor: String, reason: String },
    #[error("tensor `{tensor}` has ONNX element type {onnx_type}, which sinter does not support")]
    UnsupportedDType {
        tensor: String,
        onnx_type: &'static str,
    },
    #[error("tensor `{tensor}` has unknown ONNX element type code {code}")]
    UnknownDType { tensor: String, code: i32 },
    #[error("tensor `{tensor}` has a negative dim in {dims:?}")]
    NegativeDim { tensor: String, dims: Vec<i64> },
    #[error("tensor `{tensor}`: the size of dims {dims:?} overflows")]
    SizeOverflow { tensor: String, dims: Vec<i64> },
    #[error(
        "tensor `{tensor}`: dims {dims:?} of {onnx_type} need {expected} {unit}, but {source_desc} \
         holds {actual} {unit}"
    )]
    SizeMismatch {
        tensor: String,
        dims: Vec<i64>,
        onnx_type: &'static str,
        source_desc: String,
        unit: &'static str,
        expected: u64,
        actual: u64,
    },
    #[error("tensor `{tensor}` is a segment of a larger tensor, which is not supported")]
    Segmented { tensor: String },
    #[error("tensor `{tensor}` has unknown data_location {code}")]
    UnknownDataLocation { tensor: String, code: i32 },
    #[error("tensor `{tensor}` stores data in both {first} and {second}; exactly one is allowed")]
    ConflictingData {
        tensor: String,
        first: &'static str,
        second: &'static str,
    },
    #[error("tensor `{tensor}` of type {onnx_type} stores values in {found}, expected {expected}")]
    WrongTypedField {
        tensor: String,
        onnx_type: &'static str,
        found: &'static str,
        expected: &'static str,
    },
    #[error(
        "tensor `{tensor}` of type {onnx_type}: value {value} at index {value_idx} of int32_data is \
         out of range"
    )]
    ValueOutOfRange {
        tensor: String,
        onnx_type: &'static str,
        value_idx: usize,
        value: i32,
    },
    #[error("tensor `{tensor}` has external data without a `location` entry")]
    MissingExternalLocation { tensor: String },
    #[error(
        "tensor `{tensor}`: external data entry {key}={value:?} is not a non-negative integer"
    )]
    InvalidExternalField {
        tensor: String,
        key: &'static str,
        value: String,
    },
    #[error(
        "tensor `{tensor}`: external data location {location:?} is rejected: {reason}; it must be a \
         relative path inside the model's folder"
    )]
    ExternalPathEscapes {
        tensor: String,
        location: String,
        reason: &'static str,
    },
    #[error("tensor `{tensor}` uses external data, but the model was not loaded from a file")]
    NoModelDir { tensor: String },
    #[error("tensor `{tensor}`: cannot read external data file {path}: {source}", path = path.display())]
    ExternalIo {
        tensor: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "tensor `{tensor}`: external data range offset={offset} length={length} lies outside \
         {location:?}, which has {file_len} bytes"
    )]
    ExternalRange {
        tensor: String,
        location: String,
        offset: u64,
        length: u64,
        file_len: u64,
    },
}

/// Resolves the external-data files of one model: paths relative to the model's folder, each file
/// memory-mapped at most once.
pub struct ExternalData {
    /// `None` for models decoded from memory, which have no folder to resolve against.
    model_dir: Option<PathBuf>,
    /// Mapped files by their `location` string. A `Mutex` so conversion can take `&self` and run on
    /// several threads.
    files: Mutex<BTreeMap<String, Bytes>>,
}

impl ExternalData {
    /// External data resolved relative to `model_dir`.
    pub fn new(model_dir: impl Into<PathBuf>) -> ExternalData {
        ExternalData {
            model_dir: Some(model_dir.into()),
            files: Mutex::new(BTreeMap::new()),
        }
    }

    /// For models without a folder (decoded from memory): any external reference is an error.
    pub fn unavailable() -> ExternalData {
        ExternalData {
            model_dir: None,
            files: Mutex::new(BTreeMap::new()),
        }
    }

    /// The folder external locations are relative to (empty path when there is none).
    pub fn model_dir(&self) -> &Path {
        self.model_dir.as_deref().unwrap_or(Path::new(""))
    }

    /// How many distinct external files have been mapped so far.
    pub fn n_mapped_files(&self) -> usize {
        self.lock_files().len()
    }

    fn lock_files(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A panic elsewhere while holding the lock cannot leave the map half-updated (insertion is
        // the only mutation), so a poisoned lock is still safe to use.
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The whole contents of the file at `location`, mapped on first use.
    fn file_bytes(&self, tensor: &str, location: &str) -> Result<Bytes, TensorError> {
        let model_dir = self
            .model_dir
            .as_ref()
            .ok_or_else(|| TensorError::NoModelDir {
                tensor: tensor.to_string(),
            })?;
        check_relative_location(tensor, location)?;
        if let Some(bytes) = self.lock_files().get(location) {
            return Ok(bytes.clone());
        }
        let io_error = |path: &Path, source| TensorError::ExternalIo {
            tensor: tensor.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let canonical_dir = model_dir
            .canonicalize()
            .map_err(|source| io_error(model_dir, source))?;
        let joined = model_dir.join(location);
        let canonical_file = joined
            .canonicalize()
            .map_err(|source| io_error(&joined, source))?;
        // The lexical checks above reject `..` and absolute paths; this catches symlinks that point
        // out of the model's folder.
        if !canonical_file.starts_with(&canonical_dir) {
            return Err(TensorError::ExternalPathEscapes {
                tensor: tensor.to_string(),
                location: location.to_string(),
                reason: "it resolves (through a symlink) to a file outside the model's folder",
            });
        }
        let file = File::open(&canonical_file).map_err(|source| io_error(&joined, source))?;
        let metadata = file
            .metadata()
            .map_err(|source| io_error(&joined, source))?;
        if !metadata.is_file() {
            return Err(io_error(
                &joined,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        // Mapping an empty file fails on some platforms; an empty buffer is what it holds anyway.
        let bytes = if metadata.len() == 0 {
            Bytes::new()
        } else {
            map_file(&file).map_err(|source| io_error(&joined, source))?
        };
        // Two threads may map the same file concurrently; the first insertion wins and both
        // mappings show the same bytes.
        let mut files = self.lock_files();
        Ok(files.entry(location.to_string()).or_insert(bytes).clone())
    }
}

impl fmt::Debug for ExternalData {
    /// Lists the mapped files with their sizes rather than their (possibly gigabytes of) contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = self.lock_files();
        let sizes: BTreeMap<&str, usize> = files
            .iter()
            .map(|(location, bytes)| (location.as_str(), bytes.len()))
            .collect();
        f.debug_struct("ExternalData")
            .field("model_dir", &self.model_dir)
            .field("mapped_file_sizes", &sizes)
            .finish()
    }
}

/// Rejects locations that could name a file outside the model's folder without touching the file
/// system: empty, absolute, or containing `..`.
fn check_relative_location(tensor: &str, location: &str) -> Result<(), TensorError> {
    let escapes = |reason| TensorError::ExternalPathEscapes {
        tensor: tensor.to_string(),
        location: location.to_string(),
        reason,
    };
    if location.is_empty() {
        return Err(escapes("it is empty"));
    }
    let path = Path::new(location);
    if path.is_absolute() || path.has_root() {
        return Err(escapes("it is absolute"));
    }
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(escapes("it contains `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(escapes("it is absolute")),
        }
    }
    Ok(())
}

/// The typed TensorProto fields, by their onnx.proto names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TypedField {
    Float,
    Int32,
    String,
    Int64,
    Double,
    Uint64,
}

impl TypedField {
    fn name(self) -> &'static str {
        match self {
            TypedField::Float => "float_data",
            TypedField::Int32 => "int32_data",
            TypedField::String => "string_data",
            TypedField::Int64 => "int64_data",
            TypedField::Double => "double_data",
            TypedField::Uint64 => "uint64_data",
        }
    }

    fn len(self, t: &TensorProto) -> usize {
        match self {
            TypedField::Float => t.float_data.len(),
            TypedField::Int32 => t.int32_data.len(),
            TypedField::String => t.string_data.len(),
            TypedField::Int64 => t.int64_data.len(),
            TypedField::Double => t.double_data.len(),
            TypedField::Uint64 => t.uint64_data.len(),
        }
    }

    const ALL: [TypedField; 6] = [
        TypedField::Float,
        TypedField::Int32,
        TypedField::String,
        TypedField::Int64,
        TypedField::Double,
        TypedField::Uint64,
    ];
}

/// The sinter dtype of an ONNX element type, and the typed field onnx.proto stores it in.
fn supported_dtype(data_type: DataType) -> Option<(DType, TypedField)> {
    Some(match data_type {
        DataType::Float => (DType::F32, TypedField::Float),
        DataType::Double => (DType::F64, TypedField::Double),
        DataType::Int64 => (DType::I64, TypedField::Int64),
        DataType::Int32 => (DType::I32, TypedField::Int32),
        DataType::Int8 => (DType::I8, TypedField::Int32),
        DataType::Uint8 => (DType::U8, TypedField::Int32),
        DataType::Bool => (DType::Bool, TypedField::Int32),
        _ => return None,
    })
}

/// The name an error message uses for a tensor.
fn display_name(t: &TensorProto) -> String {
    if t.name.is_empty() {
        "<unnamed>".to_string()
    } else {
        t.name.clone()
    }
}

/// Converts a TensorProto to an IR tensor, resolving external data through `ctx`.
pub fn tensor_from_proto(t: &TensorProto, ctx: &ExternalData) -> Result<Tensor, TensorError> {
    let tensor = display_name(t);
    let data_type = DataType::try_from(t.data_type).map_err(|_| TensorError::UnknownDType {
        tensor: tensor.clone(),
        code: t.data_type,
    })?;
    let onnx_type = data_type.as_str_name();
    let (dtype, typed_field) =
        supported_dtype(data_type).ok_or_else(|| TensorError::UnsupportedDType {
            tensor: tensor.clone(),
            onnx_type,
        })?;
    if t.segment.is_some() {
        return Err(TensorError::Segmented { tensor });
    }
    let shape = static_shape(&tensor, &t.dims)?;
    let n_elems = shape
        .iter()
        .try_fold(1usize, |acc, &dim| acc.checked_mul(dim))
        .ok_or_else(|| TensorError::SizeOverflow {
            tensor: tensor.clone(),
            dims: t.dims.clone(),
        })?;
    let n_bytes =
        n_elems
            .checked_mul(dtype.size_bytes())
            .ok_or_else(|| TensorError::SizeOverflow {
                tensor: tensor.clone(),
                dims: t.dims.clone(),
            })?;
    let size_mismatch =
        |source_desc: String, unit, expected: usize, actual: usize| TensorError::SizeMismatch {
            tensor: tensor.clone(),
            dims: t.dims.clone(),
            onnx_type,
            source_desc,
            unit,
            expected: expected as u64,
            actual: actual as u64,
        };

    let source = data_source(t, &tensor, onnx_type, typed_field)?;
    let data = match source {
        DataSource::Raw => {
            if t.raw_data.len() != n_bytes {
                return Err(size_mismatch(
                    "raw_data".to_string(),
                    "bytes",
                    n_bytes,
                    t.raw_data.len(),
                ));
            }
            decode_le(dtype, t.raw_data.clone())
        }
        DataSource::External => {
            let (slice, source_desc) = external_slice(t, &tensor, ctx)?;
            if slice.len() != n_bytes {
                return Err(size_mismatch(source_desc, "bytes", n_bytes, slice.len()));
            }
            decode_le(dtype, slice)
        }
        DataSource::Typed => {
            let n_values = typed_field.len(t);
            if n_values != n_elems {
                return Err(size_mismatch(
                    typed_field.name().to_string(),
                    "values",
                    n_elems,
                    n_values,
                ));
            }
            decode_typed(t, &tensor, onnx_type, dtype)?
        }
    };
    let actual_len = data.len();
    Tensor::new(shape, data)
        .map_err(|_| size_mismatch("decoded data".to_string(), "values", n_elems, actual_len))
}

/// Dims as `usize`, rejecting negative ones.
fn static_shape(tensor: &str, dims: &[i64]) -> Result<Vec<usize>, TensorError> {
    dims.iter()
        .map(|&dim| usize::try_from(dim))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| TensorError::NegativeDim {
            tensor: tensor.to_string(),
            dims: dims.to_vec(),
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataSource {
    Raw,
    External,
    Typed,
}

/// Picks the one place the data lives, rejecting tensors that fill more than one or a typed field that
/// does not belong to their element type. A tensor with no data anywhere is `Typed` with zero values,
/// which is right for zero-element tensors and a size mismatch otherwise.
fn data_source(
    t: &TensorProto,
    tensor: &str,
    onnx_type: &'static str,
    typed_field: TypedField,
) -> Result<DataSource, TensorError> {
    let is_external = match DataLocation::try_from(t.data_location) {
        Ok(DataLocation::Default) => false,
        Ok(DataLocation::External) => true,
        Err(_) => {
            return Err(TensorError::UnknownDataLocation {
                tensor: tensor.to_string(),
                code: t.data_location,
            })
        }
    };
    let filled_typed_field = TypedField::ALL.into_iter().find(|field| field.len(t) > 0);
    if let Some(found) = filled_typed_field {
        if found != typed_field {
            return Err(TensorError::WrongTypedField {
                tensor: tensor.to_string(),
                onnx_type,
                found: found.name(),
                expected: typed_field.name(),
            });
        }
    }
    let conflict = |first, second| TensorError::ConflictingData {
        tensor: tensor.to_string(),
        first,
        second,
    };
    let has_raw = !t.raw_data.is_empty();
    match (is_external, has_raw, filled_typed_field) {
        (true, true, _) => Err(conflict("external data", "raw_data")),
        (true, false, Some(field)) => Err(conflict("external data", field.name())),
        (false, true, Some(field)) => Err(conflict("raw_data", field.name())),
        (true, false, None) => Ok(DataSource::External),
        (false, true, None) => Ok(DataSource::Raw),
        (false, false, _) => Ok(DataSource::Typed),
    }
}

/// The bytes an external tensor's `location`, `offset` and `length` entries select, with a
/// description of them for size errors.
fn external_slice(
    t: &TensorProto,
    tensor: &str,
    ctx: &ExternalData,
) -> Result<(Bytes, String), TensorError> {
    let mut location = None;
    let mut offset = None;
    let mut length = None;
    let parse = |key: &'static str, value: &str| {
        value
            .parse::<u64>()
            .map_err(|_| TensorError::InvalidExternalField {
                tensor: tensor.to_string(),
                key,
                value: value.to_string(),
            })
    };
    // Later entries override earlier ones, like repeated keys of a protobuf map. Other keys
    // (`checksum`, producer-specific ones) carry nothing this conversion needs.
    for entry in &t.external_data {
        match entry.key.as_str() {
            "location" => location = Some(entry.value.as_str()),
            "offset" => offset = Some(parse("offset", &entry.value)?),
            "length" => length = Some(parse("length", &entry.value)?),
            _ => {}
        }
    }
    let location = location.ok_or_else(|| TensorError::MissingExternalLocation {
        tensor: tensor.to_string(),
    })?;
    let file = ctx.file_bytes(tensor, location)?;
    let file_len = file.len() as u64;
    let offset = offset.unwrap_or(0);
    let out_of_range = |length| TensorError::ExternalRange {
        tensor: tensor.to_string(),
        location: location.to_string(),
        offset,
        length,
        file_len,
    };
    // Without `length`, the data runs to the end of the file.
    let length = match length {
        Some(length) => length,
        None => file_len
            .checked_sub(offset)
            .ok_or_else(|| out_of_range(0))?,
    };
    let end = offset
        .checked_add(length)
        .filter(|&end| end <= file_len)
        .ok_or_else(|| out_of_range(length))?;
    // Both bounds are at most `file.len()`, a `usize`, so these conversions cannot fail.
    let (start_idx, end_idx) = match (usize::try_from(offset), usize::try_from(end)) {
        (Ok(start_idx), Ok(end_idx)) => (start_idx, end_idx),
        _ => return Err(out_of_range(length)),
    };
    let source_desc = format!("external file {location:?} at offset {offset}");
    Ok((file.slice(start_idx..end_idx), source_desc))
}

/// Decodes little-endian element bytes whose length was already checked against the dims.
/// Little-endian element bytes as tensor data: viewed in place when aligned (`Bytes` clones share the
/// mapping), decoded into a copy otherwise.
fn decode_le(dtype: DType, bytes: Bytes) -> TensorData {
    // The caller checked `bytes.len() == n_elems * size_bytes`, so decoding cannot refuse.
    TensorData::from_le_bytes_shared(dtype, bytes).unwrap_or_else(|| TensorData::zeros(dtype, 0))
}

/// Copies the values of the typed field that holds `dtype`, narrowing `int32_data` for the 8-bit types.
fn decode_typed(
    t: &TensorProto,
    tensor: &str,
    onnx_type: &'static str,
    dtype: DType,
) -> Result<TensorData, TensorError> {
    // onnx.proto stores 8-bit types one value per int32; a value that does not fit is a corrupt file
    // rather than something to wrap silently.
    fn narrow<T: TryFrom<i32>>(
        values: &[i32],
        tensor: &str,
        onnx_type: &'static str,
    ) -> Result<Vec<T>, TensorError> {
        values
            .iter()
            .enumerate()
            .map(|(value_idx, &value)| {
                T::try_from(value).map_err(|_| TensorError::ValueOutOfRange {
                    tensor: tensor.to_string(),
                    onnx_type,
                    value_idx,
                    value,
                })
            })
            .collect()
    }
    Ok(match dtype {
        DType::F32 => TensorData::F32(t.float_data.clone().into()),
        DType::F64 => TensorData::F64(t.double_data.clone().into()),
        DType::I64 => TensorData::I64(t.int64_data.clone().into()),
        DType::I32 => TensorData::I32(t.int32_data.clone().into()),
        DType::I8 => TensorData::I8(narrow(&t.int32_data, tensor, onnx_type)?.into()),
        DType::U8 => TensorData::U8(narrow(&t.int32_data, tensor, onnx_type)?.into()),
        // Like numpy's `astype(bool)` in onnx's own reader: any non-zero value is true.
        DType::Bool => TensorData::Bool(t.int32_data.iter().map(|&v| v != 0).collect()),
        // `supported_dtype` only returns the dtypes above; a new IR dtype needs a mapping here first.
        other => {
            return Err(TensorError::UnsupportedDType {
                tensor: tensor.to_string(),
                onnx_type: other.name(),
            })
        }
    })
}

/// Decodes a serialized `TensorProto`, the tensor file of the ONNX backend-test layout
/// (`input_0.pb`, `output_0.pb`), with the checks of [`tensor_from_proto`]; external data is resolved
/// inside `dir`.
pub fn decode_tensor(bytes: &[u8], dir: &Path) -> Result<Tensor, TensorError> {
    let proto = <TensorProto as prost::Message>::decode(bytes)?;
    tensor_from_proto(&proto, &ExternalData::new(dir))
}

/// Encodes `tensor` as a serialized `TensorProto` named `name`, elements in `raw_data`
/// (little-endian, bool as one byte), the form onnx's `numpy_helper.from_array` writes.
pub fn encode_tensor(name: &str, tensor: &Tensor) -> Result<Vec<u8>, TensorError> {
    let not_encodable = |reason: String| TensorError::NotEncodable {
        tensor: name.to_string(),
        reason,
    };
    let data_type = match tensor.dtype() {
        DType::F32 => DataType::Float,
        DType::F64 => DataType::Double,
        DType::I64 => DataType::Int64,
        DType::I32 => DataType::Int32,
        DType::I8 => DataType::Int8,
        DType::U8 => DataType::Uint8,
        DType::Bool => DataType::Bool,
        other => {
            return Err(not_encodable(format!(
                "dtype {other} has no ONNX element type"
            )))
        }
    };
    let dims = tensor
        .shape()
        .iter()
        .map(|&dim| i64::try_from(dim).map_err(|_| not_encodable(format!("dim {dim} exceeds i64"))))
        .collect::<Result<Vec<i64>, TensorError>>()?;
    let proto = TensorProto {
        dims,
        data_type: data_type as i32,
        name: name.to_string(),
        raw_data: tensor.data().to_le_bytes().into(),
        ..Default::default()
    };
    Ok(prost::Message::encode_to_vec(&proto))
}

#[cfg(test)]
mod tests {
    #[test]
    fn decode_tensor_reads_typed_fields() {
        let proto = TensorProto {
            dims: vec![2],
            data_type: DataType::Int64 as i32,
            int64_data: vec![-3, 9],
            ..Default::default()
        };
        let bytes = prost::Message::encode_to_vec(&proto);
        let read = decode_tensor(&bytes, Path::new(".")).unwrap();
        assert_eq!(read, Tensor::from_vec(vec![2], vec![-3i64, 9]).unwrap());
    }

    #[test]
    fn decode_tensor_rejects_garbage_and_size_mismatch() {
        let message = decode_tensor(b"\xff\xff\xff", Path::new("."))
            .unwrap_err()
            .to_string();
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
        let bytes = prost::Message::encode_to_vec(&proto);
        let message = decode_tensor(&bytes, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(message.contains("need"), "{message}");
    }

    #[test]
    fn encoded_tensors_decode_to_themselves_for_every_dtype() {
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
            let bytes = encode_tensor("t:0", tensor).unwrap();
            let proto = <TensorProto as prost::Message>::decode(bytes.as_slice()).unwrap();
            assert_eq!(proto.name, "t:0");
            let read = decode_tensor(&bytes, Path::new(".")).unwrap();
            assert_eq!(&read, tensor, "{:?}", tensor.ty());
        }
    }

    use super::*;

    #[test]
    fn relative_locations_pass_the_lexical_check() {
        for location in ["w.bin", "./w.bin", "sub/w.bin", "a.b/c..d", "sub/./w.bin"] {
            assert!(check_relative_location("t", location).is_ok(), "{location}");
        }
    }

    #[test]
    fn escaping_locations_fail_the_lexical_check() {
        for (location, reason) in [
            ("", "it is empty"),
            ("/w.bin", "it is absolute"),
            ("..", "it contains `..`"),
            ("../w.bin", "it contains `..`"),
            ("sub/../../w.bin", "it contains `..`"),
            ("sub/..", "it contains `..`"),
        ] {
            let err = check_relative_location("t", location).expect_err(location);
            assert!(
                matches!(err, TensorError::ExternalPathEscapes { reason: r, .. } if r == reason),
                "{location}: {err}"
            );
        }
    }

    #[test]
    fn debug_output_lists_file_sizes_not_contents() {
        let ctx = ExternalData::new("models");
        ctx.lock_files()
            .insert("w.bin".to_string(), Bytes::from(vec![7u8; 1000]));
        let debug = format!("{ctx:?}");
        assert!(debug.contains("\"w.bin\": 1000"), "{debug}");
        assert!(!debug.contains("\\x07"), "{debug}");
    }

    #[test]
    fn an_all_empty_tensor_reads_its_typed_field() {
        let t = TensorProto {
            data_type: DataType::Int64 as i32,
            dims: vec![0],
            ..Default::default()
        };
        assert_eq!(
            data_source(&t, "t", "INT64", TypedField::Int64).expect("source"),
            DataSource::Typed
        );
    }

    #[test]
    fn every_supported_onnx_type_maps_to_the_dtype_of_its_size() {
        let expected = [
            (DataType::Float, DType::F32, 4),
            (DataType::Double, DType::F64, 8),
            (DataType::Int64, DType::I64, 8),
            (DataType::Int32, DType::I32, 4),
            (DataType::Int8, DType::I8, 1),
            (DataType::Uint8, DType::U8, 1),
            (DataType::Bool, DType::Bool, 1),
        ];
        for (data_type, dtype, size) in expected {
            let (mapped, _) = supported_dtype(data_type).expect("supported");
            assert_eq!(
                (mapped, mapped.size_bytes()),
                (dtype, size),
                "{data_type:?}"
            );
        }
        for data_type in [
            DataType::Float16,
            DataType::Bfloat16,
            DataType::String,
            DataType::Int16,
        ] {
            assert_eq!(supported_dtype(data_type), None, "{data_type:?}");
        }
    }
}

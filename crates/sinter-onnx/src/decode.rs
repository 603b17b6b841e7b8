//! Reading an ONNX file into a [`ModelProto`].
//!
//! [`load_model`] memory-maps the file and hands the mapping to prost as a `Bytes` buffer
//! (`Bytes::from_owner`), so every `raw_data` field of the decoded model is a slice of the mapping:
//! **decoding copies no weights**. The mapping lives as long as any of those slices does.
//!
//! After decoding, the few facts every later stage relies on are checked here, once:
//! - the IR version is one this decoder understands (`MIN_IR_VERSION..=MAX_IR_VERSION`);
//! - the model imports the default ONNX operator set (domain `""` or `"ai.onnx"`), whose version picks
//!   the semantics of every standard op;
//! - the model has a graph.
//!
//! Decoding never panics on arbitrary input: prost rejects truncated and malformed messages with an
//! error, and limits message nesting depth (100 levels), so hostile nesting cannot overflow the stack.
//!
//! Memory-mapping has the caveat of every mmap-based loader: if another process truncates or rewrites
//! the file while it is mapped, reads may fault or see the new contents. Model files are treated as
//! immutable while loaded.

use crate::proto::ModelProto;
use crate::tensor::ExternalData;
use bytes::Bytes;
use prost::Message;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The oldest IR version accepted. IR 3 introduced `opset_import`, without which op semantics are
/// ambiguous.
pub const MIN_IR_VERSION: i64 = 3;
/// The newest IR version accepted: the one onnx 1.23 writes. IR 13 (UINT2, INT2) and 14 (FLOAT6E2M3,
/// FLOAT6E3M2, `TypeProto.Opaque` outside ONNX-ML) only add element types, which tensor conversion
/// reports as unsupported, and a type variant that decodes as an unknown (absent) type. Newer
/// versions may add fields with meaning this decoder would silently skip.
pub const MAX_IR_VERSION: i64 = 14;

/// The domain names of the default ONNX operator set.
const DEFAULT_DOMAINS: [&str; 2] = ["", "ai.onnx"];

/// Where the bytes of a model came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelOrigin {
    /// A buffer passed to [`decode_model`].
    Memory,
    /// A file passed to [`load_model`].
    File(PathBuf),
}

impl fmt::Display for ModelOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelOrigin::Memory => f.write_str("<in-memory model>"),
            ModelOrigin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Why a model could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read ONNX model {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ONNX model {origin} is empty (0 bytes)")]
    Empty { origin: ModelOrigin },
    #[error("ONNX model {origin} is not a valid ModelProto: {source}")]
    Protobuf {
        origin: ModelOrigin,
        source: prost::DecodeError,
    },
    #[error(
        "ONNX model {origin} has IR version {found}; supported IR versions are \
         {MIN_IR_VERSION}..={MAX_IR_VERSION}"
    )]
    UnsupportedIrVersion { origin: ModelOrigin, found: i64 },
    #[error(
        "ONNX model {origin} imports no default-domain operator set (domain \"\" or \"ai.onnx\"); \
         imported domains: {found:?}"
    )]
    MissingDefaultOpset {
        origin: ModelOrigin,
        found: Vec<String>,
    },
    #[error("ONNX model {origin} imports the default operator set with invalid version {version}")]
    InvalidOpsetVersion { origin: ModelOrigin, version: i64 },
    #[error("ONNX model {origin} has no graph")]
    MissingGraph { origin: ModelOrigin },
}

/// A model decoded from a file, with what is needed to resolve its external data.
pub struct LoadedModel {
    pub model: ModelProto,
    /// The file the model was read from.
    pub path: PathBuf,
    /// The file's contents: a memory mapping that the model's `raw_data` fields are slices of.
    pub bytes: Bytes,
    /// Resolves and caches external-data files relative to the model's folder.
    pub external: ExternalData,
}

impl fmt::Debug for LoadedModel {
    /// A summary: printing `bytes` (or the model's weights) could mean gigabytes of output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModel")
            .field("path", &self.path)
            .field("n_file_bytes", &self.bytes.len())
            .field("ir_version", &self.model.ir_version)
            .field("opset_import", &self.model.opset_import)
            .field("external", &self.external)
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// The folder holding the model file; external-data locations are relative to it.
    pub fn model_dir(&self) -> &Path {
        self.external.model_dir()
    }
}

/// Decodes and checks a model held in memory. External data cannot be resolved for such a model
/// unless the caller builds an [`ExternalData`] for the folder it came from.
pub fn decode_model(bytes: Bytes) -> Result<ModelProto, DecodeError> {
    decode_checked(bytes, ModelOrigin::Memory)
}

/// Memory-maps `path`, decodes it without copying weights, and checks it.
pub fn load_model(path: &Path) -> Result<LoadedModel, DecodeError> {
    let io_error = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let n_file_bytes = file.metadata().map_err(io_error)?.len();
    let origin = ModelOrigin::File(path.to_path_buf());
    if n_file_bytes == 0 {
        return Err(DecodeError::Empty { origin });
    }
    let bytes = map_file(&file).map_err(io_error)?;
    // Cloning `Bytes` shares the mapping; it does not copy it.
    let model = decode_checked(bytes.clone(), origin)?;
    // A bare file name has an empty parent; external data is then relative to the working directory.
    let model_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(LoadedModel {
        model,
        path: path.to_path_buf(),
        bytes,
        external: ExternalData::new(model_dir),
    })
}

/// Maps a whole file read-only and wraps the mapping in `Bytes`, so slices of it keep it alive.
pub(crate) fn map_file(file: &File) -> std::io::Result<Bytes> {
    // SAFETY: the mapping is read-only and private to this process. Its contents change only if
    // another process modifies the file while it is mapped, which the module doc excludes.
    let mapping = unsafe { memmap2::Mmap::map(file)? };
    Ok(Bytes::from_owner(mapping))
}

fn decode_checked(bytes: Bytes, origin: ModelOrigin) -> Result<ModelProto, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty { origin });
    }
    let model = match ModelProto::decode(bytes) {
        Ok(model) => model,
        Err(source) => return Err(DecodeError::Protobuf { origin, source }),
    };
    check_model(&model, origin)?;
    Ok(model)
}

fn check_model(model: &ModelProto, origin: ModelOrigin) -> Result<(), DecodeError> {
    if !(MIN_IR_VERSION..=MAX_IR_VERSION).contains(&model.ir_version) {
        return Err(DecodeError::UnsupportedIrVersion {
            origin,
            found: model.ir_version,
        });
    }
    match default_opset_version(model) {
        None => {
            return Err(DecodeError::MissingDefaultOpset {
                origin,
                found: model
                    .opset_import
                    .iter()
                    .map(|opset| opset.domain.clone())
                    .collect(),
            })
        }
        Some(version) if version < 1 => {
            return Err(DecodeError::InvalidOpsetVersion { origin, version })
        }
        Some(_) => {}
    }
    if model.graph.is_none() {
        return Err(DecodeError::MissingGraph { origin });
    }
    Ok(())
}

/// The version of the default ONNX operator set the model imports, if any.
pub fn default_opset_version(model: &ModelProto) -> Option<i64> {
    model
        .opset_import
        .iter()
        .find(|opset| DEFAULT_DOMAINS.contains(&opset.domain.as_str()))
        .map(|opset| opset.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{GraphProto, OperatorSetIdProto};

    fn model_with(ir_version: i64, domains: &[(&str, i64)]) -> ModelProto {
        ModelProto {
            ir_version,
            opset_import: domains
                .iter()
                .map(|&(domain, version)| OperatorSetIdProto {
                    domain: domain.to_string(),
                    version,
                })
                .collect(),
            graph: Some(GraphProto::default()),
            ..Default::default()
        }
    }

    #[test]
    fn origin_names_the_file_or_memory() {
        assert_eq!(ModelOrigin::Memory.to_string(), "<in-memory model>");
        assert_eq!(
            ModelOrigin::File(PathBuf::from("m/a.onnx")).to_string(),
            "m/a.onnx"
        );
    }

    #[test]
    fn check_model_accepts_both_default_domain_names() {
        for domain in DEFAULT_DOMAINS {
            let model = model_with(MAX_IR_VERSION, &[("ai.onnx.ml", 2), (domain, 11)]);
            assert!(
                check_model(&model, ModelOrigin::Memory).is_ok(),
                "{domain:?}"
            );
            assert_eq!(default_opset_version(&model), Some(11));
        }
    }

    #[test]
    fn check_model_reports_the_imported_domains() {
        let model = model_with(MIN_IR_VERSION, &[("ai.onnx.ml", 2)]);
        let err = check_model(&model, ModelOrigin::Memory).expect_err("no default domain");
        assert!(
            matches!(&err, DecodeError::MissingDefaultOpset { found, .. } if found == &["ai.onnx.ml"]),
            "{err}"
        );
    }
}

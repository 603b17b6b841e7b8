//! Typed access to a node's attributes.
//!
//! An `AttributeProto` carries every value field at once; its `type` says which one is meaningful.
//! Each getter here checks that type before reading the field, so a file that declares `axes` as a
//! float or `mode` as an int gets an error naming the attribute and both types, never a wrong value
//! or a panic. Attributes whose `type` is UNDEFINED (written by some old exporters) are classified by
//! which field is filled.

use super::NodeError;
use crate::proto::attribute_proto::AttributeType;
use crate::proto::{AttributeProto, NodeProto, TensorProto};

/// The attributes of one node.
#[derive(Clone, Copy)]
pub(crate) struct Attrs<'a> {
    node: &'a NodeProto,
}

/// The declared type of an attribute, or the one its filled field implies when it is UNDEFINED.
fn attr_kind(attr: &AttributeProto) -> AttributeType {
    match AttributeType::try_from(attr.r#type) {
        Ok(AttributeType::Undefined) | Err(_) => {
            if !attr.floats.is_empty() {
                AttributeType::Floats
            } else if !attr.ints.is_empty() {
                AttributeType::Ints
            } else if !attr.strings.is_empty() {
                AttributeType::Strings
            } else if attr.t.is_some() {
                AttributeType::Tensor
            } else if attr.g.is_some() {
                AttributeType::Graph
            } else if !attr.s.is_empty() {
                AttributeType::String
            } else if attr.f != 0.0 {
                AttributeType::Float
            } else {
                AttributeType::Int
            }
        }
        Ok(kind) => kind,
    }
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(node: &'a NodeProto) -> Attrs<'a> {
        Attrs { node }
    }

    /// The attribute named `name`; the last one wins if a (malformed) node repeats it.
    fn find(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().rev().find(|a| a.name == name)
    }

    /// Whether the node has the attribute at all.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// The attribute if it has type `expected`; an error naming both types otherwise.
    fn typed(
        &self,
        name: &str,
        expected: AttributeType,
    ) -> Result<Option<&'a AttributeProto>, NodeError> {
        let Some(attr) = self.find(name) else {
            return Ok(None);
        };
        let kind = attr_kind(attr);
        if kind != expected {
            return Err(NodeError::Invalid(format!(
                "attribute `{name}` must be {}, got {}",
                expected.as_str_name(),
                kind.as_str_name()
            )));
        }
        Ok(Some(attr))
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, NodeError> {
        Ok(self.typed(name, AttributeType::Int)?.map(|a| a.i))
    }

    pub(crate) fn int_or(&self, name: &str, default: i64) -> Result<i64, NodeError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// An int attribute used as a flag: any non-zero value is true.
    pub(crate) fn flag_or(&self, name: &str, default: bool) -> Result<bool, NodeError> {
        Ok(self.int(name)?.map_or(default, |v| v != 0))
    }

    pub(crate) fn float(&self, name: &str) -> Result<Option<f32>, NodeError> {
        Ok(self.typed(name, AttributeType::Float)?.map(|a| a.f))
    }

    pub(crate) fn float_or(&self, name: &str, default: f32) -> Result<f32, NodeError> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, NodeError> {
        Ok(self
            .typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    pub(crate) fn ints_or_empty(&self, name: &str) -> Result<Vec<i64>, NodeError> {
        Ok(self.ints(name)?.unwrap_or_default())
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, NodeError> {
        Ok(self
            .typed(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, NodeError> {
        match self.typed(name, AttributeType::String)? {
            None => Ok(None),
            Some(attr) => utf8(name, &attr.s).map(Some),
        }
    }

    pub(crate) fn string_or(&self, name: &str, default: &str) -> Result<String, NodeError> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub(crate) fn strings(&self, name: &str) -> Result<Option<Vec<String>>, NodeError> {
        match self.typed(name, AttributeType::Strings)? {
            None => Ok(None),
            Some(attr) => attr
                .strings
                .iter()
                .map(|s| utf8(name, s))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
        }
    }

    pub(crate) fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, NodeError> {
        match self.typed(name, AttributeType::Tensor)? {
            None => Ok(None),
            Some(attr) => match &attr.t {
                Some(t) => Ok(Some(t)),
                None => Err(NodeError::Invalid(format!(
                    "attribute `{name}` is of type TENSOR but holds no tensor"
                ))),
            },
        }
    }
}

fn utf8(name: &str, bytes: &[u8]) -> Result<String, NodeError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| NodeError::Invalid(format!("attribute `{name}` is not valid UTF-8")))
}

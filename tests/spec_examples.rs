//! Spec examples (being written).

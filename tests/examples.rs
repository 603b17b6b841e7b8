//! DSL examples run as tests (being written).

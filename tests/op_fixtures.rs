//! Op fixtures (being written).
fn main() {}

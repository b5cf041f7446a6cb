//! Experiment model: the manifest types, typed quantities, parsing with located errors,
//! and semantic validation. Pure data: nothing here touches the system.
pub mod check;
pub mod diag;
pub mod io;
pub mod local;
pub mod parse;
pub mod quantity;
pub mod spec;
pub mod validate;

pub use parse::{parse_experiment, Diagnostic, FieldPath};
pub use quantity::{ByteRate, ByteSize, Duration, Percent, Rate};
pub use spec::*;

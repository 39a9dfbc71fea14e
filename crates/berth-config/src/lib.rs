//! berth's configuration, from two sources:
//! - the environment (`BERTH_*`, with `*_FILE` for every secret): [`Config`], documented in
//!   [`VARIABLES`], which the README's table mirrors (a test keeps them in step);
//! - the optional seed YAML imported on first start, and written back by `berth export`:
//!   [`seed`].
//!
//! Architecture invariant: parsing and validation only; this crate reads files it is pointed
//! at, and touches neither the database nor the network.

mod env;
pub mod seed;

pub use env::{Config, ConfigError, LogFormat, VARIABLES, VarDoc};

//! `--config FILE`, the one option `run`, `check`, `report` and `store` share: its own module
//! so `cli.rs` and `store_cli.rs` both take it from here, neither from the other.

use std::path::PathBuf;

use clap::Args;

/// `--config`, shared by `run`, `check`, `report` and `store`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The config file (default: ./smsflow.toml if present, else built-in defaults).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub path: Option<PathBuf>,
}

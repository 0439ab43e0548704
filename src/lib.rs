//! The root package of hoard: the two reference binaries, `hoard` (the compiler wrapper and
//! control commands) and `hoard-server`, plus what they share: reading the configuration
//! from the environment and setting up logging. Everything else lives in the `crates/`
//! libraries; the mains stay thin.

pub mod cache_management;
pub mod config;
pub mod config_file;
pub mod config_notice;
pub mod config_report;
pub mod help_text;
pub mod logging;
pub mod masquerade;
pub mod path_settings;
pub mod report;
pub mod stats_markdown;
pub mod stats_table;

//! Rust builds through hoard: a real cargo workspace built cold and warm ([`cargo`]), and
//! compiles that fail ([`failures`]).

pub(crate) mod cargo;
mod failures;

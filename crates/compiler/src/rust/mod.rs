//! rustc under cargo. A crate compile is classified from its arguments ([`args`]), its outputs
//! named the way rustc names them ([`outputs`]), and it is keyed without running rustc: a
//! manifest under the common key ([`key`]: toolchain, target, arguments, `--extern` crates,
//! native libraries, linker, cargo's environment) lists candidates naming every source file
//! and `env!` variable from the dependency file the compile itself wrote ([`inputs`],
//! [`candidate`]). Paths are normalised ([`paths`]) and remapped in the outputs so clones at
//! other paths share hits, unless the compile's `HOARD_PATHS` is `exact` ([`compile`]). The
//! family's steps in the one pipeline are [`family`]; nothing here knows gcc or clang.

mod args;
mod candidate;
mod compile;
mod explain;
mod failure;
mod family;
mod identity;
mod inputs;
mod key;
mod outputs;
mod paths;
mod standalone;

pub(crate) use compile::{RustCompile, classify, rustc_program};
pub(crate) use explain::explain_inputs;
pub(crate) use family::RustFamily;

//! gcc and clang: detecting the compiler ([`detect`]), expanding response files and parsing
//! the arguments ([`args`]), classifying a command ([`classify`]), keying it ([`key`]: every
//! path that goes into a C key goes in there), the inputs a manifest candidate lists
//! ([`candidate`]), and the family's steps in the one pipeline ([`family`]). Nothing here
//! knows rustc; the pipeline knows this module only through [`CFamily`].

mod args;
mod candidate;
mod classify;
mod detect;
mod explain;
mod family;
mod key;
mod language;
mod paths;
mod probe;
mod response_file;
mod search;

pub(crate) use classify::{CCompile, classify};
pub(crate) use explain::explain_inputs;
pub(crate) use family::CFamily;

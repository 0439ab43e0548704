//! The gcc/clang argument parser (and the response-file splitter) through `classify`: any
//! argument list is classified or refused with a reason, never a panic.

#![no_main]

#[path = "args_common.rs"]
mod args_common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    args_common::classify_bytes("gcc", data);
});

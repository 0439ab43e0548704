//! The dispatcher between compiler families: which family a command belongs to, and the
//! [`CacheableCompile`] the pipeline runs. It knows every family, so it sits above them.

use std::path::Path;

use hoard_storage::OutputPath;

use crate::c::CCompile;
use crate::command::{CommandLine, PipelineConfig};
use crate::compile::Compile;
use crate::language::Language;
use crate::program::CompilerKind;
use crate::reason::NonCacheable;
use crate::rust::RustCompile;

/// A command that compiles one source (a C-family file, or a Rust crate root) and that the
/// pipeline can serve from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheableCompile {
    pub(crate) base: Compile,
    pub(crate) kind: Kind,
}

/// What the pipeline needs to know per compiler family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// gcc or clang.
    C(Box<CCompile>),
    /// rustc.
    Rust(Box<RustCompile>),
}

impl CacheableCompile {
    /// The language the source is compiled as.
    pub fn language(&self) -> Language {
        self.base.language
    }

    /// The files the compile writes, with absolute paths: for C `object`, and `dep` with
    /// `-MD`; for rustc one per `--emit` kind and crate type.
    pub fn outputs(&self) -> &[OutputPath] {
        &self.base.outputs
    }

    /// The command as the wrapper was asked to run it.
    pub fn command(&self) -> &CommandLine {
        &self.base.command
    }

    /// The crate a rustc compile builds (`--crate-name`); `None` for C and C++.
    pub fn crate_name(&self) -> Option<&str> {
        match &self.kind {
            Kind::C(_) => None,
            Kind::Rust(rust) => rust.args.crate_name.as_deref(),
        }
    }

    /// Which compiler family runs the compile.
    pub fn compiler_kind(&self) -> CompilerKind {
        match &self.kind {
            Kind::C(c) => c.compiler.kind,
            Kind::Rust(_) => CompilerKind::Rustc,
        }
    }

    /// The compiler binary that will be run, absolute.
    pub fn compiler_path(&self) -> &Path {
        match &self.kind {
            Kind::C(c) => &c.compiler.path,
            Kind::Rust(rust) => &rust.rustc_path,
        }
    }

    /// Asks the pipeline to copy the compiler's standard error to this process's standard
    /// error while a compile runs (rustc only), instead of leaving all of it to the caller.
    /// cargo starts dependent crates when rustc reports on standard error that the metadata
    /// is written, so a wrapper that printed only at the end would lose cargo's pipelining.
    /// The outcome's `stderr_streamed` says when this happened.
    pub fn stream_stderr(&mut self, on: bool) {
        self.base.stream_stderr = on;
    }
}

/// Decides whether `cmd` is a cacheable compile. Costs a few `stat`s, reading any response
/// files and, once per compiler binary, identifying the compiler.
pub fn classify(
    cmd: &CommandLine,
    config: &PipelineConfig,
) -> Result<CacheableCompile, NonCacheable> {
    if let Some(rustc) = crate::rust::rustc_program(&cmd.program, &cmd.cwd, &cmd.env) {
        let (base, rust) = crate::rust::classify(cmd, config, rustc)?;
        return Ok(CacheableCompile {
            base,
            kind: Kind::Rust(Box::new(rust)),
        });
    }
    let (base, c) = crate::c::classify(cmd, config)?;
    Ok(CacheableCompile {
        base,
        kind: Kind::C(Box::new(c)),
    })
}

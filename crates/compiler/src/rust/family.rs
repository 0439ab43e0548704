//! rustc as a [`Family`]: the manifest is kept under the common key; a candidate that fits
//! names the result, fetched with the dependency file coming back normalised and rewritten
//! for this build, as is the replayed stderr. Otherwise rustc compiles, streaming stderr if
//! asked, and the candidate comes from the dependency file it just wrote. No rustc runs on a
//! hit, and only the compile itself on a miss. Some failures are stored too ([`failure`]).
//!
//! [`failure`]: super::failure

use std::borrow::Cow;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use hoard_storage::{CacheKey, OutputPath};
use serde_bytes::ByteBuf;

use super::args::without_outputs;
use super::candidate::Candidate;
use super::compile::RustCompile;
use super::failure::{self, NotStorable};
use super::inputs::{self, Inputs, InputsError};
use super::key::{self, KeyError};
use super::outputs::DEP_INFO_ROLE;
use crate::cache::CacheError;
use crate::compile::{Compile, write_atomically};
use crate::digest::Digests;
use crate::digest_table::DigestTable;
use crate::family::{Direct, Family, Plan, Stored};
use crate::path_policy::PathMode;
use crate::recipe::MissProbe;
use crate::result::CompileResult;
use crate::runner::{self, Run};
use crate::session::Session;

/// Why a rustc compile was not keyed or recorded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RustNotRecorded {
    /// An input of the common key could not be read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The files or variables the compile read could not be listed.
    #[error(transparent)]
    Inputs(#[from] InputsError),
    /// A failed compile the cache may not keep.
    #[error("failure not stored: {0}")]
    Failure(#[from] NotStorable),
    /// A dependency file or output could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No temporary dependency file for the dependency-file pass.
    #[error("temporary dependency file: {0}")]
    Temporary(#[source] std::io::Error),
    /// The dependency-file pass failed.
    #[error("the dependency-file pass failed: {0}")]
    DepInfoPass(String),
    /// The dependency file could not be copied aside, normalised, for storing.
    #[error("dependency file: {0}")]
    Aside(#[source] std::io::Error),
}

/// One rustc compile going through the pipeline.
pub(crate) struct RustFamily<'a> {
    rust: &'a RustCompile,
}

/// A dependency file moved aside: the cache reads it from, or writes it to, `temp` while the
/// build's `.d` holds the version with this build's paths.
struct DepInfoAside {
    real: PathBuf,
    temp: tempfile::TempPath,
}

impl<'a> RustFamily<'a> {
    /// The rustc family's part of one compile.
    pub(crate) fn new(rust: &'a RustCompile) -> Self {
        Self { rust }
    }

    /// Records the digests of the crates this compile delivered (rlib, rmeta, proc-macro
    /// and dylib files), so each crate that names one with `--extern` next finds it in the
    /// machine-wide memo instead of hashing it again: once per output, not once per reader.
    /// `known` holds the outputs' digests when the cache delivered them (a hit), in the
    /// order of the outputs; then nothing is read back.
    fn record_delivered_digests(compile: &Compile, known: &[[u8; 32]]) {
        let Some(table) = DigestTable::open(&compile.state_dir) else {
            return;
        };
        let readable = |path: &Path| {
            path.extension()
                .is_some_and(|e| e == "rlib" || e == "rmeta" || e == "so" || e == "dylib")
        };
        let outputs = &compile.outputs;
        let known = (known.len() == outputs.len()).then_some(known);
        for (i, output) in outputs.iter().enumerate() {
            if !readable(&output.path) {
                continue;
            }
            let recorded = match known {
                Some(digests) => table.record_known(&output.path, &digests[i]),
                None => table.record_delivered(&output.path).map(|_| ()),
            };
            if let Err(e) = recorded {
                tracing::debug!(path = %output.path.display(), error = %e, "digest not recorded");
            }
        }
    }

    /// A fresh temporary path beside the dependency file, if there is one.
    fn aside(&self) -> std::io::Result<Option<DepInfoAside>> {
        let Some(real) = &self.rust.dep_info else {
            return Ok(None);
        };
        let dir = real.parent().unwrap_or(Path::new("/"));
        let temp = tempfile::Builder::new()
            .prefix(".hoard-")
            .suffix(".d")
            .tempfile_in(dir)?
            .into_temp_path();
        Ok(Some(DepInfoAside {
            real: real.clone(),
            temp,
        }))
    }

    /// [`Self::aside`] when `roles` (a stored failure's, or all for a success) holds the
    /// dependency file's.
    fn aside_for(&self, roles: Option<&[String]>) -> std::io::Result<Option<DepInfoAside>> {
        match roles {
            Some(roles) if !roles.iter().any(|r| r == DEP_INFO_ROLE) => Ok(None),
            _ => self.aside(),
        }
    }

    /// The outputs a candidate's result has (`roles`: a stored failure's only those it
    /// wrote), with the dependency file's role pointed at the temporary file.
    fn outputs_with(
        compile: &Compile,
        roles: Option<&[String]>,
        aside: Option<&DepInfoAside>,
    ) -> Vec<OutputPath> {
        compile
            .outputs
            .iter()
            .filter(|o| roles.is_none_or(|roles| roles.contains(&o.role)))
            .map(|o| match aside {
                Some(aside) if o.role == DEP_INFO_ROLE => {
                    OutputPath::new(o.role.clone(), aside.temp.to_path_buf())
                }
                _ => o.clone(),
            })
            .collect()
    }

    /// The candidate for the compile that just ran: every file and variable its dependency
    /// file names, and any root an output embeds verbatim.
    fn success_candidate(
        &self,
        session: &Session<'_>,
        common: &CacheKey,
        dep_info: &[u8],
    ) -> Result<Candidate, RustNotRecorded> {
        let compile = session.compile;
        let command = &compile.command;
        let roots = &self.rust.roots;
        let Inputs { files, env } =
            inputs::from_dep_info(dep_info, &command.cwd, &command.env, roots, session.started)?;
        let mut pinned = Vec::new();
        for output in &compile.outputs {
            if output.role == DEP_INFO_ROLE {
                continue;
            }
            let data = std::fs::read(&output.path).map_err(|source| RustNotRecorded::Read {
                path: output.path.clone(),
                source,
            })?;
            for leak in roots.leaked_in(&data) {
                if !pinned.iter().any(|p: &ByteBuf| **p == leak) {
                    pinned.push(ByteBuf::from(leak));
                }
            }
        }
        let mut candidate = Candidate {
            files,
            env,
            pinned,
            result_key: [0; 32],
            failed: None,
        };
        candidate.result_key = *key::result_key(common, &candidate).as_bytes();
        Ok(candidate)
    }

    /// When the command did not ask for a dependency file (cargo always does), learns the
    /// sources with a second rustc run that writes only one, to a temporary file: the
    /// command's arguments without its `--emit` and `-o`, plus `--emit=dep-info=<temp>`.
    async fn dep_info_pass(&self, compile: &Compile) -> Result<Vec<u8>, RustNotRecorded> {
        let temp = tempfile::Builder::new()
            .prefix("hoard-dep-info-")
            .suffix(".d")
            .tempfile()
            .map_err(RustNotRecorded::Temporary)?
            .into_temp_path();
        let mut args: Vec<OsString> = self.rust.remap.clone();
        args.extend(without_outputs(&self.rust.expanded));
        let mut emit = OsString::from("--emit=dep-info=");
        emit.push(&temp);
        args.push(emit);
        let result = runner::run(Run {
            program: &self.rust.rustc_path,
            args: &args,
            cmd: &compile.command,
            shown: self.rust.rustc_path.as_os_str(),
            stream: false,
        })
        .await;
        if result.exit_status != 0 {
            let stderr = String::from_utf8_lossy(&result.stderr).trim().to_owned();
            return Err(RustNotRecorded::DepInfoPass(stderr));
        }
        read(&temp)
    }
}

impl Family for RustFamily<'_> {
    type Candidate = Candidate;
    type NotRecorded = RustNotRecorded;
    const MISS_PROBE: MissProbe = key::MISS_PROBE;

    fn paths_kept(&self, compile: &Compile) -> Option<&'static str> {
        // Shared mode remaps, so its keys are path-independent; exact mode keys the paths.
        (PathMode::from_env(&compile.command.env) == PathMode::Exact).then_some("paths_exact")
    }

    fn manifest_key(&mut self, compile: &Compile) -> Result<Option<CacheKey>, RustNotRecorded> {
        Ok(Some(key::common(
            self.rust,
            &compile.command,
            &compile.state_dir,
        )?))
    }

    fn fits(&self, compile: &Compile, candidate: &Candidate, digests: &mut Digests) -> bool {
        let command = &compile.command;
        candidate.fits(&command.cwd, &command.env, &self.rust.roots, digests)
    }

    /// On a hit the outputs are in place, the `.d` rewritten for this build and the
    /// stderr's paths made this build's. A stored failure writes only the outputs its
    /// compile wrote.
    async fn fetch(
        &self,
        session: &mut Session<'_>,
        candidate: &Candidate,
    ) -> Result<Option<CompileResult>, CacheError> {
        let roles = candidate.failed.as_deref();
        let aside = self.aside_for(roles).map_err(|e| {
            CacheError::new(format!("temporary dependency file beside the output: {e}"))
        })?;
        let outputs = Self::outputs_with(session.compile, roles, aside.as_ref());
        let key = crate::manifest::Candidate::result_key(candidate);
        let Some(mut result) = session.lookup(&key, &outputs).await? else {
            return Ok(None);
        };
        let roots = &self.rust.roots;
        if let Some(aside) = aside {
            let restored = std::fs::read(&aside.temp)
                .and_then(|normalised| write_atomically(&aside.real, &roots.resolve(&normalised)));
            if let Err(e) = restored {
                return Err(CacheError::new(format!(
                    "rewriting dependency file {}: {e}",
                    aside.real.display()
                )));
            }
        }
        result.stdout = roots.resolve(&result.stdout);
        result.stderr = roots.resolve(&result.stderr);
        Ok(Some(result))
    }

    fn hit(&self, compile: &Compile, candidate: &Candidate, result: &CompileResult) {
        if candidate.failed.is_none() {
            Self::record_delivered_digests(compile, &result.output_digests);
        }
    }

    async fn plan(&mut self, _: &mut Session<'_>, _: Option<&Direct<Candidate>>) -> Plan {
        Plan::AfterCompile
    }

    /// Runs rustc with the remapping options first (the command's own, later, win).
    async fn compile_plain(&self, session: &mut Session<'_>) -> CompileResult {
        let compile = session.compile;
        let mut args: Vec<OsString> = self.rust.remap.clone();
        args.extend(compile.command.args.iter().cloned());
        let path = &self.rust.rustc_path;
        session
            .run(path, &args, path.as_os_str(), compile.stream_stderr)
            .await
    }

    async fn candidate(
        &mut self,
        session: &mut Session<'_>,
        direct: &Direct<Candidate>,
        _: Option<&CacheKey>,
    ) -> Result<Candidate, RustNotRecorded> {
        let dep_info = match &self.rust.dep_info {
            Some(path) => read(path)?,
            None => self.dep_info_pass(session.compile).await?,
        };
        self.success_candidate(session, &direct.key, &dep_info)
    }

    fn failure_candidate(
        &self,
        session: &Session<'_>,
        direct: &Direct<Candidate>,
        result: &CompileResult,
    ) -> Result<Option<Candidate>, RustNotRecorded> {
        Ok(Some(failure::candidate(
            self.rust,
            session,
            &direct.key,
            result,
        )?))
    }

    /// The result with this build's roots made placeholders, and the dependency file (if
    /// the result has one) copied aside the same way.
    fn stored<'c>(
        &self,
        compile: &'c Compile,
        candidate: &Candidate,
        result: &'c CompileResult,
    ) -> Result<Stored<'c>, RustNotRecorded> {
        let roles = candidate.failed.as_deref();
        let aside = self.aside_for(roles).map_err(RustNotRecorded::Aside)?;
        if let Some(aside) = &aside {
            let text = std::fs::read(&aside.real).map_err(RustNotRecorded::Aside)?;
            std::fs::write(&aside.temp, self.rust.roots.normalise(&text))
                .map_err(RustNotRecorded::Aside)?;
        }
        let roots = &self.rust.roots;
        let normalised = CompileResult {
            stdout: roots.normalise(&result.stdout),
            stderr: roots.normalise(&result.stderr),
            exit_status: result.exit_status,
            compile_time: result.compile_time,
            output_digests: Vec::new(),
        };
        Ok(Stored {
            outputs: Cow::Owned(Self::outputs_with(compile, roles, aside.as_ref())),
            result: Cow::Owned(normalised),
            scratch: aside.map(|a| a.temp),
        })
    }

    fn after_store(&self, compile: &Compile, candidate: &Candidate) {
        if candidate.failed.is_none() {
            Self::record_delivered_digests(compile, &[]);
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, RustNotRecorded> {
    std::fs::read(path).map_err(|source| RustNotRecorded::Read {
        path: path.to_path_buf(),
        source,
    })
}

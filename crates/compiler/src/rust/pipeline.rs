//! The cached-compile pipeline for rustc: look the manifest up under the common key; if a
//! candidate matches, fetch its result (the dependency file comes back normalised and is
//! rewritten for this build, as is the replayed stderr). Otherwise compile, streaming
//! stderr if asked, and record the result and a candidate from the dependency file rustc
//! just wrote. No rustc runs on a hit, and only the compile itself on a miss.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

use hoard_storage::{CacheKey, OutputPath};
use serde_bytes::ByteBuf;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::inputs::{self, Inputs};

mod failure;
use super::manifest::{Candidate, Manifest};
use super::outputs::DEP_INFO_ROLE;
use super::{RustCompile, key};
use crate::manifest::FileDigests;
use crate::pipeline::PhaseClock;
use crate::{
    ArtifactCache, CacheError, CacheStatus, CacheableCompile, CompileOutcome, CompileResult,
};

/// Runs a rustc compile through `cache`.
pub(crate) async fn run(
    compile: &CacheableCompile,
    rust: &RustCompile,
    cache: &dyn ArtifactCache,
) -> CompileOutcome {
    Attempt {
        compile,
        rust,
        cache,
        started: SystemTime::now(),
        cache_errors: Vec::new(),
        streamed: false,
        clock: PhaseClock::start(),
    }
    .run()
    .await
}

struct Attempt<'a> {
    compile: &'a CacheableCompile,
    rust: &'a RustCompile,
    cache: &'a dyn ArtifactCache,
    started: SystemTime,
    cache_errors: Vec<CacheError>,
    streamed: bool,
    clock: PhaseClock,
}

/// A dependency file moved aside: the cache reads it from, or writes it to, `temp` while the
/// build's `.d` holds the version with this build's paths.
struct DepInfoAside {
    real: PathBuf,
    temp: tempfile::TempPath,
}

impl Attempt<'_> {
    async fn run(mut self) -> CompileOutcome {
        let command = self.compile.command();
        let common = match key::common(self.rust, command) {
            Ok(common) => common,
            Err(e) => {
                // A missing `--extern` or linker: rustc reports what is wrong.
                tracing::debug!("rust compile not keyed: {e}");
                let result = self.compile_now().await;
                return self.finish(result, CacheStatus::Miss);
            }
        };
        let mut manifest = match self.clock.lookup(self.cache.get_manifest(&common)).await {
            Ok(Some(bytes)) => Manifest::decode(&bytes),
            Ok(None) => Manifest::default(),
            Err(e) => return self.fallback(e).await,
        };
        let found = manifest.find(
            &command.cwd,
            &command.env,
            &self.rust.roots,
            &mut FileDigests::with_table(&self.rust.state_dir),
        );
        tracing::debug!(
            crate_name = self.rust.args.crate_name.as_deref().unwrap_or("?"),
            %common,
            candidates = manifest.len(),
            found = found.is_some(),
            "rust manifest lookup"
        );
        if let Some(found) = &found {
            match self.fetch(&found.result_key, found.failed.as_deref()).await {
                Ok(Some(result)) => {
                    if found.failed.is_none() {
                        self.record_delivered_digests(&result.output_digests);
                    }
                    return self.finish(result, CacheStatus::Hit { direct: true });
                }
                // Evicted: compile and store it again.
                Ok(None) => {}
                Err(e) => return self.fallback(e).await,
            }
        }
        let result = self.compile_now().await;
        if result.exit_status == 0 {
            if found.is_none() {
                self.count_miss(&common).await;
            }
            self.record(&common, &mut manifest, &result).await;
        } else {
            match self.failure_candidate(&common, &result) {
                Ok(candidate) => {
                    self.record_failure(&common, &mut manifest, candidate, &result)
                        .await;
                }
                Err(why) => tracing::debug!("failed rust compile not stored: {why}"),
            }
        }
        self.finish(result, CacheStatus::Miss)
    }

    /// Records the digests of the crates this compile delivered (rlib, rmeta, proc-macro
    /// and dylib files), so each crate that names one with `--extern` next finds it in the
    /// machine-wide memo instead of hashing it again: once per output, not once per reader.
    /// `known` holds the outputs' digests when the cache delivered them (a hit), in the
    /// order of the outputs; then nothing is read back.
    fn record_delivered_digests(&self, known: &[[u8; 32]]) {
        let Some(table) = crate::digest_table::DigestTable::open(&self.rust.state_dir) else {
            return;
        };
        let readable = |path: &std::path::Path| {
            path.extension()
                .is_some_and(|e| e == "rlib" || e == "rmeta" || e == "so" || e == "dylib")
        };
        let outputs = self.compile.outputs();
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

    /// Reports the miss of a successful compile no candidate named, by looking up a key
    /// nothing is stored under: every placement counts misses where it counts lookups (a v2
    /// server on `CacheGet`). A compile that fails is not a miss (failures are never stored,
    /// so no cache could have served it): cargo's build scripts probe rustc with compiles
    /// meant to fail, and a warm build must not report those as misses.
    async fn count_miss(&mut self, common: &CacheKey) {
        let key = key::unknown_sources_key(common);
        // No outputs are named: nothing may be written over what was just compiled.
        let probed = self
            .clock
            .lookup(self.cache.get(&key, &[], self.compile.language()))
            .await;
        if let Err(e) = probed {
            self.cache_errors.push(e);
        }
    }

    /// Looks a result up; on a hit the outputs are in place, the `.d` rewritten for this
    /// build and the stderr's paths made this build's. A stored failure writes only the
    /// outputs its compile wrote (`failed`: their roles).
    async fn fetch(
        &mut self,
        key: &CacheKey,
        failed: Option<&[String]>,
    ) -> Result<Option<CompileResult>, CacheError> {
        let aside = match failed {
            Some(roles) => self.aside_for(roles),
            None => self.aside(),
        }
        .map_err(|e| {
            CacheError::new(format!("temporary dependency file beside the output: {e}"))
        })?;
        let outputs = match failed {
            Some(roles) => self.outputs_of(roles, aside.as_ref()),
            None => self.outputs_with(aside.as_ref()),
        };
        let Some(mut result) = self
            .clock
            .lookup(self.cache.get(key, &outputs, self.compile.language()))
            .await?
        else {
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

    /// The dependency file copied aside with this build's roots made placeholders, for
    /// storing, when `wanted` and the compile has one.
    fn normalised_aside(&self, wanted: bool) -> std::io::Result<Option<DepInfoAside>> {
        let aside = if wanted { self.aside()? } else { None };
        if let Some(aside) = &aside {
            let text = std::fs::read(&aside.real)?;
            std::fs::write(&aside.temp, self.rust.roots.normalise(&text))?;
        }
        Ok(aside)
    }

    /// `result` as it is stored: what it printed with this build's roots made placeholders.
    fn normalised(&self, result: &CompileResult) -> CompileResult {
        let roots = &self.rust.roots;
        CompileResult {
            stdout: roots.normalise(&result.stdout),
            stderr: roots.normalise(&result.stderr),
            exit_status: result.exit_status,
            compile_time: result.compile_time,
            output_digests: Vec::new(),
        }
    }

    /// [`Self::aside`] when `roles` holds the dependency file's.
    fn aside_for(&self, roles: &[String]) -> std::io::Result<Option<DepInfoAside>> {
        if roles.iter().any(|r| r == DEP_INFO_ROLE) {
            self.aside()
        } else {
            Ok(None)
        }
    }

    /// [`Self::outputs_with`], only those with one of `roles`.
    fn outputs_of(&self, roles: &[String], aside: Option<&DepInfoAside>) -> Vec<OutputPath> {
        self.outputs_with(aside)
            .into_iter()
            .filter(|o| roles.contains(&o.role))
            .collect()
    }

    /// The outputs, with the dependency file's role pointed at the temporary file.
    fn outputs_with(&self, aside: Option<&DepInfoAside>) -> Vec<OutputPath> {
        self.compile
            .outputs()
            .iter()
            .map(|o| match aside {
                Some(aside) if o.role == DEP_INFO_ROLE => {
                    OutputPath::new(o.role.clone(), aside.temp.to_path_buf())
                }
                _ => o.clone(),
            })
            .collect()
    }

    /// Stores a successful compile and adds its candidate to the manifest. Anything that
    /// keeps it from being recorded safely only costs a future hit.
    async fn record(&mut self, common: &CacheKey, manifest: &mut Manifest, result: &CompileResult) {
        let begun = std::time::Instant::now();
        let dep_info_text = match &self.rust.dep_info {
            Some(path) => {
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
            }
            None => self.dep_info_pass().await,
        };
        let candidate = match dep_info_text.and_then(|text| self.candidate(common, &text)) {
            Ok(candidate) => candidate,
            Err(why) => {
                tracing::debug!("rust compile not recorded: {why}");
                return;
            }
        };
        let result_key = CacheKey::from_bytes(candidate.result_key);
        let aside = match self.normalised_aside(true) {
            Ok(aside) => aside,
            Err(e) => {
                tracing::debug!("rust compile not recorded: dependency file: {e}");
                return;
            }
        };
        let stored = self.normalised(result);
        let outputs = self.outputs_with(aside.as_ref());
        if !self.put_result(&result_key, &outputs, &stored).await {
            return;
        }
        let stored_after = begun.elapsed();
        self.record_delivered_digests(&[]);
        crate::explain::remember(&self.rust.state_dir, self.compile.outputs(), &result_key);
        manifest.add(candidate);
        self.put_manifest(common, manifest).await;
        tracing::debug!(
            crate_name = self.rust.args.crate_name.as_deref().unwrap_or("?"),
            stored_ms = stored_after.as_millis(),
            total_ms = begun.elapsed().as_millis(),
            "rust compile recorded"
        );
    }

    /// Stores `result` under `key`; a store that fails is counted, and only costs a hit.
    async fn put_result(
        &mut self,
        key: &CacheKey,
        outputs: &[OutputPath],
        result: &CompileResult,
    ) -> bool {
        let language = self.compile.language();
        match self
            .clock
            .lookup(self.cache.put(key, outputs, result, language))
            .await
        {
            Ok(()) => true,
            Err(e) => {
                self.cache_errors.push(e);
                false
            }
        }
    }

    async fn put_manifest(&mut self, common: &CacheKey, manifest: &Manifest) {
        match manifest.encode() {
            Ok(bytes) => {
                if let Err(e) = self
                    .clock
                    .lookup(self.cache.put_manifest(common, bytes))
                    .await
                {
                    self.cache_errors.push(e);
                }
            }
            Err(e) => self
                .cache_errors
                .push(CacheError::new(format!("encoding manifest {common}: {e}"))),
        }
    }

    /// The candidate for the compile that just ran: every file and variable its dependency
    /// file names, and any root an output embeds verbatim.
    fn candidate(&self, common: &CacheKey, dep_info: &[u8]) -> Result<Candidate, String> {
        let command = self.compile.command();
        let roots = &self.rust.roots;
        let Inputs { files, env } =
            inputs::from_dep_info(dep_info, &command.cwd, &command.env, roots, self.started)?;
        let mut pinned = Vec::new();
        for output in self.compile.outputs() {
            if output.role == DEP_INFO_ROLE {
                continue;
            }
            let data = std::fs::read(&output.path)
                .map_err(|e| format!("reading {}: {e}", output.path.display()))?;
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
    async fn dep_info_pass(&self) -> Result<Vec<u8>, String> {
        let temp = tempfile::Builder::new()
            .prefix("hoard-dep-info-")
            .suffix(".d")
            .tempfile()
            .map_err(|e| format!("temporary dependency file: {e}"))?
            .into_temp_path();
        let mut args: Vec<OsString> = self.rust.remap.clone();
        args.extend(super::args::without_outputs(&self.rust.expanded));
        let mut emit = OsString::from("--emit=dep-info=");
        emit.push(&temp);
        args.push(emit);
        let result =
            run_streaming(&self.rust.rustc_path, &args, self.compile.command(), false).await;
        if result.exit_status != 0 {
            return Err(format!(
                "the dependency-file pass failed: {}",
                String::from_utf8_lossy(&result.stderr).trim()
            ));
        }
        std::fs::read(&temp).map_err(|e| format!("reading {}: {e}", temp.display()))
    }

    /// Runs rustc with the remapping options first (the command's own, later, win).
    async fn compile_now(&mut self) -> CompileResult {
        let command = self.compile.command();
        let mut args: Vec<OsString> = self.rust.remap.clone();
        args.extend(command.args.iter().cloned());
        let stream = self.compile.stream_stderr;
        self.streamed = stream;
        self.clock
            .compile(run_streaming(&self.rust.rustc_path, &args, command, stream))
            .await
    }

    async fn fallback(mut self, error: CacheError) -> CompileOutcome {
        if self.cache.withdrawn() {
            return self.finish(CompileResult::default(), CacheStatus::Withdrawn);
        }
        tracing::warn!(%error, "cache lookup failed; compiling without the cache");
        self.cache_errors.push(error);
        let result = self.compile_now().await;
        self.finish(result, CacheStatus::Fallback)
    }

    fn finish(self, result: CompileResult, status: CacheStatus) -> CompileOutcome {
        CompileOutcome {
            result,
            status,
            cache_errors: self.cache_errors,
            language: Some(self.compile.language()),
            stderr_streamed: self.streamed,
            times: self.clock.times(),
        }
    }
}

/// Writes `data` to `path` through a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut temp = tempfile::Builder::new()
        .prefix(".hoard-")
        .tempfile_in(dir)?;
    temp.write_all(data)?;
    // What rustc would have created under the usual umask.
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Runs `program`, capturing stdout and stderr; with `stream`, each piece of stderr is also
/// written to this process's stderr as soon as it arrives.
async fn run_streaming(
    program: &Path,
    args: &[OsString],
    cmd: &crate::CommandLine,
    stream: bool,
) -> CompileResult {
    let started = std::time::Instant::now();
    let spawned = Command::new(program)
        .args(args)
        .current_dir(&cmd.cwd)
        .env_clear()
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let message = format!("hoard: cannot run compiler {}: {e}\n", program.display());
            if stream {
                let _ = std::io::stderr().write_all(message.as_bytes());
            }
            return CompileResult {
                stdout: Vec::new(),
                stderr: message.into_bytes(),
                exit_status: 127,
                compile_time: started.elapsed(),
                output_digests: Vec::new(),
            };
        }
    };
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let read_stdout = async {
        let mut out = Vec::new();
        if let Some(pipe) = stdout_pipe.as_mut() {
            let _ = pipe.read_to_end(&mut out).await;
        }
        out
    };
    let read_stderr = async {
        let mut all = Vec::new();
        let mut buffer = vec![0; 64 * 1024];
        if let Some(pipe) = stderr_pipe.as_mut() {
            loop {
                match pipe.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream {
                            let mut err = std::io::stderr().lock();
                            let _ = err.write_all(&buffer[..n]);
                            let _ = err.flush();
                        }
                        all.extend_from_slice(&buffer[..n]);
                    }
                }
            }
        }
        all
    };
    let (stdout, stderr) = tokio::join!(read_stdout, read_stderr);
    let exit_status = match child.wait().await {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1),
        Err(_) => 1,
    };
    CompileResult {
        stdout,
        stderr,
        exit_status,
        compile_time: started.elapsed(),
        output_digests: Vec::new(),
    }
}

//! The one cached-compile pipeline: direct mode, then preprocessor mode, then the real
//! compiler. Whatever the cache does, the caller gets exactly what the plain compiler gives.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hoard_storage::CacheKey;
use tokio::process::Command;

use crate::classify::{CCompile, Kind};
use crate::manifest::{self, FileDigests, Manifest};
use crate::{
    ArtifactCache, CacheError, CacheableCompile, CommandLine, Language, NonCacheable,
    PipelineConfig, classify, detect, key,
};

/// What a compile printed and returned. Two results are equal when they printed and
/// returned the same: how long each took is not part of what the build sees.
#[derive(Debug, Clone, Default)]
pub struct CompileResult {
    /// The compiler's standard output.
    pub stdout: Vec<u8>,
    /// The compiler's standard error.
    pub stderr: Vec<u8>,
    /// The exit status; 128 + the signal number when the compiler was killed, 127 when it
    /// could not be started.
    pub exit_status: i32,
    /// How long the compiler ran; on a hit, how long it ran when the entry was stored (zero
    /// when the entry did not record it): the time the hit saved.
    pub compile_time: Duration,
    /// On a hit, the blake3 of each output as delivered, in the order of the compile's
    /// outputs, when the cache knew them (empty otherwise): a Rust hit memoises its crates'
    /// digests from these instead of reading the crates back.
    pub output_digests: Vec<[u8; 32]>,
}

impl PartialEq for CompileResult {
    fn eq(&self, other: &Self) -> bool {
        self.stdout == other.stdout
            && self.stderr == other.stderr
            && self.exit_status == other.exit_status
    }
}

impl Eq for CompileResult {}

impl CompileResult {
    /// A hit: what the entry stored, and the digests of the outputs it delivered.
    pub fn from_stored(meta: hoard_storage::EntryMeta, output_digests: Vec<[u8; 32]>) -> Self {
        Self {
            stdout: meta.stdout,
            stderr: meta.stderr,
            exit_status: meta.exit_status,
            compile_time: Duration::from_millis(meta.compile_ms),
            output_digests,
        }
    }

    /// [`CompileResult::compile_time`] in whole milliseconds, as entries and the wire keep it.
    pub fn compile_ms(&self) -> u64 {
        u64::try_from(self.compile_time.as_millis()).unwrap_or(u64::MAX)
    }
}

/// How the cache served a compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache; `direct` when found through a manifest, with no preprocessor run.
    Hit {
        /// Whether the hit came from direct mode.
        direct: bool,
    },
    /// Compiled (and stored when it succeeded).
    Miss,
    /// A cache lookup failed, so the compile ran locally without the cache.
    Fallback,
    /// The command cannot be cached; it ran as it is.
    NotCacheable(NonCacheable),
    /// The cache withdrew at its first answer ([`ArtifactCache::withdrawn`]): nothing ran,
    /// `result` is empty, and the caller must run the compile itself.
    Withdrawn,
}

/// Where a compile's time went: cache lookups and stores, compiler runs, and the rest
/// (classifying, reading and hashing inputs, preprocessing for a key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimes {
    /// Everything that is neither a cache call nor the compile: computing the key.
    pub hashing: Duration,
    /// Cache lookups and stores (manifests included).
    pub lookup: Duration,
    /// Running the compiler to produce the outputs.
    pub compile: Duration,
}

/// Accumulates [`PhaseTimes`] for one attempt. Atomic counters, so an attempt's future
/// stays `Send` (the server runs v1 pipelines on spawned tasks).
#[derive(Debug)]
pub(crate) struct PhaseClock {
    begun: Instant,
    lookup_ns: AtomicU64,
    compile_ns: AtomicU64,
}

impl PhaseClock {
    pub(crate) fn start() -> Self {
        Self {
            begun: Instant::now(),
            lookup_ns: AtomicU64::new(0),
            compile_ns: AtomicU64::new(0),
        }
    }

    fn add(counter: &AtomicU64, since: Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        counter.fetch_add(ns, Ordering::Relaxed);
    }

    /// Runs a cache call, counting its time as lookup.
    pub(crate) async fn lookup<T>(&self, call: impl Future<Output = T>) -> T {
        let begun = Instant::now();
        let out = call.await;
        Self::add(&self.lookup_ns, begun);
        out
    }

    /// Runs the compiler, counting its time as compile.
    pub(crate) async fn compile<T>(&self, run: impl Future<Output = T>) -> T {
        let begun = Instant::now();
        let out = run.await;
        Self::add(&self.compile_ns, begun);
        out
    }

    pub(crate) fn times(&self) -> PhaseTimes {
        let lookup = Duration::from_nanos(self.lookup_ns.load(Ordering::Relaxed));
        let compile = Duration::from_nanos(self.compile_ns.load(Ordering::Relaxed));
        PhaseTimes {
            hashing: self.begun.elapsed().saturating_sub(lookup + compile),
            lookup,
            compile,
        }
    }
}

/// The result of [`cached_compile`].
#[derive(Debug)]
pub struct CompileOutcome {
    /// What to give the caller: exactly what the plain compiler gives.
    pub result: CompileResult,
    /// How the cache served it.
    pub status: CacheStatus,
    /// Every cache failure met on the way; none of them changed `result`.
    pub cache_errors: Vec<CacheError>,
    /// The source language, when the command was classified as a cacheable compile.
    pub language: Option<Language>,
    /// Whether the compiler's standard error was already copied to this process's standard
    /// error while it ran (see [`CacheableCompile::stream_stderr`]); `result.stderr` still
    /// holds all of it, and the caller must not print it again.
    pub stderr_streamed: bool,
    /// Where the time went.
    pub times: PhaseTimes,
}

/// Runs `compile` through `cache`: a hit writes the outputs and replays the compiler's output;
/// a miss compiles and stores a successful result. A cache error never fails the compile.
pub async fn cached_compile(
    compile: &CacheableCompile,
    cache: &dyn ArtifactCache,
) -> CompileOutcome {
    // Every field the keys hash is noted, so a stored entry keeps a record of its inputs
    // for `hoard --explain`.
    crate::explain::recording(async {
        match &compile.kind {
            Kind::C(c) => {
                Attempt {
                    compile,
                    c,
                    cache,
                    started: SystemTime::now(),
                    cache_errors: Vec::new(),
                    looked_up: AtomicBool::new(false),
                    clock: PhaseClock::start(),
                }
                .run()
                .await
            }
            Kind::Rust(rust) => crate::rust::pipeline::run(compile, rust, cache).await,
        }
    })
    .await
}

/// Runs any command a build hands to a compiler: classified, then through [`cached_compile`]
/// when it is cacheable, else run as it is (status [`CacheStatus::NotCacheable`]). This is the
/// whole pipeline for a caller that does not classify first (the server's v1 handler, an
/// embedding build tool).
pub async fn compile_command(
    command: &CommandLine,
    config: &PipelineConfig,
    cache: &dyn ArtifactCache,
) -> CompileOutcome {
    // Classifying may run the compiler once to learn its identity: keep that off the runtime.
    let classified = {
        let (command, config) = (command.clone(), config.clone());
        tokio::task::spawn_blocking(move || classify(&command, &config)).await
    };
    match classified {
        Ok(Ok(compile)) => cached_compile(&compile, cache).await,
        Ok(Err(reason)) => CompileOutcome {
            result: run_compiler(command).await,
            status: CacheStatus::NotCacheable(reason),
            cache_errors: Vec::new(),
            language: None,
            stderr_streamed: false,
            times: PhaseTimes::default(),
        },
        Err(e) => CompileOutcome {
            result: run_compiler(command).await,
            status: CacheStatus::Fallback,
            cache_errors: vec![CacheError::new(format!(
                "classifying the command failed: {e}"
            ))],
            language: None,
            stderr_streamed: false,
            times: PhaseTimes::default(),
        },
    }
}

/// Runs the command as it is, capturing its output: the plain compile every fallback uses.
pub async fn run_compiler(cmd: &CommandLine) -> CompileResult {
    let program = detect::resolve_program(&cmd.program, &cmd.cwd, &cmd.env)
        .unwrap_or_else(|| PathBuf::from(&cmd.program));
    run(&program, &cmd.args, cmd).await
}

/// Runs `program` with `args` in the command's directory and environment.
pub(crate) async fn run(program: &Path, args: &[OsString], cmd: &CommandLine) -> CompileResult {
    let started = Instant::now();
    let output = Command::new(program)
        .args(args)
        .current_dir(&cmd.cwd)
        .env_clear()
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .await;
    match output {
        Ok(output) => CompileResult {
            stdout: output.stdout,
            stderr: output.stderr,
            exit_status: output
                .status
                .code()
                .or_else(|| output.status.signal().map(|s| 128 + s))
                .unwrap_or(1),
            compile_time: started.elapsed(),
            output_digests: Vec::new(),
        },
        Err(e) => CompileResult {
            stdout: Vec::new(),
            stderr: format!(
                "hoard: cannot run compiler {}: {e}\n",
                cmd.program.to_string_lossy()
            )
            .into_bytes(),
            exit_status: 127,
            compile_time: started.elapsed(),
            output_digests: Vec::new(),
        },
    }
}

/// What a direct-mode lookup left for recording the compile afterwards.
struct Direct {
    key: CacheKey,
    manifest: Manifest,
    source_digest: [u8; 32],
}

enum DirectLookup {
    Hit(CompileResult),
    Miss(Option<Direct>),
    Failed(CacheError),
}

/// One run of the pipeline.
struct Attempt<'a> {
    compile: &'a CacheableCompile,
    c: &'a CCompile,
    cache: &'a dyn ArtifactCache,
    started: SystemTime,
    cache_errors: Vec<CacheError>,
    /// Whether the cache has seen a lookup for this compile (and so counted its miss).
    looked_up: AtomicBool,
    clock: PhaseClock,
}

impl Attempt<'_> {
    async fn run(mut self) -> CompileOutcome {
        let common = key::common(self.compile, self.c);
        let language = self.compile.language();
        if !language.is_preprocessed() {
            return self.run_unpreprocessed(&common).await;
        }
        let mut direct: Option<Direct> = None;
        if self.c.direct_mode {
            match self.direct_lookup(&common).await {
                DirectLookup::Hit(result) => {
                    return self.finish(result, CacheStatus::Hit { direct: true });
                }
                DirectLookup::Failed(e) => return self.fallback(e).await,
                DirectLookup::Miss(state) => direct = state,
            }
        }

        if let Some(direct) = direct.take_if(|_| self.depend_mode_possible()) {
            return self.run_depend(direct).await;
        }

        let preprocessed = self.preprocess().await;
        if preprocessed.exit_status != 0 || reads_untracked_files(&preprocessed.stdout, language) {
            // A preprocessor error is the compile's to report; assembler includes read files
            // no key covers. Either way the result is not stored.
            return self.compile_uncached().await;
        }
        let result_key = key::result_key(&common, &preprocessed.stdout, &preprocessed.stderr);
        match self.lookup(&result_key).await {
            Ok(Some(result)) => {
                if let Some(direct) = direct {
                    self.record(direct, &preprocessed.stdout, &result_key).await;
                }
                self.finish(result, CacheStatus::Hit { direct: false })
            }
            Ok(None) => {
                let result = self.compile_original().await;
                if result.exit_status == 0
                    && self.store(&result_key, &result).await
                    && let Some(direct) = direct
                {
                    self.record(direct, &preprocessed.stdout, &result_key).await;
                }
                self.finish(result, CacheStatus::Miss)
            }
            Err(e) => self.fallback(e).await,
        }
    }

    /// Depend mode needs a dependency file that lists every header, system ones included:
    /// the command's own `-MD` file, or one we ask for when it writes none.
    /// Preprocessed assembly is left to the preprocessor: its `.include`s are read by the
    /// assembler, and no dependency file names them.
    fn depend_mode_possible(&self) -> bool {
        self.compile.language() != Language::Assembler
            && self
                .c
                .args
                .dependency
                .as_ref()
                .is_none_or(|d| !d.user_headers_only)
    }

    /// A direct-mode miss in depend mode (ccache's): compile once, with the compiler writing
    /// its dependency file, and key the result by the manifest key and every file that file
    /// lists, by content. No preprocessor run: a miss costs what the plain compile costs.
    async fn run_depend(mut self, direct: Direct) -> CompileOutcome {
        let command = self.compile.command();
        let own_depfile = self
            .compile
            .outputs()
            .iter()
            .find(|o| o.role == crate::classify::DEPENDENCY_ROLE)
            .map(|o| o.path.clone());
        let mut args = command.args.clone();
        // `-MD -MF` changes nothing in the object (checked for gcc and clang), only adds a
        // file; it lives in our state directory and goes when this compile is done.
        let scratch = match &own_depfile {
            Some(_) => None,
            None => match tempfile::Builder::new()
                .prefix("depend-")
                .suffix(".d")
                .tempfile_in(&self.c.state_dir)
            {
                Ok(file) => Some(file.into_temp_path()),
                Err(e) => {
                    tracing::debug!("no scratch dependency file ({e}); compiling unrecorded");
                    return self.compile_uncached().await;
                }
            },
        };
        if let Some(scratch) = &scratch {
            args.extend(["-MD".into(), "-MF".into(), scratch.as_os_str().to_owned()]);
        }
        let result = self
            .clock
            .compile(run(&self.c.compiler.path, &args, command))
            .await;
        if result.exit_status != 0 {
            if let Some(scratch) = &scratch
                && mentions(&result.stderr, scratch.as_os_str().as_bytes())
            {
                // The compiler could not write the dependency file we added (a full or
                // read-only cache directory): the build must see the command as it was.
                let error = CacheError::new(format!(
                    "depend mode: the compiler could not write {}",
                    scratch.display()
                ));
                return self.fallback(error).await;
            }
            return self.finish(result, CacheStatus::Miss);
        }
        if !self.looked_up.load(Ordering::Relaxed) {
            // No lookup could be made before compiling: have the miss counted where misses
            // are, by a lookup of a key nothing is stored under (no outputs named, so
            // nothing is written). A failed compile is not a miss, as in the Rust pipeline.
            let probe = key::miss_probe_key(&direct.key);
            let probed = self
                .clock
                .lookup(self.cache.get(&probe, &[], self.compile.language()))
                .await;
            if let Err(e) = probed {
                self.cache_errors.push(e);
            }
        }
        let depfile = own_depfile.as_deref().or(scratch.as_deref());
        if let Some(Ok(text)) = depfile.map(std::fs::read) {
            self.record_depend(direct, &text, &result).await;
        } else {
            tracing::debug!("no dependency file after the compile; not recorded");
        }
        self.finish(result, CacheStatus::Miss)
    }

    /// Stores a depend-mode result and adds its candidate to the manifest, unless one of the
    /// safety rules forbids it.
    async fn record_depend(&mut self, mut direct: Direct, depfile: &[u8], result: &CompileResult) {
        let c = self.c;
        let source_unchanged = manifest::read_input(&c.source_path, self.started)
            .is_ok_and(|digest| digest == direct.source_digest);
        if !source_unchanged {
            tracing::debug!(source = %c.source_path.display(), "source not recordable in depend mode");
            return;
        }
        let includes = manifest::includes_from_depfile(depfile, c.args.source.as_bytes());
        let cwd = &self.compile.command().cwd;
        let manifest_key = direct.key;
        let candidate = match manifest::candidate_keyed(cwd, &includes, self.started, |listed| {
            key::depend_key(&manifest_key, listed)
        }) {
            Ok(candidate) => candidate,
            Err(e) => {
                tracing::debug!(error = %e, "compile not recordable in depend mode");
                return;
            }
        };
        if !self.store(&candidate.result_key(), result).await {
            return;
        }
        direct.manifest.add(candidate);
        self.put_manifest(&direct).await;
    }

    /// `.s` and `.i` sources: the source text is the whole input.
    async fn run_unpreprocessed(mut self, common: &[u8; 32]) -> CompileOutcome {
        let source = match std::fs::read(&self.c.source_path) {
            Ok(source) if !reads_untracked_files(&source, self.compile.language()) => source,
            // Missing source: the compiler says so. Assembler includes: not tracked.
            _ => return self.compile_uncached().await,
        };
        let key = key::unpreprocessed_key(common, blake3::hash(&source).as_bytes());
        match self.lookup(&key).await {
            Ok(Some(result)) => self.finish(result, CacheStatus::Hit { direct: false }),
            Ok(None) => {
                let result = self.compile_original().await;
                if result.exit_status == 0 {
                    self.store(&key, &result).await;
                }
                self.finish(result, CacheStatus::Miss)
            }
            Err(e) => self.fallback(e).await,
        }
    }

    async fn direct_lookup(&self, common: &[u8; 32]) -> DirectLookup {
        let Ok(source) = std::fs::read(&self.c.source_path) else {
            return DirectLookup::Miss(None);
        };
        if manifest::mentions_time_macros(&source) {
            return DirectLookup::Miss(None);
        }
        let source_digest = *blake3::hash(&source).as_bytes();
        let key = key::manifest_key(common, self.c, &source_digest);
        let manifest = match self.clock.lookup(self.cache.get_manifest(&key)).await {
            Ok(Some(bytes)) => Manifest::decode(&bytes),
            Ok(None) => Manifest::default(),
            Err(e) => return DirectLookup::Failed(e),
        };
        let cwd = &self.compile.command().cwd;
        if let Some(result_key) =
            manifest.find(cwd, &mut FileDigests::with_table(&self.c.state_dir))
        {
            match self.lookup(&result_key).await {
                Ok(Some(result)) => return DirectLookup::Hit(result),
                // The result was evicted: preprocessor mode will find or make it again.
                Ok(None) => {}
                Err(e) => return DirectLookup::Failed(e),
            }
        }
        DirectLookup::Miss(Some(Direct {
            key,
            manifest,
            source_digest,
        }))
    }

    /// Adds this compile to the manifest, unless one of ccache's safety rules forbids it.
    async fn record(&mut self, mut direct: Direct, preprocessed: &[u8], result_key: &CacheKey) {
        let compile = self.compile;
        let c = self.c;
        let source_unchanged = manifest::read_input(&c.source_path, self.started)
            .is_ok_and(|digest| digest == direct.source_digest);
        if !source_unchanged {
            tracing::debug!(source = %c.source_path.display(), "source not recordable in direct mode");
            return;
        }
        let includes = manifest::includes_from_preprocessed(preprocessed, c.args.source.as_bytes());
        let cwd = &compile.command().cwd;
        match manifest::candidate(cwd, &includes, result_key, self.started) {
            Ok(candidate) => direct.manifest.add(candidate),
            Err(e) => {
                tracing::debug!(error = %e, "compile not recordable in direct mode");
                return;
            }
        }
        self.put_manifest(&direct).await;
    }

    async fn put_manifest(&mut self, direct: &Direct) {
        match direct.manifest.encode() {
            Ok(bytes) => {
                let put = self
                    .clock
                    .lookup(self.cache.put_manifest(&direct.key, bytes))
                    .await;
                if let Err(e) = put {
                    self.cache_errors.push(e);
                }
            }
            Err(e) => self.cache_errors.push(CacheError::new(format!(
                "encoding manifest {}: {e}",
                direct.key
            ))),
        }
    }

    async fn lookup(&self, key: &CacheKey) -> Result<Option<CompileResult>, CacheError> {
        self.looked_up.store(true, Ordering::Relaxed);
        self.clock
            .lookup(
                self.cache
                    .get(key, self.compile.outputs(), self.compile.language()),
            )
            .await
    }

    /// Stores a successful result; false (with the error kept) when the cache refused it.
    async fn store(&mut self, key: &CacheKey, result: &CompileResult) -> bool {
        let stored = self
            .clock
            .lookup(
                self.cache
                    .put(key, self.compile.outputs(), result, self.compile.language()),
            )
            .await;
        match stored {
            Ok(()) => {
                crate::explain::remember(&self.c.state_dir, self.compile.outputs(), key);
                true
            }
            Err(e) => {
                self.cache_errors.push(e);
                false
            }
        }
    }

    async fn preprocess(&self) -> CompileResult {
        let mut args = self.c.args.preprocess.clone();
        args.push("-E".into());
        run(&self.c.compiler.path, &args, self.compile.command()).await
    }

    /// The command exactly as given (not the preprocessed text), by the detected compiler.
    async fn compile_original(&self) -> CompileResult {
        let command = self.compile.command();
        self.clock
            .compile(run(&self.c.compiler.path, &command.args, command))
            .await
    }

    async fn compile_uncached(self) -> CompileOutcome {
        let result = self.compile_original().await;
        self.finish(result, CacheStatus::Miss)
    }

    async fn fallback(mut self, error: CacheError) -> CompileOutcome {
        if self.cache.withdrawn() {
            return self.finish(CompileResult::default(), CacheStatus::Withdrawn);
        }
        tracing::warn!(%error, "cache lookup failed; compiling without the cache");
        self.cache_errors.push(error);
        let result = self.compile_original().await;
        self.finish(result, CacheStatus::Fallback)
    }

    fn finish(self, result: CompileResult, status: CacheStatus) -> CompileOutcome {
        CompileOutcome {
            result,
            status,
            cache_errors: self.cache_errors,
            language: Some(self.compile.language()),
            stderr_streamed: false,
            times: self.clock.times(),
        }
    }
}

/// Whether the text the compiler proper sees makes the assembler read other files
/// (`.incbin`, also reachable from C through inline assembly, and `.include` in assembly
/// sources), which neither the preprocessor's output nor a manifest accounts for.
fn reads_untracked_files(text: &[u8], language: Language) -> bool {
    mentions(text, b".incbin")
        || (matches!(language, Language::Assembler | Language::RawAssembler)
            && mentions(text, b".include"))
}

/// Whether `text` contains `needle` (which starts with a byte rare enough to scan for).
fn mentions(text: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    let mut rest = text;
    while let Some(at) = rest.iter().position(|&b| b == first) {
        if rest[at..].starts_with(needle) {
            return true;
        }
        rest = &rest[at + 1..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server runs pipelines on spawned tasks: the future must stay `Send` (this fails
    /// to compile otherwise).
    #[allow(dead_code)]
    fn the_pipeline_future_is_send<'a>(
        compile: &'a CacheableCompile,
        cache: &'a dyn ArtifactCache,
    ) -> impl Future<Output = CompileOutcome> + Send + 'a {
        cached_compile(compile, cache)
    }

    #[test]
    fn finds_needles() {
        assert!(mentions(b"asm(\".incbin \\\"x\\\"\")", b".incbin"));
        assert!(!mentions(b"a.inc bin", b".incbin"));
        assert!(!mentions(b"", b".incbin"));
    }

    #[tokio::test]
    async fn a_missing_program_exits_127_and_says_so() {
        let cmd = CommandLine {
            program: "no-such-compiler-anywhere".into(),
            args: vec!["-c".into()],
            cwd: std::env::temp_dir(),
            env: vec![("PATH".into(), "/usr/bin".into())],
        };
        let result = run_compiler(&cmd).await;
        assert_eq!(result.exit_status, 127);
        let stderr = String::from_utf8(result.stderr).unwrap();
        assert!(stderr.contains("no-such-compiler-anywhere"), "{stderr}");
    }

    #[tokio::test]
    async fn the_plain_compile_keeps_status_and_output() {
        let cmd = CommandLine {
            program: "sh".into(),
            args: vec!["-c".into(), "echo out; echo err >&2; exit 3".into()],
            cwd: std::env::temp_dir(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        };
        let result = run_compiler(&cmd).await;
        assert_eq!(
            result,
            CompileResult {
                stdout: b"out\n".to_vec(),
                stderr: b"err\n".to_vec(),
                exit_status: 3,
                compile_time: Duration::ZERO,
                output_digests: Vec::new(),
            }
        );
        assert!(result.compile_time > Duration::ZERO);
    }
}

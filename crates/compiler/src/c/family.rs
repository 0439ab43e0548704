//! gcc and clang as a [`Family`]: direct mode (a manifest of include digests, so a hit runs
//! no preprocessor), then depend mode (compile once with the compiler writing its dependency
//! file, and key the result by every file it lists) or preprocessor mode (key the result by
//! the `-E` output), and sources the compiler does not preprocess keyed by their text.

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hoard_storage::{CacheKey, OutputPath};

use super::candidate::{self, Candidate, Site};
use super::classify::{CCompile, DEPENDENCY_ROLE, OBJECT_ROLE};
use super::detect::default_include_dirs_apply;
use super::key;
use super::paths::Rebase;
use crate::cache::CacheError;
use crate::compile::{Compile, write_atomically};
use crate::digest::Digests;
use crate::family::{Direct, Family, Plan, Stored};
use crate::input::{Unrecordable, mentions_time_macros, read_input_with};
use crate::language::Language;
use crate::recipe::MissProbe;
use crate::result::CompileResult;
use crate::runner::{self, Run};
use crate::session::Session;
use crate::text::contains;

/// Why a C compile was not recorded in its manifest.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CNotRecorded {
    /// The source changed while it compiled (or cannot be read now).
    #[error("source {0} not recordable")]
    Source(PathBuf),
    /// The compile wrote no dependency file to learn its inputs from.
    #[error("no dependency file after the compile")]
    NoDependencyFile,
    /// An input breaks one of ccache's safety rules.
    #[error(transparent)]
    Input(#[from] Unrecordable),
    /// A compile whose files ask `__has_include` in a way a candidate cannot answer again
    /// could not be keyed by the preprocessor's output.
    #[error(
        "its files use __has_include unreadably and the preprocessor's output could not key it"
    )]
    NotPreprocessed,
    /// The dependency file could not be copied aside, rebased, for storing.
    #[error("dependency file not rebased: {0}")]
    DependencyFile(#[source] std::io::Error),
}

/// One gcc or clang compile going through the pipeline.
pub(crate) struct CFamily<'a> {
    c: &'a CCompile,
    /// The key part shared by every mode.
    common: [u8; 32],
    /// The source's digest when it was looked up in direct mode.
    source_digest: Option<[u8; 32]>,
    /// Preprocessor mode: the `-E` output, whose line markers list the includes.
    preprocessed: Vec<u8>,
    /// Depend mode: the dependency file the compile writes.
    depend: Option<Depend>,
    /// The compiler's own include directories, once a `__has_include` question needs them.
    system_dirs: OnceLock<Option<Vec<PathBuf>>>,
}

/// Where depend mode's compile writes its dependency file: the command's own, or a scratch
/// one in the state directory that goes when the compile is done.
struct Depend {
    own: Option<PathBuf>,
    scratch: Option<tempfile::TempPath>,
}

impl<'a> CFamily<'a> {
    /// The C family's part of one compile.
    pub(crate) fn new(c: &'a CCompile) -> Self {
        Self {
            c,
            common: [0; 32],
            source_digest: None,
            preprocessed: Vec::new(),
            depend: None,
            system_dirs: OnceLock::new(),
        }
    }

    /// The compiler's own include directories for this compile, learnt once (see
    /// [`system_dirs`]).
    fn system_dirs(&self, compile: &Compile) -> Option<&[PathBuf]> {
        self.system_dirs
            .get_or_init(|| system_dirs(compile, self.c))
            .as_deref()
    }

    /// Depend mode needs a dependency file that lists every header, system ones included:
    /// the command's own `-MD` file, or one we ask for when it writes none. Preprocessed
    /// assembly is left to the preprocessor: its `.include`s are read by the assembler, and
    /// no dependency file names them.
    fn depend_mode_possible(&self, language: Language) -> bool {
        language != Language::Assembler
            && self
                .c
                .args
                .dependency
                .as_ref()
                .is_none_or(|d| !d.user_headers_only)
    }

    /// `.s` and `.i` sources: the source text is the whole input.
    fn unpreprocessed_plan(&self, compile: &Compile) -> Plan {
        match std::fs::read(&self.c.source_path) {
            Ok(source) if !reads_untracked_files(&source, compile.language) => Plan::Key(
                key::unpreprocessed_key(&self.common, blake3::hash(&source).as_bytes()),
            ),
            // Missing source: the compiler says so. Assembler includes: not tracked.
            _ => Plan::Uncached,
        }
    }

    /// A direct-mode miss in depend mode (ccache's): compile once, with the compiler
    /// writing its dependency file. No preprocessor run: a miss costs the plain compile.
    fn depend_plan(&mut self, compile: &Compile) -> Plan {
        let own = compile.output(DEPENDENCY_ROLE).map(PathBuf::from);
        // `-MD -MF` changes nothing in the object (checked for gcc and clang), only adds a
        // file; it lives in our state directory and goes when this compile is done.
        let scratch = match &own {
            Some(_) => None,
            None => match tempfile::Builder::new()
                .prefix("depend-")
                .suffix(".d")
                .tempfile_in(&compile.state_dir)
            {
                Ok(file) => Some(file.into_temp_path()),
                Err(e) => {
                    tracing::debug!("no scratch dependency file ({e}); compiling unrecorded");
                    return Plan::Uncached;
                }
            },
        };
        self.depend = Some(Depend { own, scratch });
        Plan::AfterCompile
    }

    /// Preprocessor mode: the result is keyed by what `-E` prints.
    async fn preprocessor_plan(&mut self, compile: &Compile) -> Plan {
        match self.preprocessed_key(compile).await {
            Some(result_key) => Plan::Key(result_key),
            None => Plan::Uncached,
        }
    }

    /// Runs the preprocessor and keys the result by its output (kept for the candidate's
    /// include list); `None` when that output cannot key a result.
    async fn preprocessed_key(&mut self, compile: &Compile) -> Option<CacheKey> {
        let mut args = self.c.args.preprocess.clone();
        args.push("-E".into());
        let preprocessed = runner::run(Run {
            program: &self.c.compiler.path,
            args: &args,
            cmd: &compile.command,
            shown: &compile.command.program,
            stream: false,
        })
        .await;
        if preprocessed.exit_status != 0
            || reads_untracked_files(&preprocessed.stdout, compile.language)
        {
            // A preprocessor error is the compile's to report; assembler includes read files
            // no key covers. Either way the result is not stored.
            return None;
        }
        let result_key = key::result_key(
            &self.common,
            &self.c.rebase,
            &preprocessed.stdout,
            &preprocessed.stderr,
        );
        self.preprocessed = preprocessed.stdout;
        Some(result_key)
    }

    /// Whether the object holds a base directory's path (an expanded `__FILE__`, an
    /// `assert`): its result is then only good for this working directory. Read on a miss
    /// only, and only when paths are rebased at all.
    fn embeds_paths(&self, compile: &Compile) -> bool {
        let rebase = &self.c.rebase;
        rebase.active()
            && compile
                .output(OBJECT_ROLE)
                .and_then(|object| std::fs::read(object).ok())
                .is_none_or(|bytes| rebase.leaked_in(&bytes))
    }

    /// The source's text, unless it is no longer what direct mode looked up: a source that
    /// changed while it compiled may not be what the compiler read.
    fn source_unchanged(&self, session: &Session<'_>) -> Result<Vec<u8>, CNotRecorded> {
        let source = &self.c.source_path;
        let mut text = Vec::new();
        let now = read_input_with(source, session.started, |bytes| text = bytes.to_vec()).ok();
        if now.is_some() && now == self.source_digest {
            Ok(text)
        } else {
            Err(CNotRecorded::Source(source.clone()))
        }
    }
}

impl Family for CFamily<'_> {
    type Candidate = Candidate;
    type NotRecorded = CNotRecorded;
    const MISS_PROBE: MissProbe = key::MISS_PROBE;

    fn manifest_key(&mut self, compile: &Compile) -> Result<Option<CacheKey>, CNotRecorded> {
        self.common = key::common(compile, self.c);
        if !compile.language.is_preprocessed() || !self.c.direct_mode {
            return Ok(None);
        }
        let Ok(source) = std::fs::read(&self.c.source_path) else {
            return Ok(None);
        };
        if mentions_time_macros(&source) {
            return Ok(None);
        }
        let source_digest = *blake3::hash(&source).as_bytes();
        self.source_digest = Some(source_digest);
        Ok(Some(key::manifest_key(
            &self.common,
            self.c,
            &source_digest,
        )))
    }

    fn fits(&self, compile: &Compile, candidate: &Candidate, digests: &mut Digests) -> bool {
        candidate.fits(
            &compile.command.cwd,
            &self.c.rebase,
            &self.c.search,
            || self.system_dirs(compile),
            digests,
        )
    }

    fn paths_kept(&self, _compile: &Compile) -> Option<&'static str> {
        self.c.rebase.kept().map(super::paths::PathsKept::name)
    }

    fn delivered(&self, compile: &Compile, result: &mut CompileResult) -> Result<(), CacheError> {
        let rebase = &self.c.rebase;
        result.stdout = rebase.resolve(&result.stdout);
        result.stderr = rebase.resolve(&result.stderr);
        let Some(depfile) = compile.output(DEPENDENCY_ROLE) else {
            return Ok(());
        };
        let rewrite = || -> std::io::Result<()> {
            let text = std::fs::read(depfile)?;
            let resolved = rebase.resolve(&text);
            if resolved != text {
                write_atomically(depfile, &resolved)?;
            }
            Ok(())
        };
        rewrite().map_err(|e| {
            CacheError::new(format!(
                "rewriting dependency file {}: {e}",
                depfile.display()
            ))
        })
    }

    fn stored_result<'r>(
        &self,
        compile: &'r Compile,
        result: &'r CompileResult,
    ) -> Result<Stored<'r>, CNotRecorded> {
        let rebase = &self.c.rebase;
        let borrowed = Stored {
            outputs: Cow::Borrowed(&compile.outputs),
            result: Cow::Borrowed(result),
            scratch: None,
        };
        if !rebase.active() {
            return Ok(borrowed);
        }
        let result = CompileResult {
            stdout: rebase.normalise(&result.stdout),
            stderr: rebase.normalise(&result.stderr),
            ..result.clone()
        };
        let Some(depfile) = compile.output(DEPENDENCY_ROLE) else {
            return Ok(Stored {
                result: Cow::Owned(result),
                ..borrowed
            });
        };
        // The dependency file is stored rebased, from a copy beside it (the cache reads
        // outputs from their paths), and resolved for the build that fetches it.
        let aside = normalised_aside(depfile, rebase).map_err(CNotRecorded::DependencyFile)?;
        let outputs = compile
            .outputs
            .iter()
            .map(|o| match o.role.as_str() {
                DEPENDENCY_ROLE => OutputPath::new(o.role.clone(), aside.to_path_buf()),
                _ => o.clone(),
            })
            .collect();
        Ok(Stored {
            outputs: Cow::Owned(outputs),
            result: Cow::Owned(result),
            scratch: Some(aside),
        })
    }

    async fn plan(
        &mut self,
        session: &mut Session<'_>,
        direct: Option<&Direct<Candidate>>,
    ) -> Plan {
        let compile = session.compile;
        if !compile.language.is_preprocessed() {
            return self.unpreprocessed_plan(compile);
        }
        let probes = direct.is_some_and(|d| d.manifest.find(|c| c.needs_preprocessor()).is_some());
        if direct.is_some() && !probes && self.depend_mode_possible(compile.language) {
            return self.depend_plan(compile);
        }
        self.preprocessor_plan(compile).await
    }

    async fn compile_plain(&self, session: &mut Session<'_>) -> CompileResult {
        let command = &session.compile.command;
        session
            .run(
                &self.c.compiler.path,
                &command.args,
                &command.program,
                false,
            )
            .await
    }

    async fn compile(&mut self, session: &mut Session<'_>) -> Result<CompileResult, CacheError> {
        let Some(scratch) = self.depend.as_ref().and_then(|d| d.scratch.as_ref()) else {
            return Ok(self.compile_plain(session).await);
        };
        let command = &session.compile.command;
        let mut args = command.args.clone();
        args.extend(["-MD".into(), "-MF".into(), scratch.as_os_str().to_owned()]);
        let result = session
            .run(&self.c.compiler.path, &args, &command.program, false)
            .await;
        if result.exit_status != 0 && contains(&result.stderr, scratch.as_os_str().as_bytes()) {
            // The compiler could not write the dependency file we added (a full or
            // read-only cache directory): the build must see the command as it was.
            return Err(CacheError::new(format!(
                "depend mode: the compiler could not write {}",
                scratch.display()
            )));
        }
        Ok(result)
    }

    async fn candidate(
        &mut self,
        session: &mut Session<'_>,
        direct: &Direct<Candidate>,
        result_key: Option<&CacheKey>,
    ) -> Result<Candidate, CNotRecorded> {
        let source_text = self.source_unchanged(session)?;
        let compile = session.compile;
        let cwd = &compile.command.cwd;
        let system = || self.system_dirs(compile);
        let site = Site {
            cwd,
            rebase: &self.c.rebase,
            started: session.started,
            pinned: self
                .embeds_paths(compile)
                .then_some(cwd.as_os_str().as_bytes()),
            search: &self.c.search,
            source: &source_text,
            system: &system,
        };
        let source = self.c.args.source.as_bytes();
        if let Some(result_key) = result_key {
            let includes = candidate::includes_from_preprocessed(&self.preprocessed, source);
            return Ok(candidate::candidate(&site, &includes, result_key)?);
        }
        let depend = self.depend.as_ref();
        let depfile = depend.and_then(|d| d.own.as_deref().or(d.scratch.as_deref()));
        let Some(Ok(text)) = depfile.map(std::fs::read) else {
            return Err(CNotRecorded::NoDependencyFile);
        };
        let includes = candidate::includes_from_depfile(&text, source);
        let candidate = candidate::candidate_keyed(&site, &includes, |listed, answers| {
            key::depend_key(&direct.key, listed, site.pinned, answers)
        })?;
        if !candidate.needs_preprocessor() {
            return Ok(candidate);
        }
        // A file asks `__has_include` in a way the candidate cannot answer again: the next
        // compile cannot trust this list and keys itself by the preprocessor's output, so the
        // result is stored under that key (one `-E` run, on this first miss only), or the
        // next build would miss again.
        match self.preprocessed_key(compile).await {
            Some(result_key) => Ok(candidate.keyed_by(result_key)),
            None => Err(CNotRecorded::NotPreprocessed),
        }
    }
}

/// The compiler's own include directories for a compile, learnt once per compiler (kept in
/// the state directory); `None` when unknown or moved by the command's options.
pub(super) fn system_dirs(compile: &Compile, c: &CCompile) -> Option<Vec<PathBuf>> {
    let cxx = match compile.language {
        Language::C => false,
        Language::Cxx => true,
        _ => return None,
    };
    default_include_dirs_apply(&c.args.preprocess, &compile.command.env)
        .then(|| c.compiler.system_include_dirs(cxx, &compile.state_dir))
        .flatten()
}

/// A temporary copy of `depfile`, rebased, beside it.
fn normalised_aside(depfile: &Path, rebase: &Rebase) -> std::io::Result<tempfile::TempPath> {
    let text = std::fs::read(depfile)?;
    let dir = depfile.parent().unwrap_or(Path::new("/"));
    let mut aside = tempfile::Builder::new()
        .prefix(".hoard-")
        .suffix(".d")
        .tempfile_in(dir)?;
    aside.write_all(&rebase.normalise(&text))?;
    Ok(aside.into_temp_path())
}

/// Whether the text the compiler proper sees makes the assembler read other files
/// (`.incbin`, also reachable from C through inline assembly, and `.include` in assembly
/// sources), which neither the preprocessor's output nor a manifest accounts for.
fn reads_untracked_files(text: &[u8], language: Language) -> bool {
    contains(text, b".incbin")
        || (matches!(language, Language::Assembler | Language::RawAssembler)
            && contains(text, b".include"))
}

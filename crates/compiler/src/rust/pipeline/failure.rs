//! Stored failures: which failing rustc compiles the cache may keep, and keeping them (see
//! [`Attempt::failure_candidate`]). Build scripts probe the compiler with compiles meant to
//! fail, on every build; replaying those is what makes a warm build's build scripts cheap.

use hoard_storage::{CacheKey, OutputPath};

use super::super::inputs;
use super::super::key;
use super::super::manifest::{Candidate, Manifest};
use super::super::outputs::DEP_INFO_ROLE;
use super::super::paths::contains;
use super::Attempt;
use crate::CompileResult;

impl Attempt<'_> {
    /// The candidate for a compile that failed, when the failure can be stored:
    /// - rustc's ordinary error status, 1 (not an internal compiler error, a signal or a
    ///   missing program), with no I/O error in what it printed (a full disk must never be
    ///   replayed);
    /// - a crate type rustc builds without the system linker, which could fail for reasons
    ///   no key covers (a system library not yet installed);
    /// - no crate it could load from outside the sysroot (`--extern`, `-L`): these are the
    ///   probes build scripts compile, and a failing crate of the build itself is left to
    ///   compile again;
    /// - nothing written but, at most, the dependency file, whose list of inputs is then the
    ///   candidate's; with no dependency file, a root that reads nothing but itself.
    pub(super) fn failure_candidate(
        &self,
        common: &CacheKey,
        result: &CompileResult,
    ) -> Result<Candidate, String> {
        let args = &self.rust.args;
        if result.exit_status != 1 {
            return Err(format!("exit status {}", result.exit_status));
        }
        if contains(&result.stderr, b"(os error") {
            return Err("it reports an I/O error".into());
        }
        if args
            .crate_types
            .iter()
            .any(|t| key::LINKED.contains(&t.as_str()))
        {
            return Err("its crate type is linked".into());
        }
        if !args.externs.is_empty() || !args.lib_dirs.is_empty() {
            return Err("it may load crates from outside the sysroot".into());
        }
        let written: Vec<&OutputPath> = self
            .compile
            .outputs()
            .iter()
            .filter(|o| {
                std::fs::metadata(&o.path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified >= self.started)
            })
            .collect();
        let command = self.compile.command();
        let roots = &self.rust.roots;
        let (inputs, wrote) = match (written.as_slice(), &self.rust.dep_info) {
            ([], _) => {
                let inputs = inputs::from_standalone_root(
                    &args.source,
                    &command.cwd,
                    &command.env,
                    roots,
                    self.started,
                )?;
                (inputs, Vec::new())
            }
            ([only], Some(dep_info)) if only.role == DEP_INFO_ROLE => {
                let text = std::fs::read(dep_info)
                    .map_err(|e| format!("reading {}: {e}", dep_info.display()))?;
                let inputs =
                    inputs::from_dep_info(&text, &command.cwd, &command.env, roots, self.started)?;
                (inputs, vec![DEP_INFO_ROLE.to_owned()])
            }
            _ => return Err("it wrote outputs besides its dependency file".into()),
        };
        let mut candidate = Candidate {
            files: inputs.files,
            env: inputs.env,
            pinned: Vec::new(),
            result_key: [0; 32],
            failed: Some(wrote),
        };
        candidate.result_key = *key::result_key(common, &candidate).as_bytes();
        Ok(candidate)
    }

    /// Stores a failed compile's diagnostics and status, with the outputs its candidate
    /// names (normalised like a successful compile's), and adds the candidate to the
    /// manifest.
    pub(super) async fn record_failure(
        &mut self,
        common: &CacheKey,
        manifest: &mut Manifest,
        candidate: Candidate,
        result: &CompileResult,
    ) {
        let wrote = candidate.failed.clone().unwrap_or_default();
        let aside = match self.normalised_aside(wrote.iter().any(|r| r == DEP_INFO_ROLE)) {
            Ok(aside) => aside,
            Err(e) => {
                tracing::debug!("failed rust compile not stored: dependency file: {e}");
                return;
            }
        };
        let stored = self.normalised(result);
        let outputs = self.outputs_of(&wrote, aside.as_ref());
        let result_key = CacheKey::from_bytes(candidate.result_key);
        if !self.put_result(&result_key, &outputs, &stored).await {
            return;
        }
        manifest.add(candidate);
        self.put_manifest(common, manifest).await;
    }
}

//! The files rustc writes for a command, computed from its arguments the way rustc names them
//! (checked against `rustc --print file-names`): `--out-dir`, `--crate-name`,
//! `-C extra-filename`, `--crate-type`, `--emit` (with optional `=path`) and `-o`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use hoard_storage::OutputPath;

use super::args::{Emit, RustArgs};
use crate::compile::absolute_output;
use crate::reason::NonCacheable;

/// Role of the dependency file among a rust compile's outputs.
pub(crate) const DEP_INFO_ROLE: &str = "dep-info";

/// How a target names libraries and executables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    /// ELF platforms: `libx.so`, `libx.a`, `x`.
    Unix,
    /// `libx.dylib`.
    Apple,
    /// `x.wasm` for executables and cdylibs.
    Wasm,
}

fn naming(target: Option<&str>) -> Result<Naming, NonCacheable> {
    let Some(target) = target else {
        return Ok(Naming::Unix);
    };
    let triple = Path::new(target)
        .file_stem()
        .map_or(target.to_owned(), |s| s.to_string_lossy().into_owned());
    if triple.starts_with("wasm") {
        Ok(Naming::Wasm)
    } else if triple.contains("windows") || triple.contains("uefi") {
        Err(NonCacheable::RustOutputsUnknown {
            detail: format!("target {target} names outputs in ways hoard does not model"),
        })
    } else if triple.contains("apple") {
        Ok(Naming::Apple)
    } else {
        Ok(Naming::Unix)
    }
}

/// The file a `link` emit writes for one crate type, from the file stem.
fn link_name(crate_type: &str, stem: &str, naming: Naming) -> Result<String, NonCacheable> {
    let dylib = match naming {
        Naming::Apple => "dylib",
        Naming::Unix | Naming::Wasm => "so",
    };
    Ok(match (crate_type, naming) {
        ("lib" | "rlib", _) => format!("lib{stem}.rlib"),
        ("staticlib", _) => format!("lib{stem}.a"),
        ("bin" | "cdylib", Naming::Wasm) => format!("{stem}.wasm"),
        // rustc drops these for wasm, with a warning, and writes nothing.
        ("dylib" | "proc-macro", Naming::Wasm) => {
            return Err(NonCacheable::UnsupportedCrateType {
                crate_type: format!("{crate_type} for wasm"),
            });
        }
        ("bin", _) => stem.to_owned(),
        ("dylib" | "cdylib" | "proc-macro", _) => format!("lib{stem}.{dylib}"),
        (other, _) => {
            return Err(NonCacheable::UnsupportedCrateType {
                crate_type: other.to_owned(),
            });
        }
    })
}

/// Every output of the compile, absolute, each with a unique role. The dependency file (if
/// requested) has role [`DEP_INFO_ROLE`].
pub(crate) fn outputs(args: &RustArgs, cwd: &Path) -> Result<Vec<OutputPath>, NonCacheable> {
    let crate_name = args
        .crate_name
        .as_deref()
        .ok_or_else(|| unknown("no --crate-name"))?;
    if args.crate_types.is_empty() {
        return Err(unknown("no --crate-type"));
    }
    let naming = naming(args.target.as_deref().and_then(|t| t.to_str()))?;
    let default_emit = [Emit {
        kind: "link".to_owned(),
        path: None,
    }];
    let emits = if args.emits.is_empty() {
        &default_emit[..]
    } else {
        &args.emits[..]
    };
    let mut crate_types: Vec<&str> = Vec::new();
    for t in &args.crate_types {
        if !crate_types.contains(&t.as_str()) {
            crate_types.push(t);
        }
    }
    if let Some(output) = &args.output {
        return named_by_o(output, emits, &crate_types, cwd);
    }
    let out_dir = args
        .out_dir
        .as_ref()
        .map_or_else(|| cwd.to_path_buf(), |d| cwd.join(d));
    let stem = format!("{crate_name}{}", args.extra_filename);
    let mut outputs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for emit in emits {
        if seen.insert(emit.kind.as_str()) {
            let named = Named {
                cwd,
                out_dir: &out_dir,
                stem: &stem,
                emit,
            };
            named.push_outputs(&crate_types, naming, &mut outputs)?;
        }
    }
    // `lib` and `rlib` together name one file once.
    let mut paths = std::collections::HashSet::new();
    outputs.retain(|o| paths.insert(o.path.clone()));
    Ok(outputs)
}

fn unknown(detail: &str) -> NonCacheable {
    NonCacheable::RustOutputsUnknown {
        detail: detail.to_owned(),
    }
}

/// `-o` names one file; with several outputs rustc adapts it in ways not modelled.
fn named_by_o(
    output: &OsStr,
    emits: &[Emit],
    crate_types: &[&str],
    cwd: &Path,
) -> Result<Vec<OutputPath>, NonCacheable> {
    let link_outputs = if emits.iter().any(|e| e.kind == "link") {
        crate_types.len()
    } else {
        0
    };
    let others = emits.iter().filter(|e| e.kind != "link").count();
    if link_outputs + others != 1 || emits.iter().any(|e| e.path.is_some()) {
        return Err(unknown("-o with more than one output"));
    }
    let role = emits.first().map_or("link", |e| e.kind.as_str());
    let role = if role == "dep-info" {
        DEP_INFO_ROLE
    } else {
        role
    };
    Ok(vec![OutputPath::new(
        role,
        absolute_output(cwd, Path::new(output)),
    )])
}

/// How one `--emit` kind names its files.
struct Named<'a> {
    cwd: &'a Path,
    out_dir: &'a Path,
    stem: &'a str,
    emit: &'a Emit,
}

impl Named<'_> {
    /// The file named `name` in the output directory, or the emit's explicit path.
    fn file(&self, name: String) -> PathBuf {
        match &self.emit.path {
            Some(path) => absolute_output(self.cwd, Path::new(path)),
            None => absolute_output(self.cwd, &self.out_dir.join(name)),
        }
    }

    /// Adds the files this emit kind writes.
    fn push_outputs(
        &self,
        crate_types: &[&str],
        naming: Naming,
        outputs: &mut Vec<OutputPath>,
    ) -> Result<(), NonCacheable> {
        let stem = self.stem;
        let single = |extension: &str| self.file(format!("{stem}.{extension}"));
        match self.emit.kind.as_str() {
            "link" => {
                if self.emit.path.is_some() && crate_types.len() > 1 {
                    return Err(unknown("--emit link=path with several crate types"));
                }
                for crate_type in crate_types {
                    let name = link_name(crate_type, stem, naming)?;
                    outputs.push(OutputPath::new(
                        format!("link-{crate_type}"),
                        self.file(name),
                    ));
                }
            }
            "metadata" => outputs.push(OutputPath::new(
                "metadata",
                self.file(format!("lib{stem}.rmeta")),
            )),
            "dep-info" => outputs.push(OutputPath::new(DEP_INFO_ROLE, single("d"))),
            "obj" => outputs.push(OutputPath::new("obj", single("o"))),
            "asm" => outputs.push(OutputPath::new("asm", single("s"))),
            "llvm-ir" => outputs.push(OutputPath::new("llvm-ir", single("ll"))),
            "llvm-bc" => outputs.push(OutputPath::new("llvm-bc", single("bc"))),
            "mir" => outputs.push(OutputPath::new("mir", single("mir"))),
            other => return Err(unknown(&format!("unknown --emit kind {other}"))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rust::args::parse;
    use std::ffi::OsString;

    fn outputs_of(args: &str) -> Result<Vec<(String, PathBuf)>, NonCacheable> {
        let args: Vec<OsString> = args.split_whitespace().map(OsString::from).collect();
        Ok(outputs(&parse(&args)?, Path::new("/w"))?
            .into_iter()
            .map(|o| (o.role, o.path))
            .collect())
    }

    /// What rustc itself says it writes for one crate type.
    fn rustc_file_name(crate_type: &str, target: Option<&str>) -> Option<String> {
        let mut cmd = std::process::Command::new("rustc");
        cmd.args(["--print", "file-names", "--crate-type", crate_type])
            .args(["--crate-name", "x", "-C", "extra-filename=-h", "-"])
            .stdin(std::process::Stdio::null());
        if let Some(target) = target {
            cmd.args(["--target", target]);
        }
        let out = cmd.output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    #[test]
    fn link_names_match_rustc_print_file_names() {
        for target in [None, Some("wasm32-unknown-unknown")] {
            for crate_type in [
                "bin",
                "lib",
                "rlib",
                "dylib",
                "cdylib",
                "staticlib",
                "proc-macro",
            ] {
                let Some(want) = rustc_file_name(crate_type, target) else {
                    // The target is not installed here, or cannot build this crate type.
                    continue;
                };
                let target_arg = target.map(|t| format!("--target {t}")).unwrap_or_default();
                let got = outputs_of(&format!(
                    "--crate-name x --crate-type {crate_type} -C extra-filename=-h --out-dir /o {target_arg} x.rs"
                ));
                if want.is_empty() {
                    // rustc drops the crate type for this target.
                    assert!(got.is_err(), "{crate_type} {target:?}");
                    continue;
                }
                let got = got.unwrap();
                assert_eq!(got.len(), 1, "{crate_type}");
                assert_eq!(
                    got[0].1,
                    Path::new("/o").join(&want),
                    "{crate_type} {target:?}"
                );
            }
        }
    }

    #[test]
    fn every_emit_kind_with_default_and_explicit_paths() {
        let got = outputs_of(
            "--crate-name c --crate-type lib --emit=dep-info,metadata,link,obj=x/c.o,asm \
             -C extra-filename=-1 --out-dir out src/lib.rs",
        )
        .unwrap();
        let want: Vec<(String, PathBuf)> = [
            ("dep-info", "/w/out/c-1.d"),
            ("metadata", "/w/out/libc-1.rmeta"),
            ("link-lib", "/w/out/libc-1.rlib"),
            ("obj", "/w/x/c.o"),
            ("asm", "/w/out/c-1.s"),
        ]
        .iter()
        .map(|(r, p)| ((*r).to_owned(), PathBuf::from(p)))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn o_names_a_single_output_only() {
        assert_eq!(
            outputs_of("--crate-name a --crate-type bin -o bin/a a.rs").unwrap(),
            vec![("link".to_owned(), PathBuf::from("/w/bin/a"))]
        );
        for args in [
            "--crate-name a --crate-type lib --emit=link,dep-info -o a.rlib a.rs",
            "--crate-type lib a.rs",
            "--crate-name a a.rs",
            "--crate-name a --crate-type lib --emit=metadata=- a.rs",
        ] {
            assert_eq!(
                outputs_of(args).unwrap_err().name(),
                "rust_outputs_unknown",
                "{args}"
            );
        }
        assert_eq!(
            outputs_of("--crate-name a --crate-type sharedlib a.rs")
                .unwrap_err()
                .name(),
            "unsupported_crate_type"
        );
    }
}

//! The rustc argument parser. Every option hoard has to understand is one row of [`FLAGS`];
//! an option not in the table is kept and hashed, so an unknown option can cost a hit but
//! never give a wrong one.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::reason::NonCacheable;

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    /// No value.
    Flag,
    /// Long options: `--opt value` or `--opt=value`. Short ones: `-X value` or `-Xvalue`.
    Value,
}

/// What an option means for caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Affects the output (or the diagnostics, which are stored too): hashed.
    Hashed,
    CrateName,
    CrateType,
    Emit,
    OutDir,
    Output,
    Target,
    Extern,
    LibDir,
    Lib,
    Codegen,
    /// Asks about the compiler instead of compiling: cargo's probes.
    Probe,
}

/// One row of the flag table.
type Spec = crate::flags::Spec<Arity, Class>;
use crate::flags::flag_table;

use Arity::{Flag, Value};

/// Every option hoard interprets. Short options (one dash, one letter) take a joined or a
/// separate value; long ones `=value` or a separate one.
const FLAGS: &[Spec] = flag_table![
    Value, Class::CrateName => "--crate-name";
    Value, Class::CrateType => "--crate-type";
    Value, Class::Emit => "--emit";
    Value, Class::OutDir => "--out-dir";
    Value, Class::Output => "-o";
    Value, Class::Target => "--target";
    Value, Class::Extern => "--extern";
    Value, Class::LibDir => "-L";
    Value, Class::Lib => "-l";
    Value, Class::Codegen => "-C", "--codegen";
    Value, Class::Probe => "--print", "--explain";
    Flag, Class::Probe => "-V", "-vV", "--version", "-h", "--help";
    // Hashed options that take a value, listed so the value is not taken for the source.
    Value, Class::Hashed =>
        "--edition", "--cfg", "--check-cfg", "--cap-lints", "--error-format", "--json", "--color",
        "--diagnostic-width", "--sysroot", "--remap-path-prefix", "--env-set", "--crate-attr",
        "--allow", "--warn", "--deny", "--forbid", "--force-warn", "-A", "-W", "-D", "-F", "-Z";
];

fn lookup(arg: &str) -> Option<(&'static Spec, Option<&str>)> {
    for s in FLAGS {
        if arg == s.name {
            return Some((s, None));
        }
        if s.arity == Flag {
            continue;
        }
        let Some(rest) = arg.strip_prefix(s.name) else {
            continue;
        };
        if s.name.starts_with("--") {
            if let Some(value) = rest.strip_prefix('=') {
                return Some((s, Some(value)));
            }
        } else if s.name.len() == 2 {
            return Some((s, Some(rest)));
        }
    }
    None
}

/// One `--emit` kind, with its explicit path when given as `kind=path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Emit {
    pub kind: String,
    pub path: Option<OsString>,
}

/// One `--extern`: the crate name (with any `priv:`-style options) and its file, if named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extern {
    pub name: OsString,
    pub path: Option<OsString>,
}

/// A rustc command's arguments, understood.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RustArgs {
    /// The crate root as written.
    pub source: OsString,
    pub crate_name: Option<String>,
    /// Every `--crate-type` value, split at commas, in order.
    pub crate_types: Vec<String>,
    /// Every `--emit` value, split at commas, in order (empty: rustc's default, `link`).
    pub emits: Vec<Emit>,
    pub out_dir: Option<OsString>,
    pub output: Option<OsString>,
    pub target: Option<OsString>,
    pub externs: Vec<Extern>,
    /// `-L [kind=]path`, as `(kind, path)`; kind is `all` when none is given.
    pub lib_dirs: Vec<(String, OsString)>,
    /// `-l [kind[:modifiers]=]name[:rename]`, as `(kind, name)`.
    pub libs: Vec<(String, String)>,
    /// `-C extra-filename`.
    pub extra_filename: String,
    /// `-C linker`.
    pub linker: Option<OsString>,
    /// Options that change the output and are hashed as written (paths in them are
    /// normalised by the key), in order, each as one argument (`--cfg=x`, `-Copt-level=1`).
    pub hashed: Vec<OsString>,
}

/// Expands `@path` argument files: rustc reads one argument per line.
pub(crate) fn expand_argfiles(
    args: &[OsString],
    cwd: &std::path::Path,
) -> Result<Vec<OsString>, NonCacheable> {
    let mut expanded = Vec::with_capacity(args.len());
    for arg in args {
        let Some(name) = arg.as_bytes().strip_prefix(b"@") else {
            expanded.push(arg.clone());
            continue;
        };
        let name = OsStr::from_bytes(name);
        let text =
            std::fs::read(cwd.join(name)).map_err(|e| NonCacheable::UnreadableResponseFile {
                path: name.to_string_lossy().into_owned(),
                detail: e.to_string(),
            })?;
        let text = text.strip_suffix(b"\n").unwrap_or(&text);
        if !text.is_empty() {
            expanded.extend(
                text.split(|&b| b == b'\n')
                    .map(|l| OsStr::from_bytes(l.strip_suffix(b"\r").unwrap_or(l)).to_owned()),
            );
        }
    }
    Ok(expanded)
}

/// The arguments without those that name outputs (`--emit`, `-o`), for a run that writes
/// only what it is given on top.
pub(crate) fn without_outputs(args: &[OsString]) -> Vec<OsString> {
    let mut kept = Vec::with_capacity(args.len());
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let bytes = arg.as_bytes();
        if bytes == b"--emit" || bytes == b"-o" {
            skip_value = true;
        } else if !(bytes.starts_with(b"--emit=") || (bytes.starts_with(b"-o") && bytes.len() > 2))
        {
            kept.push(arg.clone());
        }
    }
    kept
}

/// Parses an already `@file`-expanded rustc argument list.
pub(crate) fn parse(args: &[OsString]) -> Result<RustArgs, NonCacheable> {
    let mut parsed = RustArgs::default();
    let mut sources = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        match arg.as_bytes() {
            b"-" => return Err(NonCacheable::StdinSource),
            [b'-', ..] => {}
            _ => {
                sources.push(arg.clone());
                continue;
            }
        }
        let Some((flag, (spec, joined))) = arg.to_str().and_then(|f| Some((f, lookup(f)?))) else {
            // Unknown or not UTF-8 (`-g`, `-O`, `--test`, ...): kept and hashed.
            parsed.hashed.push(arg.clone());
            continue;
        };
        if spec.class == Class::Probe {
            return Err(NonCacheable::RustcProbe {
                flag: spec.name.to_owned(),
            });
        }
        let value: OsString = match (spec.arity, joined) {
            (Flag, _) => OsString::new(),
            (Value, Some(v)) => v.into(),
            (Value, None) => {
                let v = args.get(i).ok_or_else(|| NonCacheable::MissingArgument {
                    flag: flag.to_owned(),
                })?;
                i += 1;
                v.clone()
            }
        };
        parsed.take(spec, &value)?;
    }
    match sources.len() {
        0 => return Err(NonCacheable::NoSource),
        1 => parsed.source = sources.remove(0),
        _ => return Err(NonCacheable::MultipleSources),
    }
    Ok(parsed)
}

fn lossy(value: &OsStr) -> String {
    value.to_string_lossy().into_owned()
}

impl RustArgs {
    fn take(&mut self, spec: &Spec, value: &OsStr) -> Result<(), NonCacheable> {
        let hashed = |name: &str| {
            let mut joined = OsString::from(name);
            joined.push("=");
            joined.push(value);
            joined
        };
        match spec.class {
            Class::Hashed => self.hashed.push(hashed(spec.name)),
            Class::CrateName => {
                self.crate_name = Some(lossy(value));
                self.hashed.push(hashed(spec.name));
            }
            Class::CrateType => {
                self.crate_types
                    .extend(lossy(value).split(',').map(|t| t.trim().to_owned()));
                self.hashed.push(hashed(spec.name));
            }
            Class::Emit => {
                for part in value.as_bytes().split(|&b| b == b',') {
                    let (kind, path) = match part.iter().position(|&b| b == b'=') {
                        Some(at) => (
                            &part[..at],
                            Some(OsStr::from_bytes(&part[at + 1..]).to_owned()),
                        ),
                        None => (part, None),
                    };
                    let kind = String::from_utf8_lossy(kind).trim().to_owned();
                    if path.as_deref() == Some(OsStr::new("-")) {
                        return Err(NonCacheable::RustOutputsUnknown {
                            detail: format!("--emit {kind}=- writes to standard output"),
                        });
                    }
                    // The kinds (not the paths, which are outputs) change what is written.
                    self.hashed.push(format!("--emit-kind={kind}").into());
                    self.emits.push(Emit { kind, path });
                }
            }
            Class::OutDir => self.out_dir = Some(value.to_owned()),
            Class::Output => self.output = Some(value.to_owned()),
            Class::Target => self.target = Some(value.to_owned()),
            Class::Extern => {
                let bytes = value.as_bytes();
                let (name, path) = match bytes.iter().position(|&b| b == b'=') {
                    Some(at) => (
                        OsStr::from_bytes(&bytes[..at]).to_owned(),
                        Some(OsStr::from_bytes(&bytes[at + 1..]).to_owned()),
                    ),
                    None => (value.to_owned(), None),
                };
                self.externs.push(Extern { name, path });
            }
            Class::LibDir => {
                let bytes = value.as_bytes();
                let known = ["dependency", "crate", "native", "framework", "all"];
                let split = bytes.iter().position(|&b| b == b'=').and_then(|at| {
                    let kind = std::str::from_utf8(&bytes[..at]).ok()?;
                    known
                        .contains(&kind)
                        .then(|| (kind.to_owned(), OsStr::from_bytes(&bytes[at + 1..])))
                });
                let (kind, path) = split.unwrap_or_else(|| ("all".to_owned(), value));
                self.lib_dirs.push((kind, path.to_owned()));
            }
            Class::Lib => {
                let text = lossy(value);
                let (kind, name) = match text.split_once('=') {
                    Some((kind, name)) => (kind.to_owned(), name.to_owned()),
                    None => ("dylib".to_owned(), text.clone()),
                };
                self.hashed.push(hashed(spec.name));
                self.libs.push((kind, name));
            }
            Class::Codegen => self.codegen(value)?,
            Class::Probe => {}
        }
        Ok(())
    }

    fn codegen(&mut self, value: &OsStr) -> Result<(), NonCacheable> {
        let text = lossy(value);
        let (option, setting) = text.split_once('=').unwrap_or((&text, ""));
        let option = option.replace('_', "-");
        match option.as_str() {
            "incremental" => return Err(NonCacheable::Incremental),
            "save-temps" if !matches!(setting, "no" | "n" | "off" | "false") => {
                return Err(NonCacheable::SaveTemps);
            }
            "profile-generate" | "profile-use" | "profile-sample-use" => {
                return Err(NonCacheable::Profile {
                    flag: format!("-C {option}"),
                });
            }
            "split-debuginfo" if setting != "off" => {
                return Err(NonCacheable::SplitDwarf);
            }
            "extra-filename" => setting.clone_into(&mut self.extra_filename),
            "linker" => {
                let mut path = value.as_bytes();
                path = &path[path.iter().position(|&b| b == b'=').map_or(0, |at| at + 1)..];
                self.linker = Some(OsStr::from_bytes(path).to_owned());
                return Ok(());
            }
            _ => {}
        }
        let mut joined = OsString::from("-C");
        joined.push(value);
        self.hashed.push(joined);
        Ok(())
    }
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;

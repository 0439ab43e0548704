//! Where a compile's outputs live on disk, as named by the client.

use std::path::PathBuf;

/// One output file of a compile: its role (`object`, `dep`, ...) and the path it is written
/// to. An entry stores outputs by role; extraction writes each role to the path given here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputPath {
    /// What the file is, e.g. `object` or `dep`. Roles are unique within one entry.
    pub role: String,
    /// Absolute path of the file.
    pub path: PathBuf,
}

impl OutputPath {
    /// An output with the given role at `path`.
    pub fn new(role: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            role: role.into(),
            path: path.into(),
        }
    }
}

//! What a compile printed and returned, whether the compiler ran or the cache replayed it:
//! the one result type every compiler family, cache and placement speaks.

use std::time::Duration;

/// What a compile printed and returned. Two results are equal when they printed and
/// returned the same: how long each took is not part of what the build sees.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
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
    /// What a compile (or an action) printed and returned, with no compile time and no output
    /// digests.
    pub fn new(stdout: Vec<u8>, stderr: Vec<u8>, exit_status: i32) -> Self {
        Self {
            stdout,
            stderr,
            exit_status,
            compile_time: Duration::ZERO,
            output_digests: Vec::new(),
        }
    }

    /// A hit: what the entry stored, and the digests of the outputs it delivered.
    // Used by hoard's own binaries/crates; not part of the supported API.
    #[doc(hidden)]
    pub fn from_stored(meta: hoard_storage::EntryMeta, output_digests: Vec<[u8; 32]>) -> Self {
        Self {
            stdout: meta.stdout,
            stderr: meta.stderr,
            exit_status: meta.exit_status,
            compile_time: Duration::from_millis(meta.compile_ms),
            output_digests,
        }
    }

    /// What an entry keeps of this result (the inverse of [`CompileResult::from_stored`]):
    /// its output, status and compile time.
    // Used by hoard's own binaries/crates; not part of the supported API.
    #[doc(hidden)]
    pub fn entry_meta(&self) -> hoard_storage::EntryMeta {
        hoard_storage::EntryMeta {
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            exit_status: self.exit_status,
            compile_ms: self.compile_ms(),
        }
    }

    /// [`CompileResult::compile_time`] in whole milliseconds, as entries and the wire keep it.
    pub fn compile_ms(&self) -> u64 {
        u64::try_from(self.compile_time.as_millis()).unwrap_or(u64::MAX)
    }
}

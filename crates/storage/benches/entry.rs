//! The entry format's cost on the hit and miss paths: packing an object file and its
//! dependency file from disk into an entry (read, blake3, zstd), extracting an entry onto output
//! paths (verify, decompress, write through a temporary file and rename), and blake3 alone, for
//! objects of 4 KiB, 256 KiB and 4 MiB; and what signed entries add: verifying a remote entry
//! with and without its signature, and re-encoding a raw entry for a remote tier with and
//! without signing it. Run with `cargo bench -p hoard-storage --bench entry`.

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use hoard_storage::entry::{self, EntryFormat, EntryLimits, EntryMeta, ReadLimits};
use hoard_storage::signing::{Signer, TrustedKeys};
use hoard_storage::{CacheKey, OutputPath};

fn main() {
    divan::main();
}

const SIZES: &[usize] = &[4 << 10, 256 << 10, 4 << 20];

/// Deterministic bytes that compress roughly like an object file: half the 64-byte blocks
/// repeat an earlier block, the rest are pseudo-random.
fn object_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let r = next();
        if data.len() >= 64 && r % 2 == 0 {
            let blocks = data.len() / 64;
            let from = (usize::try_from(r >> 8).unwrap_or(0) % blocks) * 64;
            data.extend_from_within(from..from + 64);
        } else {
            for _ in 0..8 {
                data.extend_from_slice(&next().to_le_bytes());
            }
        }
    }
    data.truncate(len);
    data
}

const DEP_FILE: &[u8] = b"src/net/http_client.o: src/net/http_client.c include/net/http.h \
    include/net/socket.h include/util/buffer.h include/util/log.h /usr/include/stdio.h \
    /usr/include/stdlib.h /usr/include/string.h\n";

/// An object of `size` bytes and a dependency file in a temporary directory.
struct Outputs {
    _dir: tempfile::TempDir,
    paths: Vec<OutputPath>,
}

impl Outputs {
    fn new(size: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![
            OutputPath::new("object", dir.path().join("http_client.o")),
            OutputPath::new("dep", dir.path().join("http_client.d")),
        ];
        std::fs::write(&paths[0].path, object_bytes(size)).unwrap();
        std::fs::write(&paths[1].path, DEP_FILE).unwrap();
        Self { _dir: dir, paths }
    }
}

fn meta() -> EntryMeta {
    EntryMeta {
        stdout: Vec::new(),
        stderr: b"src/net/http_client.c:120:9: warning: unused variable 'n'\n".to_vec(),
        exit_status: 0,
        compile_ms: 180,
    }
}

#[divan::bench(args = SIZES)]
fn pack(bencher: Bencher, size: usize) {
    let outputs = Outputs::new(size);
    let (meta, limits) = (meta(), ReadLimits::default());
    bencher
        .counter(BytesCount::new(size))
        .bench(|| entry::pack(black_box(&outputs.paths), &meta, &limits).unwrap());
}

#[divan::bench(args = SIZES)]
fn extract(bencher: Bencher, size: usize) {
    let outputs = Outputs::new(size);
    let packed = entry::pack(&outputs.paths, &meta(), &ReadLimits::default()).unwrap();
    bencher
        .counter(BytesCount::new(size))
        .bench(|| entry::extract(black_box(&packed), &outputs.paths).unwrap());
}

#[divan::bench(args = SIZES)]
fn blake3_hash(bencher: Bencher, size: usize) {
    let data = object_bytes(size);
    bencher
        .counter(BytesCount::new(size))
        .bench(|| blake3::hash(black_box(&data)));
}

fn signer() -> Signer {
    Signer::from_secret_bytes(&[7; 32], "bench")
}

fn key() -> CacheKey {
    CacheKey::from(blake3::hash(b"bench key"))
}

/// A remote entry as a verifying reader checks it, without signatures (`signed` false: the
/// checksums, sizes and every file's blake3) or with them (also the content digest and one
/// Ed25519 verification).
#[divan::bench(args = SIZES, consts = [false, true])]
fn verify_remote<const SIGNED: bool>(bencher: Bencher, size: usize) {
    let outputs = Outputs::new(size);
    let packed = entry::pack(&outputs.paths, &meta(), &ReadLimits::default()).unwrap();
    let signed = entry::for_remote(&packed, &key(), Some(&signer()))
        .unwrap()
        .into_owned();
    let trusted = TrustedKeys::parse(&signer().public_line()).unwrap();
    let limits = EntryLimits::default();
    bencher.counter(BytesCount::new(size)).bench(|| {
        if SIGNED {
            entry::verify_signed(black_box(&signed), &limits, &key(), &trusted).unwrap();
        } else {
            entry::verify(black_box(&signed), &limits).unwrap();
        }
    });
}

/// A raw local entry re-encoded as remote tiers hold it (compressed), unsigned or signed:
/// what a writer's background queue does for each put.
#[divan::bench(args = SIZES, consts = [false, true])]
fn for_remote<const SIGNED: bool>(bencher: Bencher, size: usize) {
    let outputs = Outputs::new(size);
    let raw = entry::read_outputs(&outputs.paths, &ReadLimits::default())
        .unwrap()
        .pack_as(&meta(), EntryFormat::Raw)
        .unwrap();
    let signer = signer();
    let signer = SIGNED.then_some(&signer);
    bencher
        .counter(BytesCount::new(size))
        .bench(|| entry::for_remote(black_box(&raw), &key(), signer).unwrap());
}

//! The entry format's cost on the hit and miss paths: packing an object file and its
//! dependency file from disk into an entry (read, blake3, zstd), extracting an entry onto output
//! paths (verify, decompress, write through a temporary file and rename), and blake3 alone, for
//! objects of 4 KiB, 256 KiB and 4 MiB. Run with `cargo bench -p hoard-storage --bench entry`.

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use hoard_storage::OutputPath;
use hoard_storage::entry::{self, EntryMeta, ReadLimits};

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

//! Entries that declare more than they hold or more than a reader accepts: refused by their
//! header before anything is decompressed, or streamed through in bounded memory. One test
//! per process (this file has one), so the process's peak RSS is this test's own.

use std::fs;
use std::time::Instant;

use hoard_storage::OutputPath;
use hoard_storage::entry::{self, EntryError, EntryLimits, EntryMeta, ReadLimits, forge};

/// This process's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_bomb_is_refused_by_its_header_or_streamed_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("a.o");
    fs::write(&object, b"\x7fELF a real object, as far as this test cares").unwrap();
    let outputs = [OutputPath::new("object", &object)];
    let real = entry::pack(&outputs, &EntryMeta::default(), &ReadLimits::default()).unwrap();
    let declared: u64 = 512 << 20;
    let start = Instant::now();
    let bomb = forge::inflated(&real, "object", declared).unwrap();
    println!(
        "bomb of {} bytes declaring {declared}, made in {:?}",
        bomb.len(),
        start.elapsed()
    );
    assert!(bomb.len() < 64 << 10);
    let before = peak_rss_kib();

    // Under a limit below what it declares: refused from the header alone.
    let small = EntryLimits {
        max_file_size: 64 << 20,
        ..EntryLimits::default()
    };
    let start = Instant::now();
    let err = entry::verify(&bomb, &small).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    let err = entry::extract_with_limits(&bomb, &outputs, &small).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    println!("refused by its header in {:?}", start.elapsed());

    // Other roles asked for: refused before a byte is decompressed.
    let other = [OutputPath::new("dep", dir.path().join("a.d"))];
    let err = entry::extract_with_limits(&bomb, &other, &EntryLimits::default()).unwrap_err();
    assert!(matches!(err, EntryError::RoleMismatch { .. }), "{err}");

    // Within the limits: every byte decompressed, none kept, the lie found at the end.
    let start = Instant::now();
    let err = entry::verify(&bomb, &EntryLimits::default()).unwrap_err();
    assert!(err.to_string().contains("blake3"), "{err}");
    println!("verified (and refused) in {:?}", start.elapsed());
    fs::remove_file(&object).unwrap();
    let err = entry::extract(&bomb, &outputs).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert!(!object.exists(), "nothing written");
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let grew = peak_rss_kib().saturating_sub(before);
    println!("peak RSS grew by {grew} KiB reading a bomb declaring {declared} bytes");
    assert!(grew < 32 << 10, "reading the bomb cost {grew} KiB");
}

//! The entry format against real files: round trips, damage detection, and the rules on
//! which files `pack` reads and how `extract` writes.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use hoard_storage::OutputPath;
use hoard_storage::entry::{self, EntryError, EntryMeta, ReadLimits};
use proptest::prelude::*;

mod require;

fn meta() -> EntryMeta {
    EntryMeta {
        stdout: b"out".to_vec(),
        stderr: b"warning: something\n".to_vec(),
        exit_status: 0,
        compile_ms: 250,
    }
}

/// Writes `files` (role -> content) under `dir` and returns their outputs.
fn write_files(dir: &Path, files: &[(&str, &[u8])]) -> Vec<OutputPath> {
    files
        .iter()
        .map(|(role, data)| {
            let path = dir.join(format!("{role}.src"));
            fs::write(&path, data).unwrap();
            OutputPath::new(*role, path)
        })
        .collect()
}

fn small_entry(dir: &Path) -> Vec<u8> {
    let outs = write_files(
        dir,
        &[("object", b"\x7fELF object bytes"), ("dep", b"a.o: a.c\n")],
    );
    entry::pack(&outs, &meta(), &ReadLimits::default()).unwrap()
}

fn targets(dir: &Path) -> Vec<OutputPath> {
    vec![
        OutputPath::new("dep", dir.join("a.d")),
        OutputPath::new("object", dir.join("a.o")),
    ]
}

#[test]
fn pack_then_extract_restores_content_mode_and_meta() {
    let dir = tempfile::tempdir().unwrap();
    let outs = write_files(dir.path(), &[("object", b"obj"), ("dep", b"dep")]);
    fs::set_permissions(&outs[0].path, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&outs[1].path, fs::Permissions::from_mode(0o640)).unwrap();
    let packed = entry::pack(&outs, &meta(), &ReadLimits::default()).unwrap();

    let targets = targets(dir.path());
    assert_eq!(entry::extract(&packed, &targets).unwrap(), meta());
    assert_eq!(fs::read(dir.path().join("a.o")).unwrap(), b"obj");
    assert_eq!(fs::read(dir.path().join("a.d")).unwrap(), b"dep");
    let mode = |p: &str| fs::metadata(dir.path().join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("a.o"), 0o755);
    assert_eq!(mode("a.d"), 0o640);
}

#[test]
fn setuid_and_sticky_bits_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let outs = write_files(dir.path(), &[("object", b"obj")]);
    fs::set_permissions(&outs[0].path, fs::Permissions::from_mode(0o4755)).unwrap();
    let packed = entry::pack(&outs, &meta(), &ReadLimits::default()).unwrap();
    let target = dir.path().join("out.o");
    entry::extract(&packed, &[OutputPath::new("object", &target)]).unwrap();
    assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o755);
}

#[test]
fn extract_leaves_no_temporary_files_behind() {
    let dir = tempfile::tempdir().unwrap();
    let packed = small_entry(dir.path());
    let out = tempfile::tempdir().unwrap();
    entry::extract(&packed, &targets(out.path())).unwrap();
    let mut names: Vec<_> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.d", "a.o"]);
}

#[test]
fn flipping_any_single_byte_makes_extract_fail_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let packed = small_entry(dir.path());
    let out = tempfile::tempdir().unwrap();
    for i in 0..packed.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut damaged = packed.clone();
            damaged[i] ^= mask;
            let result = entry::extract(&damaged, &targets(out.path()));
            assert!(
                result.is_err(),
                "flip of byte {i} by {mask:#x} was accepted"
            );
            assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
        }
    }
}

#[test]
fn truncating_an_entry_anywhere_makes_extract_fail() {
    let dir = tempfile::tempdir().unwrap();
    let packed = small_entry(dir.path());
    let out = tempfile::tempdir().unwrap();
    for len in 0..packed.len() {
        let err = entry::extract(&packed[..len], &targets(out.path())).unwrap_err();
        assert!(err.is_corrupt(), "truncated to {len}: {err}");
    }
    let mut longer = packed.clone();
    longer.push(0);
    assert!(
        entry::extract(&longer, &targets(out.path()))
            .unwrap_err()
            .is_corrupt()
    );
}

#[test]
fn a_failed_extract_leaves_an_existing_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut packed = small_entry(dir.path());
    let last = packed.len() - 1;
    packed[last] ^= 1;
    let out = tempfile::tempdir().unwrap();
    fs::write(out.path().join("a.o"), b"previous").unwrap();
    assert!(entry::extract(&packed, &targets(out.path())).is_err());
    assert_eq!(fs::read(out.path().join("a.o")).unwrap(), b"previous");
}

#[test]
fn extract_writes_no_target_when_one_directory_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let packed = small_entry(dir.path());
    let out = tempfile::tempdir().unwrap();
    let targets = [
        OutputPath::new("object", out.path().join("a.o")),
        OutputPath::new("dep", out.path().join("missing/a.d")),
    ];
    let err = entry::extract(&packed, &targets).unwrap_err();
    assert!(matches!(err, EntryError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn extract_requires_exactly_the_stored_roles() {
    let dir = tempfile::tempdir().unwrap();
    let packed = small_entry(dir.path());
    let o = |role: &str| OutputPath::new(role, dir.path().join(format!("x.{role}")));
    for requested in [
        vec![o("object")],
        vec![o("object"), o("dep"), o("dwo")],
        vec![o("object"), o("dwo")],
        vec![o("object"), o("object")],
    ] {
        let err = entry::extract(&packed, &requested).unwrap_err();
        assert!(matches!(err, EntryError::RoleMismatch { .. }), "{err}");
        assert!(!err.is_corrupt());
    }
}

#[test]
fn extract_replaces_a_symlink_at_the_target_instead_of_writing_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let packed = small_entry(dir.path());
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("a.o");
    symlink(&victim, &target).unwrap();

    entry::extract(&packed, &targets(out.path())).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(&target).unwrap().file_type().is_file());
    assert_eq!(fs::read(&target).unwrap(), b"\x7fELF object bytes");
}

#[test]
fn pack_refuses_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let outs = write_files(dir.path(), &[("object", b"obj")]);
    let link = dir.path().join("link.o");
    symlink(&outs[0].path, &link).unwrap();
    let err = entry::pack(
        &[OutputPath::new("object", &link)],
        &meta(),
        &ReadLimits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, EntryError::Symlink { ref path } if *path == link),
        "{err}"
    );
    assert!(err.to_string().contains("link.o"));
}

#[test]
fn pack_refuses_a_directory_and_a_fifo_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let fifo = dir.path().join("fifo");
    let mut paths = vec![sub];
    if require::mkfifo(&fifo).is_ok() {
        paths.push(fifo);
    } else {
        require::unavailable(
            "pack_refuses_a_directory_and_a_fifo_without_blocking (FIFO case)",
            "mkfifo unavailable",
        );
    }
    for path in paths {
        let err = entry::pack(
            &[OutputPath::new("object", &path)],
            &meta(),
            &ReadLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, EntryError::NotRegularFile { .. }), "{err}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }
}

#[test]
fn pack_refuses_a_file_over_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let outs = write_files(dir.path(), &[("object", &[0u8; 101])]);
    let limits = ReadLimits {
        owner_uid: None,
        max_file_size: 100,
    };
    let err = entry::pack(&outs, &meta(), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            EntryError::TooLarge {
                size: 101,
                limit: 100,
                ..
            }
        ),
        "{err}"
    );
    let exact = write_files(dir.path(), &[("object", &[0u8; 100])]);
    entry::pack(&exact, &meta(), &limits).unwrap();
}

#[test]
fn pack_refuses_a_file_owned_by_another_uid() {
    let dir = tempfile::tempdir().unwrap();
    let outs = write_files(dir.path(), &[("object", b"obj")]);
    let me = fs::metadata(&outs[0].path).unwrap().uid();
    let mine = ReadLimits {
        owner_uid: Some(me),
        ..ReadLimits::default()
    };
    entry::pack(&outs, &meta(), &mine).unwrap();

    if let Err(e) = std::os::unix::fs::chown(&outs[0].path, Some(65534), Some(65534)) {
        require::unavailable(
            "pack_refuses_a_file_owned_by_another_uid (other-owner case)",
            &format!("cannot chown (not root?): {e}"),
        );
        return;
    }
    let err = entry::pack(&outs, &meta(), &mine).unwrap_err();
    assert!(
        matches!(err, EntryError::NotOwned { owner: 65534, expected, .. } if expected == me),
        "{err}"
    );
    // Without an owner rule the same file is accepted.
    entry::pack(&outs, &meta(), &ReadLimits::default()).unwrap();
}

#[test]
fn unpack_blob_refuses_damage_and_truncation() {
    let blob = entry::pack_blob(b"a manifest");
    for i in 0..blob.len() {
        let mut damaged = blob.clone();
        damaged[i] ^= 0x10;
        assert!(
            entry::unpack_blob(&damaged).is_err(),
            "flip at {i} accepted"
        );
    }
    for len in 0..blob.len() {
        assert!(entry::unpack_blob(&blob[..len]).is_err());
    }
}

fn roles_and_files() -> impl Strategy<Value = BTreeMap<String, (Vec<u8>, u32)>> {
    prop::collection::btree_map(
        "[a-z][a-z0-9_.-]{0,11}",
        (
            prop::collection::vec(any::<u8>(), 0..4096),
            prop::sample::select(vec![0o644u32, 0o755, 0o600, 0o444, 0o700]),
        ),
        0..5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn pack_then_extract_round_trips_arbitrary_outputs(
        files in roles_and_files(),
        stdout in prop::collection::vec(any::<u8>(), 0..512),
        stderr in prop::collection::vec(any::<u8>(), 0..512),
        exit_status in any::<i32>(),
        compile_ms in any::<u64>(),
    ) {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let mut outs = Vec::new();
        let mut targets = Vec::new();
        for (i, (role, (data, mode))) in files.iter().enumerate() {
            let path = src.path().join(format!("{i}.in"));
            fs::write(&path, data).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
            outs.push(OutputPath::new(role.clone(), path));
            targets.push(OutputPath::new(role.clone(), dst.path().join(format!("{i}.out"))));
        }
        targets.reverse();
        let meta = EntryMeta { stdout, stderr, exit_status, compile_ms };
        prop_assert_eq!(
            entry::stored_compile_ms(&entry::pack(&outs, &meta, &ReadLimits::default()).unwrap()),
            Some(compile_ms)
        );
        let packed = entry::pack(&outs, &meta, &ReadLimits::default()).unwrap();
        prop_assert_eq!(entry::extract(&packed, &targets).unwrap(), meta);
        for target in &targets {
            let (data, mode) = &files[&target.role];
            prop_assert_eq!(&fs::read(&target.path).unwrap(), data);
            prop_assert_eq!(fs::metadata(&target.path).unwrap().mode() & 0o777, *mode);
        }
    }

    #[test]
    fn blobs_round_trip(payload in prop::collection::vec(any::<u8>(), 0..8192)) {
        prop_assert_eq!(entry::unpack_blob(&entry::pack_blob(&payload)).unwrap(), payload);
    }

    #[test]
    fn extract_and_unpack_blob_of_arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
        with_preamble in any::<bool>(),
    ) {
        let mut input = Vec::new();
        if with_preamble {
            input.extend_from_slice(b"HOARDENT");
            input.extend_from_slice(&entry::ENTRY_FORMAT_VERSION.to_le_bytes());
        }
        input.extend_from_slice(&bytes);
        let dir = tempfile::tempdir().unwrap();
        prop_assert!(entry::extract(&input, &targets(dir.path())).is_err());
        prop_assert!(entry::unpack_blob(&input).is_err());
        prop_assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn any_single_byte_change_to_an_arbitrary_entry_is_refused(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        stdout in prop::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let src = tempfile::tempdir().unwrap();
        let outs = write_files(src.path(), &[("object", &data)]);
        let meta = EntryMeta { stdout, stderr: vec![], exit_status: 1, compile_ms: 90 };
        let mut packed = entry::pack(&outs, &meta, &ReadLimits::default()).unwrap();
        let i = at.index(packed.len());
        packed[i] ^= mask;
        let target = src.path().join("target.o");
        prop_assert!(entry::extract(&packed, &[OutputPath::new("object", &target)]).is_err());
        prop_assert!(!target.exists());
    }

    #[test]
    fn any_truncation_of_an_arbitrary_entry_is_refused(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        at in any::<prop::sample::Index>(),
    ) {
        let mut packed = entry::pack_blob(&data);
        packed.truncate(at.index(packed.len()));
        prop_assert!(entry::unpack_blob(&packed).unwrap_err().is_corrupt());
    }
}

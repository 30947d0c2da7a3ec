//! The kanibako a user installs (the quick start's, kept by CI as
//! `KANIBAKO_TEST_INSTALLED`): statically linked on glibc Linux, so the copy mounted
//! into every box runs in any rig, even one with no C library at all. Skips when the
//! variable is unset (a developer's `cargo test`); with it set, a missing engine fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Env, engine_required};

fn installed() -> Option<PathBuf> {
    let Some(p) = std::env::var_os("KANIBAKO_TEST_INSTALLED") else {
        eprintln!(
            "skipped: KANIBAKO_TEST_INSTALLED is not set (CI sets it to the quick start's kanibako)"
        );
        return None;
    };
    Some(PathBuf::from(p))
}

/// Whether an ELF file asks for a dynamic loader (has a `PT_INTERP` program header).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let o = phoff + i * size;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == PT_INTERP
    })
}

#[test]
fn the_test_binary_itself_is_dynamic_so_the_check_can_tell() {
    let exe = std::fs::read(env!("CARGO_BIN_EXE_kanibako")).unwrap();
    // A plain `cargo build` links glibc dynamically; the check must see that.
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(has_interpreter(&exe));
    }
}

/// A rig with no C library: nothing but a statically linked busybox as `/bin/sh`.
/// Made from the host's `busybox` (Debian's busybox-static), if it is static.
fn rig_without_libc(t: &Path) -> Option<String> {
    let busybox = Path::new("/bin/busybox");
    let elf = std::fs::read(busybox).ok()?;
    if has_interpreter(&elf) {
        return None;
    }
    let root = t.join("root");
    for d in ["bin", "tmp", "home/agent"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let tar = t.join("rig.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let image = format!("localhost/kanibako-test-nolibc:{}", std::process::id());
    let out = Command::new("podman")
        .args(["import", "-q"])
        .arg(&tar)
        .arg(&image)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    Some(image)
}

#[test]
fn the_installed_kanibako_runs_in_a_rig_with_no_c_library() {
    let Some(bin) = installed() else { return };
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert!(
            !has_interpreter(&std::fs::read(&bin).unwrap()),
            "{} is dynamically linked",
            bin.display()
        );
    }
    let podman_works = Command::new("podman")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !podman_works {
        assert!(!engine_required(), "podman is required here");
        eprintln!("skipped: no podman");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let Some(image) = rig_without_libc(t.path()) else {
        assert!(
            !engine_required(),
            "a static /bin/busybox is required here (apt-get install busybox-static)"
        );
        eprintln!("skipped: no static /bin/busybox");
        return;
    };
    // The installed kanibako on the host starts the box and its hub; the same file,
    // mounted in, is the client that asks the hub across the box's socket.
    let e = Env::with_system_path().with_exe(&bin);
    let p = e.dir("p/nolibc");
    let r = e.run(
        &p,
        &[
            "shell",
            "--rig",
            &image,
            "--",
            "/home/agent/.local/bin/kanibako",
            "crab",
            "helper",
            "list",
        ],
    );
    let _ = Command::new("podman").args(["rmi", "-f", &image]).output();
    let r = r.ok();
    assert_eq!(r.stdout.trim(), "No helpers.", "{r:?}");
}

//! The kanibako a user installs (the quick start's, kept by CI as
//! `KANIBAKO_TEST_INSTALLED`): statically linked on glibc Linux, so the copy mounted
//! into every box runs in any rig, even one with no C library at all. Skips when the
//! variable is unset (a developer's `cargo test`); with it set, a missing engine fails.

use std::path::PathBuf;
use std::process::Command;

use crate::support::engine_required;

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
    // An image holding nothing but an empty home: no shell, no loader, no libc.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("root/home/agent")).unwrap();
    let tar = t.path().join("empty.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(t.path().join("root"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let image = format!("localhost/kanibako-test-empty:{}", std::process::id());
    let out = Command::new("podman")
        .args(["import", "-q"])
        .arg(&tar)
        .arg(&image)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let run = Command::new("podman")
        .args(["run", "--rm", "--network=none", "--cap-drop=ALL", "-v"])
        .arg(format!("{}:/k:ro", bin.display()))
        .args([&image, "/k"])
        .args(["crab", "helper", "list"])
        .output()
        .unwrap();
    let _ = Command::new("podman").args(["rmi", "-f", &image]).output();
    let stderr = String::from_utf8_lossy(&run.stderr);
    // It ran (a loader failure is "exec /k: no such file or directory") and said,
    // as it does in any box without a hub, where the hub would be.
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(stderr.contains("/run/kanibako"), "{stderr}");
}

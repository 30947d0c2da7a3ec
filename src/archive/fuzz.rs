//! A deterministic, seeded fuzz run of the extract side: hostile tar streams built from
//! dangerous names, types and link targets, and random damage to good streams, are
//! unpacked into a temporary target. None may panic, and none may write anything
//! outside the target or leave a link there that points out of it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::member::OutsideLinks;
use super::unpack::{Rules, unpack};
use crate::fstree::Dir;
use crate::fstree::link::stays_inside;
use crate::fuzzing::Rng;

fn header(name: &[u8], kind: tar::EntryType, size: u64, link: &[u8]) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    // Written raw: the builder's own checks would refuse the hostile names we want.
    let old = h.as_old_mut();
    let n = name.len().min(old.name.len());
    old.name[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(old.linkname.len());
    old.linkname[..l].copy_from_slice(&link[..l]);
    h.set_cksum();
    h
}

fn hostile(rng: &mut Rng, outside: &Path) -> Vec<u8> {
    let escape = format!("{}/pwned", outside.display());
    let names: Vec<Vec<u8>> = [
        "h/",
        "h",
        "h/a",
        "h/d/",
        "h/d/e",
        "h/l",
        "h/l/x",
        "h/l/../x",
        "h/../x",
        "../x",
        "h/./a",
        "./h/a",
        "/h/a",
        "h//d//f",
        "x/y",
        "h/d/../../..",
        "h/kanibako-archive-info.txt",
        "h/.kanibako.lock",
        "h/env",
        "",
        ".",
        "..",
        "h/\u{0}x",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        escape.clone().into_bytes(),
        format!("h/{}", "n".repeat(300)).into_bytes(),
    ])
    .collect();
    let targets: Vec<Vec<u8>> = [
        "a",
        "d",
        "d/e",
        "..",
        "../..",
        "../../..",
        "/etc",
        "h/a",
        "h/d",
        "h/l",
        "l/x",
        "./a",
        "d/../..",
        "",
        "h/../../x",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        outside.as_os_str().as_encoded_bytes().to_vec(),
        escape.into_bytes(),
    ])
    .collect();
    use tar::EntryType as T;
    let kinds = [
        T::Regular,
        T::Directory,
        T::Symlink,
        T::Link,
        T::Char,
        T::Block,
        T::Fifo,
        T::Continuous,
        T::GNUSparse,
        T::GNULongName,
        T::XHeader,
        T::new(b'V'),
    ];
    let mut out = Vec::new();
    for _ in 0..1 + rng.next() % 12 {
        let name = rng.pick(&names).clone();
        let kind = *rng.pick(&kinds);
        let link = rng.pick(&targets).clone();
        let data: Vec<u8> = match kind {
            T::Regular | T::Continuous | T::GNULongName | T::XHeader => {
                (0..rng.next() % 600).map(|_| rng.next() as u8).collect()
            }
            _ => Vec::new(),
        };
        let h = header(&name, kind, data.len() as u64, &link);
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    // and sometimes damage it
    if rng.next().is_multiple_of(3) {
        for _ in 0..1 + rng.next() % 16 {
            let i = (rng.next() as usize) % out.len();
            out[i] = rng.next() as u8;
        }
    }
    if rng.next().is_multiple_of(5) {
        let n = (rng.next() as usize) % (out.len() + 1);
        out.truncate(n);
    }
    out
}

/// Every path below `dir`, not following links; each link must stay inside.
fn check_tree(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let t = e.file_type().unwrap();
        if t.is_symlink() {
            let rel = p.strip_prefix(root).unwrap();
            let target = fs::read_link(&p).unwrap();
            assert!(
                stays_inside(rel, target.as_os_str().as_encoded_bytes()),
                "{} -> {} leaves the target",
                rel.display(),
                target.display()
            );
        } else if t.is_dir() {
            check_tree(root, &p, out);
        } else {
            assert!(t.is_file(), "{} is a special file", p.display());
        }
        out.push(p);
    }
}

#[test]
fn hostile_streams_never_escape_or_panic() {
    let iterations = crate::fuzzing::iterations(1000);
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), "k").unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let ok = || -> io::Result<()> { Ok(()) };
    let mut passed = 0;
    for i in 0..iterations {
        let stream = hostile(&mut rng, &outside);
        let target = t.path().join(format!("target{i}"));
        fs::create_dir(&target).unwrap();
        for (single_top, links) in [
            (true, OutsideLinks::Refuse),
            (false, OutsideLinks::LeaveOut),
        ] {
            let rules = Rules {
                single_top,
                outside_links: links,
                capture: &["kanibako-archive-info.txt"],
                drop: &[".kanibako.lock"],
                secret: &["env"],
            };
            let r = unpack(&stream[..], &Dir::open(&target).unwrap(), &rules, &ok);
            passed += usize::from(r.is_ok());
            let mut seen = Vec::new();
            check_tree(&target, &target, &mut seen);
            crate::fstree::removal::empty_dir(&Dir::open(&target).unwrap()).unwrap();
        }
        fs::remove_dir(&target).unwrap();
        let names: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keep"], "case {i} wrote outside the target");
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            1,
            "case {i} left something beside it"
        );
    }
    // the generator must also make streams that pass, or it tests only refusals
    assert!(passed > 0, "none of {iterations} streams passed");
}

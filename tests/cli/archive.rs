//! `box archive` and `box extract` against a throw-away home, and with the Python tool
//! on the other side.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Env, tree};

fn env() -> Env {
    let e = Env::new();
    e.fake_podman();
    // the git checks run the real git
    e.script("git", "exec /usr/bin/git \"$@\"\n");
    e
}

fn meta(e: &Env, name: &str) -> PathBuf {
    e.data().join("boxes").join(name)
}

/// A box `app` whose home holds a note, a login and an env file.
fn lived_in(e: &Env) -> PathBuf {
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    let m = meta(e, "app");
    fs::write(m.join("shell/note"), "hi\n").unwrap();
    fs::create_dir_all(m.join("shell/.claude")).unwrap();
    fs::write(
        m.join("shell/.claude/.credentials.json"),
        r#"{"claudeAiOauth":{"accessToken":"secret"}}"#,
    )
    .unwrap();
    fs::write(m.join("shell/.claude/settings.json"), "{}").unwrap();
    fs::write(m.join("env"), "API_KEY=secret\n").unwrap();
    std::os::unix::fs::symlink("note", m.join("shell/note-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", m.join("shell/host-link")).unwrap();
    p
}

fn members(file: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("tJf").arg(file).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn the_archive(dir: &Path) -> PathBuf {
    let found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txz"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn archive_purge_extract_round_trip() {
    let e = env();
    let p = lived_in(&e);
    let out = e.dir("out");
    let hash = kanibako::boxes::project_hash(&p);
    // by name, from another directory
    let r = e.run(&out, &["box", "archive", "app"]).ok();
    assert!(r.stdout.contains("Archive created: "), "{r:?}");
    assert!(r.stderr.contains("Left out credentials: shell/.claude/.credentials.json, env (--include-credentials archives them)"), "{r:?}");
    assert!(
        r.stderr
            .contains("Left out 1 link(s) pointing outside the box: shell/host-link"),
        "{r:?}"
    );
    let file = the_archive(&out);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("kanibako-app-") && name.ends_with("Z.txz"),
        "{name}"
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let list = members(&file);
    assert_eq!(
        list[0].trim_end_matches('/'),
        hash,
        "one top directory: {list:?}"
    );
    assert!(list.iter().all(|m| m.starts_with(&hash)), "{list:?}");
    for want in [
        "/project.yaml",
        "/shell/note",
        "/shell/note-link",
        "/shell/.claude/settings.json",
        "/kanibako-archive-info.txt",
    ] {
        assert!(list.iter().any(|m| m.ends_with(want)), "{want}: {list:?}");
    }
    for never in [".credentials.json", "/env", "host-link", ".kanibako.lock"] {
        assert!(
            !list.iter().any(|m| m.ends_with(never)),
            "{never}: {list:?}"
        );
    }
    let info = Command::new("tar")
        .args(["xJOf"])
        .arg(&file)
        .arg(format!("{hash}/kanibako-archive-info.txt"))
        .output()
        .unwrap();
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(
        info.starts_with(&format!(
            "Project path: {}\nProject hash: {hash}\nArchive date: ",
            p.display()
        )),
        "{info}"
    );
    assert!(
        info.contains("\nManifest sha256:\n") && info.contains("\n  d - shell\n"),
        "{info}"
    );

    e.run(&e.home, &["rm", "app", "--purge", "--force"]).ok();
    assert!(!meta(&e, "app").exists());
    let r = e
        .run(&out, &["box", "extract", &name, p.to_str().unwrap()])
        .ok();
    assert_eq!(
        r.stdout,
        format!("Session data restored to {}\n", p.display())
    );
    assert!(r.stderr.contains("Project name: app"), "{r:?}");
    assert!(e.names_yaml().contains(&format!("app: {}", p.display())));
    let m = meta(&e, "app");
    assert_eq!(fs::read_to_string(m.join("shell/note")).unwrap(), "hi\n");
    assert_eq!(
        fs::read_link(m.join("shell/note-link")).unwrap(),
        Path::new("note")
    );
    assert!(!m.join("shell/.claude/.credentials.json").exists());
    assert!(!m.join("env").exists());
    assert!(!m.join("kanibako-archive-info.txt").exists());
    let doc = fs::read_to_string(m.join("project.yaml")).unwrap();
    assert!(
        doc.contains(&format!("shell: {}", m.join("shell").display())),
        "{doc}"
    );
    let r = e.run(&p, &["box", "info"]).ok();
    assert!(r.stdout.contains("  Name:         app\n"), "{r:?}");
    assert!(
        fs::read_dir(e.data().join("boxes")).unwrap().all(|d| !d
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')),
        "no staging left"
    );
}

#[test]
fn credentials_only_on_request_and_then_private() {
    let e = env();
    let p = lived_in(&e);
    let out = e.dir("out");
    e.run(
        &out,
        &["box", "archive", "app", "with.txz", "--include-credentials"],
    )
    .ok();
    let list = members(&out.join("with.txz"));
    assert!(
        list.iter()
            .any(|m| m.ends_with("/shell/.claude/.credentials.json")),
        "{list:?}"
    );
    assert!(list.iter().any(|m| m.ends_with("/env")), "{list:?}");
    // an existing file is not replaced without --force
    let r = e.run(&out, &["box", "archive", "app", "with.txz"]).fails();
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains("--force"),
        "{r:?}"
    );
    e.run(
        &out,
        &[
            "box",
            "archive",
            "app",
            "with.txz",
            "--force",
            "--include-credentials",
        ],
    )
    .ok();
    fs::set_permissions(
        meta(&e, "app").join("env"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let r = e
        .run(
            &out,
            &["box", "extract", "with.txz", p.to_str().unwrap(), "--force"],
        )
        .ok();
    assert!(r.stdout.contains("Session data restored to"), "{r:?}");
    let m = meta(&e, "app");
    for secret in ["env", "shell/.claude/.credentials.json"] {
        assert_eq!(
            fs::metadata(m.join(secret)).unwrap().permissions().mode() & 0o777,
            0o600,
            "{secret}"
        );
    }
}

#[test]
fn extract_names_new_boxes_and_asks_before_replacing_one() {
    let e = env();
    lived_in(&e);
    let out = e.dir("out");
    e.run(&out, &["box", "archive", "app", "a.txz"]).ok();
    let copy = e.home.join("p/copy");
    let r = e.run(
        &out,
        &[
            "box",
            "extract",
            "a.txz",
            copy.to_str().unwrap(),
            "--name",
            "twin",
        ],
    );
    // a different directory: the path mismatch question, which needs a terminal
    let r = r.fails();
    assert!(r.stdout.contains("Warning: Project path mismatch"), "{r:?}");
    assert!(
        !copy.exists() && !meta(&e, "twin").exists(),
        "nothing left behind"
    );
    let r = e
        .run(
            &out,
            &[
                "box",
                "extract",
                "a.txz",
                copy.to_str().unwrap(),
                "--name",
                "twin",
                "--force",
            ],
        )
        .ok();
    assert!(r.stderr.contains("Project name: twin"), "{r:?}");
    assert!(
        e.names_yaml()
            .contains(&format!("twin: {}", copy.display()))
    );
    assert_eq!(
        fs::read_to_string(meta(&e, "twin").join("shell/note")).unwrap(),
        "hi\n"
    );
    // its own record, not the source's (upstream defect 9)
    let doc = fs::read_to_string(meta(&e, "twin").join("project.yaml")).unwrap();
    assert!(
        doc.contains("name: twin") && !doc.contains("boxes/app"),
        "{doc}"
    );

    // an existing box: asked first, refused without a terminal
    fs::write(meta(&e, "twin").join("shell/note"), "changed\n").unwrap();
    let r = e.run(&out, &["box", "extract", "a.txz", "twin"]).fails();
    assert!(
        r.stderr.contains("Replace all data of box 'twin'")
            && r.stderr.contains("hint: pass --force"),
        "{r:?}"
    );
    assert_eq!(
        fs::read_to_string(meta(&e, "twin").join("shell/note")).unwrap(),
        "changed\n"
    );
    e.run(&out, &["box", "extract", "a.txz", "twin", "--force"])
        .ok();
    assert_eq!(
        fs::read_to_string(meta(&e, "twin").join("shell/note")).unwrap(),
        "hi\n"
    );
    // --name cannot rename an existing box; a taken name is refused
    let r = e
        .run(
            &out,
            &["box", "extract", "a.txz", "twin", "--name", "x", "--force"],
        )
        .fails();
    assert!(r.stderr.contains("--name names a new box only"), "{r:?}");
    let r = e
        .run(
            &out,
            &[
                "box",
                "extract",
                "a.txz",
                e.home.join("p/third").to_str().unwrap(),
                "--name",
                "app",
                "--force",
            ],
        )
        .fails();
    assert!(
        r.stderr.contains("Name 'app' is already registered"),
        "{r:?}"
    );
    assert!(!e.home.join("p/third").exists());
}

/// A tar stream written header by header (hostile names pass untouched), xz-compressed.
fn txz(members: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, t, data, link) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*t);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
    enc.write_all(&tar).unwrap();
    enc.finish().unwrap()
}

#[test]
fn bad_archives_are_refused_with_one_line_and_nothing_left() {
    use tar::EntryType as T;
    let e = env();
    let p = lived_in(&e);
    let out = e.dir("out");
    e.run(&out, &["box", "archive", "app", "good.txz"]).ok();
    let good = fs::read(out.join("good.txz")).unwrap();
    let info = b"Project path: /x/app\nProject hash: h\n";
    // a good archive whose manifest no longer matches one member
    let hash = kanibako::boxes::project_hash(&p);
    let tampered = {
        let dir = e.dir("unpacked");
        assert!(
            Command::new("tar")
                .arg("xJf")
                .arg(out.join("good.txz"))
                .arg("-C")
                .arg(&dir)
                .status()
                .unwrap()
                .success()
        );
        fs::write(dir.join(&hash).join("shell/note"), "evil\n").unwrap();
        let f = out.join("tampered.txz");
        assert!(
            Command::new("tar")
                .arg("cJf")
                .arg(&f)
                .arg("-C")
                .arg(&dir)
                .arg(&hash)
                .status()
                .unwrap()
                .success()
        );
        fs::remove_dir_all(&dir).unwrap();
        fs::read(f).unwrap()
    };
    let escape = e.home.join("escaped");
    let esc = escape.to_str().unwrap().to_owned();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            txz(&[
                ("h/", T::Directory, b"", None),
                ("h/../../escaped", T::Regular, b"x", None),
                ("h/kanibako-archive-info.txt", T::Regular, info, None),
            ]),
            "'..'",
        ),
        (
            "absolute",
            txz(&[(esc.as_str(), T::Regular, b"x", None)]),
            "absolute",
        ),
        (
            "link-out",
            txz(&[
                ("h/", T::Directory, b"", None),
                ("h/l", T::Symlink, b"", Some("/etc")),
                ("h/kanibako-archive-info.txt", T::Regular, info, None),
            ]),
            "pointing outside",
        ),
        (
            "through-link",
            txz(&[
                ("h/l", T::Symlink, b"", Some(".")),
                ("h/l/x", T::Regular, b"x", None),
            ]),
            "below a member",
        ),
        (
            "fifo",
            txz(&[
                ("h/", T::Directory, b"", None),
                ("h/fifo", T::Fifo, b"", None),
            ]),
            "FIFO",
        ),
        (
            "device",
            txz(&[
                ("h/", T::Directory, b"", None),
                ("h/dev", T::Char, b"", None),
            ]),
            "device node",
        ),
        (
            "hardlink-out",
            txz(&[
                ("h/", T::Directory, b"", None),
                ("h/hl", T::Link, b"", Some("/etc/passwd")),
            ]),
            "hard link",
        ),
        (
            "twice",
            txz(&[
                ("h/a", T::Regular, b"1", None),
                ("h/a", T::Regular, b"2", None),
            ]),
            "appears twice",
        ),
        (
            "no-info",
            txz(&[
                ("h/", T::Directory, b"", None),
                ("h/project.yaml", T::Regular, b"", None),
            ]),
            "not a kanibako archive",
        ),
        (
            "manifest",
            tampered,
            "does not match its manifest: shell/note differs",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "reading the archive",
        ),
        ("not-xz", b"just some text".to_vec(), "reading the archive"),
    ];
    let target = e.home.join("p/new");
    let before = tree(&e.data());
    let names = e.names_yaml();
    for (label, bytes, want) in cases {
        let f = out.join(format!("{label}.txz"));
        fs::write(&f, bytes).unwrap();
        let r = e
            .run(
                &out,
                &[
                    "box",
                    "extract",
                    f.to_str().unwrap(),
                    target.to_str().unwrap(),
                    "--force",
                ],
            )
            .fails();
        assert!(r.stderr.contains(want), "{label}: {r:?}");
        assert!(
            r.stderr.contains("hint: nothing was written"),
            "{label}: {r:?}"
        );
        assert!(!target.exists(), "{label}: the target was made");
        assert!(!escape.exists(), "{label}: wrote outside");
        assert_eq!(tree(&e.data()), before, "{label}: data changed");
        assert_eq!(e.names_yaml(), names, "{label}: registry changed");
        // into the existing box too: its data stays as it was
        let m = tree(&meta(&e, "app"));
        e.run(
            &out,
            &["box", "extract", f.to_str().unwrap(), "app", "--force"],
        )
        .fails();
        assert_eq!(tree(&meta(&e, "app")), m, "{label}: the box changed");
    }
    let r = e.run(&out, &["box", "extract", "missing.txz"]).fails();
    assert!(r.stderr.contains("Archive file not found"), "{r:?}");
    let r = e.run(&out, &["box", "extract"]).fails();
    assert!(
        r.stderr.contains("specify an archive file, or use --all"),
        "{r:?}"
    );
    let r = e.run(&out, &["box", "archive"]).fails();
    assert!(
        r.stderr.contains("specify a project path, or use --all"),
        "{r:?}"
    );
}

#[test]
fn git_checks_as_upstream() {
    let e = env();
    let p = lived_in(&e);
    let git = |args: &[&str]| {
        let s = Command::new("git")
            .arg("-C")
            .arg(&p)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(s.status.success(), "{s:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    fs::write(p.join("f"), "1").unwrap();
    git(&["add", "f"]);
    git(&["commit", "-qm", "one"]);
    fs::write(p.join("f"), "2").unwrap();
    let out = e.dir("out");
    let r = e.run(&out, &["box", "archive", "app"]).fails();
    assert!(
        r.stderr.contains("Uncommitted changes detected in"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("hint: Commit your changes or use --allow-uncommitted to override."),
        "{r:?}"
    );
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        0,
        "no file, not even a temporary one"
    );
    e.run(
        &out,
        &["box", "archive", "app", "a.txz", "--allow-uncommitted"],
    )
    .ok();
    let hash = kanibako::boxes::project_hash(&p);
    let info = Command::new("tar")
        .args(["xJOf"])
        .arg(out.join("a.txz"))
        .arg(format!("{hash}/kanibako-archive-info.txt"))
        .output()
        .unwrap();
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(
        info.contains("\nGit repository: yes\nBranch: main\nCommit: "),
        "{info}"
    );
    // extracting where HEAD differs asks first
    git(&["commit", "-qam", "two"]);
    let r = e.run(&out, &["box", "extract", "a.txz", "app"]).fails();
    assert!(r.stderr.contains("hint: pass --force"), "{r:?}");
}

#[test]
fn every_box_archived_and_extracted_at_once() {
    let e = env();
    for n in ["one", "two"] {
        let p = e.dir(&format!("p/{n}"));
        e.run(&p, &["create"]).ok();
        fs::write(meta(&e, n).join("shell/note"), n).unwrap();
    }
    let out = e.dir("out");
    let r = e.run(&out, &["box", "archive", "--all", "-q"]).ok();
    assert!(
        r.stdout.contains("Found 2 project(s) to archive:")
            && r.stdout.contains("Archived 2 project(s)."),
        "{r:?}"
    );
    for n in ["one", "two"] {
        e.run(&e.home, &["rm", n, "--purge", "--force"]).ok();
    }
    let r = e.run(&out, &["box", "extract", "--all"]).fails();
    assert!(r.stderr.contains("hint: pass --force"), "{r:?}");
    let r = e
        .run(&out, &["box", "extract", "--all", "--force", "-q"])
        .ok();
    assert!(
        r.stdout.contains("Found 2 archive(s) to restore:")
            && r.stdout.contains("Restored 2 archive(s)."),
        "{r:?}"
    );
    for n in ["one", "two"] {
        assert_eq!(
            fs::read_to_string(meta(&e, n).join("shell/note")).unwrap(),
            n
        );
    }
}

/// The Python tool, run in `e`'s home (skipped without KANIBAKO_TEST_PYTHON, required
/// with KANIBAKO_TEST_REQUIRE_PYTHON=1).
pub(crate) fn python(e: &Env) -> Option<impl Fn(&Path, &[&str]) -> String + '_> {
    let Ok(py) = std::env::var("KANIBAKO_TEST_PYTHON") else {
        assert!(
            std::env::var("KANIBAKO_TEST_REQUIRE_PYTHON").is_err(),
            "KANIBAKO_TEST_PYTHON must point at the Python tool's `kanibako` in CI"
        );
        eprintln!("skipped: set KANIBAKO_TEST_PYTHON to the Python kanibako to run");
        return None;
    };
    Some(move |cwd: &Path, args: &[&str]| {
        let out = Command::new(&py)
            .env_clear()
            .env("HOME", &e.home)
            .env("PATH", "/usr/bin:/bin")
            .current_dir(cwd)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    })
}

#[test]
fn the_python_tool_extracts_ours_and_we_extract_its() {
    // ours → Python
    let e = env();
    lived_in(&e);
    let out = e.dir("out");
    e.run(&out, &["box", "archive", "app", "ours.txz"]).ok();
    let theirs = Env::new();
    let Some(py) = python(&theirs) else { return };
    let q = theirs.dir("p/app");
    py(&q, &["create"]);
    let r = py(
        &q,
        &[
            "box",
            "extract",
            out.join("ours.txz").to_str().unwrap(),
            q.to_str().unwrap(),
            "--force",
        ],
    );
    assert!(r.contains("Session data restored to"), "{r}");
    let pm = theirs.data().join("boxes/app");
    assert_eq!(fs::read_to_string(pm.join("shell/note")).unwrap(), "hi\n");
    // (as a link or, where its copy follows links, as a copy of the file)
    assert_eq!(
        fs::read_to_string(pm.join("shell/note-link")).unwrap(),
        "hi\n"
    );
    assert!(
        !pm.join("kanibako-archive-info.txt").exists(),
        "the info file (and its manifest) is gone"
    );

    // Python → ours: its archive holds the login it found (upstream defect 7)
    fs::write(pm.join("shell/from-python"), "py\n").unwrap();
    py(
        &q,
        &[
            "box",
            "archive",
            q.to_str().unwrap(),
            theirs.home.join("py.txz").to_str().unwrap(),
            "--allow-uncommitted",
        ],
    );
    let fresh = env();
    let target = fresh.home.join("p/app");
    let r = fresh
        .run(
            &fresh.home,
            &[
                "box",
                "extract",
                theirs.home.join("py.txz").to_str().unwrap(),
                target.to_str().unwrap(),
                "--name",
                "frompy",
            ],
        )
        .ok();
    assert!(r.stderr.contains("the archive has no manifest"), "{r:?}");
    let m = meta(&fresh, "frompy");
    assert_eq!(
        fs::read_to_string(m.join("shell/from-python")).unwrap(),
        "py\n"
    );
    assert_eq!(fs::read_to_string(m.join("shell/note")).unwrap(), "hi\n");
    assert!(
        !m.join(".kanibako.lock").exists(),
        "another machine's lock is not brought over"
    );
    assert!(
        fresh
            .names_yaml()
            .contains(&format!("frompy: {}", target.display()))
    );
    let r = fresh.run(&target, &["box", "info"]).ok();
    assert!(
        r.stdout
            .contains(&format!("  Shell:        {}\n", m.join("shell").display())),
        "{r:?}"
    );
}

#[test]
fn a_python_vault_snapshot_is_listed_and_restored() {
    let e = env();
    let p = e.dir("p/app");
    let Some(py) = python(&e) else { return };
    py(&p, &["create"]);
    fs::create_dir_all(p.join("vault/rw/sub")).unwrap();
    fs::write(p.join("vault/rw/sub/data"), "from python\n").unwrap();
    let r = py(&p, &["box", "vault", "snapshot"]);
    let name = r
        .trim()
        .strip_prefix("Snapshot created: ")
        .unwrap()
        .to_owned();
    assert!(name.ends_with(".tar.xz"), "{name}");
    let listed = e.run(&p, &["box", "vault", "list"]).ok().stdout;
    assert!(listed.starts_with(&format!("  {name}  ")), "{listed}");
    assert_eq!(
        py(&p, &["box", "vault", "list"]),
        listed,
        "the same listing"
    );
    fs::write(p.join("vault/rw/sub/data"), "changed\n").unwrap();
    e.run(&p, &["box", "vault", "restore", &name, "--force"])
        .ok();
    assert_eq!(
        fs::read_to_string(p.join("vault/rw/sub/data")).unwrap(),
        "from python\n"
    );
    // and it lists ours
    let names = py(&p, &["box", "vault", "list", "-q"]);
    assert_eq!(names.lines().count(), 2, "{names}");
}

/// Start `args`, send SIGINT after `after`, and return how it ended.
pub(crate) fn interrupted(
    e: &Env,
    cwd: &Path,
    args: &[&str],
    after: std::time::Duration,
) -> crate::support::Run {
    let child = e
        .cmd(cwd, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    crate::support::Run::from(child.wait_with_output().unwrap())
}

#[test]
fn ctrl_c_leaves_the_box_and_no_half_made_result() {
    let e = env();
    lived_in(&e);
    // big enough to take a while, quick to make (sparse) and to compress
    let big = fs::File::create(meta(&e, "app").join("shell/big")).unwrap();
    big.set_len(3 << 30).unwrap();
    let out = e.dir("out");
    let before = tree(&meta(&e, "app").join("shell/.claude"));
    let r = interrupted(
        &e,
        &out,
        &["box", "archive", "app", "a.txz"],
        std::time::Duration::from_millis(700),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("interrupted; no archive was written"),
        "{r:?}"
    );
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        0,
        "no archive and no temporary file"
    );
    assert_eq!(tree(&meta(&e, "app").join("shell/.claude")), before);

    // an archive that takes a while to extract (1 GiB of zeros, made quickly by the
    // system's tar and xz at level 0), interrupted midway
    let src = e.dir("src");
    fs::create_dir_all(src.join("h/shell")).unwrap();
    fs::File::create(src.join("h/shell/big"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    fs::write(
        src.join("h/kanibako-archive-info.txt"),
        "Project path: /x/other\n",
    )
    .unwrap();
    let made = Command::new("sh")
        .arg("-c")
        .arg("tar -C \"$1\" -cf - h | xz -0 -T2 > \"$2\"")
        .args([
            "sh",
            src.to_str().unwrap(),
            out.join("a.txz").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(made.success());
    fs::remove_dir_all(&src).unwrap();
    let names = e.names_yaml();
    let target = e.home.join("p/other");
    let r = interrupted(
        &e,
        &out,
        &[
            "box",
            "extract",
            "a.txz",
            target.to_str().unwrap(),
            "--name",
            "other",
            "--force",
        ],
        std::time::Duration::from_millis(300),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("interrupted"), "{r:?}");
    assert_eq!(e.names_yaml(), names, "no name registered");
    assert!(!target.exists() && !meta(&e, "other").exists());
    let leftovers: Vec<_> = fs::read_dir(e.data().join("boxes"))
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["app"], "no staging directory left");
}

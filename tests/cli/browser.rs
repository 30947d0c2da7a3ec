//! `--browser` against the recording fake podman: the sidecar runs first, the box joins
//! its network namespace and gets the endpoint Chromium wrote into its profile, the
//! sidecar goes when the session ends, and one that does not start is one warning.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::Env;

const ID: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

/// The fake podman, behind a front that plays Chromium for the sidecar's `run`: it
/// writes `DevToolsActivePort` into the directory mounted at `/browser` (or, with
/// `browser.fail` in the test root, fails as a missing image does).
fn env_with_browser() -> (Env, PathBuf) {
    let e = Env::new();
    let real = e.fake_podman();
    fs::rename(&real, e.bin.join("podman-recording")).unwrap();
    let r = e.root.path().display().to_string();
    let rec = e.bin.join("podman-recording").display().to_string();
    e.script(
        "podman",
        &format!(
            r#"case " $* " in
  *" run "*" --name "*-browser" "*)
    if [ -f '{r}/browser.fail' ]; then
      echo "$*" >> '{r}/podman.log'
      echo 'Error: short-name resolution failed' >&2
      echo 'Error: no such image: kanibako-browser' >&2
      exit 125
    fi
    for a in "$@"; do
      case "$a" in *:/browser:*)
        d=${{a%%:/browser:*}}; /bin/mkdir -p "$d/profile"
        if [ -f '{r}/browser.link' ]; then
          /bin/ln -s '{r}/browser.link' "$d/profile/DevToolsActivePort"
        else
          printf '41234\n/devtools/browser/{ID}\n' > "$d/profile/DevToolsActivePort"
        fi ;;
      esac
    done ;;
esac
exec '{rec}' "$@"
"#
        ),
    );
    let p = e.dir("p/app");
    (e, p)
}

fn state_dir(e: &Env) -> PathBuf {
    e.home.join(".local/state/kanibako/browser")
}

fn lines_with<'a>(log: &'a str, word: &str) -> Vec<(usize, &'a str)> {
    log.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(word))
        .collect()
}

fn env_file(e: &Env) -> String {
    fs::read_to_string(e.root_file("run.env")).unwrap()
}

#[test]
fn the_sidecar_starts_first_the_box_joins_it_and_it_goes_with_the_session() {
    let (e, p) = env_with_browser();
    e.run(&p, &["create"]).ok();
    let r = e
        .run(&p, &["shell", "--browser", "--", "sh", "-c", "true"])
        .ok();
    assert!(!r.stderr.contains("Warning"), "{r:?} {}", e.podman_log());
    let log = e.podman_log();
    let runs = lines_with(&log, "run ");
    assert_eq!(runs.len(), 2, "{log}");
    let (at, sidecar) = runs[0];
    assert!(sidecar.contains(" --name kanibako-app-browser "), "{log}");
    assert!(
        sidecar.contains(" -dt ") && sidecar.contains(" --cap-drop=ALL "),
        "detached, hardened as the box: {sidecar}"
    );
    assert!(
        sidecar.contains(" --remote-debugging-address=127.0.0.1 "),
        "{sidecar}"
    );
    assert!(
        !sidecar.contains(" -p ") && !sidecar.contains("--publish"),
        "no port on the host: {sidecar}"
    );
    assert!(
        !sidecar.contains("/home/agent"),
        "nothing of the box's: {sidecar}"
    );
    let (box_at, run) = runs[1];
    assert!(run.contains(" --name kanibako-app "), "{run}");
    assert!(
        run.contains(" --network=container:kanibako-app-browser "),
        "{run}"
    );
    assert!(
        env_file(&e).contains(&format!(
            "BROWSER_WS_ENDPOINT=ws://127.0.0.1:41234/devtools/browser/{ID}\n"
        )),
        "{}",
        env_file(&e)
    );
    let removed: Vec<_> = lines_with(&log, "rm ")
        .into_iter()
        .filter(|(_, l)| l.ends_with(" kanibako-app-browser"))
        .collect();
    assert_eq!(removed.len(), 1, "{log}");
    assert!(at < box_at && box_at < removed[0].0, "{log}");
    assert!(
        fs::read_dir(state_dir(&e)).unwrap().next().is_none(),
        "the session's profile is gone"
    );
}

#[test]
fn a_sidecar_that_does_not_start_is_one_warning_and_the_box_runs_without_it() {
    let (e, p) = env_with_browser();
    e.run(&p, &["create"]).ok();
    fs::write(e.root_file("browser.fail"), "").unwrap();
    let r = e
        .run(&p, &["shell", "--browser", "--", "sh", "-c", "true"])
        .ok();
    let warned: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(warned.len(), 1, "{r:?}");
    assert!(
        warned[0].starts_with("Warning: the browser sidecar did not start (")
            && warned[0].contains("no such image: kanibako-browser")
            && warned[0].ends_with("the box runs without BROWSER_WS_ENDPOINT"),
        "{r:?}"
    );
    let run = e.last_call("run").unwrap();
    assert!(run.contains(" --name kanibako-app "), "{run}");
    assert!(!run.contains("--network=container:"), "{run}");
    assert!(!env_file(&e).contains("BROWSER_WS_ENDPOINT"));
    assert!(
        !Path::new(&state_dir(&e).join("kanibako-app")).exists(),
        "nothing left behind"
    );
}

#[test]
fn dry_run_shows_the_sidecar_and_the_box_beside_it_and_the_image_is_a_setting() {
    let (e, p) = env_with_browser();
    e.run(&p, &["create"]).ok();
    e.run(
        &e.home,
        &[
            "system",
            "config",
            "box.browser_image=localhost/my-chromium:1",
        ],
    )
    .ok();
    let r = e
        .run(&p, &["shell", "--browser", "--dry-run", "-v", "--", "true"])
        .ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    let side = lines
        .iter()
        .position(|l| l.contains(" --name kanibako-app-browser "))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        lines[side].contains(" localhost/my-chromium:1 --headless "),
        "{r:?}"
    );
    let boxed = lines
        .iter()
        .position(|l| l.contains(" --network=container:kanibako-app-browser "))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(side < boxed, "{r:?}");
    assert!(
        r.stdout.contains("BROWSER_WS_ENDPOINT") || r.stderr.contains("BROWSER_WS_ENDPOINT"),
        "{r:?}"
    );
    assert!(!e.podman_log().contains("run "), "nothing ran");
    // without --browser: nothing of it
    let r = e.run(&p, &["shell", "--dry-run", "--", "true"]).ok();
    assert!(
        !r.stdout.contains("-browser") && !r.stdout.contains("container:"),
        "{r:?}"
    );
}

#[test]
fn a_standalone_box_s_own_file_cannot_choose_the_browser_image() {
    let (e, _) = env_with_browser();
    let p = e.dir("p/solo");
    e.run(&p, &["create", "--standalone"]).ok();
    let r = e.run(&p, &["box", "config", "box.browser_image=evil/chromium"]);
    assert_ne!(r.code, 0, "{r:?}");
}

#[test]
fn stop_removes_a_persistent_box_s_sidecar() {
    let (e, p) = env_with_browser();
    e.run(&p, &["create"]).ok();
    // a persistent session left running: its container and its sidecar's directory
    let dir = state_dir(&e).join("kanibako-app");
    fs::create_dir_all(dir.join("profile")).unwrap();
    let hash = kanibako::boxes::project_hash(&p);
    let id = kanibako::paths::data_id(&e.data());
    e.set_ps(&format!(
        r#"[{{"Names":["kanibako-app"],"State":"running","Image":"img","Labels":{{"io.kanibako.box":"app","io.kanibako.hash":"{hash}","io.kanibako.data":"{id}"}}}}]"#
    ));
    e.run(&p, &["stop"]).ok();
    let log = e.podman_log();
    let rm_box = lines_with(&log, "rm ")
        .into_iter()
        .find(|(_, l)| l.ends_with(" kanibako-app"));
    let rm_side = lines_with(&log, "rm ")
        .into_iter()
        .find(|(_, l)| l.ends_with(" kanibako-app-browser"));
    assert!(rm_box.is_some() && rm_side.is_some(), "{log}");
    assert!(
        rm_box.unwrap().0 < rm_side.unwrap().0,
        "the box first: {log}"
    );
    assert!(!dir.exists());
}

/// The profile is the sidecar's to write: an endpoint file that is a link (to a host
/// file the user can read) is never followed into the box's environment.
#[test]
fn an_endpoint_file_planted_as_a_link_is_not_followed() {
    let (e, p) = env_with_browser();
    e.run(&p, &["create"]).ok();
    fs::write(
        e.root_file("browser.link"),
        "41234\n/devtools/browser/from-a-host-file\n",
    )
    .unwrap();
    let r = e
        .run(&p, &["shell", "--browser", "--", "sh", "-c", "true"])
        .ok();
    assert!(
        r.stderr
            .contains("Warning: the browser sidecar did not start"),
        "{r:?}"
    );
    assert!(!env_file(&e).contains("from-a-host-file"));
    assert!(!e.last_call("run").unwrap().contains("--network=container:"));
}

//! `crab` commands and the agent login shared with boxes, against a fake `claude` and
//! the recording fake podman: what reaches the box, what comes back, and what never
//! leaves (a link the box planted, the host's own keys, the 0600 mode).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::Env;

/// A fake `claude` that answers `--version` and `auth status` (logged in unless the
/// test root has `logged.out`).
fn env_with_claude() -> (Env, PathBuf) {
    let e = Env::new();
    e.fake_podman();
    let out = e.root_file("logged.out");
    e.script(
        "claude",
        &format!(
            "case \"$1\" in\n  --version) echo '2.1.0 (Claude Code)' ;;\n  auth) if [ -f '{}' ]; then echo '{{\"loggedIn\": false}}'; else echo '{{\"loggedIn\": true}}'; fi ;;\nesac\n",
            out.display()
        ),
    );
    let p = e.dir("p/app");
    (e, p)
}

fn write_json(path: &Path, v: &Value) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(
        path,
        format!("{}\n", serde_json::to_string_pretty(v).unwrap()),
    )
    .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn host_creds(e: &Env) -> PathBuf {
    e.home.join(".claude/.credentials.json")
}

fn box_creds(e: &Env) -> PathBuf {
    e.data().join("boxes/app/shell/.claude/.credentials.json")
}

/// Milliseconds since the epoch, `hours` from now: a refreshed access token's expiry.
fn in_hours(hours: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now + hours * 3600 * 1000
}

fn token(access: &str, expires: i64) -> Value {
    json!({"accessToken": access, "refreshToken": format!("r-{access}"), "expiresAt": expires})
}

#[test]
fn list_info_and_diagnose() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    let r = e.run(&p, &["crab"]).ok();
    assert!(
        r.stdout
            .starts_with("NAME                 SHELL        MODEL\n"),
        "{r:?}"
    );
    assert!(r.stdout.contains("\nno_agent             standard     -\n"));
    e.run(&p, &["crab", "config", "claude", "model=sonnet"])
        .ok();
    let r = e.run(&p, &["agent", "ls"]).ok();
    assert!(
        r.stdout
            .contains("\nclaude               standard     sonnet\n"),
        "{r:?}"
    );
    assert_eq!(
        e.run(&p, &["crab", "ls", "-q"]).ok().stdout,
        "claude\ngeneral\nno_agent\n"
    );
    let json = e.run(&p, &["crab", "list", "--json"]).ok().json();
    let json = &json["crabs"];
    assert_eq!(json[0]["name"], "claude");
    assert_eq!(json[0]["installed"], true);
    assert_eq!(json[0]["version"], "2.1.0 (Claude Code)");
    assert_eq!(json[0]["model"], "sonnet");
    let info = e.run(&p, &["crab", "info", "claude"]).ok().stdout;
    assert!(
        info.starts_with("Name:         Claude Code\nShell:        standard\n"),
        "{info}"
    );
    assert!(info.contains("State:\n  model = sonnet\n"), "{info}");
    let r = e.run(&p, &["crab", "inspect", "nope"]).fails();
    assert!(r.stderr.contains("crab 'nope' not found"), "{r:?}");

    // diagnose: a login file others can read is a problem, and says how to fix it
    write_json(&host_creds(&e), &json!({"claudeAiOauth": token("h", 1)}));
    fs::set_permissions(host_creds(&e), fs::Permissions::from_mode(0o644)).unwrap();
    let r = e.run(&p, &["crab", "diagnose"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("[ok] Claude Code: "), "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "is mode 0644: others can read the login\n     fix: chmod 600 {}\n",
            host_creds(&e).display()
        )),
        "{r:?}"
    );
    let j = e.run(&p, &["crab", "diagnose", "--json"]).json();
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["ok"], false);
    assert_eq!(j["checks"][1]["id"], "login_file");
    assert_eq!(
        j["checks"][1]["fix"],
        format!("chmod 600 {}", host_creds(&e).display())
    );
    fs::set_permissions(host_creds(&e), fs::Permissions::from_mode(0o600)).unwrap();
    let r = e.run(&p, &["crab", "diagnose"]).ok();
    assert!(
        r.stdout
            .contains("[ok] Claude Code host login: logged in on the host"),
        "{r:?}"
    );
}

#[test]
fn an_ephemeral_cycle_keeps_host_keys_and_modes() {
    let (e, p) = env_with_claude();
    let mut host = json!({"claudeAiOauth": token("h1", 1_700_000_000_000_i64)});
    host["organizationUuid"] = json!("host-only");
    write_json(&host_creds(&e), &host);
    write_json(
        &e.home.join(".claude.json"),
        &json!({"oauthAccount": {"emailAddress": "a@b"}, "projects": {"/secret": {}}}),
    );
    e.run(&p, &["start", "--ephemeral"]).ok();
    // the new box got the token (not the host's other keys), 0600, and only the
    // account keys it needs
    assert_eq!(
        read_json(&box_creds(&e)),
        json!({"claudeAiOauth": host["claudeAiOauth"]})
    );
    assert_eq!(mode(&box_creds(&e)), 0o600);
    let account = read_json(&e.data().join("boxes/app/shell/.claude.json"));
    assert_eq!(
        account,
        json!({"oauthAccount": {"emailAddress": "a@b"}, "hasCompletedOnboarding": true})
    );
    // the agent in the box refreshed its token: it comes back to the host with the
    // host's own keys intact and the mode unchanged
    let mut boxed = read_json(&box_creds(&e));
    boxed["claudeAiOauth"] = token("b2", in_hours(8));
    boxed["boxOnly"] = json!(1);
    write_json(&box_creds(&e), &boxed);
    e.run(&p, &["shell", "--", "true"]).ok();
    let back = read_json(&host_creds(&e));
    assert_eq!(back["claudeAiOauth"]["accessToken"], "b2");
    assert_eq!(back["organizationUuid"], "host-only");
    assert!(back.get("boxOnly").is_none(), "{back}");
    assert_eq!(mode(&host_creds(&e)), 0o600);
    // the host logs in again: the next launch brings the new token in
    let mut host = back.clone();
    host["claudeAiOauth"] = token("h3", in_hours(9));
    write_json(&host_creds(&e), &host);
    e.run(&p, &["shell", "--", "true"]).ok();
    let boxed = read_json(&box_creds(&e));
    assert_eq!(boxed["claudeAiOauth"]["accessToken"], "h3");
    assert_eq!(boxed["boxOnly"], 1);
    assert_eq!(mode(&box_creds(&e)), 0o600);
}

#[test]
fn links_planted_in_the_box_leave_the_host_untouched() {
    let (e, p) = env_with_claude();
    write_json(&host_creds(&e), &json!({"claudeAiOauth": token("h1", 1)}));
    e.run(&p, &["create"]).ok();
    e.run(&p, &["shell", "--", "true"]).ok();
    let victim = e.home.join("victim.json");
    write_json(&victim, &json!({"victim": true}));
    let before = fs::read(host_creds(&e)).unwrap();
    for planted in [".claude/.credentials.json", ".claude.json"] {
        let link = e.data().join("boxes/app/shell").join(planted);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
    }
    let r = e.run(&p, &["shell", "--", "true"]).ok();
    assert!(r.stderr.contains("symbolic link"), "{r:?}");
    assert_eq!(read_json(&victim), json!({"victim": true}));
    assert_eq!(fs::read(host_creds(&e)).unwrap(), before);
    assert_eq!(mode(&victim), 0o600);
}

#[test]
fn stop_writes_the_login_back() {
    let (e, p) = env_with_claude();
    write_json(
        &host_creds(&e),
        &json!({"claudeAiOauth": token("h1", 1_000)}),
    );
    e.run(&p, &["create"]).ok();
    e.run(&p, &["shell", "--", "true"]).ok();
    write_json(
        &box_creds(&e),
        &json!({"claudeAiOauth": token("b2", in_hours(8))}),
    );
    let hash = kanibako::boxes::project_hash(&p);
    e.set_ps(&format!(
        r#"[{{"Names":["kanibako-app"],"State":"running","Image":"img","Labels":{{"io.kanibako.box":"app","io.kanibako.hash":"{hash}"}}}}]"#
    ));
    e.run(&p, &["stop"]).ok();
    assert_eq!(
        read_json(&host_creds(&e))["claudeAiOauth"]["accessToken"],
        "b2"
    );
    assert_eq!(mode(&host_creds(&e)), 0o600);
}

/// Issue 10, item 6: a box's own long-lived token does not replace the host's login;
/// the refusal is said on stderr, and the host's file is as it was.
#[test]
fn a_box_cannot_replace_the_host_login() {
    let (e, p) = env_with_claude();
    write_json(
        &host_creds(&e),
        &json!({"claudeAiOauth": token("h1", in_hours(-1))}),
    );
    e.run(&p, &["create"]).ok();
    e.run(&p, &["shell", "--", "true"]).ok();
    let before = fs::read(host_creds(&e)).unwrap();
    write_json(
        &box_creds(&e),
        &json!({"claudeAiOauth": token("attacker", in_hours(29 * 24))}),
    );
    let r = e.run(&p, &["shell", "--", "true"]).ok();
    assert!(
        r.stderr
            .contains("the box's token was not written back to the host"),
        "{r:?}"
    );
    assert_eq!(fs::read(host_creds(&e)).unwrap(), before);
}

#[test]
fn reauth_reports_and_refreshes() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    // logged out, no terminal: fail with what to do, never wait for a login
    fs::write(e.root_file("logged.out"), "").unwrap();
    let r = e.run(&p, &["crab", "reauth"]).fails();
    assert!(
        r.stderr.contains("Claude Code: authentication failed."),
        "{r:?}"
    );
    assert!(r.stderr.contains("claude auth login"), "{r:?}");
    let r = e.run(&p, &["start", "--ephemeral"]).fails();
    assert!(r.stderr.contains("is not logged in on this host"), "{r:?}");
    // logged in: the box gets the host's token
    fs::remove_file(e.root_file("logged.out")).unwrap();
    write_json(
        &host_creds(&e),
        &json!({"claudeAiOauth": token("h9", 9_000)}),
    );
    let r = e.run(&p, &["crab", "reauth", "app"]).ok();
    assert!(r.stderr.contains("Claude Code: authenticated."), "{r:?}");
    assert_eq!(
        read_json(&box_creds(&e))["claudeAiOauth"]["accessToken"],
        "h9"
    );
    // a distinct-auth box only reports its own login
    let q = e.dir("p/own");
    e.run(&q, &["create", "--distinct-auth"]).ok();
    let r = e.run(&q, &["crab", "reauth"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("distinct auth -- no credentials found"),
        "{r:?}"
    );
    e.run(&q, &["shell", "--", "true"]).ok();
    assert!(
        !e.data()
            .join("boxes/own/shell/.claude/.credentials.json")
            .exists()
    );
}

#[test]
fn a_distinct_standalone_box_cannot_switch_itself_to_the_host_login() {
    let (e, p) = env_with_claude();
    write_json(
        &host_creds(&e),
        &json!({"claudeAiOauth": token("h1", 1_000)}),
    );
    e.run(&p, &["create", "--standalone", "--distinct-auth"])
        .ok();
    // the box rewrites its own project.yaml (it lies in its workspace)
    let file = p.join(".kanibako/project.yaml");
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("group_auth: false"), "{text}");
    fs::write(&file, text.replace("group_auth: false", "group_auth: true")).unwrap();
    e.run(&p, &["shell", "--", "true"]).ok();
    let shell = p.join(".kanibako/shell");
    assert!(
        shell.join(".claude.json").is_file(),
        "the launch did prepare this home"
    );
    assert!(!shell.join(".claude/.credentials.json").exists());
    let r = e.run(&p, &["crab", "reauth"]);
    assert!(r.stderr.contains("distinct auth"), "{r:?}");
}

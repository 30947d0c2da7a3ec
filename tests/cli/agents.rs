//! Codex CLI and Goose beside Claude Code, against the recording fake podman: which
//! agent `--crab` and `box.crab` pick, what each one's run mounts and is called with,
//! API keys passed by name, and the login the box shares.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::support::Env;

/// All three agents on the host (scripts answering `--version`), the fake podman, and
/// a project directory.
fn env_with_agents() -> (Env, PathBuf) {
    let e = Env::new();
    e.fake_podman();
    e.script("claude", "exit 0\n");
    for agent in ["codex", "goose"] {
        let log = e.bin.join(format!("{agent}.calls"));
        e.script(
            agent,
            &format!(
                "echo \"$@\" >> '{}'\n[ \"$1\" = --version ] && echo '{agent} 9.9.9'\nexit 0\n",
                log.display()
            ),
        );
    }
    let p = e.dir("p/app");
    (e, p)
}

fn calls(e: &Env, agent: &str) -> String {
    fs::read_to_string(e.bin.join(format!("{agent}.calls"))).unwrap_or_default()
}

#[test]
fn crab_codex_runs_codex_mounted_read_only_in_its_bypass_mode() {
    let (e, p) = env_with_agents();
    let r = e.run(&p, &["start", "--crab", "codex", "-M", "o3"]).ok();
    assert!(r.stderr.contains("Using host Codex CLI"), "{r:?}");
    let run = e.last_call("run").unwrap();
    let bin = e.bin.join("codex");
    assert!(
        run.contains(&format!(
            "-v {}:/home/agent/.local/bin/codex:ro",
            bin.display()
        )),
        "{run}"
    );
    assert!(
        !run.contains("/home/agent/.local/bin/claude"),
        "only the chosen agent is mounted: {run}"
    );
    assert!(
        run.contains("--entrypoint /home/agent/.local/bin/codex"),
        "{run}"
    );
    assert!(
        run.ends_with(" --dangerously-bypass-approvals-and-sandbox --model o3"),
        "a new box starts a new session: {run}"
    );
    assert!(e.data().join("crabs/codex.yaml").is_file(), "its profile");
    // -S keeps Codex's own approvals
    e.run(&p, &["start", "--crab", "codex", "-S", "-N"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(
        run.ends_with("--entrypoint /home/agent/.local/bin/codex --rootfs /fake/rootfs:O")
            || run.ends_with(
                "--entrypoint /home/agent/.local/bin/codex ghcr.io/doctorjei/kanibako-oci:latest"
            ),
        "-S -N: no arguments at all: {run}"
    );
}

#[test]
fn codex_continues_the_last_session_of_a_box_that_has_one() {
    let (e, p) = env_with_agents();
    e.run(&p, &["start", "--crab", "codex"]).ok();
    let sessions = e.data().join("boxes/app/shell/.codex/sessions/2026/12/03");
    fs::create_dir_all(&sessions).unwrap();
    fs::write(sessions.join("rollout-1.jsonl"), "{}\n").unwrap();
    e.run(&p, &["start", "--crab", "codex"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(
        run.ends_with(
            "/home/agent/.local/bin/codex resume --last --dangerously-bypass-approvals-and-sandbox"
        ) || run.contains(" resume --last --dangerously-bypass-approvals-and-sandbox"),
        "{run}"
    );
    e.run(&p, &["start", "--crab", "codex", "-R"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(
        run.ends_with(" resume --dangerously-bypass-approvals-and-sandbox"),
        "{run}"
    );
}

#[test]
fn an_api_key_reaches_the_box_by_name_only() {
    let (mut e, p) = env_with_agents();
    e.set("OPENAI_API_KEY", "sk-never-shown-1234");
    let r = e.run(&p, &["start", "--crab", "codex"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(run.contains(" -e OPENAI_API_KEY "), "{run}");
    assert!(!run.contains("sk-never-shown"), "{run}");
    assert!(!r.stdout.contains("sk-never") && !r.stderr.contains("sk-never"));
    let env = fs::read_to_string(e.root_file("run.env")).unwrap_or_default();
    assert!(!env.contains("sk-never-shown"), "never in a file: {env}");
    // a key not set on the host is not named at all
    assert!(!run.contains("CODEX_API_KEY"), "{run}");
}

#[test]
fn crab_goose_runs_a_session_with_its_mode_and_model_in_the_environment() {
    let (mut e, p) = env_with_agents();
    e.set("ANTHROPIC_API_KEY", "sk-ant-secret");
    e.run(&p, &["start", "--crab", "goose", "-M", "gpt-4o"])
        .ok();
    let run = e.last_call("run").unwrap();
    assert!(
        run.contains(&format!(
            "-v {}:/home/agent/.local/bin/goose:ro",
            e.bin.join("goose").display()
        )),
        "{run}"
    );
    assert!(
        run.contains("--entrypoint /home/agent/.local/bin/goose"),
        "{run}"
    );
    assert!(run.ends_with(" session"), "a new box: a new session: {run}");
    assert!(run.contains(" -e ANTHROPIC_API_KEY "), "{run}");
    assert!(!run.contains("sk-ant-secret"), "{run}");
    let env = fs::read_to_string(e.root_file("run.env")).unwrap();
    assert!(env.contains("GOOSE_MODE=auto\n"), "{env}");
    assert!(env.contains("GOOSE_MODEL=gpt-4o\n"), "{env}");
    assert!(env.contains("GOOSE_DISABLE_KEYRING=1\n"), "{env}");
    assert!(!env.contains("sk-ant-secret"), "{env}");
    // -S: Goose's own approvals; an existing session is resumed
    let sessions = e.data().join("boxes/app/shell/.local/share/goose/sessions");
    fs::create_dir_all(&sessions).unwrap();
    fs::write(sessions.join("sessions.db"), "").unwrap();
    e.run(&p, &["start", "--crab", "goose", "-S"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(run.ends_with(" session --resume"), "{run}");
    let env = fs::read_to_string(e.root_file("run.env")).unwrap();
    assert!(!env.contains("GOOSE_MODE="), "{env}");
}

#[test]
fn box_crab_selects_the_agent_and_crab_overrides_it() {
    let (e, p) = env_with_agents();
    e.run(&p, &["create"]).ok();
    e.run(&p, &["box", "config", "box.crab=goose"]).ok();
    e.run(&p, &["start"]).ok();
    assert!(
        e.last_call("run")
            .unwrap()
            .contains("--entrypoint /home/agent/.local/bin/goose")
    );
    e.run(&p, &["start", "--crab", "codex"]).ok();
    assert!(
        e.last_call("run")
            .unwrap()
            .contains("--entrypoint /home/agent/.local/bin/codex")
    );
}

#[test]
fn an_unknown_or_missing_crab_is_one_line_with_a_hint() {
    let e = Env::new();
    e.fake_podman();
    e.script("claude", "exit 0\n");
    let p = e.dir("p/app");
    let r = e.run(&p, &["start", "--crab", "cursor"]).fails();
    assert!(
        r.stderr
            .contains("unknown agent 'cursor' (--crab); available: claude, codex, goose, no_agent"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: set --crab"), "{r:?}");
    let r = e.run(&p, &["start", "--crab", "codex"]).fails();
    assert!(
        r.stderr.contains("Codex CLI is not installed on this host"),
        "{r:?}"
    );
}

#[test]
fn a_codex_box_shares_only_the_hosts_tokens_at_0600() {
    let (e, p) = env_with_agents();
    let host = e.home.join(".codex");
    fs::create_dir_all(&host).unwrap();
    fs::write(
        host.join("auth.json"),
        r#"{"OPENAI_API_KEY": "sk-host-only", "tokens": {"access_token": "a.b.c", "refresh_token": "r1", "id_token": "i", "account_id": "acct"}, "last_refresh": "2026-12-01T00:00:00Z"}"#,
    )
    .unwrap();
    fs::set_permissions(host.join("auth.json"), fs::Permissions::from_mode(0o600)).unwrap();
    e.run(&p, &["start", "--crab", "codex"]).ok();
    let boxed = e.data().join("boxes/app/shell/.codex/auth.json");
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&boxed).unwrap()).unwrap();
    assert_eq!(v["tokens"]["refresh_token"], "r1");
    assert!(
        v.get("OPENAI_API_KEY").is_none(),
        "only the token object: {v}"
    );
    assert_eq!(
        fs::metadata(&boxed).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !calls(&e, "codex").contains("login"),
        "a token on file: no login asked: {}",
        calls(&e, "codex")
    );
    assert!(calls(&e, "codex").is_empty(), "not even its status");
}

#[test]
fn a_host_without_a_codex_login_stops_the_launch_and_no_auto_auth_never_logs_in() {
    let e = Env::new();
    e.fake_podman();
    let log = e.bin.join("codex.calls");
    e.script(
        "codex",
        &format!(
            "echo \"$@\" >> '{}'\n[ \"$1 $2\" = 'login status' ] && exit 1\nexit 0\n",
            log.display()
        ),
    );
    let p = e.dir("p/app");
    let r = e
        .run(&p, &["start", "--crab", "codex", "--no-auto-auth"])
        .fails();
    assert!(
        r.stderr.contains("Codex CLI is not logged in on this host"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: log in: codex login"), "{r:?}");
    assert_eq!(
        calls(&e, "codex").trim(),
        "login status",
        "{r:?} {}",
        e.podman_log()
    );
    assert!(e.last_call("run").is_none(), "nothing ran");
    // without a terminal no login is started either
    e.run(&p, &["start", "--crab", "codex"]).fails();
    assert!(
        calls(&e, "codex").lines().all(|l| l == "login status"),
        "{}",
        calls(&e, "codex")
    );
}

#[test]
fn crab_list_json_shows_every_agent_with_its_version_and_login() {
    let (mut e, p) = env_with_agents();
    e.set("OPENAI_API_KEY", "sk-x");
    let r = e.run(&p, &["crab", "list", "--json"]).ok();
    let v = r.json();
    let crabs = v["crabs"].as_array().unwrap();
    let get = |name: &str| crabs.iter().find(|c| c["name"] == name).unwrap().clone();
    let codex = get("codex");
    assert_eq!(codex["installed"], true);
    assert_eq!(codex["version"], "codex 9.9.9");
    assert_eq!(codex["login"], "api_key");
    assert_eq!(codex["binary"], e.bin.join("codex").display().to_string());
    let goose = get("goose");
    assert_eq!(goose["installed"], true);
    assert_eq!(goose["version"], "goose 9.9.9");
    assert_eq!(goose["login"], "api_key", "its OPENAI_API_KEY is set");
    assert!(!r.stdout.contains("sk-x"));
}

#[test]
fn start_help_says_how_each_agent_continues() {
    let e = Env::new();
    let r = e.run(&e.home, &["start", "--help"]).ok();
    assert!(r.stdout.contains("--crab <NAME>"), "{r:?}");
    assert!(r.stdout.contains("--no-auto-auth"), "{r:?}");
    assert!(r.stdout.contains("Codex: resume; Goose"), "{r:?}");
}

#[test]
fn each_agent_has_its_own_crab_profile_and_model() {
    let (e, p) = env_with_agents();
    e.run(&p, &["crab", "config", "codex", "model=o3"]).ok();
    e.run(&p, &["crab", "config", "goose", "model=gpt-4o"]).ok();
    e.run(&p, &["start", "--crab", "codex"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(run.ends_with(" --model o3"), "{run}");
    e.run(&p, &["start", "--crab", "goose"]).ok();
    let env = fs::read_to_string(e.root_file("run.env")).unwrap();
    assert!(env.contains("GOOSE_MODEL=gpt-4o\n"), "{env}");
    // Claude Code's default model is not Codex's
    e.run(&p, &["crab", "config", "codex", "--reset", "model"])
        .ok();
    e.run(&p, &["start", "--crab", "codex"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(!run.contains("--model"), "{run}");
}

#[test]
fn crab_diagnose_names_the_keys_passed_never_their_values() {
    let (mut e, p) = env_with_agents();
    e.set("ANTHROPIC_API_KEY", "sk-ant-hidden");
    let r = e.run(&p, &["crab", "diagnose"]);
    assert!(
        r.stdout
            .contains("[ok] Goose variables: passed to its boxes by name: ANTHROPIC_API_KEY"),
        "{r:?}"
    );
    assert!(r.stdout.contains("[ok] Codex CLI: "), "{r:?}");
    assert!(!r.stdout.contains("sk-ant-hidden"), "{r:?}");
}

//! Every `--json` document against a throw-away home and the fake podman: one snapshot
//! per command (README "JSON output"), so a changed field shows in review, and the
//! envelope every one shares (`schema_version` first, an object, never an array).

use std::fs;

use serde_json::Value;

use crate::support::Env;

/// A home with Claude Code (model `sonnet`), a default box `demo` (one vault snapshot, a running container), a
/// workset `team` with a member `two`, and the fake podman.
fn home() -> Env {
    let e = Env::new();
    e.fake_podman();
    e.script(
        "claude",
        "case \"$1\" in\n  --version) echo '2.1.0 (Claude Code)' ;;\n  auth) echo '{\"loggedIn\": true}' ;;\nesac\n",
    );
    let p = e.dir("p/demo");
    e.run(&p, &["create"]).ok();
    fs::write(p.join("vault/rw/a.txt"), "x").unwrap();
    e.run(&p, &["box", "vault", "snapshot"]).ok();
    e.run(&p, &["crab", "config", "claude", "model=sonnet"])
        .ok();
    e.run(&e.home, &["workset", "create", "ws/team"]).ok();
    let src = e.dir("p/two");
    e.run(&src, &["workset", "connect", "team"]).ok();
    let hash = kanibako::boxes::project_hash(&p);
    e.set_ps(&format!(
        r#"[{{"Names":["kanibako-demo"],"State":"running","Image":"img","Labels":{{"io.kanibako.box":"x","io.kanibako.hash":"{hash}"}}}}]"#
    ));
    e
}

/// The document as printed (field order kept) with what differs between machines and
/// runs taken out: the test's root and this checkout, the box's hash, times, sizes,
/// versions, snapshot names (they are times).
fn normal(e: &Env, out: &str) -> String {
    serde_json::from_str::<Value>(out).unwrap_or_else(|err| panic!("{err}: {out}"));
    let root = e.root.path().canonicalize().unwrap().display().to_string();
    let varies = [
        "hash",
        "created",
        "when",
        "size_bytes",
        "version",
        "runtime_version",
    ];
    // a member's container name ends in its hash
    let out = match out.split_once("kanibako-team-two-") {
        Some((a, b)) if b.len() >= 8 => format!("{a}kanibako-team-two-[HASH]{}", &b[8..]),
        _ => out.to_owned(),
    };
    out.replace(&root, "[ROOT]")
        .replace(env!("CARGO_MANIFEST_DIR"), "[REPO]")
        .lines()
        .map(|l| {
            let body = l.trim_start();
            let indent = &l[..l.len() - body.len()];
            let Some((key, value)) = body.split_once(": ") else {
                return l.to_owned();
            };
            let comma = if value.ends_with(',') { "," } else { "" };
            let bare = value.trim_end_matches(',');
            let stamp = bare.len() > 17
                && bare[1..9].bytes().all(|b| b.is_ascii_digit())
                && &bare[9..10] == "T";
            let k = key.trim_matches('"');
            if bare != "null" && (varies.contains(&k) || stamp) {
                format!("{indent}{key}: \"[{}]\"{comma}", k.to_uppercase())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every listing and info command with `--json`, as the README lists them.
const COMMANDS: &[(&str, &[&str])] = &[
    ("list", &["list", "--json"]),
    ("list_all", &["box", "list", "--all", "--json"]),
    ("ps", &["ps", "--json"]),
    ("box_info", &["box", "info", "demo", "--json"]),
    ("box_info_member", &["box", "info", "team/two", "--json"]),
    ("workset_list", &["workset", "list", "--json"]),
    ("workset_info", &["workset", "info", "team", "--json"]),
    (
        "workset_info_default",
        &["workset", "info", "default", "--json"],
    ),
    ("rig_list", &["rig", "list", "--json"]),
    ("rig_info", &["rig", "info", "oci", "--json"]),
    ("crab_list", &["crab", "list", "--json"]),
    ("crab_info", &["crab", "info", "claude", "--json"]),
    ("vault_list", &["box", "vault", "list", "demo", "--json"]),
    ("system_info", &["system", "info", "--json"]),
];

#[test]
fn every_json_document_matches_its_snapshot() {
    let e = home();
    for (name, args) in COMMANDS {
        let r = e.run(&e.home, args).ok();
        insta::assert_snapshot!(format!("json_{name}"), normal(&e, &r.stdout));
    }
}

#[test]
fn every_json_document_is_an_object_with_the_schema_version_first() {
    let e = home();
    let mut all: Vec<&[&str]> = COMMANDS.iter().map(|(_, a)| *a).collect();
    all.push(&["system", "diagnose", "--json"]);
    all.push(&["box", "diagnose", "demo", "--json"]);
    all.push(&["rig", "diagnose", "--json"]);
    all.push(&["crab", "diagnose", "--json"]);
    for args in all {
        let r = e.run(&e.home, args);
        assert!(
            r.stdout.starts_with("{\n  \"schema_version\": 1,\n"),
            "{args:?}: {r:?}"
        );
        assert!(r.json().is_object(), "{args:?}");
    }
}

#[test]
fn rig_list_keeps_upstreams_field_names() {
    let e = home();
    let ours = e.run(&e.home, &["rig", "list", "--json"]).ok().json();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&ours),
        [
            "current",
            "extended",
            "prefabs",
            "schema_version",
            "templates"
        ]
    );
    assert_eq!(keys(&ours["prefabs"][0]), ["image", "name", "status"]);
    assert_eq!(
        keys(&ours["templates"][0]),
        ["image", "name", "source", "status"]
    );
    // and side by side with the Python tool, when it is here
    let Some(py) = crate::archive::python(&e) else {
        return;
    };
    let theirs: Value = serde_json::from_str(&py(&e.home, &["rig", "list", "--json"])).unwrap();
    for group in ["prefabs", "templates"] {
        assert_eq!(keys(&ours[group][0]), keys(&theirs[group][0]), "{group}");
        let names = |v: &Value| {
            let mut n: Vec<String> = v[group]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&ours), names(&theirs), "{group}");
    }
    let mut theirs_keys = keys(&theirs);
    theirs_keys.push("schema_version".into());
    theirs_keys.sort();
    assert_eq!(keys(&ours), theirs_keys);
}

//! Upstream's deprecated rig commands: hidden, they say what replaces them, then do it.

use crate::env;

#[test]
fn rig_rebuild_says_it_is_prep_force_and_builds_the_template() {
    let e = env();
    let r = e.run(&e.home, &["rig", "rebuild", "js"]).ok();
    assert!(
        r.stderr
            .contains("note: 'rig rebuild' is deprecated; use 'rig prep --force'."),
        "{r:?}"
    );
    let build = e.last_call("build").expect("a build was started");
    assert!(build.contains("kanibako-template-js"), "{build}");
}

#[test]
fn rig_create_with_a_template_is_rig_prep() {
    let e = env();
    let r = e
        .run(&e.home, &["rig", "create", "js", "--template", "js"])
        .ok();
    assert!(
        r.stderr
            .contains("note: 'rig create --template' is deprecated; use 'rig prep'."),
        "{r:?}"
    );
    let build = e.last_call("build").expect("a build was started");
    assert!(build.contains("kanibako-template-js"), "{build}");
}

#[test]
fn rig_create_without_a_template_is_rig_extend() {
    let e = env();
    // No image is local, so the extend stops at its foundation; the note comes first.
    std::fs::write(e.root_file("no.image"), "").unwrap();
    let r = e.run(&e.home, &["rig", "create", "mine", "--base", "nope"]);
    assert!(
        r.stderr
            .contains("note: 'rig create (interactive)' is deprecated; use 'rig extend'."),
        "{r:?}"
    );
    assert!(e.last_call("commit").is_none(), "nothing was saved");
}

#[test]
fn deprecated_rig_commands_are_absent_from_help() {
    let e = env();
    let r = e.run(&e.home, &["rig", "--help"]).ok();
    assert!(
        !r.stdout.contains("create") && !r.stdout.contains("rebuild"),
        "{}",
        r.stdout
    );
}

//! `system diagnose` on the real engines: every check passes on a machine prepared for
//! the tests, including the one real run of the rig.

use super::{Flavour, session_env};

fn diagnose(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    e.run(
        &e.home,
        &["system", "config", &format!("box.image={image}")],
    )
    .ok();
    let r = e.run(&e.home, &["system", "diagnose"]);
    assert_eq!(r.code, 0, "{flavour:?}: {r:#?}");
    assert!(
        r.stdout
            .contains(&format!("[ok] Container run: {image} runs")),
        "{r:#?}"
    );
    assert!(r.stdout.contains("[ok] Storage driver: "), "{r:#?}");
    if flavour == Flavour::RootlessPodman {
        assert!(r.stdout.contains("[ok] Sub-ids: "), "{r:#?}");
    }
    let j = e
        .run(&e.home, &["system", "diagnose", "--json"])
        .ok()
        .json();
    assert_eq!(j["ok"], true, "{j:#}");
}

#[test]
fn podman_system_diagnose() {
    diagnose(Flavour::RootfulPodman);
}

#[test]
fn docker_system_diagnose() {
    diagnose(Flavour::Docker);
}

#[test]
fn rootless_podman_system_diagnose() {
    diagnose(Flavour::RootlessPodman);
}

/// A fresh home and an engine without the rig: `setup --yes` bootstraps one from the
/// host's programs and pins it, and a box then runs. (Rootless podman: its image
/// store is the test user's own, so the `host` rig it makes is nobody else's.)
#[test]
fn setup_yes_without_a_rig_ends_with_a_working_shell() {
    let Some((e, _)) = session_env(Flavour::RootlessPodman) else {
        return;
    };
    let r = e.run(&e.home, &["setup", "--yes"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stderr.contains("+ kanibako rig bootstrap"), "{r:#?}");
    let p = e.dir("p/fresh");
    let s = e.run(&p, &["shell", "--", "true"]);
    let _ = e.run(&e.home, &["rig", "rm", "host", "--force"]);
    assert_eq!(s.code, 0, "{s:#?}");
}

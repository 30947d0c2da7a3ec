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

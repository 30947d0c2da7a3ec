//! Rigs: the images boxes run on (spec: upstream-cli-and-data §8). A rig name — what
//! `--rig` and `box.image` hold — resolves to an image reference here, purely.

pub mod bootstrap;
pub mod fresh;
pub mod ops;
pub mod registry;
pub mod template;

use std::collections::BTreeSet;

use serde::Serialize;

use registry::{Record, Rigs};

/// Upstream's prefab shorthands: `oci` means `kanibako-oci`.
pub const SHORTHANDS: [&str; 4] = ["min", "oci", "lxc", "vm"];
/// Where the shorthands live when the configured image does not say.
pub const DEFAULT_OWNER: &str = "ghcr.io/doctorjei";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A published or local image, made ready by pulling.
    Prefab,
    /// A `Containerfile.template-<name>`, made ready by building.
    Template,
    /// A customised image (and kanibako's host-built rig), moved by export/import.
    Extended,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Prefab => "prefab",
            Kind::Template => "template",
            Kind::Extended => "extended",
        }
    }
}

/// What a rig name means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub name: String,
    pub kind: Kind,
    /// The image reference to run.
    pub image: String,
    /// Whether the image is in the local store.
    pub present: bool,
}

/// `^[a-z0-9][a-z0-9_-]*$`: names that become `kanibako-template-<n>`/`kanibako-rig-<n>`.
pub fn is_short_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub fn template_image(name: &str) -> String {
    format!("kanibako-template-{name}")
}

pub fn extended_image(name: &str) -> String {
    format!("kanibako-rig-{name}")
}

/// The registry/owner part of a configured image (`ghcr.io/doctorjei` of
/// `ghcr.io/doctorjei/kanibako-oci:latest`), if it has one.
pub fn owner_of(image: &str) -> Option<&str> {
    let (owner, _) = image.rsplit_once('/')?;
    (owner.split('/').count() >= 2).then_some(owner)
}

/// Resolve `name` (spec §8.2, except that a `rigs.yaml` record naming its image is
/// taken first: it needs no question to the engine). `exists` says whether an image
/// reference is in the local store; `templates` lists the template names kanibako can
/// build.
pub fn resolve(
    name: &str,
    rigs: &Rigs,
    templates: &[String],
    configured: &str,
    exists: &dyn Fn(&str) -> bool,
) -> Resolved {
    // Each image is asked about once: the steps below may come back to one already
    // looked up, and every question is an engine call.
    let asked = std::cell::RefCell::new(std::collections::BTreeMap::<String, bool>::new());
    let exists = |i: &str| -> bool {
        if let Some(&known) = asked.borrow().get(i) {
            return known;
        }
        let answer = exists(i);
        asked.borrow_mut().insert(i.to_owned(), answer);
        answer
    };
    let exists = &exists;
    let found = |kind, image: String| Resolved {
        name: name.to_owned(),
        kind,
        present: exists(&image),
        image,
    };
    // A recorded image needs no look at the engine (the launch path stays cheap).
    if let Some(Record {
        kind,
        image: Some(image),
        ..
    }) = rigs.get(name)
    {
        return found(*kind, image.clone());
    }
    if is_short_name(name) {
        for (kind, image) in [
            (Kind::Template, template_image(name)),
            (Kind::Extended, extended_image(name)),
        ] {
            if exists(&image) {
                return found(kind, image);
            }
        }
    }
    if let Some(rec) = rigs.get(name) {
        return match rec {
            Record {
                kind: Kind::Extended,
                image: Some(image),
                ..
            } => found(Kind::Extended, image.clone()),
            Record {
                image: Some(image), ..
            } => found(rec.kind, image.clone()),
            Record {
                source: Some(src), ..
            } => found(Kind::Prefab, reference(src, configured, exists)),
            _ => found(rec.kind, name.to_owned()),
        };
    }
    if templates.iter().any(|t| t == name) {
        return found(Kind::Template, template_image(name));
    }
    found(Kind::Prefab, reference(name, configured, exists))
}

/// An image reference for a prefab name: shorthands and `kanibako-*` names get `:latest`
/// and, unless a local image of that bare name exists, the configured owner.
pub fn reference(name: &str, configured: &str, exists: &dyn Fn(&str) -> bool) -> String {
    if name.contains('/') {
        return name.to_owned();
    }
    let base = if SHORTHANDS.contains(&name) {
        format!("kanibako-{name}")
    } else if name.starts_with("kanibako-") {
        name.to_owned()
    } else {
        return name.to_owned();
    };
    let tagged = if base.contains(':') {
        base
    } else {
        format!("{base}:latest")
    };
    if exists(&tagged) {
        return tagged;
    }
    format!("{}/{tagged}", owner_of(configured).unwrap_or(DEFAULT_OWNER))
}

/// The images in the local store, in every spelling a user may give one: a
/// `localhost/x:latest` is also `x:latest`, `localhost/x` and `x`.
#[derive(Clone, Debug, Default)]
pub struct LocalImages(BTreeSet<String>);

impl LocalImages {
    /// From the `repository:tag` references the engine lists.
    pub fn from_refs(refs: impl IntoIterator<Item = String>) -> Self {
        let mut set = BTreeSet::new();
        for line in refs {
            if let Some(short) = line.strip_prefix("localhost/") {
                set.insert(short.to_owned());
            }
            for full in [
                line.clone(),
                line.trim_start_matches("localhost/").to_owned(),
            ] {
                if let Some(bare) = full.strip_suffix(":latest") {
                    set.insert(bare.to_owned());
                }
            }
            set.insert(line);
        }
        Self(set)
    }

    pub fn has(&self, image: &str) -> bool {
        self.0.contains(image) || self.0.contains(&format!("{image}:latest"))
    }

    /// Every spelling, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_images_answer_to_every_spelling() {
        let l = LocalImages::from_refs([
            "localhost/kanibako-rig-x:latest".to_owned(),
            "busybox:1".to_owned(),
        ]);
        for s in [
            "localhost/kanibako-rig-x:latest",
            "localhost/kanibako-rig-x",
            "kanibako-rig-x:latest",
            "kanibako-rig-x",
            "busybox:1",
        ] {
            assert!(l.has(s), "{s}");
        }
        assert!(!l.has("busybox") && !l.has("kanibako-rig-y"));
    }

    fn rigs(text: &str) -> Rigs {
        Rigs::parse(std::path::Path::new("rigs.yaml"), text).unwrap()
    }

    fn resolve_with(name: &str, rigs_yaml: &str, local: &[&str], templates: &[&str]) -> Resolved {
        let local: BTreeSet<String> = local.iter().map(|s| (*s).to_owned()).collect();
        let templates: Vec<String> = templates.iter().map(|s| (*s).to_owned()).collect();
        resolve(
            name,
            &rigs(rigs_yaml),
            &templates,
            "ghcr.io/doctorjei/kanibako-oci:latest",
            &|i: &str| local.contains(i),
        )
    }

    #[test]
    fn built_templates_and_extended_rigs_win_by_short_name() {
        let r = resolve_with("jvm", "", &["kanibako-template-jvm"], &["jvm"]);
        assert_eq!(
            (r.kind, r.image.as_str(), r.present),
            (Kind::Template, "kanibako-template-jvm", true)
        );
        let r = resolve_with("mine", "", &["kanibako-rig-mine"], &[]);
        assert_eq!((r.kind, r.present), (Kind::Extended, true));
    }

    #[test]
    fn registry_records() {
        let y = "rigs:\n  tiny:\n    kind: prefab\n    source: localhost/mytools:1\n    source_type: ref\n  mytools:\n    kind: extended\n    source_type: extend\n    image: kanibako-rig-mytools\n";
        let r = resolve_with("tiny", y, &[], &[]);
        assert_eq!(
            (r.kind, r.image.as_str(), r.present),
            (Kind::Prefab, "localhost/mytools:1", false)
        );
        let r = resolve_with("mytools", y, &[], &[]);
        assert_eq!(
            (r.kind, r.image.as_str(), r.present),
            (Kind::Extended, "kanibako-rig-mytools", false)
        );
    }

    #[test]
    fn unbuilt_templates_and_references() {
        let r = resolve_with("jvm", "", &[], &["jvm"]);
        assert_eq!((r.kind, r.present), (Kind::Template, false));
        assert_eq!(
            resolve_with("oci", "", &[], &[]).image,
            "ghcr.io/doctorjei/kanibako-oci:latest"
        );
        assert_eq!(
            resolve_with("oci", "", &["kanibako-oci:latest"], &[]).image,
            "kanibako-oci:latest"
        );
        assert_eq!(
            resolve_with("kanibako-min:2", "", &[], &[]).image,
            "ghcr.io/doctorjei/kanibako-min:2"
        );
        assert_eq!(resolve_with("busybox", "", &[], &[]).image, "busybox");
        assert_eq!(
            resolve_with("localhost/x:1", "", &[], &[]).image,
            "localhost/x:1"
        );
    }

    #[test]
    fn short_names_and_owners() {
        assert!(is_short_name("jvm") && is_short_name("my-rig_2"));
        assert!(!is_short_name("Jvm") && !is_short_name("-x") && !is_short_name("a/b"));
        assert_eq!(
            owner_of("ghcr.io/corp/kanibako-oci:latest"),
            Some("ghcr.io/corp")
        );
        assert_eq!(owner_of("corp/img"), None);
    }
}

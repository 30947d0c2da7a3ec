//! Making rigs ready and moving them: build a template, pull a prefab, extend one
//! interactively, export and import extended rigs. These run the engine; the plans they
//! follow (names, images, bundle layout) live in the sibling modules.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::Kind;
use super::registry::Rigs;
use super::template::{Origin, Template};
use crate::error::UserError;
use crate::output;
use crate::paths::Paths;
use crate::runtime::Runtime;
use crate::runtime::spec::{RunMode, RunSpec, UserMapping};

/// Build the template `name` into its image, on the rig `configured` names (a rig name
/// such as `host` after `rig bootstrap` builds on the image it names; a template cannot
/// be the base of another, nor of itself). The engine's output goes to the terminal;
/// the build's exit code comes back.
pub fn build(rt: &Runtime, paths: &Paths, configured: &str, name: &str) -> Result<i32> {
    let t = super::template::discover(&paths.rig_templates())
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| UserError::new(format!("unknown template '{name}'")))?;
    let rigs = Rigs::load(&paths.rigs_file())?;
    let templates = super::template::names(&paths.rig_templates());
    let r = super::resolve(configured, &rigs, &templates, configured, &|i| {
        rt.image_exists(i)
    });
    let base = if r.kind == Kind::Template {
        crate::settings::keys::DEFAULT_IMAGE.to_owned()
    } else {
        r.image
    };
    // A rig made by `rig bootstrap` holds this host's programs, not a distribution: a
    // template that installs packages cannot work on it, so say so before building.
    if let Some(rec) = rigs.get(configured)
        && rec.source_type.as_deref() == Some("bootstrap")
        && needs_package_manager(&t.text)
    {
        return Err(UserError::new(format!(
            "template '{name}' installs packages with apt-get, and rig '{configured}' (made by \
             `rig bootstrap` from this host's programs) has no package manager"
        ))
        .hint(format!(
            "build it on a distribution image: `kanibako system config box.image={}`, then \
             `kanibako rig prep {name}`",
            crate::settings::keys::DEFAULT_IMAGE
        ))
        .into());
    }
    let image = super::template_image(name);
    output::say(format_args!(
        "Building rig '{name}' ({}) on {base}...",
        t.description()
    ));
    build_template(rt, &t, &image, &base)
}

/// Whether a Containerfile runs a package manager (`RUN apt-get …`).
pub fn needs_package_manager(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        !l.starts_with('#')
            && ["apt-get ", "apt ", "dpkg ", "apk ", "dnf ", "yum "]
                .iter()
                .any(|pm| l.contains(pm))
    })
}

/// Build `t` into `image` on `base`, the engine's output streamed to the terminal.
pub fn build_template(rt: &Runtime, t: &Template, image: &str, base: &str) -> Result<i32> {
    let work = tempfile::Builder::new()
        .prefix("kanibako-build-")
        .tempdir()?;
    let (file, context) = match &t.origin {
        Origin::User(path) => (
            path.clone(),
            path.parent().unwrap_or(Path::new(".")).to_owned(),
        ),
        Origin::Bundled => {
            let f = work
                .path()
                .join(format!("Containerfile.template-{}", t.name));
            std::fs::write(&f, &t.text)?;
            (f, work.path().to_owned())
        }
    };
    rt.build(image, base, &file, &context)
        .context("running the build")
}

/// The interactive run of `rig extend NAME` on `image`: a shell as the image's own user
/// (what it changes is the image), kept after it exits so it can be committed.
pub fn extend_spec(name: &str, image: &str, tty: bool) -> RunSpec {
    let mut spec = RunSpec::job(
        "rig-extend",
        format!("kanibako-extend-{name}"),
        image,
        RunMode::Kept { tty },
        UserMapping::Image,
    );
    spec.entrypoint = Some("/bin/bash".into());
    spec
}

/// `rig.yaml`, as written into an extended image and into a bundle.
pub fn rig_yaml(name: &str, parent: Option<&str>, source: &str) -> String {
    let mut s = format!("name: {name}\nkind: extended\nreproducible: false\n");
    if let Some(p) = parent {
        s.push_str(&format!("parent: {p}\n"));
    }
    s.push_str(&format!("foundation_source: {source}\n"));
    s
}

/// The `name:` of a `rig.yaml`.
pub fn rig_yaml_name(text: &str) -> Result<String> {
    let doc = crate::document::Document::parse(Path::new("rig.yaml"), text)?;
    doc.get_str(&["name"])?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| UserError::new("rig.yaml has no name").into())
}

/// Write a bundle: a gzip tar of `rig.yaml` and `image.tar`.
pub fn write_bundle(out: &Path, rig_yaml: &str, image_tar: &Path) -> Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(rig_yaml.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "rig.yaml", rig_yaml.as_bytes())?;
    tar.append_path_with_name(image_tar, "image.tar")?;
    tar.into_inner()?.finish()?;
    Ok(())
}

/// Unpack a bundle into `dir`, refusing any member with an absolute path or `..`.
/// Returns the `rig.yaml` text.
pub fn read_bundle(file: &Path, dir: &Path) -> Result<String> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut rig = None;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            bail!(UserError::new(format!(
                "refusing bundle member '{}': it points outside the bundle",
                path.display()
            )));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match name {
            "rig.yaml" => {
                let mut s = String::new();
                entry.read_to_string(&mut s)?;
                rig = Some(s);
            }
            // Only plain files: a link entry would have the engine read a host file.
            "image.tar" | "Containerfile" if entry.header().entry_type().is_file() => {
                entry.unpack(dir.join(name))?;
            }
            _ => {}
        }
    }
    rig.ok_or_else(|| {
        UserError::new(format!(
            "{} has no rig.yaml: not a rig bundle",
            file.display()
        ))
        .into()
    })
}

/// The first `RepoTags` entry of a `docker save` style archive, if any.
pub fn archive_tag(file: &Path) -> Option<String> {
    let f = std::fs::File::open(file).ok()?;
    let mut tar = tar::Archive::new(f);
    for entry in tar.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.path().ok()?.as_os_str() == "manifest.json" {
            let mut s = String::new();
            entry.read_to_string(&mut s).ok()?;
            let v: serde_json::Value = serde_json::from_str(&s).ok()?;
            return v[0]["RepoTags"][0].as_str().map(str::to_owned);
        }
    }
    None
}

/// The one tag a `docker save` style archive gives the one image it holds, or why it
/// is not such an archive: `load` tags every `RepoTags` entry of every image (and the
/// names of an OCI index or a legacy `repositories` file), so a bundle with any more
/// could retag some other image, such as the default rig.
pub fn archive_single_tag(file: &Path) -> Result<String, String> {
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut tar = tar::Archive::new(f);
    let mut manifest = None;
    let mut repositories = None;
    let mut index = None;
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let name = path.to_string_lossy().trim_start_matches("./").to_owned();
        let slot = match name.as_str() {
            "manifest.json" => &mut manifest,
            "repositories" => &mut repositories,
            "index.json" => &mut index,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("it holds {name} twice"));
        }
        let mut s = String::new();
        (&mut entry)
            .take(1 << 20)
            .read_to_string(&mut s)
            .map_err(|e| format!("{name}: {e}"))?;
        *slot = Some(s);
    }
    let manifest = manifest.ok_or("it has no manifest.json")?;
    let v: serde_json::Value =
        serde_json::from_str(&manifest).map_err(|e| format!("manifest.json: {e}"))?;
    let images = v.as_array().ok_or("manifest.json is not a list")?;
    let [image] = images.as_slice() else {
        return Err(format!("it holds {} images, not one", images.len()));
    };
    let tags = image["RepoTags"].as_array().cloned().unwrap_or_default();
    let [tag] = tags.as_slice() else {
        return Err(format!("its image has {} tags, not one", tags.len()));
    };
    let tag = tag.as_str().ok_or("its tag is not text")?.to_owned();
    if let Some(text) = repositories {
        let r: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("repositories: {e}"))?;
        let names: Vec<String> = r
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(repo, t)| {
                t.as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(t, _)| format!("{repo}:{t}"))
            })
            .collect();
        if names.iter().any(|n| *n != tag) {
            return Err(format!("its repositories file names {}", names.join(", ")));
        }
    }
    // docker 25 and later also write an OCI index, which podman loads by its names.
    if let Some(text) = index {
        let i: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("index.json: {e}"))?;
        let manifests = i["manifests"].as_array().cloned().unwrap_or_default();
        if manifests.len() > 1 {
            return Err(format!("its index.json lists {} images", manifests.len()));
        }
        for m in &manifests {
            let named = |key: &str| m["annotations"][key].as_str().map(str::to_owned);
            let full_ok = named("io.containerd.image.name").is_none_or(|n| n == tag);
            let short_ok = named("org.opencontainers.image.ref.name")
                .is_none_or(|n| n == tag || tag.ends_with(&format!(":{n}")));
            if !(full_ok && short_ok) {
                return Err("its index.json names another image".into());
            }
        }
    }
    Ok(tag)
}

/// Whether a file is an image archive (a tar with `manifest.json`, `oci-layout` or
/// `blobs/`).
pub fn is_image_archive(file: &Path) -> bool {
    let Ok(f) = std::fs::File::open(file) else {
        return false;
    };
    let mut tar = tar::Archive::new(f);
    let Ok(entries) = tar.entries() else {
        return false;
    };
    entries.flatten().take(200).any(|e| {
        e.path().is_ok_and(|p| {
            let s = p.to_string_lossy();
            s == "manifest.json" || s == "oci-layout" || s.starts_with("blobs/")
        })
    })
}

pub fn temp_dir() -> Result<PathBuf> {
    Ok(tempfile::Builder::new()
        .prefix("kanibako-rig-")
        .tempdir()?
        .keep())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_that_install_packages_are_recognised() {
        assert!(needs_package_manager(
            "FROM ${BASE_IMAGE}\nRUN apt-get update && apt-get install -y nodejs\n"
        ));
        assert!(!needs_package_manager(
            "FROM x\n# apt-get is not needed\nCOPY a b\n"
        ));
        for t in crate::rig::template::discover(std::path::Path::new("/nonexistent")) {
            assert!(needs_package_manager(&t.text), "bundled {}", t.name);
        }
    }

    #[test]
    fn extend_runs_a_kept_shell_as_the_images_user() {
        let args: Vec<String> = extend_spec("mine", "localhost/kanibako-rig-b:latest", false)
            .to_args(crate::runtime::EngineKind::Podman, None, None)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            format!(
                "run --pull=never -i --init --label io.kanibako.role=rig-extend --label io.kanibako.version={} --name kanibako-extend-mine --entrypoint /bin/bash localhost/kanibako-rig-b:latest",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    fn archive(dir: &Path, members: &[(&str, &str)]) -> PathBuf {
        let path = dir.join(format!("a{}.tar", members.len()));
        let mut t = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for (name, text) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, text.as_bytes()).unwrap();
        }
        t.finish().unwrap();
        path
    }

    /// Issue 10, item 7: an image archive is taken only with one image of one tag (a
    /// second tag, a second image, an OCI index or a legacy `repositories` naming more
    /// would retag another image on load).
    #[test]
    fn an_archive_must_hold_one_image_with_one_tag() {
        let d = tempfile::tempdir().unwrap();
        let one = r#"[{"Config":"c.json","RepoTags":["localhost/kanibako-rig-mine:latest"],"Layers":[]}]"#;
        let t = d.path().join("ok");
        std::fs::create_dir(&t).unwrap();
        assert_eq!(
            archive_single_tag(&archive(&t, &[("manifest.json", one)])).unwrap(),
            "localhost/kanibako-rig-mine:latest"
        );
        let docker = d.path().join("docker");
        std::fs::create_dir(&docker).unwrap();
        let index = r#"{"manifests":[{"annotations":{"io.containerd.image.name":"localhost/kanibako-rig-mine:latest","org.opencontainers.image.ref.name":"latest"}}]}"#;
        assert!(
            archive_single_tag(&archive(
                &docker,
                &[
                    ("oci-layout", "{}"),
                    ("index.json", index),
                    ("manifest.json", one)
                ]
            ))
            .is_ok(),
            "a docker 25 save"
        );
        let two_tags = r#"[{"RepoTags":["localhost/kanibako-rig-mine:latest","ghcr.io/doctorjei/kanibako-oci:latest"]}]"#;
        let two_images = r#"[{"RepoTags":["localhost/kanibako-rig-mine:latest"]},{"RepoTags":["ghcr.io/doctorjei/kanibako-oci:latest"]}]"#;
        let repos = r#"{"ghcr.io/doctorjei/kanibako-oci":{"latest":"abc"}}"#;
        for (i, members) in [
            vec![("manifest.json", two_tags)],
            vec![("manifest.json", two_images)],
            vec![("manifest.json", one), ("repositories", repos)],
            vec![
                ("manifest.json", one),
                (
                    "index.json",
                    r#"{"manifests":[{"annotations":{"io.containerd.image.name":"ghcr.io/doctorjei/kanibako-oci:latest"}}]}"#,
                ),
            ],
            vec![("manifest.json", one), ("manifest.json", one)],
            vec![],
        ]
        .into_iter()
        .enumerate()
        {
            let t = d.path().join(format!("bad{i}"));
            std::fs::create_dir(&t).unwrap();
            assert!(
                archive_single_tag(&archive(&t, &members)).is_err(),
                "case {i}: {members:?}"
            );
        }
    }

    #[test]
    fn bundles_round_trip_and_hostile_members_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("img.tar");
        std::fs::write(&img, b"image bytes").unwrap();
        let bundle = d.path().join("x.rig.tgz");
        write_bundle(&bundle, &rig_yaml("mine", Some("oci"), "extend"), &img).unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let text = read_bundle(&bundle, &out).unwrap();
        assert_eq!(rig_yaml_name(&text).unwrap(), "mine");
        assert_eq!(
            std::fs::read(out.join("image.tar")).unwrap(),
            b"image bytes"
        );

        // a member climbing out of the bundle
        let evil = d.path().join("evil.rig.tgz");
        let f = std::fs::File::create(&evil).unwrap();
        let mut t = tar::Builder::new(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::fast(),
        ));
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        // written raw: the tar crate refuses `..` in names it builds itself
        h.as_gnu_mut().unwrap().name[..6].copy_from_slice(b"../pwn");
        h.set_cksum();
        t.append(&h, &b"x"[..]).unwrap();
        t.into_inner().unwrap().finish().unwrap();
        let err = read_bundle(&evil, &out).unwrap_err();
        assert!(err.to_string().contains("points outside"), "{err}");
        assert!(!d.path().join("pwn").exists());
    }
}

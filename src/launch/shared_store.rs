//! What of the engine's image store a box run with `--share-images` sees: the images'
//! layers and the image and layer records, read-only — never the rest of the store
//! (`libpod/` holds every container's configuration and environment, so other boxes'
//! secrets; `secrets/`, `volumes/`, and containers' own writable layers).
//!
//! The store is podman's `overlay` layout: `overlay-images/images.json` names each
//! image's top layer, `overlay-layers/layers.json` each layer's parent, and a layer's
//! files are `overlay/<id>/`, with the short links `overlay/l/` points at them by.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A part of the store to mount: its host path and its place below the store root.
pub type Part = (PathBuf, String);

/// A layer id as the store writes one (and so a safe path component).
fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn records(text: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// The ids of every layer some image is made of: each image's top layer (and its
/// id-mapped copies) and their parents, from the two records' text.
pub fn image_layers(images_json: &str, layers_json: &str) -> BTreeSet<String> {
    let parents: BTreeMap<String, String> = records(layers_json)
        .iter()
        .filter_map(|l| {
            let id = l.get("id")?.as_str()?;
            let parent = l.get("parent")?.as_str()?;
            Some((id.to_owned(), parent.to_owned()))
        })
        .collect();
    let mut out = BTreeSet::new();
    for image in records(images_json) {
        let mut tops: Vec<&str> = image
            .get("layer")
            .and_then(Value::as_str)
            .into_iter()
            .collect();
        if let Some(Value::Array(mapped)) = image.get("mapped-layers") {
            tops.extend(mapped.iter().filter_map(Value::as_str));
        }
        for top in tops {
            let mut cur = Some(top.to_owned());
            // A cycle in a corrupt record ends when a layer is seen twice.
            while let Some(id) = cur.take() {
                if !is_id(&id) || !out.insert(id.clone()) {
                    break;
                }
                cur = parents.get(&id).cloned();
            }
        }
    }
    out
}

/// The parts of the store at `graph` a box may see; empty when it is not an overlay
/// store kanibako can read (nothing is then shared).
pub fn image_parts(graph: &Path) -> Vec<Part> {
    let read = |rel: &str| std::fs::read_to_string(graph.join(rel)).unwrap_or_default();
    let layers = image_layers(
        &read("overlay-images/images.json"),
        &read("overlay-layers/layers.json"),
    );
    if layers.is_empty() {
        return Vec::new();
    }
    let mut parts: Vec<Part> = ["overlay-images", "overlay-layers", "overlay/l"]
        .into_iter()
        .filter(|rel| graph.join(rel).is_dir())
        .map(|rel| (graph.join(rel), rel.to_owned()))
        .collect();
    for id in layers {
        let rel = format!("overlay/{id}");
        let src = graph.join(&rel);
        if std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_dir()) {
            parts.push((src, rel));
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn only_image_layers_and_their_parents() {
        let (a, b, c, ctr) = (id('a'), id('b'), id('c'), id('d'));
        let images = format!(r#"[{{"id":"img","layer":"{b}"}}]"#);
        // c is an unrelated layer (a container's writable one, say)
        let layers = format!(
            r#"[{{"id":"{a}"}},{{"id":"{b}","parent":"{a}"}},{{"id":"{c}","parent":"{a}"}},{{"id":"{ctr}","parent":"{b}"}}]"#
        );
        let got = image_layers(&images, &layers);
        assert_eq!(got, BTreeSet::from([a, b]));
        // a hostile record cannot name a path
        let images = r#"[{"layer":"../libpod"}]"#;
        assert!(image_layers(images, "[]").is_empty());
    }

    #[test]
    fn the_store_shares_no_container_state() {
        let t = tempfile::tempdir().unwrap();
        let g = t.path();
        let (a, ctr) = (id('a'), id('c'));
        for d in [
            "libpod".to_owned(),
            "secrets".into(),
            "overlay-containers".into(),
            "overlay-images".into(),
            "overlay-layers".into(),
            "overlay/l".into(),
            format!("overlay/{a}/diff"),
            format!("overlay/{ctr}/diff"),
        ] {
            std::fs::create_dir_all(g.join(d)).unwrap();
        }
        std::fs::write(g.join("libpod/bolt_state.db"), "env").unwrap();
        std::fs::write(
            g.join("overlay-images/images.json"),
            format!(r#"[{{"id":"i","layer":"{a}"}}]"#),
        )
        .unwrap();
        std::fs::write(
            g.join("overlay-layers/layers.json"),
            format!(r#"[{{"id":"{a}"}},{{"id":"{ctr}","parent":"{a}"}}]"#),
        )
        .unwrap();
        let rels: Vec<String> = image_parts(g).into_iter().map(|(_, r)| r).collect();
        assert_eq!(
            rels,
            [
                "overlay-images".to_owned(),
                "overlay-layers".into(),
                "overlay/l".into(),
                format!("overlay/{a}")
            ]
        );
    }
}

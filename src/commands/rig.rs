//! `rig list|info|bootstrap|rm`.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::cli::rig::{BootstrapArgs, RigCommand, RigListArgs, RigNameArgs, RigRmArgs};
use crate::context::Context;
use crate::error::{Exit, UserError};
use crate::prompt;
use crate::rig::registry::{Record, Rigs};
use crate::rig::{self, Kind, bootstrap};
use crate::runtime::Runtime;

pub fn dispatch(cx: &Context, command: Option<RigCommand>) -> Result<Exit> {
    match command {
        None => list(cx, &RigListArgs::default()),
        Some(RigCommand::List(a)) => list(cx, &a),
        Some(RigCommand::Info(a)) => info(cx, &a),
        Some(RigCommand::Bootstrap(a)) => bootstrap(cx, &a),
        Some(RigCommand::Rm(a)) => rm(cx, &a),
    }
}

pub fn rigs_file(cx: &Context) -> std::path::PathBuf {
    cx.paths.data.join("rigs.yaml")
}

/// Every local image reference, in the spellings a user may give it.
fn local_images(rt: &Runtime<'_>) -> Result<BTreeSet<String>> {
    let inv = rt
        .invocation()
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let out = rt.query(&inv)?;
    let mut set = BTreeSet::new();
    for line in out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("<none>"))
    {
        set.insert(line.to_owned());
        if let Some(short) = line.strip_prefix("localhost/") {
            set.insert(short.to_owned());
        }
        for full in [
            line.to_owned(),
            line.trim_start_matches("localhost/").to_owned(),
        ] {
            if let Some(bare) = full.strip_suffix(":latest") {
                set.insert(bare.to_owned());
            }
        }
    }
    Ok(set)
}

fn present(set: &BTreeSet<String>, image: &str) -> bool {
    set.contains(image) || set.contains(&format!("{image}:latest"))
}

/// User templates (`$DATA/containers/Containerfile.template-<name>`).
pub fn templates(cx: &Context) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(cx.paths.data.join("containers"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix("Containerfile.template-")
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[derive(Serialize)]
struct Entry {
    name: String,
    kind: Kind,
    image: String,
    status: &'static str,
}

fn list(cx: &Context, a: &RigListArgs) -> Result<Exit> {
    let rigs = Rigs::load(&rigs_file(cx))?;
    let configured = cx.stack(None, None)?.image()?;
    let local = match cx.runtime() {
        Ok(rt) => Some(local_images(&rt)?),
        Err(e) => {
            eprintln!("note: rig status unknown: {e}");
            None
        }
    };
    let status = |image: &str| match &local {
        Some(set) if present(set, image) => "prepped",
        Some(_) => "unprepped",
        None => "unknown",
    };
    let exists = |i: &str| local.as_ref().is_some_and(|s| present(s, i));
    let mut entries = Vec::new();
    for s in rig::SHORTHANDS {
        let image = rig::reference(s, &configured, &exists);
        entries.push(Entry {
            name: s.to_owned(),
            kind: Kind::Prefab,
            status: status(&image),
            image,
        });
    }
    for t in templates(cx) {
        let image = rig::template_image(&t);
        entries.push(Entry {
            name: t,
            kind: Kind::Template,
            status: status(&image),
            image,
        });
    }
    for (name, rec) in &rigs.records {
        let r = rig::resolve(name, &rigs, &[], &configured, &exists);
        let st = match (status(&r.image), rec.kind) {
            ("unprepped", Kind::Extended) => "missing",
            (s, _) => s,
        };
        entries.push(Entry {
            name: name.clone(),
            kind: rec.kind,
            image: r.image,
            status: st,
        });
    }
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            rigs: &'a [Entry],
            current: String,
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&Out {
                rigs: &entries,
                current: configured,
            })?
        );
        return Ok(Exit::Success);
    }
    if a.quiet {
        for e in &entries {
            println!("{}", e.image);
        }
        return Ok(Exit::Success);
    }
    for (kind, title) in [
        (Kind::Prefab, "Prefabs (pull to prep):"),
        (Kind::Template, "Templates (build to prep):"),
        (
            Kind::Extended,
            "Extended (export/import to move; `rig bootstrap` builds one from this host):",
        ),
    ] {
        println!("{title}");
        let rows: Vec<&Entry> = entries.iter().filter(|e| e.kind == kind).collect();
        if rows.is_empty() {
            println!("  (none)");
        }
        for e in rows {
            println!("  {:<20} {:<10} {}", e.name, e.status, e.image);
        }
    }
    println!("\nCurrent rig: {configured}");
    Ok(Exit::Success)
}

fn info(cx: &Context, a: &RigNameArgs) -> Result<Exit> {
    let rigs = Rigs::load(&rigs_file(cx))?;
    let configured = cx.stack(None, None)?.image()?;
    let rt = cx.runtime()?;
    let local = local_images(&rt)?;
    let exists = |i: &str| present(&local, i);
    let r = rig::resolve(&a.name, &rigs, &templates(cx), &configured, &exists);
    let known = rigs.get(&a.name).is_some()
        || r.kind == Kind::Template
        || r.present
        || rig::SHORTHANDS.contains(&a.name.as_str());
    if !known {
        return Err(UserError::new(format!("rig not found: {}", a.name))
            .hint("`kanibako rig list` shows the rigs kanibako knows")
            .into());
    }
    println!("Name:     {}", r.name);
    println!("Kind:     {}", r.kind.as_str());
    println!(
        "Status:   {}",
        if r.present { "prepped" } else { "unprepped" }
    );
    println!("Image:    {}", r.image);
    if let Some(rec) = rigs.get(&a.name)
        && let Some(src) = rec.source_type.as_deref()
    {
        println!("Source:   {src}");
    }
    if r.present {
        let inv = rt
            .invocation()
            .args([
                "image",
                "inspect",
                "--format",
                "{{.Id}}|{{.Created}}|{{.Size}}",
            ])
            .arg(&r.image);
        if let Ok(out) = rt.query(&inv) {
            let f: Vec<&str> = out.trim().split('|').collect();
            if let [id, created, size] = f.as_slice() {
                println!(
                    "ID:       {}",
                    id.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect::<String>()
                );
                println!("Created:  {created}");
                let mb = size.parse::<f64>().unwrap_or(0.0) / 1e6;
                println!("Size:     {mb:.1} MB");
            }
        }
    }
    Ok(Exit::Success)
}

fn bootstrap(cx: &Context, a: &BootstrapArgs) -> Result<Exit> {
    if !rig::is_short_name(&a.name) {
        return Err(UserError::new(format!(
            "invalid rig name '{}': use lowercase letters, digits, '-' and '_'",
            a.name
        ))
        .into());
    }
    let rt = cx.runtime()?;
    let image = format!("localhost/{}:latest", rig::extended_image(&a.name));
    let local = local_images(&rt)?;
    if present(&local, &image) && !a.force {
        println!(
            "Rig '{}' already exists ({image}); `--force` rebuilds it.",
            a.name
        );
        return Ok(Exit::Success);
    }
    eprintln!("Collecting this host's programs and their libraries...");
    let plan = bootstrap::plan(&cx.host, cx.exec.as_ref(), &a.name)?;
    let dir = tempfile::Builder::new()
        .prefix("kanibako-bootstrap-")
        .tempdir_in({
            std::fs::create_dir_all(&cx.paths.cache)?;
            &cx.paths.cache
        })
        .context("making a work directory")?;
    let tar = dir.path().join("rootfs.tar");
    let bytes = bootstrap::write_tar(&plan, &tar)?;
    eprintln!(
        "Importing {} files ({:.1} MB) as {image}...",
        plan.items.len(),
        bytes as f64 / 1e6
    );
    let mut inv = rt.invocation().arg("import");
    for c in bootstrap::changes(&a.name) {
        inv = inv.arg("--change").arg(c);
    }
    let inv = inv.arg(&tar).arg(&image);
    rt.query(&inv)?;
    eprintln!("Checking it runs...");
    let check = rt
        .invocation()
        .args([
            "run",
            "--rm",
            "--pull=never",
            "--network=none",
            "--user",
            "1000:1000",
        ])
        .arg(&image)
        .args(["/bin/sh", "-c", "bash -c true && tmux -V && git --version"]);
    let out = rt.exec.output(&check)?;
    if !out.status.success() {
        return Err(UserError::new(format!(
            "the new rig does not run: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .into());
    }
    let mut rigs = Rigs::load(&rigs_file(cx))?;
    rigs.upsert(
        &a.name,
        &Record {
            kind: Kind::Extended,
            source: None,
            source_type: Some("bootstrap".into()),
            image: Some(image.clone()),
        },
    )?;
    println!("Rig '{}' is ready: {image}", a.name);
    println!(
        "Use it for every box:  kanibako system config box.image={}",
        a.name
    );
    Ok(Exit::Success)
}

fn rm(cx: &Context, a: &RigRmArgs) -> Result<Exit> {
    let mut rigs = Rigs::load(&rigs_file(cx))?;
    let configured = cx.stack(None, None)?.image()?;
    let rt = cx.runtime()?;
    let local = local_images(&rt)?;
    let r = rig::resolve(&a.name, &rigs, &templates(cx), &configured, &|i| {
        present(&local, i)
    });
    let record = rigs.get(&a.name).cloned();
    if record.is_none() && !r.present {
        return Err(UserError::new(format!("rig not found: {}", a.name)).into());
    }
    if r.present
        && !a.force
        && !prompt::confirm_yn(&cx.host, &format!("Remove image '{}'?", r.image), "--force")?
    {
        println!("Cancelled.");
        return Ok(Exit::Success);
    }
    if r.present {
        let inv = rt.invocation().arg("rmi").arg(&r.image);
        rt.query(&inv)
            .map_err(|e| UserError::new(format!("Failed to remove rig {}: {e}", r.image)))?;
        println!("Removed image {}", r.image);
    }
    if record.is_some() && rigs.remove(&a.name)? {
        println!("Removed rig '{}' from the registry.", a.name);
    }
    Ok(Exit::Success)
}

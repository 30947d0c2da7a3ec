//! `rig list|info|bootstrap|rm`.

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::cli::rig::{
    AddArgs, BootstrapArgs, CreateArgs, ExportArgs, ExtendArgs, ImportArgs, PrepArgs, RebuildArgs,
    RigCommand, RigListArgs, RigNameArgs, RigRmArgs,
};
use crate::cli::system::JsonArgs;
use crate::context::Context;
use crate::diagnose::{Check, Report, checks, probe};
use crate::error::{Exit, UserError};
use crate::output;
use crate::prompt;
use crate::rig::registry::{Record, Rigs};
use crate::rig::{self, Kind, LocalImages, bootstrap, ops, template};
use crate::runtime::Runtime;

pub fn dispatch(cx: &Context, command: Option<RigCommand>) -> Result<Exit> {
    match command {
        None => list(cx, &RigListArgs::default()),
        Some(RigCommand::List(a)) => list(cx, &a),
        Some(RigCommand::Info(a)) => info(cx, &a),
        Some(RigCommand::Bootstrap(a)) => bootstrap(cx, &a),
        Some(RigCommand::Rm(a)) => rm(cx, &a),
        Some(RigCommand::Prep(a)) => prep(cx, &a),
        Some(RigCommand::Add(a)) => add(cx, &a),
        Some(RigCommand::Extend(a)) => extend(cx, &a),
        Some(RigCommand::Export(a)) => export(cx, &a),
        Some(RigCommand::Import(a)) => import(cx, &a),
        Some(RigCommand::Diagnose(a)) => diagnose(cx, &a),
        Some(RigCommand::Create(a)) => create(cx, a),
        Some(RigCommand::Rebuild(a)) => rebuild(cx, a),
    }
}

/// Upstream's words for a command it renamed, on stderr before the new one runs.
fn deprecated(old: &str, new: &str) {
    output::note(format_args!("'{old}' is deprecated; use '{new}'."));
}

/// `rig create NAME --template T` is `rig prep T`; without `--template` it is
/// `rig extend NAME --from BASE` (upstream's default foundation: the `oci` prefab).
fn create(cx: &Context, a: CreateArgs) -> Result<Exit> {
    match a.template {
        Some(template) => {
            deprecated("rig create --template", "rig prep");
            if let Some(base) = &a.base {
                let rt = cx.runtime()?;
                let code = ops::build(&rt, &cx.paths, base, &template)?;
                if code != 0 {
                    output::say(format_args!("Build failed with exit code {code}"));
                    return Ok(Exit::Code(1));
                }
                println!("Rig '{template}' prepped on {base}");
                return Ok(Exit::Success);
            }
            prep(
                cx,
                &PrepArgs {
                    name: Some(template),
                    force: true,
                    all: false,
                },
            )
        }
        None => {
            deprecated("rig create (interactive)", "rig extend");
            extend(
                cx,
                &ExtendArgs {
                    name: a.name,
                    from: a.base.unwrap_or_else(|| "oci".to_owned()),
                    always_commit: a.always_commit,
                    no_commit_on_error: a.no_commit_on_error,
                },
            )
        }
    }
}

/// `rig rebuild [IMAGE] [--all]` is `rig prep --force` of that rig, the configured
/// one, or every template.
fn rebuild(cx: &Context, a: RebuildArgs) -> Result<Exit> {
    deprecated("rig rebuild", "rig prep --force");
    let name = match (a.all, a.image) {
        (true, _) => None,
        (false, Some(image)) => Some(image),
        (false, None) => Some(cx.stack(None, None)?.image()?),
    };
    prep(
        cx,
        &PrepArgs {
            name,
            force: true,
            all: a.all,
        },
    )
}

/// Every local image reference, in the spellings a user may give it.
fn local_images(rt: &Runtime) -> Result<LocalImages> {
    Ok(LocalImages::from_refs(rt.image_refs()?))
}

fn templates(cx: &Context) -> Vec<String> {
    template::names(&cx.paths.rig_templates())
}

/// Build the template `name` on the rig configured for all boxes.
fn build(cx: &Context, rt: &Runtime, name: &str) -> Result<i32> {
    ops::build(rt, &cx.paths, &cx.stack(None, None)?.image()?, name)
}

#[derive(Serialize)]
struct Entry {
    name: String,
    #[serde(skip)]
    kind: Kind,
    /// A template's origin, `bundled` or `user` (upstream's field; templates only).
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'static str>,
    image: String,
    status: &'static str,
}

fn list(cx: &Context, a: &RigListArgs) -> Result<Exit> {
    let rigs = Rigs::load(&cx.paths.rigs_file())?;
    let configured = cx.stack(None, None)?.image()?;
    let local = match cx.runtime() {
        Ok(rt) => Some(local_images(&rt)?),
        Err(e) => {
            output::note(format_args!("rig status unknown: {e}"));
            None
        }
    };
    let status = |image: &str| match &local {
        Some(set) if set.has(image) => "prepped",
        Some(_) => "unprepped",
        None => "unknown",
    };
    let exists = |i: &str| local.as_ref().is_some_and(|s| s.has(i));
    let mut entries = Vec::new();
    for s in rig::SHORTHANDS {
        let image = rig::reference(s, &configured, &exists);
        entries.push(Entry {
            name: s.to_owned(),
            kind: Kind::Prefab,
            source: None,
            status: status(&image),
            image,
        });
    }
    for t in template::discover(&cx.paths.rig_templates()) {
        let image = rig::template_image(&t.name);
        entries.push(Entry {
            source: Some(match t.origin {
                template::Origin::Bundled => "bundled",
                template::Origin::User(_) => "user",
            }),
            name: t.name,
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
            source: None,
            image: r.image,
            status: st,
        });
    }
    if a.json {
        // Upstream's shape: one list per kind, then the configured rig.
        #[derive(Serialize)]
        struct Out<'a> {
            prefabs: Vec<&'a Entry>,
            templates: Vec<&'a Entry>,
            extended: Vec<&'a Entry>,
            current: String,
        }
        let of = |k: Kind| entries.iter().filter(|e| e.kind == k).collect::<Vec<_>>();
        crate::json_output::print_object(&Out {
            prefabs: of(Kind::Prefab),
            templates: of(Kind::Template),
            extended: of(Kind::Extended),
            current: configured,
        });
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
    let rigs = Rigs::load(&cx.paths.rigs_file())?;
    let configured = cx.stack(None, None)?.image()?;
    let rt = cx.runtime()?;
    let local = local_images(&rt)?;
    let exists = |i: &str| local.has(i);
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
    if a.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            name: &'a str,
            kind: Kind,
            status: &'static str,
            image: &'a str,
            source: Option<&'a str>,
            id: Option<String>,
            created: Option<String>,
            size_bytes: Option<f64>,
        }
        let details = r.present.then(|| rt.image_details(&r.image)).flatten();
        crate::json_output::print_object(&Doc {
            name: &r.name,
            kind: r.kind,
            status: if r.present { "prepped" } else { "unprepped" },
            image: &r.image,
            source: rigs.get(&a.name).and_then(|rec| rec.source_type.as_deref()),
            id: details.as_ref().map(|d| d.id.clone()),
            created: details.as_ref().map(|d| d.created.clone()),
            size_bytes: details.as_ref().map(|d| d.size_bytes),
        });
        return Ok(Exit::Success);
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
    if r.present
        && let Some(d) = rt.image_details(&r.image)
    {
        println!("ID:       {}", d.id.chars().take(12).collect::<String>());
        println!("Created:  {}", d.created);
        println!("Size:     {:.1} MB", d.size_bytes / 1e6);
    }
    Ok(Exit::Success)
}

fn bootstrap(cx: &Context, a: &BootstrapArgs) -> Result<Exit> {
    check_rig_name(&a.name)?;
    let rt = cx.runtime()?;
    let image = format!("localhost/{}:latest", rig::extended_image(&a.name));
    let local = local_images(&rt)?;
    // Only a bootstrap that finished (checked, recorded) counts: an image left by one
    // that failed half-way is rebuilt.
    let recorded = Rigs::load(&cx.paths.rigs_file())?.get(&a.name).is_some();
    if local.has(&image) && recorded && !a.force {
        println!(
            "Rig '{}' already exists ({image}); `--force` rebuilds it.",
            a.name
        );
        return Ok(Exit::Success);
    }
    output::say("Collecting this host's programs and their libraries...");
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
    output::say(format_args!(
        "Importing {} files ({:.1} MB) as {image}...",
        plan.items.len(),
        bytes as f64 / 1e6
    ));
    // The import and the check are the long waits, and print nothing of their own: a
    // spinner on a terminal, the plain status lines elsewhere.
    let spinner = rt.spinner(&format!("Importing {image}"));
    rt.import(&tar, &bootstrap::changes(&a.name), &image)?;
    drop(spinner);
    output::say("Checking it runs...");
    let spinner = rt.spinner("Running the new rig once");
    let checked = rt.run_captured(&bootstrap::check_spec(&a.name, &image), None, None);
    drop(spinner);
    let failure = match &checked {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(
            UserError::new(format!(
                "the new rig does not run: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .into(),
        ),
        Err(_) => checked.err().map(anyhow::Error::from),
    };
    if let Some(err) = failure {
        // A rig that did not pass its check is not left behind to be taken for one.
        let _ = rt.remove_image(&image);
        return Err(err);
    }
    let mut rigs = Rigs::load(&cx.paths.rigs_file())?;
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
    let mut rigs = Rigs::load(&cx.paths.rigs_file())?;
    let configured = cx.stack(None, None)?.image()?;
    let rt = cx.runtime()?;
    let local = local_images(&rt)?;
    let r = rig::resolve(&a.name, &rigs, &templates(cx), &configured, &|i| {
        local.has(i)
    });
    let record = rigs.get(&a.name).cloned();
    let user_template = cx
        .paths
        .rig_templates()
        .join(format!("Containerfile.template-{}", a.name));
    if record.is_none() && !r.present && !user_template.is_file() {
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
        rt.remove_image(&r.image)
            .map_err(|e| UserError::new(format!("Failed to remove rig {}: {e}", r.image)))?;
        println!("Removed image {}", r.image);
    }
    if record.is_some() && rigs.remove(&a.name)? {
        println!("Removed rig '{}' from the registry.", a.name);
    }
    if user_template.is_file() {
        std::fs::remove_file(&user_template)?;
        println!("Removed user template '{}'.", a.name);
    }
    Ok(Exit::Success)
}

fn prep(cx: &Context, a: &PrepArgs) -> Result<Exit> {
    let rt = cx.runtime()?;
    let all = templates(cx);
    let names: Vec<String> = match &a.name {
        Some(n) => vec![n.clone()],
        None => all.clone(),
    };
    let rigs = Rigs::load(&cx.paths.rigs_file())?;
    let configured = cx.stack(None, None)?.image()?;
    let mut failed = 0;
    for name in &names {
        // Asked again each time: a build before this one changed the store.
        let local = local_images(&rt)?;
        let r = rig::resolve(name, &rigs, &all, &configured, &|i| local.has(i));
        if r.present && !a.force {
            println!("Rig '{name}' is already prepped.");
            continue;
        }
        let ok = match r.kind {
            Kind::Template => {
                let code = build(cx, &rt, name)?;
                if code != 0 {
                    output::say(format_args!("Build failed with exit code {code}"));
                }
                code == 0
            }
            Kind::Extended => {
                return Err(UserError::new(format!(
                    "extended rig '{name}' has no recipe to prepare from"
                ))
                .hint("`kanibako rig import` brings one back from a bundle; `rig bootstrap` rebuilds a host rig")
                .into());
            }
            Kind::Prefab => {
                output::say(format_args!("Pulling {}...", r.image));
                rt.pull(&r.image)
            }
        };
        if ok {
            println!("Rig '{name}' prepped as {}", r.image);
        } else {
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(UserError::new(format!(
            "{failed} of {} rig(s) could not be prepared",
            names.len()
        ))
        .into());
    }
    Ok(Exit::Success)
}

fn add(cx: &Context, a: &AddArgs) -> Result<Exit> {
    let path = cx.host.cwd.join(&a.source);
    let is_file = path.is_file();
    let kind = match (a.kind.as_deref(), is_file) {
        (Some(k), _) => k.to_owned(),
        (None, true) if ops::is_image_archive(&path) => "archive".into(),
        (None, true)
            if template::looks_like_containerfile(
                &std::fs::read_to_string(&path).unwrap_or_default(),
            ) =>
        {
            "template".into()
        }
        (None, true) => {
            return Err(UserError::new(format!(
                "cannot classify source '{}'; pass --as image|template",
                path.display()
            ))
            .into());
        }
        (None, false) if looks_like_reference(&a.source) => "image".into(),
        (None, false) => {
            return Err(UserError::new(format!(
                "cannot classify source '{}'; expected a local file or an image reference (pass --as image|template to force)",
                a.source
            ))
            .into());
        }
    };
    let kind = if kind == "image" && is_file {
        "archive".to_owned()
    } else {
        kind
    };
    let mut rigs = Rigs::load(&cx.paths.rigs_file())?;
    let derived = match kind.as_str() {
        "template" => path
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.split_once('.').map(|(_, x)| x.to_owned()))
            .map(|x| x.trim_start_matches("template-").to_owned()),
        "image" => Some(strip_registry(&a.source)),
        _ => ops::archive_tag(&path).map(|t| strip_registry(&t)),
    };
    let name = a.name.clone().or(derived).ok_or_else(|| {
        UserError::new("could not derive a rig name from source; pass --name NAME")
    })?;
    let user_template = cx
        .paths
        .rig_templates()
        .join(format!("Containerfile.template-{name}"));
    if !a.force && (rigs.get(&name).is_some() || user_template.exists()) {
        return Err(UserError::new(format!(
            "rig '{name}' already exists; use --force to overwrite."
        ))
        .into());
    }
    match kind.as_str() {
        "template" => {
            if !rig::is_short_name(&name) {
                return Err(UserError::new(format!(
                    "invalid template name '{name}': use lowercase letters, digits, '-' and '_'"
                ))
                .into());
            }
            let text = std::fs::read(&path)?;
            crate::fsutil::atomic_write(&user_template, &text, crate::fsutil::MODE_CONFIG)?;
            println!(
                "Added template '{name}' ({}). Run 'kanibako rig prep {name}' to build it.",
                user_template.display()
            );
        }
        "image" => {
            rigs.upsert(
                &name,
                &Record {
                    kind: Kind::Prefab,
                    source: Some(a.source.clone()),
                    source_type: Some("ref".into()),
                    image: None,
                },
            )?;
            println!(
                "Added prefab '{name}' -> {}. Run 'kanibako rig prep {name}' to pull it.",
                a.source
            );
        }
        _ => {
            let rt = cx.runtime()?;
            let loaded = rt
                .load(&path)?
                .or_else(|| ops::archive_tag(&path))
                .ok_or_else(|| UserError::new("the archive holds no tagged image"))?;
            rigs.upsert(
                &name,
                &Record {
                    kind: Kind::Prefab,
                    source: Some(loaded.clone()),
                    source_type: Some("file".into()),
                    image: Some(loaded),
                },
            )?;
            println!("Added prefab '{name}' from archive.");
        }
    }
    Ok(Exit::Success)
}

/// A loose image reference: `[host/]path[:tag][@digest]` of the usual characters.
fn looks_like_reference(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '.', '/'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "./:_-@".contains(c))
}

/// `ghcr.io/corp/base:1.0` → `corp/base:1.0` (a first segment with `.` or `:` is a host).
fn strip_registry(r: &str) -> String {
    match r.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') => rest.to_owned(),
        _ => r.to_owned(),
    }
}

fn extend(cx: &Context, a: &ExtendArgs) -> Result<Exit> {
    check_rig_name(&a.name)?;
    let rt = cx.runtime()?;
    let rigs = Rigs::load(&cx.paths.rigs_file())?;
    let configured = cx.stack(None, None)?.image()?;
    let local = local_images(&rt)?;
    let base = rig::resolve(&a.from, &rigs, &templates(cx), &configured, &|i| {
        local.has(i)
    });
    if !base.present {
        match base.kind {
            Kind::Template => {
                if build(cx, &rt, &a.from)? != 0 {
                    return Err(UserError::new(format!("could not build '{}'", a.from)).into());
                }
            }
            Kind::Prefab if rt.pull(&base.image) => {}
            _ => {
                return Err(
                    UserError::new(format!("rig '{}' is not available locally", a.from)).into(),
                );
            }
        }
    }
    let spec = ops::extend_spec(&a.name, &base.image, cx.host.stdin_tty);
    let work = spec.name.clone();
    rt.remove_container(&work);
    output::say(format_args!(
        "Starting a shell in {}; what you change is saved as rig '{}' when it exits.",
        base.image, a.name
    ));
    let code = crate::process::exit_code(rt.run_attached(&spec, None, None)?);
    let commit = code == 0
        || a.always_commit
        || (!a.no_commit_on_error
            && prompt::confirm_yn(
                &cx.host,
                &format!("The shell exited with {code}. Commit container state anyway?"),
                "--always-commit or --no-commit-on-error",
            )?);
    let image = format!("localhost/{}:latest", rig::extended_image(&a.name));
    if commit {
        let dir = ops::temp_dir()?;
        let meta = dir.join("kanibako");
        std::fs::create_dir_all(&meta)?;
        std::fs::write(
            meta.join("rig.yaml"),
            ops::rig_yaml(&a.name, Some(&base.image), &a.from),
        )?;
        rt.copy_into(&work, &meta, "/etc/");
        let _ = std::fs::remove_dir_all(&dir);
        let out = rt.commit(&work, &image);
        rt.remove_container(&work);
        out?;
        let mut rigs = Rigs::load(&cx.paths.rigs_file())?;
        rigs.upsert(
            &a.name,
            &Record {
                kind: Kind::Extended,
                source: Some(a.from.clone()),
                source_type: Some("extend".into()),
                image: Some(image.clone()),
            },
        )?;
        println!("Extended rig saved as {image}");
    } else {
        rt.remove_container(&work);
        println!("Discarded the changes (the shell exited with {code}).");
    }
    Ok(Exit::Success)
}

fn export(cx: &Context, a: &ExportArgs) -> Result<Exit> {
    let rigs = Rigs::load(&cx.paths.rigs_file())?;
    let Some(rec) = rigs.get(&a.name).filter(|r| r.kind == Kind::Extended) else {
        return Err(UserError::new(format!(
            "'{}' is not an extended rig; only extended rigs are exported (others are rebuilt or pulled)",
            a.name
        ))
        .into());
    };
    let image = rec
        .image
        .clone()
        .unwrap_or_else(|| rig::extended_image(&a.name));
    let rt = cx.runtime()?;
    let out = cx.host.cwd.join(
        a.out
            .clone()
            .unwrap_or_else(|| format!("{}.rig.tgz", a.name)),
    );
    let dir = tempfile::Builder::new()
        .prefix("kanibako-export-")
        .tempdir()?;
    let tar = dir.path().join("image.tar");
    rt.save(&image, &tar)
        .map_err(|e| UserError::new(format!("cannot save {image}: {e}")))?;
    ops::write_bundle(
        &out,
        &ops::rig_yaml(
            &a.name,
            rec.source.as_deref(),
            rec.source_type.as_deref().unwrap_or("extend"),
        ),
        &tar,
    )?;
    println!("Exported '{}' -> {}", a.name, out.display());
    Ok(Exit::Success)
}

fn import(cx: &Context, a: &ImportArgs) -> Result<Exit> {
    let file = cx.host.cwd.join(&a.file);
    let dir = tempfile::Builder::new()
        .prefix("kanibako-import-")
        .tempdir()?;
    let text = ops::read_bundle(&file, dir.path())?;
    let name = ops::rig_yaml_name(&text)?;
    if !rig::is_short_name(&name) {
        return Err(UserError::new(format!(
            "the bundle's rig name '{name}' is not a valid rig name"
        ))
        .into());
    }
    let tar = dir.path().join("image.tar");
    if !tar.is_file() {
        return Err(UserError::new(format!("{} has no image.tar", file.display())).into());
    }
    // The archive's own tags decide what `load` would (re)tag: check them first, so a
    // bundle cannot replace some other image, such as the default rig.
    let image = format!("localhost/{}:latest", rig::extended_image(&name));
    let plain = format!("{}:latest", rig::extended_image(&name));
    let tag = ops::archive_single_tag(&tar).map_err(|why| {
        UserError::new(format!(
            "{}: the bundle's image archive must hold one image tagged {image}, and {why}; refusing it",
            file.display()
        ))
        .hint("export the rig again with `kanibako rig export`")
    })?;
    if tag != image && tag != plain {
        return Err(UserError::new(format!(
            "the bundle's image is tagged {tag}, not {image}; refusing a mislabelled bundle"
        ))
        .into());
    }
    let rt = cx.runtime()?;
    rt.load(&tar)?;
    let mut rigs = Rigs::load(&cx.paths.rigs_file())?;
    rigs.upsert(
        &name,
        &Record {
            kind: Kind::Extended,
            source: None,
            source_type: Some("import".into()),
            image: Some(image.clone()),
        },
    )?;
    println!("Imported extended rig '{name}' as {image}.");
    Ok(Exit::Success)
}

/// The engine, its limits, the configured rig and the local kanibako images, as one
/// report like upstream's "Rig (Image) Diagnostics".
fn diagnose(cx: &Context, a: &JsonArgs) -> Result<Exit> {
    let (engine, rt) = probe::engine(cx);
    let mut out = vec![checks::engine(
        &engine,
        probe::package_manager(&cx.host),
        cx.host.uid == 0,
    )];
    let answers = probe::answers(&engine);
    let rt = rt.filter(|_| answers);
    if let Some(rt) = &rt {
        let rootful_podman = rt.engine.kind == crate::runtime::EngineKind::Podman
            && !rt.engine.rootless
            && !rt.engine.remote;
        let conf = crate::runtime::limits::Probe::new(
            cx.host
                .var(crate::host::vars::CONTAINERS_CONF)
                .map(Into::into),
            cx.host.home(),
        )
        .conf_file();
        let limits = rootful_podman.then(|| rt.limits()).flatten();
        out.push(checks::host_limits(limits.map(|(h, d)| (h, d)), &conf));
    }
    out.extend(checks::rig(
        probe::rig(cx, rt.as_ref(), answers)
            .as_ref()
            .map_err(String::as_str),
    ));
    out.push(match &rt {
        None => Check::skipped("images", "Local images", "no container runtime to ask"),
        Some(rt) => {
            let local = local_images(rt)?;
            let ours: Vec<&String> = local
                .iter()
                .filter(|i| i.contains("kanibako") && i.contains(':'))
                .collect();
            let list = ours
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            Check::ok(
                "images",
                "Local images",
                match ours.len() {
                    0 => "no kanibako images".to_owned(),
                    n => format!("{n} kanibako image(s): {list}"),
                },
            )
        }
    });
    let report = Report::new("Rig (Image) Diagnostics", out);
    Ok(super::system::emit(&cx.host, &report, a.json))
}

/// A name kanibako can turn into its own image name.
fn check_rig_name(name: &str) -> Result<()> {
    if !rig::is_short_name(name) {
        return Err(UserError::new(format!(
            "invalid rig name '{name}': use lowercase letters, digits, '-' and '_'"
        ))
        .into());
    }
    Ok(())
}

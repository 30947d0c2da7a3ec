//! `kanibako man [DIR]`: manual pages made from the command tree (clap_mangen), one
//! per command (`kanibako.1`, `kanibako-box-info.1`, …). Each page is written
//! atomically and never through a link; without DIR the top page goes to stdout.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::CommandFactory;

use crate::cli::Cli;

/// The tree as the pages show it: built, so that every subcommand knows its full
/// name (`kanibako-box-info`).
fn tree() -> clap::Command {
    let mut cmd = crate::cli::help::decorate(Cli::command()).disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// The page of `cmd` as roff.
fn render(cmd: &clap::Command) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .expect("writing to memory");
    buf
}

/// The top-level page.
pub fn top_page() -> Vec<u8> {
    render(&tree())
}

/// Every page (the visible commands), named as `man` looks them up.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) {
        out.push((
            clap_mangen::Man::new(cmd.clone()).get_filename(),
            render(cmd),
        ));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&tree(), &mut out);
    out
}

/// Write every page into `dir` (made if missing); the files written.
pub fn write_to(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, page) in pages() {
        let file = dir.join(&name);
        crate::fsutil::atomic_write(&file, &page, crate::fsutil::MODE_CONFIG)
            .with_context(|| format!("writing {}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_visible_command() {
        let pages = pages();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "kanibako.1",
            "kanibako-box-info.1",
            "kanibako-system-diagnose.1",
            "kanibako-setup.1",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.contains("_hub")),
            "hidden commands get no page"
        );
        let (_, info) = pages
            .iter()
            .find(|(n, _)| n == "kanibako-box-info.1")
            .unwrap();
        let text = String::from_utf8_lossy(info);
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{text}");
    }
}

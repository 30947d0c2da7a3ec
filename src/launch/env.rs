//! The box's environment for one run: the layers read from the levels, the image's own
//! `Env` where it must be passed on, the `-e` items and the agent's defaults, layered by
//! [`plan::layer_env`]; and how a run's environment is shown (never a secret's value).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use super::plan::{self, EnvLayers};
use super::target::Target;
use crate::boxes::{BoxIdentity, BoxName};
use crate::settings::stack::Stack;

/// Every layer, lowest first, into the environment the box gets.
pub fn assemble(
    levels: &Stack,
    image: BTreeMap<String, String>,
    cli: BTreeMap<String, String>,
    target: &Target,
    b: &BoxIdentity,
) -> Result<BTreeMap<String, String>> {
    let [system, crab, workset, boxed] = levels.env_layers()?;
    let defaults = match target.agent() {
        Some((a, _)) => a
            .env_defaults()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        None => Vec::new(),
    };
    let layers = EnvLayers {
        image,
        system,
        crab,
        workset,
        boxed,
        cli,
        defaults,
    };
    Ok(plan::layer_env(
        &layers,
        b.name.as_ref().map(BoxName::as_str),
    ))
}

/// Names that look like they hold secrets: their values are masked even in `-v` output.
fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "KEY",
        "CREDENTIAL",
        "AUTH",
        "COOKIE",
        "SESSION",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// The environment at `-v`, secret-looking values masked.
pub fn log(env: &BTreeMap<String, String>) {
    for (k, v) in env {
        let shown = if looks_secret(k) { "****" } else { v.as_str() };
        tracing::debug!("  env {k}={shown}");
    }
}

/// Where a dry run says the env file would be.
pub fn placeholder(env: &BTreeMap<String, String>) -> PathBuf {
    let names: Vec<&str> = env.keys().map(String::as_str).collect();
    PathBuf::from(format!("<0600 file: {}>", names.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_masked() {
        assert!(looks_secret("GITHUB_TOKEN"));
        assert!(looks_secret("api_key"));
        assert!(!looks_secret("COLORTERM"));
    }

    #[test]
    fn the_placeholder_names_what_the_file_holds() {
        let env = BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]);
        assert_eq!(placeholder(&env), PathBuf::from("<0600 file: A B>"));
    }
}

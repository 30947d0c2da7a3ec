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
    session: Vec<(String, String)>,
    b: &BoxIdentity,
) -> Result<BTreeMap<String, String>> {
    let [system, crab, workset, boxed] = levels.env_layers()?;
    // What this run's switches choose comes first among the defaults: a level that
    // sets the same variable still wins.
    let mut defaults = session;
    if let Some((a, _)) = target.agent() {
        defaults.extend(
            a.env_defaults()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
    }
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

/// The agent's variables set on the host and not already given the box: passed by
/// name only.
pub fn passed(
    target: &Target,
    host: &crate::host::HostEnv,
    env: &BTreeMap<String, String>,
) -> Vec<String> {
    target.agent().map_or_else(Vec::new, |(a, _)| {
        a.passed_env()
            .iter()
            .filter(|n| !env.contains_key(**n))
            .filter(|n| host.var(n).is_some_and(|v| !v.is_empty()))
            .map(|n| (*n).to_owned())
            .collect()
    })
}

/// Names whose values are known to say nothing secret: shown at `-v`. Every other
/// value is masked, whatever its name (`DATABASE_URL=postgres://u:pw@db` names no
/// secret, yet holds one).
const HARMLESS: &[&str] = &[
    "HOME",
    "PATH",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "TZ",
    "SHELL",
    "USER",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "KANIBAKO_NAME",
    "KANIBAKO_PS1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
];

fn harmless(name: &str) -> bool {
    HARMLESS.contains(&name) || name.starts_with("LC_")
}

/// What `-v` shows of one variable's value.
fn shown<'a>(name: &str, value: &'a str) -> &'a str {
    if harmless(name) { value } else { "****" }
}

/// The environment at `-v`, every value masked unless its name is known harmless.
pub fn log(env: &BTreeMap<String, String>) {
    for (k, v) in env {
        tracing::debug!("  env {k}={}", shown(k, v));
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

    /// Issue 10 (low): `-v` masks every value but those of known harmless names.
    #[test]
    fn every_value_is_masked_unless_its_name_is_harmless() {
        assert_eq!(shown("DATABASE_URL", "postgres://u:pw@db"), "****");
        assert_eq!(shown("GITHUB_TOKEN", "ghp_x"), "****");
        assert_eq!(shown("api_key", "k"), "****");
        assert_eq!(shown("COLORTERM", "truecolor"), "truecolor");
        assert_eq!(shown("LC_ALL", "C.UTF-8"), "C.UTF-8");
    }

    #[test]
    fn the_placeholder_names_what_the_file_holds() {
        let env = BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]);
        assert_eq!(placeholder(&env), PathBuf::from("<0600 file: A B>"));
    }
}

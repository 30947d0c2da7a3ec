//! Help text that belongs to no single flag: the top-level epilogue (shortcuts, aliases,
//! `start`'s common switches, as upstream's help groups them) and one example for every
//! command, attached to the command tree in one place so each argument struct stays
//! about its arguments.

use clap::Command;

/// After the top-level command list.
const EPILOGUE: &str = "\
Shortcuts (the same as `box <command>`):
  start, shell, stop, create, list, ps, rm

Aliases:
  agent -> crab    container -> box    image -> rig

Common switches of `start`:
  -N, --new           start a new conversation
  -C, --continue      continue the last conversation (the default)
  -R, --resume        pick a conversation to resume
  -S, --secure        keep the agent's permission prompts
  -M, --model MODEL   the model for this run
  -v, --verbose       show every engine call

Examples:
  kanibako                          start the agent in the box of this directory
  kanibako shell -- make test       run one command in it
  kanibako list                     every box and whether it runs
  kanibako system diagnose          what is wrong here, and the fix for each

`kanibako COMMAND --help` shows a command's own options.";

/// (command path, example), one per command of the tree.
const EXAMPLES: &[(&[&str], &str)] = &[
    (&["start"], "kanibako start -M opus ~/src/app"),
    (
        &["shell"],
        "kanibako shell -- sh -c 'cargo build && cargo test'",
    ),
    (&["stop"], "kanibako stop app"),
    (&["create"], "kanibako create ~/src/app --name app"),
    (&["list"], "kanibako list --json"),
    (&["ps"], "kanibako ps -q"),
    (&["rm"], "kanibako rm app --purge"),
    (&["setup"], "kanibako setup --yes"),
    (&["completions"], "source <(kanibako completions bash)"),
    (&["man"], "kanibako man ~/.local/share/man/man1"),
    (&["box"], "kanibako box info app"),
    (&["box", "start"], "kanibako box start app"),
    (&["box", "shell"], "kanibako box shell app -- git status"),
    (&["box", "stop"], "kanibako box stop --all"),
    (
        &["box", "create"],
        "kanibako box create ~/src/app --standalone",
    ),
    (&["box", "list"], "kanibako box list --all"),
    (&["box", "ps"], "kanibako box ps"),
    (&["box", "rm"], "kanibako box rm app"),
    (&["box", "info"], "kanibako box info team/app"),
    (
        &["box", "config"],
        "kanibako box config app env.RUST_LOG=debug",
    ),
    (
        &["box", "archive"],
        "kanibako box archive ~/src/app app.txz",
    ),
    (
        &["box", "extract"],
        "kanibako box extract app.txz ~/src/app --name app",
    ),
    (&["box", "vault"], "kanibako box vault snapshot app"),
    (
        &["box", "vault", "snapshot"],
        "kanibako box vault snapshot app",
    ),
    (&["box", "vault", "list"], "kanibako box vault list app"),
    (
        &["box", "vault", "restore"],
        "kanibako box vault restore 20261203T101500Z app",
    ),
    (
        &["box", "vault", "prune"],
        "kanibako box vault prune app --keep 5",
    ),
    (&["box", "move"], "kanibako box move app ~/work/app"),
    (
        &["box", "migrate"],
        "kanibako box migrate ~/old/app ~/src/app",
    ),
    (
        &["box", "duplicate"],
        "kanibako box duplicate app ~/src/app-try",
    ),
    (&["box", "purge"], "kanibako box purge ~/src/app"),
    (&["box", "diagnose"], "kanibako box diagnose app"),
    (&["box", "net"], "kanibako box net log app"),
    (&["box", "net", "log"], "kanibako box net log app --json"),
    (
        &["box", "net", "learn"],
        "kanibako box net learn app -- npm install",
    ),
    (&["crab"], "kanibako crab list"),
    (&["crab", "list"], "kanibako crab list"),
    (&["crab", "info"], "kanibako crab info claude"),
    (
        &["crab", "config"],
        "kanibako crab config claude model=opus",
    ),
    (&["crab", "reauth"], "kanibako crab reauth app"),
    (&["crab", "diagnose"], "kanibako crab diagnose"),
    (
        &["crab", "helper"],
        "kanibako crab helper spawn   (inside a box)",
    ),
    (
        &["crab", "helper", "spawn"],
        "kanibako crab helper spawn --model sonnet",
    ),
    (&["crab", "helper", "list"], "kanibako crab helper list"),
    (&["crab", "helper", "stop"], "kanibako crab helper stop 1"),
    (
        &["crab", "helper", "cleanup"],
        "kanibako crab helper cleanup 1 --cascade",
    ),
    (
        &["crab", "helper", "respawn"],
        "kanibako crab helper respawn 1",
    ),
    (
        &["crab", "helper", "send"],
        "kanibako crab helper send 1 'run the tests'",
    ),
    (
        &["crab", "helper", "broadcast"],
        "kanibako crab helper broadcast 'stop and report'",
    ),
    (&["crab", "helper", "log"], "kanibako crab helper log -f"),
    (&["crab", "fork"], "kanibako crab fork exp   (inside a box)"),
    (&["system"], "kanibako system info --json"),
    (&["system", "info"], "kanibako system info --json"),
    (
        &["system", "config"],
        "kanibako system config box.image=host",
    ),
    (&["system", "diagnose"], "kanibako system diagnose --json"),
    (&["system", "upgrade"], "kanibako system upgrade --check"),
    (&["rig"], "kanibako rig list"),
    (&["rig", "list"], "kanibako rig list -q"),
    (&["rig", "info"], "kanibako rig info host"),
    (
        &["rig", "bootstrap"],
        "kanibako rig bootstrap && kanibako system config box.image=host",
    ),
    (&["rig", "rm"], "kanibako rig rm mine"),
    (&["rig", "prep"], "kanibako rig prep jvm"),
    (
        &["rig", "add"],
        "kanibako rig add ./Containerfile --name mine",
    ),
    (&["rig", "extend"], "kanibako rig extend mine --from host"),
    (
        &["rig", "export"],
        "kanibako rig export mine --out mine.rig.tgz",
    ),
    (&["rig", "import"], "kanibako rig import mine.rig.tgz"),
    (&["rig", "diagnose"], "kanibako rig diagnose"),
    (&["workset"], "kanibako workset list"),
    (&["workset", "create"], "kanibako workset create ~/ws/team"),
    (&["workset", "list"], "kanibako workset list"),
    (&["workset", "info"], "kanibako workset info team"),
    (&["workset", "rm"], "kanibako workset rm team"),
    (
        &["workset", "connect"],
        "kanibako workset connect team ~/src/app",
    ),
    (
        &["workset", "disconnect"],
        "kanibako workset disconnect team app",
    ),
    (
        &["workset", "config"],
        "kanibako workset config team env.CI=1",
    ),
];

/// The command tree with the epilogue and every example attached.
pub fn decorate(cmd: Command) -> Command {
    EXAMPLES
        .iter()
        .fold(cmd.after_help(EPILOGUE), |cmd, (path, example)| {
            attach(cmd, path, example)
        })
}

fn attach(cmd: Command, path: &[&str], example: &'static str) -> Command {
    match path.split_first() {
        None => cmd.after_help(format!("Example:\n  {example}")),
        Some((head, rest)) => {
            // An example for a command that is gone is a mistake the test below names.
            if cmd.find_subcommand(head).is_none() {
                return cmd;
            }
            cmd.mut_subcommand(*head, |c| attach(c, rest, example))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn visible_paths(cmd: &Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut path = prefix.clone();
            path.push(sub.get_name().to_owned());
            out.push(path.clone());
            visible_paths(sub, path, out);
        }
    }

    #[test]
    fn every_visible_command_has_one_example_and_every_example_a_command() {
        let plain = crate::cli::Cli::command();
        let mut paths = Vec::new();
        visible_paths(&plain, Vec::new(), &mut paths);
        let listed: Vec<Vec<String>> = EXAMPLES
            .iter()
            .map(|(p, _)| p.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        for p in &paths {
            assert_eq!(
                listed.iter().filter(|l| *l == p).count(),
                1,
                "one example for `{}`",
                p.join(" ")
            );
        }
        for l in &listed {
            assert!(paths.contains(l), "`{}` is no command", l.join(" "));
        }
    }

    /// Every visible command's help, as users read it, in one reviewable snapshot: a
    /// flag, wording or example that changes shows in review.
    #[test]
    fn the_help_of_every_command_matches_its_snapshot() {
        let mut cmd = decorate(crate::cli::Cli::command()).term_width(100);
        cmd.build();
        let mut paths = Vec::new();
        visible_paths(&cmd, Vec::new(), &mut paths);
        let mut all = format!("=== kanibako\n{}", cmd.render_help());
        for p in &paths {
            let mut sub = &mut cmd;
            for word in p {
                sub = sub.find_subcommand_mut(word).unwrap();
            }
            all.push_str(&format!(
                "\n=== kanibako {}\n{}",
                p.join(" "),
                sub.render_help()
            ));
        }
        insta::assert_snapshot!("help", all);
    }

    #[test]
    fn help_shows_the_epilogue_and_a_command_its_example() {
        let mut cmd = decorate(crate::cli::Cli::command());
        let top = cmd.render_help().to_string();
        assert!(
            top.contains("Shortcuts (the same as `box <command>`)"),
            "{top}"
        );
        assert!(top.contains("agent -> crab"), "{top}");
        let mut cmd = decorate(crate::cli::Cli::command());
        let vault = cmd
            .find_subcommand_mut("box")
            .and_then(|b| b.find_subcommand_mut("vault"))
            .and_then(|v| v.find_subcommand_mut("prune"))
            .unwrap()
            .render_help()
            .to_string();
        assert!(
            vault.contains("Example:\n  kanibako box vault prune app --keep 5"),
            "{vault}"
        );
    }
}

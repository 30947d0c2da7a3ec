//! `kanibako box net …`: a box's network as its egress proxy saw it. The log is the
//! proxy's journal (`$STATE/egress/<hash16>.jsonl`), written on the host; `log` only
//! reads it, `learn` runs a session in learn mode and proposes `box.allow` from what
//! that session's records show.

use anyhow::{Context as _, Result};

use crate::agents::SessionFlags;
use crate::cli::boxes::{NetCommand, NetLearnArgs, NetLogArgs};
use crate::context::Context;
use crate::egress::journal::{self, Record};
use crate::egress::policy::PolicySpec;
use crate::egress::proposal::{self, Proposal};
use crate::error::Exit;
use crate::launch::{Launch, Session};

pub fn dispatch(cx: &Context, command: NetCommand) -> Result<Exit> {
    match command {
        NetCommand::Log(a) => log(cx, &a),
        NetCommand::Learn(a) => learn(cx, a),
    }
}

/// The proposal as lines: each entry with how much it was used.
pub fn proposal_lines(proposals: &[Proposal]) -> Vec<String> {
    proposals
        .iter()
        .map(|p| {
            format!(
                "  {:<40}  {} connection{}, {} B up, {} B down ({})",
                p.rule,
                p.connections,
                if p.connections == 1 { "" } else { "s" },
                p.bytes_up,
                p.bytes_down,
                p.members.join(", ")
            )
        })
        .collect()
}

fn learn(cx: &Context, a: NetLearnArgs) -> Result<Exit> {
    let b = super::target::the_box(cx, a.target.as_deref())?;
    // A hub that runs already serves a session that is not learning, and a new session
    // would join it.
    if let crate::hub::HubStatus::Running { .. } = crate::hub::status_of(&cx.host, &b.hash) {
        return Err(crate::launch::egress::refuse_running(&b).into());
    }
    // What the box's settings already allow is not proposed again.
    let known = {
        let crab = super::config::crab_for(cx, &b)?;
        let levels = cx.stack(Some(&b), crab.as_deref())?;
        let policy = crate::hardening::Policy::resolve(&levels)?;
        PolicySpec {
            allow: policy.allow_rules,
            ..Default::default()
        }
        .compile("box.allow")
        .map_err(|e| anyhow::anyhow!("box.allow: {e}"))?
    };
    let session = if a.command.is_empty() {
        Session::Start {
            flags: SessionFlags::default(),
            cont: false,
            autonomous: false,
            model: None,
            args: Vec::new(),
            crab: None,
            auto_auth: true,
        }
    } else {
        Session::Shell { command: a.command }
    };
    let started = crate::clock::now_iso();
    let ran = crate::launch::run(
        cx,
        Launch {
            project: a.target.clone(),
            env: Vec::new(),
            rig: None,
            entrypoint: None,
            dry_run: false,
            // a session that ends here, so what it reached can be proposed
            persistent: Some(false),
            share_images: None,
            helpers: None,
            browser: false,
            learn: true,
            session,
        },
    )?;
    let path = crate::launch::egress::journal_path(&cx.paths.state, &b.hash);
    let records: Vec<Record> = journal::read(&path)
        .with_context(|| format!("reading the egress log {}", path.display()))?
        .into_iter()
        .filter(|r| r.time >= started)
        .collect();
    let proposals = proposal::propose(&records, &known);
    let name = b.display_name();
    if proposals.is_empty() {
        crate::output::say(format_args!(
            "Learnt nothing new: this session of {name} reached no host its box.allow does not allow"
        ));
        return Ok(ran);
    }
    println!("This session of {name} reached, beyond its box.allow:");
    for l in proposal_lines(&proposals) {
        println!("{l}");
    }
    let rules: Vec<String> = proposals.into_iter().map(|p| p.rule).collect();
    println!("Proposed: box.allow += {}", rules.join(", "));
    let question = format!("Add them to box {name}'s box.allow?");
    if !a.force && !crate::prompt::confirm_yn(&cx.host, &question, "--force")? {
        crate::output::say("Nothing written.");
        return Ok(ran);
    }
    super::config::add_to_box_list(cx, &b, "box.allow", &rules)?;
    Ok(ran)
}

/// One record as a line of the table: when, who, the verdict, where to, and why.
pub fn line(r: &Record) -> String {
    let verdict = if r.decision.is_empty() {
        "?"
    } else {
        &r.decision
    };
    let to = if r.host.is_empty() {
        "-".to_owned()
    } else {
        format!("{}:{}", r.host, r.port)
    };
    let why = match &r.rule {
        Some(rule) => format!("{} ({rule})", r.reason),
        None => r.reason.clone(),
    };
    format!(
        "{:<19}  {:<8}  {:<6}  {:<40}  {}",
        r.time.get(..19).unwrap_or(&r.time),
        r.member,
        verdict,
        to,
        why
    )
}

fn log(cx: &Context, a: &NetLogArgs) -> Result<Exit> {
    let b = super::target::the_box(cx, a.target.as_deref())?;
    let path = crate::launch::egress::journal_path(&cx.paths.state, &b.hash);
    let records = journal::read(&path)
        .with_context(|| format!("reading the egress log {}", path.display()))?;
    if a.json {
        crate::json_output::print_list("records", &records);
        return Ok(Exit::Success);
    }
    if records.is_empty() {
        crate::output::say(format_args!(
            "No network log for {}: it logs only under box.network=allowlist",
            b.display_name()
        ));
        return Ok(Exit::Success);
    }
    println!(
        "{:<19}  {:<8}  {:<6}  {:<40}  WHY",
        "TIME", "MEMBER", "RESULT", "DESTINATION"
    );
    for r in &records {
        println!("{}", line(r));
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_who_went_where_and_why() {
        let r = Record {
            time: "2026-12-03T19:00:00.123Z".into(),
            member: "director".into(),
            method: "CONNECT".into(),
            host: "forbidden.test".into(),
            port: 443,
            decision: "deny".into(),
            reason: "no_rule".into(),
            ..Default::default()
        };
        let l = line(&r);
        assert!(
            l.starts_with("2026-12-03T19:00:00  director  deny    forbidden.test:443"),
            "{l}"
        );
        assert!(l.ends_with("no_rule"), "{l}");
        let ok = Record {
            decision: "allow".into(),
            reason: "rule".into(),
            rule: Some("*.example.com".into()),
            ..r
        };
        assert!(line(&ok).ends_with("rule (*.example.com)"));
    }
}

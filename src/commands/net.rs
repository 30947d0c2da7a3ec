//! `kanibako box net …`: a box's network as its egress proxy saw it. The log is the
//! proxy's journal (`$STATE/egress/<hash16>.jsonl`), written on the host; this only
//! reads it.

use anyhow::{Context as _, Result};

use crate::cli::boxes::{NetCommand, NetLogArgs};
use crate::context::Context;
use crate::egress::journal::{self, Record};
use crate::error::Exit;

pub fn dispatch(cx: &Context, command: NetCommand) -> Result<Exit> {
    match command {
        NetCommand::Log(a) => log(cx, &a),
    }
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

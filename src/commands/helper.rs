//! `crab helper …` and `crab fork` (inside a box: requests to the box's hub, shown the
//! way upstream shows them) and the hidden `hub` (on the host: the per-box process).
//!
//! These run without the usual start-up work: inside a box there is no kanibako
//! configuration to load or initialise, and the hub is started with everything it
//! needs in its own config file.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Map, Value};

use crate::cli::Command;
use crate::cli::crab::CrabCommand;
use crate::cli::helper::{ForkArgs, HelperCommand, HelperListArgs, HubArgs, LogArgs};
use crate::error::{Exit, UserError};
use crate::host::HostEnv;
use crate::hub::client::{self, Client, ClientError};
use crate::hub::protocol::{
    CleanupResult, Event, ForkName, ForkResult, ListResult, Model, Op, SpawnResult, StopResult,
};

/// The commands that run before (and without) the usual start-up: `Err` gives the
/// command back for the normal path.
pub fn early(host: &HostEnv, command: Command) -> std::result::Result<Result<Exit>, Box<Command>> {
    match command {
        Command::Crab {
            command: Some(CrabCommand::Helper { command }),
        } => Ok(helper(host, command)),
        Command::Crab {
            command: Some(CrabCommand::Fork(a)),
        } => Ok(fork(host, &a)),
        Command::Hub(a) => Ok(hub(&a)),
        other => Err(Box::new(other)),
    }
}

fn user_error(e: ClientError) -> anyhow::Error {
    let hints = e.hints();
    let mut u = UserError::new(e.to_string());
    for h in hints {
        u = u.hint(h);
    }
    u.into()
}

fn call(host: &HostEnv, op: Op) -> Result<Value> {
    let path = client::socket_path(host).map_err(user_error)?;
    client::call(&path, op).map_err(user_error)
}

pub fn helper(host: &HostEnv, command: Option<HelperCommand>) -> Result<Exit> {
    match command.unwrap_or(HelperCommand::List(HelperListArgs::default())) {
        HelperCommand::Spawn(a) => {
            let model = match a.model.as_deref() {
                None => None,
                Some(m) => Some(Model::parse(m).ok_or_else(|| {
                    UserError::new(format!("invalid model name {m:?}"))
                        .hint("letters, digits, '.', '_', ':' and '-', at most 64")
                })?),
            };
            let budget = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
            let r: SpawnResult = client::result(call(
                host,
                Op::Spawn {
                    depth: budget(a.depth),
                    breadth: budget(a.breadth),
                    model,
                },
            )?);
            println!("Spawned helper {}", r.helper);
            if let Some(m) = &r.model {
                println!("  model: {m}");
            }
            println!("  depth: {}, breadth: {}", r.depth, r.breadth);
            println!("  container: {}", r.container);
        }
        HelperCommand::List(a) => {
            let r: ListResult = client::result(call(host, Op::List)?);
            if a.json {
                crate::json_output::print_list("helpers", &r.helpers);
            } else if a.quiet {
                for h in &r.helpers {
                    println!("{}", h.helper);
                }
            } else {
                print!("{}", list_table(&r));
            }
        }
        HelperCommand::Stop(a) => {
            let r: StopResult = client::result(call(host, Op::Stop { helper: a.number })?);
            if r.already_stopped {
                println!("Helper {} is already stopped.", a.number);
            } else {
                println!("Stopped helper {}.", a.number);
            }
        }
        HelperCommand::Cleanup(a) => {
            let r: CleanupResult = client::result(call(
                host,
                Op::Cleanup {
                    helper: a.number,
                    cascade: a.cascade,
                },
            )?);
            match r.removed.len() {
                0 | 1 => println!("Cleaned up helper {}.", a.number),
                n => println!(
                    "Cleaned up helper {} and {} descendant(s).",
                    a.number,
                    n - 1
                ),
            }
        }
        HelperCommand::Respawn(a) => {
            call(host, Op::Respawn { helper: a.number })?;
            println!("Respawned helper {}.", a.number);
        }
        HelperCommand::Send(a) => {
            call(
                host,
                Op::Send {
                    to: a.number,
                    text: a.message,
                },
            )?;
            if a.number == 0 {
                println!("Message sent to the director.");
            } else {
                println!("Message sent to helper {}.", a.number);
            }
        }
        HelperCommand::Broadcast(a) => {
            call(host, Op::Broadcast { text: a.message })?;
            println!("Message broadcast to all helpers.");
        }
        HelperCommand::Log(a) => return log(host, &a),
        HelperCommand::Ping(a) => return ping(host, a.count),
    }
    Ok(Exit::Success)
}

/// Upstream's table, with PARENT where it counted peer channels (there are none: a
/// box's members reach each other only through the hub).
pub fn list_table(r: &ListResult) -> String {
    if r.helpers.is_empty() {
        return "No helpers.\n".into();
    }
    let mut out = format!(
        "{:<6} {:<10} {:<10} {:<6} {}\n",
        "NUM", "STATUS", "MODEL", "DEPTH", "PARENT"
    );
    for h in &r.helpers {
        let parent = if h.parent == 0 {
            "director".to_owned()
        } else {
            h.parent.to_string()
        };
        out.push_str(&format!(
            "{:<6} {:<10} {:<10} {:<6} {}\n",
            h.helper,
            h.status,
            h.model.as_deref().unwrap_or("-"),
            h.depth,
            parent
        ));
    }
    out
}

/// Text from a box, safe for a terminal: control characters other than newline and
/// tab are shown as `�`.
fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn member(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if s == "all" => "*".into(),
        Some(Value::String(s)) => shown(s),
        _ => "?".into(),
    }
}

/// One log entry as upstream prints it: `HH:MM:SS  [1 → 0]  text`,
/// `HH:MM:SS  [spawn] helper 2 (model=sonnet)`.
pub fn format_entry(e: &Map<String, Value>) -> String {
    let ts = e.get("ts").and_then(Value::as_str).unwrap_or("");
    let time = match ts.split_once('T') {
        Some((_, t)) => t.split(['.', '+']).next().unwrap_or(""),
        None => ts.get(..8).unwrap_or(ts),
    };
    let time = shown(time);
    match e.get("type").and_then(Value::as_str) {
        Some("message") => {
            let text = e
                .get("payload")
                .and_then(|p| p.get("text"))
                .and_then(Value::as_str)
                .unwrap_or("");
            format!(
                "{time}  [{} → {}]  {}",
                member(e.get("from")),
                member(e.get("to")),
                shown(text)
            )
        }
        Some("control") => {
            let event = shown(e.get("event").and_then(Value::as_str).unwrap_or("?"));
            if event == "fork" {
                let name = e.get("new_name").and_then(Value::as_str).unwrap_or("?");
                return format!("{time}  [fork] {}", shown(name));
            }
            let helper = e.get("helper").map_or(String::new(), |h| member(Some(h)));
            let model = match e.get("model").and_then(Value::as_str) {
                Some(m) if !m.is_empty() => format!(" (model={})", shown(m)),
                _ => String::new(),
            };
            format!("{time}  [{event}] helper {helper}{model}")
        }
        _ => format!("{time}  {}", shown(&Value::Object(e.clone()).to_string())),
    }
}

fn log(host: &HostEnv, a: &LogArgs) -> Result<Exit> {
    let path = client::socket_path(host).map_err(user_error)?;
    let mut count = 0usize;
    let mut print = |e: Event| match e {
        Event::Log { entry } => {
            if let Some(m) = entry.as_object() {
                count += 1;
                println!("{}", format_entry(m));
            }
        }
        Event::Dropped { n } => {
            println!("({n} entries dropped: the log came faster than it was read)")
        }
    };
    let op = |last| Op::Log {
        from: a.from,
        last,
        follow: a.follow,
    };
    if !a.follow {
        let mut c = Client::connect(&path, client::CONNECT_PATIENCE).map_err(user_error)?;
        c.request_with(op(a.last), &mut print).map_err(user_error)?;
        if count == 0 {
            println!("No log entries.");
        }
        return Ok(Exit::Success);
    }
    // After the hub went away, the follower asks again for the last entries and
    // prints those after the last one it printed (all of them when it had printed
    // none: its first answer showed the log had nothing for it), so what came in
    // between (a broadcast during a worker restart) is not lost.
    const RESUME: u32 = 100;
    let mut last = a.last;
    let mut printed: Option<Value> = None;
    loop {
        // A hub that does not come back within the connect patience ends the follow.
        let mut c = Client::connect(&path, client::CONNECT_PATIENCE).map_err(user_error)?;
        let mut backlog = Vec::new();
        let answered = c.request_with(op(last), &mut |e: Event| match e {
            Event::Log { entry } => backlog.push(entry),
            other => print(other),
        });
        match answered {
            Ok(_) => {}
            // caught by a worker restart on the way in: try again
            Err(ClientError::Closed | ClientError::Io(_)) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(user_error(e)),
        }
        let after = backlog
            .iter()
            .rposition(|e| Some(e) == printed.as_ref())
            .map_or(0, |i| i + 1);
        for entry in backlog.drain(..).skip(after) {
            printed = Some(entry.clone());
            print(Event::Log { entry });
        }
        match c.events(&mut |e: Event| {
            if let Event::Log { entry } = &e {
                printed = Some(entry.clone());
            }
            print(e)
        }) {
            Ok(()) | Err(ClientError::Closed | ClientError::Io(_)) => {}
            Err(e) => return Err(user_error(e)),
        }
        crate::output::say("(the helper hub went away; reconnecting)");
        // `--last 0` with nothing printed since: the old entries were not wanted
        last = if printed.is_none() && a.last == Some(0) {
            Some(0)
        } else {
            Some(RESUME)
        };
    }
}

fn stats(mut us: Vec<f64>) -> String {
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.0} µs (min {:.0}, p90 {:.0}, max {:.0})",
        at(0.5),
        at(0.0),
        at(0.9),
        at(1.0)
    )
}

/// `ping`, or with a count the round-trip times (scripts/bench-hub reads this).
fn ping(host: &HostEnv, count: Option<u32>) -> Result<Exit> {
    let path = client::socket_path(host).map_err(user_error)?;
    let mut c = Client::connect(&path, client::CONNECT_PATIENCE).map_err(user_error)?;
    c.request(Op::Ping).map_err(user_error)?;
    let Some(n) = count.filter(|n| *n > 0) else {
        println!("pong");
        return Ok(Exit::Success);
    };
    for _ in 0..50 {
        c.request(Op::Ping).map_err(user_error)?;
    }
    let mut one = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        c.request(Op::Ping).map_err(user_error)?;
        one.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(c);
    let mut fresh = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        let mut c = Client::connect(&path, Duration::ZERO).map_err(user_error)?;
        c.request(Op::Ping).map_err(user_error)?;
        fresh.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("{n} round trips");
    println!("  one connection:      {}", stats(one));
    println!("  connect + peer check: {}", stats(fresh));
    Ok(Exit::Success)
}

/// A fork copies the whole project: it may take much longer than other requests.
const FORK_TIMEOUT: Duration = Duration::from_secs(3600);

pub fn fork(host: &HostEnv, a: &ForkArgs) -> Result<Exit> {
    // Upstream's words when there is no hub to ask (not in a box, or helpers off).
    let no_hub = || -> anyhow::Error {
        UserError::new("fork requires a running kanibako session with helpers enabled.")
            .hint("run it from the agent's shell inside a box whose helpers are on")
            .into()
    };
    let path = match client::socket_path(host) {
        Ok(p) => p,
        Err(ClientError::NotInBox(_)) => return Err(no_hub()),
        Err(e) => return Err(user_error(e)),
    };
    let Some(name) = ForkName::parse(a.name.trim()) else {
        return Err(UserError::new(format!(
            "invalid fork name {:?} (no slashes or dots)",
            a.name
        ))
        .hint("use letters, digits, '_' and '-'")
        .into());
    };
    let mut c = match Client::connect(&path, client::CONNECT_PATIENCE) {
        Ok(c) => c,
        Err(ClientError::Connect { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Err(no_hub());
        }
        Err(e) => return Err(user_error(e)),
    };
    c.set_reply_timeout(Some(FORK_TIMEOUT))
        .map_err(user_error)?;
    let r: ForkResult = client::result(c.request(Op::Fork { name }).map_err(user_error)?);
    println!("Forked to: {}", r.path);
    println!("Project name: {}", r.name);
    println!("Open a new terminal and run kanibako in that directory.");
    Ok(Exit::Success)
}

/// `kanibako _hub --config FILE [--foreground]`.
pub fn hub(a: &HubArgs) -> Result<Exit> {
    crate::hub::supervisor::run(&a.config, a.foreground)?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::protocol::HelperInfo;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn log_entries_read_as_upstream_prints_them() {
        let ts = "2026-11-26T17:44:14.360381+00:00";
        assert_eq!(
            format_entry(&obj(
                json!({"type":"message","from":1,"to":0,"payload":{"text":"done"},"ts":ts})
            )),
            "17:44:14  [1 → 0]  done"
        );
        assert_eq!(
            format_entry(&obj(
                json!({"type":"message","from":0,"to":"all","payload":{"text":"hi"},"ts":ts})
            )),
            "17:44:14  [0 → *]  hi"
        );
        assert_eq!(
            format_entry(&obj(
                json!({"type":"control","event":"spawn","helper":2,"model":"sonnet","ts":ts})
            )),
            "17:44:14  [spawn] helper 2 (model=sonnet)"
        );
        assert_eq!(
            format_entry(&obj(
                json!({"type":"control","event":"stop","helper":2,"model":null,"ts":ts})
            )),
            "17:44:14  [stop] helper 2"
        );
        assert_eq!(
            format_entry(&obj(json!({"type":"odd","ts":"short"}))),
            "short  {\"ts\":\"short\",\"type\":\"odd\"}"
        );
    }

    #[test]
    fn text_from_a_box_cannot_drive_the_terminal() {
        let e = obj(json!({"type":"message","from":1,"to":0,
            "payload":{"text":"\u{1b}[2Jline one\nline\ttwo\u{7}"},"ts":"x"}));
        let out = format_entry(&e);
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
        assert!(out.contains("line one\nline\ttwo"));
    }

    #[test]
    fn the_list_table() {
        assert_eq!(list_table(&ListResult::default()), "No helpers.\n");
        let r = ListResult {
            helpers: vec![
                HelperInfo {
                    helper: 1,
                    parent: 0,
                    status: "running".into(),
                    model: Some("sonnet".into()),
                    depth: 3,
                    breadth: 4,
                    container: "kanibako-app-helper-1".into(),
                },
                HelperInfo {
                    helper: 2,
                    parent: 1,
                    status: "stopped".into(),
                    model: None,
                    depth: 2,
                    breadth: 4,
                    container: "kanibako-app-helper-2".into(),
                },
            ],
        };
        assert_eq!(
            list_table(&r),
            "NUM    STATUS     MODEL      DEPTH  PARENT\n\
             1      running    sonnet     3      director\n\
             2      stopped    -          2      1\n"
        );
    }
}

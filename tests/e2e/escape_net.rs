//! The escape suite's network probes under `box.network = allowlist`, tried with each
//! tool a box is likely to hold (curl, GNU wget, python's urllib, git over https) from
//! the escape rig (`scripts/escape-rig`): a name without a rule, an IP literal, the
//! box's and the host's own addresses, a DNS lookup, names that resolve to loopback —
//! all refused — and an allowed name reached by curl, wget, python and git.
//!
//! There is no internet: the allowed name `allowed.test` is an HTTPS origin of ours on
//! the host's loopback (a throw-away CA; `KANIBAKO_EGRESS_PIN` points the proxy's
//! resolver at it), serving a file and a git repository (dumb http). No probe sends
//! anything anywhere else. One box session per engine runs every probe; each test reads
//! its own lines of that session's output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use super::{Flavour, IN_BOX, Outcome, a_box, flavour_name, probe, ran, said};
use crate::support::Env;

const ESCAPE_IMAGE: &str = "localhost/kanibako-escape:latest";
const HELLO: &str = "hello from the escape origin";
const REPO_MARK: &str = "escape origin repository";

/// The HTTPS origin on the host: its port and CA certificate (PEM).
struct Origin {
    port: u16,
    ca: String,
    /// Kept so the server lives as long as the test process (it exits when its stdin
    /// closes, which the process's end does).
    _child: Mutex<Child>,
}

fn sh(script: &str, dir: &Path) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The origin, started once: certificates made, a file and a bare repository (with
/// the files dumb http serves) in its document root, a python TLS server on a free
/// loopback port.
fn origin() -> &'static Origin {
    static ORIGIN: OnceLock<Origin> = OnceLock::new();
    ORIGIN.get_or_init(|| {
        let dir: PathBuf = std::env::temp_dir().join(format!("kb-escape-origin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www")).unwrap();
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kanibako-escape-ca \
               -keyout ca.key -out ca.pem 2>/dev/null
             openssl req -newkey rsa:2048 -nodes -subj /CN=allowed.test -keyout srv.key -out srv.csr 2>/dev/null
             printf 'subjectAltName=DNS:allowed.test,DNS:forbidden.test,DNS:localhost,IP:127.0.0.1\\n' > ext
             openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
               -extfile ext -out srv.pem 2>/dev/null",
            &dir,
        );
        std::fs::write(dir.join("www/hello.txt"), format!("{HELLO}\n")).unwrap();
        sh(
            &format!(
                "export HOME=$PWD GIT_CONFIG_NOSYSTEM=1
                 git init -q work && cd work && echo '{REPO_MARK}' > README
                 git add README && git -c user.name=t -c user.email=t@t commit -qm one && cd ..
                 git clone -q --bare work www/repo.git && git -C www/repo.git update-server-info"
            ),
            &dir,
        );
        let server = r#"
import http.server, os, ssl, sys, threading
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
os.chdir(sys.argv[1])
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
c.load_cert_chain(sys.argv[2], sys.argv[3])
s.socket = c.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
s.serve_forever()
"#;
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", server])
            .arg(dir.join("www"))
            .arg(dir.join("srv.pem"))
            .arg(dir.join("srv.key"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the host's python3 serves the test origin");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        Origin {
            port: line.trim().parse().expect("the origin's port"),
            ca: std::fs::read_to_string(dir.join("ca.pem")).unwrap(),
            _child: Mutex::new(child),
        }
    })
}

/// The host's own addresses other than loopback (the box must reach none of them).
fn host_addresses() -> Vec<String> {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|a| !a.starts_with("127.") && !a.contains(':'))
        .map(str::to_owned)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn host_name() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What one engine's session showed: each probe's `KEY=RC OUTPUT` line, and the
/// proxy's decisions as `host decision reason`.
struct Seen {
    ran: bool,
    said: String,
    lines: HashMap<String, (i32, String)>,
    decisions: Vec<String>,
}

impl Seen {
    fn line(&self, key: &str) -> Result<&(i32, String), String> {
        self.lines
            .get(key)
            .ok_or_else(|| format!("no {key} line (the box said: {})", self.said))
    }

    fn decided(&self, host: &str, what: &str) -> bool {
        self.decisions
            .iter()
            .any(|d| d.starts_with(&format!("{host} ")) && d.contains(what))
    }
}

/// The probes, as `t KEY command…` lines of the box's script. `$U` is the allowed
/// origin, `$P` its port; `direct` clears the proxy exemptions (`NO_PROXY`), so a tool
/// sends even a loopback literal to the proxy.
fn script(port: u16, host: &str, addrs: &[String]) -> String {
    let ca = "/home/agent/workspace/.kbca/ca.pem";
    let py = |url: &str| {
        format!(
            "python3 -c \"import urllib.request;print(urllib.request.urlopen('{url}',timeout=10).read().decode())\""
        )
    };
    let mut s = format!(
        "echo {IN_BOX}
t() {{ k=$1; shift; out=$(\"$@\" 2>&1); rc=$?; printf '%s=%s %s\\n' \"$k\" \"$rc\" \"$(printf %s \"$out\" | tail -n 1 | tr '\\n' ' ' | cut -c1-160)\"; }}
viaproxy() {{ env NO_PROXY= no_proxy= \"$@\"; }}
export SSL_CERT_FILE={ca} CURL_CA_BUNDLE={ca} GIT_SSL_CAINFO={ca} GIT_TERMINAL_PROMPT=0 HOME=/tmp
U=https://allowed.test:{port}
t curl-allowed curl -sS -m 10 $U/hello.txt
t wget-allowed wget -q -T 10 -t 1 --ca-certificate={ca} -O- $U/hello.txt
t python-allowed {py_ok}
t git-allowed sh -c \"git clone -q $U/repo.git /tmp/r && cat /tmp/r/README\"
t curl-forbidden curl -sS -m 10 https://forbidden.test/hello.txt
t wget-forbidden wget -nv -T 10 -t 1 --ca-certificate={ca} -O- https://forbidden.test/hello.txt
t python-forbidden {py_no}
t git-forbidden git ls-remote https://forbidden.test/repo.git
t curl-literal viaproxy curl -sS -m 10 https://127.0.0.1:{port}/hello.txt
t wget-literal viaproxy wget -nv -T 10 -t 1 --ca-certificate={ca} -O- https://127.0.0.1:{port}/hello.txt
t python-literal viaproxy {py_lit}
t git-literal viaproxy git ls-remote https://127.0.0.1:{port}/repo.git
t literal-direct curl -sS -m 5 --noproxy '*' https://127.0.0.1:{port}/hello.txt
t localhost-proxy viaproxy curl -sS -m 10 https://localhost:{port}/hello.txt
t localhost-direct curl -sS -m 5 https://localhost:{port}/hello.txt
t hostname-proxy curl -sS -m 10 https://{host}:{port}/hello.txt
t dns-getent getent hosts forbidden.test
t dns-python python3 -c \"import socket;print(socket.getaddrinfo('forbidden.test',443))\"
t dns-nslookup nslookup -timeout=2 forbidden.test
t dns-allowed getent hosts allowed.test
t resolvers grep -c '^nameserver' /etc/resolv.conf
",
        py_ok = py("$U/hello.txt"),
        py_no = py("https://forbidden.test/hello.txt"),
        py_lit = py(&format!("https://127.0.0.1:{port}/hello.txt")),
    );
    for (i, a) in addrs.iter().enumerate() {
        s.push_str(&format!(
            "t hostaddr{i}-direct nc -w 3 {a} {port}\nt hostaddr{i}-proxy viaproxy curl -sS -m 10 https://{a}:{port}/hello.txt\n"
        ));
    }
    s
}

/// `flavour`'s session, run once for every probe of it.
fn seen(flavour: Flavour) -> Option<Arc<Seen>> {
    type Sessions = HashMap<&'static str, Option<Arc<Seen>>>;
    static SEEN: OnceLock<Mutex<Sessions>> = OnceLock::new();
    let mut all = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    all.entry(flavour_name(flavour))
        .or_insert_with(|| session(flavour).map(Arc::new))
        .clone()
}

fn session(flavour: Flavour) -> Option<Seen> {
    let o = origin();
    let (host, addrs) = (host_name(), host_addresses());
    let (mut e, p) = a_box(flavour, "allowlisttools")?;
    let image = std::env::var("KANIBAKO_TEST_ESCAPE_IMAGE").unwrap_or(ESCAPE_IMAGE.into());
    e.set("KANIBAKO_EGRESS_PIN", "allowed.test=127.0.0.1");
    let config = |e: &Env, kv: &str| e.run(&p, &["box", "config", kv]).ok();
    config(&e, &format!("box.image={image}"));
    config(&e, "box.network=allowlist");
    // rules for the loopback names too: the proxy must refuse them for where they
    // resolve, not for want of a rule
    config(
        &e,
        &format!(
            "box.allow=allowed.test:{0}, localhost:{0}, {host}:{0}",
            o.port
        ),
    );
    let ca = p.join(".kbca");
    std::fs::create_dir_all(&ca).unwrap();
    std::fs::write(ca.join("ca.pem"), &o.ca).unwrap();
    e.chown_all(&ca);
    let r = e.run(
        &p,
        &["shell", "--", "sh", "-c", &script(o.port, &host, &addrs)],
    );
    let lines = r
        .stdout
        .lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once('=')?;
            let (rc, out) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((k.to_owned(), (rc.parse().ok()?, out.to_owned())))
        })
        .collect();
    let log = e.run(&p, &["box", "net", "log", "--json"]);
    let decisions = serde_json::from_str::<serde_json::Value>(&log.stdout)
        .ok()
        .and_then(|v| v["records"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["host"].as_str().unwrap_or(""),
                r["decision"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    Some(Seen {
        ran: ran(&r),
        said: said(&r),
        lines,
        decisions,
    })
}

/// A probe that must be refused: its lines' exit codes all non-zero, none shows the
/// origin's content, and `check` holds of the proxy's decisions.
fn refused(name: &str, keys: &[&str], check: fn(&Seen) -> Result<(), String>) {
    probe(name, |f| {
        let s = seen(f)?;
        Some(judge(&s, keys, false).and_then(|ev| check(&s).map(|()| ev)))
    });
}

/// A probe that must work: exit 0 and the origin's content.
fn allowed(name: &str, key: &str, want: &'static str) {
    probe(name, |f| {
        let s = seen(f)?;
        Some(judge(&s, &[key], true).and_then(|ev| {
            let (_, out) = s.line(key)?;
            if out.contains(want) {
                Ok(ev)
            } else {
                Err(format!("no {want:?}: {ev}"))
            }
        }))
    });
}

fn judge(s: &Seen, keys: &[&str], must_work: bool) -> Outcome {
    if !s.ran {
        return Err(format!("the box did not run: {}", s.said));
    }
    let mut ev = Vec::new();
    let mut bad = Vec::new();
    for k in keys {
        let (rc, out) = s.line(k)?;
        let reached = out.contains(HELLO) || out.contains(REPO_MARK);
        let short: String = out.chars().take(70).collect();
        ev.push(format!("{k} rc={rc} {short}"));
        // 127: the tool is not in the rig, which proves nothing; a blocked probe fails
        // when the origin's content reached it, whatever the tool's exit code
        let failed = if must_work {
            !(*rc == 0 && reached)
        } else {
            reached
        };
        if *rc == 127 || failed {
            bad.push(k.to_string());
        }
    }
    let ev = ev.join("; ");
    if bad.is_empty() {
        Ok(ev)
    } else {
        Err(format!("{bad:?}: {ev}"))
    }
}

fn no_rule_for_forbidden(s: &Seen) -> Result<(), String> {
    if s.decided("forbidden.test", "deny no_rule") {
        Ok(())
    } else {
        Err(format!(
            "no 'forbidden.test deny no_rule' in {:?}",
            s.decisions
        ))
    }
}

fn literal_refused(s: &Seen) -> Result<(), String> {
    if s.decided("127.0.0.1", "deny ip_literal") {
        Ok(())
    } else {
        Err(format!(
            "no '127.0.0.1 deny ip_literal' in {:?}",
            s.decisions
        ))
    }
}

#[test]
fn escape_allowlist_curl_disallowed_name() {
    refused(
        "allowlist: curl https to a name without a rule",
        &["curl-forbidden"],
        no_rule_for_forbidden,
    );
}

#[test]
fn escape_allowlist_wget_disallowed_name() {
    refused(
        "allowlist: wget https to a name without a rule",
        &["wget-forbidden"],
        no_rule_for_forbidden,
    );
}

#[test]
fn escape_allowlist_python_disallowed_name() {
    refused(
        "allowlist: python urllib to a name without a rule",
        &["python-forbidden"],
        no_rule_for_forbidden,
    );
}

#[test]
fn escape_allowlist_git_disallowed_name() {
    refused(
        "allowlist: git https to a name without a rule",
        &["git-forbidden"],
        no_rule_for_forbidden,
    );
}

#[test]
fn escape_allowlist_curl_ip_literal() {
    refused(
        "allowlist: curl to an IP literal (the origin's own)",
        &["curl-literal", "literal-direct"],
        literal_refused,
    );
}

#[test]
fn escape_allowlist_wget_ip_literal() {
    refused(
        "allowlist: wget to an IP literal",
        &["wget-literal"],
        literal_refused,
    );
}

#[test]
fn escape_allowlist_python_ip_literal() {
    refused(
        "allowlist: python to an IP literal",
        &["python-literal"],
        literal_refused,
    );
}

#[test]
fn escape_allowlist_git_ip_literal() {
    refused(
        "allowlist: git to an IP literal",
        &["git-literal"],
        literal_refused,
    );
}

#[test]
fn escape_allowlist_localhost() {
    refused(
        "allowlist: localhost (a rule for it; direct and via the proxy)",
        &["localhost-proxy", "localhost-direct"],
        |s| {
            if s.decided("localhost", "deny non_public") {
                Ok(())
            } else {
                Err(format!(
                    "no 'localhost deny non_public' in {:?}",
                    s.decisions
                ))
            }
        },
    );
}

#[test]
fn escape_allowlist_name_resolving_to_a_private_address() {
    refused(
        "allowlist: the host's name (a rule for it; resolves to a non-public address)",
        &["hostname-proxy"],
        |s| {
            let host = host_name();
            if s.decided(&host, "deny") {
                Ok(())
            } else {
                Err(format!("no '{host} deny' in {:?}", s.decisions))
            }
        },
    );
}

#[test]
fn escape_allowlist_the_host_s_addresses() {
    let keys: Vec<String> = (0..host_addresses().len())
        .flat_map(|i| [format!("hostaddr{i}-direct"), format!("hostaddr{i}-proxy")])
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    probe(
        "allowlist: the host's own addresses (direct and via the proxy)",
        |f| {
            let s = seen(f)?;
            Some(judge(&s, &keys, false))
        },
    );
}

#[test]
fn escape_allowlist_dns_lookup_of_a_disallowed_name() {
    refused(
        "allowlist: DNS lookup (getent, python, nslookup; no resolver)",
        &["dns-getent", "dns-python", "dns-nslookup", "dns-allowed"],
        // docker writes one nameserver line, which the box has no route to
        |s| s.line("resolvers").map(|_| ()),
    );
}

#[test]
fn escape_allowlist_curl_allowed_name_works() {
    allowed(
        "allowlist: curl https to an allowed name works",
        "curl-allowed",
        HELLO,
    );
}

#[test]
fn escape_allowlist_wget_allowed_name_works() {
    allowed(
        "allowlist: wget https to an allowed name works",
        "wget-allowed",
        HELLO,
    );
}

#[test]
fn escape_allowlist_python_allowed_name_works() {
    allowed(
        "allowlist: python urllib to an allowed name works",
        "python-allowed",
        HELLO,
    );
}

#[test]
fn escape_allowlist_git_clone_over_https_works() {
    allowed(
        "allowlist: git clone over https of an allowed name works",
        "git-allowed",
        REPO_MARK,
    );
}

/// `box net learn` on a real engine (rootful podman): the session runs under allowlist
/// although the box's `box.network` is `full`, and its proxy is in learn mode: a name
/// without a rule and an IP literal get past the rules (no `no_rule`, no `ip_literal`)
/// and are refused only for where they resolve (the origin is on loopback; offline,
/// nothing resolves to a public address), so nothing is proposed and nothing written.
#[test]
fn box_net_learn_runs_the_session_in_learn_mode() {
    let Some((mut e, p)) = a_box(Flavour::RootfulPodman, "learnmode") else {
        return;
    };
    let o = origin();
    let image = std::env::var("KANIBAKO_TEST_ESCAPE_IMAGE").unwrap_or(ESCAPE_IMAGE.into());
    e.set("KANIBAKO_EGRESS_PIN", "allowed.test=127.0.0.1");
    e.run(&p, &["box", "config", &format!("box.image={image}")])
        .ok();
    let script = format!(
        "echo {IN_BOX}; env | grep -c '^HTTPS_PROXY='; \
         curl -sS -m 10 https://allowed.test:{0}/hello.txt; \
         curl -sS -m 10 --noproxy '' https://127.0.0.1:{0}/hello.txt; \
         nc -w 3 {1} {0} </dev/null; echo direct=$?",
        o.port,
        // the host's own address: a box with a network of its own would reach it
        host_addresses().first().map_or("192.0.2.1", String::as_str)
    );
    let r = e.run(
        &p,
        &["box", "net", "learn", "--force", "--", "sh", "-c", &script],
    );
    let log = e.run(&p, &["box", "net", "log"]).ok();
    let row = |host: &str| {
        log.stdout
            .lines()
            .find(|l| l.contains(&format!("{host}:{}", o.port)))
            .unwrap_or("")
            .to_owned()
    };
    let (named, literal) = (row("allowed.test"), row("127.0.0.1"));
    assert!(ran(&r), "{r:?}");
    assert!(r.stdout.lines().nth(1) == Some("1"), "the proxy env: {r:?}");
    assert!(
        r.stdout.contains("direct=1"),
        "no network of its own: {r:?}"
    );
    assert!(
        named.contains("deny") && named.contains("non_public"),
        "{}",
        log.stdout
    );
    assert!(
        literal.contains("deny") && literal.contains("non_public"),
        "{}",
        log.stdout
    );
    assert!(
        (r.stdout.clone() + &r.stderr).contains("Learnt nothing new"),
        "{r:?}"
    );
    let allow = e.run(&p, &["box", "config", "box.allow"]);
    assert!(!allow.stdout.contains("allowed.test"), "{allow:?}");
    eprintln!("learn mode on rootful podman: {named} / {literal}");
}

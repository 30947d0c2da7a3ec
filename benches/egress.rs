//! The egress proxy's cost, measured (run by `scripts/bench --egress` through `cargo bench --bench egress`): a native origin
//! and client, so the numbers are the proxy's and not a script's.
//!
//! `cargo bench --bench egress -- KANIBAKO RUNS MIB` prints a Markdown table: per path (direct TCP, the
//! proxy's socket, the in-box forwarder in front of it; each relay mode), the time a
//! new connection takes (connect, CONNECT, one byte each way, close) and the
//! throughput of a download.
// A measuring tool: it starts processes and reads its arguments directly.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn origin() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut first = [0u8; 64];
                let Ok(n) = s.read(&mut first) else { return };
                let text = String::from_utf8_lossy(&first[..n]).into_owned();
                if let Some(count) = text.strip_prefix("send ") {
                    let mut left: usize = count.trim().parse().unwrap_or(0);
                    let buf = vec![0u8; MIB];
                    while left > 0 {
                        let k = left.min(MIB);
                        if s.write_all(&buf[..k]).is_err() {
                            return;
                        }
                        left -= k;
                    }
                    return;
                }
                let mut data = first[..n].to_vec();
                let mut buf = [0u8; 65536];
                loop {
                    if s.write_all(&data).is_err() {
                        return;
                    }
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => data = buf[..k].to_vec(),
                    }
                }
            });
        }
    });
    port
}

enum Path_ {
    Direct,
    Unix(String),
    Tcp(String),
}

trait Conn: Read + Write {}
impl Conn for TcpStream {}
impl Conn for UnixStream {}

fn open(path: &Path_, port: u16) -> Box<dyn Conn> {
    let mut s: Box<dyn Conn> = match path {
        Path_::Direct => {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_nodelay(true).unwrap();
            return Box::new(s);
        }
        Path_::Unix(p) => Box::new(UnixStream::connect(p).unwrap()),
        Path_::Tcp(a) => {
            let s = TcpStream::connect(a.as_str()).unwrap();
            s.set_nodelay(true).unwrap();
            Box::new(s)
        }
    };
    s.write_all(format!("CONNECT origin.test:{port} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "proxy closed: {head:?}");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "refused: {}",
        String::from_utf8_lossy(&head)
    );
    s
}

fn connect_ms(path: &Path_, port: u16, runs: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let mut s = open(path, port);
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        drop(s);
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

fn throughput(path: &Path_, port: u16, total: usize) -> f64 {
    let mut s = open(path, port);
    let t = Instant::now();
    s.write_all(format!("send {total}\n").as_bytes()).unwrap();
    let mut buf = vec![0u8; MIB];
    let mut got = 0;
    while got < total {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended after {got}");
        got += n;
    }
    total as f64 / MIB as f64 / t.elapsed().as_secs_f64()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p) as usize]
}

fn wait_for(f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "did not come up");
        thread::sleep(Duration::from_millis(20));
    }
}

/// CPU time (user + system, all threads, exited ones included) of `pid`, in ms.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // after the command name: state is field 3, utime 14 and stime 15
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = num(11) + num(12);
    ticks as f64 * 10.0
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kb = args
        .get(1)
        .expect("usage: egress_bench KANIBAKO [RUNS] [MIB]");
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(500);
    let mib: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let port = origin();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(r#"{{"allow_private": ["origin.test:{port}"]}}"#),
    )
    .unwrap();
    let mut paths = vec![("direct TCP".to_owned(), Path_::Direct)];
    let mut pids: Vec<Vec<u32>> = vec![Vec::new()];
    let mut procs = Vec::new();
    for (i, mode) in ["splice", "copy"].iter().enumerate() {
        let sock = dir.path().join(format!("{mode}.sock"));
        let s = sock.to_str().unwrap().to_owned();
        procs.push(Kill(
            Command::new(kb)
                .args(["egress-serve", "--socket", &s, "--policy"])
                .arg(&policy)
                .args(["--resolve", "origin.test=127.0.0.1", "--relay", mode])
                .spawn()
                .unwrap(),
        ));
        wait_for(|| UnixStream::connect(&sock).is_ok());
        let fwd = format!("127.0.0.1:{}", 23128 + i);
        procs.push(Kill(
            Command::new(kb)
                .args(["egress-forward", &fwd, &s])
                .spawn()
                .unwrap(),
        ));
        wait_for(|| TcpStream::connect(fwd.as_str()).is_ok());
        let proxy_pid = procs[procs.len() - 2].0.id();
        let fwd_pid = procs[procs.len() - 1].0.id();
        paths.push((format!("proxy socket ({mode})"), Path_::Unix(s.clone())));
        pids.push(vec![proxy_pid]);
        paths.push((format!("forwarder + proxy ({mode})"), Path_::Tcp(fwd)));
        pids.push(vec![proxy_pid, fwd_pid]);
    }
    let _ = Path::new(kb);
    // warm up every path once
    for (_, p) in &paths {
        connect_ms(p, port, 20);
    }
    println!(
        "new connection: connect (+ CONNECT), 1 byte each way, close; median (p10-p90) of {runs}, \
         paths interleaved. Throughput: best of 3 downloads of {mib} MiB.\n"
    );
    println!(
        "| path | new connection | added per connection | kanibako CPU per connection | throughput | kanibako CPU per GiB |"
    );
    println!("|---|---|---|---|---|---|");
    // interleave the runs so drift on a shared machine hits every path alike
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut cpu = vec![0.0; paths.len()];
    let cpu_of = |i: usize| pids[i].iter().map(|p| cpu_ms(*p)).sum::<f64>();
    for _ in 0..runs / 10 {
        for (i, (_, p)) in paths.iter().enumerate() {
            let before = cpu_of(i);
            lat[i].extend(connect_ms(p, port, 10));
            cpu[i] += cpu_of(i) - before;
        }
    }
    let base = median(&lat[0]);
    for (i, (label, p)) in paths.iter().enumerate() {
        let before = cpu_of(i);
        let tp = (0..3)
            .map(|_| throughput(p, port, mib * MIB))
            .fold(0.0, f64::max);
        let per_gib = (cpu_of(i) - before) / 3.0 / (mib as f64 / 1024.0);
        let (per_conn, per_gib) = if i == 0 {
            (String::new(), String::new())
        } else {
            (
                format!("{:.0} µs", cpu[i] * 1000.0 / lat[i].len() as f64),
                format!("{per_gib:.0} ms"),
            )
        };
        let m = median(&lat[i]);
        let added = if i == 0 {
            String::new()
        } else {
            format!("{:+.3} ms", m - base)
        };
        println!(
            "| {label} | {m:.3} ms ({:.3}-{:.3}) | {added} | {per_conn} | {tp:.0} MiB/s | {per_gib} |",
            pct(&lat[i], 0.1),
            pct(&lat[i], 0.9)
        );
    }
}

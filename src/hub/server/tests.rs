//! A real hub on sockets in a temporary directory, over the fake engine: what a
//! box can and cannot make it do.
use super::control::FollowQueue;
use super::*;
use crate::hub::engine::fake::FakeEngine;
use crate::hub::engine::{HelperTemplate, TemplateUser};
use std::io::Write;

struct TestHub {
    hub: Arc<Hub>,
    engine: Arc<FakeEngine>,
    _dir: tempfile::TempDir,
    rt: PathBuf,
}

fn template() -> HelperTemplate {
    HelperTemplate {
        image: "localhost/rig".into(),
        user: TemplateUser::User {
            uid: 1000,
            gid: 1000,
        },
        rootfs: None,
        workdir: None,
        mounts: Vec::new(),
        env: BTreeMap::new(),
        entrypoint: None,
        command: vec!["sleep".into(), "60".into()],
        model_flag: None,
        seccomp: None,
        pass_env: Vec::new(),
        limits: Default::default(),
        no_network: false,
        egress: false,
        labels: BTreeMap::new(),
        homes: None,
        login: Vec::new(),
    }
}

const HASH: &str = "0123456789abcdef0123456789abcdef";

fn start_with(limits: Limits, engine: Arc<FakeEngine>, dir: tempfile::TempDir) -> TestHub {
    let rt = dir.path().join("rt");
    let mut cfg = crate::hub::config::sample(&rt);
    cfg.limits = limits;
    cfg.helper = Some(template());
    let hub = Hub::start(
        cfg,
        engine.clone(),
        vec![Arc::new(Control)],
        None,
        HubLog::none(),
    )
    .unwrap();
    let h = hub.clone();
    std::thread::spawn(move || h.accept_loop());
    TestHub {
        hub,
        engine,
        _dir: dir,
        rt,
    }
}

fn start(limits: Limits) -> TestHub {
    let engine = Arc::new(FakeEngine::default());
    engine.add(
        "kanibako-app",
        true,
        &[(box_labels::HASH, HASH), (box_labels::BOX, "app")],
    );
    start_with(limits, engine, tempfile::tempdir().unwrap())
}

fn fast() -> Limits {
    Limits {
        requests_per_second: 1_000_000,
        spawns_per_window: 1000,
        ..Limits::default()
    }
}

struct Conn {
    s: UnixStream,
    pending: Vec<u8>,
    next: u64,
}

impl Conn {
    fn open(t: &TestHub, m: Member) -> Self {
        let p = rundir::socket_path(&t.rt, m, rundir::SOCKET).unwrap();
        let s = UnixStream::connect(p).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn {
            s,
            pending: Vec::new(),
            next: 1,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) -> bool {
        self.s.write_all(bytes).is_ok()
    }

    /// The next line, or None at EOF.
    fn line(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = self.pending.drain(..=i).collect();
                return Some(serde_json::from_slice(&l).unwrap());
            }
            let mut b = [0u8; 65536];
            match (&self.s).read(&mut b) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.pending.extend_from_slice(&b[..n]),
            }
        }
    }

    fn call(&mut self, op: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let mut req = op;
        req["v"] = json!(1);
        req["id"] = json!(id);
        let mut line = serde_json::to_vec(&req).unwrap();
        line.push(b'\n');
        assert!(self.send_raw(&line));
        loop {
            let r = self.line().expect("a reply");
            if r.get("event").is_none() {
                assert_eq!(r["id"], json!(id), "{r}");
                return r;
            }
        }
    }
}

fn code(r: &Value) -> &str {
    r["error"]["code"].as_str().unwrap_or("ok")
}

#[test]
fn hello_and_ping() {
    let t = start(fast());
    let mut c = Conn::open(&t, Member::Director);
    let r = c.call(json!({"op": "hello"}));
    assert_eq!(r["result"]["you"], "director");
    assert_eq!(r["result"]["box"], "app");
    assert_eq!(r["result"]["limits"]["max_frame"], 65536);
    assert!(
        r["result"]["features"]
            .as_array()
            .unwrap()
            .contains(&json!("spawn"))
    );
    assert_eq!(c.call(json!({"op": "ping"}))["ok"], true);
    let meta = std::fs::metadata(rundir::member_dir(&t.rt, Member::Director)).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mode() & 0o777, 0o700);
}

/// Random bytes, bad UTF-8, non-objects, unknown fields, deep nesting, other
/// versions and some oversized lines: every frame gets exactly one reply, the hub
/// reconnects cleanly after an oversized one, and a ping still works after.
#[test]
fn a_hostile_barrage_leaves_the_hub_serving() {
    let t = start(fast());
    let mut rng = crate::fuzzing::Rng(0x1234_5678_9abc_def1);
    let mut next = move || rng.next();
    let mut c = Conn::open(&t, Member::Director);
    let mut codes: BTreeMap<String, u32> = BTreeMap::new();
    let mut reconnects = 0;
    for i in 0..4000u32 {
        if i % 10 == 9 {
            assert_eq!(code(&c.call(json!({"op": "ping"}))), "ok");
            continue;
        }
        let frame: Vec<u8> = match next() % 9 {
            0 => (0..1 + next() % 300)
                .map(|_| next() as u8)
                .filter(|b| *b != b'\n')
                .collect(),
            1 => b"{\"v\":1,\"id\":1,\"op\":\"p\xff\xfeng\"}".to_vec(),
            2 => b"[1,2,3]".to_vec(),
            3 => br#"{"v":1,"id":5,"op":"stop","container":"kbhx-victim"}"#.to_vec(),
            4 => format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)).into_bytes(),
            5 => br#"{"v":99,"id":5,"op":"ping"}"#.to_vec(),
            6 => br#"{"v":1,"id":"x","op":"ping"}"#.to_vec(),
            7 if next() % 8 == 0 => vec![b'x'; 70 * 1024],
            _ => format!(
                r#"{{"v":1,"id":1,"op":"send","to":0,"text":"{}"}}"#,
                "a".repeat((next() % 20_000) as usize)
            )
            .into_bytes(),
        };
        let mut line = frame.clone();
        line.push(b'\n');
        if frame.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !c.send_raw(&line) {
            c = Conn::open(&t, Member::Director);
            reconnects += 1;
            continue;
        }
        let Some(r) = c.line() else {
            panic!("no reply to frame {i}");
        };
        let k = code(&r).to_owned();
        *codes.entry(k.clone()).or_default() += 1;
        if k == "frame_too_large" {
            assert!(c.line().is_none(), "closed after an oversized frame");
            c = Conn::open(&t, Member::Director);
            reconnects += 1;
        }
    }
    for want in [
        "bad_json",
        "bad_request",
        "unsupported_version",
        "ok",
        "payload_too_large",
    ] {
        assert!(codes.contains_key(want), "{want} in {codes:?}");
    }
    assert!(
        reconnects > 0 && codes.contains_key("frame_too_large"),
        "{codes:?}"
    );
    assert!(!codes.contains_key("internal"), "{codes:?}");
    let mut c = Conn::open(&t, Member::Director);
    assert_eq!(code(&c.call(json!({"op": "ping"}))), "ok");
}

#[test]
fn oversized_idle_errors_and_busy_connections_are_closed() {
    let t = start(Limits {
        idle_timeout_ms: 300,
        connections_per_member: 3,
        ..fast()
    });
    // 1 MiB without a newline
    let mut c = Conn::open(&t, Member::Director);
    let _ = c.send_raw(&vec![b'{'; 1 << 20]);
    assert_eq!(code(&c.line().unwrap()), "frame_too_large");
    assert!(c.line().is_none());
    // half a frame, then silence
    let mut c = Conn::open(&t, Member::Director);
    c.send_raw(b"{\"v\":1,");
    assert_eq!(code(&c.line().unwrap()), "idle_timeout");
    assert!(c.line().is_none());
    // sixteen errors in a row
    let mut c = Conn::open(&t, Member::Director);
    for _ in 0..15 {
        c.send_raw(b"nope\n");
        assert_eq!(code(&c.line().unwrap()), "bad_json");
    }
    c.send_raw(b"nope\n");
    assert_eq!(code(&c.line().unwrap()), "bad_json");
    assert_eq!(code(&c.line().unwrap()), "too_many_errors");
    assert!(c.line().is_none());
    // connections per member
    let mut open: Vec<Conn> = (0..3).map(|_| Conn::open(&t, Member::Director)).collect();
    for c in &mut open {
        assert_eq!(code(&c.call(json!({"op": "ping"}))), "ok");
    }
    let mut extra = Conn::open(&t, Member::Director);
    assert_eq!(code(&extra.line().unwrap()), "busy");
    assert!(extra.line().is_none());
    drop(open);
    std::thread::sleep(Duration::from_millis(100));
    let mut again = Conn::open(&t, Member::Director);
    assert_eq!(code(&again.call(json!({"op": "ping"}))), "ok");
}

#[test]
fn the_request_rate_is_capped_per_member() {
    let t = start(Limits {
        requests_per_second: 5,
        ..fast()
    });
    let mut c = Conn::open(&t, Member::Director);
    let mut pipelined = Vec::new();
    for i in 0..8 {
        pipelined.extend(format!("{{\"v\":1,\"id\":{i},\"op\":\"ping\"}}\n").into_bytes());
    }
    c.send_raw(&pipelined);
    let codes: Vec<String> = (0..8)
        .map(|_| code(&c.line().unwrap()).to_owned())
        .collect();
    assert_eq!(&codes[..5], &["ok"; 5]);
    assert!(codes[5..].iter().all(|c| c == "rate_limited"), "{codes:?}");
}

fn spawn(c: &mut Conn) -> Value {
    c.call(json!({"op": "spawn"}))
}

#[test]
fn a_member_acts_only_on_what_it_spawned_and_never_on_other_containers() {
    let t = start(fast());
    // a container of another box, and one of ours that is no helper
    let victim = t.engine.add(
        "kbhx-victim",
        true,
        &[
            (box_labels::HASH, "ffffffffffffffffffffffffffffffff"),
            (labels::ROLE, "helper"),
            (labels::HELPER, "3"),
        ],
    );
    let mut d = Conn::open(&t, Member::Director);
    assert_eq!(spawn(&mut d)["result"]["helper"], 1);
    assert_eq!(spawn(&mut d)["result"]["helper"], 2);
    let r = spawn(&mut d);
    assert_eq!(r["result"]["container"], "kanibako-app-helper-3");
    assert_eq!(r["result"]["depth"], 3);

    // helper 1's own socket: it sees and touches only its own descendants
    let mut h1 = Conn::open(&t, Member::Helper(1));
    assert_eq!(h1.call(json!({"op": "hello"}))["result"]["you"], "helper 1");
    assert_eq!(
        code(&h1.call(json!({"op": "stop", "helper": 2}))),
        "forbidden"
    );
    assert_eq!(
        code(&h1.call(json!({"op": "cleanup", "helper": 2}))),
        "forbidden"
    );
    assert_eq!(
        h1.call(json!({"op": "list"}))["result"]["helpers"],
        json!([])
    );
    let r = spawn(&mut h1);
    assert_eq!(r["result"]["helper"], 4);
    assert_eq!(r["result"]["depth"], 2, "one level below helper 1");
    let listed = h1.call(json!({"op": "list"}));
    assert_eq!(listed["result"]["helpers"][0]["helper"], 4);
    assert_eq!(listed["result"]["helpers"][0]["parent"], 1);
    assert_eq!(code(&h1.call(json!({"op": "stop", "helper": 4}))), "ok");
    // a helper cannot stop itself or its parent's other children
    assert_eq!(
        code(&h1.call(json!({"op": "stop", "helper": 1}))),
        "forbidden"
    );

    // the director reaches every helper, never the victim
    assert_eq!(
        code(&d.call(json!({"op": "stop", "helper": 9}))),
        "not_found"
    );
    assert_eq!(
        code(&d.call(json!({"op": "stop", "helper": "../../kbhx-victim"}))),
        "bad_request"
    );
    assert_eq!(
        code(&d.call(json!({"op": "stop", "container": "kbhx-victim"}))),
        "bad_request"
    );
    assert_eq!(
        code(&d.call(json!({"op": "spawn", "model": "x; podman rm -f kbhx-victim"}))),
        "bad_request"
    );
    let r = d.call(json!({"op": "stop", "helper": 2}));
    assert_eq!(r["result"], json!({"helper": 2, "already_stopped": false}));
    let r = d.call(json!({"op": "stop", "helper": 2}));
    assert_eq!(r["result"]["already_stopped"], true);
    let calls = t.engine.calls();
    assert!(!calls.iter().any(|c| c.contains(&victim)), "{calls:?}");
    let listed = d.call(json!({"op": "list"}));
    let nums: Vec<u64> = listed["result"]["helpers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["helper"].as_u64().unwrap())
        .collect();
    assert_eq!(nums, vec![1, 2, 3, 4], "the victim is not listed");
    // a stopped helper's socket is gone
    assert!(
        !rundir::member_dir(&t.rt, Member::Helper(2))
            .join(rundir::SOCKET)
            .exists()
    );
}

#[test]
fn cleanup_respawn_and_cascade() {
    let t = start(fast());
    let mut d = Conn::open(&t, Member::Director);
    spawn(&mut d);
    let mut h1 = Conn::open(&t, Member::Helper(1));
    spawn(&mut h1); // 2, child of 1
    let mut h2 = Conn::open(&t, Member::Helper(2));
    spawn(&mut h2); // 3, child of 2
    assert_eq!(
        code(&d.call(json!({"op": "respawn", "helper": 1}))),
        "conflict"
    );
    assert_eq!(
        code(&d.call(json!({"op": "cleanup", "helper": 1}))),
        "conflict"
    );
    d.call(json!({"op": "stop", "helper": 3}));
    let r = d.call(json!({"op": "respawn", "helper": 3}));
    assert_eq!(code(&r), "ok", "{r}");
    let l = d.call(json!({"op": "list"}));
    assert_eq!(l["result"]["helpers"][2]["status"], "running");
    assert_eq!(
        l["result"]["helpers"][2]["parent"], 2,
        "respawn keeps the parent"
    );
    let r = d.call(json!({"op": "cleanup", "helper": 1, "cascade": true}));
    assert_eq!(r["result"]["removed"], json!([3, 2, 1]));
    assert_eq!(
        d.call(json!({"op": "list"}))["result"]["helpers"],
        json!([])
    );
    assert!(!rundir::member_dir(&t.rt, Member::Helper(1)).exists());
    assert!(rundir::member_dir(&t.rt, Member::Director).exists());
}

#[test]
fn the_budget_comes_from_labels_and_survives_a_restart() {
    let limits = Limits {
        max_helpers: 2,
        ..fast()
    };
    let engine = Arc::new(FakeEngine::default());
    engine.add("kanibako-app", true, &[(box_labels::HASH, HASH)]);
    let dir = tempfile::tempdir().unwrap();
    let t = start_with(limits.clone(), engine.clone(), dir);
    let mut d = Conn::open(&t, Member::Director);
    spawn(&mut d);
    spawn(&mut d);
    d.call(json!({"op": "stop", "helper": 2}));
    let r = spawn(&mut d);
    assert_eq!(code(&r), "budget_exhausted", "stopped helpers count: {r}");
    // a new hub over the same engine (a restart) counts the same
    t.hub.teardown_listeners_for_test();
    let t2 = start_with(limits, engine, tempfile::tempdir().unwrap());
    let mut d2 = Conn::open(&t2, Member::Director);
    assert_eq!(code(&spawn(&mut d2)), "budget_exhausted");
    // and re-adopted helper 1 (running) is reachable on its socket
    let mut h1 = Conn::open(&t2, Member::Helper(1));
    assert_eq!(code(&h1.call(json!({"op": "ping"}))), "ok");
}

#[test]
fn spawns_are_rate_limited_and_engine_failures_still_get_a_reply() {
    let t = start(Limits {
        spawns_per_window: 2,
        ..fast()
    });
    let mut d = Conn::open(&t, Member::Director);
    spawn(&mut d);
    spawn(&mut d);
    let r = spawn(&mut d);
    assert_eq!(code(&r), "rate_limited", "{r}");
    let t = start(fast());
    t.engine.state.lock().unwrap().fail_spawn = true;
    let mut d = Conn::open(&t, Member::Director);
    let r = spawn(&mut d);
    assert_eq!(code(&r), "spawn_failed");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the engine said no")
    );
    assert!(!rundir::member_dir(&t.rt, Member::Helper(1)).exists());
    assert_eq!(code(&d.call(json!({"op": "ping"}))), "ok");
}

#[test]
fn messages_are_logged_routed_by_visibility_and_followed() {
    let t = start(fast());
    let mut d = Conn::open(&t, Member::Director);
    spawn(&mut d);
    spawn(&mut d);
    assert_eq!(
        code(&d.call(json!({"op": "send", "to": 1, "text": "hi h1"}))),
        "ok"
    );
    assert_eq!(
        code(&d.call(json!({"op": "send", "to": 7, "text": "x"}))),
        "not_found"
    );
    assert_eq!(
        code(&d.call(json!({"op": "send", "to": 1, "text": "x", "from": 2}))),
        "bad_request",
        "the sender cannot be named"
    );
    // helper 1 follows; the director and helper 2 write
    let mut f = Conn::open(&t, Member::Helper(1));
    f.send_raw(b"{\"v\":1,\"id\":1,\"op\":\"log\",\"follow\":true}\n");
    let mut backlog = Vec::new();
    let reply = loop {
        let l = f.line().unwrap();
        if l.get("event").is_none() {
            break l;
        }
        backlog.push(l["entry"].clone());
    };
    assert_eq!(reply["result"], json!({"count": 2, "following": true}));
    assert_eq!(backlog[0]["event"], "spawn", "its own spawn");
    assert_eq!(backlog[0]["helper"], 1);
    assert_eq!(backlog[1]["payload"]["text"], "hi h1");
    assert_eq!(backlog[1]["from"], 0);
    let mut h2 = Conn::open(&t, Member::Helper(2));
    h2.call(json!({"op": "send", "to": 0, "text": "h2 to boss"}));
    h2.call(json!({"op": "broadcast", "text": "all hands"}));
    d.call(json!({"op": "send", "to": 1, "text": "second"}));
    let e = f.line().unwrap();
    assert_eq!(e["entry"]["payload"]["text"], "all hands");
    assert_eq!(e["entry"]["from"], 2, "set by the hub");
    assert_eq!(e["entry"]["to"], "all");
    let e = f.line().unwrap();
    assert_eq!(e["entry"]["payload"]["text"], "second");
    // the director reads everything; --from and --last filter
    let mut all = Conn::open(&t, Member::Director);
    all.send_raw(b"{\"v\":1,\"id\":1,\"op\":\"log\",\"from\":2}\n");
    let mut texts = Vec::new();
    loop {
        let l = all.line().unwrap();
        if l.get("event").is_none() {
            break;
        }
        let e = &l["entry"];
        texts.push(match e["type"].as_str() {
            Some("message") => e["payload"]["text"].as_str().unwrap().to_owned(),
            _ => format!("[{}]", e["event"].as_str().unwrap()),
        });
    }
    // upstream's --from: what N sent, and control entries about N
    assert_eq!(texts, vec!["[spawn]", "h2 to boss", "all hands"]);
    let r = all.call(json!({"op": "log", "last": 1}));
    assert_eq!(r["result"]["count"], 1);
    // on disk: upstream's format, 0600
    let entries = log::read_entries(&t.hub.cfg.message_log);
    assert!(
        entries
            .iter()
            .any(|e| e["event"] == "spawn" && e["helper"] == 2)
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&t.hub.cfg.message_log).unwrap().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_slow_follower_loses_the_oldest_entries_and_is_told() {
    let t = start(Limits {
        follow_queue: 4,
        ..fast()
    });
    let f = Follower {
        who: Member::Director,
        from: None,
        below: BTreeSet::new(),
        max: 4,
        queue: Mutex::new(FollowQueue {
            items: VecDeque::new(),
            dropped: 0,
        }),
        ready: Condvar::new(),
    };
    for i in 0..10 {
        f.push(&json!({"type": "message", "from": 0, "to": 1, "payload": {"text": i}}));
    }
    let q = f.queue.lock().unwrap();
    assert_eq!(q.dropped, 6);
    assert_eq!(q.items.front().unwrap()["payload"]["text"], 6);
    drop(q);
    drop(t);
}

/// A socket leaked into another container: the peer's pid namespace is not the
/// member's. Also: a member whose container is not running is refused.
#[test]
fn a_peer_from_another_pid_namespace_is_refused() {
    let t = start(fast());
    t.engine.set_pid("kanibako-app", 0);
    t.engine.state.lock().unwrap().containers[0].running = false;
    let mut c = Conn::open(&t, Member::Director);
    let r = c.line().unwrap();
    assert_eq!(code(&r), "peer_mismatch");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not running")
    );
    assert!(c.line().is_none());

    if !nix::unistd::geteuid().is_root() {
        println!("skipped the namespace half: needs root for unshare");
        return;
    }
    #[allow(clippy::disallowed_methods)]
    let mut other = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "sleep", "30"])
        .spawn()
        .unwrap();
    // the sleep inside the new namespace is unshare's child
    let mut inner = 0;
    for _ in 0..100 {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", other.id()))
            .unwrap_or_default();
        if let Some(p) = children.split_whitespace().next() {
            inner = p.parse().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(inner > 0);
    {
        let mut s = t.engine.state.lock().unwrap();
        s.containers[0].running = true;
        s.containers[0].pid = inner;
    }
    for proc_path in [false, true] {
        if proc_path {
            t.hub.force_proc_check();
        }
        let mut c = Conn::open(&t, Member::Director);
        let r = c.line().unwrap();
        assert_eq!(code(&r), "peer_mismatch", "{r}");
        assert!(c.line().is_none());
    }
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn teardown_removes_the_boxs_helpers_and_the_runtime_dir_only() {
    let t = start(fast());
    let stranger = t.engine.add(
        "other-helper",
        true,
        &[
            (box_labels::HASH, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"),
            (labels::ROLE, "helper"),
            (labels::HELPER, "1"),
            (labels::PARENT, "0"),
            (labels::DEPTH, "1"),
            (labels::BREADTH, "1"),
        ],
    );
    let mut d = Conn::open(&t, Member::Director);
    spawn(&mut d);
    spawn(&mut d);
    assert_eq!(t.hub.teardown("test"), 2);
    assert!(!t.rt.exists());
    let calls = t.engine.calls();
    assert!(!calls.iter().any(|c| c.contains(&stranger)), "{calls:?}");
    assert!(
        t.engine.inspect("kanibako-app").unwrap().is_some(),
        "the director is not the hub's to remove"
    );
    assert!(d.call_may_fail());
}

fn helper_labels(n: &str) -> Vec<(&'static str, String)> {
    vec![
        (box_labels::HASH, HASH.into()),
        (labels::ROLE, "helper".into()),
        (labels::HELPER, n.into()),
        (labels::PARENT, "0".into()),
        (labels::DEPTH, "1".into()),
        (labels::BREADTH, "1".into()),
    ]
}

/// A short session's hub costs no engine call: nothing at start, nothing at teardown,
/// when it never had a helper.
#[test]
fn a_hub_that_never_had_a_helper_asks_the_engine_nothing() {
    let t = start(fast());
    assert!(t.engine.calls().is_empty(), "{:?}", t.engine.calls());
    assert_eq!(t.hub.teardown("test"), 0);
    assert!(t.engine.calls().is_empty(), "{:?}", t.engine.calls());
    assert!(!t.rt.exists());
}

/// Helpers that still run are adopted at the first connection; at start already when
/// an earlier hub left a helper's directory (a restarted worker: the helper may be the
/// first to connect). What the engine showed is removed at teardown.
#[test]
fn running_helpers_are_adopted_at_the_first_connection_or_at_start_when_one_left_its_dir() {
    let add_helper = |e: &FakeEngine| {
        let l = helper_labels("1");
        let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        e.add("kanibako-app-helper-1", true, &l)
    };
    let engine = Arc::new(FakeEngine::default());
    engine.add("kanibako-app", true, &[(box_labels::HASH, HASH)]);
    let h1 = add_helper(&engine);
    let t = start_with(fast(), engine.clone(), tempfile::tempdir().unwrap());
    assert!(engine.calls().is_empty(), "{:?}", engine.calls());
    let h1_sock = rundir::socket_path(&t.rt, Member::Helper(1), rundir::SOCKET).unwrap();
    assert!(!h1_sock.exists());
    let mut d = Conn::open(&t, Member::Director);
    assert_eq!(code(&d.call(json!({"op": "ping"}))), "ok");
    assert!(engine.calls().contains(&"ps".to_owned()));
    let mut h = Conn::open(&t, Member::Helper(1));
    assert_eq!(code(&h.call(json!({"op": "ping"}))), "ok");
    assert_eq!(t.hub.teardown("test"), 1);
    assert!(engine.calls().contains(&format!("rm {h1}")));

    // a helper's directory left behind: adopted before anyone connects
    let engine = Arc::new(FakeEngine::default());
    engine.add("kanibako-app", true, &[(box_labels::HASH, HASH)]);
    add_helper(&engine);
    let dir = tempfile::tempdir().unwrap();
    let rt = dir.path().join("rt");
    rundir::private_dir(&rt, nix::unistd::geteuid().as_raw()).unwrap();
    rundir::ensure_member(&rt, Member::Helper(1), None).unwrap();
    let t = start_with(fast(), engine.clone(), dir);
    assert_eq!(engine.calls(), ["ps"]);
    let mut h = Conn::open(&t, Member::Helper(1));
    assert_eq!(code(&h.call(json!({"op": "ping"}))), "ok");
}

/// The director watcher's pause ends at the first connection.
#[test]
fn the_first_connection_ends_the_wait_for_contact() {
    let t = start(fast());
    assert!(!t.hub.await_contact(Duration::from_millis(20)));
    let hub = t.hub.clone();
    let waiter = std::thread::spawn(move || {
        let at = Instant::now();
        (hub.await_contact(Duration::from_secs(30)), at.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    let mut d = Conn::open(&t, Member::Director);
    assert_eq!(code(&d.call(json!({"op": "ping"}))), "ok");
    let (seen, took) = waiter.join().unwrap();
    assert!(seen && took < Duration::from_secs(10), "{took:?}");
}

impl Conn {
    /// After teardown: the connection is closed (or answers nothing more).
    fn call_may_fail(&mut self) -> bool {
        let _ = self.send_raw(b"{\"v\":1,\"id\":99,\"op\":\"ping\"}\n");
        self.line().is_none()
    }
}

impl Hub {
    fn teardown_listeners_for_test(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.wake();
    }
}

/// A hub that may fork a real box (`myapp` under a temporary data directory).
fn start_forking() -> (TestHub, crate::boxes::BoxIdentity) {
    let dir = tempfile::tempdir().unwrap();
    let (paths, b) = crate::boxes::fork::fixture(dir.path());
    let engine = Arc::new(FakeEngine::default());
    engine.add(
        "kanibako-app",
        true,
        &[(box_labels::HASH, &b.hash), (box_labels::BOX, "myapp")],
    );
    let rt = dir.path().join("rt");
    let mut cfg = crate::hub::config::sample(&rt);
    cfg.limits = Limits {
        max_forks: 2,
        ..fast()
    };
    cfg.helper = Some(template());
    cfg.box_hash = b.hash.clone();
    cfg.fork = Some(crate::hub::config::ForkConfig::for_box(&paths, &b));
    let forker = crate::hub::fork::BoxForker::new(cfg.fork.clone().unwrap(), &b.hash);
    let hub = Hub::start(
        cfg,
        engine.clone(),
        vec![Arc::new(Control)],
        Some(Arc::new(forker)),
        HubLog::none(),
    )
    .unwrap();
    let h = hub.clone();
    std::thread::spawn(move || h.accept_loop());
    (
        TestHub {
            hub,
            engine,
            _dir: dir,
            rt,
        },
        b,
    )
}

#[test]
fn the_director_forks_its_box_into_one_with_its_own_home() {
    let (t, src) = start_forking();
    let mut d = Conn::open(&t, Member::Director);
    let r = d.call(json!({"op": "hello"}));
    assert!(
        r["result"]["features"]
            .as_array()
            .unwrap()
            .contains(&json!("fork")),
        "{r}"
    );
    std::fs::write(src.shell.join("memory"), "of the source").unwrap();
    let r = d.call(json!({"op": "fork", "name": " exp "}));
    let dest = src.workspace.with_file_name("myapp.exp");
    assert_eq!(
        r["result"],
        json!({"path": dest.to_str().unwrap(), "name": "myapp.exp"}),
        "{r}"
    );
    // defect 9: the fork's home is a copy
    let paths = &t.hub.cfg.fork.as_ref().unwrap().paths;
    let fork_home = paths.boxes.join("myapp.exp/shell");
    assert_eq!(
        std::fs::read_to_string(fork_home.join("memory")).unwrap(),
        "of the source"
    );
    std::fs::write(fork_home.join("memory"), "of the fork").unwrap();
    assert_eq!(
        std::fs::read_to_string(src.shell.join("memory")).unwrap(),
        "of the source"
    );
    // the message log has upstream's entry
    let log = std::fs::read_to_string(&t.hub.cfg.message_log).unwrap();
    let entry: Value = serde_json::from_str(
        log.lines()
            .find(|l| l.contains("\"fork\""))
            .unwrap_or_else(|| panic!("{log}")),
    )
    .unwrap();
    assert_eq!(entry["type"], "control");
    assert_eq!(entry["event"], "fork");
    assert_eq!(entry["name"], "exp");
    assert_eq!(entry["path"], dest.to_str().unwrap());
    assert_eq!(entry["new_name"], "myapp.exp");
    assert!(entry["ts"].as_str().unwrap().ends_with("+00:00"), "{entry}");
    // a fork is costly: the hub makes only so many
    assert_eq!(code(&d.call(json!({"op": "fork", "name": "two"}))), "ok");
    let r = d.call(json!({"op": "fork", "name": "three"}));
    assert_eq!(code(&r), "budget_exhausted", "{r}");
    assert!(!src.workspace.with_file_name("myapp.three").exists());
}

#[test]
fn a_fork_is_refused_for_bad_names_taken_places_helpers_and_hubs_without_it() {
    let (t, src) = start_forking();
    let mut d = Conn::open(&t, Member::Director);
    for bad in ["a.b", "../escape", "a/b", "a\\b", "", "  ", "-x", ".."] {
        let r = d.call(json!({"op": "fork", "name": bad}));
        assert_eq!(code(&r), "bad_request", "{bad:?}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no slashes or dots"),
            "{r}"
        );
    }
    // a request names no path: extra fields are refused, not used
    let r = d.call(json!({"op": "fork", "name": "x", "path": "/etc"}));
    assert_eq!(code(&r), "bad_request", "{r}");
    // the destination exists (a directory the user made, or an earlier fork)
    let dest = src.workspace.with_file_name("myapp.taken");
    std::fs::create_dir(&dest).unwrap();
    let r = d.call(json!({"op": "fork", "name": "taken"}));
    assert_eq!(code(&r), "conflict", "{r}");
    assert_eq!(
        r["error"]["message"],
        format!("destination already exists: {}", dest.display())
    );
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0, "left alone");
    // helpers may not fork the box
    assert_eq!(code(&spawn(&mut d)), "ok");
    let mut h1 = Conn::open(&t, Member::Helper(1));
    let r = h1.call(json!({"op": "fork", "name": "byhelper"}));
    assert_eq!(code(&r), "forbidden", "{r}");
    assert!(!src.workspace.with_file_name("myapp.byhelper").exists());
    let log = std::fs::read_to_string(&t.hub.cfg.message_log).unwrap();
    assert!(!log.contains("\"fork\""), "refusals are not forks: {log}");
    // a hub the host gave no box paths cannot fork
    let plain = start(fast());
    let mut d = Conn::open(&plain, Member::Director);
    let r = d.call(json!({"op": "fork", "name": "exp"}));
    assert_eq!(code(&r), "unavailable", "{r}");
}

#[test]
fn a_fork_under_way_when_the_hub_stops_is_undone() {
    let (t, src) = start_forking();
    for i in 0..50 {
        std::fs::write(src.workspace.join(format!("f{i}")), "x").unwrap();
    }
    let names = std::fs::read(t.hub.cfg.fork.as_ref().unwrap().paths.names_file()).unwrap();
    t.hub.shutdown.store(true, Ordering::SeqCst);
    let (c, m) = t
        .hub
        .fork(Member::Director, &ForkName::parse("exp").unwrap())
        .unwrap_err();
    assert_eq!(c, ErrorCode::Internal);
    assert_eq!(m, "workspace copy failed: the hub is stopping");
    let parent = src.workspace.parent().unwrap();
    let left: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [src.workspace.file_name().unwrap()],
        "no copy, no temporary"
    );
    let paths = &t.hub.cfg.fork.as_ref().unwrap().paths;
    assert!(!paths.boxes.join("myapp.exp").exists());
    assert_eq!(std::fs::read(paths.names_file()).unwrap(), names);
}

//! The helper hub as a process: `kanibako _hub` (the supervised per-box daemon) and the
//! in-box client `kanibako crab helper …`, first over a scripted fake engine (always
//! run), then in real containers on rootful podman, rootless podman and docker (skipped
//! without them; failing instead when KANIBAKO_TEST_REQUIRE_ENGINE=1).
// Tests drive the binary from outside: they start processes and read their own
// environment directly, which the library routes through `process` and `host`.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kanibako::runtime::EngineKind;
use kanibako::runtime::spec::{Mount, RunMode, RunSpec, UserMapping};
use support::{Env, engine_required};

const HASH: &str = "0123456789abcdef0123456789abcdef";

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

fn record(rt: &Path) -> String {
    std::fs::read_to_string(rt.join("hub.lock")).unwrap_or_default()
}

fn record_field(rt: &Path, key: &str) -> Option<i32> {
    record(rt)
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
}

/// A fake engine: containers are files `c/<name or id>` holding the inspect line,
/// `wait` blocks until `gone` exists, every call is logged.
fn fake_engine(e: &Env, director_pid: u32) -> PathBuf {
    let state = e.root_file("engine");
    std::fs::create_dir_all(state.join("c")).unwrap();
    let id = "d".repeat(64);
    let line = format!(
        "{id}|kanibako-app|true|{director_pid}|{{\"io.kanibako.hash\":\"{HASH}\",\"io.kanibako.box\":\"app\"}}\n"
    );
    std::fs::write(state.join("c/kanibako-app"), &line).unwrap();
    std::fs::write(state.join(format!("c/{id}")), &line).unwrap();
    let s = state.display();
    e.script(
        "fake-engine",
        &format!(
            r#"echo "$*" >> '{s}/calls.log'
case "$1" in
  container)
    shift 3; shift
    rc=0
    for c in "$@"; do
      if [ -f '{s}/c/'"$c" ]; then /bin/cat '{s}/c/'"$c"; else echo "Error: no such container $c" >&2; rc=125; fi
    done
    exit $rc ;;
  ps) exit 0 ;;
  wait) while [ ! -f '{s}/gone' ]; do /bin/sleep 0.05; done; echo 0 ;;
  rm|stop) exit 0 ;;
  *) echo "fake engine: unexpected $1" >&2; exit 125 ;;
esac
"#
        ),
    )
}

/// A hub config for box `app` over `engine`, in `<root>/rt`.
fn write_config(e: &Env, engine: &Path, extra: serde_json::Value) -> (PathBuf, PathBuf) {
    let rt = e.root_file("rt");
    std::fs::create_dir_all(&rt).unwrap();
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut cfg = serde_json::json!({
        "box_hash": HASH,
        "box_name": "app",
        "director": "kanibako-app",
        "runtime_dir": rt,
        "message_log": e.root_file("logs/helper-messages.jsonl"),
        "hub_log": e.root_file("logs/hub.log"),
        "engine": {"program": engine, "kind": "podman"},
        "director_timeout_ms": 5000,
    });
    if let serde_json::Value::Object(m) = extra {
        for (k, v) in m {
            cfg[k] = v;
        }
    }
    let path = rt.join("hub.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (rt, path)
}

/// Ends a hub the test started, even when an assertion fails first.
struct HubGuard {
    rt: PathBuf,
    gone: Option<PathBuf>,
}

impl Drop for HubGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.gone {
            let _ = std::fs::write(g, "");
        }
        if let Some(pid) = record_field(&self.rt, "pid ") {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

fn hub_log(e: &Env) -> String {
    std::fs::read_to_string(e.root_file("logs/hub.log")).unwrap_or_default()
}

#[test]
fn the_supervised_hub_refuses_a_second_restarts_its_worker_and_ends_with_the_director() {
    let mut e = Env::new();
    let engine = fake_engine(&e, std::process::id());
    let (rt, cfg) = write_config(&e, &engine, serde_json::json!({}));
    let sock = rt.join("m/director/hub.sock");
    e.set("KANIBAKO_HUB_SOCKET", &sock);
    let _guard = HubGuard {
        rt: rt.clone(),
        gone: Some(e.root_file("engine/gone")),
    };
    let home = e.home.clone();

    // a daemon: the command returns at once, the hub holds the lock
    let t = Instant::now();
    let r = e
        .run(&home, &["_hub", "--config", cfg.to_str().unwrap()])
        .ok();
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let pid = record_field(&rt, "pid ")
        .unwrap_or_else(|| panic!("the lock names the hub: {:?} {}", record(&rt), hub_log(&e)));
    assert!(alive(pid));
    assert!(
        rt.join("m/director").is_dir(),
        "the director's directory exists on return"
    );
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(fields[3], pid.to_string(), "its own session (setsid)");
    assert_eq!(fields[4], "0", "no controlling terminal");

    let r = e.run(&home, &["crab", "helper", "ping"]).ok();
    assert_eq!(r.stdout, "pong\n");
    let r = e.run(&home, &["crab", "helper", "list"]).ok();
    assert_eq!(r.stdout, "No helpers.\n");

    // one hub per box
    let r = e
        .run(&home, &["_hub", "--config", cfg.to_str().unwrap()])
        .fails();
    assert!(
        r.stderr.contains(&format!(
            "the hub of box app is already running (pid {pid})"
        )),
        "{r:?}"
    );

    // a follower of the log, across the crash below
    let mut follower = e
        .cmd(&home, &["crab", "helper", "log", "-f"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // a killed worker is replaced and the client gets through
    let worker = record_field(&rt, "worker ").unwrap();
    Command::new("kill")
        .args(["-9", &worker.to_string()])
        .status()
        .unwrap();
    let r = e.run(&home, &["crab", "helper", "list"]).ok();
    assert_eq!(r.stdout, "No helpers.\n", "asked while the worker restarts");
    let r = e
        .run(&home, &["crab", "helper", "send", "0", "after the crash"])
        .ok();
    assert_eq!(r.stdout, "Message sent to the director.\n");
    let new_worker = record_field(&rt, "worker ").unwrap();
    assert_ne!(new_worker, worker);
    wait_until(
        "the outage in the hub's log",
        Duration::from_secs(5),
        || hub_log(&e).contains("\"outage_ms\":") && hub_log(&e).contains("worker_died"),
    );
    let outage: Vec<String> = hub_log(&e)
        .lines()
        .filter(|l| l.contains("\"outage_ms\":") && !l.contains("\"outage_ms\":null"))
        .map(str::to_owned)
        .collect();
    eprintln!("worker restart: {outage:?}");
    let r = e.run(&home, &["crab", "helper", "log"]).ok();
    assert!(r.stdout.contains("[0 → 0]  after the crash"), "{r:?}");
    // the follower reconnected and prints what comes next
    e.run(&home, &["crab", "helper", "broadcast", "while following"])
        .ok();
    let out = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("[0 → *]  while following"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("the follower printed {seen:?}"),
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let r = e.run(&home, &["crab", "helper", "spawn"]).fails();
    assert!(r.stderr.contains("cannot start helpers"), "{r:?}");

    // the director's container goes: the hub ends and takes its directory with it
    std::fs::write(e.root_file("engine/gone"), "").unwrap();
    wait_until("the hub to exit", Duration::from_secs(10), || !alive(pid));
    assert!(!rt.exists(), "the runtime directory is removed");
    assert!(
        hub_log(&e).contains("\"reason\":\"director_exited\""),
        "{}",
        hub_log(&e)
    );
    assert!(!alive(new_worker));
}

#[test]
fn a_stop_signal_ends_the_hub_and_a_bad_config_is_refused() {
    let mut e = Env::new();
    let engine = fake_engine(&e, std::process::id());
    let (rt, cfg) = write_config(&e, &engine, serde_json::json!({}));
    e.set("KANIBAKO_HUB_SOCKET", rt.join("m/director/hub.sock"));
    let _guard = HubGuard {
        rt: rt.clone(),
        gone: Some(e.root_file("engine/gone")),
    };
    let home = e.home.clone();
    e.run(&home, &["_hub", "--config", cfg.to_str().unwrap()])
        .ok();
    let pid = record_field(&rt, "pid ").unwrap();
    e.run(&home, &["crab", "helper", "ping"]).ok();
    Command::new("kill").arg(pid.to_string()).status().unwrap();
    wait_until("the hub to exit", Duration::from_secs(10), || !alive(pid));
    assert!(!rt.exists());
    assert!(
        hub_log(&e).contains("\"reason\":\"signal SIGTERM\""),
        "{}",
        hub_log(&e)
    );

    // a config others may write is not read
    let (_rt, cfg) = write_config(&e, &engine, serde_json::json!({}));
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = e
        .run(&home, &["_hub", "--config", cfg.to_str().unwrap()])
        .fails();
    assert!(r.stderr.contains("is not a private file"), "{r:?}");
    let (_rt, cfg) = write_config(&e, &engine, serde_json::json!({"director": "--privileged"}));
    let r = e
        .run(&home, &["_hub", "--config", cfg.to_str().unwrap()])
        .fails();
    assert!(r.stderr.contains("not a container name"), "{r:?}");
}

/// The calls the launch will make: prepare the director's directory, start the hub
/// (once), see it running, stop it.
#[test]
fn the_launch_api_starts_finds_and_stops_a_hub() {
    use kanibako::hub::{self, HubStatus, Started, Stopped};
    let e = Env::new();
    let engine = fake_engine(&e, std::process::id());
    let (rt, cfg_path) = write_config(&e, &engine, serde_json::json!({}));
    let _guard = HubGuard {
        rt: rt.clone(),
        gone: Some(e.root_file("engine/gone")),
    };
    let cfg = hub::HubConfig::load(&cfg_path).unwrap();
    let mount = hub::prepare(&cfg).unwrap();
    assert_eq!(mount.host_dir, rt.join("m/director"));
    assert_eq!(mount.guest_dir, "/run/kanibako");
    assert_eq!(hub::status(&rt), HubStatus::NotRunning);
    let exe = Path::new(env!("CARGO_BIN_EXE_kanibako"));
    let exec = kanibako::process::SystemExecutor;
    let Started::Started { pid } = hub::start(&cfg, &exec, exe).unwrap() else {
        panic!("a fresh hub")
    };
    assert_eq!(
        hub::start(&cfg, &exec, exe).unwrap(),
        Started::AlreadyRunning { pid }
    );
    assert_eq!(
        hub::status(&rt),
        HubStatus::Running {
            pid,
            stopping: false
        }
    );
    let t = Instant::now();
    assert_eq!(
        hub::stop(&rt, Duration::from_secs(10)).unwrap(),
        Stopped::Clean
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!alive(pid));
    assert!(!rt.exists(), "the hub removed its runtime directory");
    assert_eq!(
        hub::stop(&rt, Duration::from_secs(1)).unwrap(),
        Stopped::NotRunning
    );
}

#[test]
fn outside_a_box_crab_helper_says_where_it_runs() {
    if Path::new("/run/kanibako").exists() {
        return;
    }
    let e = Env::new();
    let home = e.home.clone();
    for args in [
        &["crab", "helper", "list"][..],
        &["crab", "helper"],
        &["crab", "helper", "send", "1", "hi"],
    ] {
        let r = e.run(&home, args).fails();
        assert!(
            r.stderr.starts_with(
                "Error: this command runs inside a box: there is no /run/kanibako here\nhint: "
            ),
            "{r:?}"
        );
    }
    let r = e.run(&home, &["crab", "fork", "exp"]).fails();
    assert!(
        r.stderr
            .contains("fork requires a running kanibako session with helpers enabled."),
        "{r:?}"
    );
    // nothing was initialised in the home: these commands need no configuration
    assert!(!e.home.join(".config/kanibako").exists());
    // and the usage errors are clap's
    let r = e.run(&home, &["crab", "helper", "stop", "0"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = e.run(&home, &["crab", "helper", "spawn", "--depth", "-2"]);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn a_hub_that_is_not_there_is_reported_after_a_short_wait() {
    let mut e = Env::new();
    let sock = e.root_file("nowhere/hub.sock");
    e.set("KANIBAKO_HUB_SOCKET", &sock);
    let home = e.home.clone();
    let t = Instant::now();
    let r = e.run(&home, &["crab", "helper", "list"]).fails();
    assert!(t.elapsed() >= Duration::from_secs(4), "it retried first");
    assert!(r.stderr.contains("cannot reach the helper hub at"), "{r:?}");
    assert!(
        r.stderr.contains("hint: the box's hub is not running"),
        "{r:?}"
    );
    // `crab fork` says it upstream's way
    let r = e.run(&home, &["crab", "fork", "exp"]).fails();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("Error: fork requires a running kanibako session with helpers enabled.\n"),
        "{r:?}"
    );
}

// ---------------------------------------------------------------- real engines

/// The one library the kanibako binary needs besides libc. The test rig is assembled
/// from a few host programs and lacks it; real rigs have it (a static build would not
/// need it at all).
const LIBGCC: &str = "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavour {
    RootfulPodman,
    Docker,
    RootlessPodman,
}

struct Real {
    env: Env,
    image: String,
    program: String,
    flavour: Flavour,
}

fn which(program: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn real(flavour: Flavour) -> Option<Real> {
    let skip = |why: &str| {
        assert!(!engine_required(), "{flavour:?} is required here: {why}");
        eprintln!("skipped {flavour:?}: {why}");
        None
    };
    let Ok(image) = std::env::var("KANIBAKO_TEST_IMAGE") else {
        return skip("no KANIBAKO_TEST_IMAGE (scripts/prepare-engines)");
    };
    let program = if flavour == Flavour::Docker {
        "docker"
    } else {
        "podman"
    };
    if which(program).is_empty() {
        return skip("engine not installed");
    }
    if flavour == Flavour::Docker && std::env::var("DOCKER_HOST").is_err() {
        return skip("no private dockerd (DOCKER_HOST)");
    }
    let mut env = match flavour {
        Flavour::RootfulPodman => {
            if !nix_is_root() {
                return skip("rootful podman needs root");
            }
            Env::with_system_path()
        }
        _ => {
            let Ok(user) = std::env::var("KANIBAKO_TEST_USER") else {
                return skip("no KANIBAKO_TEST_USER");
            };
            Env::as_user(&user)
        }
    };
    if flavour == Flavour::RootlessPodman {
        let (Ok(conf), Ok(storage)) = (
            std::env::var("KANIBAKO_TEST_ROOTLESS_CONF"),
            std::env::var("KANIBAKO_TEST_ROOTLESS_STORAGE"),
        ) else {
            return skip("no rootless podman configuration");
        };
        env.set("CONTAINERS_CONF", conf);
        env.set("CONTAINERS_STORAGE_CONF", storage);
    }
    Some(Real {
        env,
        image,
        program: which(program),
        flavour,
    })
}

fn nix_is_root() -> bool {
    String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        == "0"
}

impl Real {
    /// The engine, as the user kanibako runs as.
    fn engine(&self, args: &[&str]) -> support::Run {
        let home = self.env.home.clone();
        support::Run::from(
            self.env
                .program_cmd(Path::new(&self.program), &home, args)
                .output()
                .unwrap(),
        )
    }

    fn kb(&self, args: &[&str]) -> support::Run {
        self.env.run(&self.env.home.clone(), args)
    }

    fn kind(&self) -> EngineKind {
        if self.flavour == Flavour::Docker {
            EngineKind::Docker
        } else {
            EngineKind::Podman
        }
    }

    /// The in-box user the launch picks for this engine (and the hub config's name for it).
    fn user(&self) -> (UserMapping, serde_json::Value) {
        match self.flavour {
            Flavour::RootlessPodman => (
                UserMapping::KeepId { pin: true },
                serde_json::json!({"kind": "keep_id", "pin": true}),
            ),
            Flavour::Docker => {
                let u = self.env.uid();
                (
                    UserMapping::User { uid: u, gid: u },
                    serde_json::json!({"kind": "user", "uid": u, "gid": u}),
                )
            }
            Flavour::RootfulPodman => (
                UserMapping::SplitMap {
                    host_uid: 0,
                    host_gid: 0,
                },
                serde_json::json!({"kind": "split_map", "host_uid": 0, "host_gid": 0}),
            ),
        }
    }

    /// `run` a box as the launch renders one: labels, its member directory read-only
    /// at /run/kanibako, the kanibako binary read-only.
    fn run_box(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        member: &Path,
        exe: &Path,
        rootfs: Option<&Path>,
    ) {
        let spec = RunSpec {
            name: name.into(),
            image: self.image.clone(),
            mode: RunMode::Detached,
            user: self.user().0,
            confined: None,
            workdir: "/".into(),
            mounts: vec![
                Mount::Bind {
                    src: member.to_owned(),
                    dst: "/run/kanibako".into(),
                    read_only: true,
                    relabel: false,
                },
                Mount::Bind {
                    src: exe.to_owned(),
                    dst: "/usr/local/bin/kanibako".into(),
                    read_only: true,
                    relabel: false,
                },
                Mount::Bind {
                    src: LIBGCC.into(),
                    dst: LIBGCC.into(),
                    read_only: true,
                    relabel: false,
                },
            ],
            network: Default::default(),
            env: Default::default(),
            pass_env: Vec::new(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .chain([("io.kanibako.test".to_owned(), "1".to_owned())])
                .collect(),
            entrypoint: None,
            command: vec!["sleep".into(), "300".into()],
        };
        let args: Vec<String> = spec
            .to_args(self.kind(), rootfs, None)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.engine(&refs).ok();
    }
}

/// Containers (by name) removed on drop, whatever happened.
struct Cleanup<'a> {
    real: &'a Real,
    names: Vec<String>,
    hub_rt: Vec<PathBuf>,
    mounted: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let mut args = vec!["rm", "-f"];
            if self.real.program.ends_with("podman") {
                args.extend(["-t", "0"]);
            }
            args.push(n);
            let _ = self.real.engine(&args);
        }
        for rt in &self.hub_rt {
            if let Some(pid) = record_field(rt, "pid ") {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
        if self.mounted {
            let _ = self.real.engine(&["image", "unmount", &self.real.image]);
        }
    }
}

fn real_hub(flavour: Flavour) {
    let Some(r) = real(flavour) else { return };
    let tag = format!(
        "{}{}",
        std::process::id(),
        format!("{flavour:?}").to_lowercase()
    );
    let name = format!("hb{tag}");
    let director = format!("kanibako-{name}");
    let hash = format!(
        "{:0>32x}",
        u128::from(std::process::id()) * 7919 + flavour as u128
    );
    let other_hash = format!("{:0>32x}", u128::from(std::process::id()) * 7919 + 99);
    let helper = format!("{director}-helper-1");
    let leak = format!("kbleak{tag}");
    let mut cleanup = Cleanup {
        real: &r,
        names: vec![director.clone(), helper.clone(), leak.clone()],
        hub_rt: Vec::new(),
        mounted: false,
    };
    // rootful podman runs a box on the mounted image (the split user map needs it)
    let rootfs = (flavour == Flavour::RootfulPodman).then(|| {
        cleanup.mounted = true;
        PathBuf::from(r.engine(&["image", "mount", &r.image]).ok().stdout.trim())
    });

    // the hub's files, owned by the user kanibako runs as
    let rt = r.env.root_file("rt");
    let logs = r.env.root_file("logs");
    for d in [&rt, &logs] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
    let exe = match r.env.root_file("kanibako") {
        copy if copy.exists() => copy,
        _ => PathBuf::from(env!("CARGO_BIN_EXE_kanibako")),
    };
    let cfg = serde_json::json!({
        "box_hash": hash,
        "box_name": name,
        "director": director,
        "runtime_dir": rt,
        "message_log": logs.join("helper-messages.jsonl"),
        "hub_log": logs.join("hub.log"),
        "engine": {"program": r.program, "kind": if flavour == Flavour::Docker {"docker"} else {"podman"},
                   "rootless": flavour == Flavour::RootlessPodman},
        "director_timeout_ms": 60000,
        // the round-trip measurement below sends far more than the default 100/s
        "limits": {"requests_per_second": 100000},
        "helper": {
            "image": r.image,
            "user": r.user().1,
            "rootfs": rootfs,
            "mounts": [{"src": exe, "dst": "/usr/local/bin/kanibako", "read_only": true},
                       {"src": LIBGCC, "dst": LIBGCC, "read_only": true}],
            "command": ["sleep", "300"],
        },
    });
    let cfg_path = rt.join("hub.json");
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    std::fs::set_permissions(&cfg_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    r.env.chown_all(&r.env.root_file(""));
    cleanup.hub_rt.push(rt.clone());

    // the hub first (it makes the director's directory), then the box
    r.kb(&["_hub", "--config", cfg_path.to_str().unwrap()]).ok();
    let member = rt.join("m/director");
    assert!(member.is_dir());
    let box_labels = [
        ("io.kanibako.box", name.as_str()),
        ("io.kanibako.hash", hash.as_str()),
    ];
    r.run_box(&director, &box_labels, &member, &exe, rootfs.as_deref());
    let inbox = |c: &str, args: &[&str]| -> support::Run {
        let mut a = vec!["exec", c, "/usr/local/bin/kanibako"];
        a.extend_from_slice(args);
        r.engine(&a)
    };

    // from inside the box, through the mounted binary
    let out = inbox(&director, &["crab", "helper", "ping"]).ok();
    assert_eq!(out.stdout, "pong\n");
    let out = inbox(&director, &["crab", "helper", "list"]).ok();
    assert_eq!(out.stdout, "No helpers.\n");
    let out = inbox(&director, &["crab", "helper", "ping", "--count", "300"]).ok();
    eprintln!("{flavour:?}: round trips from inside a box: {}", out.stdout);
    let ro = r.engine(&["exec", &director, "rm", "-f", "/run/kanibako/hub.sock"]);
    assert_ne!(
        ro.code, 0,
        "the member directory is read-only in the box: {ro:?}"
    );
    assert!(ro.stderr.contains("Read-only"), "{ro:?}");

    // a helper: spawn, message the director, stop, respawn
    let t = Instant::now();
    let out = inbox(&director, &["crab", "helper", "spawn", "--model", "sonnet"]).ok();
    eprintln!(
        "{flavour:?}: crab helper spawn took {} ms",
        t.elapsed().as_millis()
    );
    assert!(
        out.stdout
            .starts_with("Spawned helper 1\n  model: sonnet\n"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!("  container: {helper}\n")),
        "{out:?}"
    );
    let out = inbox(&helper, &["crab", "helper", "send", "0", "report from h1"]).ok();
    assert_eq!(out.stdout, "Message sent to the director.\n");
    let out = inbox(&director, &["crab", "helper", "log", "--from", "1"]).ok();
    assert!(out.stdout.contains("[1 → 0]  report from h1"), "{out:?}");
    let out = inbox(&helper, &["crab", "helper", "stop", "1"]).fails();
    assert!(
        out.stderr.contains("was not spawned by helper 1"),
        "{out:?}"
    );
    let out = inbox(&director, &["crab", "helper", "list"]).ok();
    assert!(out.stdout.contains("1      running    sonnet"), "{out:?}");
    assert_eq!(
        inbox(&director, &["crab", "helper", "stop", "1"])
            .ok()
            .stdout,
        "Stopped helper 1.\n"
    );
    assert_eq!(
        inbox(&director, &["crab", "helper", "respawn", "1"])
            .ok()
            .stdout,
        "Respawned helper 1.\n"
    );
    let out = inbox(&helper, &["crab", "helper", "ping"]).ok();
    assert_eq!(out.stdout, "pong\n", "the respawned helper reaches the hub");

    // box A's directory mounted into a container of box B: refused
    let other = [
        ("io.kanibako.box", "other"),
        ("io.kanibako.hash", other_hash.as_str()),
    ];
    r.run_box(&leak, &other, &member, &exe, rootfs.as_deref());
    let out = inbox(&leak, &["crab", "helper", "list"]).fails();
    assert!(
        out.stderr
            .contains("connection is not from this socket's container"),
        "{out:?}"
    );

    // a killed worker: the box reconnects
    let worker = record_field(&rt, "worker ").unwrap();
    Command::new("kill")
        .args(["-9", &worker.to_string()])
        .status()
        .unwrap();
    let out = inbox(&director, &["crab", "helper", "list"]).ok();
    assert!(out.stdout.contains("1      running"), "{out:?}");
    assert_eq!(
        inbox(&helper, &["crab", "helper", "ping"]).ok().stdout,
        "pong\n"
    );

    // the director goes: the hub removes its helper and itself
    let pid = record_field(&rt, "pid ").unwrap();
    let mut rm = vec!["rm", "-f"];
    if r.program.ends_with("podman") {
        rm.extend(["-t", "0"]);
    }
    rm.push(&director);
    r.engine(&rm).ok();
    wait_until("the hub to exit", Duration::from_secs(30), || !alive(pid));
    assert!(!rt.exists(), "the runtime directory is gone");
    let filter = format!("label=io.kanibako.hash={hash}");
    let ps = r.engine(&["ps", "-a", "-q", "--filter", &filter]).ok();
    assert_eq!(ps.stdout.trim(), "", "no helper is left");
    let log = std::fs::read_to_string(logs.join("hub.log")).unwrap();
    assert!(log.contains("\"helpers_removed\":1"), "{log}");
    drop(cleanup);
}

#[test]
fn rootful_podman_hub() {
    real_hub(Flavour::RootfulPodman);
}

#[test]
fn rootless_podman_hub() {
    real_hub(Flavour::RootlessPodman);
}

#[test]
fn docker_hub() {
    real_hub(Flavour::Docker);
}

/// The host's locations as the kanibako of `env` resolves them (no `system.path` set in
/// the test's global config: the defaults under its HOME).
fn env_paths(env: &Env) -> kanibako::paths::Paths {
    let home = env.home.to_str().unwrap().to_owned();
    let runtime = std::env::var("XDG_RUNTIME_DIR").ok();
    let mut vars = vec![("HOME", home.as_str())];
    if let Some(r) = &runtime {
        vars.push(("XDG_RUNTIME_DIR", r.as_str()));
    }
    let host = kanibako::host::HostEnv::for_test(&env.home, &vars);
    let mut bases = kanibako::paths::Bases::from_host(&host).unwrap();
    bases.uid = env.uid();
    kanibako::paths::Paths::resolve(&host, bases, &Default::default()).unwrap()
}

/// `crab fork` from inside a running box: the hub (started as the launch will start
/// it, with the box's paths in its config) copies the box next to its project, and the
/// host then sees, lists and runs the new box, whose home is its own (defect 9); the
/// Python tool reads its metadata as its own too.
fn real_fork(flavour: Flavour) {
    let Some(mut r) = real(flavour) else { return };
    let program = r.program.clone();
    r.env.set("KANIBAKO_DOCKER_CMD", &program);
    let tag = format!(
        "{}{}",
        std::process::id(),
        format!("{flavour:?}").to_lowercase()
    );
    let name = format!("fk{tag}");
    let ws = r.env.dir(&format!("p/{name}"));
    let fork_ws = ws.with_file_name(format!("{name}.exp"));
    let fork_name = format!("{name}.exp");
    let director = format!("kanibako-{name}");
    let mut cleanup = Cleanup {
        real: &r,
        names: vec![director.clone()],
        hub_rt: Vec::new(),
        mounted: false,
    };
    let kb_in = |dir: &Path, args: &[&str]| r.env.run(dir, args);
    kb_in(&ws, &["create", "-i", &r.image]).ok();
    // the source's home holds something before the fork
    kb_in(&ws, &["shell", "--", "sh", "-c", "echo source > ~/memory"]).ok();

    let paths = env_paths(&r.env);
    let src = match kanibako::boxes::resolve::resolve(&paths, &ws, None).unwrap() {
        kanibako::boxes::resolve::Resolution::Found(b) => b,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        std::fs::read_to_string(src.shell.join("memory")).unwrap(),
        "source\n"
    );
    let rootfs = (flavour == Flavour::RootfulPodman).then(|| {
        cleanup.mounted = true;
        PathBuf::from(r.engine(&["image", "mount", &r.image]).ok().stdout.trim())
    });
    let rt = r.env.root_file("rt");
    let logs = r.env.root_file("logs");
    for d in [&rt, &logs] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
    let exe = match r.env.root_file("kanibako") {
        copy if copy.exists() => copy,
        _ => PathBuf::from(env!("CARGO_BIN_EXE_kanibako")),
    };
    let fork_cfg = kanibako::hub::config::ForkConfig::for_box(&paths, &src);
    let cfg = serde_json::json!({
        "box_hash": src.hash,
        "box_name": name,
        "director": director,
        "runtime_dir": rt,
        "message_log": logs.join("helper-messages.jsonl"),
        "hub_log": logs.join("hub.log"),
        "engine": {"program": r.program, "kind": if flavour == Flavour::Docker {"docker"} else {"podman"},
                   "rootless": flavour == Flavour::RootlessPodman},
        "director_timeout_ms": 60000,
        "fork": fork_cfg,
    });
    let cfg_path = rt.join("hub.json");
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    std::fs::set_permissions(&cfg_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    r.env.chown_all(&r.env.root_file(""));
    cleanup.hub_rt.push(rt.clone());
    r.kb(&["_hub", "--config", cfg_path.to_str().unwrap()]).ok();
    let member = rt.join("m/director");
    let box_labels = [
        ("io.kanibako.box", name.as_str()),
        ("io.kanibako.hash", src.hash.as_str()),
    ];
    r.run_box(&director, &box_labels, &member, &exe, rootfs.as_deref());
    let inbox = |args: &[&str]| -> support::Run {
        let mut a = vec!["exec", director.as_str(), "/usr/local/bin/kanibako"];
        a.extend_from_slice(args);
        r.engine(&a)
    };

    // from inside the box: upstream's three lines
    let t = Instant::now();
    let out = inbox(&["crab", "fork", "exp"]).ok();
    eprintln!("{flavour:?}: crab fork took {} ms", t.elapsed().as_millis());
    assert_eq!(
        out.stdout,
        format!(
            "Forked to: {}\nProject name: {fork_name}\nOpen a new terminal and run kanibako in that directory.\n",
            fork_ws.display()
        )
    );
    let out = inbox(&["crab", "fork", "exp"]).fails();
    assert_eq!(
        out.stderr.lines().next().unwrap(),
        format!("Error: destination already exists: {}", fork_ws.display()),
        "{out:?}"
    );
    assert_eq!(out.code, 1);
    let out = inbox(&["crab", "fork", "a.b"]).fails();
    assert!(
        out.stderr.starts_with("Error: invalid fork name"),
        "{out:?}"
    );
    let out = inbox(&["crab", "helper", "log"]).ok();
    assert!(
        out.stdout.contains(&format!("[fork] {fork_name}")),
        "{out:?}"
    );

    // the host sees the new box and runs it; its home is a copy of the source's
    let info = r.kb(&["box", "info", &fork_name]).ok().stdout;
    let fork_shell = paths.boxes.join(&fork_name).join("shell");
    assert!(
        info.contains(&format!("Name:         {fork_name}")),
        "{info}"
    );
    assert!(
        info.contains(&format!("Project:      {}", fork_ws.display())),
        "{info}"
    );
    assert!(
        info.contains(&format!("Shell:        {}", fork_shell.display())),
        "{info}"
    );
    let list = r.kb(&["list"]).ok().stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with(&fork_name) && l.ends_with(fork_ws.to_str().unwrap())),
        "{list}"
    );
    let out = kb_in(
        &fork_ws,
        &[
            "shell",
            "--",
            "sh",
            "-c",
            "cat ~/memory; echo fork > ~/memory",
        ],
    )
    .ok();
    assert_eq!(out.stdout, "source\n", "{out:?}");
    kb_in(&fork_ws, &["shell", "--", "true"]).ok();
    assert_eq!(
        std::fs::read_to_string(fork_shell.join("memory")).unwrap(),
        "fork\n"
    );
    assert_eq!(
        std::fs::read_to_string(src.shell.join("memory")).unwrap(),
        "source\n",
        "the source's home is not the fork's (defect 9)"
    );

    // the Python tool reads the fork's metadata as the fork's own
    match std::env::var("KANIBAKO_TEST_PYTHON") {
        Ok(py) => {
            let out = Command::new(&py)
                .env_clear()
                .env("HOME", &r.env.home)
                .env("PATH", "/usr/bin:/bin")
                .current_dir(&fork_ws)
                .args(["box", "info"])
                .output()
                .unwrap();
            let info = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{out:?}");
            assert!(
                info.contains(&format!("Name:         {fork_name}")),
                "{info}"
            );
            assert!(
                info.contains(&format!("Shell:        {}", fork_shell.display())),
                "its own home, not the source's: {info}"
            );
        }
        Err(_) => assert!(
            std::env::var("KANIBAKO_TEST_REQUIRE_PYTHON").is_err(),
            "KANIBAKO_TEST_PYTHON must point at the Python tool's `kanibako` in CI"
        ),
    }
    drop(cleanup);
}

#[test]
fn rootful_podman_crab_fork() {
    real_fork(Flavour::RootfulPodman);
}

#[test]
fn rootless_podman_crab_fork() {
    real_fork(Flavour::RootlessPodman);
}

#[test]
fn docker_crab_fork() {
    real_fork(Flavour::Docker);
}

//! The escape suite (issue 13): each probe is a test that tries, from inside a real box
//! (`kanibako shell -- sh -c …`, as the agent), to get out of it or to gain what the box
//! must not have, on rootful podman, rootless podman and docker; it must fail on every
//! one. Each test prints its row of the probe × engine table
//! (`| probe | rootful podman | rootless podman | docker |`), and appends it to the file
//! `KANIBAKO_ESCAPE_TABLE` names, if set, so a run can collect the whole table.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Flavour, session_env, tag};
use crate::support::{Env, Run};

#[path = "escape_net.rs"]
mod net;

const FLAVOURS: [Flavour; 3] = [
    Flavour::RootfulPodman,
    Flavour::RootlessPodman,
    Flavour::Docker,
];

/// What one probe found on one engine: held (with the evidence), or not.
type Outcome = Result<String, String>;

/// A box on `flavour` whose rig is the test rig, or `None` (skip) where the engine is
/// not set up.
fn a_box(flavour: Flavour, what: &str) -> Option<(Env, PathBuf)> {
    let (e, image) = session_env(flavour)?;
    e.run(
        &e.home,
        &["system", "config", &format!("box.image={image}")],
    )
    .ok();
    let p = e.dir(&format!("p/{what}{}", tag(flavour)));
    e.run(&p, &["create"]).ok();
    Some((e, p))
}

/// Said first by every probe script, so a probe that "fails" because the box never
/// ran is not taken for one that held.
const IN_BOX: &str = "kb-probe-in-box";

fn shell(e: &Env, p: &Path, script: &str) -> Run {
    e.run(
        p,
        &[
            "shell",
            "--",
            "sh",
            "-c",
            &format!("echo {IN_BOX}; {script}"),
        ],
    )
}

/// Whether the probe script ran in the box at all.
fn ran(r: &Run) -> bool {
    r.stdout.lines().next() == Some(IN_BOX)
}

/// The last thing a run said (its error, else its output), for the table.
fn said(r: &Run) -> String {
    let last = |text: &str| {
        text.lines()
            .rev()
            .find(|l| {
                let l = l.trim();
                !l.is_empty()
                    && l != IN_BOX
                    && !l.starts_with("Warning:")
                    && !l.starts_with("hint:")
                    && !l.contains("cgroups V1")
            })
            .map(|l| l.trim().chars().take(70).collect::<String>())
    };
    last(&r.stderr)
        .or_else(|| last(&r.stdout))
        .unwrap_or_default()
}

fn flavour_name(f: Flavour) -> &'static str {
    match f {
        Flavour::RootfulPodman => "rootful podman",
        Flavour::RootlessPodman => "rootless podman",
        Flavour::Docker => "docker",
    }
}

/// A directory name for `probe`'s boxes: each probe has its own, so probes running
/// side by side never share a box (or its container).
fn slug(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// Run `check` on every engine, print the row, and fail if any engine let it through.
fn probe(name: &str, check: impl Fn(Flavour) -> Option<Outcome>) {
    let mut row = format!("| {name} |");
    let mut escaped = Vec::new();
    for f in FLAVOURS {
        let cell = match check(f) {
            None => "skipped".to_owned(),
            Some(Ok(evidence)) => format!("held: {evidence}"),
            Some(Err(evidence)) => {
                escaped.push(format!("{}: {evidence}", flavour_name(f)));
                format!("ESCAPED: {evidence}")
            }
        };
        let _ = write!(row, " {} |", cell.replace('|', "/"));
    }
    eprintln!("{row}");
    if let Ok(file) = std::env::var("KANIBAKO_ESCAPE_TABLE")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
    {
        let _ = writeln!(f, "{row}");
    }
    assert!(escaped.is_empty(), "{name} escaped on {escaped:?}");
}

/// The usual probe: `script` must fail in a fresh box.
fn denied(name: &str, script: &str) {
    probe(name, |f| {
        let (e, p) = a_box(f, &slug(name))?;
        let r = shell(&e, &p, script);
        Some(if !ran(&r) {
            Err(format!("the box did not run: {}", said(&r)))
        } else if r.code != 0 {
            Ok(said(&r))
        } else {
            Err(format!("exit 0: {}", said(&r)))
        })
    });
}

#[test]
fn escape_mount_tmpfs() {
    denied(
        "mount a tmpfs",
        "mkdir -p /tmp/x && mount -t tmpfs none /tmp/x",
    );
}

#[test]
fn escape_mount_proc() {
    denied("mount proc", "mkdir -p /tmp/x && mount -t proc proc /tmp/x");
}

#[test]
fn escape_bind_mount() {
    denied(
        "bind-mount a directory",
        "mkdir -p /tmp/x && mount --bind /home/agent /tmp/x",
    );
}

#[test]
fn escape_load_a_kernel_module() {
    denied(
        "load a kernel module",
        "head -c 4096 /dev/zero > /tmp/m.ko && insmod /tmp/m.ko",
    );
}

#[test]
fn escape_change_the_hostname() {
    denied("change the hostname", "hostname evil");
}

#[test]
fn escape_raw_socket_ping() {
    denied("raw socket (ping)", "ping -c1 -W1 127.0.0.1");
}

#[test]
fn escape_su_to_root() {
    denied("su to root", "su -c 'id -u' root </dev/null");
}

#[test]
fn escape_chown_to_root() {
    denied("chown a file to root", "touch /tmp/f && chown 0:0 /tmp/f");
}

#[test]
fn escape_setuid_copy_made_in_the_box() {
    denied(
        "make a setuid-root copy",
        "cp /bin/busybox ~/bb && chmod 4755 ~/bb && chown 0 ~/bb",
    );
}

#[test]
fn escape_mknod_a_device() {
    denied("mknod a device", "mknod /tmp/null c 1 3");
}

#[test]
fn escape_read_proc_kcore() {
    denied(
        "read /proc/kcore",
        "head -c1 /proc/kcore > /tmp/k && [ -s /tmp/k ]",
    );
}

#[test]
fn escape_read_host_memory_device() {
    denied(
        "read /dev/mem or a host disk",
        "head -c1 /dev/mem || ls /dev/sd* /dev/nvme* /dev/vd* /dev/xvd* 2>/dev/null | grep .",
    );
}

#[test]
fn escape_write_host_sys() {
    denied("write to /sys", "echo 1 > /sys/kernel/mm/ksm/run");
}

#[test]
fn escape_write_proc_sys() {
    denied(
        "write /proc/sys or sysrq",
        "echo 1 > /proc/sys/net/ipv4/ip_forward || echo h > /proc/sysrq-trigger",
    );
}

#[test]
fn escape_unshare_a_mount_namespace() {
    denied("unshare -m", "unshare -m true");
}

#[test]
fn escape_unshare_a_network_namespace() {
    denied("unshare -n", "unshare -n true");
}

#[test]
fn escape_set_the_clock() {
    denied("set the system time", "date -s 2000-01-01");
}

#[test]
fn escape_chroot() {
    denied("chroot", "chroot / true");
}

/// docker's default seccomp profile refuses a new user namespace; podman's allows it
/// (podman in a box needs it). Where one can be made, its "root" must gain nothing
/// outside it: no host file, no device, no capability in the box's own namespace.
#[test]
fn escape_unshare_a_user_namespace() {
    probe("unshare -U gains nothing", |f| {
        let (e, p) = a_box(f, "unshareugainsnothing")?;
        let r = shell(&e, &p, "unshare -U true");
        if !ran(&r) {
            return Some(Err(format!("the box did not run: {}", said(&r))));
        }
        if r.code != 0 {
            return Some(Ok(said(&r)));
        }
        let r = shell(
            &e,
            &p,
            "unshare -Ur sh -c 'mknod /tmp/n c 1 3 || touch ~/share-ro/x || hostname evil || head -c1 /proc/kcore' && echo gained",
        );
        Some(if r.code != 0 && !r.stdout.contains("gained") {
            Ok(format!("allowed, gains nothing: {}", said(&r)))
        } else {
            Err(said(&r))
        })
    });
}

#[test]
fn escape_no_capability_and_no_new_privileges() {
    probe("capabilities and no_new_privs", |f| {
        let (e, p) = a_box(f, "capabilitiesandnonewprivs")?;
        let r = shell(
            &e,
            &p,
            "grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status",
        );
        let all_zero = ["CapEff", "CapPrm", "CapBnd", "CapAmb"].iter().all(|c| {
            r.stdout
                .lines()
                .any(|l| l.starts_with(c) && l.ends_with("0000000000000000"))
        });
        let nnp = r
            .stdout
            .lines()
            .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1'));
        Some(if r.code == 0 && all_zero && nnp {
            Ok("no capability, NoNewPrivs 1".into())
        } else {
            Err(format!(
                "exit {}: {} {}",
                r.code,
                r.stdout.replace('\n', " "),
                said(&r)
            ))
        })
    });
}

/// A setuid-root binary placed in the workspace from the host (as a cloned repository
/// could carry one, or a host process could make one): run in the box, it stays the
/// agent. The file belongs to whichever host uid is the box's root.
#[test]
fn escape_setuid_root_binary_from_the_host() {
    probe("setuid-root binary", |f| {
        let (e, p) = a_box(f, "setuidrootbinary")?;
        let map = shell(&e, &p, "cat /proc/self/uid_map").ok();
        let outer: u32 = map
            .stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&"0"))
            .and_then(|w| w[1].parse().ok())
            .expect("a line for the box's root");
        let host_root = match f {
            // rootless: the box's ids are the user namespace's, whose 1.. are the
            // user's sub-ids
            Flavour::RootlessPodman => {
                first_subuid(&std::env::var("KANIBAKO_TEST_USER").unwrap()) + outer - 1
            }
            _ => outer,
        };
        let bin = p.join("suid-id");
        std::fs::copy("/usr/bin/id", &bin).unwrap();
        std::os::unix::fs::chown(&bin, Some(host_root), Some(host_root)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let r = shell(&e, &p, "ls -ln ~/workspace/suid-id; ~/workspace/suid-id -u");
        let euid = r.stdout.lines().last().unwrap_or("").trim().to_owned();
        let listed: Vec<&str> = r
            .stdout
            .lines()
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let setuid_root = listed.first() == Some(&"-rwsr-xr-x") && listed.get(2) == Some(&"0");
        Some(if setuid_root && euid != "0" && !euid.is_empty() {
            Ok(format!("root-owned setuid file, runs as uid {euid}"))
        } else if !setuid_root {
            Err(format!(
                "not set up as setuid root: {}",
                r.stdout.replace('\n', " ")
            ))
        } else {
            Err(format!("euid {euid}"))
        })
    });
}

fn first_subuid(user: &str) -> u32 {
    std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut w = l.split(':');
            (w.next() == Some(user)).then(|| w.next().unwrap().parse().unwrap())
        })
        .expect("the test user has sub-ids")
}

/// With `box.pids_limit: 64` (set for all boxes), a fork bomb stops with EAGAIN near 64
/// processes; on a cgroups-v1 host rootless podman cannot apply a pids limit (it says
/// so), and the nproc rlimit stops it there. Afterwards the host forks as before and
/// nothing of the box is left running.
#[test]
fn escape_fork_bomb_stops_at_the_pids_limit() {
    probe("fork bomb (box.pids_limit 64)", |f| {
        let (e, p) = a_box(f, "forkbombboxpidslimit64")?;
        e.run(&p, &["system", "config", "box.pids_limit=64"]).ok();
        let r = shell(
            &e,
            &p,
            "( i=0; while [ $i -lt 1500 ]; do sleep 60 & i=$((i+1)); echo $i > /tmp/n; done ) 2>/tmp/err; \
             kill -9 -1 2>/dev/null; sleep 1; echo started=$(cat /tmp/n); head -1 /tmp/err; \
             grep -i 'max processes' /proc/self/limits",
        );
        let started: u32 = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("started="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(9999);
        let eagain = r.stdout.contains("fork") || r.stdout.contains("temporarily unavailable");
        let host_ok = std::process::Command::new("true")
            .status()
            .is_ok_and(|s| s.success());
        let bound = if f == Flavour::RootlessPodman && r.stderr.contains("cgroups V1") {
            1100
        } else {
            64
        };
        Some(if started < bound && eagain && host_ok {
            Ok(format!(
                "stopped after {started} processes ({})",
                if bound == 64 {
                    "pids limit"
                } else {
                    "nproc rlimit; cgroups v1 rootless ignores --pids-limit"
                }
            ))
        } else {
            Err(format!("started {started}: {}", said(&r)))
        })
    });
}

/// No engine socket is in the box, at any of the usual places or where the host's is.
#[test]
fn escape_reach_the_engine_socket() {
    probe("reach the engine socket", |f| {
        let (e, p) = a_box(f, "reachtheenginesocket")?;
        let mut places = vec![
            "/run/docker.sock".to_owned(),
            "/var/run/docker.sock".to_owned(),
            "/run/podman/podman.sock".to_owned(),
            "/run/user/1000/podman/podman.sock".to_owned(),
        ];
        if let Ok(h) = std::env::var("DOCKER_HOST") {
            places.push(h.trim_start_matches("unix://").to_owned());
        }
        let script = format!(
            "for s in {}; do socat -u OPEN:/dev/null UNIX-CONNECT:$s 2>/dev/null && echo reached $s; done; \
             find / -xdev -type s 2>/dev/null | grep -v '^/proc' | grep . && echo found; exit 0",
            places.join(" ")
        );
        let r = shell(&e, &p, &script);
        Some(
            if r.code == 0 && !r.stdout.contains("reached") && !r.stdout.contains("found") {
                Ok("no socket present or connectable".into())
            } else {
                Err(r.stdout.replace('\n', " "))
            },
        )
    });
}

/// Another box's home: what it wrote there is nowhere in this box.
#[test]
fn escape_read_another_box_s_home() {
    probe("read another box's home", |f| {
        let (e, p) = a_box(f, "readanotherboxshome")?;
        let other = e.dir(&format!("p/other{}", tag(f)));
        e.run(&other, &["create"]).ok();
        let token = format!("kb-secret-{}", tag(f));
        shell(&e, &other, &format!("echo {token} > ~/secret")).ok();
        let r = shell(
            &e,
            &p,
            &format!(
                "grep -rs {token} /home /tmp /run /mnt /opt /srv /var /root /etc /media 2>/dev/null && echo found; exit 0"
            ),
        );
        Some(if r.code == 0 && !r.stdout.contains("found") {
            Ok("not reachable".into())
        } else {
            Err(r.stdout.replace('\n', " "))
        })
    });
}

/// A box mounts only its own comms mailbox, never all of `system.path.comms`, so it
/// cannot read what another box was sent (upstream shared it: spec §0b defect 6).
#[test]
fn escape_read_another_box_s_comms() {
    probe("read another box's comms", |f| {
        let (e, p) = a_box(f, "readanotherboxscomms")?;
        let other = e.dir(&format!("p/othercomms{}", tag(f)));
        e.run(&other, &["create"]).ok();
        let token = format!("kb-mail-{}", tag(f));
        shell(
            &e,
            &other,
            &format!("echo {token} > ~/comms/mailbox/$KANIBAKO_NAME/msg"),
        )
        .ok();
        // The other box did write its own mail (so the probe below is not vacuous).
        let name = other.file_name().unwrap().to_string_lossy().into_owned();
        let mail = e.data().join(format!("comms/mailbox/{name}/msg"));
        if !std::fs::read_to_string(&mail).is_ok_and(|m| m.contains(&token)) {
            return Some(Err(format!(
                "the other box could not write {}",
                mail.display()
            )));
        }
        let r = shell(
            &e,
            &p,
            &format!("grep -rs {token} ~/comms && echo found; exit 0"),
        );
        Some(if !r.stdout.contains("found") {
            Ok("not readable".into())
        } else {
            Err("another box's mail is readable".into())
        })
    });
}

/// The vault's share-ro is read-only, and so is its copy in the workspace.
#[test]
fn escape_write_the_vault_s_share_ro() {
    denied(
        "write the vault's share-ro",
        "touch ~/share-ro/x || touch ~/workspace/vault/ro/x",
    );
}

/// The box has its own process namespace: no host process is visible, so none can be
/// traced or signalled.
#[test]
fn escape_see_or_trace_a_host_process() {
    probe("see or ptrace a host process", |f| {
        let (e, p) = a_box(f, "seeorptraceahostprocess")?;
        let me = std::process::id();
        let r = shell(
            &e,
            &p,
            &format!(
                "n=$(ls /proc | grep -c '^[0-9]'); echo procs=$n; a=e2; b=e-; \
                 grep -l \"$a$b\" /proc/[0-9]*/cmdline 2>/dev/null && echo found; \
                 [ -e /proc/{me}/cmdline ] && grep -q \"$a$b\" /proc/{me}/cmdline && echo found; exit 0"
            ),
        );
        let n: u32 = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("procs="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(9999);
        Some(if !r.stdout.contains("found") && n < 20 {
            Ok(format!("{n} processes visible, all the box's"))
        } else {
            Err(r.stdout.replace('\n', " "))
        })
    });
}

/// `box.cap_add: [NET_RAW]` set at the user's (system) level gives the agent a raw
/// socket on podman, which passes added capabilities on to a non-root user; docker
/// gives them to a container's root only, and kanibako says so.
#[test]
fn escape_cap_add_from_the_user_level_is_obeyed() {
    probe("box.cap_add NET_RAW (user level)", |f| {
        let (e, p) = a_box(f, "boxcapaddnetrawuserlevel")?;
        e.run(&p, &["system", "config", "box.cap_add=NET_RAW"]).ok();
        let r = shell(&e, &p, "ping -c1 -W1 127.0.0.1 >/dev/null && echo pinged");
        Some(match f {
            Flavour::Docker
                if ran(&r)
                    && r.code != 0
                    && r.stderr.contains("box.cap_add (NET_RAW) has no effect") =>
            {
                Ok("no effect for a non-root user (warned)".into())
            }
            Flavour::Docker => Err(format!("unexpected: {}", said(&r))),
            _ if r.stdout.contains("pinged") => Ok("ping works".into()),
            _ => Err(format!("ping failed: {}", said(&r))),
        })
    });
}

/// The same `box.cap_add` from a standalone box's own file (which the box or a cloned
/// repository can write) is ignored, with a warning naming the file.
#[test]
fn escape_cap_add_from_the_box_s_own_file_is_ignored() {
    probe("box.cap_add NET_RAW (project.yaml)", |f| {
        let (e, _) = a_box(f, "boxcapaddnetrawprojectyaml")?;
        let p = e.dir(&format!("p/solo{}", tag(f)));
        e.run(&p, &["create", "--standalone"]).ok();
        let file = p.join(".kanibako/project.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{text}box:\n  cap_add: [NET_RAW]\n")).unwrap();
        let r = shell(
            &e,
            &p,
            "grep CapBnd /proc/self/status; ping -c1 -W1 127.0.0.1",
        );
        let warned = r.stderr.contains("Warning: ignoring box.cap_add in ");
        Some(
            if ran(&r) && r.code != 0 && warned && r.stdout.contains("0000000000000000") {
                Ok("ignored, warned".into())
            } else {
                Err(format!("warned={warned}: {}", said(&r)))
            },
        )
    });
}

/// `box.network: none`: no outbound TCP, no DNS.
#[test]
fn escape_network_none_blocks_tcp() {
    probe("box.network none: TCP out", |f| {
        let (e, p) = a_box(f, "boxnetworknonetcpout")?;
        e.run(&p, &["box", "config", "box.network=none"]).ok();
        let r = shell(
            &e,
            &p,
            "nc -w 3 1.1.1.1 80 </dev/null && echo connected; socat -T3 -u OPEN:/dev/null TCP:1.1.1.1:443 && echo connected; exit 1",
        );
        let ifaces = shell(&e, &p, "ls /sys/class/net | tr '\\n' ' '");
        Some(
            if ran(&r) && r.code != 0 && !r.stdout.contains("connected") {
                Ok(format!(
                    "{}; interfaces: {}",
                    said(&r),
                    ifaces.stdout.lines().last().unwrap_or("").trim()
                ))
            } else {
                Err(said(&r))
            },
        )
    });
}

#[test]
fn escape_network_none_blocks_dns() {
    probe("box.network none: DNS", |f| {
        let (e, p) = a_box(f, "boxnetworknonedns")?;
        e.run(&p, &["box", "config", "box.network=none"]).ok();
        let r = shell(
            &e,
            &p,
            "nslookup -timeout=3 example.com 2>&1 | grep -A3 '^Name:' | grep -q Address && echo resolved; \
             nslookup -timeout=3 example.com 1.1.1.1 2>&1 | grep -A3 '^Name:' | grep -q Address && echo resolved; exit 0",
        );
        Some(if ran(&r) && !r.stdout.contains("resolved") {
            Ok("no answer".into())
        } else {
            Err(r.stdout.replace('\n', " "))
        })
    });
}

/// A loopback origin on the host that answers every request with one line; the box
/// reaches it only as `allowed.test`, pinned to 127.0.0.1 by the host's
/// `KANIBAKO_EGRESS_PIN` (the proxy refuses loopback for any other name or literal).
fn loopback_origin() -> u16 {
    use std::io::{Read as _, Write as _};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let body = "hello from allowed.test\n";
                let _ = write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// `box.network: allowlist`: the box reaches an allowed name only through kanibako's
/// proxy (CONNECT by the mounted client, and busybox wget's absolute-form GET through
/// `http_proxy`), while a name without a rule and an IP literal are refused, direct
/// TCP has no route, and `box net log` shows each decision.
#[test]
fn escape_allowlist_only_allowed_names_through_the_proxy() {
    let port = loopback_origin();
    probe(
        "box.network allowlist: allowed name via proxy; others refused",
        |f| {
            let (mut e, p) = a_box(f, "allowlistproxy")?;
            e.set("KANIBAKO_EGRESS_PIN", "allowed.test=127.0.0.1");
            e.run(&p, &["box", "config", "box.network=allowlist"]).ok();
            e.run(
                &p,
                &["box", "config", &format!("box.allow=allowed.test:{port}")],
            )
            .ok();
            // the test rig lacks the libgcc_s the kanibako binary links
            let lib = p.join(".kblib");
            std::fs::create_dir_all(&lib).unwrap();
            std::fs::copy(
                "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
                lib.join("libgcc_s.so.1"),
            )
            .unwrap();
            e.chown_all(&lib);
            let k = "/home/agent/.local/bin/kanibako";
            let shell = |e: &Env, p: &Path, script: &str| {
                e.run(
                    p,
                    &[
                        "shell",
                        "-e",
                        "LD_LIBRARY_PATH=/home/agent/workspace/.kblib",
                        "--",
                        "sh",
                        "-c",
                        &format!("echo {IN_BOX}; {script}"),
                    ],
                )
            };
            let r = shell(
                &e,
                &p,
                &format!(
                    "printf 'GET / HTTP/1.0\\r\\nHost: allowed.test\\r\\n\\r\\n' | {k} egress-connect allowed.test {port}; echo connect-allowed=$?; \
                 wget -q -O- http://allowed.test:{port}/ ; echo wget-allowed=$?; \
                 {k} egress-connect forbidden.test 443 </dev/null; echo connect-forbidden=$?; \
                 {k} egress-connect 1.1.1.1 443 </dev/null; echo connect-literal=$?; \
                 {k} egress-connect localhost {port} </dev/null; echo connect-localhost=$?; \
                 nc -w 3 1.1.1.1 80 </dev/null; echo direct=$?"
                ),
            );
            let out = &r.stdout;
            let log = e.run(&p, &["box", "net", "log", "--json"]);
            let records: Vec<serde_json::Value> =
                serde_json::from_str::<serde_json::Value>(&log.stdout)
                    .ok()
                    .and_then(|v| serde_json::from_value(v["records"].clone()).ok())
                    .unwrap_or_default();
            let decided = |host: &str, decision: &str| {
                records
                    .iter()
                    .any(|r| r["host"] == host && r["decision"] == decision)
            };
            let table = e.run(&p, &["box", "net", "log"]);
            let reached = out.matches("hello from allowed.test").count();
            let ok = ran(&r)
                && reached == 2
                && out.contains("connect-allowed=0")
                && out.contains("wget-allowed=0")
                && !out.contains("connect-forbidden=0")
                && !out.contains("connect-literal=0")
                && !out.contains("connect-localhost=0")
                && !out.contains("direct=0")
                && decided("allowed.test", "allow")
                && decided("forbidden.test", "deny")
                && decided("1.1.1.1", "deny")
                && decided("localhost", "deny")
                && table.stdout.contains("forbidden.test:443");
            let evidence = format!(
                "reached {reached}/2; {}; {} log records",
                out.lines()
                    .filter(|l| l.contains('='))
                    .collect::<Vec<_>>()
                    .join(" "),
                records.len()
            );
            Some(if ok {
                Ok(evidence)
            } else {
                Err(format!(
                    "{evidence}; stderr: {}; log: {}",
                    said(&r),
                    log.stdout.replace('\n', " ")
                ))
            })
        },
    );
}

/// Under `allowlist`, the proxy's death takes the box offline, never online: with the
/// box's hub killed (supervisor and worker) mid-session, an allowed name that was
/// reachable is no longer, and nothing else is either.
#[test]
fn escape_allowlist_fails_closed_when_the_proxy_dies() {
    let port = loopback_origin();
    probe("box.network allowlist: proxy killed, box offline", |f| {
        let (mut e, p) = a_box(f, "allowlistfailclosed")?;
        e.set("KANIBAKO_EGRESS_PIN", "allowed.test=127.0.0.1");
        e.run(&p, &["box", "config", "box.network=allowlist"]).ok();
        e.run(
            &p,
            &["box", "config", &format!("box.allow=allowed.test:{port}")],
        )
        .ok();
        let lib = p.join(".kblib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::copy(
            "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
            lib.join("libgcc_s.so.1"),
        )
        .unwrap();
        e.chown_all(&lib);
        let get = format!("wget -q -O- http://allowed.test:{port}/");
        let script = format!(
            "echo {IN_BOX}; {get}; echo before=$?; : > /home/agent/workspace/.ready; \
             n=0; while [ ! -e /home/agent/workspace/.killed ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done; \
             {get}; echo after=$?; nc -w 3 1.1.1.1 80 </dev/null; echo direct=$?"
        );
        let child = e
            .cmd(
                &p,
                &[
                    "shell",
                    "-e",
                    "LD_LIBRARY_PATH=/home/agent/workspace/.kblib",
                    "--",
                    "sh",
                    "-c",
                    &script,
                ],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !p.join(".ready").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let info = e.run(&p, &["box", "info", "--json"]);
        let hub = serde_json::from_str::<serde_json::Value>(&info.stdout)
            .ok()
            .and_then(|v| v["hub"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let pid = hub
            .split("pid ")
            .nth(1)
            .and_then(|s| s.trim_end_matches(')').parse::<i32>().ok());
        if let Some(pid) = pid {
            // the supervisor; its worker goes with it
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        std::fs::write(p.join(".killed"), "").unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = stdout.lines().filter(|l| l.contains('=')).collect();
        let evidence = format!("hub {hub:?}; {}", lines.join(" "));
        Some(
            if pid.is_some()
                && stdout.contains("before=0")
                && stdout.contains("after=")
                && !stdout.contains("after=0")
                && !stdout.contains("direct=0")
            {
                Ok(evidence)
            } else {
                Err(format!(
                    "{evidence}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr).replace('\n', " ")
                ))
            },
        )
    });
}

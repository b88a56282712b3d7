//! `deploy/systemd/`: the units of mtls-ca, mtls-server, mtls-proxy and mtls-agent.
//!
//! * `systemd-analyze verify` on every unit as shipped, with only the program path changed to
//!   this build's (verify refuses an ExecStart whose program does not exist); any line it
//!   prints fails the test (it exits 0 on unknown keys and bad values, only warning). And
//!   `systemd-analyze security --offline` keeps the hardening from eroding.
//! * The hardening and secret handling the units promise (docs/deploy.md), field by field.
//! * Each unit's ExecStart, expanded the way systemd expands it (`%S`, `%t`, `%d`, `${VAR}`,
//!   `$VAR` from the shipped environment file), is accepted by its program's parser; the
//!   proxy's configuration file passes `mtls-proxy check`.
//! * The CA's, the server's and the agent's command lines, with only the site-specific values
//!   (addresses, the CA's URL and fingerprint, the directories systemd provides) replaced, start
//!   for real: the server and the agent enroll with the CA the CA unit started, and each one
//!   exits 0 on SIGTERM within the unit's TimeoutStopSec (the agent while a workload holds a
//!   Workload API stream open).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::services::{http_get, START_TIMEOUT};
use testkit::Proc;

use super::common::{assert_accepted, deploy_dir, flag_value, read, workspace_programs};
use crate::programs;

/// The units shipped, and the program each one runs.
const UNITS: &[(&str, &str)] = &[
    ("mtls-ca.service", "mtls-ca"),
    ("mtls-server.service", "mtls-server"),
    ("mtls-proxy.service", "mtls-proxy"),
    ("mtls-agent.service", "mtls-agent"),
];

/// The identity `mtls-agent write` holds a stream for while the agent is stopped.
const WORKLOAD_ID: &str = "spiffe://mesh.local/service/files";

/// The system calls that use CAP_SYS_PTRACE on another process (the agent unit refuses them).
const PTRACE_CALLS: &[&str] = &[
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "process_madvise",
];

/// Where the units expect the programs (`cargo install --root /usr/local`).
const INSTALLED: &str = "/usr/local/bin/";

/// `systemd-analyze security` exposure, 0 to 100 (it prints 0.0 to 10.0). The units score 1.4
/// (the agent 2.1, for CAP_SYS_PTRACE and its visible /proc) with systemd 252; 3.0 leaves room
/// for newer systemd versions, which weigh more settings, and still fails a unit that loses a
/// block of its hardening (a unit without any scores 9.6).
const MAX_EXPOSURE: u32 = 30;

/// One unit file: (section, key, value) in file order.
struct Unit {
    name: &'static str,
    program: &'static str,
    entries: Vec<(String, String, String)>,
}

impl Unit {
    fn load(name: &'static str, program: &'static str) -> Unit {
        let text = read(&format!("systemd/{name}"));
        let mut section = String::new();
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            assert!(
                !line.ends_with('\\'),
                "{name} line {}: continuation lines are not read by this check",
                n + 1
            );
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{name} line {}: not KEY=VALUE: {line}", n + 1));
            entries.push((section.clone(), key.to_string(), value.to_string()));
        }
        Unit {
            name,
            program,
            entries,
        }
    }

    /// Every value of `key` in [Service].
    fn all(&self, key: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(s, k, _)| s == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// The one value of `key` in [Service].
    fn one(&self, key: &str) -> &str {
        match self.all(key).as_slice() {
            [v] => v,
            other => panic!("{}: [Service] {key}= set {} times", self.name, other.len()),
        }
    }

    fn is_agent(&self) -> bool {
        self.program == "mtls-agent"
    }

    /// The settings of the unit's EnvironmentFile= (the shipped file of the same name under
    /// deploy/systemd/), or none.
    fn environment(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for file in self.all("EnvironmentFile") {
            let file = file.strip_prefix('-').unwrap_or(file);
            let base = Path::new(file).file_name().unwrap().to_str().unwrap();
            let text = read(&format!("systemd/{base}"));
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (k, v) = line
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{base}: not KEY=VALUE: {line}"));
                assert!(
                    !v.contains(['"', '\'', '\\']),
                    "{base}: {k}: quotes and escapes are not read by this check: {v}"
                );
                env.insert(k.to_string(), v.to_string());
            }
        }
        env
    }

    /// ExecStart= as systemd runs it: the program and its arguments, with `${VAR}` replaced by
    /// the value (one argument), a lone `$VAR` split on whitespace into arguments, and the
    /// specifiers `%S` (state), `%t` (runtime) and `%d` (credentials) replaced by `dirs`.
    fn command(&self, env: &BTreeMap<String, String>, dirs: &Dirs) -> (String, Vec<String>) {
        let line = self.one("ExecStart");
        assert!(
            !line.contains(['"', '\'', '\\']),
            "{}: quotes and escapes in ExecStart are not read by this check",
            self.name
        );
        let lookup = |var: &str| -> &str {
            env.get(var).map(String::as_str).unwrap_or_else(|| {
                panic!(
                    "{}: ExecStart uses ${var}, which its environment file does not set",
                    self.name
                )
            })
        };
        let mut words: Vec<String> = Vec::new();
        for word in line.split_whitespace() {
            if let Some(var) = word.strip_prefix('$').filter(|v| !v.starts_with('{')) {
                words.extend(lookup(var).split_whitespace().map(str::to_string));
                continue;
            }
            let mut out = String::new();
            let mut rest = word;
            while let Some(i) = rest.find(['$', '%']) {
                out.push_str(&rest[..i]);
                let tail = &rest[i..];
                if let Some(var_and_rest) = tail.strip_prefix("${") {
                    let (var, after) = var_and_rest.split_once('}').unwrap();
                    out.push_str(lookup(var));
                    rest = after;
                } else {
                    let spec = tail.get(..2).unwrap_or(tail);
                    out.push_str(&dirs.specifier(spec, self.name).display().to_string());
                    rest = &tail[spec.len()..];
                }
            }
            out.push_str(rest);
            words.push(out);
        }
        let program = words.remove(0);
        (program, words)
    }
}

/// What systemd's specifiers stand for: the system's directories, or a test's.
struct Dirs {
    state: PathBuf,
    runtime: PathBuf,
    credentials: PathBuf,
}

impl Dirs {
    /// A system service's directories, `<unit>`'s credentials.
    fn system(unit: &str) -> Dirs {
        Dirs {
            state: "/var/lib".into(),
            runtime: "/run".into(),
            credentials: Path::new("/run/credentials").join(unit),
        }
    }

    fn specifier(&self, spec: &str, unit: &str) -> &Path {
        match spec {
            "%S" => &self.state,
            "%t" => &self.runtime,
            "%d" => &self.credentials,
            other => panic!("{unit}: specifier {other} is not read by this check"),
        }
    }
}

fn units() -> Vec<Unit> {
    let shipped: Vec<String> = std::fs::read_dir(deploy_dir().join("systemd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".service"))
        .collect();
    for name in &shipped {
        assert!(
            UNITS.iter().any(|(u, _)| u == name),
            "deploy/systemd/{name} is not checked: add it to UNITS"
        );
    }
    UNITS.iter().map(|(u, p)| Unit::load(u, p)).collect()
}

fn systemd_analyze() -> Command {
    let found = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing: install the Debian package systemd (.ci/run does)"
    );
    Command::new("systemd-analyze")
}

/// The units as shipped, with the program path of this build, in a fresh directory.
fn units_with_built_programs(dir: &Path) -> Vec<PathBuf> {
    let bin_dir = format!("{}/", programs::bin_dir().display());
    UNITS
        .iter()
        .map(|(name, _)| {
            let shipped = read(&format!("systemd/{name}"));
            assert!(shipped.contains(INSTALLED), "{name} runs no {INSTALLED}...");
            let path = dir.join(name);
            std::fs::write(&path, shipped.replace(INSTALLED, &bin_dir)).unwrap();
            path
        })
        .collect()
}

#[test]
fn every_unit_passes_systemd_analyze_verify_and_security() {
    programs::require(&UNITS.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    for path in units_with_built_programs(dir.path()) {
        let out = systemd_analyze()
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && printed.trim().is_empty(),
            "systemd-analyze verify {}: {}\n{printed}",
            path.display(),
            out.status
        );

        let out = systemd_analyze()
            .args([
                "security",
                "--offline=yes",
                "--no-pager",
                &format!("--threshold={MAX_EXPOSURE}"),
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: exposure above {}.{}:\n{}{}",
            path.display(),
            MAX_EXPOSURE / 10,
            MAX_EXPOSURE % 10,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The check can fail: a misspelt key is only a warning for systemd, and fails here.
    let bad = dir.path().join("mtls-ca.service");
    let text = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(&bad, text.replace("ProtectHome=", "ProtectHomes=")).unwrap();
    let out = systemd_analyze()
        .args(["verify", "--man=no"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ProtectHomes"),
        "systemd-analyze verify did not report a misspelt key: {out:?}"
    );
}

#[test]
fn every_unit_is_hardened_and_keeps_the_join_token_off_the_command_line() {
    let programs = workspace_programs();
    for unit in units() {
        let name = unit.name;
        let (program, args) = unit.command(&unit.environment(), &Dirs::system(name));
        let base = program
            .strip_prefix(INSTALLED)
            .unwrap_or_else(|| panic!("{name}: runs {program}, not a program in {INSTALLED}"));
        assert_eq!(base, unit.program, "{name} runs {program}");
        assert!(
            programs.iter().any(|p| p == base),
            "{name}: {base} is no [[bin]]"
        );

        // The hardening of docs/deploy.md.
        for (key, value) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("RestrictSUIDSGID", "yes"),
            ("MemoryDenyWriteExecute", "yes"),
            ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
            ("KillSignal", "SIGTERM"),
            ("Type", "exec"),
        ] {
            assert_eq!(unit.one(key), value, "{name}: {key}=");
        }
        assert!(
            unit.all("SystemCallFilter").contains(&"@system-service"),
            "{name}: SystemCallFilter=@system-service"
        );
        let dedicated = unit.all("User").first().is_some_and(|u| *u != "root");
        assert!(
            unit.all("DynamicUser") == ["yes"] || dedicated,
            "{name}: neither DynamicUser=yes nor a dedicated User="
        );
        // The agent keeps one capability, for /proc/<pid>/exe of other users' workloads
        // (the unit's comment and docs/deploy.md say why); nobody else keeps any.
        let caps = if unit.is_agent() {
            "CAP_SYS_PTRACE"
        } else {
            ""
        };
        assert_eq!(unit.one("CapabilityBoundingSet"), caps, "{name}");
        assert_eq!(unit.one("AmbientCapabilities"), caps, "{name}");
        if unit.is_agent() {
            // What CAP_SYS_PTRACE would allow beyond opening /proc/<pid>/exe is refused.
            let denied: Vec<&str> = unit
                .all("SystemCallFilter")
                .iter()
                .filter_map(|f| f.strip_prefix('~'))
                .flat_map(str::split_whitespace)
                .collect();
            for call in PTRACE_CALLS {
                assert!(
                    denied.contains(call),
                    "{name}: SystemCallFilter=~ lacks {call}"
                );
            }
            // Both would break attestation of other users' processes.
            assert!(
                unit.all("PrivateUsers").iter().all(|v| *v != "yes"),
                "{name}"
            );
            assert!(
                unit.all("ProtectProc").iter().all(|v| *v != "invisible"),
                "{name}"
            );
            assert_eq!(unit.one("RuntimeDirectory"), "mtls-mesh", "{name}");
            let socket = flag_value(&args, "--socket").unwrap();
            assert_eq!(socket, "unix:///run/mtls-mesh/agent.sock", "{name}");
        } else {
            assert_eq!(unit.one("PrivateUsers"), "yes", "{name}");
            assert_eq!(unit.one("ProtectProc"), "invisible", "{name}");
        }

        // Graceful stop: SIGTERM drains for --drain (default 10s), then open connections get
        // a 5 s close grace; systemd must not SIGKILL before.
        let drain = flag_value(&args, "--drain").map_or(Duration::from_secs(10), |d| {
            humantime::parse_duration(d).unwrap()
        });
        let stop = humantime::parse_duration(unit.one("TimeoutStopSec")).unwrap();
        assert!(
            stop >= drain + Duration::from_secs(5),
            "{name}: TimeoutStopSec={stop:?} is shorter than the drain {drain:?} + 5 s"
        );

        // Secrets: a join token is never an argument or an environment variable; it comes from
        // a file systemd copies in with LoadCredential=.
        assert!(
            !args.iter().any(|a| a == "--join-token"),
            "{name}: --join-token"
        );
        assert!(
            !unit.environment().contains_key("MTLS_JOIN_TOKEN")
                && unit
                    .all("Environment")
                    .iter()
                    .all(|e| !e.contains("MTLS_JOIN_TOKEN")),
            "{name}: MTLS_JOIN_TOKEN"
        );
        let token_file = match unit.program {
            "mtls-ca" => None,
            "mtls-proxy" => {
                let config = flag_value(&args, "--config").unwrap();
                Some(
                    proxy_config(config)["credentials"]["join_token_file"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            }
            _ => Some(flag_value(&args, "--join-token-file").unwrap().to_string()),
        };
        if let Some(token_file) = token_file {
            let credential = unit.one("LoadCredential");
            let (id, source) = credential.split_once(':').unwrap();
            assert_eq!(
                Path::new(&token_file),
                Dirs::system(name).credentials.join(id),
                "{name}: the token file is not the credential {id}"
            );
            assert!(
                source.starts_with("/etc/mtls-mesh/credentials/"),
                "{name}: LoadCredential={credential}"
            );
        }

        if unit.program == "mtls-ca" {
            assert_eq!(unit.one("StateDirectory"), "mtls-ca", "{name}");
            assert_eq!(unit.one("StateDirectoryMode"), "0700", "{name}");
            assert_eq!(flag_value(&args, "--data-dir"), Some("/var/lib/mtls-ca"));
        }
    }
}

/// The proxy's configuration file named by its unit, shipped as deploy/systemd/<name>.
fn proxy_config(installed: &str) -> toml::Table {
    let base = Path::new(installed).file_name().unwrap().to_str().unwrap();
    read(&format!("systemd/{base}")).parse().unwrap()
}

#[test]
fn every_units_command_line_is_accepted_by_its_program() {
    for unit in units() {
        let (_, args) = unit.command(&unit.environment(), &Dirs::system(unit.name));
        let origin = format!("deploy/systemd/{} ExecStart", unit.name);
        assert_accepted(&programs::by_name(unit.program), &args, &origin);
    }

    // The proxy's file, with `mtls-proxy check`: every key, value and credential setting.
    let unit = Unit::load("mtls-proxy.service", "mtls-proxy");
    let (_, args) = unit.command(&BTreeMap::new(), &Dirs::system(unit.name));
    let installed = flag_value(&args, "--config").unwrap();
    let base = Path::new(installed).file_name().unwrap().to_str().unwrap();
    let out = Command::new(programs::proxy())
        .args(["check", "--config"])
        .arg(deploy_dir().join("systemd").join(base))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().next().unwrap_or("").ends_with(": ok"),
        "mtls-proxy check --config deploy/systemd/{base}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts a unit's command line with `overrides` replacing settings of its environment file
/// and `dirs` standing for systemd's directories.
fn start_unit(unit: &Unit, overrides: &[(&str, String)], dirs: &Dirs) -> Proc {
    let mut env = unit.environment();
    for (k, v) in overrides {
        assert!(env.contains_key(*k), "{}: no {k} to override", unit.name);
        env.insert(k.to_string(), v.clone());
    }
    let (_, args) = unit.command(&env, dirs);
    let mut cmd = Command::new(programs::by_name(unit.program));
    cmd.args(&args)
        .env_remove("MTLS_CA_STORE")
        .env_remove("MTLS_CA_DATA_DIR")
        .env_remove("SPIFFE_ENDPOINT_SOCKET");
    Proc::spawn(unit.program, cmd)
}

/// SIGTERM, then the exit status within the unit's TimeoutStopSec (after which systemd would
/// kill the process).
fn stop_like_systemd(unit: &Unit, proc: &mut Proc) {
    let timeout = humantime::parse_duration(unit.one("TimeoutStopSec")).unwrap();
    proc.terminate();
    let status = proc.wait_exit(timeout);
    assert!(
        status.is_some_and(|s| s.success()),
        "{}: SIGTERM did not end the program with status 0 within TimeoutStopSec={timeout:?}: \
         {status:?}\n{}",
        unit.name,
        proc.output()
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_units_command_lines_start_a_ca_a_server_and_an_agent_that_stop_on_sigterm() {
    programs::require(&["mtls-ca", "mtls-server", "mtls-agent"]);
    let root = tempfile::tempdir().unwrap();
    let dirs_for = |unit: &str| {
        let d = Dirs {
            state: root.path().join("var-lib"),
            runtime: root.path().join("run"),
            credentials: root.path().join("credentials").join(unit),
        };
        std::fs::create_dir_all(&d.state).unwrap();
        std::fs::create_dir_all(&d.credentials).unwrap();
        d
    };

    // The CA: its data directory is the unit's StateDirectory.
    let ca_unit = Unit::load("mtls-ca.service", "mtls-ca");
    let ca_dirs = dirs_for(ca_unit.name);
    let mut ca = start_unit(
        &ca_unit,
        &[("MTLS_CA_LISTEN", "127.0.0.1:0".into())],
        &ca_dirs,
    );
    let fingerprint = ca
        .wait_for(
            |l| l.starts_with("root fingerprint (SHA-256): "),
            START_TIMEOUT,
        )
        .trim()
        .trim_start_matches("root fingerprint (SHA-256): ")
        .to_string();
    let listening = ca.wait_for(|l| l.starts_with("listening on https://"), START_TIMEOUT);
    let ca_port = super::common::port_of(listening.trim());
    let ca_url = format!("https://localhost:{ca_port}");
    let data_dir = ca_dirs.state.join("mtls-ca");
    assert_eq!(mode(&data_dir), 0o700, "{}", data_dir.display());
    assert_eq!(mode(&data_dir.join("root.key")), 0o600);
    assert_eq!(mode(&data_dir.join("ca.db")), 0o600);
    let token = |id: &str| {
        let out = Command::new(programs::ca())
            .arg("--data-dir")
            .arg(&data_dir)
            .args([
                "token",
                "--spiffe-id",
                id,
                "--dns",
                "localhost",
                "--ip",
                "127.0.0.1",
            ])
            .env_remove("MTLS_CA_STORE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };

    // The server: enrolled with a token in its credentials directory, ready, then stopped.
    let server_unit = Unit::load("mtls-server.service", "mtls-server");
    let server_dirs = dirs_for(server_unit.name);
    let server_env = server_unit.environment();
    std::fs::write(
        server_dirs.credentials.join("join-token"),
        token(&server_env["MTLS_SPIFFE_ID"]),
    )
    .unwrap();
    let mut server = start_unit(
        &server_unit,
        &[
            ("MTLS_CA_URL", ca_url.clone()),
            ("MTLS_CA_FINGERPRINT", fingerprint.clone()),
            ("MTLS_SERVER_LISTEN", "127.0.0.1:0".into()),
            ("MTLS_SERVER_ADMIN_LISTEN", "127.0.0.1:0".into()),
        ],
        &server_dirs,
    );
    let admin = server.wait_for(
        |l| l.starts_with("admin listening on http://"),
        START_TIMEOUT,
    );
    server.wait_for(|l| l.starts_with("listening on https://"), START_TIMEOUT);
    let (status, body) = http_get(super::common::port_of(admin.trim()), "/readyz");
    assert_eq!(status, 200, "{body}\n{}", server.output());
    assert!(body.contains("\"ready\""), "{body}");

    // The agent: its socket in the RuntimeDirectory systemd makes (0755).
    let agent_unit = Unit::load("mtls-agent.service", "mtls-agent");
    let agent_dirs = dirs_for(agent_unit.name);
    let runtime = agent_dirs.runtime.join(agent_unit.one("RuntimeDirectory"));
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent_env = agent_unit.environment();
    std::fs::write(
        agent_dirs.credentials.join("join-token"),
        token(&agent_env["MTLS_AGENT_ID"]),
    )
    .unwrap();
    // An entry for this test's uid, so that a workload holds a Workload API stream open
    // while the agent is stopped.
    let uid = std::fs::metadata(root.path()).unwrap().uid();
    let entry = Command::new(programs::ca())
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["entry", "create", "--parent", &agent_env["MTLS_AGENT_ID"]])
        .args([
            "--spiffe-id",
            WORKLOAD_ID,
            "--selector",
            &format!("unix:uid:{uid}"),
        ])
        .env_remove("MTLS_CA_STORE")
        .output()
        .unwrap();
    assert!(entry.status.success(), "{entry:?}");
    let mut agent = start_unit(
        &agent_unit,
        &[
            ("MTLS_CA_URL", ca_url),
            ("MTLS_CA_FINGERPRINT", fingerprint),
        ],
        &agent_dirs,
    );
    agent.wait_for(|l| l.trim() == "[AGENT] ready", START_TIMEOUT);
    let socket = runtime.join("agent.sock");
    assert!(socket.exists(), "{}", agent.output());
    let mut writer = Command::new(programs::agent());
    writer
        .args(["write", "--socket"])
        .arg(&socket)
        .args(["--spiffe-id", WORKLOAD_ID, "--dir"])
        .arg(root.path().join("files"));
    let writer = Proc::spawn("mtls-agent write", writer);
    writer.wait_for(|l| l.starts_with("[WRITE] "), START_TIMEOUT);

    // The writer's stream is still open: the agent stops anyway, within TimeoutStopSec.
    stop_like_systemd(&agent_unit, &mut agent);
    drop(writer);
    stop_like_systemd(&server_unit, &mut server);
    stop_like_systemd(&ca_unit, &mut ca);
}

#[test]
fn the_sysusers_file_creates_the_ca_units_user() {
    let unit = Unit::load("mtls-ca.service", "mtls-ca");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(deploy_dir().join("systemd/mtls-mesh.sysusers"))
        .output()
        .unwrap_or_else(|e| panic!("systemd-sysusers (Debian package systemd): {e}"));
    assert!(out.status.success(), "{out:?}");
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    let user = unit.one("User");
    let entry = passwd
        .lines()
        .find(|l| l.split(':').next() == Some(user))
        .unwrap_or_else(|| panic!("no user {user} in:\n{passwd}"));
    let fields: Vec<&str> = entry.split(':').collect();
    assert!(fields[2].parse::<u32>().unwrap() > 0, "{entry}");
    assert_eq!(fields[5], "/var/lib/mtls-ca", "{entry}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{entry}");
    let group_name = unit.one("Group");
    assert!(
        group
            .lines()
            .any(|l| l.split(':').next() == Some(group_name)),
        "no group {group_name} in:\n{group}"
    );
}

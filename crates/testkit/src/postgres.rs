//! A throwaway PostgreSQL cluster for tests, from the Debian `postgresql` package: `initdb` into
//! a temporary directory (or `pg_basebackup` from another test cluster, for a streaming
//! standby), a free port on 127.0.0.1, the unix socket in that directory. Nothing outside the
//! temporary directory is touched.
//!
//! The cluster is run by a small watchdog shell whose standard input is a pipe from the test
//! process: it starts the server (`postgres` as its own child, not daemonised by `pg_ctl`),
//! prints `ready`, obeys commands (stop, crash, start, promote) and on end of input stops the
//! server. Dropping the handle closes the pipe and waits for the stop; so does a test process
//! that dies (even by `kill -9`). The server also carries a parent-death signal (`setpriv
//! --pdeathsig QUIT`): should the watchdog itself be killed (a `kill -9` of the whole process
//! group), the server shuts down at once instead of living on as an orphan.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as here and in CI), the
//! watchdog, and with it `initdb` and the server, run as the unprivileged user `nobody` (group
//! `nogroup`) through `setpriv`; the temporary directory is given to that user. Any other user
//! runs them as itself. Set `MTLS_TEST_PG_BIN` to use another PostgreSQL `bin` directory.
//!
//! [`PgCluster::start_tls`] starts a cluster with `ssl=on` and a server certificate the test
//! made (its own PKI), optionally accepting only client certificates of a given CA over TCP.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The user the server runs as when the tests run as root.
pub const SERVER_USER: &str = "nobody";
/// That user's group.
pub const SERVER_GROUP: &str = "nogroup";

const WATCHDOG: &str = r#"
set -f # $SETTINGS is split into words but never globbed (synchronous_standby_names=*)
BIN=$1; DIR=$2; PORT=$3; FROM=$4; SETTINGS=$5
if [ -z "$FROM" ]; then
  "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 \
    || { echo "initdb failed:" >&2; cat "$DIR/initdb.log" >&2; exit 1; }
else
  # A streaming-replication standby of the cluster on port $FROM, with a replication slot of
  # its own (the primary keeps the WAL it has not received) and standby.signal (-R).
  "$BIN/pg_basebackup" -h 127.0.0.1 -p "$FROM" -U postgres -D "$DIR/data" -R -X stream \
    -C -S "standby_$PORT" --no-sync >"$DIR/initdb.log" 2>&1 \
    || { echo "pg_basebackup failed:" >&2; cat "$DIR/initdb.log" >&2; exit 1; }
fi
PG=
start() {
  # The postmaster is this shell's child, not a daemon (no pg_ctl start): setpriv gives it a
  # parent-death signal, so if this shell dies (even by kill -9, with the test process and its
  # process group) the server shuts down at once (SIGQUIT: immediate shutdown). fsync off: a
  # test cluster is thrown away, durability across power loss is not what it tests.
  setpriv --pdeathsig QUIT -- "$BIN/postgres" -D "$DIR/data" -p "$PORT" -k "$DIR" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 $SETTINGS \
    >>"$DIR/server.log" 2>&1 &
  PG=$!
  tries=0
  until "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U postgres; do
    tries=$((tries + 1))
    if ! kill -0 "$PG" 2>/dev/null || [ "$tries" -gt 1200 ]; then
      echo "postgres did not start:" >&2; cat "$DIR/server.log" >&2; exit 1
    fi
    sleep 0.05
  done
  echo ready
}
# SIGINT: fast shutdown (sessions ended, clean checkpoint); SIGQUIT: immediate shutdown, as
# after a crash (no checkpoint, recovery at the next start).
stop() { [ -n "$PG" ] && kill -"$1" "$PG" 2>/dev/null; [ -n "$PG" ] && wait "$PG"; PG=; }
start
# Commands from the test process, one a line; end of input (the test process closed the pipe
# or died) stops the server for good.
while read -r cmd; do
  case "$cmd" in
    stop) stop INT; echo stopped ;;
    crash) stop QUIT; echo stopped ;;
    start) start ;;
    promote) "$BIN/pg_ctl" -D "$DIR/data" -w -t 60 promote >>"$DIR/server.log" 2>&1; echo promoted ;;
  esac
done
stop INT
# The shared cluster's handle is never dropped: remove the directory here.
rm -rf "$DIR"
"#;

/// TLS for a test cluster ([`PgCluster::start_tls`]), PEM texts.
#[derive(Clone, Debug)]
pub struct PgTls {
    /// The server's certificate (chain).
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
    /// With a CA here, TCP connections must use TLS and log in with a client certificate
    /// signed by it (`cert` authentication; any common name maps to the user `postgres`);
    /// without one, TCP connections may use TLS or not and need no password.
    pub client_ca_pem: Option<String>,
}

/// A running throwaway cluster; stopped and removed on drop.
pub struct PgCluster {
    bin: PathBuf,
    port: u16,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    dir: tempfile::TempDir,
}

/// The `bin` directory of the newest PostgreSQL installed by the Debian package, or of
/// `MTLS_TEST_PG_BIN`; panics with the package to install when there is none.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MTLS_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max();
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "the PostgreSQL tests need the server programs (initdb, pg_ctl) in \
             /usr/lib/postgresql/<version>/bin: install the Debian package `postgresql` \
             (apt-get install postgresql), or set MTLS_TEST_PG_BIN to a PostgreSQL bin directory"
        ),
    }
}

fn is_root() -> bool {
    // The tests must know whether PostgreSQL will refuse to run; `id -u` says it without libc.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The uid and gid of `nobody`/`nogroup` from /etc/passwd and /etc/group.
fn server_ids() -> (u32, u32) {
    fn lookup(file: &str, name: &str) -> u32 {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
        text.lines()
            .find_map(|l| {
                let mut f = l.split(':');
                (f.next() == Some(name)).then(|| f.nth(1)?.parse().ok())?
            })
            .unwrap_or_else(|| {
                panic!("{file} has no {name}: the PostgreSQL test server runs as it")
            })
    }
    (
        lookup("/etc/passwd", SERVER_USER),
        lookup("/etc/group", SERVER_GROUP),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 for a free port")
}

impl PgCluster {
    /// Creates and starts a new cluster; panics with initdb's or the server's log on failure.
    pub fn start() -> PgCluster {
        PgCluster::launch(None, &[], None)
    }

    /// Like [`PgCluster::start`], with server settings (`name=value`, each passed as `-c`) for
    /// every start of this cluster, e.g. `synchronous_standby_names=*`.
    pub fn start_with(settings: &[&str]) -> PgCluster {
        PgCluster::launch(None, settings, None)
    }

    /// Like [`PgCluster::start_with`], with `ssl=on` and the certificates of `tls`.
    pub fn start_tls(tls: &PgTls, settings: &[&str]) -> PgCluster {
        PgCluster::launch(None, settings, Some(tls))
    }

    /// A new cluster that is a streaming-replication standby of this one (`pg_basebackup -R`
    /// with a replication slot of its own), started on its own port; it replays everything this
    /// cluster commits until [`PgCluster::promote`]. `settings` as for `start_with`.
    pub fn standby(&self, settings: &[&str]) -> PgCluster {
        PgCluster::launch(Some(self.port), settings, None)
    }

    fn launch(from: Option<u16>, settings: &[&str], tls: Option<&PgTls>) -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("mtls-pg-")
            .tempdir()
            .expect("creating the cluster's temporary directory");
        let port = free_port();
        let owner = is_root().then(server_ids);
        let mut settings: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        if let Some(tls) = tls {
            settings.extend(write_tls(dir.path(), tls, owner));
        }
        let mut cmd = if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("giving the cluster directory to nobody");
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "--",
                "sh",
            ]);
            c
        } else {
            Command::new("sh")
        };
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(&bin)
            .arg(dir.path())
            .arg(port.to_string())
            .arg(from.map(|p| p.to_string()).unwrap_or_default())
            .arg(
                settings
                    .iter()
                    .map(|s| format!("-c {s}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut watchdog = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run setpriv/sh to start PostgreSQL: {e}"));
        let stdin = watchdog.stdin.take();
        let stdout = watchdog.stdout.take().expect("piped stdout");
        // Blocks until the server accepts connections (pg_ctl -w) or the watchdog gave up.
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        if line.trim() != "ready" {
            let status = watchdog.wait();
            panic!("the test PostgreSQL cluster did not start ({status:?}); see its log above");
        }
        PgCluster {
            bin,
            port,
            watchdog,
            stdin,
            stdout,
            dir,
        }
    }

    /// Sends `command` to the watchdog and waits for its answer line `answer`.
    fn command(&mut self, command: &str, answer: &str) {
        let stdin = self.stdin.as_mut().expect("the watchdog's input is open");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .expect("writing to the PostgreSQL watchdog");
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        assert_eq!(
            line.trim(),
            answer,
            "PostgreSQL {command}: see its log above"
        );
    }

    /// Stops the server (`pg_ctl -m fast stop`); returns once it no longer accepts connections.
    pub fn stop_server(&mut self) {
        self.command("stop", "stopped");
    }

    /// Stops the server as a crash would (SIGQUIT, immediate shutdown: no checkpoint, nothing
    /// more sent to a standby); returns once the server has exited.
    pub fn crash_server(&mut self) {
        self.command("crash", "stopped");
    }

    /// Starts the stopped server again on the same port; returns once it accepts connections.
    pub fn start_server(&mut self) {
        self.command("start", "ready");
    }

    /// Promotes this standby to a primary (`pg_ctl promote -w`); returns once it accepts
    /// writes.
    pub fn promote(&mut self) {
        self.command("promote", "promoted");
    }

    /// Kills the watchdog with SIGKILL, as a `kill -9` of the test's whole process group
    /// would, leaving it no chance to stop the server: the server's parent-death signal must.
    /// The handle is then only good for dropping.
    pub fn kill_watchdog(&mut self) {
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        self.stdin = None;
    }

    /// One cluster for the whole test process (each test takes its own database in it); it
    /// stops when the process exits.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(PgCluster::start)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of its unix socket and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The connection URL of database `db` as the superuser `postgres`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs one SQL statement with `psql` on database `db` (over the unix socket, which needs
    /// no TLS or client certificate); panics with psql's message.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
            ])
            .arg("-h")
            .arg(self.dir())
            .args(["-p", &self.port.to_string(), "-d", db])
            .args(["-c", sql])
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Creates a new empty database with a unique name and returns its URL.
    pub fn new_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }
}

/// Writes the TLS files of `tls` into DIR/tls (owned by the server's user, key 0600, as
/// PostgreSQL demands) and returns the server settings that use them.
fn write_tls(dir: &Path, tls: &PgTls, owner: Option<(u32, u32)>) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let tls_dir = dir.join("tls");
    std::fs::create_dir(&tls_dir).expect("creating the cluster's tls directory");
    let write = |name: &str, text: &str| {
        let path = tls_dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown to nobody");
        }
        path.display().to_string()
    };
    let mut settings = vec![
        "ssl=on".to_string(),
        format!("ssl_cert_file={}", write("server.crt", &tls.cert_pem)),
        format!("ssl_key_file={}", write("server.key", &tls.key_pem)),
    ];
    if let Some(ca) = &tls.client_ca_pem {
        settings.push(format!("ssl_ca_file={}", write("client_ca.crt", ca)));
        // TCP: TLS with a client certificate of that CA, whatever its common name; the unix
        // socket (psql above) stays open.
        let hba = "local all all trust\nhostssl all all 127.0.0.1/32 cert map=any\n";
        settings.push(format!("hba_file={}", write("pg_hba.conf", hba)));
        settings.push(format!(
            "ident_file={}",
            write("pg_ident.conf", "any /^(.*)$ postgres\n")
        ));
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&tls_dir, Some(uid), Some(gid)).expect("chown to nobody");
    }
    settings
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // End of input tells the watchdog to stop the server; wait for it so the directory is
        // no longer in use when the TempDir removes it.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.watchdog.wait();
    }
}

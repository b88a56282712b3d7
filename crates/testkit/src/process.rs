//! Child processes for end-to-end tests: every output line is kept and can be awaited with a
//! timeout; the child is killed when the handle drops.

use std::borrow::BorrowMut;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pki::clock::Deadline;

#[derive(Default)]
struct Output {
    /// (true for stdout, line)
    lines: Vec<(bool, String)>,
    open_streams: usize,
}

type Shared = Arc<(Mutex<Output>, Condvar)>;

pub struct Proc {
    pub name: String,
    child: Child,
    shared: Shared,
}

fn pump(stream: impl Read + Send + 'static, is_stdout: bool, shared: Shared, echo: Option<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(name) = &echo {
                eprintln!("[{name}] {line}");
            }
            let (lock, cv) = &*shared;
            lock.lock().expect("lock").lines.push((is_stdout, line));
            cv.notify_all();
        }
        let (lock, cv) = &*shared;
        lock.lock().expect("lock").open_streams -= 1;
        cv.notify_all();
    });
}

impl Proc {
    /// Spawns `cmd` (a `Command` or the `&mut Command` a builder chain returns) with piped
    /// stdout and stderr. Set `MESH_TEST_ECHO=1` to mirror output.
    pub fn spawn(name: &str, mut cmd: impl BorrowMut<Command>) -> Proc {
        let cmd = cmd.borrow_mut();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let shared: Shared = Arc::new((
            Mutex::new(Output {
                lines: Vec::new(),
                open_streams: 2,
            }),
            Condvar::new(),
        ));
        let echo = std::env::var_os("MESH_TEST_ECHO").map(|_| name.to_string());
        pump(
            child.stdout.take().expect("stdout"),
            true,
            shared.clone(),
            echo.clone(),
        );
        pump(
            child.stderr.take().expect("stderr"),
            false,
            shared.clone(),
            echo,
        );
        Proc {
            name: name.to_string(),
            child,
            shared,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Number of lines seen so far; pass it to `wait_for_after` to look only at newer lines.
    pub fn mark(&self) -> usize {
        self.shared.0.lock().expect("lock").lines.len()
    }

    /// Waits until a line (stdout or stderr) satisfies `pred`; returns it.
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.wait_for_after(0, pred, timeout)
    }

    /// Like `wait_for`, looking only at lines after `mark`. Panics with the full output on timeout.
    pub fn wait_for_after(
        &self,
        mark: usize,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        match self.try_wait_for_after(mark, pred, timeout) {
            Some(line) => line,
            None => panic!(
                "{}: expected line not seen within {timeout:?}; output:\n{}",
                self.name,
                self.output()
            ),
        }
    }

    /// Non-panicking wait: None on timeout or when the process closed its output.
    pub fn try_wait_for_after(
        &self,
        mark: usize,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Deadline::after(timeout);
        let (lock, cv) = &*self.shared;
        let mut out = lock.lock().expect("lock");
        let mut next = mark;
        loop {
            while next < out.lines.len() {
                if pred(&out.lines[next].1) {
                    return Some(out.lines[next].1.clone());
                }
                next += 1;
            }
            if out.open_streams == 0 {
                return None;
            }
            let left = deadline.remaining();
            if left.is_zero() {
                return None;
            }
            out = cv.wait_timeout(out, left).expect("lock").0;
        }
    }

    /// Every line so far, stdout and stderr interleaved in arrival order.
    pub fn output(&self) -> String {
        let out = self.shared.0.lock().expect("lock");
        out.lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stdout lines only.
    pub fn stdout(&self) -> String {
        let out = self.shared.0.lock().expect("lock");
        out.lines
            .iter()
            .filter(|(s, _)| *s)
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stderr lines only.
    pub fn stderr(&self) -> String {
        let out = self.shared.0.lock().expect("lock");
        out.lines
            .iter()
            .filter(|(s, _)| !*s)
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Lines matching `pred`.
    pub fn lines_matching(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let out = self.shared.0.lock().expect("lock");
        out.lines
            .iter()
            .filter(|(_, l)| pred(l))
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Waits for the process to exit (its output closed) within `timeout`; kills it otherwise.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Deadline::after(timeout);
        {
            let (lock, cv) = &*self.shared;
            let mut out = lock.lock().expect("lock");
            while out.open_streams > 0 {
                let left = deadline.remaining();
                if left.is_zero() {
                    drop(out);
                    self.kill();
                    return None;
                }
                out = cv.wait_timeout(out, left).expect("lock").0;
            }
        }
        self.child.wait().ok()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop with SIGTERM (via the `kill` command).
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a command to completion within `timeout`; returns (exit status, stdout, stderr-merged
/// output). Panics on timeout.
pub fn run(
    name: &str,
    cmd: impl BorrowMut<Command>,
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let mut p = Proc::spawn(name, cmd);
    let status = p
        .wait_exit(timeout)
        .unwrap_or_else(|| panic!("{name} did not finish within {timeout:?}:\n{}", p.output()));
    (status, p.stdout(), p.output())
}

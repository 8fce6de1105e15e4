//! Running the netxray binary (or any program that honours `--ready-file PATH`) under test.

use super::poll_until;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The netxray binary cargo built for this integration test. `CARGO_BIN_EXE_<name>` is set
/// while compiling integration tests, and this module is compiled as part of each of them.
pub fn netxray_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_netxray"))
}

const READY_POLL: Duration = Duration::from_millis(20);
const POLL_EXIT: Duration = Duration::from_millis(20);

/// How to start a run: program, arguments, environment, timeouts.
#[derive(Debug, Clone)]
pub struct NetxrayRunBuilder {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    ready_flag: String,
    ready_timeout: Duration,
    stop_timeout: Duration,
}

impl NetxrayRunBuilder {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }
    /// The flag that precedes the ready-file path (default `--ready-file`).
    pub fn ready_flag(mut self, flag: &str) -> Self {
        self.ready_flag = flag.to_string();
        self
    }
    /// How long to wait for the ready file (default 30 s).
    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }
    /// How long [`NetxrayRun::stop`] waits after SIGINT before SIGKILL (default 10 s).
    pub fn stop_timeout(mut self, t: Duration) -> Self {
        self.stop_timeout = t;
        self
    }

    /// Starts `program args... <ready_flag> <tmp path>` in its own process group, then waits
    /// for the ready file (polling every 20 ms). Fails early, with the stderr so far, if the
    /// process exits first; fails (and kills it) if the file does not appear in time.
    pub fn start(self) -> Result<NetxrayRun, String> {
        let ready_file = std::env::temp_dir().join(format!("{}ready", super::unique_prefix()));
        let _ = std::fs::remove_file(&ready_file);
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .arg(&self.ready_flag)
            .arg(&ready_file)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group: signals reach its children too, and a Ctrl-C in the
            // terminal running `cargo test` is not delivered to it twice.
            .process_group(0);
        // SIGINT and SIGQUIT at their defaults: a test suite started in the
        // background by a non-interactive shell (`.ci/run &`, nohup) passes
        // them on ignored, and `stop` relies on SIGINT.
        // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                Ok(())
            });
        }
        let shown = format!("{cmd:?}");
        let mut child = cmd.spawn().map_err(|e| format!("spawn {shown}: {e}"))?;
        let live = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().map(|p| drain_live(p, live.clone()));
        let live_err = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().map(|p| drain_live(p, live_err.clone()));
        let mut run = NetxrayRun {
            child: Some(child),
            ready_file,
            stdout,
            live,
            live_err,
            stderr,
            stop_timeout: self.stop_timeout,
        };

        let waited = poll_until(self.ready_timeout, READY_POLL, || {
            if run.ready_file.exists() {
                return Some(Ok(()));
            }
            match run.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(Err(status)),
                _ => None,
            }
        });
        match waited {
            Some(Ok(())) => Ok(run),
            Some(Err(status)) => {
                let out = run.finish(status, false);
                Err(format!(
                    "{shown} exited with {status} before it was ready\nstderr:\n{}\nstdout:\n{}",
                    out.stderr, out.stdout
                ))
            }
            None => {
                let out = run.kill();
                Err(format!(
                    "{shown} not ready after {:?} (no {}); killed\nstderr:\n{}\nstdout:\n{}",
                    self.ready_timeout,
                    run.ready_file.display(),
                    out.stderr,
                    out.stdout
                ))
            }
        }
    }
}

/// A running netxray. Dropping it kills the process group if it still runs.
#[derive(Debug)]
pub struct NetxrayRun {
    child: Option<Child>,
    ready_file: PathBuf,
    stdout: Option<JoinHandle<Vec<u8>>>,
    /// stdout as it arrives.
    live: Arc<Mutex<Vec<u8>>>,
    /// stderr as it arrives.
    live_err: Arc<Mutex<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    stop_timeout: Duration,
}

/// What a finished run left: its output and how it ended.
#[derive(Debug)]
pub struct NetxrayOutput {
    pub stdout: String,
    pub stderr: String,
    pub status: ExitStatus,
    /// True if it had to be killed with SIGKILL (it ignored SIGINT for too long).
    pub killed: bool,
}

impl NetxrayOutput {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
    /// stdout parsed as JSON lines (see [`parse_json_lines`]).
    pub fn json(&self) -> Vec<serde_json::Value> {
        parse_json_lines(&self.stdout)
    }
}

impl NetxrayRun {
    /// A builder for `program` (usually [`netxray_bin()`]).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(program: impl AsRef<OsStr>) -> NetxrayRunBuilder {
        NetxrayRunBuilder {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            ready_flag: "--ready-file".to_string(),
            ready_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn ready_file(&self) -> &Path {
        &self.ready_file
    }

    /// True while the process has not exited.
    /// What netxray has printed so far (it flushes after each ring drain).
    pub fn stdout_so_far(&self) -> String {
        let buf = self.live.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// What netxray has said on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        let buf = self.live_err.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Sends SIGINT (like Ctrl-C, to the process group), waits up to the stop timeout, then
    /// SIGKILL; returns the output.
    pub fn stop(mut self) -> NetxrayOutput {
        let timeout = self.stop_timeout;
        self.stop_with_timeout(timeout)
    }

    /// [`NetxrayRun::stop`] with an explicit grace period.
    pub fn stop_with_timeout(&mut self, grace: Duration) -> NetxrayOutput {
        if let Some(status) = self.try_status() {
            return self.finish(status, false);
        }
        self.signal(libc::SIGINT);
        match poll_until(grace, POLL_EXIT, || self.try_status()) {
            Some(status) => self.finish(status, false),
            None => self.kill(),
        }
    }

    /// Waits (up to `timeout`) for the process to exit on its own; `None` if it is still
    /// running then (it keeps running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<NetxrayOutput> {
        let status = poll_until(timeout, POLL_EXIT, || self.try_status())?;
        Some(self.finish(status, false))
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) on our own child's process group; ESRCH (gone) is fine.
                unsafe { libc::kill(-pid, sig) };
            }
        }
    }

    fn kill(&mut self) -> NetxrayOutput {
        self.signal(libc::SIGKILL);
        let status = match self.child.as_mut().map(Child::wait) {
            Some(Ok(status)) => status,
            _ => ExitStatus::from_raw(libc::SIGKILL),
        };
        self.finish(status, true)
    }

    /// Collects output after the process exited. Kills whatever is left of its group, so
    /// that no grandchild keeps the pipes (and the reader threads) open.
    fn finish(&mut self, status: ExitStatus, killed: bool) -> NetxrayOutput {
        self.signal(libc::SIGKILL);
        self.child = None;
        let collect = |h: Option<JoinHandle<Vec<u8>>>| {
            h.and_then(|h| h.join().ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        NetxrayOutput {
            stdout: collect(self.stdout.take()),
            stderr: collect(self.stderr.take()),
            status,
            killed,
        }
    }
}

impl Drop for NetxrayRun {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill();
        }
        let _ = std::fs::remove_file(&self.ready_file);
    }
}

/// Reads a pipe to the end on a thread, so the child never blocks on a full pipe.
fn drain<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Like `drain`, also keeping what has arrived so far in `live`.
fn drain_live<R: Read + Send + 'static>(
    mut pipe: R,
    live: Arc<Mutex<Vec<u8>>>,
) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => live
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
        let all = live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        all
    })
}

/// One JSON value per non-empty line of `stdout`; panics naming the line that is not JSON.
pub fn parse_json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line {} is not JSON ({e}): {l}", i + 1))
        })
        .collect()
}

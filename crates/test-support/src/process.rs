//! Shared mechanics of the servers tests start themselves: free loopback ports, locating the
//! project-local tools (`scripts/python-tools.sh` installs them into `.tools/venv`), and a child
//! process that is killed when its owner drops.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now (the OS picks it; tests bind it moments later).
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// The path of a tool installed by `scripts/python-tools.sh` (`moto_server`, `bao`): in
/// `$GALLEY_TOOLS_BIN` when set, else in the workspace's `.tools/venv/bin`. Panics saying how to
/// install it when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("GALLEY_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{name} is needed by this test and is missing from {}: run scripts/python-tools.sh (make test does)",
        dir.display()
    );
    path
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`, failing fast when `child`
/// exits first. `what` and `log` name the server and its log in the panic message.
pub fn wait_for_port(child: &mut Child, port: u16, timeout: Duration, what: &str, log: &Path) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited while starting ({status}); see {}", log.display());
        }
        assert!(Instant::now() < deadline, "{what} did not listen within {timeout:?}; see {}", log.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server process the test owns. It runs under a small `sh` watchdog that holds the read end of a
/// pipe whose write end only this process has: when the owner drops it, kills it, or the whole test
/// binary exits (even on a panic or a `static` that never drops), the pipe closes, and the watchdog
/// stops the server (SIGTERM) and reaps it. So no server outlives its test binary.
#[derive(Debug)]
pub struct OwnedProcess {
    pub child: Child,
    pub dir: PathBuf,
}

/// How long a server may take to exit after SIGTERM before the watchdog itself is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

impl OwnedProcess {
    /// Starts `program ARGS` (stdin `/dev/null`, stdout and stderr to `log`) under the watchdog,
    /// in `dir`, with the extra environment `envs`.
    pub fn spawn(program: &Path, args: &[&str], envs: &[(&str, &str)], dir: PathBuf, log: &Path) -> Self {
        let log = std::fs::File::create(log).expect("server log");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#""$@" </dev/null & server=$!; read -r _; kill "$server" 2>/dev/null; wait "$server""#)
            .arg("galley-watchdog")
            .arg(program)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("server log"))
            .stderr(log);
        for (name, value) in envs {
            command.env(name, value);
        }
        let child = command.spawn().unwrap_or_else(|error| panic!("{} starts: {error}", program.display()));
        Self { child, dir }
    }

    /// Stops the server now (SIGTERM through the watchdog) and waits for it.
    pub fn kill(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnedProcess {
    fn drop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A fresh temp directory named after `what`.
pub fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("galley-{what}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp directory");
    dir
}

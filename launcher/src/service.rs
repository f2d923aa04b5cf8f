//! One supervised child process: its own process group, its output in a log file, healthy
//! once a URL answers 200, stopped with its whole group when dropped (or when the process that
//! started it dies).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a service did not come up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The executable is not where set-up puts it.
    #[error("`{program}` is missing: {hint}")]
    Missing {
        /// The path looked at.
        program: PathBuf,
        /// What installs it.
        hint: &'static str,
    },
    /// The process could not be started, or its log or state directory written.
    #[error("cannot start {name}: {source}")]
    Spawn {
        /// The service.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited before it was healthy.
    #[error("{name} exited ({status}) before it was healthy; the end of its log `{log}`:\n{tail}")]
    Exited {
        /// The service.
        name: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// It did not answer its health URL in time.
    #[error("{name} did not answer `{url}` within {timeout:?}; the end of its log `{log}`:\n{tail}")]
    Unhealthy {
        /// The service.
        name: String,
        /// The health URL.
        url: String,
        /// How long it was given.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
}

// Ties the service's lifetime to ours: the wrapper waits for EOF on its stdin, which is a pipe
// from this process (closed when we drop the service, exit, panic or are killed), and then
// signals its own process group, which holds the service and whatever it forked (MLflow's
// uvicorn workers). A `kill -9` of the loop therefore stops MLflow and Prometheus too.
const WRAPPER: &str = r#"
exec 3<&0
"$@" </dev/null &
server=$!
( read -r _ <&3; kill -TERM 0 ) &
wait "$server"
status=$?
kill -TERM 0
exit "$status"
"#;

/// A running service. Dropping it stops it: its stdin pipe closes, the wrapper signals the
/// group, and after 10 s the group is killed.
pub struct Service {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    url: String,
    log: PathBuf,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("name", &self.name).field("url", &self.url).field("log", &self.log).finish()
    }
}

/// What to start and how to tell it is up.
#[derive(Debug)]
pub(crate) struct Spec<'a> {
    pub name: &'a str,
    pub program: &'a Path,
    pub args: Vec<std::ffi::OsString>,
    pub env: Vec<(&'a str, String)>,
    pub env_remove: &'a [&'a str],
    pub dir: &'a Path,
    pub log: PathBuf,
    /// `http://127.0.0.1:PORT`: the service's base URL.
    pub url: String,
    /// Path on `url` that answers 200 once the service is ready.
    pub health_path: &'a str,
    pub timeout: Duration,
}

impl Service {
    pub(crate) fn start(spec: Spec<'_>) -> Result<Self, LaunchError> {
        use std::os::unix::process::CommandExt;
        let spawn_err = |source| LaunchError::Spawn { name: spec.name.to_owned(), source };
        let log = std::fs::File::create(&spec.log).map_err(spawn_err)?;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg(format!("stacktag-{}", spec.name.to_lowercase()))
            .arg(spec.program)
            .args(&spec.args)
            .current_dir(spec.dir)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().map_err(spawn_err)?)
            .stderr(log)
            .process_group(0);
        for (key, value) in &spec.env {
            command.env(key, value);
        }
        for key in spec.env_remove {
            command.env_remove(key);
        }
        let mut child = command.spawn().map_err(spawn_err)?;
        let stdin = child.stdin.take();
        let mut service =
            Self { name: spec.name.to_owned(), child, stdin, url: spec.url.clone(), log: spec.log.clone() };
        let health = format!("{}{}", spec.url, spec.health_path);
        let deadline = Instant::now() + spec.timeout;
        loop {
            if http_ok(&health) {
                return Ok(service);
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                return Err(LaunchError::Exited {
                    name: service.name.clone(),
                    status,
                    log: service.log.clone(),
                    tail: service.log_tail(20),
                });
            }
            if Instant::now() > deadline {
                return Err(LaunchError::Unhealthy {
                    name: service.name.clone(),
                    url: health,
                    timeout: spec.timeout,
                    log: service.log.clone(),
                    tail: service.log_tail(20),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its base URL, e.g. `http://127.0.0.1:5000`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether its process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process group's id (the wrapper leads it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Closing stdin makes the wrapper signal the group; a hard kill follows if needed.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

/// A loopback port free right now (bound, read, released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether `GET url` answers 200 within 2 s. Plain HTTP/1.1 on loopback (`http://HOST:PORT/…`),
/// so this crate needs no HTTP client.
pub fn http_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let Ok(mut stream) = TcpStream::connect(host) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    // MLflow checks the Host header: 127.0.0.1 and localhost pass.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && (head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
}

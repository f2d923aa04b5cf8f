//! Starting `wasmtime serve` on a free loopback port, and a minimal HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use edge_classifier::{Classifier, OwnedBundle};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn env_path(name: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(default)
}

/// The bundle the component was built with.
pub fn bundle_dir() -> PathBuf {
    std::env::var_os("STACKTAG_BUNDLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "set STACKTAG_BUNDLE_DIR to the bundle the component was built with \
             (scripts/test.sh does: it trains one and runs scripts/build-edge.sh)"
            )
        })
}

/// The native core on the same bundle, loaded once.
pub fn native() -> &'static Classifier {
    static NATIVE: OnceLock<Classifier> = OnceLock::new();
    NATIVE.get_or_init(|| {
        let bundle = OwnedBundle::read_dir(&bundle_dir()).unwrap_or_else(|e| panic!("{e}"));
        Classifier::load(bundle.files()).expect("the bundle loads natively")
    })
}

fn wasmtime() -> PathBuf {
    env_path("STACKTAG_WASMTIME", || {
        let cache = env_path("STACKTAG_CACHE", || {
            env_path("HOME", || PathBuf::from("/root")).join(".cache/stacktag")
        });
        cache.join("tools/bin/wasmtime")
    })
}

/// The component compiled once for this host (`wasmtime compile`), so that every server below
/// starts in milliseconds instead of compiling megabytes of wasm again.
fn precompiled() -> &'static Path {
    static CWASM: OnceLock<PathBuf> = OnceLock::new();
    CWASM.get_or_init(|| {
        let wasm = env_path("STACKTAG_EDGE_WASM", || {
            // Cargo's own target directory, wherever CARGO_TARGET_DIR puts it.
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target"))
                .join("wasm32-wasip2/release/edge_classifier_spin.wasm")
        });
        assert!(
            wasm.is_file(),
            "no component at `{}`: build it with `STACKTAG_BUNDLE_DIR=DIR scripts/build-edge.sh`",
            wasm.display()
        );
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("edge_classifier_spin.cwasm");
        let status = Command::new(wasmtime())
            .arg("compile")
            .arg(&wasm)
            .arg("-o")
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("failed to run `{}`: {e}", wasmtime().display()));
        assert!(status.success(), "`wasmtime compile` failed: {status}");
        out
    })
}

/// How the host treats instances.
#[derive(Debug, Clone, Copy)]
pub enum Instances {
    /// A fresh instance per request (`--max-instance-reuse-count 1`): the worst case.
    Fresh,
    /// Instances serve many requests in turn.
    Reused,
}

/// A running `wasmtime serve`; killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts the component with extra `--env KEY=VALUE`s and waits until it listens.
    pub fn start(instances: Instances, env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(wasmtime());
        command.args([
            "serve",
            "-Scli",
            "--addr",
            "127.0.0.1:0",
            "--allow-precompiled",
        ]);
        let reuse = match instances {
            Instances::Fresh => "1",
            Instances::Reused => "128",
        };
        command.args(["--max-instance-reuse-count", reuse]);
        for (key, value) in env {
            command.arg("--env").arg(format!("{key}={value}"));
        }
        command.arg(precompiled());
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start `{}`: {e}", wasmtime().display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        // wasmtime prints the bound address once it listens: the port is free by construction.
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait();
                panic!("`wasmtime serve` exited before listening: {status:?}");
            };
            if let Some(rest) = line.strip_prefix("Serving HTTP on http://") {
                break rest
                    .trim_end_matches('/')
                    .parse()
                    .expect("a socket address");
            }
        };
        // Keep draining stderr so that the host never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, addr }
    }

    /// Sends one request and reads the whole answer.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Answer {
        let mut stream = TcpStream::connect(self.addr).expect("connect to the server");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("set a read timeout");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("content-type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .expect("write the request head");
        // A server may answer 413 and close before reading all of a large body.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        Answer::parse(&raw)
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Answer {
        let bytes = serde_json::to_vec(body).expect("encode JSON");
        self.send("POST", path, Some("application/json"), &bytes)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Answer {
    fn parse(raw: &[u8]) -> Answer {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let rest = &raw[split + 4..];
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .expect("a chunk size");
        rest = &rest[eol + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    body
}

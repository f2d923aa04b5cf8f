//! Starting `wasmtime serve` on a free loopback port, and a minimal HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use edge_classifier::Classifier;
use edge_classifier::bundle::read_verified_dir;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn env_path(name: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    std::env::var_os(name).map(PathBuf::from).unwrap_or_else(default)
}

/// Cargo's target directory, wherever CARGO_TARGET_DIR puts it.
pub fn target_dir() -> PathBuf {
    env_path("CARGO_TARGET_DIR", || root().join("target"))
}

/// The bundle baked into the component.
pub fn bundle_dir() -> PathBuf {
    std::env::var_os("STACKTAG_BUNDLE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "set STACKTAG_BUNDLE_DIR to the bundle baked into the component \
             (scripts/test-edge.sh does: it trains one and runs scripts/build-edge.sh)"
        )
    })
}

/// The native core on the same bundle, loaded once, read the way the component reads it.
pub fn native() -> &'static Classifier {
    static NATIVE: OnceLock<Classifier> = OnceLock::new();
    NATIVE.get_or_init(|| {
        let dir = bundle_dir();
        let bundle = read_verified_dir(&dir).unwrap_or_else(|e| panic!("`{}`: {e}", dir.display()));
        Classifier::load(bundle.files()).expect("the bundle loads natively")
    })
}

/// wasmtime-cli 48, where scripts/setup.sh puts it (or `STACKTAG_WASMTIME`).
pub fn wasmtime() -> PathBuf {
    launcher::tools::Tools::from_env().wasmtime
}

/// Which build of the component to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// The model baked in (`build-edge.sh bake`): `STACKTAG_EDGE_WASM`, default the bake's
    /// default output.
    Baked,
    /// The generic build, no model (`build-edge.sh build`).
    Generic,
}

impl Build {
    /// The component file.
    pub fn wasm(self) -> PathBuf {
        match self {
            Build::Baked => env_path("STACKTAG_EDGE_WASM", || target_dir().join(edge_classifier_bake::BAKED_IN_TARGET)),
            Build::Generic => target_dir().join(edge_classifier_bake::GENERIC_IN_TARGET),
        }
    }
}

/// Compiles `wasm` for this host (`wasmtime compile`) into `CARGO_TARGET_TMPDIR`, so that a
/// server starts in milliseconds instead of compiling megabytes of wasm again.
pub fn precompile(wasm: &Path, name: &str) -> PathBuf {
    assert!(
        wasm.is_file(),
        "no component at `{}`: build and bake it with \
         `scripts/build-edge.sh --bundle DIR` (scripts/test-edge.sh does)",
        wasm.display()
    );
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.cwasm"));
    let status = Command::new(wasmtime())
        .arg("compile")
        .arg(wasm)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("failed to run `{}`: {e}", wasmtime().display()));
    assert!(status.success(), "`wasmtime compile` of `{}` failed: {status}", wasm.display());
    out
}

/// Each build compiled once per test run.
fn precompiled(build: Build) -> &'static Path {
    static BAKED: OnceLock<PathBuf> = OnceLock::new();
    static GENERIC: OnceLock<PathBuf> = OnceLock::new();
    match build {
        Build::Baked => BAKED.get_or_init(|| precompile(&build.wasm(), "baked")),
        Build::Generic => GENERIC.get_or_init(|| precompile(&build.wasm(), "generic")),
    }
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
    /// Starts the baked component with extra `--env KEY=VALUE`s and waits until it listens.
    pub fn start(instances: Instances, env: &[(&str, &str)]) -> Server {
        Server::serve(precompiled(Build::Baked), instances, env)
    }

    /// Starts a build of the component.
    pub fn start_build(build: Build, instances: Instances) -> Server {
        Server::serve(precompiled(build), instances, &[])
    }

    /// Starts a precompiled component (`precompile`) and waits until it listens.
    pub fn serve(cwasm: &Path, instances: Instances, env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(wasmtime());
        command.args(["serve", "-Scli", "--addr", "127.0.0.1:0", "--allow-precompiled"]);
        let reuse = match instances {
            Instances::Fresh => "1",
            Instances::Reused => "128",
        };
        command.args(["--max-instance-reuse-count", reuse]);
        for (key, value) in env {
            command.arg("--env").arg(format!("{key}={value}"));
        }
        command.arg(cwasm);
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
                break rest.trim_end_matches('/').parse().expect("a socket address");
            }
        };
        // Keep draining stderr so that the host never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, addr }
    }

    /// Sends one request and reads the whole answer.
    pub fn send(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Answer {
        let mut stream = TcpStream::connect(self.addr).expect("connect to the server");
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("set a read timeout");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("content-type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write the request head");
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

    /// `POST /classify` of one text, which must answer 200 with a `Prediction`; `what` names
    /// the request in failures.
    pub fn classify(&self, text: &str, what: &str) -> edge_classifier::api::Prediction {
        let answer = self.post_json("/classify", &serde_json::json!({ "text": text }));
        assert_eq!(answer.status, 200, "{what}: {:?}", String::from_utf8_lossy(&answer.body));
        serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("{what}: not a Prediction: {e}"))
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
        let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked { dechunk(rest) } else { rest.to_vec() };
        Answer { status, headers, body }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON, after checking that the answer has `status` and is JSON, as every
    /// answer of the service must be; `what` names the request in failures.
    pub fn json_with(&self, status: u16, what: &str) -> serde_json::Value {
        let body = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "{what}: {body:?}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{what}");
        self.json()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
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

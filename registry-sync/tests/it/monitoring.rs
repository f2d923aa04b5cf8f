//! The monitoring files against the real thing: Debian's `prometheus` scrapes a real gateway
//! that serves a real baked component under a short, bounded load, and then every dashboard
//! query and every alert rule runs through Prometheus's HTTP API
//! (`scripts/check_monitoring_live.py`). A panel whose query returns nothing, or a rule that
//! reads a metric (or a histogram bound) nobody exports, fails.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mlflow_client::testing::free_port;
use registry_sync::serve;

use crate::common::*;

fn venv_python() -> PathBuf {
    mlflow_client::testing::tools().python
}

/// Debian's Prometheus with the configuration and rules in `shipped`, scraping `target` every
/// second, started as the loop starts it; its folder lives as long as the returned guard.
async fn start_prometheus(shipped: PathBuf, target: std::net::SocketAddr) -> (launcher::Service, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("prometheus dir");
    let opts = launcher::prometheus::PrometheusOptions {
        bin: mlflow_client::testing::tools().prometheus,
        shipped,
        dir: dir.path().to_owned(),
        port: free_port().expect("port"),
        target: target.to_string(),
        interval_s: 1,
    };
    let prometheus = tokio::task::spawn_blocking(move || launcher::prometheus::start(&opts))
        .await
        .expect("prometheus thread")
        .expect("start prometheus (Debian package; scripts/setup.sh installs it)");
    (prometheus, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_rule_gets_data_from_a_real_scrape() {
    ensure_component();
    let (_, reg, versions) = tiny_model("monitoring", 2, 1).await;
    let [v1, v2] = &versions[..] else { unreachable!() };
    let state_dir = tempfile::tempdir().expect("state dir");
    let running = serve(serve_config(&reg, state_dir.path())).await.expect("serve starts");
    let base = format!("http://{}", running.addr);
    let http = http();
    wait_for_version(&http, &base, &v1.version).await;

    // Every route once, and an unsigned webhook delivery (refused), so that each family has
    // its series before the first scrape.
    for path in ["/model", "/health", "/gateway/health", "/metrics"] {
        http.get(format!("{base}{path}")).send().await.expect(path);
    }
    http.post(format!("{base}/webhooks/mlflow")).body("{}").send().await.expect("webhook");

    // A bounded load for as long as the check runs (rates need two scrapes that differ): at
    // most 5,000 classifications or 120 s.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let texts = [
                "how do i print a list in python",
                "public static void main(String[] args) in java",
                "console.log is undefined in my javascript",
                "linq query in c# returns null",
            ];
            let deadline = Instant::now() + Duration::from_secs(120);
            for i in 0..5_000 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let _ = http
                    .post(format!("{base}/classify"))
                    .body(texts[i % texts.len()])
                    .header("content-type", "text/plain")
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // The shipped config, pointed at this gateway and scraping every second, started as the
    // loop starts it.
    let (prometheus, _dir) = start_prometheus(root().join("prometheus"), running.addr).await;
    let prom = prometheus.url().to_owned();
    // Version 2 judged on newer data, as a retrain records it (the trainer computes the
    // figures; the tag's writer is the one used here), so the arrivals panels and alerts have
    // their series once registry-sync reads the alias.
    let labels: Vec<String> = ["csharp", "java", "javascript", "python"].map(str::to_owned).to_vec();
    let mix = |shares: [f64; 4]| labels.iter().cloned().zip(shares).collect();
    let arrivals = model_registry::arrivals::Arrivals {
        champion_version: v2.version.clone(),
        since_batch: "batch-0001.parquet".into(),
        batches: vec![model_registry::arrivals::BatchFigures {
            name: "batch-20261203T101112Z-api.parquet".into(),
            questions: 4,
            accuracy: 0.75,
            unseen_feature_share: 0.04,
            label_mix: mix([0.25; 4]),
        }],
        questions: 4,
        evaluation: edge_classifier::metrics::evaluate(&labels, [(0, 0), (1, 1), (2, 2), (3, 0)]),
        label_mix: mix([0.25; 4]),
        training_label_mix: mix([0.25; 4]),
        unseen_feature_share: 0.04,
    };
    let provenance = model_registry::Provenance { git_commit: "test".into(), trainer_version: "test".into() };
    model_registry::arrivals::record(&reg, &arrivals, &provenance).await.expect("record the judgement");
    // A sync while Prometheus scrapes, so the sync-duration panel has an increase to show.
    set_champion(&reg, &v2.version).await;
    wait_for_version(&http, &base, &v2.version).await;

    let check = tokio::task::spawn_blocking(move || {
        Command::new(venv_python())
            .arg(root().join("scripts/check_monitoring_live.py"))
            .arg(&prom)
            .arg("90")
            .output()
            .expect("run check_monitoring_live.py")
    })
    .await
    .expect("check thread");
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load task");
    let out = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "monitoring queries without data:\n{out}");
    assert!(out.contains("\"checked\""), "{out}");
}

/// What the Alertmanager webhook receiver got: each notification's JSON.
type Received = Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// A webhook receiver on loopback, as on-call's relay would be: records every notification.
async fn webhook_receiver() -> (std::net::SocketAddr, Received) {
    let got: Received = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let store = store.clone();
            async move {
                store.lock().expect("lock").push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    (addr, got)
}

/// The first notification for `alertname` with `status` (`firing` or `resolved`), within
/// `seconds`.
async fn notified(got: &Received, alertname: &str, status: &str, seconds: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let found = got.lock().expect("lock").iter().find_map(|n| {
            n["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == alertname && a["status"] == status)
                .cloned()
        });
        if let Some(alert) = found {
            return alert;
        }
        assert!(Instant::now() < deadline, "no `{status}` {alertname} within {seconds} s; received: {:?}", got.lock());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The shipped Prometheus and Alertmanager configurations, for real: a broken model promoted
/// makes the gateway serve something other than the champion, the alert reaches an
/// Alertmanager webhook receiver with its labels and runbook, and resolves once the champion
/// serves again. The rules' `for:` waits are cut to 0 here (promtool's tests check them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_promotion_alerts_through_alertmanager_and_resolves() {
    ensure_component();
    let (_, reg, versions) = tiny_model("alerting", 2, 1).await;
    let [v1, v2] = &versions[..] else { unreachable!() };
    // v2's tokenizer cut short in the registry: a broken model.
    let tokenizer = std::fs::read(tiny_bundle().join("tokenizer.json")).expect("tokenizer");
    reg.client()
        .upload_artifact(&v2.source, "tokenizer.json", tokenizer[..tokenizer.len() / 2].to_vec())
        .await
        .expect("cut short");
    let state_dir = tempfile::tempdir().expect("state dir");
    let mut cfg = serve_config(&reg, state_dir.path());
    cfg.poll_interval = Duration::from_secs(1);
    let running = serve(cfg).await.expect("serve starts");
    let base = format!("http://{}", running.addr);
    let http = http();
    wait_for_version(&http, &base, &v1.version).await;

    // Alertmanager with the shipped file, its webhook pointed here and its waits cut.
    let (receiver, got) = webhook_receiver().await;
    let shipped = root().join("prometheus");
    let am_dir = tempfile::tempdir().expect("alertmanager dir");
    let am_yml = std::fs::read_to_string(shipped.join("alertmanager.yml")).expect("alertmanager.yml");
    for needle in ["http://127.0.0.1:9095/alerts", "group_wait: 30s", "group_interval: 5m"] {
        assert!(am_yml.contains(needle), "alertmanager.yml no longer has `{needle}`: update this test");
    }
    let am_yml = am_yml
        .replace("http://127.0.0.1:9095/alerts", &format!("http://{receiver}/alerts"))
        .replace("group_wait: 30s", "group_wait: 0s")
        .replace("group_interval: 5m", "group_interval: 1s");
    let am_port = free_port().expect("port");
    let am_opts = launcher::alertmanager::AlertmanagerOptions {
        bin: mlflow_client::testing::tools().alertmanager,
        config: am_yml,
        dir: am_dir.path().to_owned(),
        port: am_port,
    };
    let _alertmanager = tokio::task::spawn_blocking(move || launcher::alertmanager::start(&am_opts))
        .await
        .expect("alertmanager thread")
        .expect("start Alertmanager (Debian prometheus-alertmanager; scripts/setup.sh installs it)");

    // Prometheus with the shipped config (its `alerting:` block pointed at that Alertmanager)
    // and the shipped rules with `for:` cut to 0.
    let prom_src = tempfile::tempdir().expect("prometheus source");
    let prom_yml = std::fs::read_to_string(shipped.join("prometheus.yml")).expect("prometheus.yml");
    assert!(prom_yml.contains("127.0.0.1:9093"), "prometheus.yml has no `alerting:` target 127.0.0.1:9093");
    std::fs::write(
        prom_src.path().join("prometheus.yml"),
        prom_yml.replace("127.0.0.1:9093", &format!("127.0.0.1:{am_port}")),
    )
    .expect("write prometheus.yml");
    for file in launcher::prometheus::rule_files(&prom_yml) {
        let rules = std::fs::read_to_string(shipped.join(&file)).expect("a rule file prometheus.yml names");
        let immediate: String = rules
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("for: ") {
                    l.split("for:").next().unwrap_or_default().to_owned() + "for: 0s"
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(prom_src.path().join(&file), immediate).expect("write a rule file");
    }
    let _prometheus = start_prometheus(prom_src.path().to_owned(), running.addr).await;

    // Healthy: the champion serves, nothing about it fires.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !got.lock().expect("lock").iter().any(|n| n.to_string().contains("StacktagServingNotChampion")),
        "a healthy gateway alerted: {:?}",
        got.lock()
    );

    // The broken v2 is promoted: refused, v1 keeps serving, the alert reaches on-call.
    set_champion(&reg, &v2.version).await;
    let alert = notified(&got, "StacktagServingNotChampion", "firing", 90).await;
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
    assert_eq!(alert["labels"]["instance"], running.addr.to_string(), "{alert}");
    let runbook = alert["annotations"]["runbook_url"].as_str().unwrap_or_default();
    assert!(runbook.ends_with("docs/runbooks.md#stacktagservingnotchampion"), "{alert}");
    let summary = alert["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(summary.contains(&format!("version {}", v2.version)), "{alert}");
    assert_eq!(served_version(&http, &base).await.as_deref(), Some(v1.version.as_str()));

    // Rolled back: the champion serves again and the alert resolves.
    set_champion(&reg, &v1.version).await;
    let resolved = notified(&got, "StacktagServingNotChampion", "resolved", 90).await;
    assert_eq!(resolved["labels"]["instance"], running.addr.to_string(), "{resolved}");
}

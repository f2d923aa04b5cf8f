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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_rule_gets_data_from_a_real_scrape() {
    ensure_component();
    let (_, reg, versions) = tiny_model("monitoring", 1, 1).await;
    let v1 = &versions[0];
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
    let dir = tempfile::tempdir().expect("prometheus dir");
    let opts = launcher::prometheus::PrometheusOptions {
        bin: mlflow_client::testing::tools().prometheus,
        shipped: root().join("prometheus"),
        dir: dir.path().to_owned(),
        port: free_port().expect("port"),
        target: running.addr.to_string(),
        interval_s: 1,
    };
    let prometheus = tokio::task::spawn_blocking(move || launcher::prometheus::start(&opts))
        .await
        .expect("prometheus thread")
        .expect("start prometheus (Debian package; scripts/setup.sh installs it)");
    let prom = prometheus.url().to_owned();

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

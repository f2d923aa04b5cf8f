use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use harvest::api::{Api, ApiConfig, Stop, Window};

use crate::{expected, fixtures};

/// A loopback server answering each request with the next scripted `(status, body)`, gzipped
/// as the real API always is, and recording the request targets.
struct Replay {
    base_url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn replay(answers: Vec<(u16, Vec<u8>)>) -> Replay {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base_url = format!("http://{}/2.3", listener.local_addr().expect("addr"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let Ok((stream, _)) = listener.accept() else { return };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).expect("request line");
            seen.lock().expect("lock").push(line.split_whitespace().nth(1).unwrap_or_default().to_owned());
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).expect("header") <= 2 {
                    break;
                }
            }
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&body).expect("gzip");
            let body = gz.finish().expect("gzip");
            let mut stream = reader.into_inner();
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json; charset=utf-8\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body)).expect("answer");
            let _ = stream.read(&mut [0u8; 1]);
        }
    });
    Replay { base_url, requests }
}

fn page(n: u8) -> Vec<u8> {
    std::fs::read(fixtures().join(format!("api-page-{n}.json"))).expect("page")
}

fn api(base_url: &str, key: Option<&str>) -> Api {
    Api::new(ApiConfig { base_url: base_url.into(), key: key.map(str::to_owned), ..ApiConfig::default() })
        .expect("client")
}

const WINDOW: Window = Window { from: 1_217_548_800, to: 1_230_768_000 };

#[tokio::test]
async fn pages_are_followed_with_backoff_honoured_and_titles_unescaped() {
    let server = replay(vec![(200, page(1)), (200, page(2))]);
    let fetched = api(&server.base_url, Some("the-app-key")).questions("python", WINDOW).await;
    assert_eq!(fetched.stopped, Stop::Done);
    assert_eq!((fetched.pages, fetched.questions.len()), (2, 14));
    // Page 1 says `backoff: 1`: the second request waited for it.
    assert_eq!(fetched.backoff_waited, 1);
    assert_eq!(fetched.quota_remaining, Some(9997));
    let requests = server.requests.lock().expect("lock").clone();
    assert!(requests[0].contains("page=1") && requests[1].contains("page=2"), "{requests:?}");
    for want in [
        "tagged=python",
        "site=stackoverflow",
        "filter=withbody",
        "sort=creation",
        "order=asc",
        "fromdate=1217548800",
        "todate=1230768000",
        "key=the-app-key",
    ] {
        assert!(requests[0].contains(want), "{want} not in {}", requests[0]);
    }
    for w in expected() {
        let q = fetched.questions.iter().find(|q| q.id == w.id).unwrap_or_else(|| panic!("{} missing", w.id));
        assert_eq!(q.title, w.title_plain, "the API's HTML escaping is undone");
        assert_eq!(q.created, w.creation_unix);
    }
}

#[tokio::test]
async fn a_quota_running_out_mid_fetch_keeps_what_came() {
    let mut first: serde_json::Value = serde_json::from_slice(&page(1)).expect("json");
    first["quota_remaining"] = 0.into();
    let server = replay(vec![(200, serde_json::to_vec(&first).expect("json"))]);
    let fetched = api(&server.base_url, None).questions("java", WINDOW).await;
    assert_eq!(fetched.stopped, Stop::QuotaExhausted);
    assert_eq!((fetched.pages, fetched.questions.len()), (1, 8));
    assert_eq!(server.requests.lock().expect("lock").len(), 1, "no request after the quota ran out");
}

#[tokio::test]
async fn a_malformed_page_stops_the_fetch_and_keeps_the_pages_before() {
    let server = replay(vec![(200, page(1)), (200, b"<html>502 Bad Gateway</html>".to_vec())]);
    let fetched = api(&server.base_url, Some("the-app-key")).questions("c#", WINDOW).await;
    assert_eq!(fetched.questions.len(), 8);
    let Stop::Failed(why) = &fetched.stopped else { panic!("{:?}", fetched.stopped) };
    assert!(
        why.contains("page=2") && why.contains("is not the API's JSON") && why.contains("502 Bad Gateway"),
        "{why}"
    );
    assert!(!why.contains("the-app-key"), "the key leaked: {why}");
}

#[tokio::test]
async fn an_api_error_is_named() {
    let throttled = br#"{"error_id":502,"error_message":"too many requests from this IP, more requests available in 81 seconds","error_name":"throttle_violation"}"#;
    let server = replay(vec![(400, throttled.to_vec())]);
    let fetched = api(&server.base_url, None).questions("javascript", WINDOW).await;
    assert!(fetched.questions.is_empty());
    let Stop::Failed(why) = &fetched.stopped else { panic!("{:?}", fetched.stopped) };
    assert!(why.contains("throttle_violation 502") && why.contains("81 seconds"), "{why}");
}

#[tokio::test]
async fn a_page_limit_bounds_one_run() {
    let server = replay(vec![(200, page(1))]);
    let config = ApiConfig { base_url: server.base_url.clone(), max_pages: Some(1), ..ApiConfig::default() };
    let fetched = Api::new(config).expect("client").questions("python", WINDOW).await;
    assert_eq!((fetched.stopped, fetched.questions.len()), (Stop::PageLimit, 8));
}

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harvest::inbox::{Batch, Inbox, batch_name};
use harvest::{Label, Question, Skip, dump};

use crate::fixtures;

fn questions() -> Vec<Question> {
    let mut out = Vec::new();
    dump::read_questions(std::fs::read(fixtures().join("Posts.xml")).expect("Posts.xml").as_slice(), |q| {
        out.push(q);
        std::ops::ControlFlow::Continue(())
    })
    .expect("dump");
    out
}

async fn land(inbox: &Inbox, questions: &[Question], eval: &[&str], name: &str) -> (Batch, Option<String>) {
    let mut seen = inbox.seen().await.expect("seen");
    seen.add_texts(eval.iter().copied());
    let mut batch = Batch::default();
    for q in questions {
        batch.offer(q, &mut seen);
    }
    let written = inbox.put(name, &batch).await.expect("put");
    (batch, written)
}

#[tokio::test]
async fn a_batch_lands_whole_once_and_a_rerun_writes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let inbox = Inbox::open(dir.path().to_str().expect("utf-8"), Vec::<(String, String)>::new()).expect("inbox");
    let all = questions();
    let (first, written) = land(&inbox, &all, &[], &batch_name(1_700_000_000, "dump")).await;
    assert_eq!(written.as_deref(), Some("batch-20231114T221320Z-dump.parquet"));
    assert_eq!(first.skipped.get(Skip::SeveralLanguageTags), 1, "{:?}", first.skipped);
    assert_eq!(first.skipped.get(Skip::NoLanguageTag), 2, "{:?}", first.skipped);
    assert_eq!(first.rows.len(), 11);
    assert_eq!(first.labels.get(&Label::Python), Some(&2));

    // The trainer's own reader takes the batch; the attribution is in it.
    let read = dataset::read_source(dir.path()).expect("the trainer reads the inbox");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].rows.len(), 11);
    let keys =
        dataset::batch_keys(&std::fs::read(dir.path().join(written.expect("name"))).expect("bytes")).expect("keys");
    assert!(keys.iter().all(|k| k.question_id.is_some() && k.created.is_some()));

    // The same window again: nothing new, nothing written.
    let (again, written) = land(&inbox, &all, &[], &batch_name(1_700_000_600, "dump")).await;
    assert_eq!((again.rows.len(), written), (0, None));
    assert_eq!(again.skipped.get(Skip::SeenQuestion), 11);
    assert_eq!(inbox.batch_names().await.expect("names").len(), 1);

    // Where each tag's next fetch resumes: the newest question per label.
    let seen = inbox.seen().await.expect("seen");
    let newest_python =
        all.iter().filter(|q| harvest::label::label(&q.tags) == Ok(Label::Python)).map(|q| q.created).max();
    assert_eq!(seen.newest.get("python").copied(), newest_python);
}

#[tokio::test]
async fn a_question_in_the_evaluation_data_never_lands() {
    let dir = tempfile::tempdir().expect("dir");
    let inbox = Inbox::open(dir.path().to_str().expect("utf-8"), Vec::<(String, String)>::new()).expect("inbox");
    let all = questions();
    let java = all.iter().find(|q| harvest::label::label(&q.tags) == Ok(Label::Java)).expect("a java question");
    // The evaluation copy differs in case and spacing only.
    let eval_copy = java.text().to_uppercase().replace('\n', "  \n ");
    let (batch, _) = land(&inbox, &all, &[eval_copy.as_str()], "batch-1.parquet").await;
    assert_eq!(batch.skipped.get(Skip::SeenText), 1);
    let keys = dataset::batch_keys(&std::fs::read(dir.path().join("batch-1.parquet")).expect("bytes")).expect("keys");
    assert!(!keys.iter().any(|k| k.question_id == Some(java.id)));
}

#[tokio::test]
async fn a_write_cut_short_leaves_no_batch_the_trainer_would_read() {
    let dir = tempfile::tempdir().expect("dir");
    let inbox = Inbox::open(dir.path().to_str().expect("utf-8"), Vec::<(String, String)>::new()).expect("inbox");
    land(&inbox, &questions(), &[], "batch-1.parquet").await;
    // What a crash mid-put leaves in a folder: object_store's staging file, half written.
    let whole = std::fs::read(dir.path().join("batch-1.parquet")).expect("bytes");
    std::fs::write(dir.path().join("batch-2.parquet#1"), &whole[..whole.len() / 2]).expect("staging");
    assert_eq!(inbox.batch_names().await.expect("names"), ["batch-1.parquet"]);
    assert_eq!(dataset::read_source(dir.path()).expect("reads").len(), 1);
    inbox.seen().await.expect("the half-written file is not read as a batch");
    // A name that is not a batch's is refused before anything is written.
    let mut batch = Batch::default();
    batch.offer(&questions()[0], &mut Default::default());
    let err = inbox.put("../escape.parquet", &batch).await.expect_err("refused");
    assert!(err.to_string().contains("NAME.parquet"), "{err}");
}

/// moto's S3 server from the set-up venv, on a free port, stopped when dropped.
struct Moto(Child, String);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> Moto {
    let tools = launcher::tools::Tools::from_env();
    let bin = tools.python.with_file_name("moto_server");
    let port = launcher::free_port().expect("port");
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{}` (scripts/setup.sh installs moto[server]): {e}", bin.display()));
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not listen on {endpoint}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto(child, endpoint)
}

#[tokio::test]
async fn an_s3_inbox_takes_batches_and_dedupes_like_a_folder() {
    let server = moto();
    reqwest::Client::new().put(format!("{}/stacktag-data", server.1)).send().await.expect("create the bucket");
    let options = [
        ("aws_endpoint", server.1.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
        ("aws_region", "us-east-1"),
    ];
    let inbox = Inbox::open("s3://stacktag-data/inbox", options).expect("inbox");
    let all = questions();
    let (first, written) = land(&inbox, &all, &[], "batch-1.parquet").await;
    assert_eq!((first.rows.len(), written.as_deref()), (11, Some("inbox/batch-1.parquet")));
    assert_eq!(inbox.batch_names().await.expect("names"), ["batch-1.parquet"]);
    let (again, written) = land(&inbox, &all, &[], "batch-2.parquet").await;
    assert_eq!((again.rows.len(), written), (0, None));
    assert_eq!(inbox.seen().await.expect("seen").ids.len(), 11);

    // A local copy for the trainer's reader, byte for byte; a second copy fetches nothing new.
    let dir = tempfile::tempdir().expect("dir");
    let copied = inbox.copy_to(dir.path()).await.expect("copy");
    assert_eq!(copied, [dir.path().join("batch-1.parquet")]);
    assert_eq!(dataset::read_source(dir.path()).expect("reads")[0].rows.len(), 11);
    let stamp = std::fs::metadata(&copied[0]).and_then(|m| m.modified()).expect("mtime");
    inbox.copy_to(dir.path()).await.expect("copy again");
    assert_eq!(std::fs::metadata(&copied[0]).and_then(|m| m.modified()).expect("mtime"), stamp, "rewritten");

    // With a local copy, reading the keys fills it: the copy afterwards fetches nothing again.
    let mirror = tempfile::tempdir().expect("dir");
    let cached = Inbox::open("s3://stacktag-data/inbox", options).expect("inbox").with_local_copy(mirror.path());
    assert_eq!(cached.seen().await.expect("seen").ids.len(), 11);
    let kept = mirror.path().join("batch-1.parquet");
    assert_eq!(std::fs::read(&kept).expect("kept"), std::fs::read(&copied[0]).expect("copied"));
    let stamp = std::fs::metadata(&kept).and_then(|m| m.modified()).expect("mtime");
    cached.copy_to(mirror.path()).await.expect("copy");
    assert_eq!(std::fs::metadata(&kept).and_then(|m| m.modified()).expect("mtime"), stamp, "fetched twice");
}

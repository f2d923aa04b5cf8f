//! Data loading: every format, every skip reason, every error path.

use std::fs;
use std::io::Write;
use std::path::Path;

use polars::prelude::*;
use trainer::data::{self, Batch, DataError, EvalSource, RawRow, RawText, SkipReason, read_source};

use crate::common::{tiny_csv, write_csv};

fn labels() -> Vec<String> {
    ["csharp", "java", "javascript", "python"].map(String::from).to_vec()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn texts(batches: &[Batch]) -> Vec<(Option<String>, RawText)> {
    batches.iter().flat_map(|b| b.rows.iter().map(|r| (r.label.clone(), r.text.clone()))).collect()
}

#[test]
fn csv_and_csv_gz_give_the_same_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gz = dir.path().join("tiny.csv.gz");
    fs::write(&gz, gzip(&fs::read(tiny_csv()).expect("read"))).expect("write");
    let plain = read_source(&tiny_csv()).expect("csv");
    let packed = read_source(&gz).expect("csv.gz");
    assert_eq!(plain[0].rows.len(), 160);
    assert_eq!(texts(&plain), texts(&packed));
    assert_ne!(plain[0].digest, packed[0].digest, "the digest is of the file's bytes");
}

#[test]
fn the_real_data_set_reads_with_crlf_and_quoted_fields() {
    let rows = read_source(&crate::common::shared_data().join("test.csv.gz")).expect("read");
    assert_eq!(rows[0].rows.len(), 8000);
    let RawText::Text(first) = &rows[0].rows[0].text else { panic!("first row has no text") };
    assert!(!first.contains('\r'), "CRLF record separators must not leak into text");
    assert_eq!(rows[0].rows[0].label.as_deref(), Some("csharp"));
}

#[test]
fn parquet_reads_label_and_text_and_ignores_other_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("batch.parquet");
    let mut df = df!(
        "id" => [1i64, 2],
        "label" => ["python", "java"],
        "text" => ["import os", "public class a {}"],
    )
    .expect("frame");
    ParquetWriter::new(fs::File::create(&path).expect("create")).finish(&mut df).expect("write");
    let batches = read_source(&path).expect("parquet");
    assert_eq!(
        texts(&batches),
        vec![
            (Some("python".into()), RawText::Text("import os".into())),
            (Some("java".into()), RawText::Text("public class a {}".into())),
        ]
    );
}

fn write_label_tree(root: &Path) {
    for (label, n, text) in [("python", 0, "import os"), ("python", 1, "def f(): pass"), ("java", 0, "class a {}")] {
        fs::create_dir_all(root.join(label)).expect("mkdir");
        fs::write(root.join(label).join(format!("{n}.txt")), text).expect("write");
    }
    fs::write(root.join("python").join("2.txt"), b"bad \xff bytes").expect("write");
}

#[test]
fn tensorflow_layout_directory_labels_rows_by_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_label_tree(dir.path());
    let batches = read_source(dir.path()).expect("layout");
    assert_eq!(batches.len(), 1, "a label-folder tree is one batch");
    let rows = texts(&batches);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], (Some("java".into()), RawText::Text("class a {}".into())));
    assert!(rows.contains(&(Some("python".into()), RawText::InvalidUtf8)));
}

#[test]
fn tensorflow_tar_gz_reads_like_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("train");
    write_label_tree(&tree);
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_dir_all("stack_overflow/train", &tree).expect("tar");
    let archive = dir.path().join("so.tar.gz");
    fs::write(&archive, gzip(&builder.into_inner().expect("tar"))).expect("write");
    let mut from_tar = texts(&read_source(&archive).expect("tar.gz"));
    let mut from_dir = texts(&read_source(&tree).expect("dir"));
    let key = |r: &(Option<String>, RawText)| format!("{r:?}");
    from_tar.sort_by_key(key);
    from_dir.sort_by_key(key);
    assert_eq!(from_tar, from_dir);
}

#[test]
fn a_directory_of_batches_reads_each_file_in_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_csv(&dir.path().join("2026-02.csv"), &[("java", "second batch")]);
    write_csv(&dir.path().join("2026-01.csv"), &[("python", "first batch")]);
    fs::write(dir.path().join("notes.md"), "not data").expect("write");
    let batches = read_source(dir.path()).expect("batches");
    assert_eq!(batches.len(), 2);
    assert!(batches[0].path.ends_with("2026-01.csv"));
    assert!(batches[1].path.ends_with("2026-02.csv"));
}

#[test]
fn invalid_utf8_in_a_csv_row_skips_that_row_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mixed.csv");
    fs::write(&path, b"label,text\npython,import os\njava,\"bad \xc3\x28 bytes\"\n").expect("write");
    let batches = read_source(&path).expect("read");
    assert_eq!(batches[0].rows[0].text, RawText::Text("import os".into()));
    assert_eq!(batches[0].rows[1].text, RawText::InvalidUtf8);
}

#[test]
fn every_skip_reason_is_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let train = dir.path().join("train.csv");
    let eval = dir.path().join("eval.csv");
    fs::write(
        &train,
        "label,text\n\
         python,import os\n\
         java,class a {}\n\
         python,\"   \"\n\
         python,\n\
         ,no label here\n\
         ruby,puts 'hi'\n\
         Python,import os\n\
         java,\"  CLASS   a {}  \"\n\
         javascript,var x = 1;\n\
         csharp,this one is in eval\n",
    )
    .expect("write");
    write_csv(&eval, &[("csharp", "This one is in eval"), ("java", "eval only")]);
    let mut train_batches = read_source(&train).expect("train");
    train_batches[0].rows.push(RawRow { label: Some("java".into()), text: RawText::InvalidUtf8, question_id: None });
    let ds = data::prepare(&train_batches, EvalSource::Batches(read_source(&eval).expect("eval")), &labels())
        .expect("prepare");
    let r = &ds.train_report;
    assert_eq!(r.read, 11);
    assert_eq!(r.used, 3, "import os, class a {{}}, var x = 1");
    assert_eq!(r.skipped.get(&SkipReason::EmptyText), Some(&2));
    assert_eq!(r.skipped.get(&SkipReason::MissingLabel), Some(&1));
    assert_eq!(r.skipped.get(&SkipReason::UnknownLabel), Some(&1));
    // `Python,import os` repeats row 1 (labels are case-folded); the spaced `CLASS a {}` is
    // row 2 once normalised.
    assert_eq!(r.skipped.get(&SkipReason::Duplicate), Some(&2));
    assert_eq!(r.skipped.get(&SkipReason::InEvalData), Some(&1));
    assert_eq!(r.skipped.get(&SkipReason::InvalidUtf8), Some(&1));
    assert_eq!(ds.eval.len(), 2);
}

#[test]
fn the_split_is_stratified_seeded_and_disjoint() {
    let batches = read_source(&tiny_csv()).expect("read");
    let split = |seed| data::prepare(&batches, EvalSource::Split { fraction: 0.25, seed }, &labels()).expect("prepare");
    let a = split(1);
    for label in 0..4 {
        assert_eq!(a.eval.iter().filter(|e| e.label == label).count(), 10, "label {label}");
        assert_eq!(a.train.iter().filter(|e| e.label == label).count(), 30, "label {label}");
    }
    assert!(a.eval.iter().all(|e| !a.train.iter().any(|t| t.text == e.text)));
    assert_eq!(a.eval, split(1).eval, "same seed, same split");
    assert_ne!(a.eval, split(2).eval, "another seed, another split");
}

#[test]
fn the_snapshot_hash_follows_content_and_batch_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, two) = (dir.path().join("1.csv"), dir.path().join("2.csv"));
    write_csv(&one, &[("python", "a")]);
    write_csv(&two, &[("java", "b")]);
    let read = |p: &Path| read_source(p).expect("read").remove(0);
    let (b1, b2) = (read(&one), read(&two));
    let base = data::snapshot_of(&[b1.clone(), b2.clone()]);
    assert_eq!(base, data::snapshot_of(&[read(&one), read(&two)]), "stable");
    assert_ne!(base, data::snapshot_of(&[b2.clone(), b1.clone()]), "order matters");
    write_csv(&two, &[("java", "b changed")]);
    assert_ne!(base, data::snapshot_of(&[b1, read(&two)]), "content matters");
}

#[test]
fn a_missing_path_is_an_error_that_names_it() {
    let err = read_source(Path::new("/no/such/data.csv")).expect_err("must fail");
    assert!(matches!(err, DataError::Unreadable { .. }));
    assert!(err.to_string().contains("`/no/such/data.csv`"), "{err}");
}

#[test]
fn a_file_without_text_column_names_the_file_and_its_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wrong.csv");
    fs::write(&path, "label,body\npython,import os\n").expect("write");
    let err = read_source(&path).expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, DataError::MissingColumn { missing: "text", .. }), "{msg}");
    assert!(msg.contains("wrong.csv") && msg.contains("`body`"), "{msg}");
}

#[test]
fn an_unsupported_file_type_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data.json");
    fs::write(&path, "[]").expect("write");
    let err = read_source(&path).expect_err("must fail");
    assert!(matches!(err, DataError::UnsupportedFormat { .. }), "{err}");
}

#[test]
fn a_corrupt_gzip_is_a_parse_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.csv.gz");
    let mut bytes = gzip(b"label,text\npython,import os\n");
    bytes.truncate(bytes.len() / 2);
    fs::write(&path, bytes).expect("write");
    let err = read_source(&path).expect_err("must fail");
    assert!(matches!(err, DataError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("broken.csv.gz"), "{err}");
}

#[test]
fn an_empty_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = read_source(dir.path()).expect_err("must fail");
    assert!(matches!(err, DataError::EmptyDirectory { .. }), "{err}");
}

#[test]
fn a_single_label_is_too_few() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("one.csv");
    write_csv(&path, &[("python", "a"), ("python", "b"), ("python", "c")]);
    let err =
        data::prepare(&read_source(&path).expect("read"), EvalSource::Split { fraction: 0.3, seed: 1 }, &labels())
            .expect_err("must fail");
    assert!(matches!(err, DataError::TooFewLabels { found: 1, .. }), "{err}");
}

#[test]
fn no_usable_rows_is_an_error_that_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.csv");
    write_csv(&path, &[("ruby", "a"), ("", "b"), ("python", " ")]);
    let err =
        data::prepare(&read_source(&path).expect("read"), EvalSource::Split { fraction: 0.3, seed: 1 }, &labels())
            .expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, DataError::NoUsableRows { set: "training", .. }), "{msg}");
    assert!(msg.contains("unknown_label") && msg.contains("missing_label") && msg.contains("empty_text"), "{msg}");
}

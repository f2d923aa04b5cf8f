//! MLflow's REST entities, as much of them as Stacktag reads. Unknown fields are ignored and
//! missing or `null` lists read as empty, so newer servers parse too.

use serde::{Deserialize, Deserializer, Serialize};

/// `null` or missing → `T::default()` (MLflow sends `"aliases": null` from some calls).
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experiment {
    /// Its id (a string of digits on the OSS server).
    pub experiment_id: String,
    /// Its name.
    pub name: String,
    /// Where its runs' artifacts go, e.g. `mlflow-artifacts:/1`.
    #[serde(default)]
    pub artifact_location: Option<String>,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: Option<String>,
}

/// A key/value tag (runs, experiments, models and versions alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl Tag {
    /// A tag.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.into() }
    }
}

/// A run parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// The key.
    pub key: String,
    /// The value (MLflow keeps params as strings, at most 6000 characters).
    pub value: String,
}

impl Param {
    /// A param.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self { key: key.into(), value: value.into() }
    }
}

/// One metric value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The key.
    pub key: String,
    /// The value.
    pub value: f64,
    /// When, in ms since the epoch.
    pub timestamp: i64,
    /// The step (0 for a one-off figure).
    #[serde(default)]
    pub step: i64,
}

impl Metric {
    /// A metric at step 0.
    pub fn new(key: impl Into<String>, value: f64, timestamp: i64) -> Self {
        Self { key: key.into(), value, timestamp, step: 0 }
    }
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Running.
    Running,
    /// Scheduled.
    Scheduled,
    /// Finished successfully.
    Finished,
    /// Failed.
    Failed,
    /// Killed.
    Killed,
}

/// A run's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Its id.
    pub run_id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// Its name.
    #[serde(default)]
    pub run_name: Option<String>,
    /// Its state.
    #[serde(default)]
    pub status: Option<RunStatus>,
    /// Start, ms since the epoch.
    #[serde(default)]
    pub start_time: Option<i64>,
    /// End, ms since the epoch.
    #[serde(default)]
    pub end_time: Option<i64>,
    /// Root of its artifacts, e.g. `mlflow-artifacts:/1/<run>/artifacts`.
    pub artifact_uri: String,
}

/// A run's logged data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// Latest value of each metric.
    #[serde(default, deserialize_with = "nullable")]
    pub metrics: Vec<Metric>,
    /// Params.
    #[serde(default, deserialize_with = "nullable")]
    pub params: Vec<Param>,
    /// Tags.
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<Tag>,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Metadata.
    pub info: RunInfo,
    /// Logged data.
    #[serde(default)]
    pub data: RunData,
}

impl Run {
    /// The run's tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        find_tag(&self.data.tags, key)
    }

    /// The run's param `key`, if set.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.data.params.iter().find(|p| p.key == key).map(|p| p.value.as_str())
    }

    /// The latest value of metric `key`, if logged.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.data.metrics.iter().find(|m| m.key == key).map(|m| m.value)
    }
}

/// An alias → version pointer of a registered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    /// The alias, e.g. `champion`.
    pub alias: String,
    /// The version it points at: decimal digits, checked on arrival ([`registry_version`]).
    #[serde(deserialize_with = "registry_version")]
    pub version: String,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// Its name.
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Latest version per stage (MLflow's legacy view).
    #[serde(default, deserialize_with = "nullable")]
    pub latest_versions: Vec<ModelVersion>,
    /// Its aliases.
    #[serde(default, deserialize_with = "nullable")]
    pub aliases: Vec<Alias>,
    /// Its tags.
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<Tag>,
}

impl RegisteredModel {
    /// The version `alias` points at, if the alias exists.
    pub fn alias(&self, alias: &str) -> Option<&str> {
        self.aliases.iter().find(|a| a.alias == alias).map(|a| a.version.as_str())
    }

    /// The model's tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        find_tag(&self.tags, key)
    }
}

/// A model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The registered model's name.
    pub name: String,
    /// The version: decimal digits, checked on arrival ([`registry_version`]).
    #[serde(deserialize_with = "registry_version")]
    pub version: String,
    /// Where its files are, e.g. `mlflow-artifacts:/1/<run>/artifacts/bundle`.
    #[serde(default)]
    pub source: String,
    /// The run that produced it.
    #[serde(default)]
    pub run_id: Option<String>,
    /// `READY`, `PENDING_REGISTRATION` or `FAILED_REGISTRATION`.
    #[serde(default)]
    pub status: Option<String>,
    /// Why the status is what it is (Unity Catalog sets it on failed registrations).
    #[serde(default)]
    pub status_message: Option<String>,
    /// Unity Catalog only: where the version's own copy of the files lives (e.g.
    /// `s3://bucket/models/<id>/versions/<id>`), reached with temporary credentials.
    #[serde(default)]
    pub storage_location: Option<String>,
    /// Creation time, ms since the epoch.
    #[serde(default)]
    pub creation_timestamp: Option<i64>,
    /// Its tags.
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<Tag>,
    /// Aliases pointing at it (empty from `model-versions/search`: use
    /// [`RegisteredModel::aliases`] instead). The OSS server sends names, Unity Catalog
    /// `{alias, version}` objects; both read as names.
    #[serde(default, deserialize_with = "alias_names")]
    pub aliases: Vec<String>,
}

/// A registry version as it arrives, as a number (Unity Catalog) or a string (the OSS server),
/// kept only if it is what every registry hands out: a decimal integer, 1 to 19 digits. It names
/// directories and workflow outputs downstream, so `..`, `/etc` or a newline are refused here,
/// before anything could use them.
fn registry_version<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n.to_string()),
        Either::Text(t) => check_version(&t).map(|()| t).map_err(serde::de::Error::custom),
    }
}

/// `Ok` if `version` is a registry version: 1 to 19 ASCII digits (a `u64`, no sign).
pub fn check_version(version: &str) -> Result<(), String> {
    match !version.is_empty() && version.len() <= 19 && version.bytes().all(|b| b.is_ascii_digit()) {
        true => Ok(()),
        false => Err(format!("`{}` is not a registry version (a decimal integer)", version.escape_debug())),
    }
}

/// The status of a version whose files are in place.
pub const READY: &str = "READY";

/// Alias names, from `["champion"]` or `[{"alias": "champion", "version": "3"}]`.
fn alias_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Name(String),
        Pointer { alias: String },
    }
    let entries: Option<Vec<Entry>> = Option::deserialize(d)?;
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| match e {
            Entry::Name(n) | Entry::Pointer { alias: n } => n,
        })
        .collect())
}

impl ModelVersion {
    /// The version's tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        find_tag(&self.tags, key)
    }

    /// The version as a number, for ordering (`0` if the server sent something else).
    pub fn number(&self) -> u64 {
        self.version.parse().unwrap_or(0)
    }
}

/// One entry of an artifact listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// The path, relative to the listed directory's artifact root.
    pub path: String,
    /// True for a directory.
    #[serde(default)]
    pub is_dir: bool,
    /// Size in bytes (files only).
    #[serde(default, deserialize_with = "int64")]
    pub file_size: Option<u64>,
}

/// An int64 as protobuf's JSON mapping allows it: a number or a string of digits.
pub(crate) fn int64<'de, D: Deserializer<'de>, T: std::str::FromStr + Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Number(T),
        Text(String),
    }
    match Option::<Either<T>>::deserialize(d)? {
        None => Ok(None),
        Some(Either::Number(n)) => Ok(Some(n)),
        Some(Either::Text(t)) => {
            t.parse().map(Some).map_err(|_| serde::de::Error::custom(format!("`{t}` is not an integer")))
        }
    }
}

fn find_tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version_of(json: &str) -> Result<String, String> {
        let body = format!(r#"{{"name": "m", "version": {json}}}"#);
        serde_json::from_str::<ModelVersion>(&body).map(|v| v.version).map_err(|e| e.to_string())
    }

    #[test]
    fn a_version_is_a_decimal_integer_from_either_server() {
        assert_eq!(version_of(r#""12""#).as_deref(), Ok("12"));
        assert_eq!(version_of("12").as_deref(), Ok("12"), "Unity Catalog sends a number");
        let too_long = version_of(r#""18446744073709551615""#).expect_err("20 digits");
        assert!(too_long.contains("is not a registry version"), "{too_long}");
    }

    #[test]
    fn a_version_that_could_name_another_path_or_line_is_refused_on_arrival() {
        for hostile in [
            r#"".." "#,
            r#""/etc""#,
            r#""1/../..""#,
            r#""""#,
            r#""1\n2""#,
            r#""-1""#,
            r#""+1""#,
            r#"" 1""#,
            "-1",
            "1.5",
        ] {
            let err = version_of(hostile).expect_err(hostile);
            assert!(err.contains("registry version") || err.contains("did not match any variant"), "{hostile}: {err}");
        }
        let err = version_of(r#""..""#).expect_err("..");
        assert!(err.contains("`..` is not a registry version"), "{err}");
        let alias = serde_json::from_str::<Alias>(r#"{"alias": "champion", "version": "../x"}"#).expect_err("alias");
        assert!(alias.to_string().contains("`../x` is not a registry version"), "{alias}");
    }
}

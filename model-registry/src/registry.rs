//! Where the registry is, which names to use, and what it already holds.

use anyhow::Context;
use mlflow_client::types::{ModelVersion, RegisteredModel};
use mlflow_client::{Client, ClientConfig};

use crate::names::{aliases, tags};

/// A resolved registry configuration.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The MLflow client's configuration (its `Debug` redacts secrets).
    pub client: ClientConfig,
    /// Experiment that training runs are logged to.
    pub experiment: String,
    /// Registered model name.
    pub model: String,
    /// Who signs what is registered, and whose signatures a download accepts.
    pub signing: crate::Signing,
}

impl RegistryConfig {
    /// Checks the names before any call, for the registry and workspace `client` points at
    /// (not empty; on Databricks an experiment is a workspace path, on Unity Catalog a model
    /// is `catalog.schema.model`), and that the registry has aliases, which everything
    /// Stacktag does with a model needs (`challenger`, `champion`). `what` names the settings
    /// in errors, e.g. `["--experiment", "--registered-model"]`.
    pub fn new(client: ClientConfig, experiment: &str, model: &str, what: [&str; 2]) -> anyhow::Result<Self> {
        let (experiment, model) = (experiment.trim(), model.trim());
        for (name, value) in what.iter().zip([experiment, model]) {
            if value.is_empty() {
                anyhow::bail!("`{name}` must not be empty");
            }
        }
        mlflow_client::check_experiment_name(client.target, experiment).with_context(|| format!("`{}`", what[0]))?;
        mlflow_client::check_model_name(client.registry, model).with_context(|| format!("`{}`", what[1]))?;
        mlflow_client::require_aliases(client.registry, "Stacktag's registry")
            .with_context(|| format!("`{}` moves `{}` and `{}`", what[1], aliases::CHALLENGER, aliases::CHAMPION))?;
        Ok(Self { client, experiment: experiment.to_owned(), model: model.to_owned(), signing: Default::default() })
    }

    /// The same with `signing` (see [`crate::Signing::from_lookup`]).
    pub fn with_signing(mut self, signing: crate::Signing) -> Self {
        self.signing = signing;
        self
    }
}

/// A client and the names it works on.
#[derive(Debug)]
pub struct Registry {
    client: Client,
    cfg: RegistryConfig,
}

impl Registry {
    /// Builds the client (no request is sent yet).
    pub fn new(cfg: RegistryConfig) -> anyhow::Result<Self> {
        let client = Client::new(cfg.client.clone())?;
        Ok(Self { client, cfg })
    }

    /// The async client, for calls this crate does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.cfg
    }

    /// The registered model's name.
    pub fn model(&self) -> &str {
        &self.cfg.model
    }
}

/// A version already trained on some data snapshot, so that training on it again is pointless.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrainedBefore {
    /// That version.
    pub version: String,
    /// What it means, in words.
    pub reason: String,
    /// Whether the gate still has to (re)decide on it: its promotion was cut short (see
    /// [`crate::gate`]). Gate it again rather than train again or skip it.
    pub gate_again: bool,
}

/// The registered model, or `None` while it does not exist.
pub(crate) async fn registered_model(reg: &Registry) -> anyhow::Result<Option<RegisteredModel>> {
    let name = reg.model();
    match reg.client().get_registered_model(name).await {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(anyhow::Error::from(e).context(format!("cannot read registered model `{name}`"))),
    }
}

/// The version `alias` names on `model`, read whole (with its tags), or `None` without one.
pub(crate) async fn aliased_version(
    reg: &Registry,
    model: &RegisteredModel,
    alias: &str,
) -> anyhow::Result<Option<ModelVersion>> {
    let Some(v) = model.alias(alias) else { return Ok(None) };
    let name = reg.model();
    let version = reg
        .client()
        .get_model_version(name, v)
        .await
        .with_context(|| format!("cannot read {alias} version {v} of `{name}`"))?;
    Ok(Some(version))
}

/// The version that makes training on `snapshot` pointless, if any: the champion, when it was
/// trained on it; or the newest version, when it was trained on it and the gate decided on it
/// (a rejected model on the same data would be rejected again, so it is not registered
/// twice), or began a promotion of it that never took effect (`gate_again`: a lost alias move
/// must not leave that data skipped for good). A newest version on it that was never gated at
/// all is not returned: its registration may be what failed, so the data is trained again.
pub async fn trained_before(reg: &Registry, snapshot: &str) -> anyhow::Result<Option<TrainedBefore>> {
    let c = reg.client();
    let name = reg.model();
    let Some(model) = registered_model(reg).await? else { return Ok(None) };
    if let Some(v) = aliased_version(reg, &model, aliases::CHAMPION).await?
        && v.tag(tags::DATA_SNAPSHOT) == Some(snapshot)
    {
        return Ok(Some(TrainedBefore {
            reason: format!("data snapshot unchanged since champion version {}", v.version),
            version: v.version,
            gate_again: false,
        }));
    }
    let versions = c.model_versions(name).await.with_context(|| format!("cannot list versions of `{name}`"))?;
    let Some(newest) = versions.last() else { return Ok(None) };
    // Searches may leave tags out (Unity Catalog's do): read the version itself.
    let newest = c
        .get_model_version(name, &newest.version)
        .await
        .with_context(|| format!("cannot read version {} of `{name}`", newest.version))?;
    if newest.tag(tags::DATA_SNAPSHOT) != Some(snapshot) {
        return Ok(None);
    }
    // Not the champion (checked above), so a pending promotion did not take effect.
    if let Some(pending) = crate::gate::unfinished_promotion(&newest) {
        return Ok(Some(TrainedBefore {
            reason: format!(
                "data snapshot unchanged since version {}, whose promotion ({pending}) was cut short before `{}` moved",
                newest.version,
                aliases::CHAMPION
            ),
            version: newest.version,
            gate_again: true,
        }));
    }
    if let Some(decision) = newest.tag(tags::DECISION) {
        return Ok(Some(TrainedBefore {
            reason: format!(
                "data snapshot unchanged since version {}, which the gate already decided on ({decision})",
                newest.version
            ),
            version: newest.version.clone(),
            gate_again: false,
        }));
    }
    Ok(None)
}

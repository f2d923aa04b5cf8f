//! The model registry calls, one set for the three registry APIs ([`RegistryApi`]). The
//! OSS server and Databricks' workspace registry share MLflow's `registered-models/…` and
//! `model-versions/…` endpoints; Unity Catalog has the same calls, with the same JSON for what
//! Stacktag uses, under `unity-catalog/…` (MLflow's `UcModelRegistryStore` is the reference),
//! plus the upload of a version's files ([`crate::unity_catalog`]).
//!
//! Names are checked before any call ([`check_model_name`]), and alias calls on the workspace
//! registry, which has none, fail here with what to use instead.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::Client;
use crate::config::{RegistryApi, Target};
use crate::error::Error;
use crate::types::{ModelVersion, RegisteredModel, Tag};

/// Checks `name` for the registry `api` before any call: Unity Catalog models are named
/// `catalog.schema.model`.
pub fn check_model_name(api: RegistryApi, name: &str) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidName { what: "registered model", name: name.to_owned(), reason };
    if name.trim().is_empty() {
        return Err(invalid("the name is empty".into()));
    }
    if api == RegistryApi::UnityCatalog {
        let parts: Vec<&str> = name.split('.').collect();
        let bad_part = parts.iter().any(|p| p.is_empty() || p.contains(char::is_whitespace) || p.contains('/'));
        if parts.len() != 3 || bad_part {
            return Err(invalid(format!(
                "a Unity Catalog model is named `catalog.schema.model` (three non-empty levels, e.g. `main.stacktag.stacktag`); this has {} level{}",
                parts.len(),
                if parts.len() == 1 { "" } else { "s" }
            )));
        }
    }
    Ok(())
}

/// Checks an experiment name for the tracking `target` before any call: on Databricks an
/// experiment is a workspace path.
pub fn check_experiment_name(target: Target, name: &str) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidName { what: "experiment", name: name.to_owned(), reason };
    if name.trim().is_empty() {
        return Err(invalid("the name is empty".into()));
    }
    if target == Target::Databricks && !name.starts_with('/') {
        return Err(invalid(
            "on Databricks an experiment is a workspace path, e.g. `/Shared/stacktag` or `/Users/<you>/stacktag`"
                .into(),
        ));
    }
    Ok(())
}

/// Fails when `registry` has no aliases (Databricks' workspace registry), saying what to use
/// instead. Callers that move or read aliases check this first, so that nothing is written
/// before the alias call would fail.
pub fn require_aliases(registry: RegistryApi, call: &str) -> Result<(), Error> {
    if registry.has_aliases() {
        return Ok(());
    }
    Err(Error::Unsupported {
        call: call.to_owned(),
        reason: "the Databricks workspace model registry (`MLFLOW_REGISTRY_URI=databricks`) has no aliases, and Stacktag's `champion` is one; use Unity Catalog: `MLFLOW_REGISTRY_URI=databricks-uc` (or leave it unset) and a `catalog.schema.model` name".into(),
    })
}

impl Client {
    /// The registry endpoint `endpoint` (e.g. `registered-models/get`) of the configured
    /// registry, after checking `name` for it.
    fn registry_endpoint(&self, endpoint: &str, name: &str) -> Result<String, Error> {
        check_model_name(self.cfg.registry, name)?;
        Ok(match self.cfg.registry {
            RegistryApi::UnityCatalog => format!("unity-catalog/{endpoint}"),
            RegistryApi::Tracking | RegistryApi::DatabricksWorkspace => endpoint.to_owned(),
        })
    }

    /// Fails when the configured registry has no aliases ([`require_aliases`]).
    pub fn require_aliases(&self, call: &str) -> Result<(), Error> {
        require_aliases(self.cfg.registry, call)
    }

    async fn registry_get<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        name: &str,
        query: &[(&str, &str)],
    ) -> Result<T, Error> {
        let endpoint = self.registry_endpoint(endpoint, name)?;
        self.call(Method::GET, &endpoint, query, None).await
    }

    async fn registry_post<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        name: &str,
        body: Value,
    ) -> Result<T, Error> {
        let endpoint = self.registry_endpoint(endpoint, name)?;
        self.call(Method::POST, &endpoint, &[], Some(&body)).await
    }

    /// Creates the registered model `name`.
    pub async fn create_registered_model(&self, name: &str) -> Result<RegisteredModel, Error> {
        #[derive(Deserialize)]
        struct Reply {
            registered_model: RegisteredModel,
        }
        let r: Reply = self.registry_post("registered-models/create", name, json!({ "name": name })).await?;
        Ok(r.registered_model)
    }

    /// The registered model `name`, with its aliases and tags.
    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel, Error> {
        #[derive(Deserialize)]
        struct Reply {
            registered_model: RegisteredModel,
        }
        let r: Reply = self.registry_get("registered-models/get", name, &[("name", name)]).await?;
        Ok(r.registered_model)
    }

    /// The registered model `name`, created if it does not exist yet.
    pub async fn get_or_create_registered_model(&self, name: &str) -> Result<RegisteredModel, Error> {
        match self.get_registered_model(name).await {
            Ok(m) => return Ok(m),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        match self.create_registered_model(name).await {
            Ok(m) => Ok(m),
            Err(e) if e.is_already_exists() => self.get_registered_model(name).await,
            Err(e) => Err(e),
        }
    }

    /// Sets a tag on the registered model `name`.
    pub async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<(), Error> {
        let _: Value = self
            .registry_post("registered-models/set-tag", name, json!({ "name": name, "key": key, "value": value }))
            .await?;
        Ok(())
    }

    /// Registers a new version of `name` whose files are at `source`, with no upload: on the
    /// OSS server and the workspace registry the version points at its source. (Unity Catalog
    /// keeps its own copy: use [`Client::create_model_version_with_files`].)
    ///
    /// On the OSS server, pass the run's `mlflow-artifacts:/…` location and its `run_id`: a
    /// `runs:/…` source breaks `get-artifact`, and the server does not check that `source`
    /// exists, so upload first.
    pub async fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: Option<&str>,
        tags: &[Tag],
    ) -> Result<ModelVersion, Error> {
        #[derive(Deserialize)]
        struct Reply {
            model_version: ModelVersion,
        }
        let mut body = json!({ "name": name, "source": source, "tags": tags });
        if let Some(run_id) = run_id {
            body["run_id"] = json!(run_id);
        }
        let r: Reply = self.registry_post("model-versions/create", name, body).await?;
        Ok(r.model_version)
    }

    /// Version `version` of `name`.
    pub async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion, Error> {
        #[derive(Deserialize)]
        struct Reply {
            model_version: ModelVersion,
        }
        let r: Reply = self.registry_get("model-versions/get", name, &[("name", name), ("version", version)]).await?;
        Ok(r.model_version)
    }

    /// Every version of `name`, oldest first (all pages).
    pub async fn model_versions(&self, name: &str) -> Result<Vec<ModelVersion>, Error> {
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        let mut all = self.search_model_versions(name, &filter).await?;
        all.sort_by_key(ModelVersion::number);
        Ok(all)
    }

    /// Model versions matching `filter` (e.g. `name='stacktag'`), all pages; `name` is the
    /// model the filter is about, checked for the registry. Their `aliases` field is empty:
    /// MLflow leaves it out of search results.
    pub async fn search_model_versions(&self, name: &str, filter: &str) -> Result<Vec<ModelVersion>, Error> {
        #[derive(Deserialize)]
        struct Reply {
            #[serde(default)]
            model_versions: Vec<ModelVersion>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("filter", filter), ("max_results", "200")];
            if let Some(t) = &token {
                query.push(("page_token", t));
            }
            let r: Reply = self.registry_get("model-versions/search", name, &query).await?;
            all.extend(r.model_versions);
            match r.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(all),
            }
        }
    }

    /// Sets a tag on version `version` of `name`.
    pub async fn set_model_version_tag(&self, name: &str, version: &str, key: &str, value: &str) -> Result<(), Error> {
        let body = json!({ "name": name, "version": version, "key": key, "value": value });
        let _: Value = self.registry_post("model-versions/set-tag", name, body).await?;
        Ok(())
    }

    /// Points `alias` of `name` at `version` (creating or moving it). On Unity Catalog only
    /// the model's owner may; anyone else gets [`Error::is_permission_denied`].
    pub async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<(), Error> {
        self.require_aliases("setting an alias")?;
        let body = json!({ "name": name, "alias": alias, "version": version });
        let _: Value = self.registry_post("registered-models/alias", name, body).await?;
        Ok(())
    }

    /// Removes `alias` from `name`.
    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), Error> {
        self.require_aliases("deleting an alias")?;
        let endpoint = self.registry_endpoint("registered-models/alias", name)?;
        let _: Value =
            self.call(Method::DELETE, &endpoint, &[], Some(&json!({ "name": name, "alias": alias }))).await?;
        Ok(())
    }

    /// The version `alias` of `name` points at. A missing alias is an error
    /// (`INVALID_PARAMETER_VALUE` on MLflow 3.17); to ask whether it exists, read
    /// [`RegisteredModel::alias`] from [`Client::get_registered_model`].
    pub async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion, Error> {
        self.require_aliases("reading an alias")?;
        #[derive(Deserialize)]
        struct Reply {
            model_version: ModelVersion,
        }
        let r: Reply = self.registry_get("registered-models/alias", name, &[("name", name), ("alias", alias)]).await?;
        Ok(r.model_version)
    }

    /// Deletes version `version` of `name` (used to clean up a Unity Catalog version whose
    /// upload failed).
    pub async fn delete_model_version(&self, name: &str, version: &str) -> Result<(), Error> {
        let endpoint = self.registry_endpoint("model-versions/delete", name)?;
        let _: Value =
            self.call(Method::DELETE, &endpoint, &[], Some(&json!({ "name": name, "version": version }))).await?;
        Ok(())
    }
}

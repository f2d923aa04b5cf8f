//! What can go wrong, named by the call that failed. No variant holds a secret.

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("`{var}` is not set")]
    Missing {
        /// The variable's name.
        var: &'static str,
    },
    /// A variable is set to something unusable.
    #[error("`{var}` is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        var: &'static str,
        /// Why (secrets already redacted).
        reason: String,
    },
}

/// A failed MLflow call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// MLflow refused the request (a 4xx other than 429): its `error_code` and message.
    #[error("MLflow `{call}` failed: {error_code}: {message} (HTTP {status})")]
    Api {
        /// The call, e.g. `registered-models/alias`.
        call: String,
        /// HTTP status.
        status: u16,
        /// MLflow's `error_code`, e.g. `RESOURCE_DOES_NOT_EXIST`.
        error_code: String,
        /// MLflow's message.
        message: String,
    },
    /// The server kept answering 429 or 5xx until the retries ran out.
    #[error("MLflow `{call}` failed at `{url}`: HTTP {status} ({retries} retries): {message}")]
    Unavailable {
        /// The call.
        call: String,
        /// The server's base URL.
        url: String,
        /// The last HTTP status.
        status: u16,
        /// Retries made.
        retries: u32,
        /// The last answer's message (or the start of its body).
        message: String,
    },
    /// The answer is larger than [`crate::ClientConfig::max_response_bytes`]: a hostile or
    /// broken server must not exhaust memory. Not retried.
    #[error(
        "MLflow `{call}` answered with more than {limit} bytes; refused (raise `max_response_bytes` if that is expected)"
    )]
    TooLarge {
        /// The call.
        call: String,
        /// The limit.
        limit: u64,
    },
    /// No answer at all: connection refused or reset, timeout, a body cut short.
    #[error("failed to reach MLflow at `{url}` for `{call}`: {reason} ({retries} retries)")]
    Transport {
        /// The call.
        call: String,
        /// The server's base URL.
        url: String,
        /// Retries made.
        retries: u32,
        /// What the transport said.
        reason: String,
    },
    /// A success answer whose body is not what the call expects.
    #[error("MLflow `{call}` answered with an unexpected body: {reason}")]
    Decode {
        /// The call.
        call: String,
        /// Why it does not parse.
        reason: String,
    },
    /// An artifact location or transfer this client cannot handle.
    #[error("artifact `{uri}`: {reason}")]
    Artifact {
        /// The artifact URI.
        uri: String,
        /// What is wrong.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done, e.g. `read`.
        action: &'static str,
        /// The local path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Databricks refused the OAuth client credentials (or the token endpoint failed). The
    /// secret is not part of it.
    #[error(
        "OAuth token request for client `{client_id}` at `{url}` failed: {reason} (HTTP {status}); check `DATABRICKS_CLIENT_ID` and `DATABRICKS_CLIENT_SECRET`"
    )]
    Auth {
        /// The service principal's client id.
        client_id: String,
        /// The token endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// The OAuth error and its description.
        reason: String,
    },
    /// A name the registry or workspace would refuse, caught before any call.
    #[error("{what} `{name}`: {reason}")]
    InvalidName {
        /// What it names, e.g. `registered model`.
        what: &'static str,
        /// The name.
        name: String,
        /// The expected form.
        reason: String,
    },
    /// The configured registry cannot do this at all.
    #[error("{call} is not available: {reason}")]
    Unsupported {
        /// The call, e.g. `set alias`.
        call: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// A Unity Catalog model version did not become `READY` after it was finalized.
    #[error(
        "version {version} of `{name}` is still {status} {waited:?} after it was finalized; it is not registered (its files may stay in the version's storage)"
    )]
    Pending {
        /// The registered model.
        name: String,
        /// The version.
        version: String,
        /// Its last status.
        status: String,
        /// How long it was waited for.
        waited: std::time::Duration,
    },
    /// Unity Catalog marked a version `FAILED_REGISTRATION` when it was finalized.
    #[error("version {version} of `{name}` failed to register: {reason}")]
    RegistrationFailed {
        /// The registered model.
        name: String,
        /// The version.
        version: String,
        /// Unity Catalog's `status_message`.
        reason: String,
    },
    /// Cloud storage behind temporary credentials failed (upload, download, listing).
    #[error("storage `{location}`: {action} failed: {reason}")]
    Storage {
        /// The storage location (no credentials in it).
        location: String,
        /// What was being done, e.g. `upload MLmodel`.
        action: String,
        /// What the store said.
        reason: String,
    },
    /// Cloud storage has no such file (its own "not found", from any cloud).
    #[error("storage `{location}`: there is no `{file}`")]
    StorageNotFound {
        /// The storage location (no credentials in it).
        location: String,
        /// The file, relative to it.
        file: String,
    },
}

impl Error {
    /// MLflow's `error_code`, when MLflow answered with one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Error::Api { error_code, .. } => Some(error_code),
            _ => None,
        }
    }

    /// True when the thing asked for does not exist (HTTP 404 or `RESOURCE_DOES_NOT_EXIST`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { status: 404, .. } | Error::StorageNotFound { .. })
            || self.error_code() == Some("RESOURCE_DOES_NOT_EXIST")
    }

    /// True when the caller lacks a permission (HTTP 403 or `PERMISSION_DENIED`), e.g. setting
    /// an alias on a Unity Catalog model it does not own.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Error::Api { status: 403, .. }) || self.error_code() == Some("PERMISSION_DENIED")
    }

    /// True when the thing being created already exists (`RESOURCE_ALREADY_EXISTS`).
    pub fn is_already_exists(&self) -> bool {
        self.error_code() == Some("RESOURCE_ALREADY_EXISTS")
    }
}

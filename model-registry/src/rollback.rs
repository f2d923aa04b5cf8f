//! Rollback: `champion` goes back to the version it replaced.

use anyhow::Context;
use serde::Serialize;

use crate::names::{NONE, aliases, tags};
use crate::registry::Registry;

/// What [`rollback`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    /// Registered model.
    pub model: String,
    /// The champion before.
    pub from_version: String,
    /// The champion now.
    pub to_version: String,
}

/// Points `champion` back at the version it replaced (the `stacktag.previous_champion` tag
/// the gate wrote), records it on both versions, and drops `challenger` if it pointed at the
/// version rolled back from (so the next scheduled gate does not promote it again). It is an
/// alias move like a promotion, so registry-sync follows it the same way.
pub async fn rollback(reg: &Registry) -> anyhow::Result<Rollback> {
    let c = reg.client();
    let name = reg.model();
    let model = c.get_registered_model(name).await.with_context(|| format!("cannot read registered model `{name}`"))?;
    let current = model
        .alias(aliases::CHAMPION)
        .with_context(|| {
            format!("model `{name}` has no version with alias `{}`: nothing to roll back", aliases::CHAMPION)
        })?
        .to_owned();
    let version = c
        .get_model_version(name, &current)
        .await
        .with_context(|| format!("cannot read version {current} of `{name}`"))?;
    let previous = version
        .tag(tags::PREVIOUS_CHAMPION)
        .filter(|v| *v != NONE && !v.is_empty())
        .with_context(|| format!("champion version {current} of `{name}` has no previous champion to roll back to"))?
        .to_owned();
    c.get_model_version(name, &previous)
        .await
        .with_context(|| format!("previous champion version {previous} of `{name}` cannot be read"))?;
    let at = crate::now_rfc3339();
    c.set_model_version_tag(name, &current, tags::ROLLED_BACK, &format!("rolled back to version {previous} at {at}"))
        .await
        .with_context(|| format!("cannot tag version {current} of `{name}`"))?;
    c.set_model_version_tag(name, &previous, tags::RESTORED, &format!("restored from version {current} at {at}"))
        .await
        .with_context(|| format!("cannot tag version {previous} of `{name}`"))?;
    c.set_alias(name, aliases::CHAMPION, &previous)
        .await
        .with_context(|| format!("cannot point `{}` of `{name}` at version {previous}", aliases::CHAMPION))?;
    if model.alias(aliases::CHALLENGER) == Some(current.as_str()) {
        c.delete_alias(name, aliases::CHALLENGER)
            .await
            .with_context(|| format!("cannot remove `{}` from `{name}`", aliases::CHALLENGER))?;
    }
    Ok(Rollback { model: name.to_owned(), from_version: current, to_version: previous })
}

//! People type names, not UUIDs: every argument that names a user (by user name or e-mail), a
//! group, a service principal, an environment or a business unit takes its name as well as its
//! id. A UUID is used as given; anything else is looked up through the admin API, exactly, and
//! must name one thing.

use anyhow::{Context, bail};
use serde_json::Value;

use portcullis_api::model::{PrincipalKind, PrincipalRef};

use crate::api::Api;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    /// A user who was deleted and can still be restored or purged.
    DeletedUser,
    Group,
    ServicePrincipal,
    Environment,
    BusinessUnit,
    NamedLocation,
    AccessPolicy,
}

impl Kind {
    /// The kind a principal reference names (`user`, `group`, `service_principal`).
    pub fn principal(kind: &str) -> Option<Kind> {
        match kind {
            "user" => Some(Kind::User),
            "group" => Some(Kind::Group),
            "service_principal" => Some(Kind::ServicePrincipal),
            _ => None,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::DeletedUser => "deleted user",
            Kind::Group => "group",
            Kind::ServicePrincipal => "service principal",
            Kind::Environment => "environment",
            Kind::BusinessUnit => "business unit",
            Kind::NamedLocation => "named location",
            Kind::AccessPolicy => "access policy",
        }
    }

    /// Where the candidates are listed, and whether the list can be narrowed by a prefix.
    fn list(self) -> (&'static str, bool) {
        match self {
            Kind::User | Kind::DeletedUser => ("/v1/users", true),
            Kind::Group => ("/v1/groups", true),
            Kind::ServicePrincipal => ("/v1/service-principals", false),
            Kind::Environment => ("/v1/environments", false),
            Kind::BusinessUnit => ("/v1/business-units", false),
            Kind::NamedLocation => ("/v1/named-locations", false),
            Kind::AccessPolicy => ("/v1/access-policies", false),
        }
    }

    /// Whether `item` is called `name`: its name, or a user's user name or e-mail address,
    /// compared without regard to case (the server refuses names that differ only so).
    fn is_called(self, item: &Value, name: &str) -> bool {
        let fields: &[&str] = match self {
            Kind::User | Kind::DeletedUser => &["user_name", "email"],
            _ => &["name"],
        };
        fields.iter().any(|f| {
            item[*f]
                .as_str()
                .is_some_and(|v| v.to_lowercase() == name.to_lowercase())
        })
    }
}

/// The id of the `kind` that `value` names: `value` itself if it is a UUID.
pub async fn resolve(api: &Api, kind: Kind, value: &str) -> anyhow::Result<String> {
    if uuid::Uuid::parse_str(value).is_ok() {
        return Ok(value.to_owned());
    }
    let (path, narrowed) = kind.list();
    let mut found: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "500".to_owned())];
        if narrowed {
            query.push(("prefix", value.to_owned()));
        }
        if kind == Kind::DeletedUser {
            query.push(("state", "deleted".to_owned()));
        }
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let page = api
            .get(path, &query)
            .await
            .with_context(|| format!("cannot look up the {} {value:?}", kind.noun()))?;
        for item in page["items"].as_array().into_iter().flatten() {
            if kind.is_called(item, value)
                && let Some(id) = item["id"].as_str()
            {
                found.push(id.to_owned());
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "{value:?} is neither the id nor the name of a {noun} here (no {noun} named {value:?} was found)",
            noun = kind.noun()
        ),
        many => bail!(
            "{value:?} names {} {}s ({}); give the id",
            many.len(),
            kind.noun(),
            many.join(", ")
        ),
    }
}

/// `kind:name` (`user:alice`, `group:auditors`, `service_principal:<id>`) as a principal.
pub async fn principal(api: &Api, flag: &str, raw: &str) -> anyhow::Result<PrincipalRef> {
    let parsed = raw
        .split_once(':')
        .and_then(|(kind, name)| Some((PrincipalKind::parse(kind)?, Kind::principal(kind)?, name)));
    let Some((principal_kind, kind, name)) = parsed else {
        bail!(
            "--{flag} {raw:?} must be `<kind>:<id>` or `<kind>:<name>` with kind user, group or service_principal, e.g. `user:alice`"
        )
    };
    let id = resolve(api, kind, name).await?;
    Ok(PrincipalRef {
        kind: principal_kind,
        id: uuid::Uuid::parse_str(&id)
            .with_context(|| format!("the server named {raw:?} by {id:?}, which is not an id"))?,
    })
}

/// Resolves `scope` if it names an environment by name (`environment/prod`).
pub async fn resolve_scope(api: &Api, scope: &str) -> anyhow::Result<String> {
    match scope.strip_prefix("environment/") {
        Some(environment) => Ok(format!(
            "environment/{}",
            resolve(api, Kind::Environment, environment).await?
        )),
        None => Ok(scope.to_owned()),
    }
}

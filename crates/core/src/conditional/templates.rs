//! Policies for the common baselines, to start from. Each is created report-only: its results
//! show in the sign-in log before anyone turns it on.

use serde::Serialize;

use super::{
    AccessPolicy, Application, ApplicationRef, ClientType, Conditions, Control, Grant, LocationRef,
    Operator, PolicyState, Principals, RiskLevel, Selection, SessionControls,
};
use crate::ValidationError;
use crate::ids::{AccessPolicyId, NamedLocationId};

#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    pub name: &'static str,
    pub description: &'static str,
    /// Whether the template needs a named location (`location`).
    pub needs_location: bool,
}

pub const TEMPLATES: [Template; 5] = [
    Template {
        name: "mfa-for-administrators",
        description: "Administrators sign in with a second factor, to every application.",
        needs_location: false,
    },
    Template {
        name: "block-unknown-clients",
        description: "Block clients that say nothing we recognise about themselves.",
        needs_location: false,
    },
    Template {
        name: "mfa-for-risky-sign-ins",
        description: "A sign-in at medium or high risk needs a second factor.",
        needs_location: false,
    },
    Template {
        name: "allowed-countries-only",
        description: "Block sign-ins from outside a named location of allowed countries.",
        needs_location: true,
    },
    Template {
        name: "compliant-device-for-administration",
        description: "Administrators use the admin API only from a compliant device.",
        needs_location: false,
    },
];

fn require(controls: &[Control]) -> Grant {
    Grant::Require {
        operator: Operator::All,
        controls: controls.to_vec(),
    }
}

fn every(application: ApplicationRef) -> Selection<ApplicationRef> {
    Selection {
        include: vec![application],
        exclude: vec![],
    }
}

/// The policy the template `name` describes, report-only, with a new id.
pub fn instantiate(
    name: &str,
    location: Option<NamedLocationId>,
) -> Result<AccessPolicy, ValidationError> {
    let everyone = Principals {
        all_users: true,
        ..Principals::default()
    };
    let administrators = Principals {
        administrators: true,
        ..Principals::default()
    };
    let (include, applications, conditions, grant) = match name {
        "mfa-for-administrators" => (
            administrators,
            every(ApplicationRef::All),
            Conditions::default(),
            require(&[Control::Mfa]),
        ),
        "block-unknown-clients" => (
            everyone,
            every(ApplicationRef::All),
            Conditions {
                client_types: Some(vec![ClientType::Other]),
                ..Conditions::default()
            },
            Grant::Block,
        ),
        "mfa-for-risky-sign-ins" => (
            everyone,
            every(ApplicationRef::All),
            Conditions {
                sign_in_risk: Some(vec![RiskLevel::Medium, RiskLevel::High]),
                ..Conditions::default()
            },
            require(&[Control::Mfa]),
        ),
        "allowed-countries-only" => {
            let location = location.ok_or_else(|| {
                ValidationError::new(
                    "location",
                    "this template needs the named location of the allowed countries",
                )
            })?;
            (
                everyone,
                every(ApplicationRef::All),
                Conditions {
                    locations: Some(Selection {
                        include: vec![LocationRef::Any],
                        exclude: vec![LocationRef::Named(location)],
                    }),
                    ..Conditions::default()
                },
                Grant::Block,
            )
        }
        "compliant-device-for-administration" => (
            administrators,
            every(ApplicationRef::Only(Application::AdminApi)),
            Conditions::default(),
            require(&[Control::CompliantDevice]),
        ),
        other => {
            let known: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
            return Err(ValidationError::new(
                "template",
                format!(
                    "{other:?} is not a template; there are {}",
                    known.join(", ")
                ),
            ));
        }
    };
    Ok(AccessPolicy {
        id: AccessPolicyId::generate(),
        name: TEMPLATES
            .iter()
            .find(|t| t.name == name)
            .map_or(name, |t| t.description)
            .trim_end_matches('.')
            .to_owned(),
        state: PolicyState::ReportOnly,
        include,
        exclude: Principals::default(),
        applications,
        conditions,
        grant,
        session: SessionControls::default(),
    })
}

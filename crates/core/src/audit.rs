//! The audit trail's records and their hash chain. Each tenant's events form one chain: every
//! record carries the hash of the one before it and its own hash over all of its fields, so
//! changing, removing or reordering any record breaks the chain at that point. The verifier here
//! is what `portcullis audit verify` runs — independently of the server that wrote the chain.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::TenantId;
use crate::time_util::to_micros;

/// The `prev_hash` of a tenant's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Refused by authorization or by a rule.
    Denied,
    /// The actor could not be authenticated.
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "denied" => Some(Self::Denied),
            "failure" => Some(Self::Failure),
            _ => None,
        }
    }
}

/// Who did it. `kind` is a principal kind, `anonymous` or `system` (the server's own work, such
/// as purging expired deletions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    pub kind: String,
    pub id: Option<String>,
    /// A name to show; for an API key, its public prefix.
    pub display: Option<String>,
    /// How the actor proved who they were for this request: enough to trace a change to one
    /// sign-in session and the client it came through. Absent on events older than this field
    /// and for the server's own work, so it never changes an existing record's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ActorAuthentication>,
}

/// The credential behind an actor's request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActorAuthentication {
    /// `api_key`, `access_token` or `session`.
    pub method: String,
    /// The API key's public prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The access token's `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The OAuth client the person came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The person's sign-in session (the `sid` of their tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// How that session was authenticated (RFC 8176 values) and how strongly (`acr`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// When the person last authenticated (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            kind: "system".into(),
            id: None,
            display: Some("portcullis".into()),
            authentication: None,
        }
    }

    pub fn anonymous() -> Self {
        Self {
            kind: "anonymous".into(),
            id: None,
            display: None,
            authentication: None,
        }
    }

    /// A service principal acting for itself (an OAuth client).
    pub fn service_principal(id: crate::ServicePrincipalId) -> Self {
        Self {
            kind: "service_principal".into(),
            id: Some(id.to_string()),
            display: None,
            authentication: None,
        }
    }
}

/// What it was done to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Target {
    pub kind: String,
    pub id: String,
}

impl Target {
    pub fn new(kind: &str, id: impl ToString) -> Self {
        Self {
            kind: kind.to_owned(),
            id: id.to_string(),
        }
    }
}

/// The request an event came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Origin {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// An event before it is placed in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub tenant_id: TenantId,
    pub at: OffsetDateTime,
    pub actor: Actor,
    pub action: String,
    pub target: Option<Target>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub origin: Origin,
    /// Structured detail (changed fields and the like). Never a secret.
    pub details: serde_json::Value,
}

/// A record of the chain, as stored and as returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub tenant_id: TenantId,
    /// Position in the tenant's chain, from 1.
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: Actor,
    pub action: String,
    pub target: Option<Target>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub origin: Origin,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The fields the hash covers, in a fixed order. Time is hashed as integer microseconds so
/// that no formatting choice can change a hash.
#[derive(Serialize)]
struct Hashed<'a> {
    tenant_id: &'a TenantId,
    seq: i64,
    at_us: i64,
    actor: &'a Actor,
    action: &'a str,
    target: &'a Option<Target>,
    outcome: Outcome,
    reason: &'a Option<String>,
    origin: &'a Origin,
    details: &'a serde_json::Value,
    prev_hash: &'a str,
}

/// Rebuilds every object with its keys in sorted order, so the encoding does not depend on how
/// a map was built or on whether serde_json preserves insertion order in this build.
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let sorted = keys
                .into_iter()
                .map(|k| (k.clone(), canonical(&map[k])))
                .collect();
            serde_json::Value::Object(sorted)
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical).collect())
        }
        other => other.clone(),
    }
}

fn record_hash(event: &NewAuditEvent, seq: i64, prev_hash: &str) -> String {
    let details = canonical(&event.details);
    let hashed = Hashed {
        tenant_id: &event.tenant_id,
        seq,
        at_us: to_micros(event.at),
        actor: &event.actor,
        action: &event.action,
        target: &event.target,
        outcome: event.outcome,
        reason: &event.reason,
        origin: &event.origin,
        details: &details,
        prev_hash,
    };
    // Serializing plain data into a Vec cannot fail; serde_json maps are key-ordered, so the
    // encoding is canonical.
    let bytes = serde_json::to_vec(&hashed).unwrap_or_default();
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &bytes,
    ))
}

impl NewAuditEvent {
    /// Places the event in the chain after the record with `prev_seq` and `prev_hash`.
    pub fn chain(self, prev_seq: i64, prev_hash: &str) -> AuditRecord {
        let seq = prev_seq + 1;
        let event = NewAuditEvent {
            at: crate::time_util::truncate_to_micros(self.at),
            ..self
        };
        let hash = record_hash(&event, seq, prev_hash);
        AuditRecord {
            tenant_id: event.tenant_id,
            seq,
            at: event.at,
            actor: event.actor,
            action: event.action,
            target: event.target,
            outcome: event.outcome,
            reason: event.reason,
            origin: event.origin,
            details: event.details,
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }
}

impl AuditRecord {
    /// The hash this record should carry, recomputed from its fields.
    pub fn expected_hash(&self) -> String {
        let event = NewAuditEvent {
            tenant_id: self.tenant_id,
            at: self.at,
            actor: self.actor.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: self.outcome,
            reason: self.reason.clone(),
            origin: self.origin.clone(),
            details: self.details.clone(),
        };
        record_hash(&event, self.seq, &self.prev_hash)
    }
}

/// The first place a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("record {seq}: its contents do not match its hash (the record was altered)")]
    Altered { seq: i64 },
    #[error(
        "record {seq}: it does not follow record {expected_prev_seq} (a record is missing or out of order)"
    )]
    Gap { seq: i64, expected_prev_seq: i64 },
    #[error(
        "record {seq}: its link to the previous record is wrong (a record before it was altered, removed or replaced)"
    )]
    Unlinked { seq: i64 },
    #[error(
        "the chain ends at record {verified_through}, but the tenant's head is record {head_seq} (records were removed from the end)"
    )]
    Truncated {
        verified_through: i64,
        head_seq: i64,
    },
    #[error(
        "record {seq}: its hash differs from the one the tenant's head holds (the newest records were replaced)"
    )]
    HeadMismatch { seq: i64 },
}

/// Checks records of one tenant's chain, fed in order, possibly in pages.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    last_seq: i64,
    last_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            last_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
        }
    }
}

impl ChainVerifier {
    pub fn verified_through(&self) -> i64 {
        self.last_seq
    }

    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// Checks that the chain read so far reaches the head the store reports: without this, the
    /// newest records could be cut off and the rest would still verify.
    pub fn finish(&self, head_seq: i64, head_hash: &str) -> Result<(), ChainBreak> {
        if self.last_seq < head_seq {
            return Err(ChainBreak::Truncated {
                verified_through: self.last_seq,
                head_seq,
            });
        }
        if self.last_seq == head_seq && self.last_hash != head_hash {
            return Err(ChainBreak::HeadMismatch { seq: head_seq });
        }
        Ok(())
    }

    pub fn push(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        if record.seq != self.last_seq + 1 {
            return Err(ChainBreak::Gap {
                seq: record.seq,
                expected_prev_seq: self.last_seq,
            });
        }
        if record.expected_hash() != record.hash {
            return Err(ChainBreak::Altered { seq: record.seq });
        }
        if record.prev_hash != self.last_hash {
            return Err(ChainBreak::Unlinked { seq: record.seq });
        }
        self.last_seq = record.seq;
        self.last_hash.clone_from(&record.hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tenant: TenantId, action: &str) -> NewAuditEvent {
        NewAuditEvent {
            tenant_id: tenant,
            at: OffsetDateTime::now_utc(),
            actor: Actor::system(),
            action: action.into(),
            target: Some(Target::new("user", "u1")),
            outcome: Outcome::Success,
            reason: None,
            origin: Origin::default(),
            details: serde_json::json!({"b": 1, "a": [1, 2]}),
        }
    }

    fn chain(n: usize) -> Vec<AuditRecord> {
        let tenant = TenantId::generate();
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let (seq, hash) = out
                .last()
                .map_or((0, GENESIS_HASH.to_owned()), |r| (r.seq, r.hash.clone()));
            out.push(event(tenant, &format!("a{i}")).chain(seq, &hash));
        }
        out
    }

    fn verify(records: &[AuditRecord]) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::default();
        records.iter().try_for_each(|r| v.push(r))
    }

    #[test]
    fn intact_chain_verifies_and_survives_json() {
        let records = chain(5);
        assert_eq!(verify(&records), Ok(()));
        let json = serde_json::to_string(&records).unwrap();
        let back: Vec<AuditRecord> = serde_json::from_str(&json).unwrap();
        assert_eq!(verify(&back), Ok(()));
    }

    #[test]
    fn altered_record_is_named() {
        let mut records = chain(5);
        records[2].action = "something.else".into();
        assert_eq!(verify(&records), Err(ChainBreak::Altered { seq: 3 }));
        let mut records = chain(5);
        records[3].details = serde_json::json!({"b": 2});
        assert_eq!(verify(&records), Err(ChainBreak::Altered { seq: 4 }));
    }

    #[test]
    fn removed_record_is_a_gap() {
        let mut records = chain(5);
        records.remove(1);
        assert_eq!(
            verify(&records),
            Err(ChainBreak::Gap {
                seq: 3,
                expected_prev_seq: 1
            })
        );
    }

    #[test]
    fn rehashed_forgery_breaks_the_next_link() {
        // An attacker who alters a record and recomputes its own hash still breaks the link
        // from the record after it.
        let mut records = chain(4);
        records[1].reason = Some("forged".into());
        records[1].hash = records[1].expected_hash();
        assert_eq!(verify(&records), Err(ChainBreak::Unlinked { seq: 3 }));
    }

    #[test]
    fn a_chain_cut_short_or_with_a_replaced_tail_does_not_reach_its_head() {
        let records = chain(5);
        let head = records[4].clone();
        let mut v = ChainVerifier::default();
        records[..3].iter().for_each(|r| v.push(r).unwrap());
        assert_eq!(
            v.finish(head.seq, &head.hash),
            Err(ChainBreak::Truncated {
                verified_through: 3,
                head_seq: 5
            })
        );
        // A tail rebuilt from scratch verifies on its own but not against the recorded head.
        let mut forged = records.clone();
        forged[4].reason = Some("forged".into());
        forged[4].hash = forged[4].expected_hash();
        let mut v = ChainVerifier::default();
        forged.iter().for_each(|r| v.push(r).unwrap());
        assert_eq!(
            v.finish(head.seq, &head.hash),
            Err(ChainBreak::HeadMismatch { seq: 5 })
        );
        let mut v = ChainVerifier::default();
        records.iter().for_each(|r| v.push(r).unwrap());
        assert_eq!(v.finish(head.seq, &head.hash), Ok(()));
    }
}

/// When a principal last used the admin API in one way of authenticating. Kept per principal
/// and method (to the minute), not as an event per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiUse {
    pub principal: crate::identity::PrincipalRef,
    /// `api_key`, `access_token` or `session`.
    pub method: String,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: time::OffsetDateTime,
}

//! Device authorization requests (RFC 8628): created by a device, answered by a signed-in user
//! on the sign-in pages, polled for and redeemed by the device. Both codes are kept only as
//! keyed hashes. Approving records the grant in the same transaction that records the answer,
//! so a request is answered once, and an approval always has its grant.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use portcullis_core::audit::Target;
use portcullis_core::session::{Assurance, Strength};
use portcullis_core::{DeviceAuthorizationId, ServicePrincipalId, TenantId, UserId};

use crate::db::{Row, query};
use crate::grants::NewGrant;
use crate::{Store, StoreError, WriteContext};

/// A device's request, as created.
pub struct NewDeviceAuthorization {
    pub id: DeviceAuthorizationId,
    pub client_id: ServicePrincipalId,
    pub device_code_hash: String,
    pub user_code_hash: String,
    pub scopes: Vec<String>,
    pub audience: String,
    pub expires_at: OffsetDateTime,
    pub interval_seconds: u32,
    /// What the person's sign-in must prove before they may approve (`acr_values`,
    /// `max_age`), if the device asked.
    pub need: Option<Assurance>,
}

/// The user's answer, once given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceDecision {
    Approved,
    Denied,
}

impl DeviceDecision {
    fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
        }
    }
}

/// A device's request as stored.
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    pub id: DeviceAuthorizationId,
    pub tenant_id: TenantId,
    pub client_id: ServicePrincipalId,
    pub device_code_hash: String,
    pub scopes: Vec<String>,
    pub audience: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub interval_seconds: u32,
    pub decision: Option<DeviceDecision>,
    pub user_id: Option<UserId>,
    pub need: Option<Assurance>,
}

/// What a poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Polled no sooner than the interval: the request may be looked at.
    InTime,
    /// Polled too soon: the interval is now this many seconds (RFC 8628 `slow_down`).
    TooSoon(u32),
}

const COLUMNS: &str = "id, tenant_id, client_id, device_code_hash, scopes, audience, created_at, \
                       expires_at, interval_seconds, decision, user_id, need_strength, need_max_age_seconds";

fn from_row(row: &Row) -> Result<DeviceAuthorization, StoreError> {
    let decision = match row.opt_text("decision")?.as_deref() {
        None => None,
        Some("approved") => Some(DeviceDecision::Approved),
        Some("denied") => Some(DeviceDecision::Denied),
        Some(other) => {
            return Err(StoreError::Corrupt(format!(
                "device authorization decision {other:?}"
            )));
        }
    };
    Ok(DeviceAuthorization {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        client_id: row.parse("client_id")?,
        device_code_hash: row.text("device_code_hash")?,
        scopes: serde_json::from_str(&row.text("scopes")?)
            .map_err(|e| StoreError::Corrupt(format!("device authorization scopes: {e}")))?,
        audience: row.text("audience")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        interval_seconds: u32::try_from(row.int("interval_seconds")?)
            .map_err(|e| StoreError::Corrupt(format!("device poll interval: {e}")))?,
        decision,
        user_id: row
            .opt_text("user_id")?
            .map(|id| id.parse())
            .transpose()
            .map_err(|_| StoreError::Corrupt("device authorization user".into()))?,
        need: match row.opt_text("need_strength")? {
            None => None,
            Some(strength) => Some(Assurance {
                strength: Strength::parse(&strength).ok_or_else(|| {
                    StoreError::Corrupt(format!("device authorization strength {strength:?}"))
                })?,
                max_age: row.opt_int("need_max_age_seconds")?.map(Duration::seconds),
            }),
        },
    })
}

impl Store {
    /// Records a device's request. A user code already taken in this tenant (one chance in
    /// billions while it lives) is a conflict; the caller draws another.
    pub async fn create_device_authorization(
        &self,
        tenant_id: TenantId,
        request: &NewDeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let insert = query(
            "INSERT INTO device_authorizations (id, tenant_id, client_id, device_code_hash, user_code_hash, \
             scopes, audience, created_at, expires_at, interval_seconds, need_strength, need_max_age_seconds) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(request.id)
        .bind(tenant_id)
        .bind(request.client_id)
        .bind(request.device_code_hash.clone())
        .bind(request.user_code_hash.clone())
        .bind(json!(request.scopes).to_string())
        .bind(request.audience.clone())
        .bind(now)
        .bind(request.expires_at)
        .bind(i64::from(request.interval_seconds))
        .bind(request.need.map(|n| n.strength.as_str()))
        .bind(
            request
                .need
                .and_then(|n| n.max_age)
                .map(|age| age.whole_seconds()),
        );
        self.group_write(vec![insert], Vec::new()).await?;
        Ok(())
    }

    /// The request a user code names in this tenant, answered or not, expired or not.
    pub async fn device_authorization_by_user_code(
        &self,
        tenant_id: TenantId,
        user_code_hash: &str,
    ) -> Result<Option<DeviceAuthorization>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM device_authorizations WHERE tenant_id = $1 AND user_code_hash = $2"
        );
        let row = self
            .pools
            .fetch_optional(
                crate::db::assembled_query(sql)
                    .bind(tenant_id)
                    .bind(user_code_hash),
            )
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Records the user's answer, once, while the request lives; an approval records `grant`
    /// (whose code is the device code) in the same transaction, audited as `oauth.authorize`.
    /// False when the request was answered meanwhile or has expired: nothing was written.
    pub async fn decide_device_authorization(
        &self,
        ctx: &WriteContext,
        request: &DeviceAuthorization,
        decision: DeviceDecision,
        grant: Option<&NewGrant>,
    ) -> Result<bool, StoreError> {
        let mut statements = vec![
            query(
                "UPDATE device_authorizations SET decision = $1, decided_at = $2, user_id = $3 \
                 WHERE id = $4 AND tenant_id = $5 AND decision IS NULL AND expires_at > $2",
            )
            .bind(decision.as_str())
            .bind(ctx.now)
            .bind(ctx.actor.id.clone())
            .bind(request.id)
            .bind(ctx.tenant_id),
        ];
        let mut events = vec![ctx.event(
            &format!("oauth.device.{}", decision.as_str()),
            Target::new("device_authorization", request.id),
            json!({"client_id": request.client_id, "scopes": request.scopes, "audience": request.audience}),
        )];
        if let Some(grant) = grant {
            let (insert, event) = crate::grants::grant_insert(ctx, grant);
            statements.push(insert);
            events.push(event);
        }
        self.group_write_all(statements, events).await
    }

    /// Notes a poll of the request with this device code by `client`: in time, or too soon
    /// (which lengthens the interval by five seconds, RFC 8628 §3.5). Two polls racing count
    /// as one in time and one too soon. `None` when no such request is this client's.
    pub async fn poll_device_authorization(
        &self,
        tenant_id: TenantId,
        client_id: ServicePrincipalId,
        device_code_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(DeviceAuthorization, Poll)>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS}, polled_at FROM device_authorizations \
             WHERE tenant_id = $1 AND client_id = $2 AND device_code_hash = $3"
        );
        let Some(row) = self
            .pools
            .fetch_optional(
                crate::db::assembled_query(sql)
                    .bind(tenant_id)
                    .bind(client_id)
                    .bind(device_code_hash),
            )
            .await?
        else {
            return Ok(None);
        };
        let mut found = from_row(&row)?;
        let interval = time::Duration::seconds(i64::from(found.interval_seconds));
        let in_time = self
            .group_write(
                vec![
                    query(
                        "UPDATE device_authorizations SET polled_at = $1 \
                         WHERE id = $2 AND (polled_at IS NULL OR polled_at <= $3)",
                    )
                    .bind(now)
                    .bind(found.id)
                    .bind(now - interval),
                ],
                Vec::new(),
            )
            .await?
            .first()
            .is_some_and(|changed| *changed > 0);
        if in_time {
            return Ok(Some((found, Poll::InTime)));
        }
        found.interval_seconds += 5;
        self.group_write(
            vec![
                query(
                    "UPDATE device_authorizations SET polled_at = $1, interval_seconds = interval_seconds + 5 \
                     WHERE id = $2",
                )
                .bind(now)
                .bind(found.id),
            ],
            Vec::new(),
        )
        .await?;
        let slower = found.interval_seconds;
        Ok(Some((found, Poll::TooSoon(slower))))
    }
}

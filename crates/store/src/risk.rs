//! Identity protection's records: detections (in the tenant's audited write, so every finding
//! and every decision on one is in the audit trail), the sightings of each user's sign-ins,
//! the last hour's wrong passwords as keyed hashes, and the deployment's leaked-password list.

use serde_json::json;
use time::OffsetDateTime;

use portcullis_core::conditional::{Country, Platform, RiskLevel};
use portcullis_core::page::{Page, PageRequest};
use portcullis_core::risk::{
    self, Coordinates, Detection, DetectionKind, FAILURE_WINDOW, HISTORY, RiskDetection, RiskState,
    RiskyUser, Sighting,
};
use portcullis_core::{RiskDetectionId, TenantId, UserId};

use crate::access::from_json;
use crate::db::{Row, Tx, query};
use crate::write::Write;
use crate::{Store, StoreError, WriteContext};

/// What a listing of detections is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct DetectionFilter {
    pub user_id: Option<UserId>,
    pub kind: Option<DetectionKind>,
    pub level: Option<RiskLevel>,
    pub state: Option<RiskState>,
    pub since: Option<OffsetDateTime>,
}

/// A new finding and where it was made from.
#[derive(Debug, Clone)]
pub struct Finding<'a> {
    pub user_id: Option<UserId>,
    pub detection: &'a Detection,
    /// What makes two findings one: an open detection with the same fingerprint is raised or
    /// kept, not repeated.
    pub fingerprint: String,
    pub source_ip: Option<&'a str>,
    pub country: Option<Country>,
}

/// The wrong passwords of the window that look like this one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts {
    /// Wrong passwords at this account, and the addresses they came from.
    pub at_account: (u32, u32),
    /// Accounts this password was tried at, and the addresses it came from.
    pub with_password: (u32, u32),
}

const DETECTION_COLUMNS: &str =
    "id, user_id, kind, level, state, evidence, source_ip, country, detected_at, updated_at";

fn detection(row: &Row) -> Result<RiskDetection, StoreError> {
    Ok(RiskDetection {
        id: row.parse("id")?,
        user_id: row.opt_parse("user_id")?,
        kind: row.named("kind", DetectionKind::parse)?,
        level: row.named("level", RiskLevel::parse)?,
        state: row.named("state", RiskState::parse)?,
        evidence: from_json(row, "evidence")?,
        source_ip: row.opt_text("source_ip")?,
        country: row.opt_text("country")?,
        detected_at: row.time("detected_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// What a user's level is decided from: an open detection's kind, level and state.
type OpenDetection = (DetectionKind, RiskLevel, RiskState);

const MICRODEGREES: f64 = 1_000_000.0;

fn sighting(row: &Row) -> Result<Sighting, StoreError> {
    let degrees = |col| -> Result<Option<f64>, StoreError> {
        Ok(row.opt_int(col)?.map(|v| v as f64 / MICRODEGREES))
    };
    let coordinates = match (degrees("latitude_micro")?, degrees("longitude_micro")?) {
        (Some(lat), Some(lon)) => Coordinates::new(lat, lon),
        _ => None,
    };
    Ok(Sighting {
        at: row.time("at")?,
        country: row.opt_text("country")?.as_deref().and_then(Country::parse),
        asn: row.opt_int("asn")?.and_then(|asn| u32::try_from(asn).ok()),
        coordinates,
        platform: row.named("platform", Platform::parse)?,
    })
}

/// Remembers where and how a user signed in, in `tx` (the session's own transaction), keeping
/// their latest [`HISTORY`].
pub(crate) async fn record_sighting(
    tx: &mut Tx,
    tenant_id: TenantId,
    user_id: UserId,
    seen: &Sighting,
) -> Result<(), StoreError> {
    let micro = |degrees: f64| (degrees * MICRODEGREES).round() as i64;
    tx.execute(
        query(
            "INSERT INTO sign_in_sightings (tenant_id, user_id, at, country, asn, latitude_micro, \
             longitude_micro, platform) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(seen.at)
        .bind(seen.country.map(|c| c.as_str().to_owned()))
        .bind(seen.asn.map(i64::from))
        .bind(seen.coordinates.map(|c| micro(c.latitude)))
        .bind(seen.coordinates.map(|c| micro(c.longitude)))
        .bind(seen.platform.as_str()),
    )
    .await?;
    tx.execute(
        query(
            "DELETE FROM sign_in_sightings WHERE tenant_id = $1 AND user_id = $2 AND at < \
             (SELECT MIN(at) FROM (SELECT at FROM sign_in_sightings WHERE tenant_id = $1 \
             AND user_id = $2 ORDER BY at DESC LIMIT $3) AS kept)",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(HISTORY as i64),
    )
    .await?;
    Ok(())
}

/// The user's open detections' level, as `tx` sees them.
async fn user_level_in(
    tx: &mut Tx,
    tenant_id: TenantId,
    user_id: UserId,
) -> Result<RiskLevel, StoreError> {
    let rows = tx
        .fetch_all(
            query(
                "SELECT kind, level, state FROM risk_detections \
                 WHERE tenant_id = $1 AND user_id = $2 AND state IN ('at_risk', 'confirmed_compromised')",
            )
            .bind(tenant_id)
            .bind(user_id),
        )
        .await?;
    let open = rows
        .iter()
        .map(|r| {
            Ok((
                r.named("kind", DetectionKind::parse)?,
                r.named("level", RiskLevel::parse)?,
                r.named("state", RiskState::parse)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(risk::user_level(open))
}

impl Write {
    /// Ends every session and revokes every refresh token of a user who just became high
    /// risk: whoever holds them may be the attacker.
    async fn cut_off(&mut self, user_id: UserId, why: &str) -> Result<(), StoreError> {
        let tenant_id = self.ctx.tenant_id;
        let sessions = self
            .execute(
                query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2")
                    .bind(tenant_id)
                    .bind(user_id),
            )
            .await?;
        let grants = self
            .execute(
                query(
                    "UPDATE oauth_grants SET revoked_at = $1, revoked_reason = $2 \
                     WHERE tenant_id = $3 AND user_id = $4 AND revoked_at IS NULL",
                )
                .bind(self.ctx.now)
                .bind(why)
                .bind(tenant_id)
                .bind(user_id),
            )
            .await?;
        self.record(
            "risk.user.cut_off",
            "user",
            user_id,
            "update",
            json!({ "reason": why, "sessions_ended": sessions, "grants_revoked": grants }),
        );
        Ok(())
    }

    /// The user's level as this write sees it.
    async fn user_level(&mut self, user_id: UserId) -> Result<RiskLevel, StoreError> {
        user_level_in(&mut self.tx, self.ctx.tenant_id, user_id).await
    }

    async fn insert_detection(
        &mut self,
        finding: &Finding<'_>,
        state: RiskState,
    ) -> Result<RiskDetectionId, StoreError> {
        let id = RiskDetectionId::generate();
        let detection = finding.detection;
        self.execute(
            query(
                "INSERT INTO risk_detections (id, tenant_id, user_id, kind, level, state, fingerprint, \
                 evidence, source_ip, country, detected_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
            )
            .bind(id)
            .bind(self.ctx.tenant_id)
            .bind(finding.user_id)
            .bind(detection.kind.as_str())
            .bind(detection.level.as_str())
            .bind(state.as_str())
            .bind(finding.fingerprint.clone())
            .bind(detection.evidence.to_string())
            .bind(finding.source_ip)
            .bind(finding.country.map(|c| c.as_str().to_owned()))
            .bind(self.ctx.now),
        )
        .await?;
        Ok(id)
    }
}

impl Store {
    /// Records findings, each audited. One still open with the same fingerprint is raised to
    /// the new level and evidence if that is higher, and otherwise left as it is, so a spray
    /// growing over an hour is one detection. A user this makes high risk is cut off (every
    /// session ended, every refresh token revoked) in the same transaction. Returns the users'
    /// levels afterwards.
    pub async fn record_detections(
        &self,
        ctx: &WriteContext,
        findings: &[Finding<'_>],
    ) -> Result<Vec<(UserId, RiskLevel)>, StoreError> {
        let mut w = self.write(ctx).await?;
        let mut users: Vec<(UserId, RiskLevel)> = Vec::new();
        for finding in findings {
            if let Some(user) = finding.user_id
                && !users.iter().any(|(u, _)| *u == user)
            {
                let before = w.user_level(user).await?;
                users.push((user, before));
            }
            let detection = finding.detection;
            let open = w
                .fetch_optional(
                    query(
                        "SELECT id, level FROM risk_detections WHERE tenant_id = $1 AND fingerprint = $2 \
                         AND state IN ('at_risk', 'confirmed_compromised') AND detected_at >= $3 \
                         ORDER BY id DESC LIMIT 1",
                    )
                    .bind(ctx.tenant_id)
                    .bind(finding.fingerprint.clone())
                    .bind(ctx.now - FAILURE_WINDOW * 24),
                )
                .await?;
            let target = finding
                .user_id
                .map_or(("tenant", ctx.tenant_id.to_string()), |u| {
                    ("user", u.to_string())
                });
            let details = json!({
                "kind": detection.kind,
                "level": detection.level,
                "evidence": detection.evidence,
                "target": { "kind": target.0, "id": target.1 },
            });
            match open {
                Some(row) if row.named("level", RiskLevel::parse)? >= detection.level => {}
                Some(row) => {
                    let id: RiskDetectionId = row.parse("id")?;
                    w.execute(
                        query(
                            "UPDATE risk_detections SET level = $1, evidence = $2, updated_at = $3 \
                             WHERE id = $4 AND tenant_id = $5",
                        )
                        .bind(detection.level.as_str())
                        .bind(detection.evidence.to_string())
                        .bind(ctx.now)
                        .bind(id)
                        .bind(ctx.tenant_id),
                    )
                    .await?;
                    w.record(
                        "risk.detection.raise",
                        "risk_detection",
                        id,
                        "update",
                        details,
                    );
                }
                None => {
                    let id = w.insert_detection(finding, RiskState::AtRisk).await?;
                    w.record("risk.detection", "risk_detection", id, "create", details);
                }
            }
        }
        let mut after = Vec::with_capacity(users.len());
        for (user, before) in users {
            let level = w.user_level(user).await?;
            if level == RiskLevel::High && before < RiskLevel::High {
                w.cut_off(user, "the user became high risk").await?;
            }
            after.push((user, level));
        }
        w.commit().await?;
        Ok(after)
    }

    /// The user's risk: the level of their open detections.
    pub async fn user_risk(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
    ) -> Result<RiskLevel, StoreError> {
        let mut tx = self.pools.begin_read().await?;
        let level = user_level_in(&mut tx, tenant_id, user_id).await?;
        tx.commit().await?;
        Ok(level)
    }

    /// An administrator's verdict on a user: `ConfirmedCompromised` makes the user high risk
    /// (with a detection of its own, and cut off as any high-risk user is); `Dismissed` closes
    /// every open detection; `Remediated` is what a password reset does. Returns the level
    /// afterwards, or `NotFound` for a user not in the tenant.
    pub async fn judge_user_risk(
        &self,
        ctx: &WriteContext,
        user_id: UserId,
        verdict: RiskState,
        note: Option<&str>,
    ) -> Result<RiskLevel, StoreError> {
        let mut w = self.write(ctx).await?;
        let exists = w
            .fetch_optional(
                query("SELECT id FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(ctx.tenant_id)
                    .bind(user_id),
            )
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let before = w.user_level(user_id).await?;
        let closed = w
            .execute(
                query(
                    "UPDATE risk_detections SET state = $1, updated_at = $2 WHERE tenant_id = $3 \
                     AND user_id = $4 AND state IN ('at_risk', 'confirmed_compromised')",
                )
                .bind(verdict.as_str())
                .bind(ctx.now)
                .bind(ctx.tenant_id)
                .bind(user_id),
            )
            .await?;
        if verdict == RiskState::ConfirmedCompromised {
            let detection = Detection {
                kind: DetectionKind::AdminConfirmedCompromised,
                level: RiskLevel::High,
                evidence: json!({ "note": note }),
            };
            let finding = Finding {
                user_id: Some(user_id),
                detection: &detection,
                fingerprint: format!("{}:{user_id}", detection.kind.as_str()),
                source_ip: None,
                country: None,
            };
            w.insert_detection(&finding, verdict).await?;
        }
        let after = w.user_level(user_id).await?;
        if after == RiskLevel::High && before < RiskLevel::High {
            w.cut_off(user_id, "an administrator confirmed the user compromised")
                .await?;
        }
        w.record(
            &format!("risk.user.{}", verdict.as_str()),
            "user",
            user_id,
            "update",
            json!({ "detections": closed, "level_before": before, "level": after, "note": note }),
        );
        w.commit().await?;
        Ok(after)
    }

    /// Detections, newest first. The cursor is a detection id.
    pub async fn risk_detections(
        &self,
        tenant_id: TenantId,
        filter: &DetectionFilter,
        page: PageRequest<uuid::Uuid>,
    ) -> Result<Page<RiskDetection>, StoreError> {
        let sql = format!(
            "SELECT {DETECTION_COLUMNS} FROM risk_detections WHERE tenant_id = $1 \
             AND ($2 IS NULL OR id < $2) AND ($3 IS NULL OR user_id = $3) AND ($4 IS NULL OR kind = $4) \
             AND ($5 IS NULL OR level = $5) AND ($6 IS NULL OR state = $6) AND ($7 IS NULL OR detected_at >= $7) \
             ORDER BY id DESC LIMIT $8"
        );
        let rows = self
            .pools
            .fetch_all(
                crate::db::assembled_query(sql)
                    .bind(tenant_id)
                    .bind(page.after)
                    .bind(filter.user_id)
                    .bind(filter.kind.map(DetectionKind::as_str))
                    .bind(filter.level.map(RiskLevel::as_str))
                    .bind(filter.state.map(RiskState::as_str))
                    .bind(filter.since)
                    .bind(page.fetch_limit()),
            )
            .await?;
        let items = rows.iter().map(detection).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |d| d.id))
    }

    /// Users with open detections, riskiest first, at `level` or above.
    pub async fn risky_users(
        &self,
        tenant_id: TenantId,
        level: RiskLevel,
        limit: u32,
    ) -> Result<Vec<RiskyUser>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(
                    "SELECT d.user_id, u.user_name, d.kind, d.level, d.state, d.detected_at \
                     FROM risk_detections d JOIN users u ON u.id = d.user_id \
                     WHERE d.tenant_id = $1 AND d.state IN ('at_risk', 'confirmed_compromised') \
                     ORDER BY d.user_id",
                )
                .bind(tenant_id),
            )
            .await?;
        let mut users: Vec<(RiskyUser, Vec<OpenDetection>)> = Vec::new();
        for row in &rows {
            let user_id: UserId = row.parse("user_id")?;
            let open = (
                row.named("kind", DetectionKind::parse)?,
                row.named("level", RiskLevel::parse)?,
                row.named("state", RiskState::parse)?,
            );
            let at = row.time("detected_at")?;
            match users.last_mut() {
                Some((user, detections)) if user.user_id == user_id => {
                    detections.push(open);
                    user.last_detected_at = user.last_detected_at.max(at);
                }
                _ => users.push((
                    RiskyUser {
                        user_id,
                        user_name: row.text("user_name")?,
                        level: RiskLevel::None,
                        detections: 0,
                        last_detected_at: at,
                    },
                    vec![open],
                )),
            }
        }
        let mut risky: Vec<RiskyUser> = users
            .into_iter()
            .map(|(mut user, detections)| {
                user.detections = count(detections.len() as i64);
                user.level = risk::user_level(detections);
                user
            })
            .filter(|u| u.level > RiskLevel::None && u.level >= level)
            .collect();
        risky.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then(b.last_detected_at.cmp(&a.last_detected_at))
        });
        risky.truncate(limit as usize);
        Ok(risky)
    }

    /// Counts a wrong password and returns how it compares with the window's others. Rows past
    /// the window are forgotten here, a few at a time, so the table stays an hour deep.
    pub async fn record_password_failure(
        &self,
        tenant_id: TenantId,
        account_key: &str,
        password_mac: Vec<u8>,
        source: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<FailureCounts, StoreError> {
        let since = now - FAILURE_WINDOW;
        let mut tx = self.pools.begin().await?;
        tx.execute(
            query(
                "DELETE FROM password_failures WHERE tenant_id = $1 AND at < $2 AND at IN \
                 (SELECT at FROM password_failures WHERE tenant_id = $1 AND at < $2 LIMIT 100)",
            )
            .bind(tenant_id)
            .bind(since),
        )
        .await?;
        tx.execute(
            query(
                "INSERT INTO password_failures (tenant_id, at, account_key, password_mac, source) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tenant_id)
            .bind(now)
            .bind(account_key)
            .bind(password_mac.clone())
            .bind(source),
        )
        .await?;
        let at_account = tx
            .fetch_one(
                query(
                    "SELECT COUNT(*) AS n, COUNT(DISTINCT source) AS sources FROM password_failures \
                     WHERE tenant_id = $1 AND account_key = $2 AND at >= $3",
                )
                .bind(tenant_id)
                .bind(account_key)
                .bind(since),
            )
            .await?;
        let with_password = tx
            .fetch_one(
                query(
                    "SELECT COUNT(DISTINCT account_key) AS n, COUNT(DISTINCT source) AS sources \
                     FROM password_failures WHERE tenant_id = $1 AND password_mac = $2 AND at >= $3",
                )
                .bind(tenant_id)
                .bind(password_mac)
                .bind(since),
            )
            .await?;
        tx.commit().await?;
        let pair = |row: &Row| -> Result<(u32, u32), StoreError> {
            Ok((count(row.int("n")?), count(row.int("sources")?)))
        };
        Ok(FailureCounts {
            at_account: pair(&at_account)?,
            with_password: pair(&with_password)?,
        })
    }

    /// How many accounts (and from how many addresses) a password with this keyed hash was
    /// tried at and failed within the window: a right password that was just sprayed is one
    /// the attacker may now hold.
    pub async fn sprayed(
        &self,
        tenant_id: TenantId,
        password_mac: Vec<u8>,
        now: OffsetDateTime,
    ) -> Result<(u32, u32), StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query(
                    "SELECT COUNT(DISTINCT account_key) AS n, COUNT(DISTINCT source) AS sources \
                     FROM password_failures WHERE tenant_id = $1 AND password_mac = $2 AND at >= $3",
                )
                .bind(tenant_id)
                .bind(password_mac)
                .bind(now - FAILURE_WINDOW),
            )
            .await?;
        match row {
            Some(row) => Ok((count(row.int("n")?), count(row.int("sources")?))),
            None => Ok((0, 0)),
        }
    }

    /// The user's latest sign-ins, newest first.
    pub async fn sightings(
        &self,
        tenant_id: TenantId,
        user_id: UserId,
    ) -> Result<Vec<Sighting>, StoreError> {
        let rows = self
            .pools
            .fetch_all(
                query(
                    "SELECT at, country, asn, latitude_micro, longitude_micro, platform FROM sign_in_sightings \
                     WHERE tenant_id = $1 AND user_id = $2 ORDER BY at DESC LIMIT $3",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(HISTORY as i64),
            )
            .await?;
        rows.iter().map(sighting).collect()
    }

    /// Whether a password with this SHA-1 is on the leaked-password list.
    pub async fn is_leaked(&self, sha1: [u8; 20]) -> Result<bool, StoreError> {
        Ok(self
            .pools
            .fetch_optional(
                query("SELECT 1 AS found FROM leaked_passwords WHERE sha1 = $1")
                    .bind(sha1.to_vec()),
            )
            .await?
            .is_some())
    }

    /// Adds hashes to the leaked-password list; ones already on it are skipped. Returns how
    /// many were new.
    pub async fn add_leaked_passwords(&self, hashes: &[[u8; 20]]) -> Result<u64, StoreError> {
        let mut tx = self.pools.begin().await?;
        let mut added = 0;
        for hash in hashes {
            added += tx
                .execute(
                    query("INSERT INTO leaked_passwords (sha1) VALUES ($1) ON CONFLICT DO NOTHING")
                        .bind(hash.to_vec()),
                )
                .await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// How many hashes the leaked-password list holds.
    pub async fn leaked_password_count(&self) -> Result<u64, StoreError> {
        let row = self
            .pools
            .fetch_optional(query("SELECT COUNT(*) AS n FROM leaked_passwords"))
            .await?;
        Ok(row
            .map(|r| r.int("n"))
            .transpose()?
            .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }
}

//! Server secrets that must be recoverable (such as the pepper of the API-key hash), stored only
//! encrypted under the key-encryption key, which itself never enters the database.

use secrecy::SecretBox;
use time::OffsetDateTime;

use portcullis_core::secrets::Kek;

use crate::db::query;
use crate::{Store, StoreError};

impl Store {
    /// Returns the named secret, creating it with `generate` the first time. Safe when several
    /// nodes start at once: the first insert wins and every node reads that one.
    pub async fn server_secret(
        &self,
        name: &str,
        kek: &Kek,
        generate: impl FnOnce() -> Result<Vec<u8>, StoreError>,
    ) -> Result<SecretBox<Vec<u8>>, StoreError> {
        let existing = self.read_server_secret(name).await?;
        let (ciphertext, fingerprint) = match existing {
            Some(found) => found,
            None => {
                let sealed = kek.seal(name, &generate()?)?;
                self.pools
                    .execute(
                        query(
                            "INSERT INTO server_secrets (name, ciphertext, kek_fingerprint, created_at) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                        )
                        .bind(name)
                        .bind(sealed)
                        .bind(kek.fingerprint())
                        .bind(OffsetDateTime::now_utc()),
                    )
                    .await?;
                self.read_server_secret(name)
                    .await?
                    .ok_or(StoreError::NotFound)?
            }
        };
        if fingerprint != kek.fingerprint() {
            return Err(StoreError::WrongKek {
                expected: fingerprint,
                actual: kek.fingerprint().to_owned(),
            });
        }
        Ok(kek.open(name, &ciphertext)?)
    }

    async fn read_server_secret(
        &self,
        name: &str,
    ) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query("SELECT ciphertext, kek_fingerprint FROM server_secrets WHERE name = $1")
                    .bind(name),
            )
            .await?;
        row.map(|r| Ok((r.bytes("ciphertext")?, r.text("kek_fingerprint")?)))
            .transpose()
    }
}

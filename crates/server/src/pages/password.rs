//! One password attempt at the sign-in page: reserved against the account's and the source
//! address's back-off before anything is checked (of simultaneous guesses, only as many as the
//! back-off allows are ever verified), verified at the same cost whether or not the user
//! exists, and settled by how the sign-in went on.

use secrecy::SecretString;

use portcullis_core::audit::Origin;
use portcullis_core::identity::{Tenant, User};
use portcullis_core::names::name_key;
use portcullis_core::password::PasswordCheck;
use portcullis_core::session::SignInSettings;

use super::{
    ADDRESS_BACKOFF, PageError, Tried, account_backoff, account_backoff_key, could_be_stored,
    hash_password, note_throttled, record_failure, refusal, user_context, verify_password,
};
use crate::state::AppState;
use crate::throttle::{Admitted, Backoff, Reservation, Settle, settle};

pub(super) struct PasswordAttempt<'a> {
    state: &'a AppState,
    account: Reservation<'a>,
    address: Reservation<'a>,
}

impl<'a> PasswordAttempt<'a> {
    /// An attempt with `password` at `user_name`'s account from `origin`: reserved, then
    /// checked. Accepted, it is to be settled once the sign-in step ends.
    pub(super) async fn make(
        state: &'a AppState,
        tenant: &Tenant,
        settings: &SignInSettings,
        user_name: &str,
        password: SecretString,
        origin: &Origin,
    ) -> Result<Tried<(Self, User)>, PageError> {
        let attempt = match Self::reserve(state, tenant, settings, user_name, origin).await? {
            Ok(attempt) => attempt,
            Err(wait) => return Ok(Tried::Wait(wait)),
        };
        Ok(
            match attempt.check(tenant, user_name, password, origin).await? {
                Some(found) => Tried::Accepted(found),
                None => Tried::Refused,
            },
        )
    }

    /// An attempt at `user_name`'s password from `origin`, or how long to wait first.
    async fn reserve(
        state: &'a AppState,
        tenant: &Tenant,
        settings: &SignInSettings,
        user_name: &str,
        origin: &Origin,
    ) -> Result<Admitted<Self>, PageError> {
        let account_key = account_backoff_key(tenant.id, user_name);
        let address_key = origin.source_ip.clone().unwrap_or_default();
        let reserved = Backoff::reserve_both(
            (
                &state.sign_in_accounts,
                &account_key,
                &account_backoff(settings),
            ),
            (&state.sign_in_addresses, &address_key, &ADDRESS_BACKOFF),
            state.clock.now(),
        )
        .await?;
        if reserved.is_err() {
            note_throttled(state, tenant, Some(user_name), "pwd", origin);
        }
        Ok(reserved.map(|(account, address)| Self {
            state,
            account,
            address,
        }))
    }

    /// The user whose password this is, or `None` (audited, and still counted as a failure)
    /// when the name is unknown, the password wrong or the user may not sign in. A right
    /// password hashed with outdated parameters is hashed again with today's.
    async fn check(
        self,
        tenant: &Tenant,
        user_name: &str,
        password: SecretString,
        origin: &Origin,
    ) -> Result<Option<(Self, User)>, PageError> {
        let state = self.state;
        // Unknown, and checked at the same cost as any unknown name below.
        let subject = if could_be_stored(user_name) {
            state
                .store
                .sign_in_subject(tenant.id, &name_key(user_name))
                .await?
        } else {
            None
        };
        let stored = subject
            .as_ref()
            .and_then(|s| s.password.as_ref())
            .map(|p| p.hash.clone());
        let check = verify_password(state, password.clone(), stored).await?;
        let now = state.clock.now();
        let user = subject.as_ref().map(|s| &s.user);
        if let Some(reason) = refusal(user, &check, now) {
            if !matches!(check, PasswordCheck::Match { .. }) {
                let account = account_backoff_key(tenant.id, user_name);
                crate::risk::wrong_password(state, tenant, &account, user, &password, origin)
                    .await?;
            }
            // Dropped, the reservations stay counted as failures.
            record_failure(state, tenant, user, reason, "pwd", origin).await?;
            return Ok(None);
        }
        let (Some(subject), PasswordCheck::Match { rehash }) = (subject, check) else {
            return Err(PageError::Internal(
                "refusal() let a failed check through".into(),
            ));
        };
        crate::risk::right_password(state, tenant, &subject.user, &password, origin).await?;
        if rehash {
            let hash = hash_password(state, password).await?;
            let ctx = user_context(tenant, &subject.user, origin.clone(), now);
            state
                .store
                .upgrade_password_hash(&ctx, subject.user.id, hash)
                .await?;
        }
        Ok(Some((self, subject.user)))
    }

    /// The password was right, so this address did nothing wrong. The account's failures
    /// stay while a code is still to come: they are its codes' back-off too, which a password
    /// must not reset.
    pub(super) async fn settle(self, code_to_come: bool) {
        let account = if code_to_come {
            Settle::Refund
        } else {
            Settle::Forget
        };
        settle(vec![
            (self.account, account),
            (self.address, Settle::Refund),
        ])
        .await;
    }
}

//! The Portcullis domain: identities, the authorization decision, the audit hash chain and the
//! secret primitives. Everything here is pure computation over values passed in — no I/O, no
//! HTTP, no SQL, no reading the clock — so every rule can be tested directly.

pub mod administrators;
pub mod audit;
pub mod authorize;
pub mod authz;
pub mod backoff;
pub mod branding;
pub mod conditional;
pub mod device;
pub mod device_key;
pub mod engine;
pub mod identity;
pub mod ids;
pub mod import;
pub mod jose;
pub mod lockout;
pub mod mail;
pub mod names;
pub mod network;
pub mod oauth;
pub mod page;
pub mod passkey;
pub mod password;
pub mod resources;
pub mod risk;
pub mod secrets;
pub mod session;
pub mod signin;
pub mod time_util;
pub mod totp;
pub mod user_agent;

pub use ids::*;

/// A value a client sent that breaks a rule; names the offending field so a person can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

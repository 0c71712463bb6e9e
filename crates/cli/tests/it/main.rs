//! Integration tests: each boots the real server (SQLite by default; PostgreSQL when
//! PORTCULLIS_TEST_DATABASE_URL is set) and drives it over HTTP or through the `portcullis`
//! binary. One test binary, so the suite links once.

mod access;
mod admin_tokens;
mod administrators;
mod api;
mod audit;
mod authorize;
mod authz;
mod authzen;
mod branding;
mod cli_complete;
mod cli_output;
mod concurrency;
mod conditional;
mod console;
mod csrf;
mod defences;
mod device;
mod devices;
mod enrolment;
mod escalation;
mod forgery;
mod harness;
mod identities;
mod imports;
mod input;
mod isolation;
mod keys;
mod keys_rotation;
mod lockout;
mod login;
mod mail;
mod mfa;
mod not_found;
mod oauth;
mod passkeys;
mod passwords;
mod process;
mod proxies;
mod risk;
mod signin;
mod soft_passkey;
mod stepup;

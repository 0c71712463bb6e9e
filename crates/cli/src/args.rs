//! Command-line values turned into the typed fields of API requests.
//!
//! Flags arrive as text (so that names can be resolved to ids first); these read them as the
//! API types they stand for, with the same parsing the server applies, so a wrong value is
//! refused here with the flag named.

use serde::de::DeserializeOwned;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A flag's value as the API type it stands for, parsed as the server parses it.
pub fn typed<T: DeserializeOwned>(flag: &str, value: String) -> anyhow::Result<T> {
    serde_json::from_value(Value::String(value.clone()))
        .map_err(|error| anyhow::anyhow!("--{flag} {value:?}: {error}"))
}

pub fn optional<T: DeserializeOwned>(
    flag: &str,
    value: Option<String>,
) -> anyhow::Result<Option<T>> {
    value.map(|v| typed(flag, v)).transpose()
}

/// For a PATCH: an empty value means "clear" (null).
pub fn clearable<T: DeserializeOwned>(
    flag: &str,
    value: Option<String>,
) -> anyhow::Result<Option<Option<T>>> {
    value
        .map(|v| {
            if v.is_empty() {
                Ok(None)
            } else {
                typed(flag, v).map(Some)
            }
        })
        .transpose()
}

/// An RFC 3339 time given on the command line.
pub fn instant(flag: &str, value: Option<String>) -> anyhow::Result<Option<OffsetDateTime>> {
    value
        .map(|v| {
            OffsetDateTime::parse(&v, &Rfc3339).map_err(|_| {
                anyhow::anyhow!(
                    "--{flag} {v:?} is not an RFC 3339 time such as 2027-01-31T17:00:00Z"
                )
            })
        })
        .transpose()
}

/// For a PATCH: an RFC 3339 time, or empty to clear it.
pub fn clearable_instant(
    flag: &str,
    value: Option<String>,
) -> anyhow::Result<Option<Option<OffsetDateTime>>> {
    match value {
        Some(v) if v.is_empty() => Ok(Some(None)),
        other => Ok(instant(flag, other)?.map(Some)),
    }
}

/// A JSON document given as a file (`-` for standard input), for the requests too rich for
/// flags: settings, policies, client registrations, resource types, roles.
#[derive(clap::Args, Debug, Clone)]
pub struct Document {
    /// The JSON document: a file, or `-` for standard input. `get --output json` prints one to
    /// start from.
    #[arg(long, short, value_name = "FILE")]
    file: std::path::PathBuf,
}

impl Document {
    /// The document read as `T`: a misspelt or missing field is refused here, naming it.
    pub fn read<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        use anyhow::Context;
        let text = if self.file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
                .context("cannot read the document from standard input")?
        } else {
            std::fs::read_to_string(&self.file)
                .with_context(|| format!("cannot read {}", self.file.display()))?
        };
        let reader = &mut serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(reader).map_err(|error| {
            let at = error.path().to_string();
            anyhow::anyhow!("{}: {} (at `{at}`)", self.file.display(), error.inner())
        })
    }
}

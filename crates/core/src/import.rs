//! Users from a CSV file: the header names the columns, each further line is a user. The file
//! as a whole is refused only when it cannot be read as such (no `user_name` column, a column
//! nobody knows, too many rows); a line that is wrong is reported with its number and the rest
//! go on.

use crate::ValidationError;

/// The most lines an import takes; larger directories arrive through SCIM or in parts.
pub const MAX_IMPORT_ROWS: usize = 50_000;

/// The largest file an import takes, in bytes.
pub const MAX_IMPORT_BYTES: usize = 8 * 1024 * 1024;

/// The columns an import understands.
pub const COLUMNS: [&str; 5] = [
    "user_name",
    "email",
    "display_name",
    "external_id",
    "email_verified",
];

/// One user as a line of the file gave them; what each field may hold is checked when the
/// user is created, as for any other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedUser {
    pub user_name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    pub email_verified: Option<bool>,
}

/// A line of the file: its number (the header is line 1) and the user or what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLine {
    pub line: u64,
    pub user: Result<ImportedUser, String>,
}

/// Reads the file. Byte order marks (as spreadsheets write them) are ignored; columns may come
/// in any order and in any case.
pub fn parse_users(bytes: &[u8]) -> Result<Vec<ImportLine>, ValidationError> {
    let refused = |message: String| ValidationError::new("file", message);
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(refused(format!(
            "is larger than {} MiB; split it into parts",
            MAX_IMPORT_BYTES / (1024 * 1024)
        )));
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| refused(format!("has no header line that can be read: {e}")))?
        .clone();
    let mut columns = Vec::with_capacity(header.len());
    for name in &header {
        let name = name.to_ascii_lowercase();
        let Some(known) = COLUMNS.iter().find(|c| **c == name) else {
            return Err(refused(format!(
                "has a column {name:?} this import does not know; the columns are {}",
                COLUMNS.join(", ")
            )));
        };
        if columns.contains(known) {
            return Err(refused(format!("names the column {name:?} twice")));
        }
        columns.push(*known);
    }
    if !columns.contains(&"user_name") {
        return Err(refused(format!(
            "needs a user_name column in its first line, e.g. {}",
            COLUMNS.join(",")
        )));
    }
    let mut lines = Vec::new();
    for record in reader.records() {
        if lines.len() == MAX_IMPORT_ROWS {
            return Err(refused(format!(
                "has more than {MAX_IMPORT_ROWS} users; split it into parts"
            )));
        }
        let (line, user) = match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                (line, user_of(&columns, &record))
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                (line, Err(format!("cannot be read: {e}")))
            }
        };
        lines.push(ImportLine { line, user });
    }
    if lines.is_empty() {
        return Err(refused("has a header but no users".into()));
    }
    Ok(lines)
}

fn user_of(columns: &[&str], record: &csv::StringRecord) -> Result<ImportedUser, String> {
    if record.len() != columns.len() {
        return Err(format!(
            "has {} fields where the header has {}",
            record.len(),
            columns.len()
        ));
    }
    let mut user = ImportedUser::default();
    for (column, value) in columns.iter().zip(record) {
        let value = (!value.is_empty()).then(|| value.to_owned());
        match *column {
            "user_name" => user.user_name = value.unwrap_or_default(),
            "email" => user.email = value,
            "display_name" => user.display_name = value,
            "external_id" => user.external_id = value,
            _ => {
                user.email_verified = match value.as_deref().map(str::to_ascii_lowercase) {
                    None => None,
                    Some(v) if v == "true" || v == "yes" || v == "1" => Some(true),
                    Some(v) if v == "false" || v == "no" || v == "0" => Some(false),
                    Some(other) => {
                        return Err(format!("email_verified is {other:?}; write true or false"));
                    }
                }
            }
        }
    }
    if user.user_name.is_empty() {
        return Err("has no user_name".into());
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_users_and_wrong_lines_are_reported_by_number() {
        let file = "\u{feff}User_Name,email,display_name,email_verified\n\
                    ada,ada@example.com,Ada Lovelace,true\n\
                    \"grace\",,\"Hopper, Grace\",\n\
                    ,nobody@example.com,,\n\
                    alan,alan@example.com\n\
                    edsger,e@example.com,Edsger,maybe\n";
        let lines = parse_users(file.as_bytes()).unwrap();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0].line, 2);
        let ada = lines[0].user.as_ref().unwrap();
        assert_eq!(
            (ada.user_name.as_str(), ada.email_verified),
            ("ada", Some(true))
        );
        let grace = lines[1].user.as_ref().unwrap();
        assert_eq!(grace.display_name.as_deref(), Some("Hopper, Grace"));
        assert_eq!(grace.email, None);
        assert_eq!(lines[2].user, Err("has no user_name".into()));
        assert_eq!(lines[3].line, 5);
        assert!(lines[3].user.as_ref().unwrap_err().contains("2 fields"));
        assert!(lines[4].user.as_ref().unwrap_err().contains("maybe"));
    }

    #[test]
    fn a_file_that_is_not_a_list_of_users_is_refused_whole() {
        for (file, says) in [
            ("email\nada@example.com\n", "needs a user_name column"),
            ("user_name,password\nada,secret\n", "\"password\""),
            ("user_name,User_Name\nada,ada\n", "twice"),
            ("user_name\n", "no users"),
        ] {
            let refused = parse_users(file.as_bytes()).unwrap_err();
            assert!(
                refused.message.contains(says),
                "{file}: {}",
                refused.message
            );
        }
        let mut many = String::from("user_name\n");
        for i in 0..=MAX_IMPORT_ROWS {
            many.push_str(&format!("u{i}\n"));
        }
        assert!(parse_users(many.as_bytes()).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes arrive, the parser answers without panicking.
        #[test]
        fn any_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_users(&bytes);
        }

        /// Users written out as CSV (quotes, commas, new lines and all) read back the same.
        #[test]
        fn written_users_read_back(
            users in proptest::collection::vec(
                ("[a-z][a-z0-9._-]{0,15}", proptest::option::of("[^\u{0}]{1,20}")),
                1..20,
            )
        ) {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(["user_name", "display_name"]).unwrap();
            for (name, display) in &users {
                writer.write_record([name.as_str(), display.as_deref().unwrap_or("")]).unwrap();
            }
            let file = writer.into_inner().unwrap();
            let lines = parse_users(&file).unwrap();
            prop_assert_eq!(lines.len(), users.len());
            for (line, (name, display)) in lines.iter().zip(&users) {
                let user = line.user.as_ref().unwrap();
                prop_assert_eq!(&user.user_name, name);
                let expected = display.as_deref().map(str::trim).filter(|d| !d.is_empty());
                prop_assert_eq!(user.display_name.as_deref(), expected);
            }
        }
    }
}

/// How far an import has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    Running,
    Finished,
    /// The server stopped while it ran; the users created so far stay. Importing the same
    /// file again creates the rest and reports the others as already there.
    Interrupted,
}

/// A line that did not become a user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportFailure {
    pub line: u64,
    /// As the line gave it (empty when it had none).
    pub user_name: String,
    pub error: String,
}

/// The most failures an import keeps word of; the count goes on.
pub const MAX_REPORTED_FAILURES: usize = 1000;

/// An import and its report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserImport {
    pub id: crate::UserImportId,
    pub state: ImportState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Who started it (a principal id).
    pub started_by: String,
    /// Lines in the file.
    pub total: u64,
    pub processed: u64,
    pub created: u64,
    pub failed: u64,
    /// The first [`MAX_REPORTED_FAILURES`] failures, by line.
    pub failures: Vec<ImportFailure>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<time::OffsetDateTime>,
}

impl UserImport {
    /// Percent done, for a progress bar.
    pub fn percent(&self) -> u64 {
        (self.processed * 100)
            .checked_div(self.total)
            .unwrap_or(100)
    }
}

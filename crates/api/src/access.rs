use portcullis_core::engine::tenant::Reason;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectBody {
    /// `user`, `group`, `service_principal`, one of the tenant's subject types (access
    /// settings `subject_types`, e.g. `identity`), or `anonymous` (no id).
    #[serde(rename = "type")]
    pub kind: String,
    /// The principal's id, external id, user name or e-mail address (users), or name
    /// (groups and service principals); a service principal's OAuth `client_id` is its id.
    pub id: Option<String>,
    /// `identifier`: which of those `id` is (`id`, `external_id`, `user_name`, `email`,
    /// `name`); any when absent. Other members are accepted and not used: who the subject is
    /// and what it holds come from Portcullis itself.
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResourceBody {
    /// A registered resource type (`document`), or one of Portcullis's own (`portcullis:user`;
    /// `user` too while the tenant has registered no type of that name).
    #[serde(rename = "type")]
    pub kind: String,
    /// The application's id of the record.
    pub id: Option<String>,
    /// For a record not registered with Portcullis: its owner (`ownerID` with a user's
    /// identifier, or `owner` as a subject object), and optionally `business_unit_id` (the
    /// owner's home unit when absent) and `environment_id`. Ignored for registered records.
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionBody {
    /// An action of the resource's type: `read` (or `document.read`).
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionBody>,
    /// `min_revision`: a revision number, or `"latest"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsOptions {
    /// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluations_semantic: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// Each entry's subject, resource and action default to the top-level ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluations: Option<Vec<EvaluationBody>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<EvaluationsOptions>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionBody {
    pub decision: bool,
    pub context: DecisionContext,
}

/// Serialized as it is (not through a JSON tree): a full batch is a thousand of these.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionContext {
    /// The change-feed revision the decision was made at.
    pub revision: i64,
    /// What allowed or refused it: `kind` and the ids it names. Absent when the evaluation
    /// could not be asked (then `error` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub reason: Option<Reason>,
    /// The reason, or the error, in words.
    pub reason_text: String,
    /// For one evaluation of a batch that could not be asked (an unknown type, a malformed
    /// id): `status` (400), `field` and `message`. Its decision is `false`; the rest of the
    /// batch is answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<EvaluationError>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationError {
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsResponse {
    pub evaluations: Vec<DecisionBody>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PageBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<PageBody>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    /// Subjects and resources as `{"type", "id"}`; actions as `{"name"}`.
    pub results: Vec<Value>,
    /// `next_token`: pass it as `page.token` for the next page; empty on the last.
    pub page: Value,
    pub context: Value,
}

/// The members of an AuthZEN `context` that Portcullis reads itself; the rest of a context is
/// the caller's, passed to conditions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DecisionContextRequest {
    /// Decide on a snapshot at least this fresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_revision: Option<MinRevision>,
}

/// `context.min_revision`: a revision number from an earlier answer, or `"latest"`
/// (everything committed before the question).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinRevision {
    Latest,
    AtLeast(u64),
}

impl Serialize for MinRevision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MinRevision::Latest => serializer.serialize_str("latest"),
            MinRevision::AtLeast(revision) => serializer.serialize_u64(*revision),
        }
    }
}

impl std::str::FromStr for MinRevision {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "latest" => Ok(MinRevision::Latest),
            number => number
                .parse()
                .map(MinRevision::AtLeast)
                .map_err(|_| format!("{number:?} is neither a revision number nor `latest`")),
        }
    }
}

//! Principals as enforcement points name them. A PEP knows a caller by what its own token
//! says: a user name, an e-mail address, the `sub` of an ID token (ours is the user's id; an
//! upstream identity provider's is kept as the user's external id), a service principal's
//! client id (its id) or name. And it has its own word for the kind of caller (`identity`,
//! `account`), which a tenant maps onto its principal kinds. This index finds the one active
//! principal an identifier names, and refuses to guess when it names more than one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identity::{PrincipalKind, PrincipalRef};
use crate::names::case_fold;

/// The kinds of identifier a subject may be named by, in the order they are documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identifier {
    /// Portcullis's id: the `sub` of its ID tokens, a service principal's `client_id`.
    Id,
    /// The id another system gave it (SCIM `externalId`, an upstream `sub`), compared exactly.
    ExternalId,
    /// A user's name, compared case-insensitively.
    UserName,
    /// A user's e-mail address, compared case-insensitively.
    Email,
    /// A group's or service principal's name, compared case-insensitively.
    Name,
}

impl Identifier {
    pub const ALL: [Identifier; 5] = [
        Identifier::Id,
        Identifier::ExternalId,
        Identifier::UserName,
        Identifier::Email,
        Identifier::Name,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Identifier::Id => "id",
            Identifier::ExternalId => "external_id",
            Identifier::UserName => "user_name",
            Identifier::Email => "email",
            Identifier::Name => "name",
        }
    }

    pub fn parse(raw: &str) -> Option<Identifier> {
        Identifier::ALL.into_iter().find(|i| i.as_str() == raw)
    }

    /// Whether values of this identifier are compared after case folding.
    fn folded(self) -> bool {
        matches!(
            self,
            Identifier::UserName | Identifier::Email | Identifier::Name
        )
    }
}

/// The subject kind names a tenant adds to `user`, `group` and `service_principal`:
/// `{"identity": ["user", "service_principal"]}`.
pub type SubjectTypes = BTreeMap<String, Vec<PrincipalKind>>;

/// What an identifier came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    One(PrincipalRef),
    Nobody,
    /// Several principals answer to it (by different identifiers, or of different kinds).
    Several(Vec<PrincipalRef>),
}

/// Every active principal's identifiers other than its id. Persistent maps, so an engine's
/// next revision shares it and changes only the principals that changed.
#[derive(Debug, Default, Clone)]
pub struct SubjectIndex {
    entries: imbl::HashMap<String, Vec<(Identifier, PrincipalRef)>>,
    /// Each principal's keys in `entries`, so a change can take them out.
    keys: imbl::HashMap<PrincipalRef, Vec<(Identifier, String)>>,
}

impl SubjectIndex {
    pub fn build(identifiers: &[(PrincipalRef, Identifier, String)]) -> SubjectIndex {
        let mut index = SubjectIndex::default();
        for (principal, identifier, value) in identifiers {
            index.add(*principal, *identifier, value);
        }
        index
    }

    fn add(&mut self, principal: PrincipalRef, identifier: Identifier, value: &str) {
        if identifier == Identifier::Id {
            return;
        }
        let key = if identifier.folded() {
            case_fold(value)
        } else {
            value.to_owned()
        };
        self.entries
            .entry(key.clone())
            .or_default()
            .push((identifier, principal));
        self.keys
            .entry(principal)
            .or_default()
            .push((identifier, key));
    }

    /// Makes `identifiers` the whole of what `principal` answers to (none: it is not active).
    pub fn replace(&mut self, principal: PrincipalRef, identifiers: &[(Identifier, String)]) {
        for (identifier, key) in self.keys.remove(&principal).unwrap_or_default() {
            if let Some(list) = self.entries.get_mut(&key) {
                list.retain(|entry| *entry != (identifier, principal));
                if list.is_empty() {
                    self.entries.remove(&key);
                }
            }
        }
        for (identifier, value) in identifiers {
            self.add(principal, *identifier, value);
        }
    }

    /// The principals of `kinds` that `raw` names, by `only` that identifier or by any.
    /// `exists` says whether a principal is active (for ids, which the index does not hold).
    pub fn find(
        &self,
        kinds: &[PrincipalKind],
        raw: &str,
        only: Option<Identifier>,
        exists: impl Fn(PrincipalRef) -> bool,
    ) -> Found {
        let wanted = |identifier: Identifier| only.is_none_or(|o| o == identifier);
        let mut found: Vec<PrincipalRef> = Vec::new();
        if wanted(Identifier::Id)
            && let Ok(id) = uuid::Uuid::parse_str(raw)
        {
            found.extend(
                kinds
                    .iter()
                    .map(|kind| PrincipalRef { kind: *kind, id })
                    .filter(|p| exists(*p)),
            );
        }
        let folded = case_fold(raw);
        let mut take = |key: &str, accept: &dyn Fn(Identifier) -> bool| {
            for (identifier, principal) in self.entries.get(key).into_iter().flatten() {
                if accept(*identifier) && wanted(*identifier) && kinds.contains(&principal.kind) {
                    found.push(*principal);
                }
            }
        };
        // External ids are looked up as sent, names as folded; one key may hold both.
        if raw == folded {
            take(raw, &|_| true);
        } else {
            take(raw, &|identifier| !identifier.folded());
            take(&folded, &Identifier::folded);
        }
        found.sort_unstable();
        found.dedup();
        match found.len() {
            0 => Found::Nobody,
            1 => Found::One(found[0]),
            _ => Found::Several(found),
        }
    }
}

/// The principal kinds a subject type stands for: Portcullis's own names, or the tenant's.
pub fn subject_kinds<'a>(types: &'a SubjectTypes, name: &str) -> Option<&'a [PrincipalKind]> {
    const USER: &[PrincipalKind] = &[PrincipalKind::User];
    const GROUP: &[PrincipalKind] = &[PrincipalKind::Group];
    const SERVICE: &[PrincipalKind] = &[PrincipalKind::ServicePrincipal];
    match PrincipalKind::parse(name) {
        Some(PrincipalKind::User) => Some(USER),
        Some(PrincipalKind::Group) => Some(GROUP),
        Some(PrincipalKind::ServicePrincipal) => Some(SERVICE),
        None => types.get(name).map(Vec::as_slice),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> PrincipalRef {
        PrincipalRef::user(crate::ids::UserId::generate())
    }

    #[test]
    fn identifiers_find_one_principal_or_refuse_to_guess() {
        let (ada, bob) = (user(), user());
        let robot = PrincipalRef::service_principal(crate::ids::ServicePrincipalId::generate());
        let index = SubjectIndex::build(&[
            (ada, Identifier::UserName, "Ada".into()),
            (ada, Identifier::Email, "Ada@Example.com".into()),
            (ada, Identifier::ExternalId, "00u1AbC".into()),
            // Bob's user name is the text of Ada's id: whoever sends it cannot be told apart.
            (bob, Identifier::UserName, ada.id.to_string()),
            (robot, Identifier::Name, "billing".into()),
            (robot, Identifier::ExternalId, "ada".into()),
        ]);
        let users = [PrincipalKind::User];
        let active = |p: PrincipalRef| p == ada || p == bob || p == robot;
        let find = |raw: &str, only| index.find(&users, raw, only, active);
        assert_eq!(find("ada", None), Found::One(ada));
        assert_eq!(find("ADA@example.COM", None), Found::One(ada));
        assert_eq!(find("00u1AbC", None), Found::One(ada));
        // External ids are exact, names are not look-alikes.
        assert_eq!(find("00U1ABC", None), Found::Nobody);
        assert_eq!(find("\u{430}da", None), Found::Nobody);
        assert_eq!(find("nobody", None), Found::Nobody);
        assert_eq!(find(&bob.id.to_string(), None), Found::One(bob));
        let mut both = vec![ada, bob];
        both.sort();
        assert_eq!(find(&ada.id.to_string(), None), Found::Several(both));
        assert_eq!(
            find(&ada.id.to_string(), Some(Identifier::Id)),
            Found::One(ada)
        );
        assert_eq!(find("ada", Some(Identifier::Email)), Found::Nobody);
        // Kinds the type does not stand for are not found; several kinds may be ambiguous.
        assert_eq!(
            index.find(&[PrincipalKind::ServicePrincipal], "billing", None, active),
            Found::One(robot)
        );
        assert!(matches!(
            index.find(
                &[PrincipalKind::User, PrincipalKind::ServicePrincipal],
                "ada",
                None,
                active
            ),
            Found::Several(_)
        ));
        // An inactive principal's id names nobody.
        assert_eq!(
            index.find(&users, &ada.id.to_string(), Some(Identifier::Id), |_| false),
            Found::Nobody
        );
    }

    #[test]
    fn subject_types_are_portcullis_words_or_the_tenant_own() {
        let mut types = SubjectTypes::new();
        types.insert(
            "identity".into(),
            vec![PrincipalKind::User, PrincipalKind::ServicePrincipal],
        );
        assert_eq!(
            subject_kinds(&types, "user"),
            Some(&[PrincipalKind::User][..])
        );
        assert_eq!(subject_kinds(&types, "identity").map(<[_]>::len), Some(2));
        assert_eq!(subject_kinds(&types, "account"), None);
    }
}

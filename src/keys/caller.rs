//! Who asks the keys service to act: which keys they see and act on, and
//! the actor the audit log and the owner's email name.

use crate::audit;

/// Which keys a person (or a key acting for one) may see and change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every key: an administrator.
    EveryKey,
    /// Their own keys only; another's key is "not found".
    OwnKeys,
}

/// A person, as the keys service sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub email: String,
    pub reach: Reach,
}

/// The caller of a keys operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A person in the console, or calling the management API with their
    /// console session.
    Person(Person),
    /// An access token of the key `client_id` calling the management API:
    /// it acts for its owner, with the reach its scopes give.
    Key { client_id: String, owner: Person },
    /// Someone at the command line: every key.
    CommandLine,
    /// keygate itself (a report of an exposed secret): every key.
    Keygate,
}

impl Caller {
    /// The person acting, if a person acts.
    fn person(&self) -> Option<&Person> {
        match self {
            Self::Person(person) | Self::Key { owner: person, .. } => Some(person),
            Self::CommandLine | Self::Keygate => None,
        }
    }

    /// Who the audit log and the emails name as having acted.
    pub fn actor(&self) -> &str {
        match self {
            Self::Person(person) | Self::Key { owner: person, .. } => &person.email,
            Self::CommandLine => audit::COMMAND_LINE,
            Self::Keygate => audit::SYSTEM,
        }
    }

    /// The one owner whose keys the caller may see; `None`: every owner's.
    pub fn only_owner(&self) -> Option<&str> {
        self.person()
            .filter(|person| person.reach == Reach::OwnKeys)
            .map(|person| person.email.as_str())
    }

    /// Whether the caller reaches every key: an admin (in person or by a
    /// key with `keygate:admin`), the command line, keygate itself. Only
    /// they approve keys and manage teams.
    pub fn is_admin(&self) -> bool {
        self.only_owner().is_none()
    }

    /// Whether the caller may see and change the keys of `owner_email` (a
    /// person; a team's keys are for its members, which the keys service
    /// asks the database).
    pub fn may_manage_keys_of(&self, owner_email: &str) -> bool {
        self.only_owner()
            .is_none_or(|own| own.eq_ignore_ascii_case(owner_email))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(email: &str, reach: Reach) -> Caller {
        Caller::Person(Person {
            email: email.to_owned(),
            reach,
        })
    }

    #[test]
    fn a_person_reaches_their_own_keys_and_an_admin_every_key() {
        let alice = person("alice@example.com", Reach::OwnKeys);
        assert!(alice.may_manage_keys_of("Alice@Example.com"));
        assert!(!alice.may_manage_keys_of("bob@example.com"));
        assert_eq!(alice.only_owner(), Some("alice@example.com"));
        let admin = person("root@example.com", Reach::EveryKey);
        assert!(admin.may_manage_keys_of("bob@example.com"));
        assert_eq!(admin.only_owner(), None);
        for anyone in [Caller::CommandLine, Caller::Keygate] {
            assert!(anyone.may_manage_keys_of("bob@example.com"));
        }
    }

    #[test]
    fn the_actor_is_the_person_or_the_command_line_or_keygate() {
        let key = Caller::Key {
            client_id: "kgc_1".into(),
            owner: Person {
                email: "alice@example.com".into(),
                reach: Reach::OwnKeys,
            },
        };
        assert_eq!(key.actor(), "alice@example.com");
        assert_eq!(Caller::CommandLine.actor(), audit::COMMAND_LINE);
        assert_eq!(Caller::Keygate.actor(), audit::SYSTEM);
    }
}

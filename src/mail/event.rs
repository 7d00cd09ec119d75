//! The events of a key's life that its owner is emailed about.

/// What an email reports about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Created,
    Rotated,
    Revoked,
    /// Revoked because its secret was reported leaked (`crate::exposure`).
    Exposed,
    Expiring,
    Expired,
}

impl Event {
    pub const ALL: [Self; 6] = [
        Self::Created,
        Self::Rotated,
        Self::Revoked,
        Self::Exposed,
        Self::Expiring,
        Self::Expired,
    ];

    /// The template folder and the outbox's `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Rotated => "rotated",
            Self::Revoked => "revoked",
            Self::Exposed => "exposed",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
        }
    }
}

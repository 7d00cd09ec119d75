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
    /// Given to another person or team: to the previous and the new owner.
    Transferred,
    /// A key waits for approval: to the admins.
    ApprovalRequested,
    /// To the person who asked for the key.
    Approved,
    Denied,
}

impl Event {
    pub const ALL: [Self; 10] = [
        Self::Created,
        Self::Rotated,
        Self::Revoked,
        Self::Exposed,
        Self::Expiring,
        Self::Expired,
        Self::Transferred,
        Self::ApprovalRequested,
        Self::Approved,
        Self::Denied,
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
            Self::Transferred => "transferred",
            Self::ApprovalRequested => "approval",
            Self::Approved => "approved",
            Self::Denied => "denied",
        }
    }
}

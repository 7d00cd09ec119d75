//! Fixed bounds on what a key may hold, in one place: the rules check
//! them and the refusals quote them.

/// Longest name a key may have (after trimming), in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest description, and longest revocation reason, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 2000;
/// The longest a rotated-out secret keeps working.
pub const MAX_GRACE_DAYS: i64 = 30;
/// Most networks one key may list.
pub const MAX_NETWORKS: usize = 50;
/// Highest issuance limit a key may be given (tokens per minute).
pub const MAX_TOKENS_PER_MINUTE: u32 = 1_000_000;

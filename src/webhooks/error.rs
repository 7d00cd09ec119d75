//! Why a change to a webhook endpoint was refused, in terms that know
//! nothing of HTTP: `crate::error` maps it to a response, once.

use crate::error::{ErrorKind, FeatureError, StoreError};
use crate::text::TextError;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    InvalidUrl(String),
    #[error("unknown event type {given:?}; known types: {known}")]
    UnknownEventType { given: String, known: String },
    #[error(transparent)]
    InvalidDescription(TextError),
    #[error("the description may hold at most {max} characters")]
    DescriptionLength { max: usize },
    #[error("no webhook endpoint with ID {id:?} (see `keygate webhooks list`)")]
    EndpointNotFound { id: String },
    #[error("no delivery with ID {id:?} for this endpoint")]
    DeliveryNotFound { id: String },
    #[error("the delivery {id} is still pending; it is tried again on its own")]
    DeliveryPending { id: String },
    #[error("the endpoint {id} is switched off; switch it on first")]
    EndpointDisabled { id: String },
    #[error("give the events, the description or enabled")]
    NothingToChange,
    #[error("the signing secret could not be sealed or opened")]
    Sealing,
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::error::from_store_errors!(WebhookError);

impl WebhookError {
    /// Every code a `WebhookError` can have, with its kind: what the
    /// management API's document lists. A test keeps it complete.
    pub const CODES: &[(ErrorKind, &'static str)] = &[
        (ErrorKind::Invalid, "invalid_url"),
        (ErrorKind::Invalid, "invalid_event_type"),
        (ErrorKind::Invalid, "invalid_description"),
        (ErrorKind::NotFound, "webhook_not_found"),
        (ErrorKind::NotFound, "delivery_not_found"),
        (ErrorKind::Conflict, "delivery_pending"),
        (ErrorKind::Conflict, "webhook_disabled"),
        (ErrorKind::Invalid, "nothing_to_change"),
        (ErrorKind::Unavailable, "database_unavailable"),
        (ErrorKind::Internal, "internal_error"),
    ];
}

impl FeatureError for WebhookError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "invalid_url",
            Self::UnknownEventType { .. } => "invalid_event_type",
            Self::InvalidDescription(_) | Self::DescriptionLength { .. } => "invalid_description",
            Self::EndpointNotFound { .. } => "webhook_not_found",
            Self::DeliveryNotFound { .. } => "delivery_not_found",
            Self::DeliveryPending { .. } => "delivery_pending",
            Self::EndpointDisabled { .. } => "webhook_disabled",
            Self::NothingToChange => "nothing_to_change",
            Self::Sealing => "internal_error",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::EndpointNotFound { .. } | Self::DeliveryNotFound { .. } => ErrorKind::NotFound,
            Self::DeliveryPending { .. } | Self::EndpointDisabled { .. } => ErrorKind::Conflict,
            Self::Sealing => ErrorKind::Internal,
            Self::Store(e) => e.kind(),
            _ => ErrorKind::Invalid,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidUrl(_) => Some("url"),
            Self::UnknownEventType { .. } => Some("events"),
            Self::InvalidDescription(_) | Self::DescriptionLength { .. } => Some("description"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_list_is_every_code() {
        let x = || "x".to_owned();
        let text = crate::text::refuse_control_characters("invalid_description", "d", "\u{7}")
            .expect_err("a control character");
        let all = [
            WebhookError::InvalidUrl(x()),
            WebhookError::UnknownEventType {
                given: x(),
                known: x(),
            },
            WebhookError::InvalidDescription(text),
            WebhookError::EndpointNotFound { id: x() },
            WebhookError::DeliveryNotFound { id: x() },
            WebhookError::DeliveryPending { id: x() },
            WebhookError::EndpointDisabled { id: x() },
            WebhookError::NothingToChange,
            WebhookError::Store(StoreError::Unavailable(x())),
            WebhookError::Store(StoreError::Query(diesel::result::Error::NotFound)),
        ];
        let produced: Vec<(ErrorKind, &str)> = all.iter().map(|e| (e.kind(), e.code())).collect();
        assert_eq!(produced, WebhookError::CODES);
        // Sealing fails only on a wrong master key: a 500 like any other.
        assert_eq!(WebhookError::Sealing.code(), "internal_error");
    }
}

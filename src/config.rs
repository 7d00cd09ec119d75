//! What configuration errors look like. The variables themselves are parsed
//! by `app::config` into the types of the modules that own them; this module
//! imports nothing from the features, so every feature may use it.

/// One line naming the variable and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

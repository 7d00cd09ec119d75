//! Finding keygate secrets in text (scan.rs: filled in by `keys scan`).

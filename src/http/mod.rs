//! The transport: thin adapters from HTTP to the features, one folder per
//! surface. `oauth/` holds the OAuth endpoints and their front door (client
//! authentication, the answers every endpoint gives), `mgmt/` the
//! management API and its OpenAPI document, `console/` the web console's
//! pages, `ops/` health and metrics; beside them what every surface shares:
//! the form body, the client's address, the session cookie and the limits
//! every connection and body is held to. Errors become responses here.

pub mod console;
pub mod edge;
pub mod error;
pub mod form;
pub mod mgmt;
pub mod oauth;
pub mod ops;
pub mod peer;
pub mod session;
